//! The stack's state: the interface, smoltcp's sockets, and the app's
//! sockets over them ([`Sock`]), with what the handlers ask of them.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Address, Ipv6Address};

use super::addr::{Addr, Family};

/// Bytes each TCP connection buffers each way in the stack.
const TCP_BUFFER: usize = 1024 * 1024;
/// At most this many connections wait in a listening socket's handshake at once.
const MAX_LISTENERS: usize = 16;
/// At most this many connections wait to be accepted on one socket
/// (SOMAXCONN); past it, new ones are refused until the app accepts.
const MAX_READY: usize = 4096;
/// The ports a socket that did not bind one gets (Linux's default range).
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
/// How long a connect(2) waits for its handshake (Linux: six SYN
/// retransmissions, about two minutes).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(127);
/// The epoll key of the wake eventfd (inode numbers are never 0).
pub(super) const WAKE_KEY: u64 = 0;
/// The epoll key of the pod interface's packet socket.
pub(super) const POD_KEY: u64 = u64::MAX;

/// What an app socket is, for the stack.
#[derive(Debug)]
pub enum State {
    /// made, not bound
    Fresh,
    /// bound to an address, not listening or connected
    Bound,
    /// listening: smoltcp sockets waiting for a connection each, and those
    /// connected and not accepted yet
    Listening {
        /// listen(2)'s backlog: how many handshakes run at once (up to 16)
        backlog: usize,
        /// listening, each for one connection
        waiting: Vec<SocketHandle>,
        /// connected, not accepted yet
        ready: VecDeque<SocketHandle>,
        /// how many connections wait to be accepted, in every shard (while
        /// any does, one byte waits on the app's end)
        queued: Arc<AtomicUsize>,
    },
    /// connecting (non-blocking: data the app writes waits on its end)
    Connecting(SocketHandle),
    /// connected; the bytes pumped between the app's end and the connection
    Connected(SocketHandle),
    /// its connection failed (SO_ERROR has the reason)
    Failed,
    /// a UDP or ICMP echo socket ([`super::udp`]): its smoltcp socket
    /// once bound, and the peer it is connected to
    Datagram {
        /// UDP, or ICMP echo ("ping" sockets)
        ping: bool,
        /// bound (explicitly, or by its first send or connect)
        handle: Option<SocketHandle>,
        /// connect(2)'s peer: sends go there, only its datagrams come in
        peer: Option<Addr>,
    },
    /// a route netlink socket ([`super::netlink`]): requests the app sends
    /// are answered on its end
    Netlink {
        /// its port id (bind(2)'s nl_pid, or one the stack chose)
        port: u32,
    },
}

/// Socket options the app set.
#[derive(Debug, Default, Clone, Copy)]
pub struct Opts {
    /// SO_REUSEADDR
    pub reuse_addr: bool,
    /// SO_REUSEPORT
    pub reuse_port: bool,
    /// SO_KEEPALIVE
    pub keepalive: bool,
    /// TCP_KEEPIDLE, in seconds (None: Linux's default, [`Opts::keep_idle`])
    pub keepidle: Option<u32>,
    /// TCP_KEEPINTVL, in seconds (None: [`Opts::keep_interval`])
    pub keepintvl: Option<u32>,
    /// TCP_KEEPCNT (None: [`Opts::keep_count`])
    pub keepcnt: Option<u32>,
    /// TCP_USER_TIMEOUT, in milliseconds (0: none)
    pub user_timeout: u32,
    /// TCP_NODELAY
    pub nodelay: bool,
    /// IPV6_V6ONLY
    pub v6only: bool,
    /// IP_TTL / IPV6_UNICAST_HOPS (None: the default)
    pub ttl: Option<u8>,
    /// SO_LINGER: on, seconds
    pub linger: Option<(bool, i32)>,
    /// IP_PKTINFO: each datagram received tells its destination
    pub pktinfo: bool,
    /// IPV6_RECVPKTINFO: the same, IPv6's way
    pub pktinfo6: bool,
    /// IP_TOS: each IPv4 datagram's traffic class
    pub tos: u8,
    /// IPV6_TCLASS: each IPv6 datagram's
    pub tclass: u8,
    /// IP_RECVTTL: each datagram received tells its IPv4 header's TTL
    pub recv_ttl: bool,
    /// IP_RECVTOS: and its TOS
    pub recv_tos: bool,
    /// IPV6_RECVHOPLIMIT: an IPv6 socket's, the hop limit
    pub recv_hoplimit: bool,
    /// IPV6_RECVTCLASS: and the traffic class
    pub recv_tclass: bool,
    /// SO_TIMESTAMP, SO_TIMESTAMPNS (and their _NEW numbers): each datagram
    /// received tells when it came in
    pub stamp: Option<Stamp>,
}

/// How a datagram's time of arrival is told: the control message's type,
/// and whether in nanoseconds (struct timespec) or microseconds (struct
/// timeval; the same layout as the _NEW numbers' 64-bit ones on x86-64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// the control message's type (SCM_TIMESTAMP, SCM_TIMESTAMPNS, …)
    pub kind: i32,
    /// in nanoseconds (else microseconds)
    pub nanos: bool,
}

/// The app's sockets by the inode number of their end. Inode numbers count
/// up, so a multiplicative hash spreads them (std's default, SipHash, costs
/// more than the rest of a look-up, and the stack's thread looks up every
/// socket each round).
pub(super) type Socks = HashMap<u64, Sock, std::hash::BuildHasherDefault<InodeHash>>;

/// Fibonacci hashing of an inode number.
#[derive(Debug, Default)]
pub struct InodeHash(u64);

impl std::hash::Hasher for InodeHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// One app socket.
#[derive(Debug)]
pub struct Sock {
    /// AF_INET or AF_INET6
    pub family: Family,
    /// what it is now
    pub state: State,
    /// the stack's end of the socketpair
    pub(super) ours: OwnedFd,
    /// the bound or given local address
    pub local: Addr,
    /// what the app set
    pub opts: Opts,
    /// SO_ERROR: a failure not reported yet
    pub error: Option<Errno>,
    /// written whenever the state changes (a worker waiting on it polls it)
    pub changed: EventFd,
    /// pumping: the app's end reached EOF (it shut down writing or closed)
    pub(super) app_eof: bool,
    /// pumping: the app's end was shut down for writing (the peer closed)
    pub(super) shut: bool,
    /// when the app closed every copy of its end of a connection the peer
    /// has not finished yet
    pub(super) orphaned: Option<Instant>,
    /// the events registered in the epoll set
    pub(super) interest: EpollFlags,
    /// the app's end may have bytes to read (no EAGAIN since it last said so)
    pub(super) readable: bool,
    /// the app's end may take bytes (no EAGAIN since it last said so)
    pub(super) writable: bool,
    /// UDP: where the datagrams on the app's end came from, oldest first
    pub(super) sources: VecDeque<super::udp::Came>,
    /// UDP: datagrams not yet written to the app's end (it was full), and
    /// where they came from
    pub(super) held: VecDeque<(Vec<u8>, super::udp::Came)>,
    /// bytes the Sentry wrote on the app's end to keep it from polling
    /// writable while it connects ([`Stack::hold_writes`]), still to be
    /// read off the stack's end before the app's own
    pub(super) junk: usize,
    /// when its connect(2) started (a handshake that ends unanswered
    /// after [`CONNECT_TIMEOUT`] failed with ETIMEDOUT)
    pub(super) connect_started: Option<Instant>,
    /// a listening socket's listeners in a shard other than its own
    /// ([`Stack::mirror`]): the same key, a copy of the stack's end
    pub(super) mirror: bool,
}

impl Sock {
    /// Whether it is a datagram socket (UDP or ICMP echo).
    pub fn is_udp(&self) -> bool {
        matches!(self.state, State::Datagram { .. })
    }

    /// Its protocol, as ports are taken: (datagram, ICMP echo).
    pub(super) fn kind(&self) -> (bool, bool) {
        (self.is_udp(), self.is_ping())
    }

    /// Whether it is an ICMP echo socket.
    pub fn is_ping(&self) -> bool {
        matches!(self.state, State::Datagram { ping: true, .. })
    }

    /// Whether the app closed every copy of its end (the thread drops
    /// such a socket when it next wakes; until then it holds no port).
    pub(super) fn app_gone(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.ours.as_fd(), PollFlags::empty())];
        poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
            && fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLHUP))
    }

    /// Whether it is a route netlink socket.
    pub fn is_netlink(&self) -> bool {
        matches!(self.state, State::Netlink { .. })
    }
}

/// The interface, smoltcp's sockets, the app's.
pub struct Stack {
    pub(super) iface: Interface,
    pub(super) device: super::device::Link,
    /// the pod's interface, if the stack took it over
    pub pod: Option<Arc<super::pod::Pod>>,
    pub(super) sockets: SocketSet<'static>,
    /// the app's sockets by the inode number of their app end
    pub(super) socks: Socks,
    pub(super) epoll: Epoll,
    /// aborted connections, removed after the next poll (which sends their RST)
    pub(super) dying: Vec<SocketHandle>,
    pub(super) next_port: u16,
    /// the shard the next connection that chose no port goes to
    pub(super) next_shard: usize,
    /// the netlink port id the next socket that binds none gets
    next_netlink: u32,
}

fn tcp_socket() -> tcp::Socket<'static> {
    let mut t =
        tcp::Socket::new(tcp::SocketBuffer::new(vec![0; TCP_BUFFER]), tcp::SocketBuffer::new(vec![0; TCP_BUFFER]));
    // a window is a segment or two here: an ACK held back (smoltcp's 10 ms
    // default) stalls the sender that long
    t.set_ack_delay(None);
    t
}

impl Stack {
    /// Shard `shard` of a stack with a loopback interface and, if given,
    /// the pod's interface, its addresses and routes; `wake` is watched by
    /// the shard's thread, `known` is what the shards know of neighbors.
    pub fn new(
        wake: BorrowedFd<'_>,
        pod: Option<Arc<super::pod::Pod>>,
        shard: usize,
        known: Arc<super::device::Neighbors>,
    ) -> std::io::Result<Stack> {
        let mut device = super::device::Link::new(pod.as_deref(), shard, known)?;
        let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, Instant::now());
        let pod_addrs = pod.iter().flat_map(|p| p.addrs.iter());
        iface.update_ip_addrs(|a| {
            // (the pod's first: smoltcp takes the first IPv4 address as the
            // source of a packet to anywhere else)
            for c in pod_addrs {
                let _ = a.push(IpCidr::new(IpAddress::from(c.ip), c.prefix));
            }
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(Ipv4Address::new(127, 0, 0, 1)), 8));
            let _ = a.push(IpCidr::new(IpAddress::Ipv6(Ipv6Address::LOCALHOST), 128));
        });
        for r in pod.iter().flat_map(|p| p.routes.iter()) {
            let Some(gw) = r.gateway else { continue };
            let route = smoltcp::iface::Route {
                cidr: IpCidr::new(IpAddress::from(r.dst.ip), r.dst.prefix),
                via_router: IpAddress::from(gw),
                preferred_until: None,
                expires_at: None,
            };
            iface.routes_mut().update(|t| {
                let _ = t.push(route);
            });
        }
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE_KEY))?;
        if let Some(p) = &pod {
            epoll.add(p.packets[shard].as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, POD_KEY))?;
        }
        Ok(Stack {
            iface,
            device,
            pod,
            sockets: SocketSet::new(Vec::new()),
            socks: Socks::default(),
            epoll,
            dying: Vec::new(),
            next_port: *EPHEMERAL.start(),
            next_shard: 0,
            next_netlink: 0x7000_0000,
        })
    }

    /// Makes a TCP socket of `family` (with `datagram`, a UDP one, or an
    /// ICMP echo one if it says so): the app's end of its socketpair, to
    /// install (O_NONBLOCK if `nonblock`).
    pub fn socket(&mut self, family: Family, datagram: Option<bool>, nonblock: bool) -> Result<OwnedFd, Errno> {
        // (a datagram socket's pair keeps datagrams apart and, unlike a
        // datagram pair, tells the stack when the app closed its end)
        let kind = if datagram.is_some() { SockType::SeqPacket } else { SockType::Stream };
        let (ours, app) = socketpair(AddressFamily::Unix, kind, None, SockFlag::SOCK_CLOEXEC)?;
        super::nonblocking(&ours, true)?;
        if nonblock {
            super::nonblocking(&app, true)?;
        }
        let ino = nix::sys::stat::fstat(app.as_fd())?.st_ino;
        let state = match datagram {
            Some(ping) => State::Datagram { ping, handle: None, peer: None },
            None => State::Fresh,
        };
        let sock = self.watched(ino, family, state, ours)?;
        self.socks.insert(ino, sock);
        Ok(app)
    }

    /// A socket of key `key` over the stack's end `ours`, watched in the
    /// epoll set for the app's close, as yet unread and unwritten.
    fn watched(&mut self, key: u64, family: Family, state: State, ours: OwnedFd) -> Result<Sock, Errno> {
        let changed = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        let interest = EpollFlags::EPOLLRDHUP;
        self.epoll.add(ours.as_fd(), EpollEvent::new(interest, key))?;
        Ok(Sock {
            family,
            state,
            ours,
            local: Addr::ANY,
            opts: Opts::default(),
            error: None,
            changed,
            app_eof: false,
            shut: false,
            orphaned: None,
            interest,
            readable: true,
            writable: true,
            sources: VecDeque::new(),
            held: VecDeque::new(),
            junk: 0,
            connect_started: None,
            mirror: false,
        })
    }

    /// Makes a route netlink socket: the app's end of its socketpair
    /// (datagrams kept apart), to install (O_NONBLOCK if `nonblock`).
    pub fn netlink_socket(&mut self, nonblock: bool) -> Result<OwnedFd, Errno> {
        let app = self.socket(Family::V4, Some(false), nonblock)?;
        let key = nix::sys::stat::fstat(app.as_fd())?.st_ino;
        let interest = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        let Stack { socks, epoll, .. } = self;
        let s = socks.get_mut(&key).ok_or(Errno::EBADF)?;
        s.state = State::Netlink { port: 0 };
        epoll.modify(s.ours.as_fd(), &mut EpollEvent::new(interest, key))?;
        s.interest = interest;
        Ok(app)
    }

    /// Netlink socket `key`'s port id, chosen now if it has none (`want`:
    /// the one bind(2) asks for, 0 for any).
    pub fn netlink_port(&mut self, key: u64, want: u32) -> Result<u32, Errno> {
        let taken = |socks: &Socks, p: u32| {
            socks.iter().any(|(k, s)| *k != key && matches!(s.state, State::Netlink { port } if port == p))
        };
        let State::Netlink { port } = self.sock(key)?.state else { return Err(Errno::EOPNOTSUPP) };
        if port != 0 {
            return if want == 0 || want == port { Ok(port) } else { Err(Errno::EINVAL) };
        }
        let port = match want {
            0 => loop {
                self.next_netlink = self.next_netlink.wrapping_add(1).max(1);
                if !taken(&self.socks, self.next_netlink) {
                    break self.next_netlink;
                }
            },
            p if taken(&self.socks, p) => return Err(Errno::EADDRINUSE),
            p => p,
        };
        self.sock(key)?.state = State::Netlink { port };
        Ok(port)
    }

    /// Answers the netlink request `data` the app sent on socket `key`:
    /// the answer waits on the app's end.
    pub fn netlink_request(&mut self, key: u64, data: &[u8]) -> Result<(), Errno> {
        let port = self.netlink_port(key, 0)?;
        let answer = super::netlink::answer(self.pod.as_deref(), port, data);
        let s = self.sock(key)?;
        for d in answer {
            let flags = nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL;
            // (an app that does not read its answers loses the next ones, as on Linux: ENOBUFS there)
            let _ = nix::sys::socket::send(s.ours.as_raw_fd(), &d, flags);
        }
        Ok(())
    }

    /// The inodes of both ends of every socketpair of the stack's (they
    /// are unix sockets of the Sentry's network namespace, as the app's
    /// own unix sockets are).
    pub fn own_inodes(&self) -> std::collections::HashSet<u64> {
        let mut all = std::collections::HashSet::with_capacity(self.socks.len() * 2);
        for (key, s) in &self.socks {
            all.insert(*key);
            all.extend(nix::sys::stat::fstat(s.ours.as_fd()).ok().map(|st| st.st_ino));
        }
        all
    }

    /// The socket `key`.
    pub fn sock(&mut self, key: u64) -> Result<&mut Sock, Errno> {
        self.socks.get_mut(&key).ok_or(Errno::EBADF)
    }

    /// Whether `port` is taken on `ip` by another socket than `key` (of its protocol).
    pub(super) fn taken(&self, key: u64, ip: Option<IpAddress>, port: u16, reuse: bool) -> bool {
        self.socks.get(&key).is_some_and(|s| self.taken_as(key, s.kind(), ip, port, reuse))
    }

    /// Whether `port` is taken on `ip` by another socket than `key`, one
    /// of protocol `kind` ([`Sock::kind`]), in this shard.
    pub(super) fn taken_as(&self, key: u64, kind: (bool, bool), ip: Option<IpAddress>, port: u16, reuse: bool) -> bool {
        self.socks.iter().any(|(k, s)| {
            *k != key
                && s.kind() == kind
                && s.local.port == port
                && !matches!(s.state, State::Failed)
                && (s.local.ip.is_none() || ip.is_none() || s.local.ip == ip)
                // SO_REUSEADDR: past connections on the port (a restarted
                // server's) and other such sockets do not count; a listener does
                && !(reuse
                    && !matches!(s.state, State::Listening { .. })
                    && (s.opts.reuse_addr || matches!(s.state, State::Connected(_) | State::Connecting(_))))
                && !(s.opts.reuse_port && reuse)
                // (a closed listener's or datagram socket's port is free at
                // once, as on Linux, before the thread drops it)
                && !(matches!(s.state, State::Listening { .. } | State::Datagram { .. }) && s.app_gone())
        })
    }

    /// A free ephemeral port for `key` on `ip`, in this shard (a datagram
    /// socket's: they all live in shard 0).
    pub(super) fn ephemeral(&mut self, key: u64, ip: Option<IpAddress>) -> Result<u16, Errno> {
        let mut next = self.next_port;
        let port = next_ephemeral(&mut next, |p| !self.taken(key, ip, p, false));
        self.next_port = next;
        port
    }

    /// A listening socket's smoltcp listeners on `local` for `backlog`
    /// (up to [`MAX_LISTENERS`] handshakes at once).
    fn listeners(&mut self, local: Addr, backlog: usize) -> Result<Vec<SocketHandle>, Errno> {
        (0..backlog.min(MAX_LISTENERS)).map(|_| self.listener(local)).collect()
    }

    fn listener(&mut self, local: Addr) -> Result<SocketHandle, Errno> {
        let mut t = tcp_socket();
        t.listen(IpListenEndpoint { addr: local.ip, port: local.port }).map_err(|_| Errno::EINVAL)?;
        Ok(self.sockets.add(t))
    }

    /// listen(2) of bound socket `key`, in its own shard.
    pub(super) fn listen(&mut self, key: u64, backlog: usize) -> Result<(), Errno> {
        let s = self.sock(key)?;
        match &mut s.state {
            State::Listening { backlog: b, .. } => {
                *b = backlog;
                return Ok(());
            }
            State::Bound => {}
            // not a connection-mode socket
            State::Datagram { .. } => return Err(Errno::EOPNOTSUPP),
            _ => return Err(Errno::EINVAL),
        }
        let local = s.local;
        let waiting = self.listeners(local, backlog)?;
        let queued = Arc::new(AtomicUsize::new(0));
        self.sock(key)?.state = State::Listening { backlog, waiting, ready: VecDeque::new(), queued };
        Ok(())
    }

    /// Listens in this shard too for listening socket `s` of another
    /// (`ours`: a copy of its end): the connections its listeners take
    /// are this shard's, accepted through the socket's key.
    pub(super) fn mirror(&mut self, key: u64, s: &Sock, ours: OwnedFd) -> Result<(), Errno> {
        let State::Listening { backlog, queued, .. } = &s.state else { return Err(Errno::EINVAL) };
        let waiting = self.listeners(s.local, *backlog)?;
        let state = State::Listening { backlog: *backlog, waiting, ready: VecDeque::new(), queued: queued.clone() };
        let mirror = Sock { local: s.local, opts: s.opts, mirror: true, ..self.watched(key, s.family, state, ours)? };
        if let Some(old) = self.socks.insert(key, mirror) {
            self.drop_old(old);
        }
        Ok(())
    }

    /// connect(2): starts the connection; its outcome comes with the state.
    /// A UDP socket takes `to` as its peer (None: AF_UNSPEC, no peer).
    pub fn connect(&mut self, key: u64, to: Option<Addr>) -> Result<(), Errno> {
        if self.sock(key)?.is_udp() {
            return self.udp_connect(key, to);
        }
        let to = to.ok_or(Errno::EAFNOSUPPORT)?;
        let s = self.sock(key)?;
        match s.state {
            State::Fresh | State::Bound => {}
            State::Connecting(_) => return Err(Errno::EALREADY),
            State::Connected(_) => return Err(Errno::EISCONN),
            State::Listening { .. } | State::Failed | State::Datagram { .. } | State::Netlink { .. } => {
                return Err(Errno::EINVAL)
            }
        }
        if to.port == 0 {
            return Err(Errno::ECONNREFUSED);
        }
        // "any" is this host, as on Linux
        let ip = match to.ip {
            Some(ip) => ip,
            None if s.family == Family::V6 => IpAddress::Ipv6(Ipv6Address::LOCALHOST),
            None => IpAddress::Ipv4(Ipv4Address::new(127, 0, 0, 1)),
        };
        let (opts, local) = (s.opts, s.local);
        let from_ip = local.ip.or_else(|| self.source(ip));
        if !self.device.reaches(ip.into()) {
            return Err(Errno::ENETUNREACH);
        }
        let port = match local.port {
            0 => self.ephemeral(key, None)?,
            p => p,
        };
        let mut t = tcp_socket();
        apply(&mut t, &opts, true);
        t.set_timeout(Some(CONNECT_TIMEOUT));
        let from = IpListenEndpoint { addr: from_ip, port };
        t.connect(self.iface.context(), IpEndpoint::new(ip, to.port), from).map_err(|_| Errno::EINVAL)?;
        pace_acks(&mut t, &self.device);
        let h = self.sockets.add(t);
        let s = self.sock(key)?;
        s.local = Addr { ip: local.ip, port };
        s.state = State::Connecting(h);
        s.connect_started = Some(Instant::now());
        // (the handshake carries the traffic class already, as on Linux)
        self.mark_flow(key);
        Ok(())
    }

    /// Writes on the app's end `theirs` of connecting socket `key` until
    /// it no longer polls writable: as on Linux, a socket whose
    /// non-blocking connect is under way becomes writable when it connects
    /// (or fails). The thread reads those bytes off its end then.
    pub fn hold_writes(&mut self, key: u64, theirs: &OwnedFd) -> Result<(), Errno> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let s = self.sock(key)?;
        let junk = [0u8; 64 * 1024];
        // (a larger SO_SNDBUF takes more: writable while a quarter is free)
        for _ in 0..64 {
            let mut fds = [PollFd::new(theirs.as_fd(), PollFlags::POLLOUT)];
            let writable = poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
                && fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLOUT));
            if !writable {
                break;
            }
            let flags = nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL;
            match nix::sys::socket::send(theirs.as_raw_fd(), &junk, flags) {
                Ok(n) => s.junk += n,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// accept(2) of the next connection this shard's listeners for `key`
    /// took, if one is ready: the app's end of its new socket (O_NONBLOCK
    /// if `nonblock`, with options `opts`, the listening socket's) and the
    /// peer's address. `theirs` is the listening socket's app end (its byte
    /// is taken with the last connection waiting, in any shard).
    pub(super) fn accept(
        &mut self,
        key: u64,
        theirs: &OwnedFd,
        nonblock: bool,
        opts: Opts,
    ) -> Result<Option<(OwnedFd, Addr)>, Errno> {
        let s = self.sock(key)?;
        let family = s.family;
        let local = s.local;
        let State::Listening { ready, waiting, queued, .. } = &mut s.state else {
            return Err(if s.is_udp() { Errno::EOPNOTSUPP } else { Errno::EINVAL });
        };
        let Some(h) = ready.pop_front() else { return Ok(None) };
        let last = queued.fetch_sub(1, Ordering::SeqCst) == 1;
        let refill = waiting.is_empty() && ready.len() < MAX_READY;
        if refill {
            let l = self.listener(local)?;
            if let Ok(State::Listening { waiting, .. }) = self.sock(key).map(|s| &mut s.state) {
                waiting.push(l);
            }
        }
        if last {
            let mut byte = [0u8; 1];
            let _ = nix::sys::socket::recv(theirs.as_raw_fd(), &mut byte, nix::sys::socket::MsgFlags::MSG_DONTWAIT);
        }
        let app = self.socket(family, None, nonblock)?;
        let peer = self.sockets.get::<tcp::Socket>(h).remote_endpoint().map(Addr::from).unwrap_or(Addr::ANY);
        let local = self.sockets.get::<tcp::Socket>(h).local_endpoint().map(Addr::from).unwrap_or(Addr::ANY);
        // (the listener's options carry over, as on Linux: TCP_NODELAY, SO_KEEPALIVE …)
        let key2 = nix::sys::stat::fstat(app.as_fd())?.st_ino;
        let s2 = self.sock(key2)?;
        s2.local = local;
        s2.opts = opts;
        s2.state = State::Connected(h);
        self.apply_opts(key2)?;
        Ok(Some((app, peer)))
    }

    /// The source address of a packet to `ip` from a socket bound to "any",
    /// where smoltcp's choice would not be Linux's: an own address is its own
    /// source (the loopback's 127.0.0.1 or ::1). None: smoltcp chooses.
    pub(super) fn source(&self, ip: IpAddress) -> Option<IpAddress> {
        match ip {
            IpAddress::Ipv4(v4) if v4.is_loopback() => Some(IpAddress::Ipv4(Ipv4Address::new(127, 0, 0, 1))),
            ip if self.device.is_own(ip.into()) => Some(ip),
            _ => None,
        }
    }

    /// getsockname(2).
    pub fn name(&mut self, key: u64) -> Result<Addr, Errno> {
        let s = self.sock(key)?;
        if s.is_udp() {
            return Ok(s.local);
        }
        let h = match s.state {
            State::Connected(h) | State::Connecting(h) => h,
            _ => return Ok(s.local),
        };
        let local = s.local;
        Ok(self.sockets.get::<tcp::Socket>(h).local_endpoint().map(Addr::from).unwrap_or(local))
    }

    /// getpeername(2).
    pub fn peer(&mut self, key: u64) -> Result<Addr, Errno> {
        let s = self.sock(key)?;
        match s.state {
            State::Datagram { peer, .. } => peer.ok_or(Errno::ENOTCONN),
            State::Connected(h) => {
                self.sockets.get::<tcp::Socket>(h).remote_endpoint().map(Addr::from).ok_or(Errno::ENOTCONN)
            }
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// Applies the socket's options to its connection, if it has one.
    pub fn apply_opts(&mut self, key: u64) -> Result<(), Errno> {
        let s = self.sock(key)?;
        let opts = s.opts;
        if let State::Connected(h) | State::Connecting(h) = s.state {
            let connecting = matches!(s.state, State::Connecting(_));
            apply(self.sockets.get_mut::<tcp::Socket>(h), &opts, connecting);
            self.mark_flow(key);
        }
        Ok(())
    }

    /// What TCP_INFO tells of socket `key` (ENOPROTOOPT: not a TCP one).
    pub fn tcp_info(&mut self, key: u64) -> Result<super::tcpinfo::Info, Errno> {
        use super::tcpinfo::{self, Info};
        let s = self.sock(key)?;
        let h = match s.state {
            State::Connecting(h) | State::Connected(h) => h,
            State::Listening { .. } => return Ok(Info { state: tcpinfo::LISTEN, ..Info::default() }),
            State::Datagram { .. } | State::Netlink { .. } => return Err(Errno::ENOPROTOOPT),
            State::Fresh | State::Bound | State::Failed => {
                return Ok(Info { state: tcpinfo::CLOSE, ..Info::default() })
            }
        };
        let t = self.sockets.get::<tcp::Socket>(h);
        let mut info = Info {
            state: tcpinfo::state(t.state()),
            rcv_space: u32::try_from(t.recv_capacity() - t.recv_queue()).unwrap_or(u32::MAX),
            ..Info::default()
        };
        if let Some(peer) = t.remote_endpoint().map(|e| std::net::IpAddr::from(e.addr)) {
            let mtu = self.device.mtu_to(peer);
            info.pmtu = u32::try_from(mtu).unwrap_or(u32::MAX);
            info.mss = tcpinfo::mss(peer, mtu);
        }
        Ok(info)
    }

    /// The flow of connection `h`'s packets going out (its source port,
    /// destination address and port), once it has both ends.
    fn tcp_flow(&self, h: SocketHandle) -> Option<super::ipmeta::Flow> {
        let t = self.sockets.get::<tcp::Socket>(h);
        let (local, remote) = (t.local_endpoint()?, t.remote_endpoint()?);
        Some((local.port, remote.addr.into(), remote.port))
    }

    /// Has the device write connection `key`'s traffic class (IP_TOS, or
    /// IPV6_TCLASS to an IPv6 peer) into its packets: smoltcp's TCP has none.
    fn mark_flow(&mut self, key: u64) {
        let Some(s) = self.socks.get(&key) else { return };
        let (State::Connecting(h) | State::Connected(h)) = s.state else { return };
        let opts = s.opts;
        if let Some(flow) = self.tcp_flow(h) {
            let class = if flow.1.is_ipv4() { opts.tos } else { opts.tclass };
            self.device.meta.tcp_class(flow, class);
        }
    }

    /// Forgets connection `h`'s traffic class (it is going).
    pub(super) fn unmark_flow(&mut self, h: SocketHandle) {
        if let Some(flow) = self.tcp_flow(h) {
            self.device.meta.tcp_class(flow, 0);
        }
    }

    /// Replaces the listeners of `key` that took a connection; their
    /// connections, once established, wait to be accepted (a byte on the
    /// app's end while any does). Returns whether any did.
    pub(super) fn tend_listeners(&mut self, key: u64) -> bool {
        let Some(s) = self.socks.get_mut(&key) else { return false };
        let local = s.local;
        let State::Listening { waiting, ready, queued, .. } = &mut s.state else { return false };
        let mut rang = false;
        let mut i = 0;
        while i < waiting.len() {
            let t = self.sockets.get::<tcp::Socket>(waiting[i]);
            match t.state() {
                tcp::State::Listen | tcp::State::SynReceived => i += 1,
                tcp::State::Closed | tcp::State::TimeWait => {
                    // a handshake that failed: listen again
                    let h = waiting.swap_remove(i);
                    self.sockets.remove(h);
                    let mut t = tcp_socket();
                    if t.listen(IpListenEndpoint { addr: local.ip, port: local.port }).is_ok() {
                        waiting.push(self.sockets.add(t));
                    }
                }
                _ => {
                    // (past the backlog Linux lets the handshake stall
                    // until there is room; here it completes, up to a limit)
                    let h = waiting.swap_remove(i);
                    pace_acks(self.sockets.get_mut::<tcp::Socket>(h), &self.device);
                    // (one byte while any waits, in any shard: a byte each
                    // would fill the socketpair's buffer past a few hundred)
                    if queued.fetch_add(1, Ordering::SeqCst) == 0 {
                        let _ = nix::unistd::write(&s.ours, &[0u8]);
                    }
                    ready.push_back(h);
                    rang = true;
                    if ready.len() + waiting.len() < MAX_READY {
                        let mut t = tcp_socket();
                        if t.listen(IpListenEndpoint { addr: local.ip, port: local.port }).is_ok() {
                            waiting.push(self.sockets.add(t));
                        }
                    }
                }
            }
        }
        rang
    }

    /// Drops socket `key` and what it holds in smoltcp.
    pub(super) fn drop_sock(&mut self, key: u64) {
        if let Some(s) = self.socks.remove(&key) {
            self.drop_old(s);
        }
    }

    /// Drops socket `s` (no longer in the table) and what it holds.
    fn drop_old(&mut self, s: Sock) {
        let _ = self.epoll.delete(s.ours.as_fd());
        let handles: Vec<SocketHandle> = match s.state {
            State::Listening { waiting, ready, .. } => waiting.into_iter().chain(ready).collect(),
            State::Connecting(h) | State::Connected(h) => vec![h],
            State::Datagram { handle: Some(h), .. } => {
                self.sockets.remove(h);
                Vec::new()
            }
            _ => Vec::new(),
        };
        for h in handles {
            self.unmark_flow(h);
            let t = self.sockets.get_mut::<tcp::Socket>(h);
            if t.is_open() {
                t.abort();
                self.dying.push(h);
            } else {
                self.sockets.remove(h);
            }
        }
    }
}

/// The first of the ephemeral ports from `*next` on, round and round,
/// that is `free`; `*next` moves past it. EADDRINUSE when none is.
pub(super) fn next_ephemeral(next: &mut u16, mut free: impl FnMut(u16) -> bool) -> Result<u16, Errno> {
    let span = usize::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
    for _ in 0..span {
        let port = *next;
        *next = if port == *EPHEMERAL.end() { *EPHEMERAL.start() } else { port + 1 };
        if free(port) {
            return Ok(port);
        }
    }
    Err(Errno::EADDRINUSE)
}

/// How long a connection over the pod's interface holds an ACK back for
/// data to ride on (Linux's delayed ACK: at least 40 ms; smoltcp's 10).
const ACK_DELAY: Duration = Duration::from_millis(10);

/// A connection over the pod's interface acknowledges every second segment
/// or with its reply (a request's answer carries the ACK); one over the
/// loopback, whose window is a segment or two, at once.
fn pace_acks(t: &mut tcp::Socket<'_>, device: &super::device::Link) {
    let wire = t.remote_endpoint().is_some_and(|e| !device.is_own(e.addr.into()));
    t.set_ack_delay(wire.then_some(ACK_DELAY));
}

/// Applies the options `o` to connection `t`; its timeout is the
/// handshake's while it is `connecting`, else the options'.
pub(super) fn apply(t: &mut tcp::Socket<'_>, o: &Opts, connecting: bool) {
    t.set_nagle_enabled(!o.nodelay);
    t.set_keep_alive(o.keepalive.then(|| Duration::from_secs(o.keep_idle().into())));
    t.set_hop_limit(o.ttl);
    if !connecting {
        t.set_timeout(o.gives_up());
    }
}

impl Opts {
    /// TCP_KEEPIDLE: seconds of quiet before the first keep-alive probe.
    pub fn keep_idle(&self) -> u32 {
        self.keepidle.unwrap_or(7200)
    }

    /// TCP_KEEPINTVL: seconds between probes.
    pub fn keep_interval(&self) -> u32 {
        self.keepintvl.unwrap_or(75)
    }

    /// TCP_KEEPCNT: probes unanswered before the connection is given up.
    pub fn keep_count(&self) -> u32 {
        self.keepcnt.unwrap_or(9)
    }

    /// How long a connection's peer may stay silent (while bytes wait for
    /// its ACK, or with keep-alive on, at all) before the connection is
    /// given up: TCP_USER_TIMEOUT, else with keep-alive the probes' time
    /// (idle, then count × interval, as Linux gives up), else never.
    fn gives_up(&self) -> Option<Duration> {
        match (self.user_timeout, self.keepalive) {
            (0, false) => None,
            (0, true) => {
                let secs = u64::from(self.keep_idle()) + u64::from(self.keep_interval()) * u64::from(self.keep_count());
                Some(Duration::from_secs(secs))
            }
            (ms, _) => Some(Duration::from_millis(ms.into())),
        }
    }
}
