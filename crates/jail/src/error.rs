//! The jail's error type: every variant names what it was doing and on what.

use std::path::PathBuf;

/// A jail step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a path failed.
    #[error("{op} {path}: {source}")]
    Path {
        /// what we were doing (e.g. "mount", "mkdir")
        op: &'static str,
        /// the path it was done on
        path: PathBuf,
        /// the kernel's answer
        #[source]
        source: std::io::Error,
    },
    /// A system call with no path failed.
    #[error("{op}: {source}")]
    Sys {
        /// what we were doing
        op: String,
        /// the kernel's answer
        #[source]
        source: std::io::Error,
    },
    /// The configuration asks for something invalid or unsupported.
    #[error("{0}")]
    Config(String),
}

/// Result of a jail step.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an errno from a path-based call.
    pub fn path(op: &'static str, path: impl Into<PathBuf>, e: impl Into<std::io::Error>) -> Self {
        Error::Path { op, path: path.into(), source: e.into() }
    }
    /// Wraps an errno from a call that takes no path.
    pub fn sys(op: impl Into<String>, e: impl Into<std::io::Error>) -> Self {
        Error::Sys { op: op.into(), source: e.into() }
    }
}
