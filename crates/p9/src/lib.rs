//! 9P2000.L wire format for moat, with the fd-donation extension.
//!
//! This crate only turns bytes into messages and back; it does no I/O. The gofer
//! (`moat-gofer`) builds the server, the client and the socket transport on top of it.
//!
//! # Layers
//!
//! - [`wire`]: a bounds-checked little-endian [`wire::Reader`] and an appending [`wire::Writer`].
//! - [`types`]: the fields messages are made of ([`Str`], [`Data`], [`Qid`], [`Attr`] …), each
//!   with a checked decoder.
//! - [`msg`]: [`Msg`], one variant per 9P2000.L message, and [`Frame`], the codec of a whole
//!   frame `size[4] type[1] tag[2] body`.
//! - [`dirent`]: the entries packed inside Rreaddir.
//! - [`donation`]: negotiation of the fd-donation extension and attribution of received fds.
//! - [`consts`]: protocol numbers (qid types, getattr/setattr masks, open flags, lock codes).
//!
//! # The contract for untrusted bytes
//!
//! [`Frame::parse`] never panics and never reads out of bounds, whatever it is given. It checks:
//! the frame size against the bytes given and against the negotiated msize (the caller's
//! `max_size`); every string and data length against the bytes left in the frame; the walk element
//! count against [`MAX_WELEM`] (16); that the type byte names a 9P2000.L message; and that no bytes
//! are left after the last field. Decoding borrows strings and data from the frame and stores
//! walk lists inline, so it never allocates. [`Header::frame_len`] lets a reader reject an
//! oversized frame from its first four bytes, before buffering it. Semantic limits (name
//! validity, xattr sizes, fid counts) belong to the server.
//!
//! Encoding ([`Frame::emit`]) appends to a caller-owned buffer and fails, leaving the buffer as it
//! was, if a string, data block or the frame does not fit its length field.
//!
//! The message set is 9P2000.L as Linux v9fs and diod speak it: version, auth, attach, flush,
//! walk, read, write, clunk, remove, statfs, lopen, lcreate, symlink, mknod, rename, readlink,
//! getattr, setattr, xattrwalk, xattrcreate, readdir, fsync, lock, getlock, link, mkdir, renameat,
//! unlinkat, and the Rlerror reply. The 9P2000 stat/wstat/open/create and Rerror are not part of
//! 9P2000.L and are rejected as unknown types.
//!
//! # The fd-donation extension
//!
//! On a Unix stream socket a server can hand the client the host fd it opened, so the client
//! reads, writes and mmaps the file without further round trips (gVisor's gofer took the same
//! step). The extension adds no bytes to any 9P message: only ancillary data.
//!
//! 1. **Negotiation.** The client sends `Tversion` with the version string
//!    [`donation::VERSION_9P2000_L_FD`] (`"9P2000.L.moat-fd"`). A server that supports the
//!    extension on this transport echoes it; it is then in force for the session. A server that
//!    does not (any plain 9P2000.L server, or ours on TCP) answers `"9P2000.L"`, `"9P2000"` or
//!    `"unknown"`; the client then sends a second `Tversion` with `"9P2000.L"` if needed and speaks
//!    plain 9P2000.L. A client that never asks sees a plain server. See
//!    [`donation::server_dialect`] and [`donation::client_dialect`].
//! 2. **Carrying.** When in force, each `Rlopen` or `Rlcreate` for a *regular file* is sent with
//!    one `sendmsg(2)` whose `SCM_RIGHTS` control message holds exactly one fd: the file as the
//!    server opened it, with the access mode of the request (read-only mounts always give
//!    read-only fds). No other reply carries fds; directories, symlinks and special files never
//!    do. The fid stays open on the server too, so 9P reads and writes keep working.
//! 3. **Attribution.** A Unix stream socket delivers a control message with the first byte of
//!    the `sendmsg` that carried it, and a `recvmsg` never returns bytes past a message that
//!    carried fds. So the receiver ties each fd to the frame that holds the last byte of the
//!    `recvmsg` call that delivered it ([`donation::FdLedger`]). A reply that nobody waits for
//!    any more (its request was flushed) gets its fd closed by the client.
//!
//! The client should receive with `MSG_CMSG_CLOEXEC`. Closing the fid does not close a donated fd
//! and vice versa.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod consts;
pub mod dirent;
pub mod donation;
pub mod error;
pub mod msg;
pub mod types;
pub mod wire;

pub use dirent::{DirEntries, DirEntry};
pub use donation::Dialect;
pub use error::{DecodeError, EncodeError};
pub use msg::{Frame, Header, Msg, MsgType, HEADER_LEN};
pub use types::{Attr, Bounded, Data, Datasync, Qid, Qids, SetAttr, StatFs, Str, WalkNames};

/// The tag of Tversion, which is outside any session.
pub const NOTAG: u16 = 0xffff;
/// "No fid", as in Tattach without authentication.
pub const NOFID: u32 = 0xffff_ffff;
/// Most elements one Twalk may carry (and one Rwalk may answer).
pub const MAX_WELEM: usize = 16;
/// Room for the header of Rread/Twrite around the data: a read or write of `msize - IOHDRSZ`
/// bytes always fits one frame.
pub const IOHDRSZ: u32 = 24;
/// Smallest msize a peer may negotiate: enough for any non-data message we send.
pub const MIN_MSIZE: u32 = 4096;
