//! Directory entries packed in the data of Rreaddir: `qid[13] offset[8] type[1] name[s]` each.
//!
//! `offset` is an opaque cookie: the value to pass in the next Treaddir to continue after this
//! entry. `type` is the Linux `DT_*` value.

use crate::error::{DecodeError, EncodeError};
use crate::types::{Field, Qid, Str};
use crate::wire::{Reader, Writer};

/// One directory entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DirEntry<'a> {
    /// The entry's qid.
    pub qid: Qid,
    /// Cookie to resume reading after this entry.
    pub offset: u64,
    /// Linux `DT_*` type.
    pub ty: u8,
    /// The name, borrowed from the reply.
    pub name: Str<'a>,
}

impl<'a> DirEntry<'a> {
    /// Bytes of this entry on the wire.
    pub fn encoded_len(&self) -> usize {
        Qid::LEN + 8 + 1 + self.name.encoded_len()
    }

    /// Appends the entry to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let mut w = Writer::new(out);
        let res = (|| {
            self.qid.encode(&mut w)?;
            w.u64(self.offset);
            w.u8(self.ty);
            self.name.encode(&mut w)
        })();
        if res.is_err() {
            out.truncate(start);
        }
        res
    }

    /// Iterates over the entries packed in `data`; a malformed entry yields one error and ends.
    pub fn iter(data: &'a [u8]) -> DirEntries<'a> {
        DirEntries { r: Reader::new(data), failed: false }
    }
}

/// Iterator over packed directory entries.
#[derive(Debug, Clone)]
pub struct DirEntries<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl<'a> Iterator for DirEntries<'a> {
    type Item = Result<DirEntry<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.remaining() == 0 {
            return None;
        }
        let res = (|| {
            Ok(DirEntry {
                qid: Qid::decode(&mut self.r)?,
                offset: self.r.u64()?,
                ty: self.r.u8()?,
                name: Str::decode(&mut self.r)?,
            })
        })();
        self.failed = res.is_err();
        Some(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_truncation_is_an_error() {
        let mut buf = Vec::new();
        let a = DirEntry { qid: Qid { ty: 0, version: 0, path: 1 }, offset: 10, ty: 8, name: "a".into() };
        let b = DirEntry { qid: Qid { ty: 0x80, version: 0, path: 2 }, offset: 20, ty: 4, name: "dir".into() };
        a.emit(&mut buf).unwrap();
        b.emit(&mut buf).unwrap();
        assert_eq!(buf.len(), a.encoded_len() + b.encoded_len());
        let got: Vec<_> = DirEntry::iter(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, [a, b]);
        let cut = &buf[..buf.len() - 1];
        let got: Vec<_> = DirEntry::iter(cut).collect();
        assert_eq!(got.len(), 2);
        assert!(got[1].is_err());
    }
}
