//! Reading and mending IP packets' headers, as the device's parts need
//! (offload, reassembly, ipmeta): where the transport header is, its ports,
//! and the one's complement sums.

use std::net::IpAddr;

pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMPV6: u8 = 58;

/// Where an IP packet's header of protocol `proto` (TCP, UDP, ICMP) is,
/// and its addresses; None if it is none (or an IPv6 one with extension
/// headers), or too short to hold it.
pub fn transport_of(p: &[u8], proto: u8) -> Option<(usize, IpAddr, IpAddr)> {
    let least = if proto == TCP { 20 } else { 8 };
    match p.first()? >> 4 {
        4 if p.get(9) == Some(&proto) => {
            let ihl = usize::from(p[0] & 0xf) * 4;
            let src = <[u8; 4]>::try_from(p.get(12..16)?).ok()?;
            let dst = <[u8; 4]>::try_from(p.get(16..20)?).ok()?;
            (p.len() >= ihl + least).then_some((ihl, IpAddr::from(src), IpAddr::from(dst)))
        }
        6 if p.get(6) == Some(&proto) => {
            let src = <[u8; 16]>::try_from(p.get(8..24)?).ok()?;
            let dst = <[u8; 16]>::try_from(p.get(24..40)?).ok()?;
            (p.len() >= 40 + least).then_some((40, IpAddr::from(src), IpAddr::from(dst)))
        }
        _ => None,
    }
}

/// The 16-bit word at `at` (a port, an identifier), as the wire has it.
pub fn word(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

/// A 32-bit sum of 16-bit words folded to 16 bits.
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The one's complement sum of `b` (16-bit words).
pub fn checksum(b: &[u8]) -> u16 {
    fold(b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))).sum())
}

/// Makes the checksum of IPv4 header `h` (all of it) again.
pub fn fill_ipv4_checksum(h: &mut [u8]) {
    h[10..12].fill(0);
    let sum = !checksum(h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
}
