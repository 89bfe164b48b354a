//! IPv6 fragments put back together (RFC 8200 §4.5), for the pod's
//! interface: smoltcp reassembles none, and the kernel does it before a
//! packet socket only for IPv4 ([`super::offload::reassemble`]). A
//! fragment header right after the fixed header is handled (what a host
//! that fragments its own datagram sends); the whole packet is handed on
//! as if it had come unfragmented. Like Linux, an incomplete packet is
//! dropped after [`TIMEOUT`], and at most [`MAX_PENDING`] wait.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long the fragments of one packet may take to come (Linux's
/// ip6frag_time).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many packets wait for their fragments.
pub const MAX_PENDING: usize = 64;
/// IPv6's fixed header
const FIXED: usize = 40;
/// the next-header number of a fragment header
const FRAGMENT: u8 = 44;
/// The largest packet put together (IPv6's payload length is 16 bits).
const MAX_PAYLOAD: usize = 65535;

/// One packet being put together: its fragments' bytes, by offset.
struct Pending {
    started: Instant,
    /// the fixed header of the first fragment
    header: [u8; FIXED],
    /// the header that follows the fragment header
    next: u8,
    /// the unfragmentable part's end is the fixed header; the bytes after
    /// the fragment header, by offset
    parts: Vec<(usize, Vec<u8>)>,
    /// the whole length, once the last fragment came
    total: Option<usize>,
}

/// The packets being put together, by (source, destination, identification).
#[derive(Default)]
pub struct Reassembly {
    pending: HashMap<([u8; 16], [u8; 16], u32), Pending>,
}

impl std::fmt::Debug for Reassembly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reassembly({} pending)", self.pending.len())
    }
}

/// Whether `packet` (an IPv6 packet) is a fragment.
pub fn is_fragment(packet: &[u8]) -> bool {
    packet.len() >= FIXED + 8 && packet[0] >> 4 == 6 && packet[6] == FRAGMENT
}

impl Reassembly {
    /// Takes fragment `packet`: the whole packet once its last missing
    /// fragment came, else None.
    pub fn take(&mut self, packet: &[u8], now: Instant) -> Option<Vec<u8>> {
        self.pending.retain(|_, p| now.duration_since(p.started) < TIMEOUT);
        if !is_fragment(packet) {
            return None;
        }
        let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
        let end = (FIXED + payload_len).min(packet.len());
        let frag = &packet[FIXED..end];
        if frag.len() < 8 {
            return None;
        }
        let next = frag[0];
        let word = u16::from_be_bytes([frag[2], frag[3]]);
        let offset = usize::from(word >> 3) * 8;
        let more = word & 1 == 1;
        let id = u32::from_be_bytes([frag[4], frag[5], frag[6], frag[7]]);
        let data = &frag[8..];
        // every fragment but the last carries a multiple of 8 bytes
        if (more && !data.len().is_multiple_of(8)) || offset + data.len() > MAX_PAYLOAD {
            return None;
        }
        let key = (src(packet), dst(packet), id);
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING {
            return None;
        }
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            started: now,
            header: packet[..FIXED].try_into().unwrap_or([0; FIXED]),
            next,
            parts: Vec::new(),
            total: None,
        });
        if offset == 0 {
            p.header = packet[..FIXED].try_into().unwrap_or(p.header);
            p.next = next;
        }
        if !more {
            p.total = Some(offset + data.len());
        }
        p.parts.push((offset, data.to_vec()));
        let total = p.total?;
        // complete when the parts, in order, leave no gap up to the end
        p.parts.sort_by_key(|(o, _)| *o);
        let mut covered = 0;
        for (o, d) in &p.parts {
            if *o > covered {
                return None;
            }
            covered = covered.max(o + d.len());
        }
        if covered < total {
            return None;
        }
        let p = self.pending.remove(&key)?;
        let mut whole = vec![0u8; FIXED + total];
        whole[..FIXED].copy_from_slice(&p.header);
        whole[4..6].copy_from_slice(&(total as u16).to_be_bytes());
        whole[6] = p.next;
        // (overlapping fragments: the later one's bytes win, as they lie)
        for (o, d) in &p.parts {
            let n = d.len().min(total.saturating_sub(*o));
            whole[FIXED + o..FIXED + o + n].copy_from_slice(&d[..n]);
        }
        Some(whole)
    }
}

fn src(p: &[u8]) -> [u8; 16] {
    p[8..24].try_into().unwrap_or([0; 16])
}

fn dst(p: &[u8]) -> [u8; 16] {
    p[24..40].try_into().unwrap_or([0; 16])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP datagram of `len` bytes in IPv6, cut into fragments of
    /// `size` bytes (a multiple of 8) after the fragment header.
    fn fragments(len: usize, size: usize, id: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut header = [0u8; FIXED];
        header[0] = 0x60;
        header[6] = 17;
        header[7] = 64;
        header[8..24].copy_from_slice(&[0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        header[24..40].copy_from_slice(&[0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let mut whole = header.to_vec();
        whole[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        whole.extend_from_slice(&payload);
        let mut out = Vec::new();
        for (i, chunk) in payload.chunks(size).enumerate() {
            let offset = i * size;
            let more = offset + chunk.len() < len;
            let mut f = header.to_vec();
            f[6] = FRAGMENT;
            f[4..6].copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
            f.push(17);
            f.push(0);
            f.extend_from_slice(&(((offset / 8) as u16) << 3 | u16::from(more)).to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(chunk);
            out.push(f);
        }
        (whole, out)
    }

    #[test]
    fn fragments_in_any_order_make_the_packet() {
        let now = Instant::now();
        let (whole, mut frags) = fragments(3000, 1448, 7);
        assert_eq!(frags.len(), 3);
        frags.swap(0, 2);
        let mut r = Reassembly::default();
        assert_eq!(r.take(&frags[0], now), None);
        assert_eq!(r.take(&frags[1], now), None);
        assert_eq!(r.take(&frags[2], now), Some(whole));
        assert!(r.pending.is_empty());
    }

    #[test]
    fn a_packet_with_a_gap_waits_then_goes() {
        let now = Instant::now();
        let (_, frags) = fragments(3000, 1448, 9);
        let mut r = Reassembly::default();
        assert_eq!(r.take(&frags[0], now), None);
        assert_eq!(r.take(&frags[2], now), None);
        assert_eq!(r.pending.len(), 1);
        // another packet's fragment, past the timeout: the old one is dropped
        let (_, other) = fragments(100, 48, 10);
        assert_eq!(r.take(&other[0], now + TIMEOUT), None);
        assert_eq!(r.pending.len(), 1);
        assert!(!is_fragment(&fragments(10, 8, 1).0));
    }

    #[test]
    fn no_more_than_so_many_wait() {
        let now = Instant::now();
        let mut r = Reassembly::default();
        for id in 0..(MAX_PENDING as u32 + 5) {
            let (_, frags) = fragments(100, 48, id);
            assert_eq!(r.take(&frags[0], now), None);
        }
        assert_eq!(r.pending.len(), MAX_PENDING);
    }
}
