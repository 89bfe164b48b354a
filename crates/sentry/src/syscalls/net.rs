//! Sockets, until the netstack lands: the Sentry decides which sockets a
//! program may have, the host makes them.

use nix::errno::Errno;

use super::{Call, Reply};

/// Serves socket(2): raw and packet sockets are refused (they would reach
/// below the sandbox's network); other kinds are made by the host for now
/// (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The arguments are registers, not
/// memory, so the host sees exactly what was checked.
pub fn socket(c: &Call<'_>) -> Reply {
    let domain = i32::try_from(c.args[0]).unwrap_or(-1);
    let kind = i32::try_from(c.args[1] & 0xf).unwrap_or(-1);
    match (domain, kind) {
        // 10 is the obsolete SOCK_PACKET
        (libc::AF_PACKET, _) | (_, libc::SOCK_RAW) | (_, 10) => Reply::Error(Errno::EPERM),
        (libc::AF_UNIX | libc::AF_INET | libc::AF_INET6 | libc::AF_NETLINK, _) => Reply::Continue,
        _ => Reply::Error(Errno::EAFNOSUPPORT),
    }
}
