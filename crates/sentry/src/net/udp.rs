//! UDP sockets. The app's end is one end of a SOCK_SEQPACKET socketpair: a
//! connected socket's send and recv (and read, write) run natively, one
//! datagram each. An address goes through the Sentry: sendto with one is
//! sent from here ([`Stack::udp_send`]), and recvfrom that asks for the
//! sender takes the next datagram off the app's end with its sender
//! ([`Stack::udp_recv`]): the stack notes each datagram's sender in order as
//! it writes it (`Sock::sources`). A program that reads some datagrams
//! natively and asks for the senders of others gets them out of step;
//! programs keep to one way per socket.
//!
//! ICMP echo ("ping") sockets, SOCK_DGRAM with IPPROTO_ICMP or
//! IPPROTO_ICMPV6, work the same way over smoltcp's ICMP sockets: bound to
//! an identifier (the "port" getsockname shows), which replaces the one in
//! each echo request sent, as Linux does; only echo replies come in.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::socket::{recv, send, MsgFlags};
use smoltcp::socket::{icmp, udp};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint, Ipv4Address, Ipv6Address};

use super::addr::{Addr, Family};
use super::cmsg::Ancillary;
use super::ipmeta::{Arrival, Flow, Marks};
use super::stack::{Opts, Stack, State};

/// Datagrams each UDP socket buffers each way, and their bytes.
const DATAGRAMS: usize = 64;
const BYTES: usize = 256 * 1024;
/// The largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65507;

fn udp_socket() -> udp::Socket<'static> {
    let buffer = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; DATAGRAMS], vec![0; BYTES]);
    udp::Socket::new(buffer(), buffer())
}

fn icmp_socket() -> icmp::Socket<'static> {
    let buffer = || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; DATAGRAMS], vec![0; BYTES]);
    icmp::Socket::new(buffer(), buffer())
}

/// Where a datagram on the app's end came from: its sender, the address
/// it was sent to, and its IP header and time of arrival (when still kept).
#[derive(Debug, Clone, Copy)]
pub struct Came {
    /// its sender
    pub from: Addr,
    /// the address it was sent to
    pub to: Option<IpAddress>,
    /// its IP header and time of arrival
    pub arrival: Option<Arrival>,
}

/// ICMP and ICMPv6 echo request and reply types.
const ECHO_REQUEST: [u8; 2] = [8, 128];
const ECHO_REPLY: [u8; 2] = [0, 129];

impl Stack {
    /// Where a datagram to `to` goes: "any" is this host, as on Linux. An
    /// echo request's "port" does not matter.
    fn destination(&self, family: Family, to: Addr, ping: bool) -> Result<IpEndpoint, Errno> {
        let ip = match to.ip {
            Some(ip) => ip,
            None if family == Family::V6 => IpAddress::Ipv6(Ipv6Address::LOCALHOST),
            None => IpAddress::Ipv4(Ipv4Address::new(127, 0, 0, 1)),
        };
        if !self.device.reaches(ip.into()) {
            return Err(Errno::ENETUNREACH);
        }
        if to.port == 0 && !ping {
            return Err(Errno::EINVAL);
        }
        // an ICMPv6 echo socket's request cannot go to an IPv4 host (Linux:
        // EINVAL for a mapped address), nor an ICMP one's to an IPv6 host
        let v4 = matches!(ip, IpAddress::Ipv4(_));
        if ping && (family == Family::V6) == v4 {
            return Err(Errno::EINVAL);
        }
        Ok(IpEndpoint::new(ip, to.port))
    }

    /// How a datagram of socket `local` with `opts` goes to `to`, with what
    /// its control messages ask (`anc`): its metadata for smoltcp (the
    /// destination, and the source: `anc`'s, the socket's, or where
    /// smoltcp's choice would not be Linux's), its flow and its marks
    /// ([`super::ipmeta`]). None: its source does not fit the destination
    /// ([`source_fits`]).
    fn outgoing(
        &self,
        local: Addr,
        opts: &Opts,
        to: IpEndpoint,
        anc: &Ancillary,
    ) -> Option<(udp::UdpMetadata, Flow, Marks)> {
        let source = anc.source.or(local.ip);
        if source.is_some_and(|from| !source_fits(from, to.addr)) {
            return None;
        }
        let mut m = udp::UdpMetadata::from(to);
        m.local_address = source.or_else(|| self.source(to.addr));
        Some((m, (local.port, to.addr.into(), to.port), marks(opts, to.addr, &anc.marks)))
    }

    /// Binds datagram socket `key`'s smoltcp socket to its local address
    /// (an ephemeral port, or identifier, first if it has none).
    pub(super) fn udp_open(&mut self, key: u64) -> Result<(), Errno> {
        let s = self.sock(key)?;
        if let State::Datagram { handle: Some(_), .. } = s.state {
            return Ok(());
        }
        let (mut local, ping) = (s.local, s.is_ping());
        if local.port == 0 {
            local.port = self.ephemeral(key, local.ip)?;
        }
        let h = if ping {
            let mut i = icmp_socket();
            i.bind(icmp::Endpoint::Ident(local.port)).map_err(|_| Errno::EINVAL)?;
            self.sockets.add(i)
        } else {
            let mut u = udp_socket();
            u.bind(IpListenEndpoint { addr: local.ip, port: local.port }).map_err(|_| Errno::EINVAL)?;
            self.sockets.add(u)
        };
        let s = self.sock(key)?;
        s.local = local;
        if let State::Datagram { handle, .. } = &mut s.state {
            *handle = Some(h);
        }
        Ok(())
    }

    /// connect(2) of a UDP socket: its peer (None: none any more).
    pub(super) fn udp_connect(&mut self, key: u64, to: Option<Addr>) -> Result<(), Errno> {
        let (family, ping) = (self.sock(key)?.family, self.sock(key)?.is_ping());
        let peer = match to {
            Some(a) => Some(Addr::from(self.destination(family, a, ping)?)),
            None => None,
        };
        let local = self.sock(key)?.local.ip;
        if let (Some(from), Some(to)) = (local, peer.and_then(|p| p.ip)) {
            if !source_fits(from, to) {
                return Err(Errno::EINVAL);
            }
        }
        self.udp_open(key)?;
        if let State::Datagram { peer: p, .. } = &mut self.sock(key)?.state {
            *p = peer;
        }
        Ok(())
    }

    /// sendto(2) of `data` to `to` (None: the peer) on UDP socket `key`,
    /// with what control messages `control` ask ([`Ancillary::parse`]).
    pub fn udp_send(&mut self, key: u64, data: &[u8], to: Option<Addr>, control: &[u8]) -> Result<usize, Errno> {
        if data.len() > MAX_DATAGRAM {
            return Err(Errno::EMSGSIZE);
        }
        let s = self.sock(key)?;
        let (family, peer, ping) = match s.state {
            State::Datagram { peer, ping, .. } => (s.family, peer, ping),
            _ => return Err(Errno::EOPNOTSUPP),
        };
        let to = match (to, peer) {
            (Some(a), _) => self.destination(family, a, ping)?,
            (None, Some(p)) => self.destination(family, p, ping)?,
            (None, None) => return Err(Errno::EDESTADDRREQ),
        };
        self.udp_open(key)?;
        let s = self.sock(key)?;
        let (State::Datagram { handle: Some(h), .. }, ident) = (&s.state, s.local.port) else {
            return Err(Errno::EINVAL);
        };
        let (h, local, opts) = (*h, s.local, s.opts);
        let to_family = match to.addr {
            IpAddress::Ipv4(_) => Family::V4,
            IpAddress::Ipv6(_) => Family::V6,
        };
        let anc = &Ancillary::parse(control, family, to_family)?;
        if ping {
            return send_echo(self.sockets.get_mut::<icmp::Socket>(h), family, ident, data, to.addr);
        }
        // a source of the app's own must be one of the stack's (Linux: EINVAL)
        if anc.source.is_some_and(|ip| !self.device.is_own(ip.into())) {
            return Err(Errno::EINVAL);
        }
        let (meta, flow, marks) = self.outgoing(local, &opts, to, anc).ok_or(Errno::EINVAL)?;
        let u = self.sockets.get_mut::<udp::Socket>(h);
        match u.send_slice(data, meta) {
            Ok(()) => {
                self.device.meta.sending(flow, marks);
                Ok(data.len())
            }
            Err(udp::SendError::BufferFull) => Err(Errno::EAGAIN),
            Err(udp::SendError::Unaddressable) => Err(Errno::EINVAL),
        }
    }

    /// recvfrom(2) asking for the sender, on UDP socket `key` whose app end
    /// is `theirs`: the next datagram there (up to `buf`'s length; its own
    /// length with MSG_TRUNC), its sender, and the control messages the
    /// socket's options ask for ([`super::cmsg::received`]). EAGAIN if there is none.
    pub fn udp_recv(
        &mut self,
        key: u64,
        theirs: &OwnedFd,
        buf: &mut [u8],
        flags: MsgFlags,
    ) -> Result<(usize, Addr, Vec<u8>), Errno> {
        let peek = flags.contains(MsgFlags::MSG_PEEK);
        let flags = (flags & (MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC)) | MsgFlags::MSG_DONTWAIT;
        let n = recv(theirs.as_raw_fd(), buf, flags)?;
        let pod = self.pod.as_ref().map_or(0, |p| p.index);
        let s = self.sock(key)?;
        let came = if peek { s.sources.front().copied() } else { s.sources.pop_front() };
        let Some(came) = came else { return Ok((n, Addr::ANY, Vec::new())) };
        let index = match came.to {
            Some(to) if !std::net::IpAddr::from(to).is_loopback() => pod,
            _ => super::LO_INDEX,
        };
        Ok((n, came.from, super::cmsg::received(&s.opts, s.family, &came, index)))
    }

    /// Moves datagram socket `key`'s datagrams both ways; whether any moved.
    pub(super) fn pump_udp(&mut self, key: u64, buf: &mut [u8]) -> bool {
        if self.socks.get(&key).is_some_and(|s| s.is_ping()) {
            return self.pump_ping(key, buf);
        }
        let Some(sock) = self.socks.get(&key) else { return false };
        let State::Datagram { peer, .. } = sock.state else { return false };
        let to = peer
            .and_then(|p| p.endpoint())
            .and_then(|to| self.outgoing(sock.local, &sock.opts, to, &Ancillary::default()));
        let Stack { sockets, socks, epoll, device, .. } = self;
        let Some(sock) = socks.get_mut(&key) else { return false };
        let State::Datagram { handle: Some(h), .. } = sock.state else { return false };
        let u = sockets.get_mut::<udp::Socket>(h);
        // the app's datagrams (written without an address) to its peer; with
        // no peer there is nowhere to send them (Linux: EDESTADDRREQ)
        let can = u.can_send();
        let mut moved = from_app(sock, buf, can, |data| {
            if let Some((meta, flow, marks)) = to {
                if u.send_slice(data, meta).is_ok() {
                    device.meta.sending(flow, marks);
                }
            }
            u.can_send()
        });
        // datagrams that came in, to the app's end, where they came from noted
        moved |= deliver(sock, || {
            loop {
                let (data, meta) = u.recv().ok()?;
                let from = Addr::from(meta.endpoint);
                // a connected socket takes its peer's datagrams only
                if peer.is_none_or(|p| p == from) {
                    let arrival = device.meta.arrival(meta.meta.id);
                    return Some((data.to_vec(), Came { from, to: meta.local_address, arrival }));
                }
            }
        });
        want_datagrams(sock, epoll, key);
        moved
    }
}

/// Reads the datagrams the app wrote on `sock`'s end (one per read) while
/// the smoltcp socket can send (`can`, then what `send` answers after each
/// datagram it was handed); whether any moved.
pub(super) fn from_app(
    sock: &mut super::stack::Sock,
    buf: &mut [u8],
    mut can: bool,
    mut send: impl FnMut(&[u8]) -> bool,
) -> bool {
    let fd = sock.ours.as_raw_fd();
    let mut moved = false;
    while sock.readable && can {
        match recv(fd, buf, MsgFlags::MSG_DONTWAIT) {
            // the app closed its end (an empty datagram reads the same: not sent)
            Ok(0) => break,
            Ok(n) => {
                can = send(&buf[..n]);
                moved = true;
            }
            Err(_) => {
                sock.readable = false;
                break;
            }
        }
    }
    moved
}

/// Writes the datagrams that came in for `sock` to the app's end, the
/// held ones first, then what `next` gives, noting each sender and
/// destination; whether any moved.
fn deliver(sock: &mut super::stack::Sock, mut next: impl FnMut() -> Option<(Vec<u8>, Came)>) -> bool {
    let fd = sock.ours.as_raw_fd();
    let mut moved = false;
    loop {
        if let Some((data, came)) = sock.held.front() {
            if !sock.writable {
                break;
            }
            match send(fd, data, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => {
                    sock.sources.push_back(*came);
                    sock.held.pop_front();
                    moved = true;
                    continue;
                }
                Err(Errno::EAGAIN) | Err(Errno::ENOBUFS) => {
                    sock.writable = false;
                    break;
                }
                Err(_) => {
                    sock.held.clear();
                    break;
                }
            }
        }
        let Some(got) = next() else { break };
        sock.held.push_back(got);
        moved = true;
    }
    moved
}

/// Whether a datagram from `from` may go to `to`: of the same family
/// (smoltcp would not make a packet of two), and from a loopback address
/// only to one (Linux: EINVAL; no loopback source leaves by the wire).
fn source_fits(from: IpAddress, to: IpAddress) -> bool {
    let (from, to) = (std::net::IpAddr::from(from), std::net::IpAddr::from(to));
    from.is_ipv4() == to.is_ipv4() && (!from.is_loopback() || to.is_loopback())
}

/// The marks of a datagram to `to` of a socket with `opts`: the control
/// messages' (`asked`), else the socket's IP_TTL and IP_TOS (IPV6_TCLASS).
fn marks(opts: &Opts, to: IpAddress, asked: &Marks) -> Marks {
    let tos = match to {
        IpAddress::Ipv4(_) => opts.tos,
        IpAddress::Ipv6(_) => opts.tclass,
    };
    Marks { hop_limit: asked.hop_limit.or(opts.ttl), tclass: asked.tclass.or((tos != 0).then_some(tos)) }
}

/// What a datagram socket's thread waits for: the app's datagrams, and
/// room for those held.
fn want_datagrams(sock: &mut super::stack::Sock, epoll: &nix::sys::epoll::Epoll, key: u64) {
    let mut want = EpollFlags::EPOLLIN;
    if !sock.held.is_empty() {
        want |= EpollFlags::EPOLLOUT;
    }
    if want != sock.interest {
        let mut ev = EpollEvent::new(want, key);
        if epoll.modify(std::os::fd::AsFd::as_fd(&sock.ours), &mut ev).is_ok() {
            sock.interest = want;
        }
    }
}

/// Sends echo request `data` (an ICMP message, as a ping socket takes it)
/// to `to`, its identifier replaced with the socket's.
fn send_echo(i: &mut icmp::Socket<'_>, family: Family, ident: u16, data: &[u8], to: IpAddress) -> Result<usize, Errno> {
    let v6 = usize::from(family == Family::V6 || matches!(to, IpAddress::Ipv6(_)));
    if data.len() < 8 || data[0] != ECHO_REQUEST[v6] || data[1] != 0 {
        return Err(Errno::EINVAL);
    }
    let mut packet = data.to_vec();
    packet[4..6].copy_from_slice(&ident.to_be_bytes());
    match i.send_slice(&packet, to) {
        Ok(()) => Ok(data.len()),
        Err(icmp::SendError::BufferFull) => Err(Errno::EAGAIN),
        Err(icmp::SendError::Unaddressable) => Err(Errno::EINVAL),
    }
}

impl Stack {
    /// [`Stack::pump_udp`] of an ICMP echo socket: requests the app writes
    /// on a connected socket go to its peer, replies come in.
    fn pump_ping(&mut self, key: u64, buf: &mut [u8]) -> bool {
        let Stack { sockets, socks, epoll, device, .. } = self;
        let Some(sock) = socks.get_mut(&key) else { return false };
        let State::Datagram { handle: Some(h), peer, .. } = sock.state else { return false };
        let (family, ident) = (sock.family, sock.local.port);
        let i = sockets.get_mut::<icmp::Socket>(h);
        let can = i.can_send();
        let mut moved = from_app(sock, buf, can, |data| {
            if let Some(to) = peer.and_then(|p| p.ip) {
                let _ = send_echo(i, family, ident, data, to);
            }
            i.can_send()
        });
        // (the socket sees its own requests come by too: replies only)
        moved |= deliver(sock, || loop {
            let (data, from) = i.recv().ok()?;
            if data.first().is_some_and(|t| ECHO_REPLY.contains(t)) {
                let arrival = device.meta.echo(from.into(), data);
                return Some((data.to_vec(), Came { from: Addr { ip: Some(from), port: 0 }, to: None, arrival }));
            }
        });
        want_datagrams(sock, epoll, key);
        moved
    }
}
