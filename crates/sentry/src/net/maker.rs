//! `--network=host`: the app's internet sockets made by a small process of
//! the Sentry's (the "maker"), not by the app. The Sentry lives in an
//! empty network namespace of its own; the maker stays in the app's (the
//! host's, or the one the spec names), confined as the Sentry is, and
//! makes each socket the Sentry asks for as the caller's file-system ids
//! (a socket's owner uid is its maker's fsuid, which /proc/net/tcp shows
//! and host firewalls match) in the container's cgroup (a socket's cgroup
//! is its maker's too). The Sentry installs it in the caller; what the app
//! then does on it runs natively, as with runc.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::socket::MsgFlags;

/// One request: domain, type (with SOCK_NONBLOCK), protocol, fsuid, fsgid.
const REQUEST: usize = 5 * 4;

/// The Sentry's end of its maker's socket.
#[derive(Debug)]
pub struct Maker {
    sock: Mutex<OwnedFd>,
}

impl Maker {
    /// The maker at the other end of `sock` (a SOCK_SEQPACKET socket).
    pub fn new(sock: OwnedFd) -> Maker {
        Maker { sock: Mutex::new(sock) }
    }

    /// A socket of `domain`, `kind` (SOCK_NONBLOCK may be set; never
    /// SOCK_CLOEXEC: the caller's flag is the install's) and `protocol`,
    /// made as `fsuid` and `fsgid` in the app's network namespace.
    pub fn socket(&self, domain: i32, kind: i32, protocol: i32, fsuid: u32, fsgid: u32) -> Result<OwnedFd, Errno> {
        let mut req = Vec::with_capacity(REQUEST);
        for v in [domain as u32, kind as u32, protocol as u32, fsuid, fsgid] {
            req.extend_from_slice(&v.to_ne_bytes());
        }
        let sock = self.sock.lock().map_err(|_| Errno::EIO)?;
        // (a maker that is gone: the network is, for this sandbox)
        crate::vfs::remote::send(sock.as_fd(), &req, &[]).map_err(|_| Errno::ENETDOWN)?;
        let mut answer = [0u8; 4];
        let mut fds = Vec::new();
        let n = moat_gofer::recv_with_fds(sock.as_fd(), &mut answer, &mut fds).map_err(|_| Errno::ENETDOWN)?;
        match (n, fds.pop()) {
            (4, Some(fd)) => Ok(fd),
            (4, None) => Err(Errno::from_raw(i32::from_ne_bytes(answer))),
            _ => Err(Errno::ENETDOWN),
        }
    }
}

/// The maker's loop, on `sock` (its end): each request answered with the
/// socket made, or the errno, until the Sentry hangs up. It switches to
/// the caller's ids for each socket (CAP_SETUID and CAP_SETGID effective)
/// and back.
pub fn serve(sock: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut req = [0u8; REQUEST];
    loop {
        let n = loop {
            match nix::sys::socket::recv(sock.as_raw_fd(), &mut req, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                r => break r?,
            }
        };
        if n == 0 {
            return Ok(());
        }
        if n != REQUEST {
            return Err(Errno::EINVAL);
        }
        let v = |i: usize| u32::from_ne_bytes([req[i * 4], req[i * 4 + 1], req[i * 4 + 2], req[i * 4 + 3]]);
        let made = make(v(0) as i32, v(1) as i32, v(2) as i32, v(3), v(4));
        match &made {
            Ok(fd) => crate::vfs::remote::send(sock, &0i32.to_ne_bytes(), &[fd.as_raw_fd()])?,
            Err(e) => crate::vfs::remote::send(sock, &(*e as i32).to_ne_bytes(), &[])?,
        }
    }
}

/// socket(2) of internet `domain` only, stream or datagram, as
/// `fsuid`/`fsgid`.
fn make(domain: i32, kind: i32, protocol: i32, fsuid: u32, fsgid: u32) -> Result<OwnedFd, Errno> {
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(Errno::EAFNOSUPPORT);
    }
    if kind & !(0xf | libc::SOCK_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    // (its allowlist has no other: anything else would kill it)
    if kind & 0xf != libc::SOCK_STREAM && kind & 0xf != libc::SOCK_DGRAM {
        return Err(Errno::ESOCKTNOSUPPORT);
    }
    let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    crate::vfs::creds::set_fs_ids(fsuid, fsgid)?;
    // SAFETY: socket(2) takes three integers and no memory; it returns a new fd or -1.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    let made = Errno::result(fd).map(|fd| {
        // SAFETY: the kernel just returned this new fd; nothing else owns it.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    });
    crate::vfs::creds::set_fs_ids(uid, gid)?;
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_come_from_the_maker_and_refusals_as_errnos() {
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let server = std::thread::spawn(move || serve(std::os::fd::AsFd::as_fd(&theirs)));
        let maker = Maker::new(ours);
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        let s = maker.socket(libc::AF_INET, libc::SOCK_STREAM, 0, uid, gid).expect("a TCP socket");
        let domain = nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::SockType).unwrap();
        assert_eq!(domain, nix::sys::socket::SockType::Stream);
        assert_eq!(maker.socket(libc::AF_UNIX, libc::SOCK_STREAM, 0, uid, gid).unwrap_err(), Errno::EAFNOSUPPORT);
        assert_eq!(maker.socket(libc::AF_INET, libc::SOCK_RAW, 1, uid, gid).unwrap_err(), Errno::ESOCKTNOSUPPORT);
        assert_eq!(
            maker.socket(libc::AF_INET, libc::SOCK_SEQPACKET, 132, uid, gid).unwrap_err(),
            Errno::ESOCKTNOSUPPORT
        );
        assert_eq!(maker.socket(libc::AF_INET, libc::SOCK_STREAM | 0x100, 0, uid, gid).unwrap_err(), Errno::EINVAL);
        drop(maker);
        assert_eq!(server.join().unwrap(), Ok(()));
    }
}
