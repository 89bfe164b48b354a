//! The stack's thread: it runs the interface (timers, the loopback's
//! packets) and moves each connection's bytes between the stack's end of
//! its socketpair and smoltcp's socket.
//!
//! It sleeps in epoll_wait on every socketpair end and the wake eventfd,
//! for at most as long as smoltcp's next timer; after each wake-up it
//! tends every socket, as long as that makes progress.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{recv, send, shutdown, MsgFlags, Shutdown};
use smoltcp::socket::tcp;

use super::stack::{Stack, State, POD_KEY, WAKE_KEY};
use super::Netstack;

/// How many rounds one wake-up tends the sockets at most.
const ROUNDS: usize = 16;
/// How long a connection whose app closed it may wait for its peer to
/// finish (Linux's tcp_fin_timeout).
const FIN_TIMEOUT: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(60);

/// Shard `shard`'s thread's loop; ends only with the process.
pub(super) fn run(net: &Netstack, shard: usize) {
    let epoll = match net.shard(shard).epoll.0.try_clone() {
        Ok(fd) => Epoll(fd),
        Err(e) => {
            tracing::error!("netstack: no epoll: {e}");
            return;
        }
    };
    let mut events = vec![EpollEvent::empty(); 64];
    let mut buf = vec![0u8; 64 * 1024];
    let mut keys = Vec::new();
    // whether the last wake-up ended with work left (it then only looks
    // for new events, without sleeping)
    let mut busy = false;
    loop {
        let delay = {
            let mut s = net.shard(shard);
            let now = smoltcp::time::Instant::now();
            let Stack { iface, sockets, .. } = &mut *s;
            iface.poll_delay(now, sockets)
        };
        let ms = if busy { 0 } else { delay.map_or(1000, |d| d.total_millis().min(1000)) };
        let timeout = EpollTimeout::from(u16::try_from(ms).unwrap_or(1000));
        let n = match epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => {
                tracing::error!("netstack: epoll_wait: {e}");
                return;
            }
        };
        if events[..n].iter().any(|e| e.data() == WAKE_KEY) {
            let _ = net.shards[shard].wake.read();
        }
        // the app closed every copy of these
        let hung: Vec<u64> = events[..n]
            .iter()
            .filter(|e| e.data() != WAKE_KEY && e.events().contains(EpollFlags::EPOLLHUP))
            .map(|e| e.data())
            .collect();
        let mut s = net.shard(shard);
        if events[..n].iter().any(|e| e.data() == POD_KEY) {
            s.device.wire_readable();
        }
        // (packets that waited for an address another shard learned)
        s.device.flush();
        // (the sockets' ends are read and written only once they said they can be)
        for e in events[..n].iter().filter(|e| e.data() != WAKE_KEY) {
            if let Some(sock) = s.socks.get_mut(&e.data()) {
                let ev = e.events();
                sock.readable |= ev.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLRDHUP);
                sock.writable |= ev.intersects(EpollFlags::EPOLLOUT | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP);
            }
        }
        busy = true;
        for _ in 0..ROUNDS {
            // (packets the stack sent itself are received in the next round)
            if !tend(&mut s, &hung, &mut buf, &mut keys) && !s.device.pending() {
                busy = false;
                break;
            }
        }
    }
}

/// One round: polls the interface and tends every socket (`keys`: room for
/// their keys). Whether anything moved.
fn tend(s: &mut Stack, hung: &[u64], buf: &mut [u8], keys: &mut Vec<u64>) -> bool {
    let now = smoltcp::time::Instant::now();
    let mut moved = false;
    {
        // every packet counts as a move: an ACK frees room in a send
        // buffer without "changing a socket's state"
        let Stack { iface, device, sockets, .. } = s;
        while iface.poll_ingress_single(now, device, sockets) != smoltcp::iface::PollIngressSingleResult::None {
            moved = true;
        }
        moved |= iface.poll_egress(now, device, sockets) != smoltcp::iface::PollResult::None;
    }
    for h in s.dying.drain(..) {
        s.sockets.remove(h);
    }
    keys.clear();
    keys.extend(s.socks.keys());
    for &key in keys.iter() {
        moved |= tend_one(s, key, hung.contains(&key), buf, now);
    }
    moved
}

fn tend_one(s: &mut Stack, key: u64, hung: bool, buf: &mut [u8], now: smoltcp::time::Instant) -> bool {
    let Some(sock) = s.socks.get(&key) else { return false };
    match sock.state {
        State::Listening { .. } if hung => {
            s.drop_sock(key);
            true
        }
        State::Listening { .. } => s.tend_listeners(key),
        // the app closed it while it connected: the handshake is dropped
        // (a hang-up is an event until then)
        State::Connecting(_) if hung => {
            s.drop_sock(key);
            true
        }
        State::Connecting(h) => {
            let t = s.sockets.get::<tcp::Socket>(h);
            let state = t.state();
            // (a next hop that does not answer ARP fails the handshake, as on Linux)
            let unreachable = t.remote_endpoint().is_some_and(|e| s.device.unreachable(e.addr.into()));
            let Some(sock) = s.socks.get_mut(&key) else { return false };
            match state {
                tcp::State::SynSent | tcp::State::SynReceived if !unreachable => false,
                tcp::State::Closed | tcp::State::TimeWait | tcp::State::SynSent | tcp::State::SynReceived => {
                    drain_junk(sock);
                    let timed_out = sock.connect_started.is_some_and(|t| now - t >= super::stack::CONNECT_TIMEOUT);
                    sock.error = Some(match (unreachable, timed_out) {
                        (true, _) => Errno::EHOSTUNREACH,
                        (false, true) => Errno::ETIMEDOUT,
                        (false, false) => Errno::ECONNREFUSED,
                    });
                    sock.state = State::Failed;
                    // the app reads EOF; writes wait for its close
                    let _ = shutdown(std::os::fd::AsRawFd::as_raw_fd(&sock.ours), Shutdown::Write);
                    let _ = sock.changed.write(1);
                    s.unmark_flow(h);
                    s.sockets.remove(h);
                    true
                }
                _ => {
                    sock.state = State::Connected(h);
                    let _ = sock.changed.write(1);
                    // (the handshake's timeout, no longer the connection's)
                    let opts = sock.opts;
                    super::stack::apply(s.sockets.get_mut::<tcp::Socket>(h), &opts, false);
                    true
                }
            }
        }
        State::Connected(h) => {
            let (moved, done) = pump(s, key, h, hung);
            // the app closed every copy of its end while the peer still
            // sends: as Linux's tcp_fin_timeout, it gets a minute to finish
            let orphaned = s.socks.get_mut(&key).map(|sock| {
                if hung && sock.app_eof {
                    sock.orphaned.get_or_insert(now);
                }
                sock.orphaned
            });
            let expired = matches!(orphaned, Some(Some(t)) if now - t > FIN_TIMEOUT);
            if done || expired {
                s.drop_sock(key);
            }
            moved || done || expired
        }
        State::Datagram { .. } | State::Netlink { .. } if hung => {
            s.drop_sock(key);
            true
        }
        State::Datagram { .. } => s.pump_udp(key, buf),
        State::Netlink { .. } => netlink(s, key, buf),
        State::Fresh | State::Bound | State::Failed if hung => {
            s.drop_sock(key);
            true
        }
        State::Fresh | State::Bound | State::Failed => false,
    }
}

/// Answers the requests the app sent on netlink socket `key` without an
/// address (send, write); whether there were any.
fn netlink(s: &mut Stack, key: u64, buf: &mut [u8]) -> bool {
    let Some(sock) = s.socks.get_mut(&key) else { return false };
    let mut requests = Vec::new();
    let moved = super::udp::from_app(sock, buf, true, |request| {
        requests.push(request.to_vec());
        true
    });
    for request in requests {
        let _ = s.netlink_request(key, &request);
    }
    moved
}

/// Reads what [`Stack::hold_writes`] wrote on the app's end off the
/// stack's; whether any was.
fn drain_junk(sock: &mut super::Sock) -> bool {
    if sock.junk == 0 {
        return false;
    }
    let mut scratch = vec![0u8; 16 * 1024];
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock.ours);
    let mut moved = false;
    while sock.junk > 0 {
        let want = sock.junk.min(scratch.len());
        match recv(fd, &mut scratch[..want], MsgFlags::MSG_DONTWAIT) {
            Ok(n) if n > 0 => {
                sock.junk -= n;
                moved = true;
            }
            _ => break,
        }
    }
    moved
}

/// Moves the bytes of connection `h` both ways, straight between the app's
/// end and smoltcp's buffers (`hung`: the app closed every copy of its
/// end): whether any moved, and whether the socket is done with (both
/// sides closed).
fn pump(s: &mut Stack, key: u64, h: smoltcp::iface::SocketHandle, hung: bool) -> (bool, bool) {
    let Stack { sockets, socks, epoll, .. } = s;
    let Some(sock) = socks.get_mut(&key) else { return (false, false) };
    let t = sockets.get_mut::<tcp::Socket>(h);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock.ours);
    let mut moved = drain_junk(sock);
    let mut gone = false;
    // the app's bytes to the connection, read into its send buffer
    while sock.readable && sock.junk == 0 && !sock.app_eof && t.can_send() {
        let got = t.send(|room| match room.len() {
            0 => (0, None),
            _ => match recv(fd, room, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => (n, Some(Ok((n, room.len())))),
                Err(e) => (0, Some(Err(e))),
            },
        });
        match got {
            Ok(Some(Ok((0, _)))) | Ok(Some(Err(Errno::ECONNRESET | Errno::EPIPE))) => {
                sock.app_eof = true;
                t.close();
                moved = true;
            }
            Ok(Some(Ok((n, room)))) => {
                moved = true;
                // a stream socket's read returns all it holds: a short
                // one emptied it (its next bytes come with an event)
                if n < room {
                    sock.readable = false;
                }
            }
            Ok(Some(Err(Errno::EAGAIN))) => {
                sock.readable = false;
                break;
            }
            Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
        }
    }
    // the connection's bytes to the app, written from its receive buffer
    while sock.writable && t.can_recv() {
        let put = t.recv(|data| match send(fd, data, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => (n, Ok(n)),
            Err(e) => (0, Err(e)),
        });
        match put {
            Ok(Ok(_)) => moved = true,
            Ok(Err(Errno::EAGAIN)) => {
                sock.writable = false;
                break;
            }
            Ok(Err(_)) => {
                // the app closed its end: what it did not read is lost
                gone = true;
                break;
            }
            Err(_) => break,
        }
    }
    if gone {
        let _ = t.recv(|d| (d.len(), ()));
        if !sock.app_eof {
            sock.app_eof = true;
            t.close();
        }
    }
    // the peer is done sending, and all it sent was handed over
    if !sock.shut && t.recv_queue() == 0 && !t.may_recv() {
        let _ = shutdown(fd, Shutdown::Write);
        sock.shut = true;
        moved = true;
    }
    let closed = matches!(t.state(), tcp::State::Closed | tcp::State::TimeWait);
    if sock.app_eof && (sock.shut || gone) && closed {
        return (moved, true);
    }
    // the connection ended under the app (the peer reset it, or it was
    // given up on): once the app's end holds all that came, the stack's is
    // closed, so that the app reads EOF and its writes fail (EPIPE); kept,
    // a writer would wait forever, and a closed app end would wake the
    // thread for ever (a hang-up is always an event)
    if !sock.app_eof && closed && t.recv_queue() == 0 {
        return (true, true);
    }
    // what to wake for: the app's bytes while the connection has room for
    // them (a full send buffer is tended again after the peer's ACK: the
    // app's end, level-triggered, would wake the thread for nothing until
    // then), room on the app's end for bytes waiting
    let mut want = EpollFlags::EPOLLRDHUP;
    if !sock.app_eof && t.can_send() && t.send_queue() < t.send_capacity() {
        want |= EpollFlags::EPOLLIN;
    }
    if t.can_recv() && !gone {
        want |= EpollFlags::EPOLLOUT;
    }
    // both ways shut, or the app gone while the peer finishes: the end
    // stays hung up (an event epoll would report for ever); nothing left
    // to wake for (what the peer still sends is dropped as it comes, and
    // the orphan's time runs out with the thread's timers)
    let quiet = sock.app_eof && (sock.shut || hung || sock.orphaned.is_some());
    if quiet && !sock.interest.is_empty() {
        let _ = epoll.delete(sock.ours.as_fd());
        sock.interest = EpollFlags::empty();
    } else if !quiet && want != sock.interest {
        let mut ev = EpollEvent::new(want, key);
        if epoll.modify(sock.ours.as_fd(), &mut ev).is_ok() {
            sock.interest = want;
        }
    }
    (moved, false)
}
