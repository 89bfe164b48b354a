//! The field types that messages are made of, each with its checked decoder and its encoder.
//!
//! Variable-length fields borrow from the frame ([`Str`], [`Data`]); bounded lists live in
//! fixed arrays ([`WalkNames`], [`Qids`]), so decoding a message never allocates.

use std::fmt;

use crate::error::{DecodeError, EncodeError};
use crate::wire::{len_u16, len_u32, Reader, Writer};
use crate::MAX_WELEM;

/// One field of a message on the wire.
pub(crate) trait Field<'a>: Sized {
    /// Decodes the field, checking every length against the bytes left.
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError>;
    /// Bytes the field takes on the wire.
    fn encoded_len(&self) -> usize;
    /// Appends the field; fails if a length does not fit its wire field.
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;
}

macro_rules! int_field {
    ($t:ident, $n:literal) => {
        impl<'a> Field<'a> for $t {
            fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
                r.$t()
            }
            fn encoded_len(&self) -> usize {
                $n
            }
            fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                w.$t(*self);
                Ok(())
            }
        }
    };
}
int_field!(u8, 1);
int_field!(u16, 2);
int_field!(u32, 4);
int_field!(u64, 8);

/// A 9P string: `len[2]` then bytes. Linux file names need not be UTF-8, so it is bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Str<'a>(pub &'a [u8]);

impl<'a> Str<'a> {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
    /// The string, if it is UTF-8.
    pub fn to_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.0))
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str(s.as_bytes())
    }
}

impl<'a> From<&'a [u8]> for Str<'a> {
    fn from(s: &'a [u8]) -> Self {
        Str(s)
    }
}

impl<'a> Field<'a> for Str<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let n = r.u16()?;
        Ok(Str(r.take(usize::from(n))?))
    }
    fn encoded_len(&self) -> usize {
        2 + self.0.len()
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u16(len_u16(self.0.len(), "string")?);
        w.bytes(self.0);
        Ok(())
    }
}

/// A data block: `count[4]` then bytes (Rread, Twrite, Rreaddir).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Data<'a>(pub &'a [u8]);

impl fmt::Debug for Data<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl<'a> Field<'a> for Data<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let n = r.u32()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated { wanted: usize::MAX, left: r.remaining() })?;
        Ok(Data(r.take(n)?))
    }
    fn encoded_len(&self) -> usize {
        4 + self.0.len()
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(len_u32(self.0.len(), "data")?);
        w.bytes(self.0);
        Ok(())
    }
}

/// The `datasync[4]` field of Tfsync. Linux sends it; the original 9P2000.L text omits it, so a
/// frame that ends before it decodes as 0.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Datasync(pub u32);

impl<'a> Field<'a> for Datasync {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        if r.remaining() == 0 {
            Ok(Datasync(0))
        } else {
            Ok(Datasync(r.u32()?))
        }
    }
    fn encoded_len(&self) -> usize {
        4
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.0);
        Ok(())
    }
}

/// The server's identity of a file: type, version and a path unique within the tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Qid {
    /// `QTDIR`, `QTSYMLINK` … (see [`crate::consts`]).
    pub ty: u8,
    /// Changes when the file changes (0 when the server does not track it).
    pub version: u32,
    /// Unique per file in the served tree.
    pub path: u64,
}

impl Qid {
    /// Bytes of a qid on the wire.
    pub const LEN: usize = 13;
}

impl<'a> Field<'a> for Qid {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Qid { ty: r.u8()?, version: r.u32()?, path: r.u64()? })
    }
    fn encoded_len(&self) -> usize {
        Qid::LEN
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(self.ty);
        w.u32(self.version);
        w.u64(self.path);
        Ok(())
    }
}

/// Up to [`MAX_WELEM`] items, kept inline.
#[derive(Clone, Copy)]
pub struct Bounded<T: Copy + Default> {
    len: u8,
    items: [T; MAX_WELEM],
}

/// Names of a Twalk: `nwname[2]` then that many strings, at most 16.
pub type WalkNames<'a> = Bounded<Str<'a>>;
/// Qids of an Rwalk: `nwqid[2]` then that many qids, at most 16.
pub type Qids = Bounded<Qid>;

impl<T: Copy + Default> Bounded<T> {
    /// Copies `items`; fails if there are more than [`MAX_WELEM`].
    pub fn new(items: &[T]) -> Result<Self, EncodeError> {
        let mut out = Self::default();
        for &item in items {
            out.push(item)?;
        }
        Ok(out)
    }
    /// Appends one item; fails when full.
    pub fn push(&mut self, item: T) -> Result<(), EncodeError> {
        let slot = self.items.get_mut(usize::from(self.len)).ok_or(EncodeError::TooManyWalkElements(MAX_WELEM + 1))?;
        *slot = item;
        self.len += 1;
        Ok(())
    }
    /// The items.
    pub fn as_slice(&self) -> &[T] {
        // `len` never exceeds MAX_WELEM: `push` is the only writer and it checks.
        &self.items[..usize::from(self.len)]
    }
    /// Number of items.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Copy + Default> Default for Bounded<T> {
    fn default() -> Self {
        Self { len: 0, items: [T::default(); MAX_WELEM] }
    }
}

impl<T: Copy + Default + PartialEq> PartialEq for Bounded<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}
impl<T: Copy + Default + Eq> Eq for Bounded<T> {}

impl<T: Copy + Default + fmt::Debug> fmt::Debug for Bounded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<'a, T: Copy + Default + Field<'a>> Field<'a> for Bounded<T> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let n = r.u16()?;
        if usize::from(n) > MAX_WELEM {
            return Err(DecodeError::TooManyWalkElements(n));
        }
        let mut out = Self::default();
        for slot in out.items.iter_mut().take(usize::from(n)) {
            *slot = T::decode(r)?;
        }
        // n <= MAX_WELEM (16) was checked above, so it fits a u8.
        out.len = u8::try_from(n).map_err(|_| DecodeError::TooManyWalkElements(n))?;
        Ok(out)
    }
    fn encoded_len(&self) -> usize {
        2 + self.as_slice().iter().map(Field::encoded_len).sum::<usize>()
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u16(u16::from(self.len));
        self.as_slice().iter().try_for_each(|item| item.encode(w))
    }
}

/// Declares a plain struct of fixed-size fields with its wire codec, in field order.
macro_rules! fixed_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident: $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }

        impl<'a> Field<'a> for $name {
            fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
                Ok($name { $($f: <$t as Field>::decode(r)?),* })
            }
            fn encoded_len(&self) -> usize {
                0 $(+ Field::encoded_len(&self.$f))*
            }
            fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                $(Field::encode(&self.$f, w)?;)*
                Ok(())
            }
        }
    };
}

fixed_struct!(
    /// The body of Rgetattr: `valid` says which of the other fields are meaningful.
    Attr {
        /// `GETATTR_*` bits the server filled in.
        valid: u64,
        /// The file's qid.
        qid: Qid,
        /// Type and permission bits (Linux `st_mode`).
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Hard links.
        nlink: u64,
        /// Device number for device files.
        rdev: u64,
        /// Size in bytes.
        size: u64,
        /// Preferred I/O size.
        blksize: u64,
        /// 512-byte blocks allocated.
        blocks: u64,
        /// Last access, seconds.
        atime_sec: u64,
        /// Last access, nanoseconds.
        atime_nsec: u64,
        /// Last modification, seconds.
        mtime_sec: u64,
        /// Last modification, nanoseconds.
        mtime_nsec: u64,
        /// Last status change, seconds.
        ctime_sec: u64,
        /// Last status change, nanoseconds.
        ctime_nsec: u64,
        /// Birth, seconds.
        btime_sec: u64,
        /// Birth, nanoseconds.
        btime_nsec: u64,
        /// Inode generation.
        gen: u64,
        /// Data version.
        data_version: u64,
    }
);

fixed_struct!(
    /// The body of Tsetattr: `valid` (`SETATTR_*` bits) says which fields to apply.
    SetAttr {
        /// `SETATTR_*` bits.
        valid: u32,
        /// New permission bits.
        mode: u32,
        /// New owner.
        uid: u32,
        /// New group.
        gid: u32,
        /// New size.
        size: u64,
        /// New access time, seconds (with `SETATTR_ATIME_SET`).
        atime_sec: u64,
        /// New access time, nanoseconds.
        atime_nsec: u64,
        /// New modification time, seconds (with `SETATTR_MTIME_SET`).
        mtime_sec: u64,
        /// New modification time, nanoseconds.
        mtime_nsec: u64,
    }
);

fixed_struct!(
    /// The body of Rstatfs (Linux `struct statfs`).
    StatFs {
        /// Filesystem type magic.
        ty: u32,
        /// Block size.
        bsize: u32,
        /// Total blocks.
        blocks: u64,
        /// Free blocks.
        bfree: u64,
        /// Blocks free to unprivileged users.
        bavail: u64,
        /// Total inodes.
        files: u64,
        /// Free inodes.
        ffree: u64,
        /// Filesystem id.
        fsid: u64,
        /// Longest file name.
        namelen: u32,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_names_reject_seventeen() {
        let mut b = vec![17, 0];
        for _ in 0..17 {
            b.extend_from_slice(&[1, 0, b'a']);
        }
        let mut r = Reader::new(&b);
        assert_eq!(WalkNames::decode(&mut r).unwrap_err(), DecodeError::TooManyWalkElements(17));
        let names = [Str(b"a"); 17];
        assert!(WalkNames::new(&names).is_err());
        assert_eq!(WalkNames::new(&names[..16]).unwrap().len(), 16);
    }

    #[test]
    fn string_length_is_bounded_by_frame() {
        let mut r = Reader::new(&[0xff, 0xff, b'a']);
        assert!(matches!(Str::decode(&mut r), Err(DecodeError::Truncated { .. })));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(Data::decode(&mut r), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn attr_is_153_bytes() {
        assert_eq!(Attr::default().encoded_len(), 8 + 13 + 3 * 4 + 15 * 8);
        assert_eq!(SetAttr::default().encoded_len(), 4 * 4 + 5 * 8);
        assert_eq!(StatFs::default().encoded_len(), 4 + 4 + 6 * 8 + 4);
    }
}
