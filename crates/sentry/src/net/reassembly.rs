//! IP fragments, for the pod's interface, which smoltcp neither makes nor
//! puts together.
//!
//! Coming in: IPv6 fragments put back together (RFC 8200 §4.5); the
//! kernel does it before a packet socket only for IPv4
//! ([`super::steer`]). A fragment header right after the
//! fixed header is handled (what a host that fragments its own datagram
//! sends); the whole packet is handed on as if it had come unfragmented.
//! Like Linux, an incomplete packet is dropped after [`TIMEOUT`], and at
//! most [`MAX_PENDING`] wait.
//!
//! Going out: a packet longer than the link's MTU that the kernel does not
//! cut itself ([`super::offload`]: TCP and UDP with virtio-net headers) is
//! cut here ([`split`]), IPv6's with a fragment header.

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

/// `packet` (an IPv4 or IPv6 packet longer than `mtu`) as fragments that
/// each fit `mtu`; `id` identifies an IPv6 packet's fragments (an IPv4
/// packet has its own). Empty if it cannot be cut (a fragment already, an
/// MTU too small).
pub fn split(packet: &[u8], mtu: usize, id: u32) -> Vec<Vec<u8>> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => split_v4(packet, mtu),
        Some(6) => split_v6(packet, mtu, id),
        _ => Vec::new(),
    }
}

fn split_v4(p: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let ihl = usize::from(p[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([p.get(2).copied().unwrap_or(0), p.get(3).copied().unwrap_or(0)]));
    let frag = u16::from_be_bytes([p.get(6).copied().unwrap_or(0), p.get(7).copied().unwrap_or(0)]);
    // a fragment already (MF or an offset). DF is the stack's own (smoltcp
    // sets it on every packet), not a program's: cut all the same, as
    // Linux does a packet longer than the MTU it makes itself
    if ihl < 20 || total > p.len() || total <= ihl || frag & 0x3fff != 0 {
        return Vec::new();
    }
    let size = mtu.saturating_sub(ihl) & !7;
    if size == 0 {
        return Vec::new();
    }
    let payload = &p[ihl..total];
    let n = payload.len().div_ceil(size);
    payload
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = p[..ihl].to_vec();
            f[2..4].copy_from_slice(&((ihl + chunk.len()) as u16).to_be_bytes());
            let more: u16 = if i + 1 < n { 0x2000 } else { 0 };
            f[6..8].copy_from_slice(&(more | ((i * size / 8) as u16)).to_be_bytes());
            super::packet::fill_ipv4_checksum(&mut f);
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}

fn split_v6(p: &[u8], mtu: usize, id: u32) -> Vec<Vec<u8>> {
    let len = usize::from(u16::from_be_bytes([p.get(4).copied().unwrap_or(0), p.get(5).copied().unwrap_or(0)]));
    if p.len() < FIXED + len || p[6] == FRAGMENT {
        return Vec::new();
    }
    let size = mtu.saturating_sub(FIXED + 8) & !7;
    if size == 0 {
        return Vec::new();
    }
    let payload = &p[FIXED..FIXED + len];
    let n = payload.len().div_ceil(size);
    payload
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = p[..FIXED].to_vec();
            f[4..6].copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
            f[6] = FRAGMENT;
            let more = u16::from(i + 1 < n);
            f.extend_from_slice(&[p[6], 0]);
            f.extend_from_slice(&((((i * size) / 8) as u16) << 3 | more).to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect()
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
    fn a_long_ipv6_packet_cut_is_put_together_again() {
        let (whole, _) = fragments(3000, 1448, 1);
        let frags = split(&whole, 1500, 77);
        assert_eq!(frags.len(), 3);
        assert!(frags.iter().all(|f| f.len() <= 1500 && is_fragment(f)));
        let mut r = Reassembly::default();
        let now = Instant::now();
        let got: Vec<_> = frags.iter().filter_map(|f| r.take(f, now)).collect();
        assert_eq!(got, vec![whole]);
    }

    #[test]
    fn a_long_ipv4_packet_is_cut() {
        let mut p = vec![0u8; 20 + 3000];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&3020u16.to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[8] = 64;
        p[9] = 1;
        for (i, b) in p[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let frags = split(&p, 1500, 0);
        assert_eq!(frags.len(), 3);
        let mut data = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 1500);
            assert_eq!(crate::net::packet::checksum(&f[..20]), 0xffff, "header checksum of fragment {i}");
            let word = u16::from_be_bytes([f[6], f[7]]);
            assert_eq!(usize::from(word & 0x1fff) * 8, data.len());
            assert_eq!(word & 0x2000 != 0, i < 2);
            data.extend_from_slice(&f[20..]);
        }
        assert_eq!(data, &p[20..]);
        // DF (smoltcp's, on every packet) is cleared; a fragment is not cut again
        p[6] = 0x40;
        assert!(split(&p, 1500, 0).iter().all(|f| f[6] & 0x40 == 0));
        p[6] = 0x20;
        assert!(split(&p, 1500, 0).is_empty());
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
