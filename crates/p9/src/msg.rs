//! The 9P2000.L message set and the frame codec.
//!
//! A frame is `size[4] type[1] tag[2] body`, little endian, where `size` counts the whole frame.
//! [`Frame::parse`] checks the size against the bytes given and the negotiated msize, decodes the
//! body field by field with bounds checks, and rejects trailing bytes. Messages borrow strings and
//! data from the frame, so decoding neither copies payloads nor allocates.

use crate::error::{DecodeError, EncodeError};
use crate::types::{Attr, Data, Datasync, Field, Qid, Qids, SetAttr, StatFs, Str, WalkNames};
use crate::wire::{len_u32, Reader, Writer};

/// Bytes of `size[4] type[1] tag[2]`.
pub const HEADER_LEN: usize = 7;

macro_rules! messages {
    ($( $(#[$m:meta])* $name:ident = $code:literal { $($f:ident: $t:ty),* $(,)? } ),* $(,)?) => {
        /// A 9P2000.L message type byte.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(u8)]
        pub enum MsgType {
            $( $(#[$m])* $name = $code ),*
        }

        impl MsgType {
            /// The type for a wire byte, if it is a 9P2000.L message.
            pub fn from_u8(b: u8) -> Option<Self> {
                match b {
                    $( $code => Some(MsgType::$name), )*
                    _ => None,
                }
            }
        }

        /// One 9P2000.L message (request or reply), borrowing its strings and data from the frame.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        #[allow(missing_docs)] // fields carry the names of the 9P2000.L protocol description
        pub enum Msg<'a> {
            $( $(#[$m])* $name { $($f: $t),* } ),*
        }

        impl<'a> Msg<'a> {
            /// The message's type.
            pub fn msg_type(&self) -> MsgType {
                match self {
                    $( Msg::$name { .. } => MsgType::$name, )*
                }
            }

            fn decode_body(ty: MsgType, r: &mut Reader<'a>) -> Result<Self, DecodeError> {
                Ok(match ty {
                    $( MsgType::$name => Msg::$name { $($f: <$t as Field>::decode(r)?),* }, )*
                })
            }

            /// Bytes of the body (the frame without its 7-byte header).
            #[allow(unused_variables)]
            pub fn body_len(&self) -> usize {
                match self {
                    $( Msg::$name { $($f),* } => 0 $(+ Field::encoded_len($f))*, )*
                }
            }

            #[allow(unused_variables)]
            fn encode_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                match self {
                    $( Msg::$name { $($f),* } => { $(Field::encode($f, w)?;)* } )*
                }
                Ok(())
            }
        }
    };
}

messages! {
    /// Error reply: a Linux errno.
    Rlerror = 7 { ecode: u32 },
    /// Filesystem statistics of the file behind `fid`.
    Tstatfs = 8 { fid: u32 },
    /// Reply to Tstatfs.
    Rstatfs = 9 { stat: StatFs },
    /// Open the file behind `fid` with Linux open `flags`.
    Tlopen = 12 { fid: u32, flags: u32 },
    /// Reply to Tlopen; may carry a donated fd (see the crate docs).
    Rlopen = 13 { qid: Qid, iounit: u32 },
    /// Create and open `name` in directory `fid`; `fid` then names the new file.
    Tlcreate = 14 { fid: u32, name: Str<'a>, flags: u32, mode: u32, gid: u32 },
    /// Reply to Tlcreate; may carry a donated fd (see the crate docs).
    Rlcreate = 15 { qid: Qid, iounit: u32 },
    /// Create symlink `name` → `symtgt` in directory `fid`.
    Tsymlink = 16 { fid: u32, name: Str<'a>, symtgt: Str<'a>, gid: u32 },
    /// Reply to Tsymlink.
    Rsymlink = 17 { qid: Qid },
    /// Create a device node, fifo or socket `name` in directory `dfid`.
    Tmknod = 18 { dfid: u32, name: Str<'a>, mode: u32, major: u32, minor: u32, gid: u32 },
    /// Reply to Tmknod.
    Rmknod = 19 { qid: Qid },
    /// Move the file behind `fid` to `name` in directory `dfid`.
    Trename = 20 { fid: u32, dfid: u32, name: Str<'a> },
    /// Reply to Trename.
    Rrename = 21 {},
    /// Read the symlink behind `fid`.
    Treadlink = 22 { fid: u32 },
    /// Reply to Treadlink.
    Rreadlink = 23 { target: Str<'a> },
    /// Attributes of the file behind `fid`; `request_mask` holds `GETATTR_*` bits.
    Tgetattr = 24 { fid: u32, request_mask: u64 },
    /// Reply to Tgetattr.
    Rgetattr = 25 { attr: Attr },
    /// Change attributes of the file behind `fid`.
    Tsetattr = 26 { fid: u32, attr: SetAttr },
    /// Reply to Tsetattr.
    Rsetattr = 27 {},
    /// Prepare to read extended attribute `name` (or the list, if empty) through `newfid`.
    Txattrwalk = 30 { fid: u32, newfid: u32, name: Str<'a> },
    /// Reply to Txattrwalk: the value's size.
    Rxattrwalk = 31 { size: u64 },
    /// Prepare to set extended attribute `name` by writing `attr_size` bytes to `fid`.
    Txattrcreate = 32 { fid: u32, name: Str<'a>, attr_size: u64, flags: u32 },
    /// Reply to Txattrcreate.
    Rxattrcreate = 33 {},
    /// Read directory entries from the open directory `fid`.
    Treaddir = 40 { fid: u32, offset: u64, count: u32 },
    /// Reply to Treaddir: packed entries (see [`crate::dirent`]).
    Rreaddir = 41 { data: Data<'a> },
    /// Flush the open file `fid` to storage.
    Tfsync = 50 { fid: u32, datasync: Datasync },
    /// Reply to Tfsync.
    Rfsync = 51 {},
    /// Take or release a POSIX record lock.
    Tlock = 52 { fid: u32, ty: u8, flags: u32, start: u64, length: u64, proc_id: u32, client_id: Str<'a> },
    /// Reply to Tlock: `LOCK_SUCCESS` …
    Rlock = 53 { status: u8 },
    /// Test for a conflicting POSIX record lock.
    Tgetlock = 54 { fid: u32, ty: u8, start: u64, length: u64, proc_id: u32, client_id: Str<'a> },
    /// Reply to Tgetlock.
    Rgetlock = 55 { ty: u8, start: u64, length: u64, proc_id: u32, client_id: Str<'a> },
    /// Hard-link the file behind `fid` as `name` in directory `dfid`.
    Tlink = 70 { dfid: u32, fid: u32, name: Str<'a> },
    /// Reply to Tlink.
    Rlink = 71 {},
    /// Create directory `name` in directory `dfid`.
    Tmkdir = 72 { dfid: u32, name: Str<'a>, mode: u32, gid: u32 },
    /// Reply to Tmkdir.
    Rmkdir = 73 { qid: Qid },
    /// Rename `oldname` in `olddirfid` to `newname` in `newdirfid`.
    Trenameat = 74 { olddirfid: u32, oldname: Str<'a>, newdirfid: u32, newname: Str<'a> },
    /// Reply to Trenameat.
    Rrenameat = 75 {},
    /// Remove `name` from directory `dirfid`; `flags` may hold `AT_REMOVEDIR`.
    Tunlinkat = 76 { dirfid: u32, name: Str<'a>, flags: u32 },
    /// Reply to Tunlinkat.
    Runlinkat = 77 {},
    /// Negotiate msize and protocol version; resets the session.
    Tversion = 100 { msize: u32, version: Str<'a> },
    /// Reply to Tversion.
    Rversion = 101 { msize: u32, version: Str<'a> },
    /// Open an authentication file.
    Tauth = 102 { afid: u32, uname: Str<'a>, aname: Str<'a>, n_uname: u32 },
    /// Reply to Tauth.
    Rauth = 103 { aqid: Qid },
    /// Attach `fid` to the root of tree `aname`.
    Tattach = 104 { fid: u32, afid: u32, uname: Str<'a>, aname: Str<'a>, n_uname: u32 },
    /// Reply to Tattach.
    Rattach = 105 { qid: Qid },
    /// Abort the request with tag `oldtag`.
    Tflush = 108 { oldtag: u16 },
    /// Reply to Tflush, sent after any reply to `oldtag`.
    Rflush = 109 {},
    /// Walk `wnames` from `fid`, naming the result `newfid`.
    Twalk = 110 { fid: u32, newfid: u32, wnames: WalkNames<'a> },
    /// Reply to Twalk: one qid per element walked.
    Rwalk = 111 { wqids: Qids },
    /// Read `count` bytes at `offset` from the open file `fid`.
    Tread = 116 { fid: u32, offset: u64, count: u32 },
    /// Reply to Tread.
    Rread = 117 { data: Data<'a> },
    /// Write `data` at `offset` to the open file `fid`.
    Twrite = 118 { fid: u32, offset: u64, data: Data<'a> },
    /// Reply to Twrite.
    Rwrite = 119 { count: u32 },
    /// Forget `fid`.
    Tclunk = 120 { fid: u32 },
    /// Reply to Tclunk.
    Rclunk = 121 {},
    /// Remove the file behind `fid` and forget `fid`.
    Tremove = 122 { fid: u32 },
    /// Reply to Tremove.
    Rremove = 123 {},
}

impl MsgType {
    /// Whether this is a request (T-message); replies have odd type numbers.
    pub fn is_request(self) -> bool {
        (self as u8) & 1 == 0
    }
}

/// The fixed header of a frame, read before the body has arrived.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    /// Whole-frame length, header included.
    pub size: u32,
    /// Raw type byte (not yet checked against [`MsgType`]).
    pub ty: u8,
    /// Request tag.
    pub tag: u16,
}

impl Header {
    /// Reads the size field from the first 4 bytes and checks it against `max_size` (the msize).
    /// Returns `Ok(None)` while fewer than 4 bytes are given.
    pub fn frame_len(buf: &[u8], max_size: u32) -> Result<Option<usize>, DecodeError> {
        let Some(size) = buf.get(..4) else { return Ok(None) };
        let mut r = Reader::new(size);
        let size = r.u32()?;
        if (size as usize) < HEADER_LEN {
            return Err(DecodeError::BadSize { size, len: buf.len() });
        }
        if size > max_size {
            return Err(DecodeError::TooLarge { size, max: max_size });
        }
        usize::try_from(size).map(Some).map_err(|_| DecodeError::TooLarge { size, max: max_size })
    }

    /// Parses the header at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        Ok(Header { size: r.u32()?, ty: r.u8()?, tag: r.u16()? })
    }
}

/// A decoded frame: a tag and a message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Frame<'a> {
    /// The request tag the reply echoes (`NOTAG` for Tversion).
    pub tag: u16,
    /// The message.
    pub msg: Msg<'a>,
}

impl<'a> Frame<'a> {
    /// Decodes exactly one frame: `buf` must hold the whole frame and nothing else, and be no
    /// longer than `max_size` (the msize). Never panics.
    pub fn parse(buf: &'a [u8], max_size: u32) -> Result<Self, DecodeError> {
        let header = Header::parse(buf)?;
        if header.size > max_size {
            return Err(DecodeError::TooLarge { size: header.size, max: max_size });
        }
        if header.size as usize != buf.len() {
            return Err(DecodeError::BadSize { size: header.size, len: buf.len() });
        }
        let ty = MsgType::from_u8(header.ty).ok_or(DecodeError::UnknownType(header.ty))?;
        let mut r = Reader::new(buf.get(HEADER_LEN..).unwrap_or_default());
        let msg = Msg::decode_body(ty, &mut r)?;
        r.finish()?;
        Ok(Frame { tag: header.tag, msg })
    }

    /// Bytes of the whole frame.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.msg.body_len()
    }

    /// Appends the frame to `out`. On error `out` is left as it was.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let size = len_u32(self.encoded_len(), "frame")?;
        let mut w = Writer::new(out);
        w.u32(size);
        w.u8(self.msg.msg_type() as u8);
        w.u16(self.tag);
        let res = self.msg.encode_body(&mut w);
        if res.is_err() {
            out.truncate(start);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msg: Msg<'_>) {
        let frame = Frame { tag: 7, msg };
        let mut buf = Vec::new();
        frame.emit(&mut buf).unwrap();
        assert_eq!(buf.len(), frame.encoded_len());
        assert_eq!(Frame::parse(&buf, u32::MAX).unwrap(), frame);
    }

    #[test]
    fn tversion_bytes_match_the_spec() {
        let mut buf = Vec::new();
        Frame { tag: crate::NOTAG, msg: Msg::Tversion { msize: 8192, version: "9P2000.L".into() } }
            .emit(&mut buf)
            .unwrap();
        let want = [21, 0, 0, 0, 100, 0xff, 0xff, 0, 0x20, 0, 0, 8, 0, b'9', b'P', b'2', b'0', b'0', b'0', b'.', b'L'];
        assert_eq!(buf, want);
    }

    #[test]
    fn every_kind_round_trips() {
        let q = Qid { ty: crate::consts::QTDIR, version: 3, path: 99 };
        roundtrip(Msg::Rlerror { ecode: 2 });
        roundtrip(Msg::Twalk { fid: 1, newfid: 2, wnames: WalkNames::new(&["a".into(), "b".into()]).unwrap() });
        roundtrip(Msg::Rwalk { wqids: Qids::new(&[q, q]).unwrap() });
        roundtrip(Msg::Rgetattr { attr: Attr { qid: q, size: 5, ..Attr::default() } });
        roundtrip(Msg::Twrite { fid: 1, offset: 9, data: Data(b"hello") });
        roundtrip(Msg::Tlock { fid: 1, ty: 1, flags: 0, start: 0, length: 0, proc_id: 4, client_id: "host".into() });
        roundtrip(Msg::Rclunk {});
        roundtrip(Msg::Tfsync { fid: 3, datasync: Datasync(1) });
    }

    #[test]
    fn tfsync_without_datasync_is_accepted() {
        let buf = [11, 0, 0, 0, 50, 1, 0, 5, 0, 0, 0];
        let f = Frame::parse(&buf, 1024).unwrap();
        assert_eq!(f.msg, Msg::Tfsync { fid: 5, datasync: Datasync(0) });
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(matches!(Frame::parse(&[], 100), Err(DecodeError::Truncated { .. })));
        assert!(matches!(Frame::parse(&[7, 0, 0, 0, 99, 0, 0], 100), Err(DecodeError::UnknownType(99))));
        assert!(matches!(Frame::parse(&[8, 0, 0, 0, 121, 0, 0], 100), Err(DecodeError::BadSize { .. })));
        assert!(matches!(Frame::parse(&[8, 0, 0, 0, 121, 0, 0, 1], 100), Err(DecodeError::TrailingBytes(1))));
        assert!(matches!(Frame::parse(&[7, 0, 0, 0, 121, 0, 0], 6), Err(DecodeError::TooLarge { .. })));
        assert!(matches!(Header::frame_len(&[3, 0, 0, 0], 100), Err(DecodeError::BadSize { .. })));
        assert!(matches!(Header::frame_len(&[0, 1, 0, 0], 100), Err(DecodeError::TooLarge { .. })));
        assert_eq!(Header::frame_len(&[7, 0, 0], 100), Ok(None));
        assert_eq!(Header::frame_len(&[9, 0, 0, 0, 1], 100), Ok(Some(9)));
    }

    #[test]
    fn oversized_string_fails_to_encode_and_leaves_buffer() {
        let long = vec![b'x'; 70_000];
        let mut buf = vec![1, 2];
        let err = Frame { tag: 1, msg: Msg::Rreadlink { target: Str(&long) } }.emit(&mut buf).unwrap_err();
        assert!(matches!(err, EncodeError::TooLong { what: "string", .. }));
        assert_eq!(buf, [1, 2]);
    }

    #[test]
    fn request_and_reply_types() {
        assert!(MsgType::Tversion.is_request());
        assert!(!MsgType::Rlerror.is_request());
        assert_eq!(MsgType::from_u8(110), Some(MsgType::Twalk));
        assert_eq!(MsgType::from_u8(106), None);
    }
}
