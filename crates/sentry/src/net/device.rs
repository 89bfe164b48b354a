//! The stack's link: one smoltcp device of IP packets over the loopback
//! and, once the pod's interface is taken over ([`super::pod`]), that
//! interface's packet socket.
//!
//! A packet to one of the stack's own addresses comes straight back in
//! (a queue the thread drains before it sleeps: [`Link::pending`]); any
//! other leaves through the pod's interface, to its next hop's MAC
//! address. The device finds those itself, with ARP for IPv4 and neighbor
//! discovery for IPv6, and answers both for the stack's addresses:
//! smoltcp sees IP packets only. Packets wait (a few, for a few seconds)
//! while their next hop's address is asked for.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::eventfd::EventFd;
use nix::sys::socket::{recvfrom, LinkAddr, MsgFlags, SockaddrLike};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr,
    NdiscNeighborFlags, NdiscRepr, RawHardwareAddress,
};

use super::offload::ETHER;
use super::pod::{Cidr, Pod, Route};

/// The largest IP packet (the loopback's MTU; Linux's lo says 65536).
const MAX_PACKET: usize = 65535;
/// At most this many packets wait for their next hop's address.
const MAX_WAITING: usize = 256;
/// How long a packet may wait for its next hop's address.
const WAIT: Duration = Duration::from_secs(3);
/// How often one address is asked for.
const ASK_EVERY: Duration = Duration::from_secs(1);
/// How long a next hop that did not answer counts as unreachable.
const FAILED_FOR: Duration = Duration::from_secs(20);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86DD;
const BROADCAST: [u8; 6] = [0xff; 6];

/// A link-layer socket address: interface `index`, protocol `proto` (host
/// order) and, to send to, a MAC address.
pub fn link_addr(index: u32, proto: u16, mac: Option<[u8; 6]>) -> LinkAddr {
    // SAFETY: all-zero bytes are a valid sockaddr_ll
    let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = proto.to_be();
    ll.sll_ifindex = index as i32;
    if let Some(mac) = mac {
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&mac);
    }
    sockaddr_ll(&ll)
}

fn sockaddr_ll(ll: &libc::sockaddr_ll) -> LinkAddr {
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the pointer is to a whole, initialized sockaddr_ll of AF_PACKET, `len` bytes long
    unsafe { LinkAddr::from_raw(std::ptr::from_ref(ll).cast(), Some(len)) }.expect("a sockaddr_ll is a LinkAddr")
}

/// The pod's interface, as the device drives it.
#[derive(Debug)]
struct Wire {
    fd: OwnedFd,
    index: u32,
    mac: [u8; 6],
    mtu: usize,
    addrs: Vec<Cidr>,
    routes: Vec<Route>,
    /// what the shards know of the link's neighbors
    known: Arc<Neighbors>,
    /// packets waiting for their next hop's address, oldest first
    waiting: VecDeque<(Instant, IpAddr, u16, Vec<u8>)>,
    buf: Vec<u8>,
    /// the socket may hold packets (no EAGAIN since epoll said it does)
    readable: bool,
    /// each packet comes and goes with a virtio-net header ([`super::offload`])
    vnet: bool,
    /// the MSS the wire's peers announced
    peers: super::offload::Peers,
    /// IPv6 packets that came in fragments, being put together
    reassembly: super::reassembly::Reassembly,
    /// the identification of the last IPv6 packet cut here
    fragment_id: std::cell::Cell<u32>,
}

/// What ARP and neighbor discovery found, shared by the shards' devices
/// (their answers come to shard 0: [`super::steer`]).
#[derive(Debug)]
pub struct Neighbors {
    known: Mutex<Known>,
    /// the shards' wake-ups: a packet of theirs may wait for an address
    /// another shard learned
    wakes: Vec<Arc<EventFd>>,
}

#[derive(Debug, Default)]
struct Known {
    macs: HashMap<IpAddr, [u8; 6]>,
    /// when each next hop not found yet was first and last asked for
    asked: HashMap<IpAddr, (Instant, Instant)>,
    /// next hops that did not answer for [`WAIT`], and since when (Linux's
    /// FAILED neighbours: connections to them fail with EHOSTUNREACH)
    failed: HashMap<IpAddr, Instant>,
}

impl Neighbors {
    /// For the shards woken by `wakes`.
    pub fn new(wakes: Vec<Arc<EventFd>>) -> Arc<Neighbors> {
        Arc::new(Neighbors { known: Mutex::new(Known::default()), wakes })
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mac(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self.known().macs.get(&ip).copied()
    }
}

/// One shard's device.
#[derive(Debug, Default)]
pub struct Link {
    /// the loopback's packets, to be received
    queue: VecDeque<Vec<u8>>,
    wire: Option<Wire>,
    /// where smoltcp writes each packet it sends
    tx: Vec<u8>,
    /// UDP packets' headers as they came, and as they are to go
    pub meta: super::ipmeta::Meta,
}

impl Link {
    /// A link over the loopback and, if given, the pod's interface (its
    /// packet socket is kept here; its addresses are the stack's).
    pub fn new(pod: Option<&Pod>, shard: usize, known: Arc<Neighbors>) -> std::io::Result<Link> {
        let wire = match pod {
            Some(p) => Some(Wire {
                fd: p.packets[shard].try_clone()?,
                index: p.index,
                mac: p.mac,
                mtu: p.mtu as usize,
                addrs: p.addrs.clone(),
                routes: p.routes.clone(),
                known,
                waiting: VecDeque::new(),
                buf: vec![0; super::offload::HDR + ETHER + MAX_PACKET + 1],
                readable: true,
                vnet: p.vnet,
                peers: super::offload::Peers::new(p.gso_max_size),
                reassembly: Default::default(),
                fragment_id: std::cell::Cell::new(std::process::id()),
            }),
            None => None,
        };
        Ok(Link { queue: VecDeque::new(), wire, tx: Vec::new(), meta: Default::default() })
    }

    /// Notes that the pod interface's socket has packets to read.
    pub fn wire_readable(&mut self) {
        if let Some(w) = &mut self.wire {
            w.readable = true;
        }
    }

    /// Whether packets wait to be received from the loopback.
    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Whether `ip` is one of the stack's own addresses (the loopback's
    /// network included).
    pub fn is_own(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || self.wire.as_ref().is_some_and(|w| w.addrs.iter().any(|c| c.ip == ip))
    }

    /// The MTU of the interface a packet to `ip` leaves by (the loopback's,
    /// Linux's 65536, for the stack's own addresses).
    pub fn mtu_to(&self, ip: IpAddr) -> usize {
        match &self.wire {
            Some(w) if !self.is_own(ip) => w.mtu,
            _ => MAX_PACKET + 1,
        }
    }

    /// Whether a packet to `ip` has somewhere to go.
    pub fn reaches(&self, ip: IpAddr) -> bool {
        self.is_own(ip) || ip.is_unspecified() || self.wire.as_ref().is_some_and(|w| w.next_hop(ip).is_some())
    }

    /// Whether the next hop towards `ip` did not answer when last asked for
    /// (for [`FAILED_FOR`] since).
    pub fn unreachable(&self, ip: IpAddr) -> bool {
        let Some(w) = &self.wire else { return false };
        let now = Instant::now();
        w.next_hop(ip).and_then(|hop| w.known.known().failed.get(&hop).copied()).is_some_and(|t| now - t < FAILED_FOR)
    }

    /// Sends the packets that waited for an address another shard learned.
    pub fn flush(&mut self) {
        if let Some(w) = &mut self.wire {
            if !w.waiting.is_empty() {
                w.flush();
            }
        }
    }

    /// Sends `packet` (an IP packet smoltcp made).
    fn send(&mut self, packet: &mut [u8]) {
        let Some(dst) = destination(packet) else { return };
        if self.is_own(dst) {
            self.queue.push_back(packet.to_vec());
        } else if let Some(w) = &mut self.wire {
            w.send(packet, dst, Instant::now());
        }
    }
}

/// An IP packet's destination.
fn destination(p: &[u8]) -> Option<IpAddr> {
    match p.first()? >> 4 {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(p.get(16..20)?).ok()?)),
        6 => Some(IpAddr::from(<[u8; 16]>::try_from(p.get(24..40)?).ok()?)),
        _ => None,
    }
}

impl Wire {
    /// The next hop towards `ip`: itself on the link, else a route's router.
    fn next_hop(&self, ip: IpAddr) -> Option<IpAddr> {
        if super::pod::is_link_local(ip) || self.addrs.iter().any(|c| c.contains(ip)) {
            return Some(ip);
        }
        self.routes.iter().find(|r| r.dst.contains(ip)).map(|r| r.gateway.unwrap_or(ip))
    }

    /// The MAC address of a broadcast or multicast destination.
    fn group_mac(&self, ip: IpAddr) -> Option<[u8; 6]> {
        match ip {
            IpAddr::V4(v4) if v4.is_broadcast() => Some(BROADCAST),
            IpAddr::V4(v4) if self.addrs.iter().any(|c| broadcast_of(c) == Some(v4)) => Some(BROADCAST),
            IpAddr::V4(v4) if v4.is_multicast() => {
                let o = v4.octets();
                Some([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
            }
            IpAddr::V6(v6) if v6.is_multicast() => {
                let o = v6.octets();
                Some([0x33, 0x33, o[12], o[13], o[14], o[15]])
            }
            _ => None,
        }
    }

    fn send(&mut self, packet: &mut [u8], dst: IpAddr, now: Instant) {
        let proto = if dst.is_ipv4() { ETH_P_IP } else { ETH_P_IPV6 };
        if let Some(mac) = self.group_mac(dst) {
            self.put(proto, mac, packet);
            return;
        }
        let Some(hop) = self.next_hop(dst) else { return };
        if let Some(mac) = self.known.mac(hop) {
            self.put(proto, mac, packet);
            return;
        }
        while self.waiting.front().is_some_and(|w| now - w.0 > WAIT) || self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
        }
        self.waiting.push_back((now, hop, proto, packet.to_vec()));
        self.ask(hop, now);
    }

    /// Writes one packet of `proto` to `mac`, in an Ethernet frame. A TCP
    /// segment or UDP datagram longer than the interface's MTU goes as one
    /// GSO packet, which the kernel cuts; any other is cut into fragments
    /// here ([`super::reassembly::split`]).
    fn put(&self, proto: u16, mac: [u8; 6], packet: &mut [u8]) {
        let vnet = match self.vnet {
            true => self.peers.header(packet, self.mtu),
            false => (packet.len() <= self.mtu).then_some([0; super::offload::HDR]),
        };
        match vnet {
            Some(h) => self.frame(proto, mac, &h, packet),
            // too long, and not the kernel's to cut: cut here
            None => {
                self.fragment_id.set(self.fragment_id.get().wrapping_add(1));
                for f in super::reassembly::split(packet, self.mtu, self.fragment_id.get()) {
                    self.frame(proto, mac, &[0; super::offload::HDR], &f);
                }
            }
        }
    }

    /// Writes `packet` in an Ethernet frame to `mac`, after virtio-net
    /// header `vnet` if the socket takes one.
    fn frame(&self, proto: u16, mac: [u8; 6], vnet: &[u8; super::offload::HDR], packet: &[u8]) {
        let to = link_addr(self.index, proto, Some(mac));
        let mut ether = [0u8; ETHER];
        ether[..6].copy_from_slice(&mac);
        ether[6..12].copy_from_slice(&self.mac);
        ether[12..].copy_from_slice(&proto.to_be_bytes());
        let vnet = if self.vnet { &vnet[..] } else { &[] };
        let iov = [std::io::IoSlice::new(vnet), std::io::IoSlice::new(&ether), std::io::IoSlice::new(packet)];
        let _ = nix::sys::socket::sendmsg(self.fd.as_raw_fd(), &iov, &[], MsgFlags::MSG_DONTWAIT, Some(&to));
    }

    /// Asks for `hop`'s MAC address (ARP request, neighbor solicitation).
    fn ask(&mut self, hop: IpAddr, now: Instant) {
        {
            let mut k = self.known.known();
            let first = match k.asked.get(&hop) {
                Some((_, last)) if now - *last < ASK_EVERY => return,
                Some((first, _)) => *first,
                None => now,
            };
            if now - first >= WAIT {
                k.failed.insert(hop, now);
            }
            k.asked.insert(hop, (first, now));
        }
        match hop {
            IpAddr::V4(target) => {
                let Some(source) = self.addrs.iter().find_map(|c| match c.ip {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                }) else {
                    return;
                };
                let arp = ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request,
                    source_hardware_addr: EthernetAddress(self.mac),
                    source_protocol_addr: source,
                    target_hardware_addr: EthernetAddress([0; 6]),
                    target_protocol_addr: target,
                };
                let mut b = vec![0; arp.buffer_len()];
                arp.emit(&mut ArpPacket::new_unchecked(&mut b));
                self.put(ETH_P_ARP, BROADCAST, &mut b);
            }
            IpAddr::V6(target) => {
                let o = target.octets();
                let group = std::net::Ipv6Addr::new(
                    0xff02,
                    0,
                    0,
                    0,
                    0,
                    1,
                    0xff00 | u16::from(o[13]),
                    u16::from_be_bytes([o[14], o[15]]),
                );
                let ns = NdiscRepr::NeighborSolicit { target_addr: target, lladdr: Some(self.raw_mac()) };
                if let Some(src) = self.v6_source() {
                    let mut packet = ndisc_packet(src, group, ns);
                    self.put(ETH_P_IPV6, self.group_mac(IpAddr::V6(group)).unwrap_or(BROADCAST), &mut packet);
                }
            }
        }
    }

    fn raw_mac(&self) -> RawHardwareAddress {
        RawHardwareAddress::from(EthernetAddress(self.mac))
    }

    /// The address neighbor discovery is sent from: the link-local one if
    /// there is one.
    fn v6_source(&self) -> Option<std::net::Ipv6Addr> {
        let v6: Vec<std::net::Ipv6Addr> = self
            .addrs
            .iter()
            .filter_map(|c| match c.ip {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => None,
            })
            .collect();
        v6.iter().find(|a| super::pod::is_link_local(IpAddr::V6(**a))).or(v6.first()).copied()
    }

    /// Notes `ip`'s MAC address and sends what waited for it.
    fn learn(&mut self, ip: IpAddr, mac: [u8; 6]) {
        if mac == [0; 6] || mac[0] & 1 == 1 {
            return;
        }
        let new = {
            let mut k = self.known.known();
            k.asked.remove(&ip);
            k.failed.remove(&ip);
            k.macs.insert(ip, mac) != Some(mac)
        };
        self.flush();
        // (the other shards' packets may wait for it)
        if new {
            for w in &self.known.wakes {
                let _ = w.write(1);
            }
        }
    }

    /// Sends the packets whose next hop's address is known now.
    fn flush(&mut self) {
        for (at, hop, proto, mut packet) in std::mem::take(&mut self.waiting) {
            match self.known.mac(hop) {
                Some(mac) => self.put(proto, mac, &mut packet),
                None => self.waiting.push_back((at, hop, proto, packet)),
            }
        }
    }

    /// The next IP packet from the wire, answering and learning from ARP
    /// and neighbor discovery on the way. None when there is none now.
    fn receive(&mut self) -> Option<Vec<u8>> {
        while self.readable {
            let (n, from) = match recvfrom::<LinkAddr>(self.fd.as_raw_fd(), &mut self.buf) {
                Ok((n, Some(from))) => (n, from),
                Ok((_, None)) | Err(Errno::EINTR) => continue,
                Err(_) => {
                    self.readable = false;
                    return None;
                }
            };
            // the host's own packets out of the interface; others' unicast
            if from.pkttype() == libc::PACKET_OUTGOING || from.pkttype() == libc::PACKET_OTHERHOST {
                continue;
            }
            let mac = from.addr().unwrap_or_default();
            // (after the virtio-net header, if any, and the Ethernet header)
            let start = if self.vnet { super::offload::HDR } else { 0 } + ETHER;
            let Some(packet) = self.buf.get(start..n.min(self.buf.len())) else { continue };
            let mut packet = packet.to_vec();
            match u16::from_be(from.protocol()) {
                ETH_P_ARP => self.arp(&packet),
                ETH_P_IPV6 if is_ndisc(&packet) => self.ndisc(&packet, mac),
                ETH_P_IPV6 if super::reassembly::is_fragment(&packet) => {
                    if let Some(whole) = self.reassembly.take(&packet, std::time::Instant::now()) {
                        if !self.martian(&whole) {
                            return Some(whole);
                        }
                    }
                }
                ETH_P_IP | ETH_P_IPV6 if self.martian(&packet) => {}
                ETH_P_IP | ETH_P_IPV6 => {
                    if self.vnet {
                        self.peers.clamp_syn(&mut packet);
                    }
                    return Some(packet);
                }
                _ => {}
            }
        }
        None
    }

    /// Whether IP packet `p` from the wire is to be dropped before smoltcp
    /// sees it: a header that does not hold together, or a source no host
    /// sends from (Linux's martians: unspecified, this network, multicast,
    /// broadcast, loopback, IPv4-mapped, or one of the stack's own). smoltcp
    /// 0.12 answered a packet from 0.0.0.0 (a SYN-ACK, a RST, an echo reply)
    /// and asserted on the answer's unspecified destination: one such frame
    /// from the pod's network ended the Sentry (0.13.1 fixed the SYN's case;
    /// the filter stays, as Linux's).
    fn martian(&self, p: &[u8]) -> bool {
        let src = match p.first().map(|b| b >> 4) {
            Some(4) if p.len() >= 20 => {
                let ihl = usize::from(p[0] & 0xf) * 4;
                let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
                if ihl < 20 || total < ihl || total > p.len() {
                    return true;
                }
                let v4 = std::net::Ipv4Addr::new(p[12], p[13], p[14], p[15]);
                if v4.octets()[0] == 0
                    || v4.is_multicast()
                    || v4.is_broadcast()
                    || self.addrs.iter().any(|c| broadcast_of(c) == Some(v4))
                {
                    return true;
                }
                IpAddr::V4(v4)
            }
            Some(6) if p.len() >= 40 => {
                if 40 + usize::from(u16::from_be_bytes([p[4], p[5]])) > p.len() {
                    return true;
                }
                let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap_or_default());
                if v6.is_unspecified() || v6.is_multicast() || v6.to_ipv4_mapped().is_some() {
                    return true;
                }
                IpAddr::V6(v6)
            }
            _ => return true,
        };
        src.is_loopback() || self.addrs.iter().any(|c| c.ip == src)
    }

    /// An ARP packet came in.
    fn arp(&mut self, packet: &[u8]) {
        let Ok(p) = ArpPacket::new_checked(packet) else { return };
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&p)
        else {
            return;
        };
        // (a router "onlink" is on no network of ours, but was asked for)
        let sender = IpAddr::V4(source_protocol_addr);
        let on_link = self.addrs.iter().any(|c| c.contains(sender)) || self.known.known().asked.contains_key(&sender);
        if on_link {
            self.learn(IpAddr::V4(source_protocol_addr), source_hardware_addr.0);
        }
        let ours = self.addrs.iter().any(|c| c.ip == IpAddr::V4(target_protocol_addr));
        if operation == ArpOperation::Request && ours {
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: EthernetAddress(self.mac),
                source_protocol_addr: target_protocol_addr,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            let mut b = vec![0; reply.buffer_len()];
            reply.emit(&mut ArpPacket::new_unchecked(&mut b));
            self.put(ETH_P_ARP, source_hardware_addr.0, &mut b);
        }
    }

    /// A neighbor solicitation or advertisement came in from `mac`.
    fn ndisc(&mut self, packet: &[u8], mac: [u8; 6]) {
        let Ok(ip) = Ipv6Packet::new_checked(packet) else { return };
        let Ok(ip_repr) = Ipv6Repr::parse(&ip) else { return };
        let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) else { return };
        let caps = ChecksumCapabilities::ignored();
        let Ok(Icmpv6Repr::Ndisc(nd)) = Icmpv6Repr::parse(&ip_repr.src_addr, &ip_repr.dst_addr, &icmp, &caps) else {
            return;
        };
        let src = ip_repr.src_addr;
        let lladdr_mac =
            |l: Option<RawHardwareAddress>| l.and_then(|l| <[u8; 6]>::try_from(l.as_bytes()).ok()).unwrap_or(mac);
        match nd {
            NdiscRepr::NeighborSolicit { target_addr, lladdr } => {
                let their_mac = lladdr_mac(lladdr);
                if !src.is_unspecified() {
                    self.learn(IpAddr::V6(src), their_mac);
                }
                if self.addrs.iter().any(|c| c.ip == IpAddr::V6(target_addr)) {
                    let na = NdiscRepr::NeighborAdvert {
                        flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
                        target_addr,
                        lladdr: Some(self.raw_mac()),
                    };
                    let (to, to_mac) = if src.is_unspecified() {
                        (std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), [0x33, 0x33, 0, 0, 0, 1])
                    } else {
                        (src, their_mac)
                    };
                    let mut packet = ndisc_packet(target_addr, to, na);
                    self.put(ETH_P_IPV6, to_mac, &mut packet);
                }
            }
            NdiscRepr::NeighborAdvert { target_addr, lladdr, .. } => {
                self.learn(IpAddr::V6(target_addr), lladdr_mac(lladdr))
            }
            _ => {}
        }
    }
}

/// The broadcast address of an IPv4 network.
fn broadcast_of(c: &Cidr) -> Option<std::net::Ipv4Addr> {
    let IpAddr::V4(a) = c.ip else { return None };
    if c.prefix >= 31 {
        return None;
    }
    Some(std::net::Ipv4Addr::from(u32::from(a) | (u32::MAX >> c.prefix)))
}

/// Whether an IPv6 packet is neighbor discovery (ICMPv6 133–137, no
/// extension headers), which the device answers itself.
fn is_ndisc(p: &[u8]) -> bool {
    p.get(6) == Some(&58) && p.get(40).is_some_and(|t| (133..=137).contains(t))
}

/// An IPv6 packet of neighbor discovery from `src` to `dst`.
fn ndisc_packet(src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr, nd: NdiscRepr<'_>) -> Vec<u8> {
    let icmp = Icmpv6Repr::Ndisc(nd);
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
    };
    let mut b = vec![0; ip.buffer_len() + icmp.buffer_len()];
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    let mut p = Icmpv6Packet::new_unchecked(&mut b[ip.buffer_len()..]);
    icmp.emit(&src, &dst, &mut p, &ChecksumCapabilities::default());
    b
}

/// A packet received, and the id smoltcp keeps with it.
pub struct Rx(Vec<u8>, phy::PacketMeta);

/// Room for a packet to send.
pub struct Tx<'a>(&'a mut Link);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }

    fn meta(&self) -> phy::PacketMeta {
        self.1
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // (one buffer for every packet: none is zeroed or allocated anew)
        let mut buf = std::mem::take(&mut self.0.tx);
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let r = f(&mut buf[..len]);
        self.0.meta.mark(&mut buf[..len]);
        self.0.send(&mut buf[..len]);
        self.0.tx = buf;
        r
    }
}

impl Device for Link {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MAX_PACKET;
        caps.checksum = match &self.wire {
            // nothing crosses a wire: no checksums to make or check
            None => ChecksumCapabilities::ignored(),
            // made for the wire; not checked: a packet a host on the same
            // machine sent through a veth carries a partial checksum (the
            // "hardware" would finish it)
            Some(w) => {
                let mut c = ChecksumCapabilities::ignored();
                c.ipv4 = phy::Checksum::Tx;
                // with virtio-net headers the kernel finishes TCP's
                // ([`super::offload`]): no pass over the bytes here
                c.tcp = if w.vnet { phy::Checksum::None } else { phy::Checksum::Tx };
                c.udp = phy::Checksum::Tx;
                c.icmpv4 = phy::Checksum::Tx;
                c.icmpv6 = phy::Checksum::Tx;
                c
            }
        };
        caps
    }

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let packet = match self.queue.pop_front() {
            Some(p) => p,
            None => self.wire.as_mut()?.receive()?,
        };
        let meta = self.meta.arrived(&packet);
        Some((Rx(packet, meta), Tx(self)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(self))
    }
}
