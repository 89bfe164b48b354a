//! One netstack for a pod's several sandboxes. The pod's first sandbox
//! (its "owner", the one that took the pod's interface) serves the network
//! calls of the others ("guests"): a guest's Sentry forwards each such
//! call it receives, with the caller's notify fd and a pidfd of its
//! thread, on a connection to the owner's control socket; the owner serves
//! it with its own handlers and netstack, reaching the caller's memory
//! through the guest's procfs (sent once, with the hello), and answers it
//! on the guest's notify fd itself. So every container of the pod has the
//! pod's address, and they reach each other over the loopback, as they
//! would on Linux. The owner serves only what a guest forwards (it checks
//! again), and answers "continue" for a socket not the netstack's.
//!
//! `create` makes the two connections and announces each at once
//! ([`HELLO_CALLS`], [`HELLO_TABLES`]): the owner's loop never waits on a
//! Sentry still starting. When the owner goes, the calls it had not
//! answered are answered with ENETDOWN, new internet sockets fail with
//! ENETDOWN, and the guest serves the rest itself (unix sockets, new ones
//! made by its own Sentry, work on).
//!
//! Forwarded: socket(2) and socketpair(2) of every family (unix sockets
//! too: made in the owner's network namespace, the pod's abstract names
//! are one namespace, as on Linux), bind and connect to any address but a
//! path (paths are the guest's tree's), and the calls that act on a socket
//! (listen, accept, names, options, sendto/recvfrom, sendmsg/recvmsg and
//! their batches, the interface ioctls). For a socket that is not the netstack's the owner answers
//! "continue", and the guest's kernel makes the call.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use nix::errno::Errno;
use nix::sys::socket::MsgFlags;

use crate::syscalls::Memory;

/// The bytes of one forwarded call: notification id, tid, syscall number,
/// its six arguments.
const CALL: usize = 8 + 4 + 4 + 6 * 8;

/// One served call, as the loop serves it (a notification received, or
/// one a guest forwarded).
#[derive(Debug, Clone, Copy)]
pub struct Notification {
    /// its id on its notify fd
    pub id: u64,
    /// the caller's thread, as its own pid namespace numbers it
    pub pid: u32,
    /// the system call
    pub syscall: ScmpSyscall,
    /// its arguments
    pub args: [u64; 6],
}

impl From<&ScmpNotifReq> for Notification {
    fn from(r: &ScmpNotifReq) -> Notification {
        Notification { id: r.id, pid: r.pid, syscall: r.data.syscall, args: r.data.args }
    }
}

/// What `create` says first on the connection a guest forwards calls on.
pub const HELLO_CALLS: &[u8] = b"guest";
/// What `create` says first on the connection a guest asks for tables on.
pub const HELLO_TABLES: &[u8] = b"guest-tables";
/// What the guest's Sentry says next on the calls' connection, with its procfs.
const PROCFS: &[u8] = b"procfs";

/// The guest's end: its two connections to the owner's Sentry, one for
/// the calls it forwards, one for the /proc/net tables it asks for (apart,
/// so that a table's answer never waits behind a call the owner is
/// serving, which may read memory this Sentry's FUSE thread serves).
#[derive(Debug)]
pub struct Owner {
    calls: Mutex<UnixStream>,
    tables: Mutex<UnixStream>,
    /// the calls forwarded and maybe not answered yet: a copy of the notify
    /// fd of each, and its id (answered with ENETDOWN if the owner goes)
    pending: Mutex<Vec<(OwnedFd, u64)>>,
    /// the owner hung up
    gone: AtomicBool,
}

impl Owner {
    /// The connections `calls` and `tables` to the owner's control socket
    /// (made and announced by `create`): sends the owner `proc`, this
    /// Sentry's procfs.
    pub fn hello(calls: UnixStream, tables: UnixStream, proc: BorrowedFd<'_>) -> std::io::Result<Owner> {
        crate::vfs::remote::send(calls.as_fd(), PROCFS, &[proc.as_raw_fd()])?;
        Ok(Owner {
            calls: Mutex::new(calls),
            tables: Mutex::new(tables),
            pending: Mutex::new(Vec::new()),
            gone: AtomicBool::new(false),
        })
    }

    /// The calls' connection, to poll: the owner never writes on it, so it
    /// polls readable (EOF) or hung up once the owner is gone.
    pub fn watched(&self) -> Option<OwnedFd> {
        let sock = self.calls.lock().ok()?;
        sock.as_fd().try_clone_to_owned().ok()
    }

    /// Forwards `req`, received on `notify`: the owner answers it.
    /// ENETDOWN once the owner is gone.
    pub fn forward(&self, req: &Notification, notify: BorrowedFd<'_>) -> Result<(), Errno> {
        if self.is_gone() {
            return Err(Errno::ENETDOWN);
        }
        let pidfd = super::fds::pidfd_of_thread(req.pid)?;
        // the pidfd is the caller's if the notification still is
        libseccomp::notify_id_valid(notify.as_raw_fd(), req.id).map_err(|_| Errno::ESRCH)?;
        let kept = notify.try_clone_to_owned().map_err(|_| Errno::EMFILE)?;
        let bytes = encode(req);
        let fds = [pidfd.as_raw_fd(), notify.as_raw_fd()];
        let mut pending = self.pending.lock().map_err(|_| Errno::EIO)?;
        {
            let sock = self.calls.lock().map_err(|_| Errno::EIO)?;
            // (a message of a seqpacket-sized few bytes goes whole or not at all)
            if crate::vfs::remote::send(sock.as_fd(), &bytes, &fds).is_err() {
                drop(pending);
                self.lost();
                return Err(Errno::ENETDOWN);
            }
        }
        // (the answered ones go: the kernel forgets an id once answered)
        pending.retain(|(n, id)| libseccomp::notify_id_valid(n.as_raw_fd(), *id).is_ok());
        pending.push((kept, req.id));
        Ok(())
    }

    /// The owner is gone: every call forwarded and not answered is
    /// answered with ENETDOWN (an answered one refuses the answer).
    pub fn lost(&self) {
        self.gone.store(true, Ordering::Release);
        let pending = self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        for (notify, id) in pending {
            let _ = ScmpNotifResp::new_error(id, -(Errno::ENETDOWN as i32), ScmpNotifRespFlags::empty())
                .respond(notify.as_raw_fd());
        }
    }

    /// Whether the owner is gone.
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// The owner's /proc/net table `asked` (the pod's sockets).
    pub fn table(&self, asked: Asked) -> Result<String, Errno> {
        let sock = self.tables.lock().map_err(|_| Errno::EIO)?;
        if nix::sys::socket::send(sock.as_raw_fd(), &[code(asked)], MsgFlags::MSG_NOSIGNAL)? != 1 {
            return Err(Errno::EIO);
        }
        let io = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
        let mut len = [0u8; 4];
        std::io::Read::read_exact(&mut &*sock, &mut len).map_err(io)?;
        let mut text = vec![0u8; u32::from_ne_bytes(len) as usize];
        std::io::Read::read_exact(&mut &*sock, &mut text).map_err(io)?;
        String::from_utf8(text).map_err(|_| Errno::EIO)
    }
}

/// A /proc/net table a guest asks its owner for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// one the stack makes (tcp, tcp6, udp, udp6)
    Net(crate::net::table::Table),
    /// unix: the pod's unix sockets, which are the owner's Sentry's
    Unix,
}

/// The tables, each on the wire as its index here.
const TABLES: [Asked; 5] = {
    use crate::net::{addr::Family, table::Table};
    [
        Asked::Net(Table::Tcp(Family::V4)),
        Asked::Net(Table::Tcp(Family::V6)),
        Asked::Net(Table::Udp(Family::V4)),
        Asked::Net(Table::Udp(Family::V6)),
        Asked::Unix,
    ]
};

/// A table's number on the wire.
fn code(asked: Asked) -> u8 {
    TABLES.iter().position(|t| *t == asked).unwrap_or(0) as u8
}

/// The table of number `n`.
fn table_of(n: u8) -> Option<Asked> {
    TABLES.get(usize::from(n)).copied()
}

fn write_all(fd: BorrowedFd<'_>, mut rest: &[u8]) -> Result<(), Errno> {
    while !rest.is_empty() {
        match nix::sys::socket::send(fd.as_raw_fd(), rest, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The owner's side of a guest's tables connection: answers each table
/// asked for (one byte, its number) with its text from `table`, until the
/// guest hangs up.
pub fn serve_tables(sock: UnixStream, table: impl Fn(Asked) -> String) {
    let mut asked = [0u8; 1];
    loop {
        match nix::unistd::read(&sock, &mut asked) {
            Ok(1) => {}
            Err(Errno::EINTR) => continue,
            _ => return,
        }
        let Some(t) = table_of(asked[0]) else { return };
        let text = table(t);
        let mut out = (text.len() as u32).to_ne_bytes().to_vec();
        out.extend_from_slice(text.as_bytes());
        if write_all(sock.as_fd(), &out).is_err() {
            return;
        }
    }
}

/// The owner's side of a guest's calls connection, first: the guest's
/// procfs. None: it never came (the guest's Sentry did not start).
pub fn receive_procfs(sock: BorrowedFd<'_>) -> Option<OwnedFd> {
    let (text, mut fds) = recv_with_fds(sock, PROCFS.len())?;
    (text == PROCFS && fds.len() == 1).then(|| fds.pop()).flatten()
}

/// One message of up to `len` bytes, and the fds that came with it.
pub(super) fn recv_with_fds(sock: BorrowedFd<'_>, len: usize) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; len];
    let mut fds = Vec::new();
    let n = moat_gofer::recv_with_fds(sock, &mut buf, &mut fds).ok()?;
    buf.truncate(n);
    Some((buf, fds))
}

/// Whether a guest forwards call `name` with `args` (reading an address's
/// family in the caller's memory `mem`); the owner serves only those.
pub fn forwarded(name: &str, args: &[u64; 6], mem: &dyn Memory) -> bool {
    let family = |at: u64| {
        let mut f = [0u8; 2];
        mem.read(at, &mut f).map(|()| u16::from_ne_bytes(f)).unwrap_or(0)
    };
    match name {
        // (unix ones too: the pod's abstract names are one namespace)
        "socket" | "socketpair" => true,
        "bind" | "connect" => family(args[1]) != libc::AF_UNIX as u16,
        "ioctl" => crate::net::ifreq::REQUESTS.contains(&(args[1] & 0xffff_ffff)),
        "listen" | "accept" | "accept4" | "getsockname" | "getpeername" | "getsockopt" | "setsockopt" | "sendto"
        | "recvfrom" | "sendmsg" | "recvmsg" | "sendmmsg" | "recvmmsg" => true,
        _ => false,
    }
}

fn encode(req: &Notification) -> [u8; CALL] {
    let mut b = [0u8; CALL];
    b[..8].copy_from_slice(&req.id.to_ne_bytes());
    b[8..12].copy_from_slice(&req.pid.to_ne_bytes());
    b[12..16].copy_from_slice(&i32::from(req.syscall).to_ne_bytes());
    for (i, a) in req.args.iter().enumerate() {
        b[16 + i * 8..24 + i * 8].copy_from_slice(&a.to_ne_bytes());
    }
    b
}

fn decode(b: &[u8]) -> Option<Notification> {
    let b: &[u8; CALL] = b.try_into().ok()?;
    let word = |at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        *a = word(16 + i * 8);
    }
    Some(Notification {
        id: word(0),
        pid: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        syscall: ScmpSyscall::from(i32::from_ne_bytes([b[12], b[13], b[14], b[15]])),
        args,
    })
}

/// One forwarded call as the owner receives it: the notification, the
/// caller's thread's pidfd, the notify fd to answer it on. None: the guest
/// is gone (or sent something else).
pub fn receive(sock: BorrowedFd<'_>) -> Option<(Notification, OwnedFd, OwnedFd)> {
    let (bytes, mut fds) = recv_with_fds(sock, CALL)?;
    if fds.len() != 2 {
        return None;
    }
    let notify = fds.pop()?;
    let pidfd = fds.pop()?;
    Some((decode(&bytes)?, pidfd, notify))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_reads_back_as_written() {
        let req = Notification {
            id: 0x1122_3344_5566_7788,
            pid: 4242,
            syscall: ScmpSyscall::from(libc::SYS_connect as i32),
            args: [3, 0x7fff_0000, 16, 0, 0, 9],
        };
        let back = decode(&encode(&req)).expect("a call");
        assert_eq!((back.id, back.pid, back.args), (req.id, req.pid, req.args));
        assert_eq!(i32::from(back.syscall), libc::SYS_connect as i32);
    }

    #[test]
    fn tables_read_back_as_asked() {
        use crate::net::{addr::Family, table::Table};
        for t in [Table::Tcp(Family::V4), Table::Tcp(Family::V6), Table::Udp(Family::V4), Table::Udp(Family::V6)] {
            assert_eq!(table_of(code(Asked::Net(t))), Some(Asked::Net(t)));
        }
        assert_eq!(table_of(code(Asked::Unix)), Some(Asked::Unix));
        assert_eq!(table_of(9), None);
        assert!(decode(&[0u8; 10]).is_none());
    }

    struct Addr(u16);
    impl Memory for Addr {
        fn read(&self, _: u64, buf: &mut [u8]) -> Result<(), Errno> {
            buf.copy_from_slice(&self.0.to_ne_bytes()[..buf.len()]);
            Ok(())
        }
        fn write(&self, _: u64, _: &[u8]) -> Result<(), Errno> {
            Err(Errno::EFAULT)
        }
        fn read_cstr(&self, _: u64, _: usize) -> Result<Option<Vec<u8>>, Errno> {
            Err(Errno::EFAULT)
        }
    }

    #[test]
    fn unix_addresses_stay_the_guests() {
        let inet = Addr(libc::AF_INET as u16);
        let unix = Addr(libc::AF_UNIX as u16);
        assert!(forwarded("socket", &[libc::AF_INET6 as u64, 1, 0, 0, 0, 0], &inet));
        assert!(forwarded("socket", &[libc::AF_UNIX as u64, 1, 0, 0, 0, 0], &inet));
        assert!(forwarded("connect", &[3, 8, 16, 0, 0, 0], &inet));
        assert!(!forwarded("bind", &[3, 8, 16, 0, 0, 0], &unix));
        assert!(forwarded("recvmsg", &[3, 8, 0, 0, 0, 0], &unix));
        assert!(forwarded("socketpair", &[1, 1, 0, 8, 0, 0], &unix));
        assert!(!forwarded("openat", &[0; 6], &unix));
        assert!(forwarded("ioctl", &[3, 0x8933, 8, 0, 0, 0], &unix));
        assert!(!forwarded("ioctl", &[3, 0x5401, 8, 0, 0, 0], &unix));
    }
}
