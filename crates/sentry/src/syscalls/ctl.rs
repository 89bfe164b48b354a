//! ioctl(2) and prctl(2): never passed through. The Sentry checks the
//! request against an allowlist and lets the host perform only the listed
//! ones (the request is a register, so the host sees what was checked);
//! anything else fails (ENOTTY for ioctl, EINVAL for prctl), logged once.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;

use super::{Call, Reply};
use crate::net::ifreq::{self, IFCONF, IFREQ};

/// Terminal and fd-flag ioctls programs use day to day (the interface
/// queries are served: [`interface`]).
/// TIOCSTI (pushing input into a terminal) and TIOCLINUX are absent on purpose.
const IOCTLS: &[u64] = &[
    0x5401,      // TCGETS
    0x5402,      // TCSETS
    0x5403,      // TCSETSW
    0x5404,      // TCSETSF
    0x5405,      // TCGETA
    0x5406,      // TCSETA
    0x5407,      // TCSETAW
    0x5408,      // TCSETAF
    0x5409,      // TCSBRK
    0x540a,      // TCXONC
    0x540b,      // TCFLSH
    0x540e,      // TIOCSCTTY
    0x540f,      // TIOCGPGRP
    0x5410,      // TIOCSPGRP
    0x5411,      // TIOCOUTQ
    0x5413,      // TIOCGWINSZ
    0x5414,      // TIOCSWINSZ
    0x541b,      // FIONREAD
    0x5421,      // FIONBIO
    0x5422,      // TIOCNOTTY
    0x5425,      // TCSBRKP
    0x5429,      // TIOCGSID
    0x5450,      // FIONCLEX
    0x5451,      // FIOCLEX
    0x5452,      // FIOASYNC
    0x802c_542a, // TCGETS2
    0x402c_542b, // TCSETS2
    0x402c_542c, // TCSETSW2
    0x402c_542d, // TCSETSF2
    0x8004_5430, // TIOCGPTN
    0x4004_5431, // TIOCSPTLCK
    0x8004_5439, // TIOCGPTLCK
    0x5441,      // TIOCGPTPEER
];

/// Serves ioctl(2): the allowlisted requests are performed by the host on
/// the caller's own fd; others fail with ENOTTY.
pub fn ioctl(c: &Call<'_>) -> Reply {
    // the kernel takes the request as a 32-bit int
    let req = c.args[1] & 0xffff_ffff;
    if ifreq::REQUESTS.contains(&req) {
        return interface(c, req);
    }
    if IOCTLS.contains(&req) {
        Reply::Continue
    } else {
        Reply::Error(Errno::ENOTTY)
    }
}

/// The interface ioctls on a socket: answered from the netstack's
/// interfaces, or (without one) made on a socket of the app's network
/// namespace. The kernel would answer them in the namespace of the
/// socket, which for the app's unix sockets is the Sentry's own.
fn interface(c: &Call<'_>, req: u64) -> Reply {
    let Ok(fd) = c.fds.get(c.args[0] as i32) else { return Reply::Error(Errno::EBADF) };
    if nix::sys::stat::fstat(&fd).map(|s| s.st_mode & libc::S_IFMT) != Ok(libc::S_IFSOCK) {
        return Reply::Continue;
    }
    let r = match (&c.kernel.net, &c.kernel.ifsock) {
        (Some(net), _) => {
            let all = ifreq::of_stack(net.lock().pod());
            served(
                c,
                req,
                |req, ifr| ifreq::answer(&all, req, ifr),
                |room| Ok(ifreq::conf(&all, room)),
                || Ok(ifreq::conf_len(&all)),
            )
        }
        (None, Some(sock)) => served(
            c,
            req,
            |req, ifr| host_ifreq(sock.as_fd(), req, ifr),
            |room| host_ifconf(sock.as_fd(), room),
            || host_ifconf(sock.as_fd(), 0).map(|b| b.len()),
        ),
        (None, None) => return Reply::Continue,
    };
    r.map(|()| Reply::Value(0)).unwrap_or_else(Reply::Error)
}

/// Copies the caller's struct ifreq (ifconf for SIOCGIFCONF) in, has
/// `one` (or `conf` with the room the caller gives, or `needed` for a
/// NULL buffer) answer it, and copies the answer back.
fn served(
    c: &Call<'_>,
    req: u64,
    one: impl Fn(u64, &mut [u8; IFREQ]) -> Result<(), Errno>,
    conf: impl Fn(usize) -> Result<Vec<u8>, Errno>,
    needed: impl Fn() -> Result<usize, Errno>,
) -> Result<(), Errno> {
    if req != ifreq::SIOCGIFCONF {
        let mut ifr = [0u8; IFREQ];
        c.mem.read(c.args[2], &mut ifr)?;
        one(req, &mut ifr)?;
        return c.mem.write(c.args[2], &ifr);
    }
    let mut ifc = [0u8; IFCONF];
    c.mem.read(c.args[2], &mut ifc)?;
    let room = i32::from_ne_bytes([ifc[0], ifc[1], ifc[2], ifc[3]]);
    let buf = u64::from_ne_bytes([ifc[8], ifc[9], ifc[10], ifc[11], ifc[12], ifc[13], ifc[14], ifc[15]]);
    let len = if buf == 0 {
        needed()?
    } else {
        let list = conf(usize::try_from(room).map_err(|_| Errno::EINVAL)?.min(1 << 16))?;
        c.mem.write(buf, &list)?;
        list.len()
    };
    c.mem.write(c.args[2], &(len as i32).to_ne_bytes())
}

/// An interface ioctl made on `sock` (a socket of the app's network namespace).
fn host_ifreq(sock: BorrowedFd<'_>, req: u64, ifr: &mut [u8; IFREQ]) -> Result<(), Errno> {
    // SAFETY: every request in ifreq::REQUESTS but SIOCGIFCONF reads and
    // writes one struct ifreq, which `ifr` is, whole and ours.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), req as libc::c_ulong, ifr.as_mut_ptr()) };
    Errno::result(r).map(drop)
}

/// SIOCGIFCONF made on `sock` with `room` bytes of buffer (0: how many it needs).
fn host_ifconf(sock: BorrowedFd<'_>, room: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; room];
    let mut ifc = libc::ifconf {
        ifc_len: room as i32,
        ifc_ifcu: libc::__c_anonymous_ifc_ifcu { ifcu_buf: std::ptr::null_mut() },
    };
    if room > 0 {
        ifc.ifc_ifcu.ifcu_buf = buf.as_mut_ptr().cast();
    }
    // SAFETY: SIOCGIFCONF writes at most ifc_len bytes to the buffer (ours,
    // that long) and the length to `ifc` (ours); with a NULL buffer only the length.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), ifreq::SIOCGIFCONF as libc::c_ulong, &mut ifc) };
    Errno::result(r)?;
    buf.resize(usize::try_from(ifc.ifc_len).unwrap_or(0), 0);
    Ok(buf)
}

/// prctl options that only affect the calling process (or its children).
const PRCTLS: &[u64] = &[
    1,           // PR_SET_PDEATHSIG
    2,           // PR_GET_PDEATHSIG
    3,           // PR_GET_DUMPABLE
    4,           // PR_SET_DUMPABLE
    7,           // PR_GET_KEEPCAPS
    8,           // PR_SET_KEEPCAPS
    15,          // PR_SET_NAME
    16,          // PR_GET_NAME
    21,          // PR_GET_SECCOMP
    22,          // PR_SET_SECCOMP
    23,          // PR_CAPBSET_READ
    24,          // PR_CAPBSET_DROP
    27,          // PR_GET_SECUREBITS
    29,          // PR_SET_TIMERSLACK
    30,          // PR_GET_TIMERSLACK
    36,          // PR_SET_CHILD_SUBREAPER
    37,          // PR_GET_CHILD_SUBREAPER
    38,          // PR_SET_NO_NEW_PRIVS
    39,          // PR_GET_NO_NEW_PRIVS
    40,          // PR_GET_TID_ADDRESS
    41,          // PR_SET_THP_DISABLE
    42,          // PR_GET_THP_DISABLE
    47,          // PR_CAP_AMBIENT
    0x5356_4d41, // PR_SET_VMA (anonymous mapping names)
];

/// Serves prctl(2): options that act on the caller alone are performed by
/// the host; the rest (PR_SET_MM, PR_SET_PTRACER, speculation and memory
/// tagging controls, …) fail with EINVAL.
pub fn prctl(c: &Call<'_>) -> Reply {
    if PRCTLS.contains(&(c.args[0] & 0xffff_ffff)) {
        Reply::Continue
    } else {
        Reply::Error(Errno::EINVAL)
    }
}
