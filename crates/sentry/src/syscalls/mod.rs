//! System calls: the table of classes ([`table`]), and the handlers of
//! served calls, one module per area ([`identity`] so far).

pub mod ctl;
pub mod docs;
pub mod file;
pub mod identity;
pub mod ids;
pub mod net;
pub mod path;
pub mod strace;
pub mod table;

use std::os::fd::OwnedFd;

use nix::errno::Errno;

use crate::kernel::Kernel;

/// Reading and writing the calling process's memory (the platform does it).
pub trait Memory {
    /// Copies `data` to `addr` in the caller.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno>;
    /// Copies from `addr` in the caller into `buf`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;

    /// The NUL-terminated string at `addr`, if it ends within `max` bytes
    /// (`None` if it is longer). Read page by page: a short string at the
    /// end of a mapping must not fault on the next page.
    fn read_cstr(&self, addr: u64, max: usize) -> Result<Option<Vec<u8>>, Errno> {
        const PAGE: u64 = 4096;
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            let room = usize::try_from(PAGE - at % PAGE).unwrap_or(1).min(max - out.len());
            let mut chunk = vec![0u8; room];
            self.read(at, &mut chunk)?;
            if let Some(end) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..end]);
                return Ok(Some(out));
            }
            out.extend_from_slice(&chunk);
            at += room as u64;
        }
        Ok(None)
    }
}

/// The calling thread's credentials (the platform reads them).
pub trait Task {
    /// Its effective capabilities (in its own user namespace), as a bit set.
    fn effective_caps(&self) -> Result<u64, Errno>;

    /// Whether it holds `cap` (a CAP_* number) in its effective set.
    fn capable(&self, cap: u32) -> bool {
        self.effective_caps().is_ok_and(|c| c & (1u64 << cap) != 0)
    }

    /// Its file credentials (ids as the Sentry's user namespace numbers them).
    fn creds(&self) -> Result<crate::vfs::creds::Creds, Errno>;

    /// Its working directory, as a path of the container's tree.
    fn cwd(&self) -> Result<Vec<u8>, Errno>;

    /// Its working directory itself (an O_PATH fd, in the stubs' replica).
    fn cwd_file(&self) -> Result<OwnedFd, Errno>;

    /// Its root directory itself (an O_PATH fd, in the stubs' replica).
    fn root_file(&self) -> Result<OwnedFd, Errno>;

    /// Its soft RLIMIT_FSIZE, in bytes (None: unlimited).
    fn file_size_limit(&self) -> Result<Option<u64>, Errno>;

    /// Its program (the target of /proc/self/exe).
    fn exe(&self) -> Result<Vec<u8>, Errno>;

    /// Its root directory (after a chroot of its own), as a path of the container's tree.
    fn root(&self) -> Result<Vec<u8>, Errno>;

    /// Forgets what is remembered of it, or of its process (its
    /// credentials or umask are about to change, or it execs).
    fn forget(&self, what: crate::platform::tasks::Forget);
}

/// CAP_SYS_ADMIN
pub const CAP_SYS_ADMIN: u32 = 21;

/// The calling process's file descriptors (the platform reaches them).
pub trait Fds {
    /// A duplicate, in the Sentry, of the caller's fd `fd` (same open file).
    fn get(&self, fd: i32) -> Result<OwnedFd, Errno>;
    /// Opens `file` (one of the Sentry's fds) anew, as open(2) of its
    /// /proc/self/fd link would, and installs the result in the caller as
    /// the call's result: [`Reply::Answered`]. An open that may block (a
    /// FIFO waiting for its other end) runs on a worker: [`Reply::Pending`].
    fn reopen_into_caller(&self, file: OwnedFd, flags: nix::fcntl::OFlag, cloexec: bool) -> Result<Reply, Errno>;
    /// Installs `file` in the caller as the call's result: [`Reply::Answered`].
    fn install(&self, file: OwnedFd, cloexec: bool) -> Result<Reply, Errno>;
    /// Installs `file` in the caller without answering its call (one of
    /// several fds a call makes, as socketpair's two): the caller's new fd.
    fn place(&self, file: OwnedFd, cloexec: bool) -> Result<i32, Errno>;
    /// The path of one of the Sentry's own fds (as its mount namespace names it).
    fn path_of(&self, ours: std::os::fd::BorrowedFd<'_>) -> Result<Vec<u8>, Errno>;
    /// The target of the symlink at `rel`, from the caller's `start` (its
    /// "root", "cwd" or "fd/N"), through the caller's own magic links.
    fn readlink_as_caller(&self, start: &str, rel: &[u8]) -> Result<std::ffi::OsString, Errno>;
    /// Runs `job` on a worker thread, where it may wait (interrupted with
    /// EINTR once the caller stops waiting); its reply answers the call:
    /// [`Reply::Pending`].
    fn later(&self, job: LaterJob) -> Result<Reply, Errno>;
}

/// A call answered on a worker ([`Fds::later`]).
pub type LaterJob = Box<dyn FnOnce(&dyn Later) -> Reply + Send>;

/// What a worker has of the caller whose call it answers.
pub trait Later {
    /// The caller's memory.
    fn mem(&self) -> &dyn Memory;
    /// Installs `file` in the caller as the call's result (which answers it).
    fn install(&self, file: OwnedFd, cloexec: bool) -> Result<i64, Errno>;
}

/// One served call, decoded.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    /// the calling thread (host tid)
    pub pid: u32,
    /// the raw arguments
    pub args: [u64; 6],
    /// the sandbox's kernel state
    pub kernel: &'a Kernel,
    /// the caller's memory
    pub mem: &'a dyn Memory,
    /// the caller's file descriptors
    pub fds: &'a dyn Fds,
    /// the caller's credentials
    pub task: &'a dyn Task,
}

/// A handler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// the call returns this value
    Value(i64),
    /// the call fails with this errno
    Error(Errno),
    /// the host kernel performs the call (interim classes only)
    Continue,
    /// the handler already answered (an fd installed with this number)
    Answered(i64),
    /// a worker thread answers later
    Pending,
}

/// A served call's handler.
pub type Handler = fn(&Call<'_>) -> Reply;

/// Argument rule of a passed-through call, checked in the BPF filter.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// any arguments
    Any,
    /// argument `idx` has none of `mask`'s bits
    ArgMaskedZero(u32, u64),
    /// argument `idx` is one of the values
    OneOf(u32, &'static [u64]),
}

/// How a syscall is handled.
#[derive(Clone, Copy)]
pub enum Class {
    /// the Sentry serves it with this handler
    Served(Handler),
    /// will be served; until its subsystem lands the host performs it
    /// (SECCOMP_USER_NOTIF_FLAG_CONTINUE), after an optional handler that
    /// serves the cases the host cannot (it answers Continue for the rest)
    Interim(Option<Handler>),
    /// the host kernel runs it directly, if the rule holds (else EPERM)
    Passthrough(Rule),
    /// the host kernel runs it directly if the rule holds; else the Sentry
    /// serves it with this handler (sendto and recvfrom with an address)
    Checked(Rule, Handler),
    /// in a sandbox with a netstack the Sentry serves it with this handler;
    /// without one the host kernel runs it directly (sendmsg, recvmsg: the
    /// BPF cannot see their addresses, and AF_UNIX users should not pay)
    Net(Handler),
    /// fails with this errno
    Denied(i32),
}

/// One table line.
#[derive(Clone, Copy)]
pub struct Entry {
    /// syscall name
    pub name: &'static str,
    /// class
    pub class: Class,
    /// why, or how it differs from Linux
    pub note: &'static str,
}

impl Class {
    /// A short label for listings.
    pub fn label(&self) -> &'static str {
        match self {
            Class::Served(_) => "served",
            Class::Interim(_) => "served (interim: host)",
            Class::Passthrough(Rule::Any) => "passthrough",
            Class::Passthrough(_) => "passthrough (checked)",
            Class::Checked(..) => "passthrough (checked), else served",
            Class::Net(_) => "served with a netstack, else passthrough",
            Class::Denied(_) => "denied",
        }
    }
}

/// The entry of a syscall by name.
pub fn lookup(name: &str) -> Option<&'static Entry> {
    table::TABLE.iter().find(|e| e.name == name)
}
