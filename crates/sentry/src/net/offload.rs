//! TCP segmentation offload on the pod's interface: the packet socket
//! carries a virtio-net header with each packet (PACKET_VNET_HDR), so the
//! stack hands the kernel TCP segments of up to 64 KiB and the kernel cuts
//! them to the link's size (GSO), as it does for its own sockets: one
//! system call per 64 KiB instead of one per 1.5 KB.
//!
//! smoltcp sends segments no larger than its peer's MSS, so the MSS option
//! of each SYN that comes in over the wire is raised to the largest
//! (the device keeps the peer's own, [`Peers`]), and a segment longer than
//! the link's MTU goes out as one GSO packet cut to the peer's MSS. Every
//! TCP segment's checksum is the kernel's to finish (smoltcp makes none):
//! the field holds the pseudo-header's sum (VIRTIO_NET_HDR_F_NEEDS_CSUM).
//!
//! A UDP datagram longer than the MTU goes the same way, for the kernel to
//! cut into IP fragments (UFO). The fragments that come in are put
//! together by the kernel before the packet socket sees them, IPv4's
//! only (their fanout group defragments: [`super::steer`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::packet::{checksum, fold, transport_of, word, TCP, UDP};

/// sizeof(struct virtio_net_hdr)
pub const HDR: usize = 10;
/// Linux's SOL_PACKET option that adds the header
const PACKET_VNET_HDR: libc::c_int = 15;
const F_NEEDS_CSUM: u8 = 1;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
/// VIRTIO_NET_HDR_GSO_UDP: UDP fragmentation offload
const GSO_UDP: u8 = 3;
/// The largest TCP header (with options), which each segment may carry.
const MAX_TCP_HEADER: usize = 60;
/// At most this many peers' MSS are kept (past it, the link's MTU decides).
const MAX_PEERS: usize = 4096;
/// The length of an Ethernet header, which the kernel puts before the IP
/// packet (offsets in the header count from it)
pub(super) const ETHER: usize = 14;

/// Sets packet socket `fd`'s SOL_PACKET option `name` (an int) to
/// `value`; whether the kernel took it.
pub fn packet_option(fd: BorrowedFd<'_>, name: libc::c_int, value: libc::c_int) -> bool {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` is a valid c_int for the call's duration, `len` its size
    let r = unsafe { libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, name, (&raw const value).cast(), len) };
    r == 0
}

/// Turns the header on for packet socket `fd` (before it is bound);
/// whether the kernel took it.
pub fn enable(fd: BorrowedFd<'_>) -> bool {
    packet_option(fd, PACKET_VNET_HDR, 1)
}

/// A connection as the wire sees it: the peer's address and port, ours.
type Conn = (IpAddr, u16, u16);

/// The MSS each peer announced in its SYN, and what SYNs' MSS is raised
/// to.
#[derive(Debug)]
pub struct Peers {
    mss: HashMap<Conn, u16>,
    /// for IPv4 and IPv6: a segment of it, with the largest TCP header,
    /// fills an IP packet, and fits the link's largest GSO packet with its
    /// Ethernet header (a longer one, the kernel would cut in software
    /// before the device, copying every byte: `gso_max_size`, 64 KiB on a
    /// veth, counts the Ethernet header and must not be reached)
    big: [u16; 2],
}

impl Default for Peers {
    /// For a link of Linux's default GSO size (64 KiB).
    fn default() -> Peers {
        Peers::new(65536)
    }
}

/// Where an IP packet's TCP header is, and its addresses.
fn tcp_of(p: &[u8]) -> Option<(usize, IpAddr, IpAddr)> {
    transport_of(p, TCP)
}

/// The header for a UDP datagram `p` longer than the link's `mtu`: the
/// kernel cuts it into IP fragments (UFO, which Linux still does in
/// software for packet sockets and tun), each a multiple of 8 bytes that
/// fits the link with its IP header (and IPv6's fragment header), and
/// makes the checksum over the whole datagram. None: not UDP.
fn fragmented(p: &[u8], mtu: usize) -> Option<[u8; HDR]> {
    let (t, src, _) = transport_of(p, UDP)?;
    let room = mtu.saturating_sub(t + if src.is_ipv6() { 8 } else { 0 }) & !7;
    if room == 0 {
        return None;
    }
    let mut h = [0u8; HDR];
    h[0] = F_NEEDS_CSUM;
    h[1] = GSO_UDP;
    h[4..6].copy_from_slice(&(room as u16).to_le_bytes());
    h[6..8].copy_from_slice(&((ETHER + t) as u16).to_le_bytes());
    // the UDP checksum's offset in its header
    h[8..10].copy_from_slice(&6u16.to_le_bytes());
    Some(h)
}

impl Peers {
    /// For a link whose GSO packets are shorter than `gso_max_size`.
    pub fn new(gso_max_size: u32) -> Peers {
        let big = |ip: usize| {
            let packet = (gso_max_size as usize).saturating_sub(1 + ETHER).min(65535);
            packet.saturating_sub(ip + MAX_TCP_HEADER) as u16
        };
        Peers { mss: HashMap::new(), big: [big(20), big(40)] }
    }

    /// Notes the MSS of a SYN that came in (`p`, an IP packet) and raises it.
    pub fn clamp_syn(&mut self, p: &mut [u8]) {
        let Some((t, src, _)) = tcp_of(p) else { return };
        if p[t + 13] & 0x02 == 0 {
            return;
        }
        let thl = (usize::from(p[t + 12] >> 4) * 4).min(p.len() - t);
        let mut o = t + 20;
        while o + 1 < t + thl {
            match p[o] {
                0 => break,
                1 => o += 1,
                2 if p[o + 1] == 4 && o + 4 <= t + thl => {
                    let theirs = u16::from_be_bytes([p[o + 2], p[o + 3]]);
                    if self.mss.len() >= MAX_PEERS {
                        self.mss.clear();
                    }
                    self.mss.insert((src, word(p, t), word(p, t + 2)), theirs);
                    let big = self.big[usize::from(src.is_ipv6())];
                    if big > theirs {
                        p[o + 2..o + 4].copy_from_slice(&big.to_be_bytes());
                    }
                    return;
                }
                _ => o += usize::from(p[o + 1]).max(2),
            }
        }
    }

    /// The virtio-net header for sending `p` (an IP packet) on a link of
    /// `mtu`: for a TCP segment, the kernel to finish its checksum (whose
    /// field it sets to the pseudo-header's sum), and to cut it if it is
    /// longer than the link's MTU (GSO); for a UDP datagram longer than the
    /// MTU, to fragment it ([`fragmented`]); none needed for any other
    /// packet that fits. None: the packet cannot go (too long, neither TCP
    /// nor UDP).
    pub fn header(&self, p: &mut [u8], mtu: usize) -> Option<[u8; HDR]> {
        let Some((t, src, dst)) = tcp_of(p) else {
            return match p.len() <= mtu {
                true => Some([0; HDR]),
                false => fragmented(p, mtu),
            };
        };
        let thl = usize::from(p[t + 12] >> 4) * 4;
        let theirs = self.mss.get(&(dst, word(p, t + 2), word(p, t))).copied().unwrap_or(u16::MAX);
        // (their MSS counts no TCP options; each segment carries ours)
        let size = usize::from(theirs).saturating_sub(thl.saturating_sub(20)).min(mtu.saturating_sub(t + thl));
        if p.len() > mtu && size == 0 {
            return None;
        }
        let tcp_len = p.len() - t;
        let addrs = u32::from(checksum(&p[if src.is_ipv4() { 12..20 } else { 8..40 }]));
        p[t + 16..t + 18].copy_from_slice(&fold(6 + tcp_len as u32 + addrs).to_be_bytes());
        let mut h = [0u8; HDR];
        h[0] = F_NEEDS_CSUM;
        h[2..4].copy_from_slice(&((ETHER + t + thl) as u16).to_le_bytes());
        h[6..8].copy_from_slice(&((ETHER + t) as u16).to_le_bytes());
        h[8..10].copy_from_slice(&16u16.to_le_bytes());
        if p.len() > mtu {
            h[1] = if src.is_ipv4() { GSO_TCPV4 } else { GSO_TCPV6 };
            h[4..6].copy_from_slice(&(size as u16).to_le_bytes());
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP packet from `src` to `dst` (ports 40000 → 80), with
    /// `options` and `payload` bytes, SYN if `syn`.
    fn tcp4(src: [u8; 4], dst: [u8; 4], syn: bool, options: &[u8], payload: usize) -> Vec<u8> {
        let thl = 20 + options.len();
        let len = 20 + thl + payload;
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[9] = 6;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[32] = ((thl / 4) as u8) << 4;
        p[33] = if syn { 0x02 } else { 0x10 };
        p[40..40 + options.len()].copy_from_slice(options);
        p
    }

    #[test]
    fn a_syns_mss_is_raised_and_kept_for_the_segments_back() {
        let mut peers = Peers::default();
        let (peer, us) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        // NOP, NOP, MSS 1400, NOP, NOP
        let mut syn = tcp4(peer, us, true, &[1, 1, 2, 4, 0x05, 0x78, 1, 1], 0);
        peers.clamp_syn(&mut syn);
        // 64 KiB less one, the Ethernet header, IPv4's and the largest TCP header
        assert_eq!(u16::from_be_bytes([syn[44], syn[45]]), 65535 - 14 - 20 - 60);
        // a 20 000-byte segment back to the peer (its ports the other way round)
        let mut seg = tcp4(us, peer, false, &[], 20_000);
        seg[20..22].copy_from_slice(&80u16.to_be_bytes());
        seg[22..24].copy_from_slice(&40000u16.to_be_bytes());
        let h = peers.header(&mut seg, 1500).expect("a GSO header");
        assert_eq!(h[0], F_NEEDS_CSUM);
        assert_eq!(h[1], GSO_TCPV4);
        assert_eq!(u16::from_le_bytes([h[2], h[3]]), 14 + 40, "headers' length");
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 1400, "cut to the peer's MSS");
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), 14 + 20, "checksum start");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]), 16);
        // the pseudo-header's sum: addresses, protocol, TCP length
        let sum: u32 = [0x0a00u32, 0x0002, 0x0a00, 0x0001, 6, 20 + 20_000].iter().sum();
        assert_eq!(u16::from_be_bytes([seg[36], seg[37]]), sum as u16);
    }

    #[test]
    fn the_raised_mss_fits_the_links_gso_size() {
        // a link whose GSO packets stay below 16 KiB: Ethernet, IPv4 and
        // the largest TCP header fit with a segment of the raised MSS
        let mut peers = Peers::new(16384);
        let mut syn = tcp4([10, 0, 0, 1], [10, 0, 0, 2], true, &[2, 4, 0x05, 0xb4], 0);
        peers.clamp_syn(&mut syn);
        let big = u16::from_be_bytes([syn[42], syn[43]]);
        assert_eq!(usize::from(big) + 14 + 20 + 60, 16383);
        // one below the peer's own leaves it as it was
        let mut peers = Peers::new(1400);
        let mut syn = tcp4([10, 0, 0, 1], [10, 0, 0, 2], true, &[2, 4, 0x05, 0xb4], 0);
        peers.clamp_syn(&mut syn);
        assert_eq!(u16::from_be_bytes([syn[42], syn[43]]), 1460);
    }

    #[test]
    fn packets_that_fit_need_no_offload_and_long_icmp_cannot_go() {
        let peers = Peers::default();
        // a short TCP segment: its checksum left to the kernel, not cut
        let mut small = tcp4([10, 0, 0, 2], [10, 0, 0, 1], false, &[], 100);
        let h = peers.header(&mut small, 1500).expect("a header");
        assert_eq!((h[0], h[1], u16::from_le_bytes([h[4], h[5]])), (F_NEEDS_CSUM, 0, 0));
        let mut short_udp = small.clone();
        short_udp[9] = 17;
        assert_eq!(peers.header(&mut short_udp, 1500), Some([0; HDR]));
        // a long ICMP packet: neither TCP nor UDP, cannot go
        let mut icmp = tcp4([10, 0, 0, 2], [10, 0, 0, 1], false, &[], 3000);
        icmp[9] = 1;
        assert_eq!(peers.header(&mut icmp, 1500), None);
        // with no SYN seen, the link's MTU decides
        let mut seg = tcp4([10, 0, 0, 2], [10, 0, 0, 1], false, &[], 9000);
        let h = peers.header(&mut seg, 1500).expect("a GSO header");
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 1460);
    }

    #[test]
    fn a_long_datagram_goes_for_the_kernel_to_fragment() {
        let mut v4 = vec![0u8; 3000];
        v4[0] = 0x45;
        v4[9] = UDP;
        let h = Peers::default().header(&mut v4, 1500).expect("it goes");
        assert_eq!((h[0], h[1]), (F_NEEDS_CSUM, GSO_UDP));
        // 1480 bytes of each fragment's 1500 are the datagram's
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 1480);
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), 14 + 20);
        assert_eq!(u16::from_le_bytes([h[8], h[9]]), 6);
        let mut v6 = vec![0u8; 3000];
        v6[0] = 0x60;
        v6[6] = UDP;
        let h = Peers::default().header(&mut v6, 1500).expect("it goes");
        // 40 bytes of IPv6 header and 8 of fragment header, in steps of 8
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 1448);
        // one that fits needs nothing
        assert_eq!(Peers::default().header(&mut v4[..1000].to_vec(), 1500), Some([0; HDR]));
    }
}
