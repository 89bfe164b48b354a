//! The server against raw frames: version negotiation, malformed input, Tflush ordering,
//! pipelined tags.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use moat_gofer::Config;
use moat_p9::{Frame, Msg, Qid, NOFID, NOTAG};

struct Raw {
    s: UnixStream,
    t: Option<std::thread::JoinHandle<()>>,
}

impl Raw {
    fn new(root: &std::path::Path) -> Raw {
        let (t, sock) = common::serve_pair(Config::new(root));
        Raw { s: UnixStream::from(sock), t: Some(t) }
    }

    fn send(&mut self, tag: u16, msg: Msg<'_>) {
        let mut buf = Vec::new();
        Frame { tag, msg }.emit(&mut buf).unwrap();
        self.s.write_all(&buf).unwrap();
    }

    fn recv(&mut self) -> Option<Vec<u8>> {
        let mut size = [0u8; 4];
        self.s.read_exact(&mut size).ok()?;
        let mut buf = size.to_vec();
        buf.resize(u32::from_le_bytes(size) as usize, 0);
        self.s.read_exact(&mut buf[4..]).unwrap();
        Some(buf)
    }

    fn rpc(&mut self, tag: u16, msg: Msg<'_>) -> Vec<u8> {
        self.send(tag, msg);
        self.recv().unwrap()
    }

    fn version(&mut self, version: &str) -> Vec<u8> {
        self.rpc(NOTAG, Msg::Tversion { msize: 8192, version: version.into() })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = self.s.shutdown(std::net::Shutdown::Both);
        self.t.take().unwrap().join().unwrap();
    }
}

fn parse(buf: &[u8]) -> Frame<'_> {
    Frame::parse(buf, u32::MAX).unwrap()
}

fn lerror(buf: &[u8]) -> (u16, i32) {
    match parse(buf) {
        Frame { tag, msg: Msg::Rlerror { ecode } } => (tag, ecode as i32),
        f => panic!("expected Rlerror, got {f:?}"),
    }
}

#[test]
fn version_negotiation() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Raw::new(dir.path());
    // Nothing before Tversion.
    assert_eq!(lerror(&r.rpc(1, Msg::Tclunk { fid: 0 })), (1, libc::EPROTO));
    let b = r.version("9P2000.u");
    assert!(matches!(parse(&b).msg, Msg::Rversion { version, .. } if version.0 == b"unknown"));
    let b = r.version("9P2000.L.moat-fd");
    assert!(matches!(parse(&b).msg, Msg::Rversion { msize: 8192, version } if version.0 == b"9P2000.L.moat-fd"));
    let b = r.version("9P2000.L");
    assert!(matches!(parse(&b).msg, Msg::Rversion { msize: 8192, version } if version.0 == b"9P2000.L"));
    let b = r.rpc(NOTAG, Msg::Tversion { msize: 100, version: "9P2000.L".into() });
    assert_eq!(lerror(&b).1, libc::EINVAL);
}

#[test]
fn malformed_frames_get_errors_and_the_session_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Raw::new(dir.path());
    r.version("9P2000.L");
    // Unknown type (9P2000 Tstat = 124).
    r.s.write_all(&[11, 0, 0, 0, 124, 5, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(lerror(&r.recv().unwrap()), (5, libc::EOPNOTSUPP));
    // Tattach whose uname length runs past the frame.
    r.s.write_all(&[17, 0, 0, 0, 104, 6, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).unwrap();
    assert_eq!(lerror(&r.recv().unwrap()), (6, libc::EINVAL));
    // Twalk with 17 names.
    let mut w = vec![0, 0, 0, 0, 110, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 17, 0];
    for _ in 0..17 {
        w.extend_from_slice(&[1, 0, b'a']);
    }
    let n = w.len() as u32;
    w[..4].copy_from_slice(&n.to_le_bytes());
    r.s.write_all(&w).unwrap();
    assert_eq!(lerror(&r.recv().unwrap()), (7, libc::EINVAL));
    // A reply type sent as a request.
    assert_eq!(lerror(&r.rpc(8, Msg::Rclunk {})), (8, libc::EPROTO));
    // Still alive.
    let b = r.rpc(9, Msg::Tattach { fid: 1, afid: NOFID, uname: "u".into(), aname: "".into(), n_uname: 0 });
    assert!(matches!(parse(&b), Frame { tag: 9, msg: Msg::Rattach { .. } }));
    // A frame over msize ends the connection.
    r.s.write_all(&[0, 0, 1, 0, 120, 10, 0]).unwrap();
    assert!(r.recv().is_none());
}

#[test]
fn flush_answers_after_the_flushed_reply() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Raw::new(dir.path());
    r.version("9P2000.L");
    r.rpc(1, Msg::Tattach { fid: 1, afid: NOFID, uname: "u".into(), aname: "".into(), n_uname: 0 });
    // Flushing a tag that is not in flight is answered at once.
    assert!(matches!(parse(&r.rpc(2, Msg::Tflush { oldtag: 77 })).msg, Msg::Rflush {}));
    // Pipeline requests each followed by a flush of it: whatever the timing, the reply to the
    // request (if any) must come before the Rflush.
    const N: u16 = 200;
    for i in 0..N {
        r.send(100 + i, Msg::Tgetattr { fid: 1, request_mask: 0x7ff });
        r.send(1000 + i, Msg::Tflush { oldtag: 100 + i });
    }
    let mut seen_reply = vec![false; N as usize];
    let mut flushed = 0;
    while flushed < N {
        let b = r.recv().unwrap();
        let f = parse(&b);
        match f.msg {
            Msg::Rgetattr { attr } => {
                assert_eq!(attr.qid.ty, 0x80);
                seen_reply[(f.tag - 100) as usize] = true;
            }
            Msg::Rflush {} => {
                let i = (f.tag - 1000) as usize;
                assert!(seen_reply[i], "Rflush for tag {} came before its reply", 100 + i);
                flushed += 1;
            }
            m => panic!("unexpected {m:?}"),
        }
    }
    let _ = Qid::default();
}

#[test]
fn tversion_forgets_fids() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Raw::new(dir.path());
    r.version("9P2000.L");
    r.rpc(1, Msg::Tattach { fid: 1, afid: NOFID, uname: "u".into(), aname: "".into(), n_uname: 0 });
    r.version("9P2000.L");
    assert_eq!(lerror(&r.rpc(2, Msg::Tgetattr { fid: 1, request_mask: 1 })), (2, libc::EBADF));
}
