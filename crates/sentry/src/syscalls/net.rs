//! Sockets, until the netstack lands: the Sentry decides which sockets a
//! program may have, the host makes them.

use nix::errno::Errno;

use super::{Call, Reply};

/// Netlink families a program may open: routing (ip, getaddrinfo's
/// interface list) and socket diagnostics (ss), both scoped to the
/// sandbox's network namespace. Host-wide ones (uevents, audit) are refused.
const NETLINK_OK: &[u64] = &[0 /* NETLINK_ROUTE */, 4 /* NETLINK_SOCK_DIAG */];

/// Serves socket(2): raw and packet sockets are refused (they would reach
/// below the sandbox's network), netlink only for routing and diagnostics;
/// other kinds are made by the host for now (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
/// The arguments are registers, not memory, so the host sees exactly what
/// was checked.
pub fn socket(c: &Call<'_>) -> Reply {
    let domain = i32::try_from(c.args[0]).unwrap_or(-1);
    let kind = i32::try_from(c.args[1] & 0xf).unwrap_or(-1);
    match (domain, kind) {
        (libc::AF_NETLINK, _) if NETLINK_OK.contains(&c.args[2]) => Reply::Continue,
        (libc::AF_NETLINK, _) => Reply::Error(Errno::EPERM),
        // 10 is the obsolete SOCK_PACKET
        (libc::AF_PACKET, _) | (_, libc::SOCK_RAW) | (_, 10) => Reply::Error(Errno::EPERM),
        (libc::AF_UNIX | libc::AF_INET | libc::AF_INET6, _) => Reply::Continue,
        _ => Reply::Error(Errno::EAFNOSUPPORT),
    }
}
