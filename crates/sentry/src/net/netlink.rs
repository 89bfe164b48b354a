//! The sandbox's route netlink, answered from the stack: its interfaces
//! (the loopback, the pod's), their addresses and its routes, as `ip`,
//! glibc's getaddrinfo and if_nameindex ask for them. Every change
//! (RTM_NEW*, DEL*, SET*) is refused with EPERM: nothing a sandboxed
//! program asks of netlink reaches the host's kernel.

use std::net::IpAddr;
use std::num::NonZeroI32;

use netlink_packet_core::{DoneMessage, ErrorMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_MULTIPART};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage, State};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::pod::{family, Cidr, Pod};
use super::rtnl;
use super::LO_INDEX;

const RTM_GETLINK: u16 = 18;
const RTM_GETADDR: u16 = 22;
const RTM_GETROUTE: u16 = 26;
/// The first route netlink message type (RTM_BASE).
const RTM_BASE: u16 = 16;
const NLM_F_ACK: u16 = 4;

/// The answer to one datagram `request` an app sent on a netlink socket of
/// port `port`: the datagrams to hand it, in order.
pub fn answer(pod: Option<&Pod>, port: u32, request: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = request;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let len = if len < 16 || len > rest.len() { rest.len() } else { len };
        let msg = &rest[..len];
        let typ = u16::from_ne_bytes([msg[4], msg[5]]);
        let flags = u16::from_ne_bytes([msg[6], msg[7]]);
        let seq = u32::from_ne_bytes([msg[8], msg[9], msg[10], msg[11]]);
        let reply = Reply { port, seq, header: msg[..16].to_vec() };
        // (NLMSG_NOOP, DONE, ERROR, OVERRUN and such: nothing to answer)
        if typ >= RTM_BASE {
            out.extend(one(pod, &reply, typ, flags, &msg[16..]));
        }
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    out
}

/// Who and what an answer answers.
struct Reply {
    port: u32,
    seq: u32,
    /// the request's header, for an error's echo of it
    header: Vec<u8>,
}

impl Reply {
    fn frame(&self, payload: NetlinkPayload<RouteNetlinkMessage>, flags: u16) -> Vec<u8> {
        rtnl::encode(payload, flags, self.seq, self.port)
    }

    /// NLMSG_ERROR with `errno`, or an acknowledgement for 0.
    fn error(&self, errno: i32) -> Vec<u8> {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(-errno);
        e.header = self.header.clone();
        self.frame(NetlinkPayload::Error(e), 0)
    }

    /// A dump: its messages in one datagram, then NLMSG_DONE.
    fn dump(&self, messages: Vec<RouteNetlinkMessage>) -> Vec<Vec<u8>> {
        let mut first = Vec::new();
        for m in messages {
            first.extend(self.frame(NetlinkPayload::InnerMessage(m), NLM_F_MULTIPART));
        }
        let done = self.frame(NetlinkPayload::Done(DoneMessage::default()), NLM_F_MULTIPART);
        if first.is_empty() {
            vec![done]
        } else {
            vec![first, done]
        }
    }
}

fn one(pod: Option<&Pod>, r: &Reply, typ: u16, flags: u16, body: &[u8]) -> Vec<Vec<u8>> {
    let family = body.first().copied().unwrap_or(0);
    let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    let wanted = |f: &AddressFamily| family == 0 || u8::from(*f) == family;
    match typ {
        _ if (typ - RTM_BASE) % 4 != 2 => vec![r.error(libc::EPERM)],
        RTM_GETLINK if dump => r.dump(links(pod).into_iter().map(RouteNetlinkMessage::NewLink).collect()),
        RTM_GETLINK => {
            let index = body.get(4..8).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
            let name = link_name(body);
            let found = links(pod).into_iter().find(|l| {
                (index > 0 && l.header.index == index as u32)
                    || (index <= 0
                        && name.as_deref().is_some_and(|n| l.attributes.contains(&LinkAttribute::IfName(n.into()))))
            });
            match found {
                Some(l) => {
                    let mut out = vec![r.frame(NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)), 0)];
                    if flags & NLM_F_ACK != 0 {
                        out.push(r.error(0));
                    }
                    out
                }
                None => vec![r.error(libc::ENODEV)],
            }
        }
        RTM_GETADDR if dump => r.dump(
            addresses(pod)
                .into_iter()
                .filter(|a| wanted(&a.header.family))
                .map(RouteNetlinkMessage::NewAddress)
                .collect(),
        ),
        RTM_GETROUTE if dump => r.dump(
            routes(pod)
                .into_iter()
                .filter(|m| wanted(&m.header.address_family))
                .map(RouteNetlinkMessage::NewRoute)
                .collect(),
        ),
        // `ip route get`: the route one packet to the address would take
        RTM_GETROUTE => match attr(body, 12, RTA_DST).and_then(ip_of).map(|dst| route_to(pod, dst)) {
            Some(Ok(m)) => {
                let mut out = vec![r.frame(NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)), 0)];
                if flags & NLM_F_ACK != 0 {
                    out.push(r.error(0));
                }
                out
            }
            Some(Err(errno)) => vec![r.error(errno)],
            None => vec![r.error(libc::EINVAL)],
        },
        // neighbours, rules, qdiscs, netconf …: none to show
        _ if dump => r.dump(Vec::new()),
        _ => vec![r.error(libc::EOPNOTSUPP)],
    }
}

/// IFLA_IFNAME of an RTM_GETLINK's body (struct ifinfomsg, 16 bytes, then
/// attributes), if it names one.
fn link_name(body: &[u8]) -> Option<String> {
    let v = attr(body, 16, libc::IFLA_IFNAME)?;
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    Some(String::from_utf8_lossy(&v[..end]).into_owned())
}

/// RTA_DST, the destination attribute of an RTM_GETROUTE
const RTA_DST: u16 = 1;

/// The value of attribute `kind` of a request's body whose fixed header
/// is `header` bytes long.
fn attr(body: &[u8], header: usize, kind: u16) -> Option<&[u8]> {
    let mut attrs = body.get(header..)?;
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        if len < 4 || len > attrs.len() {
            return None;
        }
        if u16::from_ne_bytes([attrs[2], attrs[3]]) == kind {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    None
}

/// An address of 4 or 16 bytes.
fn ip_of(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// The route a packet to `dst` takes, as the kernel answers `ip route get`:
/// the interface, the gateway if any, and the source address. Err:
/// ENETUNREACH.
fn route_to(pod: Option<&Pod>, dst: IpAddr) -> Result<RouteMessage, i32> {
    let mut m = RouteMessage::default();
    m.header.address_family = family(dst);
    m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
    m.header.flags = netlink_packet_route::route::RouteFlags::Cloned;
    let own = pod.is_some_and(|p| p.addrs.iter().any(|c| c.ip == dst));
    let (index, gateway, table, src) = if dst.is_loopback() || own {
        m.header.kind = RouteType::Local;
        m.header.scope = RouteScope::Host;
        (LO_INDEX, None, 255, dst)
    } else {
        let p = pod.ok_or(libc::ENETUNREACH)?;
        let on_link = p.addrs.iter().find(|c| c.contains(dst)).map(|c| (None, c.ip));
        let routed = || {
            let r = p.routes.iter().find(|r| r.dst.contains(dst))?;
            let src = p.addrs.iter().find(|c| c.ip.is_ipv4() == dst.is_ipv4() && !super::pod::is_link_local(c.ip))?;
            Some((r.gateway, src.ip))
        };
        let (gateway, src) = on_link.or_else(routed).ok_or(libc::ENETUNREACH)?;
        m.header.kind = RouteType::Unicast;
        (p.index, gateway, u32::from(RouteHeader::RT_TABLE_MAIN), src)
    };
    m.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_MAIN);
    m.attributes.push(RouteAttribute::Table(table));
    m.attributes.push(RouteAttribute::Destination(RouteAddress::from(dst)));
    m.attributes.push(RouteAttribute::Oif(index));
    m.attributes.push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    m.attributes.extend(gateway.map(|g| RouteAttribute::Gateway(RouteAddress::from(g))));
    Ok(m)
}

/// The sandbox's interfaces: the loopback, and the pod's.
fn links(pod: Option<&Pod>) -> Vec<LinkMessage> {
    let up = LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp;
    let mut lo = LinkMessage::default();
    lo.header.index = LO_INDEX;
    lo.header.link_layer_type = LinkLayerType::Loopback;
    lo.header.flags = up | LinkFlags::Loopback;
    lo.attributes = vec![
        LinkAttribute::IfName("lo".into()),
        LinkAttribute::TxQueueLen(1000),
        LinkAttribute::OperState(State::Unknown),
        LinkAttribute::Mtu(65536),
        LinkAttribute::Qdisc("noqueue".into()),
        LinkAttribute::Address(vec![0; 6]),
        LinkAttribute::Broadcast(vec![0; 6]),
    ];
    let mut out = vec![lo];
    if let Some(p) = pod {
        let mut l = LinkMessage::default();
        l.header.index = p.index;
        l.header.link_layer_type = LinkLayerType::Ether;
        l.header.flags = up | LinkFlags::Broadcast | LinkFlags::Multicast;
        l.attributes = vec![
            LinkAttribute::IfName(p.name.clone()),
            LinkAttribute::TxQueueLen(1000),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::Mtu(p.mtu),
            LinkAttribute::Qdisc("noqueue".into()),
            LinkAttribute::Address(p.mac.to_vec()),
            LinkAttribute::Broadcast(vec![0xff; 6]),
        ];
        out.push(l);
    }
    out
}

/// The sandbox's addresses, with their interfaces.
fn addresses(pod: Option<&Pod>) -> Vec<AddressMessage> {
    let lo = [
        Cidr { ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), prefix: 8 },
        Cidr { ip: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), prefix: 128 },
    ];
    let of_lo = lo.iter().map(|c| (LO_INDEX, "lo", c));
    let of_pod = pod.into_iter().flat_map(|p| p.addrs.iter().map(move |c| (p.index, p.name.as_str(), c)));
    of_lo
        .chain(of_pod)
        .map(|(index, name, c)| {
            let mut a = AddressMessage::default();
            a.header.family = family(c.ip);
            a.header.prefix_len = c.prefix;
            a.header.flags = AddressHeaderFlags::Permanent;
            a.header.scope = match c.ip {
                ip if ip.is_loopback() => AddressScope::Host,
                ip if super::pod::is_link_local(ip) => AddressScope::Link,
                _ => AddressScope::Universe,
            };
            a.header.index = index;
            a.attributes.push(AddressAttribute::Address(c.ip));
            if let IpAddr::V4(v4) = c.ip {
                a.attributes.push(AddressAttribute::Local(c.ip));
                if c.prefix < 31 && !v4.is_loopback() {
                    a.attributes.push(AddressAttribute::Broadcast((u32::from(v4) | (u32::MAX >> c.prefix)).into()));
                }
                a.attributes.push(AddressAttribute::Label(name.into()));
            }
            a.attributes.push(AddressAttribute::Flags(AddressFlags::Permanent));
            // (valid and preferred "forever")
            let mut forever = CacheInfo::default();
            forever.ifa_preferred = u32::MAX;
            forever.ifa_valid = u32::MAX;
            a.attributes.push(AddressAttribute::CacheInfo(forever));
            a
        })
        .collect()
}

/// The main table's routes: the pod interface's.
fn routes(pod: Option<&Pod>) -> Vec<RouteMessage> {
    let Some(p) = pod else { return Vec::new() };
    p.routes
        .iter()
        .map(|route| {
            let mut m = RouteMessage::default();
            m.header.address_family = family(route.dst.ip);
            m.header.destination_prefix_length = route.dst.prefix;
            m.header.table = RouteHeader::RT_TABLE_MAIN;
            m.header.kind = RouteType::Unicast;
            m.attributes.push(RouteAttribute::Table(u32::from(RouteHeader::RT_TABLE_MAIN)));
            if route.dst.prefix > 0 {
                m.attributes.push(RouteAttribute::Destination(RouteAddress::from(route.dst.ip)));
            }
            match route.gateway {
                Some(gw) => {
                    m.header.protocol = RouteProtocol::Boot;
                    m.header.scope = RouteScope::Universe;
                    m.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gw)));
                }
                None => {
                    m.header.protocol = RouteProtocol::Kernel;
                    m.header.scope = RouteScope::Link;
                    let src = p.addrs.iter().find(|c| route.dst.contains(c.ip) && c.ip.is_ipv4());
                    if let Some(src) = src {
                        m.attributes.push(RouteAttribute::PrefSource(RouteAddress::from(src.ip)));
                    }
                }
            }
            m.attributes.push(RouteAttribute::Oif(p.index));
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request of `typ` with `flags` and a body of `body`.
    fn request(typ: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(((16 + body.len()) as u32).to_ne_bytes());
        m.extend(typ.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(7u32.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(body);
        m
    }

    #[test]
    fn a_link_dump_lists_the_loopback_then_ends() {
        let got = answer(None, 42, &request(RTM_GETLINK, 1 | NLM_F_DUMP, &[0; 16]));
        assert_eq!(got.len(), 2, "the links, then NLMSG_DONE");
        let links = rtnl::decode_all(&got[0]).unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!((links[0].header.sequence_number, links[0].header.port_number), (7, 42));
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) = &links[0].payload else {
            panic!("{:?}", links[0].payload)
        };
        assert!(l.attributes.contains(&LinkAttribute::IfName("lo".into())));
        let done = rtnl::decode_all(&got[1]).unwrap();
        assert!(matches!(done[0].payload, NetlinkPayload::Done(_)));
    }

    /// A pod: eth0 (index 7), 10.0.0.2/24, default via 10.0.0.1.
    fn pod() -> Pod {
        Pod {
            packets: vec![std::fs::File::open("/dev/null").unwrap().into()],
            index: 7,
            name: "eth0".into(),
            mac: [2, 0, 0, 0, 0, 2],
            mtu: 1500,
            gso_max_size: 65536,
            vnet: false,
            addrs: vec!["10.0.0.2/24".parse().unwrap()],
            routes: vec!["10.0.0.0/24".parse().unwrap(), "0.0.0.0/0 via 10.0.0.1".parse().unwrap()],
        }
    }

    /// `ip route get` of `dst`: the answer's route, or its error.
    fn route_get(pod: Option<&Pod>, dst: [u8; 4]) -> Result<RouteMessage, i32> {
        let mut body = vec![libc::AF_INET as u8, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        body.extend(8u16.to_ne_bytes());
        body.extend(RTA_DST.to_ne_bytes());
        body.extend(dst);
        let got = answer(pod, 1, &request(RTM_GETROUTE, 1, &body));
        match rtnl::decode_all(&got[0]).unwrap().remove(0).payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) => Ok(m),
            NetlinkPayload::Error(e) => Err(-e.code.map_or(0, |c| c.get())),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn ip_route_get_finds_the_gateway_the_interface_and_the_source() {
        let pod = pod();
        let m = route_get(Some(&pod), [192, 0, 2, 1]).unwrap();
        let gw = RouteAttribute::Gateway(RouteAddress::Inet([10, 0, 0, 1].into()));
        assert!(m.attributes.contains(&gw), "{m:?}");
        assert!(m.attributes.contains(&RouteAttribute::Oif(7)));
        assert!(m.attributes.contains(&RouteAttribute::PrefSource(RouteAddress::Inet([10, 0, 0, 2].into()))));
        // on the link: no gateway; its own address and the loopback: local, by lo
        let m = route_get(Some(&pod), [10, 0, 0, 9]).unwrap();
        assert!(!m.attributes.iter().any(|a| matches!(a, RouteAttribute::Gateway(_))), "{m:?}");
        let m = route_get(Some(&pod), [10, 0, 0, 2]).unwrap();
        assert_eq!((m.header.kind, m.attributes.contains(&RouteAttribute::Oif(LO_INDEX))), (RouteType::Local, true));
        assert_eq!(route_get(None, [192, 0, 2, 1]).unwrap_err(), libc::ENETUNREACH);
        assert!(route_get(None, [127, 0, 0, 1]).is_ok());
    }

    #[test]
    fn changes_are_refused_and_unknown_questions_unsupported() {
        for typ in [16u16 /* NEWLINK */, 20 /* NEWADDR */, 25 /* DELROUTE */, 19 /* SETLINK */] {
            let got = answer(None, 1, &request(typ, 1 | NLM_F_ACK, &[0; 16]));
            let m = rtnl::decode_all(&got[0]).unwrap();
            let NetlinkPayload::Error(e) = &m[0].payload else { panic!("{:?}", m[0].payload) };
            assert_eq!(e.code.map(|c| c.get()), Some(-libc::EPERM), "type {typ}");
        }
        // a neighbour dump is empty; a lone RTM_GETRULE is not answered
        assert_eq!(answer(None, 1, &request(30, 1 | NLM_F_DUMP, &[0; 12])).len(), 1);
        let got = answer(None, 1, &request(34, 1, &[0; 12]));
        let m = rtnl::decode_all(&got[0]).unwrap();
        let NetlinkPayload::Error(e) = &m[0].payload else { panic!() };
        assert_eq!(e.code.map(|c| c.get()), Some(-libc::EOPNOTSUPP));
    }
}
