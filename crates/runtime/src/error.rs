//! The runtime's error type. Messages that containerd and podman match on
//! keep runc's wording ("does not exist", "container not running").

/// Something a lifecycle verb could not do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json is unreadable or invalid; names the JSON path.
    #[error("{0}")]
    Spec(String),
    /// No container with this id (runc's wording, which callers match).
    #[error("container \"{0}\" does not exist")]
    NotExist(String),
    /// A container with this id exists already.
    #[error("container with id exists: {0}")]
    Exists(String),
    /// The verb does not apply in the container's current status.
    #[error("{0}")]
    BadState(String),
    /// Invalid user input other than the spec (id, signal, flags).
    #[error("{0}")]
    Invalid(String),
    /// Asked for something moat does not do (here, or yet).
    #[error("{0}")]
    Unsupported(String),
    /// A jail step failed.
    #[error(transparent)]
    Jail(#[from] moat_jail::Error),
    /// The container's init reported an error.
    #[error("{0}")]
    Init(String),
    /// A hook failed.
    #[error("{0}")]
    Hook(String),
    /// Host I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// what was being done, with the path
        what: String,
        /// the cause
        #[source]
        source: std::io::Error,
    },
}

/// Result of a runtime operation.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O failure with what was being done.
    pub fn io(what: impl Into<String>, e: impl Into<std::io::Error>) -> Self {
        Error::Io { what: what.into(), source: e.into() }
    }
}
