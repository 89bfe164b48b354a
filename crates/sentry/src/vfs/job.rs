//! One call made in the real tree as a caller ([`Job`]), and the place
//! that makes it ([`Seat`]): the notify thread itself, or, for a sandbox
//! with a user namespace, the replayer inside that namespace
//! ([`super::remote`]), where the caller's capabilities mean what they mean
//! for the caller.
//!
//! A job is complete in itself: its arguments are carried over (bytes, not
//! addresses into the caller), and every directory it starts from is an
//! fd the Sentry found again in the tree, so the same job runs the same
//! way in either place.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use super::creds::{self, AsCaller, Creds, Home};

/// One argument of the call.
#[derive(Debug)]
pub enum Arg {
    /// a value, as is
    Raw(u64),
    /// bytes the call reads: a path or name (with its NUL), a buffer
    In(Vec<u8>),
    /// a buffer of this many bytes the call fills
    Out(usize),
    /// an fd: a dirfd, a socket, a file
    Fd(OwnedFd),
    /// a file named through the executing process's own procfs magic link
    /// to it (PID/fd/N); the dirfd argument at the index given becomes its
    /// procfs. linkat's source, with AT_SYMLINK_FOLLOW: as the caller
    /// follows its own /proc/self/fd/N.
    Link(OwnedFd, usize),
}

/// An open's check before it is made: the host opens what is neither a
/// regular file nor a directory (a device, a FIFO, a socket), as the caller.
#[derive(Debug, Clone, Copy)]
pub struct Special {
    /// the index of the path argument
    pub path: usize,
    /// the index of its dirfd argument, if any
    pub dir: Option<usize>,
    /// O_NOFOLLOW: a final symlink is not followed
    pub nofollow: bool,
}

/// One call, as the caller would make it.
#[derive(Debug)]
pub struct Job {
    /// the system call
    pub nr: i64,
    /// its arguments
    pub args: Vec<Arg>,
    /// the directory relative paths start at (the caller's cwd, or the
    /// parent of an fd's file), found again in the tree
    pub here: Option<OwnedFd>,
    /// the caller's own root, after a chroot of its own
    pub jail: Option<OwnedFd>,
    /// the caller's credentials, as the Sentry's user namespace numbers them
    pub who: Creds,
    /// access(2): checked with the caller's real ids (and capabilities only
    /// for a real root, which is root as the place the job is made numbers it)
    pub access: bool,
    /// for an open: what to check first
    pub special: Option<Special>,
    /// whether the result is a new fd
    pub opens: bool,
}

/// What became of a job.
#[derive(Debug)]
pub enum Done {
    /// the call's result (for an open, the new fd, one of the Sentry's),
    /// and what it wrote into its [`Arg::Out`] buffers (index, bytes)
    Made(Result<i64, Errno>, Vec<(usize, Vec<u8>)>),
    /// an open of something that is neither a regular file nor a
    /// directory: the host opens it, as the caller
    Special,
}

/// The raw system call. Address arguments point into buffers the caller
/// of `raw` keeps alive for the call.
fn raw(nr: i64, a: [u64; 6]) -> Result<i64, Errno> {
    // SAFETY: every pointer argument was built from a CString or Vec the
    // caller of `raw` keeps alive for the duration of the call, sized as the
    // system call expects (checked when it was copied); other arguments are
    // plain values the kernel validates.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// A thread (or process) in the real tree: its root there, its own
/// credentials to come back to, and a procfs of its own (for [`Arg::Link`]).
#[derive(Debug)]
pub struct Seat {
    root: OwnedFd,
    home: Home,
    proc: OwnedFd,
}

impl Seat {
    /// The calling thread enters the tree whose root is `root`: it
    /// unshares its fs_struct and chroots there, so absolute symlinks and
    /// `..` stop at the container's root. `proc`: a procfs where the
    /// caller's own pid names it.
    pub fn enter(root: OwnedFd, proc: OwnedFd) -> Result<Seat, Errno> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?;
        nix::unistd::fchdir(&root)?;
        creds::raised(creds::CAP_SYS_CHROOT, || nix::unistd::chroot("."))??;
        Ok(Seat { root, home: Home::current()?, proc })
    }

    /// The tree's root.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Makes `job` here.
    pub fn run(&self, job: Job) -> Result<Done, Errno> {
        let Job { nr, args, here, jail, who, access, special, opens: _ } = job;
        let who = if access { who.for_access() } else { who };
        // the caller's own root if it chrooted (its working directory may
        // lie outside that root, as on Linux)
        let _jail = match &jail {
            Some(dir) => Some(self.jail(dir)?),
            None => None,
        };
        // the caller is in that directory already: no search permission of
        // the thread's own (the replayer has none effective) stands in the way
        if let Some(dir) = &here {
            creds::raised(creds::CAP_DAC_READ_SEARCH, || nix::unistd::fchdir(dir))??;
        }
        let mut outs: Vec<Vec<u8>> = args.iter().map(|a| vec![0u8; if let Arg::Out(n) = a { *n } else { 0 }]).collect();
        let mut names: Vec<CString> = Vec::new();
        let mut a = [0u64; 6];
        for (i, arg) in args.iter().enumerate().take(6) {
            a[i] = match arg {
                Arg::Raw(v) => *v,
                Arg::In(b) => b.as_ptr() as u64,
                Arg::Out(_) => outs[i].as_mut_ptr() as u64,
                Arg::Fd(f) => f.as_raw_fd() as u64,
                Arg::Link(f, _) => {
                    let name = format!("{}/fd/{}", std::process::id(), f.as_raw_fd());
                    names.push(CString::new(name).map_err(|_| Errno::EINVAL)?);
                    names.last().map(|n| n.as_ptr() as u64).unwrap_or(0)
                }
            };
        }
        for arg in &args {
            if let Arg::Link(_, dir) = arg {
                *a.get_mut(*dir).ok_or(Errno::EINVAL)? = self.proc.as_raw_fd() as u64;
            }
        }
        let result = {
            let _as = AsCaller::switch(&self.home, &who)?;
            if let Some(s) = special {
                if opens_special(&args, s) {
                    return Ok(Done::Special);
                }
            }
            raw(nr, a)
        };
        let written = match result {
            Ok(_) => args
                .iter()
                .enumerate()
                .filter(|(_, a)| matches!(a, Arg::Out(_)))
                .map(|(i, _)| (i, std::mem::take(&mut outs[i])))
                .collect(),
            Err(_) => Vec::new(),
        };
        drop(names);
        Ok(Done::Made(result, written))
    }

    /// Moves the thread into a caller's own root, `dir` (a directory of the
    /// tree, after a chroot of the caller's) until the guard drops.
    fn jail(&self, dir: &OwnedFd) -> Result<Jailed<'_>, Errno> {
        creds::raised(creds::CAP_DAC_READ_SEARCH, || nix::unistd::fchdir(dir))??;
        creds::raised(creds::CAP_SYS_CHROOT, || nix::unistd::chroot("."))??;
        Ok(Jailed { seat: self })
    }
}

/// The thread in a caller's chroot: back at the tree's root on drop.
struct Jailed<'a> {
    seat: &'a Seat,
}

impl Drop for Jailed<'_> {
    fn drop(&mut self) {
        let back = creds::raised(creds::CAP_DAC_READ_SEARCH, || nix::unistd::fchdir(&self.seat.root))
            .and_then(|r| r)
            .and_then(|_| creds::raised(creds::CAP_SYS_CHROOT, || nix::unistd::chroot("."))?);
        if let Err(e) = back {
            // later calls would resolve in the caller's chroot
            tracing::error!("sentry: cannot leave a caller's root ({e}); ending");
            std::process::abort();
        }
    }
}

/// Whether an open names something that exists and is neither a regular
/// file nor a directory (a symlink with O_NOFOLLOW fails in the open itself).
fn opens_special(args: &[Arg], s: Special) -> bool {
    let Some(Arg::In(path)) = args.get(s.path) else { return false };
    let Ok(path) = std::ffi::CStr::from_bytes_until_nul(path) else { return false };
    let dirfd = match s.dir.and_then(|d| args.get(d)) {
        Some(Arg::Fd(f)) => f.as_fd(),
        _ => nix::fcntl::AT_FDCWD,
    };
    let at = if s.nofollow { nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW } else { nix::fcntl::AtFlags::empty() };
    let Ok(st) = nix::sys::stat::fstatat(dirfd, path, at) else { return false };
    let kind = st.st_mode & libc::S_IFMT;
    kind != libc::S_IFREG && kind != libc::S_IFDIR && kind != libc::S_IFLNK
}
