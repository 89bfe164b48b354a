//! Socket addresses as programs pass them (struct sockaddr_in and
//! sockaddr_in6, in the caller's memory) and as the netstack knows them.

use nix::errno::Errno;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv6Address};

/// A socket's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// AF_INET
    V4,
    /// AF_INET6 (IPv4 peers show as ::ffff:a.b.c.d)
    V6,
}

impl Family {
    /// The family of `domain` (socket(2)'s first argument), if it is one of ours.
    pub fn of(domain: i32) -> Option<Family> {
        match domain {
            libc::AF_INET => Some(Family::V4),
            libc::AF_INET6 => Some(Family::V6),
            _ => None,
        }
    }

    /// Its AF_* number.
    pub fn domain(self) -> i32 {
        match self {
            Family::V4 => libc::AF_INET,
            Family::V6 => libc::AF_INET6,
        }
    }
}

/// sizeof(struct sockaddr_in)
const IN_LEN: usize = 16;
/// sizeof(struct sockaddr_in6)
const IN6_LEN: usize = 28;

/// The longest address of a family (what a caller's buffer is read up to).
pub const MAX_LEN: usize = IN6_LEN;

/// An address and port, with an unspecified address as None (INADDR_ANY, ::).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    /// the address; None for "any"
    pub ip: Option<IpAddress>,
    /// the port (host order)
    pub port: u16,
}

impl Addr {
    /// "Any" address, port 0.
    pub const ANY: Addr = Addr { ip: None, port: 0 };

    /// The endpoint smoltcp knows.
    pub fn endpoint(self) -> Option<IpEndpoint> {
        self.ip.map(|ip| IpEndpoint::new(ip, self.port))
    }
}

impl From<IpEndpoint> for Addr {
    fn from(e: IpEndpoint) -> Addr {
        Addr { ip: (!e.addr.is_unspecified()).then_some(e.addr), port: e.port }
    }
}

/// Decodes `b` (a caller's sockaddr of `b.len()` bytes) for a socket of
/// `family`: EAFNOSUPPORT for another family, EINVAL for a short one. An
/// IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address.
pub fn decode(family: Family, b: &[u8]) -> Result<Addr, Errno> {
    let fam = b.get(..2).map(|f| u16::from_ne_bytes([f[0], f[1]]) as i32).ok_or(Errno::EINVAL)?;
    let port = b.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]])).ok_or(Errno::EINVAL)?;
    match (family, fam) {
        (Family::V4, libc::AF_INET) => {
            let a = b.get(4..8).ok_or(Errno::EINVAL)?;
            if b.len() < IN_LEN {
                return Err(Errno::EINVAL);
            }
            let ip = Ipv4Address::new(a[0], a[1], a[2], a[3]);
            Ok(Addr { ip: (!ip.is_unspecified()).then_some(IpAddress::Ipv4(ip)), port })
        }
        (Family::V6, libc::AF_INET6) => {
            if b.len() < IN6_LEN {
                return Err(Errno::EINVAL);
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[8..24]);
            let ip = Ipv6Address::from(octets);
            let ip = match std::net::Ipv6Addr::from(octets).to_ipv4_mapped() {
                Some(v4) => IpAddress::Ipv4(v4),
                None => IpAddress::Ipv6(ip),
            };
            Ok(Addr { ip: (!ip.is_unspecified()).then_some(ip), port })
        }
        // AF_UNSPEC on an IPv4 socket's bind is INADDR_ANY (Linux accepts it)
        (Family::V4, libc::AF_UNSPEC) => Ok(Addr { ip: None, port }),
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// Encodes `a` as a socket of `family` shows it (an IPv4 address on an
/// IPv6 socket as ::ffff:a.b.c.d).
pub fn encode(family: Family, a: Addr) -> Vec<u8> {
    match family {
        Family::V4 => {
            let mut b = vec![0u8; IN_LEN];
            b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port.to_be_bytes());
            if let Some(IpAddress::Ipv4(ip)) = a.ip {
                b[4..8].copy_from_slice(&ip.octets());
            }
            b
        }
        Family::V6 => {
            let mut b = vec![0u8; IN6_LEN];
            b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port.to_be_bytes());
            let octets = match a.ip {
                Some(IpAddress::Ipv6(ip)) => ip.octets(),
                Some(IpAddress::Ipv4(ip)) => ip.to_ipv6_mapped().octets(),
                None => [0; 16],
            };
            b[8..24].copy_from_slice(&octets);
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_mapped_ones_are_ipv4() {
        let v4 = Addr { ip: Some(IpAddress::v4(127, 0, 0, 1)), port: 8080 };
        assert_eq!(decode(Family::V4, &encode(Family::V4, v4)), Ok(v4));
        // on an IPv6 socket an IPv4 peer shows mapped, and reads back as IPv4
        let b = encode(Family::V6, v4);
        assert_eq!(b.len(), 28);
        assert_eq!(&b[8..24], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
        assert_eq!(decode(Family::V6, &b), Ok(v4));
        let any = encode(Family::V6, Addr::ANY);
        assert_eq!(decode(Family::V6, &any), Ok(Addr::ANY));
        assert_eq!(decode(Family::V4, &any), Err(Errno::EAFNOSUPPORT));
        assert_eq!(decode(Family::V4, &encode(Family::V4, v4)[..8]), Err(Errno::EINVAL));
    }
}
