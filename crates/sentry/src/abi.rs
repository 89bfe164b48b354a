//! Linux ABI values the `libc` crate does not give us, declared once.

/// `struct new_utsname`: six 65-byte fields.
pub const UTSNAME_FIELD: usize = 65;

/// syslog(2) actions the Sentry answers.
pub mod syslog {
    /// read and clear (we never clear)
    pub const READ_ALL: i32 = 3;
    /// read and clear the ring buffer
    pub const READ_CLEAR: i32 = 4;
    /// size of the unread part
    pub const SIZE_UNREAD: i32 = 9;
    /// size of the whole buffer
    pub const SIZE_BUFFER: i32 = 10;
}

/// Clone flags that create namespaces: never allowed for a stub.
pub const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;
