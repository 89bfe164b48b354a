//! Sockets. The Sentry decides which sockets a program may have; internet
//! TCP and UDP sockets are the sandbox's own netstack's where it has one
//! ([`crate::net`]: bind, listen, accept, connect, names, options, and
//! sendto/recvfrom with addresses served here); unix sockets are made by
//! the Sentry in a network namespace of its own and used natively; with
//! `--network=host` internet sockets are made by the Sentry's maker in the
//! app's namespace and used natively too.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType};

use super::{Call, Later, Memory, Reply};
use crate::net::addr::{self, Family};
use crate::net::cmsg::MAX_CONTROL;
use crate::net::stack::Stamp;
use crate::net::Netstack;

/// Netlink families a program may open: routing (ip, getaddrinfo's
/// interface list) and socket diagnostics (ss), both scoped to the
/// sandbox's network namespace. Host-wide ones (uevents, audit) are refused.
const NETLINK_OK: &[u64] = &[NETLINK_ROUTE, NETLINK_SOCK_DIAG];
const NETLINK_ROUTE: u64 = 0;
const NETLINK_SOCK_DIAG: u64 = 4;
/// The longest netlink request or answer read at once.
const MAX_NETLINK: usize = 256 * 1024;
/// getsockopt and setsockopt's level of netlink's own options
const SOL_NETLINK: i32 = 270;

/// socket(2) flags
const SOCK_NONBLOCK: u64 = libc::SOCK_NONBLOCK as u64;
const SOCK_CLOEXEC: u64 = libc::SOCK_CLOEXEC as u64;

/// Serves socket(2): raw and packet sockets are refused (they would reach
/// below the sandbox's network), netlink only for routing and diagnostics;
/// TCP, UDP and ICMP echo sockets are the netstack's where the sandbox has
/// one; unix sockets the Sentry makes ([`unix_socket`]); with
/// `--network=host` internet sockets its maker makes ([`host_socket`]).
pub fn socket(c: &Call<'_>) -> Reply {
    let domain = i32::try_from(c.args[0]).unwrap_or(-1);
    let kind = i32::try_from(c.args[1] & 0xf).unwrap_or(-1);
    // a guest of a pod's netstack that is gone (while it lives, its owner
    // serves these): no socket of the host's but a unix one
    if c.kernel.pod_owner.is_some() && domain != libc::AF_UNIX {
        return Reply::Error(Errno::ENETDOWN);
    }
    match (domain, kind) {
        // the kernel's socket diagnostics know none of the netstack's
        // sockets: refused, ss reads /proc/net, which the netstack makes
        (libc::AF_NETLINK, _) if c.args[2] == NETLINK_SOCK_DIAG && c.kernel.net.is_some() => {
            Reply::Error(Errno::EPROTONOSUPPORT)
        }
        // the netstack answers for the sandbox's interfaces, addresses and routes
        (libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_DGRAM)
            if c.args[2] == NETLINK_ROUTE && c.kernel.net.is_some() =>
        {
            netlink_socket(c)
        }
        (libc::AF_NETLINK, _) if NETLINK_OK.contains(&c.args[2]) => Reply::Continue,
        (libc::AF_NETLINK, _) => Reply::Error(Errno::EPERM),
        (libc::AF_UNIX, _) => unix_socket(c),
        // 10 is the obsolete SOCK_PACKET
        (libc::AF_PACKET, _) | (_, libc::SOCK_RAW) | (_, 10) => Reply::Error(Errno::EPERM),
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_DGRAM) if c.kernel.net.is_some() => {
            stack_socket(c, domain, kind == libc::SOCK_DGRAM)
        }
        (libc::AF_INET | libc::AF_INET6, _) => match &c.kernel.maker {
            Some(maker) => host_socket(c, maker, domain),
            None => Reply::Continue,
        },
        _ => Reply::Error(Errno::EAFNOSUPPORT),
    }
}

/// `--network=host`: an internet socket of the app's network namespace,
/// made by the Sentry's maker as the caller's file-system ids
/// ([`crate::net::maker`]).
fn host_socket(c: &Call<'_>, maker: &crate::net::maker::Maker, domain: i32) -> Reply {
    if c.args[1] & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Reply::Error(Errno::EINVAL);
    }
    let kind = (c.args[1] & (0xf | SOCK_NONBLOCK)) as i32;
    let made = c.task.creds().and_then(|who| maker.socket(domain, kind, c.args[2] as i32, who.fsuid, who.fsgid));
    reply(made.and_then(|s| c.fds.install(s, c.args[1] & SOCK_CLOEXEC != 0)))
}

/// The kind of unix socket socket(2) or socketpair(2) asks for, checked
/// as Linux does (SOCK_RAW means SOCK_DGRAM); its flags.
fn unix_kind(c: &Call<'_>) -> Result<(SockType, SockFlag), Errno> {
    if c.args[1] & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    if c.args[2] != 0 && c.args[2] != libc::PF_UNIX as u64 {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let kind = match (c.args[1] & 0xf) as i32 {
        libc::SOCK_STREAM => SockType::Stream,
        libc::SOCK_DGRAM | libc::SOCK_RAW => SockType::Datagram,
        libc::SOCK_SEQPACKET => SockType::SeqPacket,
        _ => return Err(Errno::ESOCKTNOSUPPORT),
    };
    let nonblock = if c.args[1] & SOCK_NONBLOCK != 0 { SockFlag::SOCK_NONBLOCK } else { SockFlag::empty() };
    Ok((kind, nonblock | SockFlag::SOCK_CLOEXEC))
}

/// socket(AF_UNIX, …), made by the Sentry: in its own network namespace,
/// so the abstract names the socket binds or reaches are the sandbox's
/// alone, never the host's (`--network=host`) or those of a pod's other
/// processes. Paths stay the tree's (a socket file is reached by its
/// inode, from any namespace). Everything else on it runs natively.
fn unix_socket(c: &Call<'_>) -> Reply {
    let made = unix_kind(c).and_then(|(kind, flags)| nix::sys::socket::socket(AddressFamily::Unix, kind, flags, None));
    reply(made.and_then(|s| c.fds.install(s, c.args[1] & SOCK_CLOEXEC != 0)))
}

/// socketpair(domain, type, protocol, sv): only unix sockets come in
/// pairs; made by the Sentry as [`unix_socket`] makes one.
pub fn socketpair(c: &Call<'_>) -> Reply {
    if c.args[0] != libc::AF_UNIX as u64 {
        return Reply::Error(Errno::EOPNOTSUPP);
    }
    let made = || -> Result<Reply, Errno> {
        let (kind, flags) = unix_kind(c)?;
        // as Linux: a pair the caller cannot be told of is not made
        c.mem.write(c.args[3], &[0u8; 8])?;
        let (a, b) = nix::sys::socket::socketpair(AddressFamily::Unix, kind, None, flags)?;
        let cloexec = c.args[1] & SOCK_CLOEXEC != 0;
        // (a caller out of fds for the second keeps the first: there is no
        // taking an installed fd back)
        let a = c.fds.place(a, cloexec)?;
        let b = c.fds.place(b, cloexec)?;
        c.mem.write(c.args[3], &[a.to_ne_bytes(), b.to_ne_bytes()].concat())?;
        Ok(Reply::Value(0))
    };
    reply(made())
}

fn stack_socket(c: &Call<'_>, domain: i32, datagram: bool) -> Reply {
    let kind = match (datagram, domain, c.args[2] as i32) {
        (false, _, 0 | libc::IPPROTO_TCP) => None,
        (true, _, 0 | libc::IPPROTO_UDP) => Some(false),
        // ICMP echo ("ping") sockets
        (true, libc::AF_INET, libc::IPPROTO_ICMP) | (true, libc::AF_INET6, libc::IPPROTO_ICMPV6) => Some(true),
        _ => return Reply::Error(Errno::EPROTONOSUPPORT),
    };
    if c.args[1] & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Reply::Error(Errno::EINVAL);
    }
    let (Some(net), Some(family)) = (c.kernel.net.as_ref(), Family::of(domain)) else {
        return Reply::Error(Errno::EAFNOSUPPORT);
    };
    let made = net.lock().socket(family, kind, c.args[1] & SOCK_NONBLOCK != 0);
    reply(made.and_then(|app| c.fds.install(app, c.args[1] & SOCK_CLOEXEC != 0)))
}

fn netlink_socket(c: &Call<'_>) -> Reply {
    if c.args[1] & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Reply::Error(Errno::EINVAL);
    }
    let Some(net) = c.kernel.net.as_ref() else { return Reply::Error(Errno::EAFNOSUPPORT) };
    let made = net.lock().netlink_socket(c.args[1] & SOCK_NONBLOCK != 0);
    reply(made.and_then(|app| c.fds.install(app, c.args[1] & SOCK_CLOEXEC != 0)))
}

/// struct sockaddr_nl of port id `port`.
fn sockaddr_nl(port: u32) -> Vec<u8> {
    [(libc::AF_NETLINK as u16).to_ne_bytes().as_slice(), &[0, 0], &port.to_ne_bytes(), &0u32.to_ne_bytes()].concat()
}

/// The netstack's netlink socket behind the caller's fd at argument 0.
fn ours_netlink(c: &Call<'_>) -> Option<(Arc<Netstack>, u64, OwnedFd)> {
    let (net, key, theirs) = ours(c)?;
    net.lock().sock(key).ok().filter(|s| s.is_netlink())?;
    Some((net, key, theirs))
}

/// bind, connect, getsockname, getpeername, get/setsockopt of a netlink
/// socket of the netstack's; None for any other socket.
fn netlink_call(c: &Call<'_>, call: NetlinkCall) -> Option<Reply> {
    let (net, key, _) = ours_netlink(c)?;
    let read_nl = || -> Result<u32, Errno> {
        let mut b = [0u8; 12];
        if c.args[2] < 12 {
            return Err(Errno::EINVAL);
        }
        c.mem.read(c.args[1], &mut b)?;
        if u16::from_ne_bytes([b[0], b[1]]) != libc::AF_NETLINK as u16 {
            return Err(Errno::EINVAL);
        }
        Ok(u32::from_ne_bytes([b[4], b[5], b[6], b[7]]))
    };
    let r = match call {
        NetlinkCall::Bind => read_nl().and_then(|pid| net.lock().netlink_port(key, pid)).map(|_| Reply::Value(0)),
        // (the kernel is the only peer)
        NetlinkCall::Connect => read_nl().map(|_| Reply::Value(0)),
        NetlinkCall::Name(peer) => {
            let port = if peer { Ok(0) } else { net.lock().netlink_port(key, 0) };
            port.and_then(|p| write_addr(c.mem, c.args[1], c.args[2], &sockaddr_nl(p))).map(|()| Reply::Value(0))
        }
        NetlinkCall::GetOpt => {
            let int = |v: i32| write_opt(c.mem, c.args[3], c.args[4], &v.to_ne_bytes()).map(|()| Reply::Value(0));
            match (c.args[1] as i32, c.args[2] as i32) {
                (SOL_SOCKET, libc::SO_TYPE) => int(libc::SOCK_RAW),
                (SOL_SOCKET, libc::SO_PROTOCOL) => int(NETLINK_ROUTE as i32),
                (SOL_SOCKET, libc::SO_DOMAIN) => int(libc::AF_NETLINK),
                (SOL_SOCKET, _) => return Some(Reply::Continue),
                (SOL_NETLINK, _) => int(0),
                _ => Err(Errno::ENOPROTOOPT),
            }
        }
        // extended acks, strict checking, groups: nothing changes what is answered
        NetlinkCall::SetOpt => match c.args[1] as i32 {
            SOL_SOCKET => return Some(Reply::Continue),
            SOL_NETLINK => Ok(Reply::Value(0)),
            _ => Err(Errno::ENOPROTOOPT),
        },
    };
    Some(reply(r))
}

/// What [`netlink_call`] serves.
enum NetlinkCall {
    Bind,
    Connect,
    /// getpeername (true) or getsockname
    Name(bool),
    GetOpt,
    SetOpt,
}

fn reply(r: Result<Reply, Errno>) -> Reply {
    r.unwrap_or_else(Reply::Error)
}

/// The netstack's socket behind the caller's fd at argument 0: the
/// stack, its key, and the Sentry's copy of the fd. None: not one of its
/// (the host's, or no netstack).
fn ours(c: &Call<'_>) -> Option<(Arc<Netstack>, u64, OwnedFd)> {
    let net = c.kernel.net.as_ref()?;
    let theirs = c.fds.get(i32::try_from(c.args[0]).ok()?).ok()?;
    let key = net.lock().find(&theirs)?;
    Some((net.clone(), key, theirs))
}

/// The address of `len` bytes at `at` in the caller, for a socket of `family`.
fn read_addr(mem: &dyn Memory, family: Family, at: u64, len: u64) -> Result<addr::Addr, Errno> {
    let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
    if len > 128 {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; len];
    mem.read(at, &mut b)?;
    addr::decode(family, &b)
}

/// Writes `bytes` (an address) to `at` as accept(2) and getsockname(2) do:
/// as much as the socklen_t at `len_at` allows, then the full length there.
fn write_addr(mem: &dyn Memory, at: u64, len_at: u64, bytes: &[u8]) -> Result<(), Errno> {
    if at == 0 {
        return Ok(());
    }
    copy_out(mem, at, len_at, bytes)?;
    mem.write(len_at, &(bytes.len() as u32).to_ne_bytes())
}

/// Writes as much of `bytes` at `at` as the caller's length at `len_at`
/// takes (a negative one is EINVAL); how much that was.
fn copy_out(mem: &dyn Memory, at: u64, len_at: u64, bytes: &[u8]) -> Result<usize, Errno> {
    let mut room = [0u8; 4];
    mem.read(len_at, &mut room)?;
    let room = usize::try_from(i32::from_ne_bytes(room)).map_err(|_| Errno::EINVAL)?;
    let n = room.min(bytes.len());
    mem.write(at, &bytes[..n])?;
    Ok(n)
}

/// Whether the caller's file (its open file description) is non-blocking.
fn nonblocking(theirs: &OwnedFd) -> bool {
    nix::fcntl::fcntl(theirs, nix::fcntl::FcntlArg::F_GETFL).is_ok_and(|f| f & libc::O_NONBLOCK != 0)
}

/// Waits until `fd` is readable; false if a signal came first (the
/// caller stopped waiting).
fn wait_readable(fd: &OwnedFd) -> bool {
    let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
    nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE).is_ok()
}

/// bind(fd, addr, len): the netstack's sockets here; a unix socket's path
/// in the tree ([`super::path::bind`]); the host binds the rest.
pub fn bind(c: &Call<'_>) -> Reply {
    let Some((net, key, _)) = ours(c) else { return super::path::bind(c) };
    if let Some(r) = netlink_call(c, NetlinkCall::Bind) {
        return r;
    }
    let family = match net.lock().sock(key) {
        Ok(s) => s.family,
        Err(e) => return Reply::Error(e),
    };
    let r = read_addr(c.mem, family, c.args[1], c.args[2]).and_then(|a| net.lock().bind(key, a));
    reply(r.map(|()| Reply::Value(0)))
}

/// listen(fd, backlog)
pub fn listen(c: &Call<'_>) -> Reply {
    let Some((net, key, _)) = ours(c) else { return Reply::Continue };
    let r = net.lock().listen(key, c.args[1] as i32);
    net.wake();
    reply(r.map(|()| Reply::Value(0)))
}

/// accept(fd, addr, len)
pub fn accept(c: &Call<'_>) -> Reply {
    accept_with(c, 0)
}

/// accept4(fd, addr, len, flags)
pub fn accept4(c: &Call<'_>) -> Reply {
    if c.args[3] & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Reply::Error(Errno::EINVAL);
    }
    accept_with(c, c.args[3])
}

fn accept_with(c: &Call<'_>, flags: u64) -> Reply {
    let Some((net, key, theirs)) = ours(c) else { return Reply::Continue };
    let (at, len_at) = (c.args[1], c.args[2]);
    let (nonblock, cloexec) = (flags & SOCK_NONBLOCK != 0, flags & SOCK_CLOEXEC != 0);
    // the next connection, installed; None if there is none yet
    let take =
        move |net: &Netstack, theirs: &OwnedFd, mem: &dyn Memory, install: &dyn Fn(OwnedFd) -> Result<i64, Errno>| {
            let (app, peer) = match net.lock().accept(key, theirs, nonblock) {
                Ok(Some(got)) => got,
                Ok(None) => return None,
                Err(e) => return Some(Reply::Error(e)),
            };
            // (what came before the accept is for the thread to hand over)
            net.wake();
            let family = net.lock().sock(key).map(|s| s.family).unwrap_or(Family::V4);
            if let Err(e) = write_addr(mem, at, len_at, &addr::encode(family, peer)) {
                return Some(Reply::Error(e));
            }
            Some(install(app).map(Reply::Answered).unwrap_or_else(Reply::Error))
        };
    let install_here = |app: OwnedFd| match c.fds.install(app, cloexec) {
        Ok(Reply::Answered(fd)) => Ok(fd),
        Ok(_) => Err(Errno::EIO),
        Err(e) => Err(e),
    };
    if let Some(r) = take(&net, &theirs, c.mem, &install_here) {
        return r;
    }
    if nonblocking(&theirs) {
        return Reply::Error(Errno::EAGAIN);
    }
    // a connection makes the listening socket's app end readable
    reply(c.fds.later(Box::new(move |l: &dyn Later| loop {
        if !wait_readable(&theirs) {
            return Reply::Error(Errno::EINTR);
        }
        if let Some(r) = take(&net, &theirs, l.mem(), &|app| l.install(app, cloexec)) {
            return r;
        }
    })))
}

/// connect(fd, addr, len)
pub fn connect(c: &Call<'_>) -> Reply {
    let Some((net, key, theirs)) = ours(c) else { return Reply::Continue };
    if let Some(r) = netlink_call(c, NetlinkCall::Connect) {
        return r;
    }
    let family = match net.lock().sock(key) {
        Ok(s) => s.family,
        Err(e) => return Reply::Error(e),
    };
    // AF_UNSPEC: a UDP socket forgets its peer
    let mut fam = [0u8; 2];
    let unspec = c.args[2] >= 2 && c.mem.read(c.args[1], &mut fam).is_ok() && u16::from_ne_bytes(fam) == 0;
    let udp = net.lock().sock(key).is_ok_and(|s| s.is_udp());
    let to = match (udp && unspec, read_addr(c.mem, family, c.args[1], c.args[2])) {
        (true, _) => None,
        (false, Ok(a)) => Some(a),
        (false, Err(e)) => return Reply::Error(e),
    };
    let nonblock = nonblocking(&theirs);
    {
        let mut stack = net.lock();
        if let Err(e) = stack.connect(key, to) {
            return Reply::Error(e);
        }
        if !udp && nonblock {
            if let Err(e) = stack.hold_writes(key, &theirs) {
                return Reply::Error(e);
            }
        }
    }
    net.wake();
    if udp {
        return Reply::Value(0);
    }
    if nonblock {
        return Reply::Error(Errno::EINPROGRESS);
    }
    reply(c.fds.later(Box::new(move |_: &dyn Later| loop {
        let changed = {
            let mut stack = net.lock();
            let s = match stack.sock(key) {
                Ok(s) => s,
                Err(e) => return Reply::Error(e),
            };
            match s.state {
                crate::net::stack::State::Connected(_) => return Reply::Value(0),
                crate::net::stack::State::Connecting(_) => {}
                _ => return Reply::Error(s.error.take().unwrap_or(Errno::ECONNREFUSED)),
            }
            match s.changed.as_fd().try_clone_to_owned() {
                Ok(fd) => fd,
                Err(_) => return Reply::Error(Errno::EMFILE),
            }
        };
        if !wait_readable(&changed) {
            return Reply::Error(Errno::EINTR);
        }
        let mut b = [0u8; 8];
        let _ = nix::unistd::read(&changed, &mut b);
    })))
}

/// getsockname(fd, addr, len)
pub fn getsockname(c: &Call<'_>) -> Reply {
    name(c, false)
}

/// getpeername(fd, addr, len)
pub fn getpeername(c: &Call<'_>) -> Reply {
    name(c, true)
}

fn name(c: &Call<'_>, peer: bool) -> Reply {
    let Some((net, key, _)) = ours(c) else { return Reply::Continue };
    if let Some(r) = netlink_call(c, NetlinkCall::Name(peer)) {
        return r;
    }
    let got = {
        let mut stack = net.lock();
        let family = stack.sock(key).map(|s| s.family);
        let a = if peer { stack.peer(key) } else { stack.name(key) };
        family.and_then(|f| a.map(|a| addr::encode(f, a)))
    };
    reply(got.and_then(|b| write_addr(c.mem, c.args[1], c.args[2], &b)).map(|()| Reply::Value(0)))
}

const SOL_SOCKET: i32 = libc::SOL_SOCKET;
/// SO_TIMESTAMP, SO_TIMESTAMPNS and their 64-bit-time numbers (x86-64's
/// are the same structs)
const TIMESTAMP: i32 = libc::SO_TIMESTAMP;
const TIMESTAMPNS: i32 = libc::SO_TIMESTAMPNS;
const TIMESTAMP_NEW: i32 = 63;
const TIMESTAMPNS_NEW: i32 = 64;

/// getsockopt(fd, level, name, value, len): the options the netstack
/// keeps; others of SOL_SOCKET (timeouts, buffer sizes) are the app's
/// end's, made by the host.
pub fn getsockopt(c: &Call<'_>) -> Reply {
    let Some((net, key, _)) = ours(c) else { return Reply::Continue };
    if let Some(r) = netlink_call(c, NetlinkCall::GetOpt) {
        return r;
    }
    let (level, name) = (c.args[1] as i32, c.args[2] as i32);
    let value: Result<Vec<u8>, Errno> = {
        let mut stack = net.lock();
        let s = match stack.sock(key) {
            Ok(s) => s,
            Err(e) => return Reply::Error(e),
        };
        let int = |v: i32| Ok(v.to_ne_bytes().to_vec());
        let o = s.opts;
        let udp = s.is_udp();
        match (level, name) {
            (SOL_SOCKET, libc::SO_TYPE) => int(if udp { libc::SOCK_DGRAM } else { libc::SOCK_STREAM }),
            (SOL_SOCKET, libc::SO_PROTOCOL) => int(match (udp, s.is_ping(), s.family) {
                (_, true, Family::V4) => libc::IPPROTO_ICMP,
                (_, true, Family::V6) => libc::IPPROTO_ICMPV6,
                (true, false, _) => libc::IPPROTO_UDP,
                (false, ..) => libc::IPPROTO_TCP,
            }),
            (SOL_SOCKET, libc::SO_ERROR) => int(s.error.take().map_or(0, |e| e as i32)),
            (SOL_SOCKET, libc::SO_DOMAIN) => int(s.family.domain()),
            (SOL_SOCKET, libc::SO_ACCEPTCONN) => {
                int(i32::from(matches!(s.state, crate::net::stack::State::Listening { .. })))
            }
            (SOL_SOCKET, libc::SO_REUSEADDR) => int(i32::from(o.reuse_addr)),
            (SOL_SOCKET, libc::SO_REUSEPORT) => int(i32::from(o.reuse_port)),
            (SOL_SOCKET, libc::SO_KEEPALIVE) => int(i32::from(o.keepalive)),
            (SOL_SOCKET, libc::SO_LINGER) => {
                let (on, secs) = o.linger.unwrap_or((false, 0));
                Ok([i32::from(on).to_ne_bytes(), secs.to_ne_bytes()].concat())
            }
            (SOL_SOCKET, TIMESTAMP | TIMESTAMP_NEW) if udp => int(i32::from(o.stamp.is_some_and(|st| !st.nanos))),
            (SOL_SOCKET, TIMESTAMPNS | TIMESTAMPNS_NEW) if udp => int(i32::from(o.stamp.is_some_and(|st| st.nanos))),
            (SOL_SOCKET, _) => return Reply::Continue,
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => int(i32::from(o.nodelay)),
            // (the path's segment size once connected, else Linux's default)
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) if !udp => {
                stack.tcp_info(key).map(|i| if i.mss == 0 { 536 } else { i.mss }).and_then(|mss| int(mss as i32))
            }
            (libc::IPPROTO_TCP, libc::TCP_INFO) if !udp => stack.tcp_info(key).map(|i| i.bytes()),
            (libc::IPPROTO_TCP, libc::TCP_CONGESTION) if !udp => Ok(CONGESTION.to_vec()),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => int(o.keep_idle() as i32),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => int(o.keep_interval() as i32),
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => int(o.keep_count() as i32),
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => int(o.user_timeout as i32),
            (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) => {
                int(i32::from(o.ttl.unwrap_or(64)))
            }
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if s.family == Family::V6 => int(i32::from(o.v6only)),
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => int(i32::from(o.pktinfo)),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO) if s.family == Family::V6 => int(i32::from(o.pktinfo6)),
            (libc::IPPROTO_IP, libc::IP_TOS) => int(i32::from(o.tos)),
            (libc::IPPROTO_IP, libc::IP_RECVTTL) => int(i32::from(o.recv_ttl)),
            (libc::IPPROTO_IP, libc::IP_RECVTOS) => int(i32::from(o.recv_tos)),
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) if s.family == Family::V6 => int(i32::from(o.tclass)),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT) if s.family == Family::V6 => int(i32::from(o.recv_hoplimit)),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS) if s.family == Family::V6 => int(i32::from(o.recv_tclass)),
            _ => Err(Errno::ENOPROTOOPT),
        }
    };
    reply(value.and_then(|v| write_opt(c.mem, c.args[3], c.args[4], &v)).map(|()| Reply::Value(0)))
}

/// Writes option value `bytes` at `at` for getsockopt, as much as the
/// caller's length at `len_at` takes, and that length back (Linux's
/// getsockopt tells what it wrote, not the value's whole length).
fn write_opt(mem: &dyn Memory, at: u64, len_at: u64, bytes: &[u8]) -> Result<(), Errno> {
    let n = copy_out(mem, at, len_at, bytes)?;
    mem.write(len_at, &(n as u32).to_ne_bytes())
}

/// The congestion control the stack's TCP runs (smoltcp's Reno), by
/// Linux's name for it, as TCP_CONGESTION tells it (16 bytes, NUL-padded).
const CONGESTION: &[u8; 16] = b"reno\0\0\0\0\0\0\0\0\0\0\0\0";

/// setsockopt(TCP_CONGESTION): the one algorithm there is may be asked
/// for; any other name is ENOENT, as Linux answers for one it lacks.
fn set_congestion(c: &Call<'_>, net: &crate::net::Netstack, key: u64) -> Reply {
    if net.lock().sock(key).is_ok_and(|s| s.is_udp()) {
        return Reply::Error(Errno::ENOPROTOOPT);
    }
    let len = usize::try_from(c.args[4]).unwrap_or(0).min(CONGESTION.len() - 1);
    let mut name = vec![0u8; len];
    if let Err(e) = c.mem.read(c.args[3], &mut name) {
        return Reply::Error(e);
    }
    let name = name.split(|b| *b == 0).next().unwrap_or_default();
    if name.is_empty() {
        return Reply::Error(Errno::EINVAL);
    }
    match CONGESTION.starts_with(name) && CONGESTION[name.len()] == 0 {
        true => Reply::Value(0),
        false => Reply::Error(Errno::ENOENT),
    }
}

/// setsockopt(fd, level, name, value, len): as getsockopt; options real
/// programs set and the netstack has no use for yet are accepted.
pub fn setsockopt(c: &Call<'_>) -> Reply {
    let Some((net, key, _)) = ours(c) else { return Reply::Continue };
    if let Some(r) = netlink_call(c, NetlinkCall::SetOpt) {
        return r;
    }
    let (level, name, at, len) = (c.args[1] as i32, c.args[2] as i32, c.args[3], c.args[4]);
    if (level, name) == (libc::IPPROTO_TCP, libc::TCP_CONGESTION) {
        return set_congestion(c, &net, key);
    }
    let stamp = level == SOL_SOCKET && matches!(name, TIMESTAMP | TIMESTAMPNS | TIMESTAMP_NEW | TIMESTAMPNS_NEW);
    if level == SOL_SOCKET
        && !stamp
        && !matches!(name, libc::SO_REUSEADDR | libc::SO_REUSEPORT | libc::SO_KEEPALIVE | libc::SO_LINGER)
    {
        return Reply::Continue;
    }
    let len = usize::try_from(len).unwrap_or(0);
    if len < 4 {
        return Reply::Error(Errno::EINVAL);
    }
    let mut b = vec![0u8; len.min(16)];
    if let Err(e) = c.mem.read(at, &mut b) {
        return Reply::Error(e);
    }
    let v = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    let mut stack = net.lock();
    let s = match stack.sock(key) {
        Ok(s) => s,
        Err(e) => return Reply::Error(e),
    };
    let udp = s.is_udp();
    let o = &mut s.opts;
    match (level, name) {
        // (a TCP socket's timestamps are its app end's: nothing comes of them)
        _ if stamp && !udp => return Reply::Continue,
        (SOL_SOCKET, libc::SO_REUSEADDR) => o.reuse_addr = v != 0,
        (SOL_SOCKET, libc::SO_REUSEPORT) => o.reuse_port = v != 0,
        (SOL_SOCKET, libc::SO_KEEPALIVE) => o.keepalive = v != 0,
        (SOL_SOCKET, libc::SO_LINGER) if b.len() >= 8 => {
            o.linger = Some((v != 0, i32::from_ne_bytes([b[4], b[5], b[6], b[7]])));
        }
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => o.nodelay = v != 0,
        // keep-alive's timing and the user timeout (in Linux's ranges)
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL | libc::TCP_KEEPCNT) => {
            let (field, max) = match name {
                libc::TCP_KEEPIDLE => (&mut o.keepidle, 32767),
                libc::TCP_KEEPINTVL => (&mut o.keepintvl, 32767),
                _ => (&mut o.keepcnt, 127),
            };
            if !(1..=max).contains(&v) {
                return Reply::Error(Errno::EINVAL);
            }
            *field = Some(v as u32);
        }
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => match u32::try_from(v) {
            Ok(ms) => o.user_timeout = ms,
            Err(_) => return Reply::Error(Errno::EINVAL),
        },
        (libc::IPPROTO_TCP, libc::TCP_QUICKACK | libc::TCP_CORK | libc::TCP_DEFER_ACCEPT | libc::TCP_FASTOPEN) => {}
        (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) => {
            o.ttl = match v {
                -1 => None,
                1..=255 => Some(v as u8),
                _ => return Reply::Error(Errno::EINVAL),
            }
        }
        (libc::IPPROTO_IP, libc::IP_PKTINFO) => o.pktinfo = v != 0,
        (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO) if s.family == Family::V6 => o.pktinfo6 = v != 0,
        (SOL_SOCKET, TIMESTAMP | TIMESTAMP_NEW) => {
            // (Linux's SCM_TIMESTAMP* numbers are the options')
            o.stamp = (v != 0).then_some(Stamp { kind: name, nanos: false });
        }
        (SOL_SOCKET, TIMESTAMPNS | TIMESTAMPNS_NEW) => o.stamp = (v != 0).then_some(Stamp { kind: name, nanos: true }),
        // a socket's traffic class: its datagrams', its connection's
        // packets' (written by the device: `net::ipmeta`)
        (libc::IPPROTO_IP, libc::IP_TOS) => o.tos = traffic_class(udp, v as u8, o.tos),
        (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) if s.family == Family::V6 => {
            let class = match v {
                -1 => 0,
                0..=255 => v as u8,
                _ => return Reply::Error(Errno::EINVAL),
            };
            o.tclass = traffic_class(udp, class, o.tclass);
        }
        (libc::IPPROTO_IP, libc::IP_RECVTTL) => o.recv_ttl = v != 0,
        (libc::IPPROTO_IP, libc::IP_RECVTOS) => o.recv_tos = v != 0,
        (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT) if s.family == Family::V6 => o.recv_hoplimit = v != 0,
        (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS) if s.family == Family::V6 => o.recv_tclass = v != 0,
        // accepted, with no effect here: no error queue or path MTU
        // discovery on the stack's sockets yet (glibc's resolver sets
        // IP_RECVERR on each of its sockets)
        (
            libc::IPPROTO_IP,
            libc::IP_RECVERR | libc::IP_MTU_DISCOVER | libc::IP_FREEBIND | libc::IP_BIND_ADDRESS_NO_PORT,
        )
        | (libc::IPPROTO_IPV6, libc::IPV6_RECVERR | libc::IPV6_MTU_DISCOVER) => {}
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if s.family == Family::V6 => o.v6only = v != 0,
        _ => return Reply::Error(Errno::ENOPROTOOPT),
    }
    reply(stack.apply_opts(key).map(|()| Reply::Value(0)))
}

/// The traffic class a socket takes from IP_TOS or IPV6_TCLASS `asked`,
/// having `had`: a TCP socket's ECN bits (the low two) stay the stack's,
/// as Linux keeps them.
fn traffic_class(datagram: bool, asked: u8, had: u8) -> u8 {
    const ECN: u8 = 0b11;
    if datagram {
        asked
    } else {
        (asked & !ECN) | (had & ECN)
    }
}

/// sendto(fd, buf, len, flags, addr, addrlen) with an address: sent from
/// the netstack for its UDP sockets; the host makes the rest.
pub fn sendto(c: &Call<'_>) -> Reply {
    let Some((net, key, _)) = ours(c) else { return Reply::Continue };
    if net.lock().sock(key).is_ok_and(|s| s.is_netlink()) {
        let mut data = vec![0u8; usize::try_from(c.args[2]).unwrap_or(0).min(MAX_NETLINK)];
        let r = c.mem.read(c.args[1], &mut data).and_then(|()| net.lock().netlink_request(key, &data));
        return reply(r.map(|()| Reply::Value(data.len() as i64)));
    }
    let family = match net.lock().sock(key) {
        Ok(s) if s.is_udp() => s.family,
        // a TCP socket's app end: the host answers as for a connected socket
        Ok(_) => return Reply::Continue,
        Err(e) => return Reply::Error(e),
    };
    let len = usize::try_from(c.args[2]).unwrap_or(usize::MAX);
    if len > crate::net::udp::MAX_DATAGRAM {
        return Reply::Error(Errno::EMSGSIZE);
    }
    let mut data = vec![0u8; len];
    if let Err(e) = c.mem.read(c.args[1], &mut data) {
        return Reply::Error(e);
    }
    let to = match read_addr(c.mem, family, c.args[4], c.args[5]) {
        Ok(a) => a,
        Err(e) => return Reply::Error(e),
    };
    let sent = net.lock().udp_send(key, &data, Some(to), &[]);
    net.wake();
    reply(sent.map(|n| Reply::Value(n as i64)))
}

/// recvfrom(fd, buf, len, flags, addr, addrlen) asking for the sender: the
/// netstack's UDP sockets here (a blocking one waits on a worker); the host
/// makes the rest.
pub fn recvfrom(c: &Call<'_>) -> Reply {
    let Some((net, key, theirs)) = ours(c) else { return Reply::Continue };
    if net.lock().sock(key).is_ok_and(|s| s.is_netlink()) {
        return netlink_recvfrom(c, net, theirs);
    }
    if !net.lock().sock(key).is_ok_and(|s| s.is_udp()) {
        return Reply::Continue;
    }
    let (buf_at, len, flags, at, len_at) = (c.args[1], c.args[2], c.args[3], c.args[4], c.args[5]);
    let len = usize::try_from(len).unwrap_or(0).min(crate::net::udp::MAX_DATAGRAM + 1);
    let msg_flags = MsgFlags::from_bits_truncate(flags as i32);
    let family = net.lock().sock(key).map(|s| s.family).unwrap_or(Family::V4);
    // the next datagram, handed over; None if there is none yet
    let take = move |net: &Netstack, theirs: &OwnedFd, mem: &dyn Memory| {
        let mut buf = vec![0u8; len];
        let (n, from, _) = match net.lock().udp_recv(key, theirs, &mut buf, msg_flags) {
            Ok(got) => got,
            Err(Errno::EAGAIN) => return None,
            Err(e) => return Some(Reply::Error(e)),
        };
        let r = mem
            .write(buf_at, &buf[..n.min(len)])
            .and_then(|()| write_addr(mem, at, len_at, &addr::encode(family, from)));
        Some(r.map(|()| Reply::Value(n as i64)).unwrap_or_else(Reply::Error))
    };
    received(c, net, theirs, msg_flags, take)
}

/// recvfrom on a netlink socket: the next answer, from the kernel (port 0).
fn netlink_recvfrom(c: &Call<'_>, net: Arc<Netstack>, theirs: OwnedFd) -> Reply {
    let (buf_at, len, flags, at, len_at) = (c.args[1], c.args[2], c.args[3], c.args[4], c.args[5]);
    let len = usize::try_from(len).unwrap_or(0).min(MAX_NETLINK);
    let msg_flags = MsgFlags::from_bits_truncate(flags as i32);
    let take = move |_: &Netstack, theirs: &OwnedFd, mem: &dyn Memory| {
        let mut buf = vec![0u8; len];
        let f = (msg_flags & (MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC)) | MsgFlags::MSG_DONTWAIT;
        let n = match nix::sys::socket::recv(std::os::fd::AsRawFd::as_raw_fd(theirs), &mut buf, f) {
            Ok(n) => n,
            Err(Errno::EAGAIN) => return None,
            Err(e) => return Some(Reply::Error(e)),
        };
        let r = mem.write(buf_at, &buf[..n.min(len)]).and_then(|()| write_addr(mem, at, len_at, &sockaddr_nl(0)));
        Some(r.map(|()| Reply::Value(n as i64)).unwrap_or_else(Reply::Error))
    };
    received(c, net, theirs, msg_flags, take)
}

/// Answers a receive on a UDP socket of the netstack's: `take` hands the
/// next datagram over, or None if there is none yet; a blocking receive
/// waits for one on a worker.
fn received(
    c: &Call<'_>,
    net: Arc<Netstack>,
    theirs: OwnedFd,
    flags: MsgFlags,
    take: impl Fn(&Netstack, &OwnedFd, &dyn Memory) -> Option<Reply> + Send + 'static,
) -> Reply {
    if let Some(r) = take(&net, &theirs, c.mem) {
        return r;
    }
    if nonblocking(&theirs) || flags.contains(MsgFlags::MSG_DONTWAIT) {
        return Reply::Error(Errno::EAGAIN);
    }
    reply(c.fds.later(Box::new(move |l: &dyn Later| loop {
        if !wait_readable(&theirs) {
            return Reply::Error(Errno::EINTR);
        }
        if let Some(r) = take(&net, &theirs, l.mem()) {
            return r;
        }
    })))
}

/// struct msghdr, as the caller's memory holds it (x86-64).
struct MsgHdr {
    name: u64,
    namelen: u32,
    iov: u64,
    iovlen: u64,
    control: u64,
    controllen: u64,
}

/// sizeof(struct msghdr), sizeof(struct mmsghdr)
const MSGHDR: u64 = 56;
const MMSGHDR: u64 = 64;
/// At most this many iovecs, as Linux (UIO_MAXIOV)
const MAX_IOV: u64 = 1024;

fn read_msghdr(mem: &dyn Memory, at: u64) -> Result<MsgHdr, Errno> {
    let mut b = [0u8; MSGHDR as usize];
    mem.read(at, &mut b)?;
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let hdr = MsgHdr {
        name: u64_at(0),
        namelen: u32::from_ne_bytes(b[8..12].try_into().unwrap_or([0; 4])),
        iov: u64_at(16),
        iovlen: u64_at(24),
        control: u64_at(32),
        controllen: u64_at(40),
    };
    if hdr.iovlen > MAX_IOV {
        return Err(Errno::EMSGSIZE);
    }
    Ok(hdr)
}

/// The (base, len) of each iovec of `hdr`.
fn iovecs(mem: &dyn Memory, hdr: &MsgHdr) -> Result<Vec<(u64, usize)>, Errno> {
    let mut b = vec![0u8; usize::try_from(hdr.iovlen * 16).map_err(|_| Errno::EINVAL)?];
    if !b.is_empty() {
        mem.read(hdr.iov, &mut b)?;
    }
    Ok(b.chunks(16)
        .map(|c| {
            let base = u64::from_ne_bytes(c[..8].try_into().unwrap_or([0; 8]));
            let len = u64::from_ne_bytes(c[8..].try_into().unwrap_or([0; 8]));
            (base, usize::try_from(len).unwrap_or(usize::MAX))
        })
        .collect())
}

/// One sendmsg on UDP socket `key`: the bytes sent.
fn send_one(mem: &dyn Memory, net: &Netstack, key: u64, family: Family, at: u64) -> Result<i64, Errno> {
    let hdr = read_msghdr(mem, at)?;
    let (data, name) = gather(mem, &hdr, crate::net::udp::MAX_DATAGRAM)?;
    let to = match name {
        None => None,
        Some((at, len)) => Some(read_addr(mem, family, at, u64::from(len))?),
    };
    let control = match (hdr.control, hdr.controllen) {
        (_, 0) => Vec::new(),
        // (Linux copies whatever length is given)
        (0, _) => return Err(Errno::EFAULT),
        (_, len) if len > MAX_CONTROL => return Err(Errno::ENOBUFS),
        (at, len) => {
            let mut control = vec![0u8; len as usize];
            mem.read(at, &mut control)?;
            control
        }
    };
    let sent = net.lock().udp_send(key, &data, to, &control);
    net.wake();
    sent.map(|n| n as i64)
}

/// Where a message's address is in the caller, and its length.
type Name = (u64, u32);

/// The bytes of the message of struct msghdr `hdr` (EMSGSIZE past `max`),
/// and where its address is, if it has one.
fn gather(mem: &dyn Memory, hdr: &MsgHdr, max: usize) -> Result<(Vec<u8>, Option<Name>), Errno> {
    let mut data = Vec::new();
    for (base, len) in iovecs(mem, hdr)? {
        if data.len() + len > max {
            return Err(Errno::EMSGSIZE);
        }
        let start = data.len();
        data.resize(start + len, 0);
        mem.read(base, &mut data[start..])?;
    }
    let name = (hdr.name != 0 && hdr.namelen != 0).then_some((hdr.name, hdr.namelen));
    Ok((data, name))
}

/// One recvmsg on UDP socket `key` whose app end is `theirs`: the bytes
/// received (the datagram's length with MSG_TRUNC), None if none waits.
fn recv_one(
    mem: &dyn Memory,
    net: &Netstack,
    key: u64,
    theirs: &OwnedFd,
    family: Family,
    at: u64,
    flags: MsgFlags,
) -> Result<Option<i64>, Errno> {
    scatter(mem, at, flags, crate::net::udp::MAX_DATAGRAM + 1, |buf| {
        let (n, from, control) = net.lock().udp_recv(key, theirs, buf, flags | MsgFlags::MSG_TRUNC)?;
        Ok((n, addr::encode(family, from).to_vec(), control))
    })
}

/// One recvmsg whose struct msghdr is at `at`: `take` receives into a
/// buffer as large as the iovecs (up to `max`) and tells the message's
/// whole length, its sender's address and its control messages, which are
/// handed to the caller (MSG_TRUNC in msg_flags if it did not fit,
/// MSG_CTRUNC if the control messages did not). The bytes received (the
/// message's length with MSG_TRUNC); None if none waits.
fn scatter(
    mem: &dyn Memory,
    at: u64,
    flags: MsgFlags,
    max: usize,
    take: impl FnOnce(&mut [u8]) -> Result<(usize, Vec<u8>, Vec<u8>), Errno>,
) -> Result<Option<i64>, Errno> {
    let hdr = read_msghdr(mem, at)?;
    let iovs = iovecs(mem, &hdr)?;
    let room: usize = iovs.iter().map(|(_, l)| *l).fold(0, usize::saturating_add).min(max);
    let mut buf = vec![0u8; room];
    let (n, from, control) = match take(&mut buf) {
        Ok(got) => got,
        Err(Errno::EAGAIN) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut left = &buf[..n.min(room)];
    for (base, len) in iovs {
        if left.is_empty() {
            break;
        }
        let k = len.min(left.len());
        mem.write(base, &left[..k])?;
        left = &left[k..];
    }
    if hdr.name != 0 {
        mem.write(hdr.name, &from[..from.len().min(hdr.namelen as usize)])?;
        mem.write(at + 8, &(from.len() as u32).to_ne_bytes())?;
    }
    let (given, whole) = crate::net::cmsg::fitting(&control, if hdr.control == 0 { 0 } else { hdr.controllen });
    if given > 0 {
        mem.write(hdr.control, &control[..given])?;
    }
    mem.write(at + 40, &(given as u64).to_ne_bytes())?;
    let truncated = if n > room { libc::MSG_TRUNC } else { 0 } | if whole { 0 } else { libc::MSG_CTRUNC };
    mem.write(at + 48, &truncated.to_ne_bytes())?;
    let shown = if flags.contains(MsgFlags::MSG_TRUNC) { n } else { n.min(room) };
    Ok(Some(shown as i64))
}

/// The netstack's UDP socket behind the caller's fd at argument 0 and its
/// family; None for anything else (the host's call to make).
fn ours_udp(c: &Call<'_>) -> Option<(Arc<Netstack>, u64, OwnedFd, Family)> {
    let (net, key, theirs) = ours(c)?;
    let family = net.lock().sock(key).ok().filter(|s| s.is_udp())?.family;
    Some((net, key, theirs, family))
}

/// sendmsg(fd, msg, flags): the netstack's UDP sockets here (an address,
/// if any, from msg_name; the control messages of
/// [`crate::net::cmsg::Ancillary::parse`]);
/// the host makes the rest.
pub fn sendmsg(c: &Call<'_>) -> Reply {
    if let Some((net, key, _)) = ours_netlink(c) {
        let r = read_msghdr(c.mem, c.args[1]).and_then(|hdr| gather(c.mem, &hdr, MAX_NETLINK)).and_then(|(data, _)| {
            net.lock().netlink_request(key, &data)?;
            Ok(Reply::Value(data.len() as i64))
        });
        return reply(r);
    }
    let Some((net, key, _, family)) = ours_udp(c) else { return Reply::Continue };
    reply(send_one(c.mem, &net, key, family, c.args[1]).map(Reply::Value))
}

/// recvmsg(fd, msg, flags): the netstack's UDP sockets here (the sender in
/// msg_name, the destination as IP_PKTINFO or IPV6_PKTINFO if the socket
/// asks; a blocking one waits on a worker); the host makes the rest.
pub fn recvmsg(c: &Call<'_>) -> Reply {
    let (at, flags) = (c.args[1], MsgFlags::from_bits_truncate(c.args[2] as i32));
    if let Some((net, _, theirs)) = ours_netlink(c) {
        // the kernel (port 0) is the sender
        return received(c, net, theirs, flags, move |_, theirs, mem| {
            let f = (flags & (MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC)) | MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC;
            let got = scatter(mem, at, flags, MAX_NETLINK, |buf| {
                let n = nix::sys::socket::recv(std::os::fd::AsRawFd::as_raw_fd(theirs), buf, f)?;
                Ok((n, sockaddr_nl(0), Vec::new()))
            });
            got.map(|got| got.map(Reply::Value)).unwrap_or_else(|e| Some(Reply::Error(e)))
        });
    }
    let Some((net, key, theirs, family)) = ours_udp(c) else { return Reply::Continue };
    received(c, net, theirs, flags, move |net, theirs, mem| {
        recv_one(mem, net, key, theirs, family, at, flags)
            .map(|got| got.map(Reply::Value))
            .unwrap_or_else(|e| Some(Reply::Error(e)))
    })
}

/// sendmmsg(fd, msgs, vlen, flags): each message as sendmsg; how many went.
pub fn sendmmsg(c: &Call<'_>) -> Reply {
    let Some((net, key, _, family)) = ours_udp(c) else { return Reply::Continue };
    let (at, vlen) = (c.args[1], c.args[2].min(MAX_IOV));
    let mut sent = 0;
    for i in 0..vlen {
        let hdr = at + i * MMSGHDR;
        match send_one(c.mem, &net, key, family, hdr) {
            Ok(n) => {
                if let Err(e) = c.mem.write(hdr + MSGHDR, &(n as u32).to_ne_bytes()) {
                    return if sent == 0 { Reply::Error(e) } else { Reply::Value(sent) };
                }
                sent += 1;
            }
            Err(e) if sent == 0 => return Reply::Error(e),
            Err(_) => break,
        }
    }
    Reply::Value(sent)
}

/// recvmmsg(fd, msgs, vlen, flags, timeout): the first message as recvmsg
/// (waiting for it unless non-blocking), then as many more as wait, without
/// waiting (the timeout is not used).
pub fn recvmmsg(c: &Call<'_>) -> Reply {
    let Some((net, key, theirs, family)) = ours_udp(c) else { return Reply::Continue };
    let (at, vlen) = (c.args[1], c.args[2].min(MAX_IOV));
    let flags = MsgFlags::from_bits_truncate(c.args[3] as i32);
    // MSG_WAITFORONE: only the first may wait (which is all this does)
    let each = flags & !MsgFlags::MSG_WAITFORONE;
    received(c, net, theirs, flags, move |net, theirs, mem| {
        let mut got = 0;
        for i in 0..vlen {
            let hdr = at + i * MMSGHDR;
            match recv_one(mem, net, key, theirs, family, hdr, each) {
                Ok(Some(n)) => {
                    if let Err(e) = mem.write(hdr + MSGHDR, &(n as u32).to_ne_bytes()) {
                        return Some(if got == 0 { Reply::Error(e) } else { Reply::Value(got) });
                    }
                    got += 1;
                }
                Ok(None) => break,
                Err(e) if got == 0 => return Some(Reply::Error(e)),
                Err(_) => break,
            }
        }
        (got > 0).then_some(Reply::Value(got))
    })
}
