//! moat's gofer: the file server that alone sees a container's tree, and the 9P client the
//! Sentry talks to it with.
//!
//! # Parts
//!
//! - [`server`]: serves one directory over 9P2000.L (`moat-p9`) on stream sockets, with the
//!   fd-donation extension on Unix sockets (specified in the `moat-p9` crate docs).
//! - [`client`]: the 9P2000.L client: attach, walk, open (taking a donated fd), read/write,
//!   readdir, getattr/setattr, create, mkdir, unlink, rename, symlink, readlink, link, statfs,
//!   xattrs, locks. It works against any 9P2000.L server (tested against Debian's diod).
//! - [`transport`]: framing over a stream socket and fd passing.
//! - `sys`: the crate's only `unsafe`, as small safe wrappers.
//!
//! # Entry point
//!
//! `moat gofer` calls [`serve`] with a [`Config`] and the socket it inherited (one end of a
//! socketpair whose other end the Sentry holds). [`serve`] returns when the peer closes it.
//!
//! # Security model
//!
//! The socket is the capability: there is no 9P authentication (Tauth fails), and whoever holds
//! the socket may attach. Inside the session the server guarantees that no request reaches a
//! byte outside the served tree (see `server::node` for the invariants: fd-relative walks with
//! `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS)` and `O_NOFOLLOW`, lexical
//! `..`, inode checks on reopen), that symlinks are served as symlinks and never followed, that a
//! read-only tree stays unchanged whatever the client sends, and that fids (`Config::max_fids`),
//! requests in flight (`Config::workers`) and buffers (`Config::max_msize`) are bounded.
//! The server does no permission checks of its own beyond the host kernel's: the Sentry checks
//! the container's credentials before it asks.
//!
//! Xattr values parked in fids are capped at 1 MiB per session (`ENOMEM` beyond).
//!
//! Limits of this version: Tlock never blocks (a conflict answers `LOCK_BLOCKED`); only
//! `user.*` xattrs can be set; devices, fifos and sockets in the tree can be walked and statted
//! but not opened; mknod makes no device nodes; getattr fills `GETATTR_BASIC` (no btime).
//!
//! TODO(issue 4, confinement): the gofer process itself is not confined yet. `moat gofer` must,
//! before calling [`serve`]: enter a mount namespace holding only the served tree (pivot into
//! it), drop every capability it does not need (keep `CAP_CHOWN`, `CAP_FOWNER`, `CAP_DAC_OVERRIDE`
//! / `CAP_DAC_READ_SEARCH` only when the tree's ownership requires them), set `no_new_privs`, and
//! install a seccomp allowlist (the calls this crate makes: openat2, fstat, fstatat, newfstatat,
//! getdents64, lseek, pread64, pwrite64, ftruncate, fsync, fdatasync, fchmodat2, fchownat,
//! utimensat, mkdirat, mknodat, symlinkat, linkat, renameat, unlinkat, readlinkat, fstatfs,
//! fgetxattr, fsetxattr, flistxattr, fremovexattr, fcntl (F_GETFL, F_SETFL, F_OFD_SETLK,
//! F_OFD_GETLK, F_DUPFD_CLOEXEC), recvmsg, sendmsg, shutdown, getsockname, close, plus the
//! thread and memory calls of std), counted and printed by `moat gofer --print-filter`.
#![warn(missing_docs)]

pub mod client;
pub mod process;
pub mod server;
mod sys;
pub mod transport;

use std::os::fd::OwnedFd;

pub use client::{Client, ClientError, ClientOptions};
pub use server::{Config, Server, ServerError};
/// One message and the fds that came with it (the Sentry's helpers speak so too).
pub use sys::recv_with_fds;

/// Serves `config.root` on the connected socket `sock` until the peer closes it.
///
/// This is what `moat gofer` runs: the socket is its end of the socketpair shared with the
/// Sentry. Fd donation is offered when `sock` is a Unix socket and `config.donate_fds` is set.
pub fn serve(config: Config, sock: OwnedFd) -> Result<(), ServerError> {
    Server::new(config)?.serve_conn(sock)
}
