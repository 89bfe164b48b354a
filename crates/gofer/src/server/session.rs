//! One connection: worker threads, tags in flight, Tflush and Tversion.
//!
//! Workers take turns reading (leader/follower): one holds the reader lock, reads one frame,
//! registers its tag, lets go, and serves the request while the next worker reads. So at most
//! `workers` requests are in flight, each with buffers sized to the msize once, and no request is
//! ever queued unserved: a Tflush either finds its old tag running (its Rflush is sent right
//! after that request's reply) or finds it done (Rflush at once).
//!
//! Lock order: `gate` (read by requests, write by Tversion) → fid locks → `tags`. The reader lock
//! is never held while another lock is taken.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use moat_p9::donation::{server_dialect, VERSION_UNKNOWN};
use moat_p9::{DecodeError, Dialect, Frame, Header, Msg, MsgType, MIN_MSIZE};
use nix::errno::Errno;

use super::fid::FidTable;
use super::Shared;
use crate::transport::{Conn, FrameReader};

/// A reply a handler produced, with the fd to donate, if any.
pub(crate) struct Reply<'s> {
    pub msg: Msg<'s>,
    pub fd: Option<Arc<OwnedFd>>,
}

impl<'s> From<Msg<'s>> for Reply<'s> {
    fn from(msg: Msg<'s>) -> Self {
        Reply { msg, fd: None }
    }
}

/// State of one connection.
pub(crate) struct Session<'a> {
    pub shared: &'a Shared,
    conn: &'a Conn,
    reader: Mutex<FrameReader>,
    pub fids: FidTable,
    /// Bytes of xattr values held by this session's fids (see `fid::XATTR_BUDGET`).
    pub xattr_budget: Arc<AtomicUsize>,
    tags: Mutex<HashMap<u16, Vec<u16>>>,
    gate: RwLock<()>,
    msize: AtomicU32,
    donating: AtomicBool,
    versioned: AtomicBool,
    closing: AtomicBool,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'a> Session<'a> {
    pub fn new(shared: &'a Shared, conn: &'a Conn) -> Self {
        Self {
            shared,
            conn,
            reader: Mutex::new(FrameReader::new(shared.config.max_msize)),
            fids: FidTable::new(shared.config.max_fids),
            xattr_budget: Arc::new(AtomicUsize::new(0)),
            tags: Mutex::new(HashMap::new()),
            gate: RwLock::new(()),
            msize: AtomicU32::new(shared.config.max_msize),
            donating: AtomicBool::new(false),
            versioned: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        }
    }

    /// Serves the connection until the peer closes it.
    pub fn run(&self) {
        std::thread::scope(|s| {
            for _ in 1..self.shared.config.workers {
                s.spawn(|| self.worker());
            }
            self.worker();
        });
        tracing::debug!(fids = self.fids.len(), "9p session ended");
    }

    /// The negotiated msize.
    pub fn msize(&self) -> u32 {
        self.msize.load(Ordering::Relaxed)
    }

    /// Whether fd donation is in force.
    pub fn donating(&self) -> bool {
        self.donating.load(Ordering::Relaxed)
    }

    fn worker(&self) {
        let msize = self.shared.config.max_msize as usize;
        let (mut inbuf, mut out, mut scratch) =
            (Vec::with_capacity(msize), Vec::with_capacity(msize), Vec::with_capacity(msize));
        let mut fds = Vec::new();
        while self.next_request(&mut inbuf, &mut fds) {
            // Clients have nothing to donate to us: close whatever came along.
            fds.clear();
            self.process(&inbuf, &mut out, &mut scratch);
        }
    }

    fn next_request(&self, inbuf: &mut Vec<u8>, fds: &mut Vec<OwnedFd>) -> bool {
        let mut reader = locked(&self.reader);
        if self.closing.load(Ordering::Relaxed) {
            return false;
        }
        // After Tversion the negotiated msize bounds frames from their size field on.
        reader.set_max_frame(self.msize());
        match reader.next_frame(self.conn.sock(), inbuf, fds) {
            Ok(true) => {}
            Ok(false) => {
                self.closing.store(true, Ordering::Relaxed);
                return false;
            }
            Err(e) => {
                tracing::debug!(error = %e, "9p connection dropped");
                self.close();
                return false;
            }
        }
        let Ok(h) = Header::parse(inbuf) else { return true };
        if h.ty != MsgType::Tflush as u8 && h.ty != MsgType::Tversion as u8 {
            let mut tags = locked(&self.tags);
            if tags.contains_key(&h.tag) {
                // A tag reused while in flight: the peer is broken and replies would be ambiguous.
                drop(tags);
                tracing::debug!(tag = h.tag, "9p tag reused while in flight; closing");
                self.close();
                return false;
            }
            tags.insert(h.tag, Vec::new());
        }
        true
    }

    fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.conn.shutdown();
    }

    fn process(&self, inbuf: &[u8], out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        let Ok(h) = Header::parse(inbuf) else { return };
        match Frame::parse(inbuf, self.msize().max(MIN_MSIZE)) {
            Ok(Frame { tag, msg: Msg::Tversion { msize, version } }) => self.version(tag, msize, version.0, out),
            Ok(Frame { tag, msg: Msg::Tflush { oldtag } }) => self.flush(tag, oldtag, out),
            Ok(Frame { tag, msg }) => {
                // A reply sent as a request, or anything before Tversion, is a protocol error.
                let res = if !msg.msg_type().is_request() || !self.versioned.load(Ordering::Relaxed) {
                    Err(Errno::EPROTO)
                } else {
                    let _gate = self.gate.read().unwrap_or_else(|e| e.into_inner());
                    tracing::trace!(tag, ?msg, "9p request");
                    self.dispatch(msg, scratch)
                };
                self.reply_final(tag, res, out);
            }
            Err(e) => {
                let errno = match e {
                    DecodeError::UnknownType(_) => Errno::EOPNOTSUPP,
                    _ => Errno::EINVAL,
                };
                if h.ty == MsgType::Tversion as u8 || h.ty == MsgType::Tflush as u8 {
                    // Their tags were never registered.
                    self.reply(h.tag, Err(errno), out);
                } else {
                    self.reply_final(h.tag, Err(errno), out);
                }
            }
        }
    }

    /// Encodes and sends a reply; a reply that cannot be encoded becomes `EIO`.
    fn reply(&self, tag: u16, res: Result<Reply<'_>, Errno>, out: &mut Vec<u8>) {
        let (msg, fd) = match res {
            Ok(r) => (r.msg, r.fd),
            Err(e) => (Msg::Rlerror { ecode: e as u32 }, None),
        };
        out.clear();
        let mut fd = fd;
        if (Frame { tag, msg }).emit(out).is_err() || out.len() > self.msize() as usize {
            out.clear();
            fd = None;
            // An Rlerror always fits the smallest msize.
            let _ = Frame { tag, msg: Msg::Rlerror { ecode: Errno::EIO as u32 } }.emit(out);
        }
        if let Err(e) = self.conn.send(out, fd.as_ref().map(|f| f.as_fd())) {
            tracing::debug!(error = %e, "9p reply not sent");
            self.close();
        }
    }

    /// Sends the reply to a registered request, unregisters its tag and answers the Tflushes
    /// that waited for it. The tag is removed and the reply sent under the `tags` lock: a Tflush
    /// then either finds the tag (and is answered here, after the reply) or comes after the reply
    /// was sent; and the client cannot reuse the tag before it is free here.
    fn reply_final(&self, tag: u16, res: Result<Reply<'_>, Errno>, out: &mut Vec<u8>) {
        let waiters = {
            let mut tags = locked(&self.tags);
            let waiters = tags.remove(&tag).unwrap_or_default();
            self.reply(tag, res, out);
            waiters
        };
        for w in waiters {
            self.reply(w, Ok(Msg::Rflush {}.into()), out);
        }
    }

    fn flush(&self, tag: u16, oldtag: u16, out: &mut Vec<u8>) {
        {
            let mut tags = locked(&self.tags);
            if let Some(waiters) = tags.get_mut(&oldtag) {
                // The old request is being served: its reply goes first, then this Rflush.
                waiters.push(tag);
                return;
            }
        }
        self.reply(tag, Ok(Msg::Rflush {}.into()), out);
    }

    fn version(&self, tag: u16, msize: u32, version: &[u8], out: &mut Vec<u8>) {
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        // Tversion aborts the session: every fid is forgotten (version(5)).
        self.fids.clear();
        let cfg = &self.shared.config;
        let can_donate = cfg.donate_fds && self.conn.can_pass_fds();
        let msize = msize.min(cfg.max_msize);
        let reply = match server_dialect(version, can_donate) {
            _ if msize < MIN_MSIZE => Err(Errno::EINVAL),
            None => {
                self.versioned.store(false, Ordering::Relaxed);
                Ok(Msg::Rversion { msize, version: VERSION_UNKNOWN.into() })
            }
            Some(d) => {
                self.msize.store(msize, Ordering::Relaxed);
                self.donating.store(d == Dialect::LWithFdDonation, Ordering::Relaxed);
                self.versioned.store(true, Ordering::Relaxed);
                tracing::debug!(msize, dialect = ?d, "9p version negotiated");
                Ok(Msg::Rversion { msize, version: d.version().into() })
            }
        };
        self.reply(tag, reply.map(Reply::from), out);
    }
}
