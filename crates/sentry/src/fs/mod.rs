//! The Sentry's filesystems, and how the stubs reach them.
//!
//! [`proc`] is the sandbox's /proc. Until the VFS serves every path call,
//! the stubs reach it through a FUSE mount in their view ([`fuse`]): the
//! host kernel walks the path, the Sentry answers for every node.

pub mod fuse;
pub mod proc;
