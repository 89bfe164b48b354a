//! The Sentry's filesystems, and how the stubs reach them.
//!
//! [`proc`] and [`sys`] are the sandbox's /proc and /sys, built on
//! [`proxy`] reads of a procfs and a sysfs that only the Sentry holds.
//! Until the VFS serves every path call, the stubs reach them through FUSE
//! mounts in their view ([`fuse`]): the host kernel walks the path, the
//! Sentry answers for every node.

pub mod fuse;
pub mod gofer;
pub mod proc;
pub mod proxy;
pub mod sys;
