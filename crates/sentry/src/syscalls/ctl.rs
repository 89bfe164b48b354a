//! ioctl(2) and prctl(2): never passed through. The Sentry checks the
//! request against an allowlist and lets the host perform only the listed
//! ones (the request is a register, so the host sees what was checked);
//! anything else fails (ENOTTY for ioctl, EINVAL for prctl), logged once.

use nix::errno::Errno;

use super::{Call, Reply};

/// Terminal, fd-flag and socket-query ioctls programs use day to day.
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
    0x8912,      // SIOCGIFCONF
    0x8913,      // SIOCGIFFLAGS
    0x8915,      // SIOCGIFADDR
    0x8921,      // SIOCGIFMTU
    0x8927,      // SIOCGIFHWADDR
    0x8933,      // SIOCGIFINDEX
    0x8910,      // SIOCGIFNAME
];

/// Serves ioctl(2): the allowlisted requests are performed by the host on
/// the caller's own fd; others fail with ENOTTY.
pub fn ioctl(c: &Call<'_>) -> Reply {
    // the kernel takes the request as a 32-bit int
    let req = c.args[1] & 0xffff_ffff;
    if IOCTLS.contains(&req) {
        Reply::Continue
    } else {
        Reply::Error(Errno::ENOTTY)
    }
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
