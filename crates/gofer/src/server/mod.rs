//! The 9P2000.L server: serves one directory tree to the peers of stream sockets.
//!
//! - [`node`]: files as the server holds them, and the path-safe walk (read its invariants).
//! - [`fid`]: the bounded fid table of a session.
//! - [`session`]: one connection: worker threads, tags, Tflush, Tversion.
//! - `ops_*`: the handlers, grouped by area (walk and I/O, directory entries, attributes).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

pub(crate) mod fid;
pub(crate) mod node;
mod ops_attr;
mod ops_dir;
mod ops_file;
pub(crate) mod session;

use node::Node;
pub use node::{ino_of, path_of};

/// What to serve and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory to serve. Opened once, at [`Server::new`]; nothing above it is reachable.
    pub root: PathBuf,
    /// Refuse every request that would change the tree or a file (`EROFS`), and open files
    /// read-only, whatever the client asks.
    pub read_only: bool,
    /// Most fids one session may hold (`EMFILE` beyond).
    pub max_fids: usize,
    /// Largest msize the server agrees to; it bounds every frame and buffer.
    pub max_msize: u32,
    /// Worker threads per connection: the most requests served at once.
    pub workers: usize,
    /// Offer fd donation to clients on Unix sockets.
    pub donate_fds: bool,
}

impl Config {
    /// Defaults for serving `root`: read-write, 4096 fids, msize up to 512 KiB + header,
    /// 4 workers, fd donation on.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            read_only: false,
            max_fids: 4096,
            max_msize: 512 * 1024 + moat_p9::IOHDRSZ,
            workers: 4,
            donate_fds: true,
        }
    }
}

/// Errors of setting up or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The root could not be opened.
    #[error("cannot open served root {path}")]
    OpenRoot {
        /// The root.
        path: PathBuf,
        /// Why.
        #[source]
        source: Errno,
    },
    /// The configuration is unusable.
    #[error("invalid gofer config: {0}")]
    Config(&'static str),
    /// A connection failed.
    #[error("connection failed")]
    Conn(#[source] std::io::Error),
}

/// A server for one tree; cheap to share between connections.
#[derive(Debug, Clone)]
pub struct Server {
    inner: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub root: Arc<Node>,
    pub euid: u32,
}

impl Server {
    /// Opens the root and checks the configuration.
    pub fn new(config: Config) -> Result<Self, ServerError> {
        if config.workers == 0 || config.max_fids == 0 {
            return Err(ServerError::Config("workers and max_fids must be at least 1"));
        }
        if config.max_msize < moat_p9::MIN_MSIZE {
            return Err(ServerError::Config("max_msize is below the 9P minimum"));
        }
        let open_root = |path: &PathBuf| -> Result<Arc<Node>, Errno> {
            let fd: OwnedFd = open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
            Node::root(fd)
        };
        let root =
            open_root(&config.root).map_err(|source| ServerError::OpenRoot { path: config.root.clone(), source })?;
        let euid = nix::unistd::geteuid().as_raw();
        Ok(Self { inner: Arc::new(Shared { config, root, euid }) })
    }

    /// Serves one connected stream socket (Unix or TCP) until the peer closes it. Runs the
    /// configured number of worker threads and returns when all have stopped.
    pub fn serve_conn(&self, sock: OwnedFd) -> Result<(), ServerError> {
        let conn = crate::transport::Conn::new(sock).map_err(ServerError::Conn)?;
        session::Session::new(&self.inner, &conn).run();
        Ok(())
    }

    /// Accepts connections on `listener` and serves each on threads of its own, until accepting
    /// fails. For debugging and interop tests; moat itself serves one socketpair.
    pub fn serve_listener(&self, listener: std::net::TcpListener) -> Result<(), ServerError> {
        loop {
            let (stream, _) = listener.accept().map_err(ServerError::Conn)?;
            let server = self.clone();
            std::thread::spawn(move || {
                if let Err(e) = server.serve_conn(stream.into()) {
                    tracing::warn!(error = %e, "9p connection ended with an error");
                }
            });
        }
    }
}
