//! The pod's interface, taken over for the netstack (`--network=sandbox`),
//! as runsc does: `create` finds the first Ethernet interface of the
//! sandbox's network namespace that has addresses, opens a packet socket
//! on it, notes its addresses and routes, and removes them from the host's
//! kernel, which then neither answers for the addresses nor routes for
//! them. The netstack answers for them from then on, over the packet
//! socket ([`super::device`]).

use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use netlink_packet_core::{NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::sys::socket::{bind, recv, send, socket, AddressFamily as Af, MsgFlags, SockFlag, SockProtocol, SockType};

use nix::errno::Errno;

use super::rtnl;

/// An address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// the address
    pub ip: IpAddr,
    /// its prefix length
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u32) {
            match ip {
                IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
                IpAddr::V6(a) => (u128::from(a), 128),
            }
        };
        let ((a, width), (b, width2)) = (bits(self.ip), bits(ip));
        if width != width2 {
            return false;
        }
        let host = width - u32::from(self.prefix).min(width);
        host >= 128 || (a >> host) == (b >> host)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = s.split_once('/').ok_or_else(|| format!("{s:?} is not address/prefix"))?;
        let ip: IpAddr = ip.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = prefix.parse().map_err(|e| format!("{s:?}: {e}"))?;
        if prefix > if ip.is_ipv4() { 32 } else { 128 } {
            return Err(format!("{s:?}: prefix too long"));
        }
        Ok(Cidr { ip, prefix })
    }
}

/// A route of the pod's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// where it leads
    pub dst: Cidr,
    /// through this router (None: on the link)
    pub gateway: Option<IpAddr>,
    /// the router is on the link though no address's network holds it
    /// (RTNH_F_ONLINK, as some CNI plugins set their default route)
    pub onlink: bool,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.gateway {
            Some(gw) => write!(f, "{} via {gw}{}", self.dst, if self.onlink { " onlink" } else { "" }),
            None => write!(f, "{}", self.dst),
        }
    }
}

impl std::str::FromStr for Route {
    type Err = String;
    fn from_str(s: &str) -> Result<Route, String> {
        let (rest, onlink) = match s.strip_suffix(" onlink") {
            Some(r) => (r, true),
            None => (s, false),
        };
        let (dst, gateway) = match rest.split_once(" via ") {
            Some((d, g)) => (d, Some(g.parse().map_err(|e| format!("{s:?}: {e}"))?)),
            None => (rest, None),
        };
        Ok(Route { dst: dst.parse()?, gateway, onlink })
    }
}

/// The pod's interface as taken over.
#[derive(Debug)]
pub struct Pod {
    /// packet sockets (SOCK_RAW, every protocol) bound to it, one per
    /// shard of the stack, one fanout group ([`super::steer`])
    pub packets: Vec<OwnedFd>,
    /// its index
    pub index: u32,
    /// its name ("eth0")
    pub name: String,
    /// its MAC address
    pub mac: [u8; 6],
    /// its MTU
    pub mtu: u32,
    /// the length its GSO packets stay below, Ethernet header included
    /// (IFLA_GSO_MAX_SIZE)
    pub gso_max_size: u32,
    /// the packet socket carries virtio-net headers (TCP segmentation offload)
    pub vnet: bool,
    /// the addresses it had
    pub addrs: Vec<Cidr>,
    /// the routes through it it had, most specific first
    pub routes: Vec<Route>,
}

/// Takes over the pod's interface of the network namespace `netns` (from
/// a thread that joins it): None if it has no Ethernet interface with an
/// address. Err says what failed.
pub fn take(netns: BorrowedFd<'_>) -> Result<Option<Pod>, String> {
    in_netns(netns, take_here)
}

/// Runs `f` on a thread that joins the network namespace `netns` (a
/// thread's network namespace is its own; the caller's stays as it is).
fn in_netns<T: Send>(netns: BorrowedFd<'_>, f: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
    std::thread::scope(|sc| {
        sc.spawn(|| {
            nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("join the pod's network namespace: {e}"))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err("the thread in the pod's network namespace ended".into()))
    })
}

fn take_here() -> Result<Option<Pod>, String> {
    let mut rtnl = Rtnl::open().map_err(|e| format!("open a route netlink socket: {e}"))?;
    let dump = |rtnl: &mut Rtnl, m: RouteNetlinkMessage, what: &str| {
        rtnl.ask(m, NLM_F_DUMP).map_err(|e| format!("list the network namespace's {what}: {e}"))
    };
    let links = dump(&mut rtnl, RouteNetlinkMessage::GetLink(LinkMessage::default()), "interfaces")?;
    let addrs = dump(&mut rtnl, RouteNetlinkMessage::GetAddress(AddressMessage::default()), "addresses")?;
    let ether = links.iter().filter_map(|m| match m {
        RouteNetlinkMessage::NewLink(l)
            if l.header.link_layer_type == LinkLayerType::Ether && !l.header.flags.contains(LinkFlags::Loopback) =>
        {
            Some(l)
        }
        _ => None,
    });
    let addr_msgs = |index: u32| -> Vec<AddressMessage> {
        addrs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => Some(a.clone()),
                _ => None,
            })
            .collect()
    };
    let ether: Vec<&LinkMessage> = ether.collect();
    let Some(link) = ether.iter().find(|l| !addr_msgs(l.header.index).is_empty()) else {
        if !ether.is_empty() {
            // (what a second sandbox joining a pod's namespace finds)
            tracing::warn!(
                "the network namespace's interfaces have no address (another sandbox's netstack may hold them): \
                 this sandbox has its loopback only"
            );
        }
        return Ok(None);
    };
    let index = link.header.index;
    let (mut name, mut mac, mut mtu, mut gso_max_size) = (String::new(), [0u8; 6], 1500, 65536);
    for a in &link.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(m) if m.len() == 6 => mac.copy_from_slice(m),
            LinkAttribute::Mtu(m) => mtu = *m,
            LinkAttribute::GsoMaxSize(g) => gso_max_size = *g,
            _ => {}
        }
    }
    let owned = addr_msgs(index);
    let cidrs: Vec<Cidr> = owned.iter().filter_map(cidr_of).collect();
    let mut routes = Vec::new();
    for m in dump(&mut rtnl, RouteNetlinkMessage::GetRoute(RouteMessage::default()), "routes")? {
        if let RouteNetlinkMessage::NewRoute(r) = m {
            routes.extend(route_of(&r, index).map(|route| (route, r)));
        }
    }
    let (packets, vnet) = packet_sockets(index).map_err(|e| format!("open a packet socket on {name}: {e}"))?;
    // the routes first: removing the last address takes the routes with it
    for (_, r) in &routes {
        match rtnl.ask(RouteNetlinkMessage::DelRoute(r.clone()), NLM_F_ACK) {
            // (one that went with another)
            Ok(_) | Err(Errno::ESRCH) => {}
            Err(e) => return Err(format!("remove a route of {name}: {e}")),
        }
    }
    for a in owned {
        rtnl.ask(RouteNetlinkMessage::DelAddress(a), NLM_F_ACK)
            .map_err(|e| format!("remove an address of {name}: {e}"))?;
    }
    let mut routes: Vec<Route> = routes.into_iter().map(|(r, _)| r).collect();
    routes.sort_by_key(|r| std::cmp::Reverse(r.dst.prefix));
    Ok(Some(Pod { packets, index, name, mac, mtu, gso_max_size, vnet, addrs: cidrs, routes }))
}

/// Gives interface `index` of the network namespace `netns` back the
/// addresses and routes [`take`] took from it (when its sandbox is gone,
/// for the next one in the same pod).
pub fn give_back(netns: BorrowedFd<'_>, index: u32, addrs: &[Cidr], routes: &[Route]) -> Result<(), String> {
    in_netns(netns, || {
        let mut rtnl = Rtnl::open().map_err(|e| format!("open a route netlink socket: {e}"))?;
        let create = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        for c in addrs {
            let mut a = AddressMessage::default();
            a.header.family = family(c.ip);
            a.header.prefix_len = c.prefix;
            a.header.index = index;
            a.header.scope = if is_link_local(c.ip) { AddressScope::Link } else { AddressScope::Universe };
            if c.ip.is_ipv4() {
                a.attributes.push(AddressAttribute::Local(c.ip));
            } else {
                // (usable at once: it was in use a moment ago)
                a.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            a.attributes.push(AddressAttribute::Address(c.ip));
            match rtnl.ask(RouteNetlinkMessage::NewAddress(a), create) {
                Ok(_) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(format!("give back address {c}: {e}")),
            }
        }
        for r in routes {
            let mut m = RouteMessage::default();
            m.header.address_family = family(r.dst.ip);
            m.header.destination_prefix_length = r.dst.prefix;
            m.header.table = RouteHeader::RT_TABLE_MAIN;
            m.header.kind = RouteType::Unicast;
            m.header.protocol = RouteProtocol::Boot;
            m.header.scope = if r.gateway.is_some() { RouteScope::Universe } else { RouteScope::Link };
            if r.onlink {
                m.header.flags = RouteFlags::Onlink;
            }
            if r.dst.prefix > 0 {
                m.attributes.push(RouteAttribute::Destination(RouteAddress::from(r.dst.ip)));
            }
            m.attributes.extend(r.gateway.map(|g| RouteAttribute::Gateway(RouteAddress::from(g))));
            m.attributes.push(RouteAttribute::Oif(index));
            match rtnl.ask(RouteNetlinkMessage::NewRoute(m), create) {
                // (an address brings its network's route back by itself)
                Ok(_) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(format!("give back route {r}: {e}")),
            }
        }
        Ok(())
    })
}

/// The netlink family of `ip`.
pub(super) fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// Whether `ip` is an IPv6 link-local address (fe80::/10).
pub fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// The address of a RTM_NEWADDR (its local one where it has two).
fn cidr_of(a: &AddressMessage) -> Option<Cidr> {
    let mut ip = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(l) => ip = Some(*l),
            AddressAttribute::Address(l) if ip.is_none() => ip = Some(*l),
            _ => {}
        }
    }
    Some(Cidr { ip: ip?, prefix: a.header.prefix_len })
}

/// A unicast route of the main table through interface `index`.
fn route_of(r: &RouteMessage, index: u32) -> Option<Route> {
    let h = &r.header;
    if h.kind != RouteType::Unicast {
        return None;
    }
    let (mut dst, mut gateway, mut oif, mut table) = (None, None, None, u32::from(h.table));
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Gateway(g) => gateway = ip_of(g),
            RouteAttribute::Oif(o) => oif = Some(*o),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if oif != Some(index) || table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let dst = match (dst, h.address_family) {
        (Some(ip), _) => ip,
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let onlink = h.flags.contains(RouteFlags::Onlink);
    Some(Route { dst: Cidr { ip: dst, prefix: h.destination_prefix_length }, gateway, onlink })
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The stack's shards: one per CPU, up to 4 (each runs a thread, and
/// connections are spread over them by their ports).
pub fn shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// Non-blocking packet sockets of every protocol, whole frames
/// (SOCK_RAW), bound to interface `index`, one per shard ([`shards`]) in
/// one fanout group ([`super::steer`]); and whether they carry virtio-net
/// headers ([`super::offload`]: SOCK_RAW only). One socket if the kernel
/// will not steer among several.
fn packet_sockets(index: u32) -> nix::Result<(Vec<OwnedFd>, bool)> {
    let mut fds = Vec::new();
    let mut vnet = true;
    for _ in 0..shards() {
        let (fd, v) = packet_socket(index)?;
        vnet &= v;
        fds.push(fd);
    }
    if let Err(e) = super::steer::group(&fds) {
        if fds.len() == 1 {
            tracing::debug!("no IPv4 reassembly before the packet socket ({e}): fragmented datagrams are lost");
        } else {
            tracing::debug!("one shard: the packet sockets cannot be steered ({e})");
            fds.truncate(1);
            let _ = super::steer::group(&fds);
        }
    }
    Ok((fds, vnet))
}

/// A non-blocking packet socket of every protocol, whole frames
/// (SOCK_RAW), bound to interface `index`; and whether it carries
/// virtio-net headers.
fn packet_socket(index: u32) -> nix::Result<(OwnedFd, bool)> {
    let fd = socket(Af::Packet, SockType::Raw, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, SockProtocol::EthAll)?;
    let vnet = super::offload::enable(fd.as_fd());
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &super::device::link_addr(index, libc::ETH_P_ALL as u16, None))?;
    // the kernel's copy of each packet the stack sends, which would come
    // back to this socket to be read and skipped: never made
    if !ignore_outgoing(fd.as_fd()) {
        tracing::debug!("the packet socket sees the stack's own packets too");
    }
    // bursts from a fast peer wait here while the stack catches up
    let _ = nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
    Ok((fd, vnet))
}

/// PACKET_IGNORE_OUTGOING (Linux 4.20) on packet socket `fd`: whether the
/// kernel took it.
fn ignore_outgoing(fd: BorrowedFd<'_>) -> bool {
    const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
    super::offload::packet_option(fd, PACKET_IGNORE_OUTGOING, 1)
}

/// A route netlink socket to the kernel of this thread's network namespace.
struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

impl Rtnl {
    fn open() -> nix::Result<Rtnl> {
        let fd = socket(Af::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkRoute)?;
        Ok(Rtnl { fd, seq: 0 })
    }

    /// Sends `m` (a request with `flags`) and collects the answer: a
    /// dump's messages, or nothing for an acknowledged change. Err is the
    /// kernel's error (EBADMSG: an answer that did not parse).
    fn ask(&mut self, m: RouteNetlinkMessage, flags: u16) -> Result<Vec<RouteNetlinkMessage>, Errno> {
        self.seq += 1;
        let req = rtnl::encode(NetlinkPayload::InnerMessage(m), NLM_F_REQUEST | flags, self.seq, 0);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
        send(fd, &req, MsgFlags::empty())?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = recv(fd, &mut buf, MsgFlags::empty())?;
            for msg in rtnl::decode_all(&buf[..n]).map_err(|_| Errno::EBADMSG)? {
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(code) => Err(Errno::from_raw(-code.get())),
                            None => Ok(out),
                        }
                    }
                    NetlinkPayload::InnerMessage(i) => out.push(i),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cidr, Route};

    #[test]
    fn routes_and_addresses_read_back_as_written() {
        for text in ["0.0.0.0/0 via 169.254.1.1 onlink", "10.0.0.0/24", "::/0 via fe80::1", "169.254.1.1/32"] {
            let r: Route = text.parse().unwrap();
            assert_eq!(r.to_string(), text);
        }
        let r: Route = "0.0.0.0/0 via 169.254.1.1 onlink".parse().unwrap();
        assert!(r.onlink && r.gateway.is_some());
        assert!("10.0.0.1/33".parse::<Cidr>().is_err());
        assert!("10.0.0.1".parse::<Cidr>().is_err());
        let c: Cidr = "10.1.2.3/16".parse().unwrap();
        assert!(c.contains("10.1.200.1".parse().unwrap()) && !c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
    }
}
