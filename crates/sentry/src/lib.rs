//! The Sentry: moat's application kernel (design.md §2), being built.
//!
//! What exists: the syscall table ([`syscalls::table`]), the single source
//! of truth that gives every x86-64 system call its class — served by the
//! Sentry, passed through to the host kernel (with argument checks), or
//! denied — and from which the stubs' seccomp filter
//! ([`platform::filter`]), the `moat syscalls` listing and docs/syscalls.md
//! are generated; the seccomp user-notification loop ([`platform::notify`])
//! that hands served calls to their handlers (kernel identity, the caller's
//! own fds by name); the sandbox's /proc and /sys ([`fs`]), served to
//! the stubs over FUSE; and the container's real file tree ([`vfs`]), in
//! which the Sentry makes every call that changes it, as the caller, while
//! the stubs hold a read-only replica ([`syscalls::path`]).
//!
//! Not yet: the reads of the tree (the host makes them in the replica),
//! the gofer client, the netstack. Calls the host performs are classed
//! "interim" in the table (answered with SECCOMP_USER_NOTIF_FLAG_CONTINUE),
//! and the generated docs count them apart, so nobody mistakes them for
//! served.
#![warn(missing_docs)]

pub mod abi;
pub mod fs;
pub mod kernel;
pub mod net;
pub mod platform;
pub mod syscalls;
pub mod vfs;
