//! Framing of 9P over a stream socket, with fds passed alongside on Unix sockets.
//!
//! [`FrameReader`] buffers what `recvmsg` returns, cuts it into frames (rejecting any frame larger
//! than the msize from its size field, before buffering it) and ties received fds to frames by
//! stream offset ([`moat_p9::donation::FdLedger`]). [`Conn::send`] writes one frame with at most one
//! fd attached to its first byte. Sends take a lock so that frames from concurrent workers never
//! interleave.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use moat_p9::donation::FdLedger;
use moat_p9::{DecodeError, Header};
use nix::sys::socket::{getsockname, sendmsg, AddressFamily, ControlMessage, MsgFlags, SockaddrLike, SockaddrStorage};

use crate::sys;

/// Errors of the socket transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The socket failed.
    #[error("socket i/o failed")]
    Io(#[from] io::Error),
    /// The peer sent a frame we cannot accept.
    #[error("bad frame from peer")]
    Frame(#[from] DecodeError),
    /// The peer closed the stream in the middle of a frame.
    #[error("peer closed the stream mid-frame")]
    Truncated,
}

/// Most fds held waiting for their frame; a peer that sends more is cut off.
const MAX_PENDING_FDS: usize = 64;

/// Reads whole frames off a stream socket.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    max_frame: u32,
    ledger: FdLedger<OwnedFd>,
    scratch_fds: Vec<OwnedFd>,
}

impl FrameReader {
    /// A reader that accepts frames of up to `max_frame` bytes.
    pub fn new(max_frame: u32) -> Self {
        let mut r = Self {
            buf: Vec::new(),
            start: 0,
            end: 0,
            base: 0,
            max_frame: 0,
            ledger: FdLedger::new(MAX_PENDING_FDS),
            scratch_fds: Vec::new(),
        };
        r.set_max_frame(max_frame);
        r
    }

    /// Changes the frame limit (after Tversion settles the msize).
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
        let want = (max_frame as usize).saturating_mul(2).max(8192);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
    }

    /// Blocks until one whole frame has arrived, copies it into `out` (replacing its contents) and
    /// appends the fds that came with it to `fds`. Returns `Ok(false)` on a clean end of stream.
    pub fn next_frame(
        &mut self,
        sock: BorrowedFd<'_>,
        out: &mut Vec<u8>,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<bool, TransportError> {
        loop {
            if let Some(len) = Header::frame_len(&self.buf[self.start..self.end], self.max_frame)? {
                if self.end - self.start >= len {
                    let frame_start = self.base + self.start as u64;
                    out.clear();
                    out.extend_from_slice(&self.buf[self.start..self.start + len]);
                    self.start += len;
                    let (mine, stale) = self.ledger.take(frame_start, frame_start + len as u64);
                    drop(stale);
                    fds.extend(mine);
                    return Ok(true);
                }
                if self.buf.len() - self.start < len {
                    self.compact();
                }
            } else if self.buf.len() - self.start < 4 {
                self.compact();
            }
            if !self.fill(sock)? {
                return if self.start == self.end { Ok(false) } else { Err(TransportError::Truncated) };
            }
        }
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.base += self.start as u64;
        self.end -= self.start;
        self.start = 0;
    }

    fn fill(&mut self, sock: BorrowedFd<'_>) -> Result<bool, TransportError> {
        let n = sys::recv_with_fds(sock, &mut self.buf[self.end..], &mut self.scratch_fds)?;
        self.end += n;
        let last = (self.base + self.end as u64).saturating_sub(1);
        for fd in self.scratch_fds.drain(..) {
            if self.ledger.received(last, fd).is_err() {
                return Err(io::Error::other("peer sent too many fds").into());
            }
        }
        Ok(n > 0)
    }
}

/// The sending side of a connection, shared by the threads that answer or issue requests.
#[derive(Debug)]
pub struct Conn {
    sock: OwnedFd,
    unix: bool,
    send_lock: Mutex<()>,
}

impl Conn {
    /// Wraps a connected stream socket (Unix or TCP).
    pub fn new(sock: OwnedFd) -> io::Result<Self> {
        let addr: SockaddrStorage = getsockname(sock.as_raw_fd()).map_err(io::Error::from)?;
        let unix = addr.family() == Some(AddressFamily::Unix);
        Ok(Self { sock, unix, send_lock: Mutex::new(()) })
    }

    /// Whether the socket can carry fds (it is a Unix socket).
    pub fn can_pass_fds(&self) -> bool {
        self.unix
    }

    /// The socket, for reading.
    pub fn sock(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Sends one frame, with `fd` attached to its first byte if given.
    pub fn send(&self, frame: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        if fd.is_some() && !self.unix {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "fds need a unix socket"));
        }
        // A poisoned lock only means another sender panicked; the socket itself is still sound.
        let _guard = self.send_lock.lock().unwrap_or_else(|e| e.into_inner());
        let raw = fd.map(|f| [f.as_raw_fd()]);
        let mut sent = 0;
        while sent < frame.len() {
            let cmsg_storage;
            let cmsgs: &[ControlMessage<'_>] = match (&raw, sent) {
                (Some(r), 0) => {
                    cmsg_storage = [ControlMessage::ScmRights(r)];
                    &cmsg_storage
                }
                _ => &[],
            };
            let iov = [IoSlice::new(&frame[sent..])];
            match sendmsg::<()>(self.sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(n) => sent += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Shuts the socket down both ways, waking a thread blocked reading it.
    pub fn shutdown(&self) {
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn frames_and_fds_are_matched_by_offset() {
        let (a, b) = UnixStream::pair().unwrap();
        let tx = Conn::new(a.into()).unwrap();
        assert!(tx.can_pass_fds());
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        // Three frames: plain, with an fd, plain (Rclunk-shaped bodies are enough here).
        tx.send(&[7, 0, 0, 0, 121, 1, 0], None).unwrap();
        tx.send(&[7, 0, 0, 0, 121, 2, 0], Some(file.as_fd())).unwrap();
        tx.send(&[7, 0, 0, 0, 121, 3, 0], None).unwrap();
        drop(tx);
        let mut r = FrameReader::new(8192);
        let (mut out, mut fds) = (Vec::new(), Vec::new());
        let mut got = Vec::new();
        while r.next_frame(b.as_fd(), &mut out, &mut fds).unwrap() {
            got.push((out[5], fds.len()));
            fds.clear();
        }
        assert_eq!(got, [(1, 0), (2, 1), (3, 0)]);
    }

    #[test]
    fn oversized_frame_is_rejected_from_its_header() {
        let (a, b) = UnixStream::pair().unwrap();
        let tx = Conn::new(a.into()).unwrap();
        tx.send(&[0, 0, 1, 0, 121, 1, 0], None).unwrap();
        let mut r = FrameReader::new(8192);
        let err = r.next_frame(b.as_fd(), &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, TransportError::Frame(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn eof_mid_frame_is_an_error() {
        let (a, b) = UnixStream::pair().unwrap();
        let tx = Conn::new(a.into()).unwrap();
        tx.send(&[9, 0, 0, 0, 121], None).unwrap();
        drop(tx);
        let mut r = FrameReader::new(8192);
        assert!(matches!(r.next_frame(b.as_fd(), &mut Vec::new(), &mut Vec::new()), Err(TransportError::Truncated)));
    }
}
