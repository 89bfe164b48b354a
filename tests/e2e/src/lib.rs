//! Helpers for moat's end-to-end tests: they drive the built `moat` binary
//! (and runc, containerd, podman) exactly as a user would.

pub mod containerd;
pub mod debian;
pub mod harness;
pub mod image;
pub mod podman;
pub mod podnet;

pub use harness::*;
