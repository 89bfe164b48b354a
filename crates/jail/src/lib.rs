//! The jail: everything that confines a process on the host kernel.
//!
//! Each module turns one part of an OCI `config.json` into kernel state:
//! [`ns`] namespaces, [`idmap`] user-namespace maps, [`idmapped`] and [`overlay`] the
//! container's files seen from a user namespace of its own, [`mount`] and [`rootfs`]
//! the container's file tree, [`devices`] device nodes, [`caps`] capability
//! sets, [`rlimit`] resource limits, [`identity`] uid/gid/groups/umask,
//! [`seccomp`] the OCI seccomp profile, [`cgroups`] resource control, and
//! [`sysctl`] namespaced kernel parameters. The OCI front end (`moat-runtime`)
//! decides the order; this crate only does each step. Unsafe code lives in
//! [`sys`] alone.
#![warn(missing_docs)]

pub mod caps;
pub mod cgroups;
pub mod confine;
pub mod devices;
mod error;
pub mod identity;
pub mod idmap;
pub mod idmapped;
pub mod mount;
pub mod ns;
pub mod overlay;
pub mod policy;
pub mod pseudofs;
pub mod replica;
pub mod rlimit;
pub mod rootfs;
pub mod seccomp;
pub mod securejoin;
pub mod sys;
pub mod sysctl;

pub use error::{Error, Result};
