//! The `moat gofer` process: take the connection, confine ourselves to the
//! served tree, then serve.
//!
//! Confinement ([`moat_jail::confine`]): a private mount namespace whose root
//! is the served tree (read-only when asked), only the capabilities a file
//! server needs to act for the container's users, no_new_privs, and the
//! [`moat_jail::policy::gofer`] seccomp allowlist (a call outside it kills
//! the process). Sockets are made before confinement: the policy allows no
//! new ones.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use caps::Capability;
use moat_jail::confine::{confine, Confinement};
use moat_jail::policy;

use crate::{Config, Server, ServerError};

/// Capabilities the gofer keeps: acting on files whatever their owner and mode.
pub const KEEP_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_DAC_READ_SEARCH,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
];

/// Where the gofer's requests come from.
#[derive(Debug)]
pub enum Endpoint {
    /// one connected socket (the Sentry's socketpair end)
    Conn(OwnedFd),
    /// a TCP listener (interop tests with diod's clients, debugging)
    Listen(TcpListener),
}

impl Endpoint {
    /// The connected socket our parent passed as fd `fd`.
    pub fn inherited(fd: i32) -> std::io::Result<Endpoint> {
        Ok(Endpoint::Conn(crate::sys::adopt_inherited_fd(fd)?))
    }
}

/// What `moat gofer` was asked for.
#[derive(Debug)]
pub struct GoferOpts {
    /// the tree to serve
    pub dir: PathBuf,
    /// serve it read-only
    pub read_only: bool,
    /// skip confinement (debugging only; logged as a warning)
    pub no_confine: bool,
}

/// Errors of the gofer process.
#[derive(Debug, thiserror::Error)]
pub enum GoferError {
    /// confinement failed
    #[error("confine the gofer: {0}")]
    Confine(#[from] moat_jail::Error),
    /// serving failed
    #[error(transparent)]
    Serve(#[from] ServerError),
}

/// Confines the process and serves until the connection (or listener) ends.
pub fn run(o: GoferOpts, ep: Endpoint) -> Result<(), GoferError> {
    let root = if o.no_confine {
        tracing::warn!("gofer runs unconfined (--no-confine)");
        o.dir.clone()
    } else {
        let p = policy::gofer::policy();
        confine(&Confinement {
            tree: &o.dir,
            read_only: o.read_only,
            keep_caps: KEEP_CAPS,
            policy: Some(&p),
            join_userns: None,
        })?;
        PathBuf::from("/")
    };
    let mut cfg = Config::new(root);
    cfg.read_only = o.read_only;
    let server = Server::new(cfg)?;
    match ep {
        Endpoint::Conn(fd) => server.serve_conn(fd)?,
        Endpoint::Listen(l) => server.serve_listener(l)?,
    }
    Ok(())
}

/// The filter listing `moat gofer --print-filter` shows.
pub fn describe_filter() -> Result<String, GoferError> {
    let p = policy::gofer::policy();
    let n = policy::instruction_count(&p)?;
    Ok(format!("{}# {} BPF instructions\n", p.describe(), n))
}
