//! Control messages of the stack's datagram sockets: those recvmsg hands
//! the app with each datagram ([`received`], as many as its buffer takes:
//! [`fitting`]), and those a sendmsg gives ([`Ancillary::parse`]), as Linux
//! reads and writes them (x86-64: struct cmsghdr is 16 bytes, each message
//! padded to 8).

use nix::errno::Errno;
use smoltcp::wire::{IpAddress, Ipv4Address, Ipv6Address};

use super::addr::Family;
use super::ipmeta::Marks;
use super::stack::Opts;
use super::udp::Came;

/// sizeof(struct cmsghdr)
const HDR: usize = 16;
/// The most control data a sendmsg may give (Linux's optmem_max: ENOBUFS past it).
pub const MAX_CONTROL: u64 = 128 * 1024;

/// What a sendmsg's control messages ask of a datagram: the source address
/// (IP_PKTINFO, IPV6_PKTINFO), hop limit and traffic class (IP_TTL, IP_TOS,
/// IPV6_HOPLIMIT, IPV6_TCLASS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ancillary {
    /// the source address to send from (one of the stack's)
    pub source: Option<IpAddress>,
    /// the hop limit and traffic class to send with
    pub marks: Marks,
}

impl Ancillary {
    /// What the control messages `control` of a sendmsg on a socket of
    /// family `socket` ask of a datagram to an address of family `to`
    /// (EINVAL for a malformed or unknown one, as Linux): SOL_SOCKET ones
    /// are taken and ignored (SCM_RIGHTS and SCM_CREDENTIALS mean nothing on
    /// an internet socket; priorities, transmit times and timestamping
    /// requests do nothing here) but SO_MARK, which needs CAP_NET_ADMIN;
    /// then those of the destination's protocol, IPPROTO_IP's or
    /// IPPROTO_IPV6's, and the others skipped (an IPv6 socket sending to a
    /// mapped IPv4 address takes IPPROTO_IP's, and an IPV6_PKTINFO of a
    /// mapped source, as Linux's udp_sendmsg does).
    pub fn parse(control: &[u8], socket: Family, to: Family) -> Result<Ancillary, Errno> {
        let mut anc = Ancillary::default();
        let mut at = 0;
        while at + HDR <= control.len() {
            let len = cmsg_len(control, at);
            if len < HDR || len > control.len() - at {
                return Err(Errno::EINVAL);
            }
            let level = i32::from_ne_bytes(control[at + 8..at + 12].try_into().unwrap_or([0; 4]));
            let kind = i32::from_ne_bytes(control[at + 12..at + 16].try_into().unwrap_or([0; 4]));
            anc.take(level, kind, &control[at + HDR..at + len], socket, to)?;
            at += len.next_multiple_of(8);
        }
        Ok(anc)
    }

    fn take(&mut self, level: i32, kind: i32, data: &[u8], socket: Family, to: Family) -> Result<(), Errno> {
        let int = || data.try_into().map(i32::from_ne_bytes).map_err(|_| Errno::EINVAL);
        let byte = |v: i32, least: i32| match v {
            -1 if least < 0 => Ok(None),
            0..=255 if v >= least => Ok(Some(v as u8)),
            _ => Err(Errno::EINVAL),
        };
        // struct in6_pktinfo: the source to use, an index
        let source6 = || {
            let a: [u8; 16] =
                data.get(..16).filter(|_| data.len() >= 20).and_then(|b| b.try_into().ok()).ok_or(Errno::EINVAL)?;
            Ok::<_, Errno>(Ipv6Address::from(a))
        };
        match (level, kind, to) {
            (libc::SOL_SOCKET, libc::SO_MARK, _) => return Err(Errno::EPERM),
            (
                libc::SOL_SOCKET,
                libc::SCM_RIGHTS | libc::SCM_CREDENTIALS | libc::SO_PRIORITY | libc::SO_TIMESTAMPING | libc::SCM_TXTIME,
                _,
            ) => {}
            (libc::SOL_SOCKET, ..) => return Err(Errno::EINVAL),
            (libc::IPPROTO_IP, libc::IP_PKTINFO, Family::V4) => {
                // struct in_pktinfo: index, the source to use, (ignored) a destination
                if data.len() != 12 {
                    return Err(Errno::EINVAL);
                }
                let spec: [u8; 4] = data.get(4..8).and_then(|b| b.try_into().ok()).ok_or(Errno::EINVAL)?;
                let spec = Ipv4Address::from(spec);
                self.source = (!spec.is_unspecified()).then_some(IpAddress::Ipv4(spec));
            }
            (libc::IPPROTO_IP, libc::IP_TTL, Family::V4) => self.marks.hop_limit = byte(int()?, 1)?,
            (libc::IPPROTO_IP, libc::IP_TOS, Family::V4) => {
                let v = match data.len() {
                    1 => i32::from(data[0]),
                    _ => int()?,
                };
                self.marks.tclass = byte(v, 0)?;
            }
            (libc::IPPROTO_IP, _, Family::V4) => return Err(Errno::EINVAL),
            // an IPv6 socket's datagram to a mapped IPv4 address: its source
            // may be given as a mapped one
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, Family::V4) if socket == Family::V6 => {
                let a = source6()?;
                self.source = match a.to_ipv4_mapped() {
                    Some(v4) => (!v4.is_unspecified()).then_some(IpAddress::Ipv4(v4)),
                    None => return Err(Errno::EINVAL),
                };
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, Family::V6) => {
                let a = source6()?;
                self.source = match a.to_ipv4_mapped() {
                    _ if a.is_unspecified() => None,
                    Some(v4) => Some(IpAddress::Ipv4(v4)),
                    None => Some(IpAddress::Ipv6(a)),
                };
            }
            (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, Family::V6) => self.marks.hop_limit = byte(int()?, -1)?,
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS, Family::V6) => self.marks.tclass = byte(int()?, -1)?,
            (libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, Family::V6) => {}
            (libc::IPPROTO_IPV6, _, Family::V6) => return Err(Errno::EINVAL),
            _ => {}
        }
        Ok(())
    }
}

/// The cmsg_len of the message at `at` in `control` (HDR bytes at least
/// there).
fn cmsg_len(control: &[u8], at: usize) -> usize {
    let len = u64::from_ne_bytes(control[at..at + 8].try_into().unwrap_or([0; 8]));
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// How many bytes of `control` (control messages, each padded to 8 bytes)
/// a buffer of `room` bytes takes, as Linux's put_cmsg fills one: whole
/// messages, the last of which need not have its padding; and whether all
/// of them fit.
pub fn fitting(control: &[u8], room: u64) -> (usize, bool) {
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    let mut given = 0;
    while given + HDR <= control.len() {
        let len = cmsg_len(control, given);
        if given + len > room || given + len > control.len() {
            return (given, false);
        }
        given = (given + len.next_multiple_of(8)).min(room).min(control.len());
    }
    (given, true)
}

/// The control messages a datagram that `came`, in on interface `index`,
/// carries for a socket of `family` with `opts`, in Linux's order, each a
/// struct cmsghdr padded to 8 bytes: its time of arrival (SO_TIMESTAMP,
/// SO_TIMESTAMPNS; now, for one whose arrival was not kept any more); for
/// an IPv6 socket IPV6_PKTINFO (struct in6_pktinfo, IPv4 as mapped); for
/// a datagram that came over IPv4, IP_PKTINFO (struct in_pktinfo), IP_TTL
/// (an int) and IP_TOS (a byte), whatever the socket's family; for one over
/// IPv6, IPV6_HOPLIMIT and IPV6_TCLASS (ints).
pub fn received(opts: &Opts, family: Family, came: &Came, index: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cmsg = |level: i32, kind: i32, data: &[u8]| {
        out.extend_from_slice(&(HDR + data.len()).to_ne_bytes());
        out.extend_from_slice(&level.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(8), 0);
    };
    if let Some(stamp) = opts.stamp {
        let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let at = came.arrival.map_or_else(now, |a| a.at);
        let fraction = if stamp.nanos { at.subsec_nanos() } else { at.subsec_micros() };
        let data = [at.as_secs().to_ne_bytes(), u64::from(fraction).to_ne_bytes()].concat();
        cmsg(libc::SOL_SOCKET, stamp.kind, &data);
    }
    if let (Family::V6, true, Some(to)) = (family, opts.pktinfo6, came.to) {
        let v6 = match to {
            IpAddress::Ipv4(v4) => v4.to_ipv6_mapped(),
            IpAddress::Ipv6(v6) => v6,
        };
        let data = [v6.octets().as_slice(), &index.to_ne_bytes()].concat();
        cmsg(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &data);
    }
    // (a ping socket's datagrams have no destination noted)
    let v4 = matches!(came.to.or(came.from.ip), Some(IpAddress::Ipv4(_)));
    if v4 {
        if let (true, Some(IpAddress::Ipv4(to))) = (opts.pktinfo, came.to) {
            let data = [index.to_ne_bytes(), to.octets(), to.octets()].concat();
            cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &data);
        }
        if let Some(a) = came.arrival {
            if opts.recv_ttl {
                cmsg(libc::IPPROTO_IP, libc::IP_TTL, &i32::from(a.hop_limit).to_ne_bytes());
            }
            if opts.recv_tos {
                cmsg(libc::IPPROTO_IP, libc::IP_TOS, &[a.tclass]);
            }
        }
    } else if let (Family::V6, Some(a)) = (family, came.arrival) {
        if opts.recv_hoplimit {
            cmsg(libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, &i32::from(a.hop_limit).to_ne_bytes());
        }
        if opts.recv_tclass {
            cmsg(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &i32::from(a.tclass).to_ne_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::addr::Addr;
    use crate::net::ipmeta::Arrival;

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let mut m =
            [(16 + data.len() as u64).to_ne_bytes().as_slice(), &level.to_ne_bytes(), &kind.to_ne_bytes(), data]
                .concat();
        m.resize(m.len().next_multiple_of(8), 0);
        m
    }

    #[test]
    fn sendmsgs_control_messages_are_read_as_linux_reads_them() {
        let pktinfo = [0u32.to_ne_bytes(), [127, 0, 0, 5], [0; 4]].concat();
        let control = [
            cmsg(libc::IPPROTO_IP, libc::IP_TTL, &7i32.to_ne_bytes()),
            cmsg(libc::IPPROTO_IP, libc::IP_TOS, &[0x28]),
            cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &pktinfo),
            // another level's: skipped; SCM_RIGHTS on an internet socket: ignored
            cmsg(libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, &1i32.to_ne_bytes()),
            cmsg(libc::SOL_SOCKET, libc::SCM_RIGHTS, &0i32.to_ne_bytes()),
        ]
        .concat();
        let anc = Ancillary::parse(&control, Family::V4, Family::V4).unwrap();
        assert_eq!(anc.marks, Marks { hop_limit: Some(7), tclass: Some(0x28) });
        assert_eq!(anc.source, Some(IpAddress::Ipv4(Ipv4Address::new(127, 0, 0, 5))));
        // a mapped IPv4 source of an IPv6 socket is the IPv4 one; -1 is the default
        let mapped = [std::net::Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped().octets().as_slice(), &[0; 4]].concat();
        let control = [
            cmsg(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &mapped),
            cmsg(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &(-1i32).to_ne_bytes()),
        ]
        .concat();
        let anc = Ancillary::parse(&control, Family::V6, Family::V4).unwrap();
        assert_eq!(anc.source, Some(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2))));
        assert_eq!(anc.marks, Marks::default());
        // an IPv6 socket's datagram to a mapped IPv4 address takes IPv4's
        // messages, and a source only as a mapped one
        let ttl = cmsg(libc::IPPROTO_IP, libc::IP_TTL, &7i32.to_ne_bytes());
        assert_eq!(Ancillary::parse(&ttl, Family::V6, Family::V4).unwrap().marks.hop_limit, Some(7));
        assert_eq!(Ancillary::parse(&ttl, Family::V6, Family::V6).unwrap().marks.hop_limit, None);
        let six = [Ipv6Address::LOCALHOST.octets().as_slice(), &[0; 4]].concat();
        let six = cmsg(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &six);
        assert_eq!(Ancillary::parse(&six, Family::V6, Family::V4), Err(Errno::EINVAL));
        // an IPv4 socket skips IPv6's
        assert_eq!(Ancillary::parse(&six, Family::V4, Family::V4), Ok(Ancillary::default()));
        let short = cmsg(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &mapped[..16]);
        assert_eq!(Ancillary::parse(&short, Family::V6, Family::V6), Err(Errno::EINVAL));
        for (bad, errno) in [
            (cmsg(libc::IPPROTO_IP, libc::IP_TTL, &0i32.to_ne_bytes()), Errno::EINVAL),
            (cmsg(libc::IPPROTO_IP, libc::IP_TTL, &[1]), Errno::EINVAL),
            (cmsg(libc::IPPROTO_IP, 99, &[]), Errno::EINVAL),
            (cmsg(libc::SOL_SOCKET, libc::SO_MARK, &1i32.to_ne_bytes()), Errno::EPERM),
            (cmsg(libc::SOL_SOCKET, 999, &[]), Errno::EINVAL),
            // struct in_pktinfo is 12 bytes, in6_pktinfo 20
            (cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &[0; 11]), Errno::EINVAL),
        ] {
            assert_eq!(Ancillary::parse(&bad, Family::V4, Family::V4), Err(errno));
        }
        // a length past the buffer, or shorter than the header
        let mut long = cmsg(libc::IPPROTO_IP, libc::IP_TTL, &7i32.to_ne_bytes());
        long[0] = 64;
        assert_eq!(Ancillary::parse(&long, Family::V4, Family::V4), Err(Errno::EINVAL));
        long[0] = 8;
        assert_eq!(Ancillary::parse(&long, Family::V4, Family::V4), Err(Errno::EINVAL));
    }

    #[test]
    fn control_messages_fit_as_linux_fits_them() {
        // IP_PKTINFO (12 bytes of data: 28, padded to 32)
        let one = cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &[0; 12]);
        assert_eq!(fitting(&one, 64), (32, true));
        // CMSG_LEN is room enough for the last one
        assert_eq!(fitting(&one, 28), (28, true));
        assert_eq!(fitting(&one, 20), (0, false));
        assert_eq!(fitting(&one, 0), (0, false));
        // two: the second does not fit
        let two = [one.clone(), cmsg(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &[0; 20])].concat();
        assert_eq!(fitting(&two, 40), (32, false));
        assert_eq!(fitting(&two, 68), (68, true));
        assert_eq!(fitting(&[], 0), (0, true));
    }

    #[test]
    fn a_datagrams_control_messages_come_in_linuxs_order() {
        let came = Came {
            from: Addr::ANY,
            to: Some(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2))),
            arrival: Some(Arrival { hop_limit: 33, tclass: 0x48, at: std::time::Duration::new(5, 123_456_789) }),
        };
        let opts = Opts {
            recv_ttl: true,
            recv_tos: true,
            pktinfo: true,
            stamp: Some(crate::net::stack::Stamp { kind: libc::SO_TIMESTAMP, nanos: false }),
            ..Default::default()
        };
        let got = received(&opts, Family::V4, &came, 2);
        let stamp = [5u64.to_ne_bytes(), 123_456u64.to_ne_bytes()].concat();
        let pktinfo = [2u32.to_ne_bytes(), [10, 0, 0, 2], [10, 0, 0, 2]].concat();
        let want = [
            cmsg(libc::SOL_SOCKET, libc::SO_TIMESTAMP, &stamp),
            cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &pktinfo),
            cmsg(libc::IPPROTO_IP, libc::IP_TTL, &33i32.to_ne_bytes()),
            cmsg(libc::IPPROTO_IP, libc::IP_TOS, &[0x48]),
        ]
        .concat();
        assert_eq!(got, want);
        // nothing asked, nothing told
        assert!(received(&Opts::default(), Family::V4, &came, 2).is_empty());
        // an IPv4 datagram on an IPv6 socket: IPV6_PKTINFO first, then
        // IPv4's own; no IPV6_HOPLIMIT for it
        let opts = Opts { pktinfo6: true, pktinfo: true, recv_ttl: true, recv_hoplimit: true, ..Default::default() };
        let mapped =
            [std::net::Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped().octets().as_slice(), &2u32.to_ne_bytes()].concat();
        let want = [
            cmsg(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &mapped),
            cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &pktinfo),
            cmsg(libc::IPPROTO_IP, libc::IP_TTL, &33i32.to_ne_bytes()),
        ]
        .concat();
        assert_eq!(received(&opts, Family::V6, &came, 2), want);
        // an IPv6 one: its hop limit and traffic class
        let six = Came {
            to: Some(IpAddress::Ipv6(Ipv6Address::LOCALHOST)),
            arrival: Some(Arrival { hop_limit: 3, tclass: 0x30, at: std::time::Duration::ZERO }),
            ..came
        };
        let opts = Opts { recv_hoplimit: true, recv_tclass: true, ..Default::default() };
        let want = [
            cmsg(libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, &3i32.to_ne_bytes()),
            cmsg(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &0x30i32.to_ne_bytes()),
        ]
        .concat();
        assert_eq!(received(&opts, Family::V6, &six, 1), want);
        // one whose arrival is not kept any more: its time is now's
        let lost = Came { arrival: None, ..came };
        let opts = Opts {
            stamp: Some(crate::net::stack::Stamp { kind: libc::SO_TIMESTAMPNS, nanos: true }),
            ..Default::default()
        };
        let got = received(&opts, Family::V4, &lost, 2);
        let secs = u64::from_ne_bytes(got[16..24].try_into().unwrap());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(now - secs <= 1, "{secs} against {now}");
    }
}
