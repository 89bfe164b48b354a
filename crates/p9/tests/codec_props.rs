//! Property tests of the codec: every message round-trips, and arbitrary bytes never panic the
//! decoder (the stand-in for the fuzz target when cargo-fuzz is not at hand).

use moat_p9::{
    Attr, Data, Datasync, DirEntry, Frame, Header, Msg, MsgType, Qid, Qids, SetAttr, StatFs, Str, WalkNames,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    ty: MsgType,
    n: Vec<u64>,
    s: Vec<Vec<u8>>,
    data: Vec<u8>,
    nwalk: usize,
    tag: u16,
}

fn all_types() -> Vec<MsgType> {
    (0..=255u8).filter_map(MsgType::from_u8).collect()
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        proptest::sample::select(all_types()),
        proptest::collection::vec(any::<u64>(), 24),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 16),
        proptest::collection::vec(any::<u8>(), 0..300),
        0..=16usize,
        any::<u16>(),
    )
        .prop_map(|(ty, n, s, data, nwalk, tag)| Case { ty, n, s, data, nwalk, tag })
}

// The truncating casts pick arbitrary field values out of random u64s, on purpose.
#[allow(clippy::cast_possible_truncation)]
fn build(c: &Case) -> Msg<'_> {
    let n = |i: usize| c.n[i];
    let u32_ = |i: usize| c.n[i] as u32;
    let u8_ = |i: usize| c.n[i] as u8;
    let s = |i: usize| Str(&c.s[i]);
    let qid = |i: usize| Qid { ty: u8_(i), version: u32_(i + 1), path: n(i + 2) };
    let d = Data(&c.data);
    let wnames = WalkNames::new(&c.s[..c.nwalk].iter().map(|v| Str(v)).collect::<Vec<_>>()).unwrap();
    let wqids = Qids::new(&(0..c.nwalk).map(qid).collect::<Vec<_>>()).unwrap();
    let attr = Attr {
        valid: n(0),
        qid: qid(1),
        mode: u32_(4),
        uid: u32_(5),
        gid: u32_(6),
        nlink: n(7),
        rdev: n(8),
        size: n(9),
        blksize: n(10),
        blocks: n(11),
        atime_sec: n(12),
        atime_nsec: n(13),
        mtime_sec: n(14),
        mtime_nsec: n(15),
        ctime_sec: n(16),
        ctime_nsec: n(17),
        btime_sec: n(18),
        btime_nsec: n(19),
        gen: n(20),
        data_version: n(21),
    };
    let setattr = SetAttr {
        valid: u32_(0),
        mode: u32_(1),
        uid: u32_(2),
        gid: u32_(3),
        size: n(4),
        atime_sec: n(5),
        atime_nsec: n(6),
        mtime_sec: n(7),
        mtime_nsec: n(8),
    };
    let stat = StatFs {
        ty: u32_(0),
        bsize: u32_(1),
        blocks: n(2),
        bfree: n(3),
        bavail: n(4),
        files: n(5),
        ffree: n(6),
        fsid: n(7),
        namelen: u32_(8),
    };
    use MsgType as T;
    match c.ty {
        T::Rlerror => Msg::Rlerror { ecode: u32_(0) },
        T::Tstatfs => Msg::Tstatfs { fid: u32_(0) },
        T::Rstatfs => Msg::Rstatfs { stat },
        T::Tlopen => Msg::Tlopen { fid: u32_(0), flags: u32_(1) },
        T::Rlopen => Msg::Rlopen { qid: qid(0), iounit: u32_(3) },
        T::Tlcreate => Msg::Tlcreate { fid: u32_(0), name: s(0), flags: u32_(1), mode: u32_(2), gid: u32_(3) },
        T::Rlcreate => Msg::Rlcreate { qid: qid(0), iounit: u32_(3) },
        T::Tsymlink => Msg::Tsymlink { fid: u32_(0), name: s(0), symtgt: s(1), gid: u32_(1) },
        T::Rsymlink => Msg::Rsymlink { qid: qid(0) },
        T::Tmknod => {
            Msg::Tmknod { dfid: u32_(0), name: s(0), mode: u32_(1), major: u32_(2), minor: u32_(3), gid: u32_(4) }
        }
        T::Rmknod => Msg::Rmknod { qid: qid(0) },
        T::Trename => Msg::Trename { fid: u32_(0), dfid: u32_(1), name: s(0) },
        T::Rrename => Msg::Rrename {},
        T::Treadlink => Msg::Treadlink { fid: u32_(0) },
        T::Rreadlink => Msg::Rreadlink { target: s(0) },
        T::Tgetattr => Msg::Tgetattr { fid: u32_(0), request_mask: n(1) },
        T::Rgetattr => Msg::Rgetattr { attr },
        T::Tsetattr => Msg::Tsetattr { fid: u32_(9), attr: setattr },
        T::Rsetattr => Msg::Rsetattr {},
        T::Txattrwalk => Msg::Txattrwalk { fid: u32_(0), newfid: u32_(1), name: s(0) },
        T::Rxattrwalk => Msg::Rxattrwalk { size: n(0) },
        T::Txattrcreate => Msg::Txattrcreate { fid: u32_(0), name: s(0), attr_size: n(1), flags: u32_(2) },
        T::Rxattrcreate => Msg::Rxattrcreate {},
        T::Treaddir => Msg::Treaddir { fid: u32_(0), offset: n(1), count: u32_(2) },
        T::Rreaddir => Msg::Rreaddir { data: d },
        T::Tfsync => Msg::Tfsync { fid: u32_(0), datasync: Datasync(u32_(1)) },
        T::Rfsync => Msg::Rfsync {},
        T::Tlock => Msg::Tlock {
            fid: u32_(0),
            ty: u8_(1),
            flags: u32_(2),
            start: n(3),
            length: n(4),
            proc_id: u32_(5),
            client_id: s(0),
        },
        T::Rlock => Msg::Rlock { status: u8_(0) },
        T::Tgetlock => {
            Msg::Tgetlock { fid: u32_(0), ty: u8_(1), start: n(2), length: n(3), proc_id: u32_(4), client_id: s(0) }
        }
        T::Rgetlock => Msg::Rgetlock { ty: u8_(1), start: n(2), length: n(3), proc_id: u32_(4), client_id: s(0) },
        T::Tlink => Msg::Tlink { dfid: u32_(0), fid: u32_(1), name: s(0) },
        T::Rlink => Msg::Rlink {},
        T::Tmkdir => Msg::Tmkdir { dfid: u32_(0), name: s(0), mode: u32_(1), gid: u32_(2) },
        T::Rmkdir => Msg::Rmkdir { qid: qid(0) },
        T::Trenameat => Msg::Trenameat { olddirfid: u32_(0), oldname: s(0), newdirfid: u32_(1), newname: s(1) },
        T::Rrenameat => Msg::Rrenameat {},
        T::Tunlinkat => Msg::Tunlinkat { dirfid: u32_(0), name: s(0), flags: u32_(1) },
        T::Runlinkat => Msg::Runlinkat {},
        T::Tversion => Msg::Tversion { msize: u32_(0), version: s(0) },
        T::Rversion => Msg::Rversion { msize: u32_(0), version: s(0) },
        T::Tauth => Msg::Tauth { afid: u32_(0), uname: s(0), aname: s(1), n_uname: u32_(1) },
        T::Rauth => Msg::Rauth { aqid: qid(0) },
        T::Tattach => Msg::Tattach { fid: u32_(0), afid: u32_(1), uname: s(0), aname: s(1), n_uname: u32_(2) },
        T::Rattach => Msg::Rattach { qid: qid(0) },
        T::Tflush => Msg::Tflush { oldtag: c.n[0] as u16 },
        T::Rflush => Msg::Rflush {},
        T::Twalk => Msg::Twalk { fid: u32_(0), newfid: u32_(1), wnames },
        T::Rwalk => Msg::Rwalk { wqids },
        T::Tread => Msg::Tread { fid: u32_(0), offset: n(1), count: u32_(2) },
        T::Rread => Msg::Rread { data: d },
        T::Twrite => Msg::Twrite { fid: u32_(0), offset: n(1), data: d },
        T::Rwrite => Msg::Rwrite { count: u32_(0) },
        T::Tclunk => Msg::Tclunk { fid: u32_(0) },
        T::Rclunk => Msg::Rclunk {},
        T::Tremove => Msg::Tremove { fid: u32_(0) },
        T::Rremove => Msg::Rremove {},
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn encode_then_decode_is_identity(c in arb_case()) {
        let frame = Frame { tag: c.tag, msg: build(&c) };
        let mut buf = vec![0xaa];
        frame.emit(&mut buf).unwrap();
        let bytes = &buf[1..];
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        prop_assert_eq!(Header::frame_len(bytes, u32::MAX).unwrap(), Some(bytes.len()));
        let back = Frame::parse(bytes, u32::MAX).unwrap();
        prop_assert_eq!(back, frame);
        // Any cut of a valid frame, with the size field patched to match, fails cleanly.
        for cut in 0..bytes.len() {
            let mut short = bytes[..cut].to_vec();
            if short.len() >= 4 {
                short[..4].copy_from_slice(&u32::try_from(cut).unwrap().to_le_bytes());
            }
            // Tfsync's datasync is optional, so one cut of it is still valid.
            if let Ok(f) = Frame::parse(&short, u32::MAX) {
                prop_assert_eq!(f.msg.msg_type(), MsgType::Tfsync);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(f) = Frame::parse(&bytes, 8192) {
            // Whatever decodes re-encodes to the same bytes (Tfsync may grow by its optional field).
            let mut out = Vec::new();
            f.emit(&mut out).unwrap();
            if f.msg.msg_type() != MsgType::Tfsync {
                prop_assert_eq!(out, bytes.clone());
            }
        }
        let _ = Header::frame_len(&bytes, 8192);
        for e in DirEntry::iter(&bytes) {
            if e.is_err() { break; }
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(c in arb_case(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut buf = Vec::new();
        Frame { tag: c.tag, msg: build(&c) }.emit(&mut buf).unwrap();
        for (pos, val) in flips {
            let i = pos % buf.len();
            buf[i] = val;
        }
        let _ = Frame::parse(&buf, 1 << 20);
    }
}

#[test]
fn every_type_is_built() {
    // `build` matches on MsgType exhaustively; this checks the list the strategy samples from.
    assert_eq!(all_types().len(), 57);
}

/// Writes one valid frame per message type into the fuzz corpus (run by hand, see fuzz/README.md).
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, ty) in all_types().into_iter().enumerate() {
        let c = Case {
            ty,
            n: (0..24).map(|k| k * 7 + i as u64).collect(),
            s: (0..16).map(|k| format!("name{k}").into_bytes()).collect(),
            data: b"some data".to_vec(),
            nwalk: 3,
            tag: 1,
        };
        let mut buf = Vec::new();
        Frame { tag: c.tag, msg: build(&c) }.emit(&mut buf).unwrap();
        std::fs::write(dir.join(format!("seed-{ty:?}")), buf).unwrap();
    }
}
