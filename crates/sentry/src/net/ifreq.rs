//! The interface ioctls (SIOCGIFCONF, SIOCGIFINDEX, SIOCGIFNAME,
//! SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFMTU, SIOCGIFHWADDR) answered from the
//! sandbox's own list of interfaces: the loopback and the pod's interface
//! the netstack took. The kernel would answer them in the network
//! namespace of the socket they are made on, which for the Sentry's
//! sockets (the netstack's socketpairs, the app's unix sockets, which
//! glibc's if_nametoindex uses) is the Sentry's own, not the sandbox's.

use std::net::Ipv4Addr;

use nix::errno::Errno;

use super::pod::Pod;

const SIOCGIFNAME: u64 = 0x8910;
/// SIOCGIFCONF: the interfaces' IPv4 addresses (a struct ifconf)
pub const SIOCGIFCONF: u64 = 0x8912;
const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCGIFADDR: u64 = 0x8915;
const SIOCGIFMTU: u64 = 0x8921;
const SIOCGIFHWADDR: u64 = 0x8927;
const SIOCGIFINDEX: u64 = 0x8933;

/// The interface ioctls, all of which read a struct ifreq (SIOCGIFCONF a
/// struct ifconf) and write one back.
pub const REQUESTS: &[u64] =
    &[SIOCGIFNAME, SIOCGIFCONF, SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFMTU, SIOCGIFHWADDR, SIOCGIFINDEX];

/// sizeof(struct ifreq) on 64-bit Linux
pub const IFREQ: usize = 40;
/// sizeof(struct ifconf): an int, padding, a pointer
pub const IFCONF: usize = 16;
/// IFNAMSIZ
const NAME: usize = 16;
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

/// One interface as these ioctls show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// its index
    pub index: u32,
    /// its name
    pub name: String,
    /// IFF_* (the low 16 bits, what SIOCGIFFLAGS carries)
    pub flags: u16,
    /// its MTU
    pub mtu: u32,
    /// the hardware address's type (ARPHRD_*) and the address
    pub hw: (u16, [u8; 6]),
    /// its first IPv4 address
    pub v4: Option<Ipv4Addr>,
}

/// The sandbox's interfaces: the loopback, and the pod's if the stack has it.
pub fn of_stack(pod: Option<&Pod>) -> Vec<Iface> {
    let up = (libc::IFF_UP | libc::IFF_RUNNING) as u16;
    let mut all = vec![Iface {
        index: super::LO_INDEX,
        name: "lo".into(),
        flags: up | libc::IFF_LOOPBACK as u16,
        mtu: 65536,
        hw: (ARPHRD_LOOPBACK, [0; 6]),
        v4: Some(Ipv4Addr::LOCALHOST),
    }];
    if let Some(p) = pod {
        all.push(Iface {
            index: p.index,
            name: p.name.clone(),
            flags: up | (libc::IFF_BROADCAST | libc::IFF_MULTICAST) as u16,
            mtu: p.mtu,
            hw: (ARPHRD_ETHER, p.mac),
            v4: p.addrs.iter().find_map(|c| match c.ip {
                std::net::IpAddr::V4(a) => Some(a),
                std::net::IpAddr::V6(_) => None,
            }),
        });
    }
    all
}

/// A struct sockaddr_in of `a` (16 bytes).
fn sockaddr_in(a: Ipv4Addr) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    b[4..8].copy_from_slice(&a.octets());
    b
}

/// Answers `request` (one of [`REQUESTS`] but SIOCGIFCONF) on the caller's
/// struct ifreq `ifr`, in place.
pub fn answer(ifaces: &[Iface], request: u64, ifr: &mut [u8; IFREQ]) -> Result<(), Errno> {
    if request == SIOCGIFNAME {
        let index = i32::from_ne_bytes([ifr[16], ifr[17], ifr[18], ifr[19]]);
        let i = ifaces.iter().find(|i| i.index as i32 == index).ok_or(Errno::ENODEV)?;
        ifr[..NAME].fill(0);
        ifr[..i.name.len().min(NAME - 1)].copy_from_slice(&i.name.as_bytes()[..i.name.len().min(NAME - 1)]);
        return Ok(());
    }
    let end = ifr[..NAME].iter().position(|b| *b == 0).unwrap_or(NAME);
    let i = ifaces.iter().find(|i| i.name.as_bytes() == &ifr[..end]).ok_or(Errno::ENODEV)?;
    let data = &mut ifr[NAME..];
    match request {
        SIOCGIFINDEX => data[..4].copy_from_slice(&(i.index as i32).to_ne_bytes()),
        SIOCGIFFLAGS => data[..2].copy_from_slice(&i.flags.to_ne_bytes()),
        SIOCGIFMTU => data[..4].copy_from_slice(&(i.mtu as i32).to_ne_bytes()),
        SIOCGIFADDR => data[..16].copy_from_slice(&sockaddr_in(i.v4.ok_or(Errno::EADDRNOTAVAIL)?)),
        SIOCGIFHWADDR => {
            data[..16].fill(0);
            data[..2].copy_from_slice(&i.hw.0.to_ne_bytes());
            data[2..8].copy_from_slice(&i.hw.1);
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(())
}

/// SIOCGIFCONF: one struct ifreq (name, IPv4 address) per interface with an
/// IPv4 address, as many as `room` bytes hold.
pub fn conf(ifaces: &[Iface], room: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in ifaces.iter().filter(|i| i.v4.is_some()) {
        if out.len() + IFREQ > room {
            break;
        }
        let mut r = [0u8; IFREQ];
        r[..i.name.len().min(NAME - 1)].copy_from_slice(&i.name.as_bytes()[..i.name.len().min(NAME - 1)]);
        r[NAME..NAME + 16].copy_from_slice(&sockaddr_in(i.v4.unwrap_or(Ipv4Addr::UNSPECIFIED)));
        out.extend_from_slice(&r);
    }
    out
}

/// The bytes SIOCGIFCONF needs to list every interface.
pub fn conf_len(ifaces: &[Iface]) -> usize {
    ifaces.iter().filter(|i| i.v4.is_some()).count() * IFREQ
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_ifaces() -> Vec<Iface> {
        let mut all = of_stack(None);
        all.push(Iface {
            index: 7,
            name: "eth0".into(),
            flags: 0x1043,
            mtu: 1500,
            hw: (ARPHRD_ETHER, [2, 0, 0, 0, 0, 9]),
            v4: Some(Ipv4Addr::new(10, 77, 0, 2)),
        });
        all
    }

    fn named(name: &str) -> [u8; IFREQ] {
        let mut r = [0u8; IFREQ];
        r[..name.len()].copy_from_slice(name.as_bytes());
        r
    }

    #[test]
    fn answers_by_name_and_by_index() {
        let all = pod_ifaces();
        let mut r = named("eth0");
        answer(&all, SIOCGIFINDEX, &mut r).unwrap();
        assert_eq!(i32::from_ne_bytes(r[16..20].try_into().unwrap()), 7);
        let mut r = named("eth0");
        answer(&all, SIOCGIFADDR, &mut r).unwrap();
        assert_eq!(&r[16..24], &[2, 0, 0, 0, 10, 77, 0, 2]);
        let mut r = named("eth0");
        answer(&all, SIOCGIFHWADDR, &mut r).unwrap();
        assert_eq!(&r[16..24], &[1, 0, 2, 0, 0, 0, 0, 9]);
        let mut r = named("lo");
        answer(&all, SIOCGIFFLAGS, &mut r).unwrap();
        assert_eq!(u16::from_ne_bytes([r[16], r[17]]) & libc::IFF_LOOPBACK as u16, libc::IFF_LOOPBACK as u16);
        let mut r = [0u8; IFREQ];
        r[16..20].copy_from_slice(&7i32.to_ne_bytes());
        answer(&all, SIOCGIFNAME, &mut r).unwrap();
        assert_eq!(&r[..5], b"eth0\0");
        assert_eq!(answer(&all, SIOCGIFMTU, &mut named("docker0")), Err(Errno::ENODEV));
    }

    #[test]
    fn the_configuration_lists_what_fits() {
        let all = pod_ifaces();
        assert_eq!(conf_len(&all), 2 * IFREQ);
        let both = conf(&all, 100);
        assert_eq!(both.len(), 2 * IFREQ);
        assert_eq!(&both[IFREQ..IFREQ + 4], b"eth0");
        assert_eq!(conf(&all, IFREQ + 10).len(), IFREQ);
    }
}
