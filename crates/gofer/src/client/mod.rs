//! The 9P2000.L client: one connection, many threads, many tags in flight.
//!
//! Callers take turns reading (leader/follower): a caller whose reply has not arrived and finds
//! nobody reading becomes the reader, reads one frame, files it under its tag and wakes the
//! others. A single-threaded caller thus reads its own reply with no thread hand-off, and
//! concurrent callers share one connection without a dedicated thread.
//!
//! [`Fid`] is the typed handle for files (see `fid.rs`); [`Client::call`] is the raw request.
//!
//! Lock order: `rx` → (released) → `reader`; `tags` and `fids` are leaves.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use moat_p9::donation::{client_dialect, may_carry_fd};
use moat_p9::{DecodeError, Dialect, EncodeError, Frame, Header, Msg, MsgType, IOHDRSZ, MIN_MSIZE, NOTAG};
use nix::errno::Errno;

use crate::transport::{Conn, FrameReader, TransportError};

mod fid;
pub use fid::{DirEntryOwned, Fid, Opened};

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket failed or the peer sent an unreadable stream.
    #[error("9p transport failed")]
    Transport(#[from] TransportError),
    /// A reply could not be decoded.
    #[error("bad 9p reply")]
    Decode(#[from] DecodeError),
    /// A request could not be encoded (a name or data too long).
    #[error("9p request cannot be encoded")]
    Encode(#[from] EncodeError),
    /// The server answered Rlerror.
    #[error("9p server error: {0}")]
    Remote(Errno),
    /// The server answered with a reply of the wrong type.
    #[error("unexpected 9p reply {0:?}")]
    Unexpected(MsgType),
    /// Version negotiation failed.
    #[error("9p version refused by server: {0}")]
    Version(String),
    /// The connection is gone.
    #[error("9p connection closed")]
    Closed,
    /// Every tag or fid number is in use.
    #[error("out of 9p {0}")]
    Exhausted(&'static str),
}

impl ClientError {
    /// The errno to give an application for this error.
    pub fn errno(&self) -> Errno {
        match self {
            ClientError::Remote(e) => *e,
            ClientError::Encode(_) => Errno::ENAMETOOLONG,
            ClientError::Exhausted(_) => Errno::ENFILE,
            _ => Errno::EIO,
        }
    }
}

/// Options of [`Client::connect`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The msize to propose.
    pub msize: u32,
    /// Ask for fd donation (only on Unix sockets; falls back to plain 9P2000.L if refused).
    pub want_fds: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { msize: 512 * 1024 + IOHDRSZ, want_fds: true }
    }
}

/// A reply: the frame's bytes and the fds that came with it.
#[derive(Debug)]
pub struct Response {
    buf: Vec<u8>,
    /// Fds donated with the reply (Rlopen, Rlcreate).
    pub fds: Vec<OwnedFd>,
    msize: u32,
}

impl Response {
    /// The decoded reply; Rlerror becomes [`ClientError::Remote`].
    pub fn msg(&self) -> Result<Msg<'_>, ClientError> {
        match Frame::parse(&self.buf, self.msize)?.msg {
            Msg::Rlerror { ecode } => {
                Err(ClientError::Remote(Errno::from_raw(i32::try_from(ecode).unwrap_or(libc::EIO))))
            }
            m => Ok(m),
        }
    }
}

enum Slot {
    Waiting,
    Done(Response),
}

struct Rx {
    slots: HashMap<u16, Slot>,
    reading: bool,
    dead: bool,
}

struct Inner {
    conn: Conn,
    msize: u32,
    dialect: Dialect,
    rx: Mutex<Rx>,
    cv: Condvar,
    reader: Mutex<FrameReader>,
    tags: Mutex<Alloc>,
    fids: Mutex<Alloc>,
}

/// Hands out numbers, reusing freed ones first.
struct Alloc {
    next: u32,
    limit: u32,
    free: Vec<u32>,
}

impl Alloc {
    fn new(limit: u32) -> Self {
        Self { next: 0, limit, free: Vec::new() }
    }
    fn get(&mut self) -> Option<u32> {
        self.free.pop().or_else(|| {
            (self.next < self.limit).then(|| {
                self.next += 1;
                self.next - 1
            })
        })
    }
    fn put(&mut self, n: u32) {
        self.free.push(n);
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A 9P2000.L client connection; clones share it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("msize", &self.inner.msize).field("dialect", &self.inner.dialect).finish()
    }
}

impl Client {
    /// Negotiates the version on a connected socket (Unix or TCP).
    pub fn connect(sock: OwnedFd, opts: &ClientOptions) -> Result<Client, ClientError> {
        let conn = Conn::new(sock).map_err(TransportError::from)?;
        let mut reader = FrameReader::new(opts.msize.max(MIN_MSIZE));
        let want = if opts.want_fds && conn.can_pass_fds() { Dialect::LWithFdDonation } else { Dialect::L };
        let first = version(&conn, &mut reader, opts.msize, want);
        // A server that knows nothing of the extension may refuse it with "unknown", another
        // version string, or (diod) an Rlerror: all mean "ask again for plain 9P2000.L".
        let (mut msize, mut dialect) = match first {
            Err(ClientError::Remote(_)) if want == Dialect::LWithFdDonation => (0, None),
            other => other?,
        };
        if dialect.is_none() && want == Dialect::LWithFdDonation {
            (msize, dialect) = version(&conn, &mut reader, opts.msize, Dialect::L)?;
        }
        let dialect = dialect.ok_or_else(|| ClientError::Version("no 9P2000.L".into()))?;
        if msize < MIN_MSIZE || msize > opts.msize {
            return Err(ClientError::Version(format!("bad msize {msize}")));
        }
        reader.set_max_frame(msize);
        tracing::debug!(msize, ?dialect, "9p client connected");
        Ok(Client {
            inner: Arc::new(Inner {
                conn,
                msize,
                dialect,
                rx: Mutex::new(Rx { slots: HashMap::new(), reading: false, dead: false }),
                cv: Condvar::new(),
                reader: Mutex::new(reader),
                tags: Mutex::new(Alloc::new(u32::from(NOTAG))),
                fids: Mutex::new(Alloc::new(moat_p9::NOFID)),
            }),
        })
    }

    /// The negotiated msize.
    pub fn msize(&self) -> u32 {
        self.inner.msize
    }

    /// Whether the server donates fds on this connection.
    pub fn fd_donation(&self) -> bool {
        self.inner.dialect == Dialect::LWithFdDonation
    }

    /// Largest data block of one Tread or Twrite.
    pub fn iounit(&self) -> u32 {
        self.inner.msize - IOHDRSZ
    }

    pub(crate) fn alloc_fid(&self) -> Result<u32, ClientError> {
        locked(&self.inner.fids).get().ok_or(ClientError::Exhausted("fids"))
    }

    pub(crate) fn free_fid(&self, fid: u32) {
        locked(&self.inner.fids).put(fid);
    }

    /// Sends one request and waits for its reply. Safe to call from many threads at once.
    pub fn call(&self, msg: Msg<'_>) -> Result<Response, ClientError> {
        let tag = locked(&self.inner.tags).get().ok_or(ClientError::Exhausted("tags"))?;
        // Tags are below NOTAG (the allocator's limit), so they fit a u16.
        let tag = u16::try_from(tag).map_err(|_| ClientError::Exhausted("tags"))?;
        let res = self.call_tagged(tag, msg);
        locked(&self.inner.tags).put(u32::from(tag));
        res
    }

    fn call_tagged(&self, tag: u16, msg: Msg<'_>) -> Result<Response, ClientError> {
        let mut out = Vec::with_capacity(msg.body_len() + moat_p9::HEADER_LEN);
        Frame { tag, msg }.emit(&mut out)?;
        if out.len() > self.inner.msize as usize {
            return Err(ClientError::Encode(EncodeError::TooLong { what: "frame", len: out.len() }));
        }
        locked(&self.inner.rx).slots.insert(tag, Slot::Waiting);
        if let Err(e) = self.inner.conn.send(&out, None) {
            locked(&self.inner.rx).slots.remove(&tag);
            return Err(TransportError::from(e).into());
        }
        self.wait(tag)
    }

    fn wait(&self, tag: u16) -> Result<Response, ClientError> {
        let inner = &*self.inner;
        let mut rx = locked(&inner.rx);
        loop {
            if let Some(Slot::Done(_)) = rx.slots.get(&tag) {
                if let Some(Slot::Done(r)) = rx.slots.remove(&tag) {
                    return Ok(r);
                }
            }
            if rx.dead {
                rx.slots.remove(&tag);
                return Err(ClientError::Closed);
            }
            if rx.reading {
                rx = inner.cv.wait(rx).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            rx.reading = true;
            drop(rx);
            let got = self.read_one();
            rx = locked(&inner.rx);
            rx.reading = false;
            match got {
                Ok(resp) => {
                    let Ok(h) = Header::parse(&resp.buf) else { continue };
                    match rx.slots.get_mut(&h.tag) {
                        Some(slot @ Slot::Waiting) => *slot = Slot::Done(resp),
                        // A reply nobody waits for (tag unknown or already answered): dropping it
                        // closes any fd it carried.
                        _ => tracing::debug!(tag = h.tag, "9p reply for no request dropped"),
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "9p client connection lost");
                    rx.dead = true;
                    inner.conn.shutdown();
                }
            }
            inner.cv.notify_all();
        }
    }

    fn read_one(&self) -> Result<Response, ClientError> {
        let mut reader = locked(&self.inner.reader);
        let mut buf = Vec::new();
        let mut fds = Vec::new();
        if !reader.next_frame(self.inner.conn.sock(), &mut buf, &mut fds)? {
            return Err(ClientError::Closed);
        }
        if !fds.is_empty() {
            let ty = Header::parse(&buf)?.ty;
            let ok = MsgType::from_u8(ty).is_some_and(may_carry_fd) && self.fd_donation() && fds.len() == 1;
            if !ok {
                // Only Rlopen/Rlcreate carry exactly one fd; anything else is dropped (closed).
                tracing::debug!(ty, n = fds.len(), "unexpected fds from 9p server dropped");
                fds.clear();
            }
        }
        Ok(Response { buf, fds, msize: self.inner.msize })
    }
}

/// One Tversion/Rversion exchange, before the client is shared.
fn version(
    conn: &Conn,
    reader: &mut FrameReader,
    msize: u32,
    want: Dialect,
) -> Result<(u32, Option<Dialect>), ClientError> {
    let mut out = Vec::new();
    Frame { tag: NOTAG, msg: Msg::Tversion { msize, version: want.version().into() } }.emit(&mut out)?;
    conn.send(&out, None).map_err(TransportError::from)?;
    let (mut buf, mut fds) = (Vec::new(), Vec::new());
    if !reader.next_frame(conn.sock(), &mut buf, &mut fds)? {
        return Err(ClientError::Closed);
    }
    match Frame::parse(&buf, msize.max(MIN_MSIZE))?.msg {
        Msg::Rversion { msize, version } => Ok((msize, client_dialect(want, version.0))),
        Msg::Rlerror { ecode } => Err(ClientError::Remote(Errno::from_raw(i32::try_from(ecode).unwrap_or(libc::EIO)))),
        m => Err(ClientError::Unexpected(m.msg_type())),
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Transport(TransportError::Io(e))
    }
}
