//! Fuzzes the 9P2000.L decoder: no input may panic, and whatever decodes must re-encode to a
//! frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_p9::{DirEntry, Frame, Header, MsgType};

fuzz_target!(|data: &[u8]| {
    let _ = Header::frame_len(data, 1 << 20);
    if let Ok(frame) = Frame::parse(data, 1 << 20) {
        let mut out = Vec::new();
        frame.emit(&mut out).expect("a decoded frame re-encodes");
        let again = Frame::parse(&out, 1 << 20).expect("a re-encoded frame decodes");
        assert_eq!(again, frame);
        if frame.msg.msg_type() != MsgType::Tfsync {
            assert_eq!(out, data);
        }
    }
    for entry in DirEntry::iter(data) {
        if entry.is_err() {
            break;
        }
    }
});
