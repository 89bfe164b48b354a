//! What a datagram carries besides its bytes, for the control messages of
//! recvmsg and sendmsg: the hop limit (TTL) and traffic class (TOS) of its
//! IP header, and when it came in.
//!
//! smoltcp keeps a packet id with each datagram that comes in
//! (`PacketMeta`): the device numbers each UDP packet it receives and notes
//! its header and time ([`Meta::arrived`]), and the stack looks them up by
//! the id the datagram comes out of its socket with ([`Meta::arrival`]).
//! Its ICMP sockets keep no id: an echo reply's are noted by its sender,
//! identifier and sequence number instead ([`Meta::echo`]).
//! Going out, smoltcp hands the device no id for an IPv6 packet, so each
//! datagram's marks, the hop limit or traffic class of its own (sendmsg's
//! IP_TTL, IP_TOS, …, a socket's IP_TOS) or none, are queued by its flow
//! instead ([`Meta::sending`]; a UDP socket's datagrams leave in the order
//! they were sent), and the device writes them into the flow's next packet
//! smoltcp makes ([`Meta::mark`]). A flow is a source port and a
//! destination: two sockets sharing a port (SO_REUSEPORT) and sending to
//! one destination could swap their datagrams' marks.
//!
//! smoltcp's TCP has no traffic class either: a connection's (IP_TOS,
//! IPV6_TCLASS) is kept by its flow ([`Meta::tcp_class`]) and written into
//! every packet of it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use smoltcp::phy::PacketMeta;

use super::packet::{fill_ipv4_checksum, transport_of, word, ICMP, ICMPV6, TCP, UDP};

/// How many packets' arrivals are kept (a datagram is looked up as soon as
/// the stack's thread moves it to the app's end, within the same round),
/// and echo replies'.
const SLOTS: usize = 4096;
/// Marks not used by then are of a datagram smoltcp dropped (with no
/// route for it): they go, and are never written into another's packet.
const STALE: Duration = Duration::from_secs(1);
/// Past this many datagrams noted and not sent, the stale ones go.
const MAX_WAITING: usize = 64 * 1024;

/// What a datagram's IP header said, and when it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// TTL, IPv6's hop limit
    pub hop_limit: u8,
    /// TOS, IPv6's traffic class
    pub tclass: u8,
    /// since the epoch (CLOCK_REALTIME, as SO_TIMESTAMP tells it)
    pub at: Duration,
}

/// What a datagram sent asks of its IP header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    /// the TTL, hop limit
    pub hop_limit: Option<u8>,
    /// the TOS, traffic class
    pub tclass: Option<u8>,
}

/// A UDP or TCP flow going out: source port, destination address and port.
pub type Flow = (u16, IpAddr, u16);

/// Recent packets' arrivals by id, and the marks of datagrams to be sent,
/// by flow, oldest first.
#[derive(Debug)]
pub struct Meta {
    last: u32,
    arrivals: Vec<Option<(u32, Arrival)>>,
    marks: HashMap<Flow, VecDeque<(Instant, Marks)>>,
    /// how many marks wait, in all flows
    waiting: usize,
    /// echo replies' arrivals by sender, identifier and sequence number
    echoes: HashMap<(IpAddr, u16, u16), Arrival>,
    /// the traffic class of TCP connections that set one, by flow
    classes: HashMap<Flow, u8>,
}

impl Default for Meta {
    fn default() -> Meta {
        Meta {
            last: 0,
            arrivals: vec![None; SLOTS],
            marks: HashMap::new(),
            waiting: 0,
            echoes: HashMap::new(),
            classes: HashMap::new(),
        }
    }
}

fn meta(id: u32) -> PacketMeta {
    let mut m = PacketMeta::default();
    m.id = id;
    m
}

impl Meta {
    fn next(&mut self) -> u32 {
        // (0 is "none")
        self.last = self.last.checked_add(1).unwrap_or(1);
        self.last
    }

    /// Notes IP packet `p` coming in: the id smoltcp is to keep with it
    /// (none for a packet that is not UDP).
    pub fn arrived(&mut self, p: &[u8]) -> PacketMeta {
        let now = || SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        if transport_of(p, UDP).is_some() {
            let (hop_limit, tclass) = traffic_of(p);
            let id = self.next();
            self.arrivals[id as usize % SLOTS] = Some((id, Arrival { hop_limit, tclass, at: now() }));
            return meta(id);
        }
        // an echo reply (ICMP 0, ICMPv6 129)
        let echo = transport_of(p, ICMP).or_else(|| transport_of(p, ICMPV6));
        if let Some((t, src, _)) = echo.filter(|(t, ..)| matches!(p[*t], 0 | 129)) {
            if self.echoes.len() >= SLOTS {
                self.echoes.clear();
            }
            let (hop_limit, tclass) = traffic_of(p);
            let (ident, seq) = echo_key(&p[t..]);
            self.echoes.insert((src, ident, seq), Arrival { hop_limit, tclass, at: now() });
        }
        PacketMeta::default()
    }

    /// The arrival of echo reply `reply` (an ICMP message, of 8 bytes at
    /// least) from `from`, if still kept (once).
    pub fn echo(&mut self, from: IpAddr, reply: &[u8]) -> Option<Arrival> {
        let (ident, seq) = (reply.len() >= 8).then(|| echo_key(reply))?;
        self.echoes.remove(&(from, ident, seq))
    }

    /// The arrival of the packet smoltcp numbered `id`, if still kept.
    pub fn arrival(&self, id: u32) -> Option<Arrival> {
        match self.arrivals[id as usize % SLOTS] {
            Some((i, a)) if i == id && id != 0 => Some(a),
            _ => None,
        }
    }

    /// Notes that the datagram just handed to smoltcp for `flow` is to
    /// leave with `marks` (none: unmarked). Every datagram is noted, so
    /// that each packet of the flow takes its own datagram's marks.
    pub fn sending(&mut self, flow: Flow, marks: Marks) {
        if self.waiting >= MAX_WAITING {
            // those of datagrams smoltcp dropped (no route): gone by now
            let now = Instant::now();
            for queue in self.marks.values_mut() {
                queue.retain(|(at, _)| now - *at < STALE);
            }
            self.marks.retain(|_, q| !q.is_empty());
            self.waiting = self.marks.values().map(VecDeque::len).sum();
        }
        self.marks.entry(flow).or_default().push_back((Instant::now(), marks));
        self.waiting += 1;
    }

    /// Notes TCP connection `flow`'s traffic class (0: none, the default).
    pub fn tcp_class(&mut self, flow: Flow, class: u8) {
        if class == 0 {
            self.classes.remove(&flow);
        } else {
            self.classes.insert(flow, class);
        }
    }

    /// Writes into `p`, an IP packet smoltcp made, the marks its datagram
    /// was sent with, or its TCP connection's traffic class, if any.
    pub fn mark(&mut self, p: &mut [u8]) {
        if !self.classes.is_empty() {
            let class = flow_of(p, TCP).and_then(|flow| self.classes.get(&flow));
            if let Some(&tclass) = class {
                set_header(p, Marks { hop_limit: None, tclass: Some(tclass) });
                return;
            }
        }
        if self.waiting == 0 {
            return;
        }
        let Some(flow) = flow_of(p, UDP) else { return };
        let Some(queue) = self.marks.get_mut(&flow) else { return };
        if let Some((at, m)) = queue.pop_front() {
            self.waiting -= 1;
            // (one older than that is of a datagram smoltcp dropped, and
            // its packet is another's: left alone)
            if at.elapsed() < STALE && m != Marks::default() {
                set_header(p, m);
            }
        }
        if queue.is_empty() {
            self.marks.remove(&flow);
        }
    }
}

/// The flow of UDP or TCP (`protocol`) packet `p` (IPv6: with no
/// extension header).
fn flow_of(p: &[u8], protocol: u8) -> Option<Flow> {
    let (t, _, dst) = transport_of(p, protocol)?;
    Some((word(p, t), dst, word(p, t + 2)))
}

/// An IP packet's hop limit and traffic class (its header checked whole).
fn traffic_of(p: &[u8]) -> (u8, u8) {
    match p[0] >> 4 {
        4 => (p[8], p[1]),
        _ => (p[7], (p[0] << 4) | (p[1] >> 4)),
    }
}

/// An ICMP echo message's identifier and sequence number.
fn echo_key(icmp: &[u8]) -> (u16, u16) {
    (word(icmp, 4), word(icmp, 6))
}

/// Sets IP packet `p`'s hop limit and traffic class to `m`'s (an IPv4
/// header's checksum made again).
fn set_header(p: &mut [u8], m: Marks) {
    match p.first().map(|b| b >> 4) {
        Some(4) if p.len() >= 20 => {
            let ihl = (usize::from(p[0] & 0xf) * 4).clamp(20, p.len());
            if let Some(h) = m.hop_limit {
                p[8] = h;
            }
            if let Some(t) = m.tclass {
                p[1] = t;
            }
            fill_ipv4_checksum(&mut p[..ihl]);
        }
        Some(6) if p.len() >= 40 => {
            if let Some(h) = m.hop_limit {
                p[7] = h;
            }
            if let Some(t) = m.tclass {
                p[0] = (p[0] & 0xf0) | (t >> 4);
                p[1] = (p[1] & 0x0f) | (t << 4);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 packet of `protocol`, `len` bytes long, from 10.0.0.1 to
    /// 10.0.0.2, with a valid header checksum.
    fn ipv4(protocol: u8, len: u16) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(len)];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p[8] = 64;
        p[9] = protocol;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        set_header(&mut p, Marks::default());
        p
    }

    /// An IPv4 UDP packet with a valid header checksum.
    fn udp4() -> Vec<u8> {
        ipv4(UDP, 28)
    }

    fn checksum_ok(p: &[u8]) -> bool {
        crate::net::packet::checksum(&p[..20]) == 0xffff
    }

    #[test]
    fn arrivals_are_kept_by_id_for_udp_only() {
        let mut m = Meta::default();
        let mut p = udp4();
        p[1] = 0x28;
        p[8] = 17;
        let id = m.arrived(&p).id;
        let a = m.arrival(id).expect("kept");
        assert_eq!((a.hop_limit, a.tclass), (17, 0x28));
        assert!(a.at > Duration::from_secs(1_600_000_000));
        // an echo reply: kept by sender, identifier and sequence number
        let mut icmp = p.clone();
        icmp[9] = ICMP;
        icmp[24..28].copy_from_slice(&[0x12, 0x34, 0, 7]);
        assert_eq!(m.arrived(&icmp).id, 0);
        assert_eq!(m.arrival(0), None);
        let from = IpAddr::from([10, 0, 0, 1]);
        assert_eq!(m.echo(from, &icmp[20..]).map(|a| a.hop_limit), Some(17));
        assert_eq!(m.echo(from, &icmp[20..]), None, "once");
        // IPv6: traffic class across the first two bytes
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x6a;
        v6[1] = 0xb0;
        v6[6] = UDP;
        v6[7] = 5;
        let id6 = m.arrived(&v6).id;
        let a = m.arrival(id6).expect("kept");
        assert_eq!((a.hop_limit, a.tclass), (5, 0xab));
        // one whose slot was taken since is gone
        for _ in 0..SLOTS {
            m.arrived(&p);
        }
        assert_eq!(m.arrival(id), None);
    }

    #[test]
    fn a_tcp_connections_class_goes_into_each_of_its_packets() {
        let mut m = Meta::default();
        // an IPv4 TCP segment from port 40000 to 10.0.0.2:80
        let segment = |sport: u16| {
            let mut p = ipv4(TCP, 40);
            p[20..22].copy_from_slice(&sport.to_be_bytes());
            p[22..24].copy_from_slice(&80u16.to_be_bytes());
            p
        };
        let flow: Flow = (40000, IpAddr::from([10, 0, 0, 2]), 80);
        m.tcp_class(flow, 0xb8);
        for _ in 0..3 {
            let mut p = segment(40000);
            m.mark(&mut p);
            assert_eq!((p[1], p[8]), (0xb8, 64));
            assert!(checksum_ok(&p));
        }
        // another connection's, and a UDP packet of the same ports: left alone
        let mut other = segment(40001);
        m.mark(&mut other);
        assert_eq!(other[1], 0);
        let mut u = segment(40000);
        u[9] = UDP;
        m.mark(&mut u);
        assert_eq!(u[1], 0);
        // the class taken back (0: the connection went)
        m.tcp_class(flow, 0);
        let mut p = segment(40000);
        m.mark(&mut p);
        assert_eq!(p[1], 0);
        assert!(m.classes.is_empty());
    }

    #[test]
    fn marks_go_into_their_flows_packets_in_order() {
        let mut m = Meta::default();
        // an IPv4 UDP packet from port 5000 to 10.0.0.2:53
        let packet = |dport: u16| {
            let mut p = udp4();
            p[20..22].copy_from_slice(&5000u16.to_be_bytes());
            p[22..24].copy_from_slice(&dport.to_be_bytes());
            p
        };
        let flow: Flow = (5000, IpAddr::from([10, 0, 0, 2]), 53);
        // an unmarked datagram ahead of a marked one keeps its own (none)
        m.sending(flow, Marks::default());
        m.sending(flow, Marks { hop_limit: Some(3), tclass: Some(0xb8) });
        m.sending(flow, Marks { hop_limit: Some(4), tclass: None });
        // another destination port's packet is another flow's: left alone
        let mut other = packet(54);
        m.mark(&mut other);
        assert_eq!((other[8], other[1]), (64, 0));
        let mut p = packet(53);
        m.mark(&mut p);
        assert_eq!((p[8], p[1]), (64, 0), "the first datagram's: none");
        let mut q = packet(53);
        m.mark(&mut q);
        assert_eq!((q[8], q[1]), (3, 0xb8));
        assert!(checksum_ok(&q));
        let mut r = packet(53);
        m.mark(&mut r);
        assert_eq!((r[8], r[1]), (4, 0));
        assert_eq!(m.waiting, 0);
        assert!(m.marks.is_empty());
        // a stale mark (of a datagram smoltcp dropped) is used up, never written
        let old = Instant::now().checked_sub(2 * STALE).expect("an instant 2 s ago");
        m.marks.entry(flow).or_default().push_back((old, Marks { hop_limit: Some(9), tclass: None }));
        m.waiting += 1;
        let mut s = packet(53);
        m.mark(&mut s);
        assert_eq!(s[8], 64);
        assert_eq!(m.waiting, 0);
        // IPv6: the traffic class across the first two bytes
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[6] = UDP;
        v6[7] = 64;
        v6[40..42].copy_from_slice(&5000u16.to_be_bytes());
        v6[42..44].copy_from_slice(&53u16.to_be_bytes());
        m.sending((5000, IpAddr::from([0u8; 16]), 53), Marks { hop_limit: None, tclass: Some(0xab) });
        m.mark(&mut v6);
        assert_eq!((v6[0], v6[1], v6[7]), (0x6a, 0xb0, 64));
    }
}
