//! Numbers defined by 9P2000.L: qid types, getattr/setattr masks, open flags, lock codes.
//!
//! Open flags and errnos on the wire are the Linux *generic* values (those of x86_64 and
//! aarch64), so peers on other architectures translate; a server never passes them to the host
//! kernel unchecked.

/// Qid type: directory.
pub const QTDIR: u8 = 0x80;
/// Qid type: append-only file.
pub const QTAPPEND: u8 = 0x40;
/// Qid type: exclusive-use file.
pub const QTEXCL: u8 = 0x20;
/// Qid type: mount point.
pub const QTMOUNT: u8 = 0x10;
/// Qid type: authentication file.
pub const QTAUTH: u8 = 0x08;
/// Qid type: temporary file.
pub const QTTMP: u8 = 0x04;
/// Qid type: symbolic link.
pub const QTSYMLINK: u8 = 0x02;
/// Qid type: hard link (unused by Linux).
pub const QTLINK: u8 = 0x01;
/// Qid type: plain file.
pub const QTFILE: u8 = 0x00;

/// Tgetattr/Rgetattr mask: mode.
pub const GETATTR_MODE: u64 = 0x0000_0001;
/// Mask: nlink.
pub const GETATTR_NLINK: u64 = 0x0000_0002;
/// Mask: uid.
pub const GETATTR_UID: u64 = 0x0000_0004;
/// Mask: gid.
pub const GETATTR_GID: u64 = 0x0000_0008;
/// Mask: rdev.
pub const GETATTR_RDEV: u64 = 0x0000_0010;
/// Mask: atime.
pub const GETATTR_ATIME: u64 = 0x0000_0020;
/// Mask: mtime.
pub const GETATTR_MTIME: u64 = 0x0000_0040;
/// Mask: ctime.
pub const GETATTR_CTIME: u64 = 0x0000_0080;
/// Mask: inode number (the qid path).
pub const GETATTR_INO: u64 = 0x0000_0100;
/// Mask: size.
pub const GETATTR_SIZE: u64 = 0x0000_0200;
/// Mask: blocks.
pub const GETATTR_BLOCKS: u64 = 0x0000_0400;
/// Mask: birth time.
pub const GETATTR_BTIME: u64 = 0x0000_0800;
/// Mask: generation.
pub const GETATTR_GEN: u64 = 0x0000_1000;
/// Mask: data version.
pub const GETATTR_DATA_VERSION: u64 = 0x0000_2000;
/// Everything `stat(2)` returns.
pub const GETATTR_BASIC: u64 = 0x0000_07ff;
/// Every field.
pub const GETATTR_ALL: u64 = 0x0000_3fff;

/// Tsetattr valid: mode.
pub const SETATTR_MODE: u32 = 0x0000_0001;
/// Valid: uid.
pub const SETATTR_UID: u32 = 0x0000_0002;
/// Valid: gid.
pub const SETATTR_GID: u32 = 0x0000_0004;
/// Valid: size (truncate).
pub const SETATTR_SIZE: u32 = 0x0000_0008;
/// Valid: atime (to now unless `SETATTR_ATIME_SET`).
pub const SETATTR_ATIME: u32 = 0x0000_0010;
/// Valid: mtime (to now unless `SETATTR_MTIME_SET`).
pub const SETATTR_MTIME: u32 = 0x0000_0020;
/// Valid: ctime.
pub const SETATTR_CTIME: u32 = 0x0000_0040;
/// atime is given in the message.
pub const SETATTR_ATIME_SET: u32 = 0x0000_0080;
/// mtime is given in the message.
pub const SETATTR_MTIME_SET: u32 = 0x0000_0100;

/// Tlopen/Tlcreate flags (Linux generic `O_*` values).
pub mod oflags {
    /// Open for reading.
    pub const RDONLY: u32 = 0o0;
    /// Open for writing.
    pub const WRONLY: u32 = 0o1;
    /// Open for both.
    pub const RDWR: u32 = 0o2;
    /// Mask of the access mode.
    pub const ACCMODE: u32 = 0o3;
    /// Create.
    pub const CREAT: u32 = 0o100;
    /// Fail if it exists.
    pub const EXCL: u32 = 0o200;
    /// Not a controlling terminal.
    pub const NOCTTY: u32 = 0o400;
    /// Truncate.
    pub const TRUNC: u32 = 0o1000;
    /// Append.
    pub const APPEND: u32 = 0o2000;
    /// Non-blocking.
    pub const NONBLOCK: u32 = 0o4000;
    /// Data sync on write.
    pub const DSYNC: u32 = 0o10000;
    /// Signal-driven I/O.
    pub const FASYNC: u32 = 0o20000;
    /// Direct I/O.
    pub const DIRECT: u32 = 0o40000;
    /// Large file.
    pub const LARGEFILE: u32 = 0o100000;
    /// Must be a directory.
    pub const DIRECTORY: u32 = 0o200000;
    /// Do not follow a final symlink.
    pub const NOFOLLOW: u32 = 0o400000;
    /// Do not update atime.
    pub const NOATIME: u32 = 0o1000000;
    /// Close on exec.
    pub const CLOEXEC: u32 = 0o2000000;
    /// Full sync on write.
    pub const SYNC: u32 = 0o4000000;
}

/// Tunlinkat flag: remove a directory.
pub const AT_REMOVEDIR: u32 = 0x200;

/// Lock type: read lock.
pub const LOCK_TYPE_RDLCK: u8 = 0;
/// Lock type: write lock.
pub const LOCK_TYPE_WRLCK: u8 = 1;
/// Lock type: unlock.
pub const LOCK_TYPE_UNLCK: u8 = 2;
/// Tlock flag: block until granted.
pub const LOCK_FLAGS_BLOCK: u32 = 1;
/// Tlock flag: reclaim after server restart.
pub const LOCK_FLAGS_RECLAIM: u32 = 2;
/// Rlock status: granted.
pub const LOCK_SUCCESS: u8 = 0;
/// Rlock status: conflicting lock held.
pub const LOCK_BLOCKED: u8 = 1;
/// Rlock status: error.
pub const LOCK_ERROR: u8 = 2;
/// Rlock status: server in grace period.
pub const LOCK_GRACE: u8 = 3;

/// Largest extended attribute value (Linux `XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: u64 = 65536;
/// Txattrcreate flag: fail if the attribute exists (Linux `XATTR_CREATE`).
pub const XATTR_CREATE: u32 = 1;
/// Txattrcreate flag: fail if it does not (Linux `XATTR_REPLACE`).
pub const XATTR_REPLACE: u32 = 2;
