//! The jail's only unsafe code: small safe wrappers around calls that the
//! `nix` crate does not cover, each with the invariant it relies on.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::unistd::ForkResult;

/// Forks the calling process.
///
/// The callers in moat call this only while the process is single-threaded
/// (the CLI never starts a thread before it forks), so the child may allocate
/// and run arbitrary code afterwards.
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: moat forks only while single-threaded (see above), so no lock
    // can be held by a thread that does not exist in the child.
    unsafe { nix::unistd::fork() }
}

/// Runs `f` in a forked child and returns the child's pid to the parent.
/// The child exits with `f`'s return value and never returns.
pub fn fork_with(f: impl FnOnce() -> i32) -> nix::Result<nix::unistd::Pid> {
    match fork()? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let code = f();
            exit_now(code)
        }
    }
}

/// Ends the process at once, without running atexit handlers or flushing
/// stdio buffers that belong to the parent's copy of the process.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const AT_RECURSIVE: libc::c_uint = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes the mount at `path` read-only, with all mounts below it when
/// `recursive` (mount_setattr(2), Linux 5.12).
pub fn mount_setattr_rdonly(path: &Path, recursive: bool) -> io::Result<()> {
    mount_setattr(path, recursive, MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 })
}

/// Makes the mount at `path` (only) writable again.
pub fn mount_setattr_rw(path: &Path) -> io::Result<()> {
    mount_setattr(path, false, MountAttr { attr_set: 0, attr_clr: MOUNT_ATTR_RDONLY, propagation: 0, userns_fd: 0 })
}

fn mount_setattr(path: &Path, recursive: bool, attr: MountAttr) -> io::Result<()> {
    mount_setattr_at(None, path, recursive, attr)
}

/// MOUNT_ATTR_IDMAP
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Idmaps the detached mount `tree` (with every mount below it when
/// `recursive`) with the user namespace `userns`: its files show that
/// namespace's numbers for their ids (Linux 5.12; the filesystems must
/// allow it, and the mounts must be detached and not idmapped yet).
pub fn mount_setattr_idmap(tree: BorrowedFd<'_>, recursive: bool, userns: BorrowedFd<'_>) -> io::Result<()> {
    let attr =
        MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: userns.as_raw_fd() as u64 };
    mount_setattr_at(Some(tree), Path::new(""), recursive, attr)
}

fn mount_setattr_at(dir: Option<BorrowedFd<'_>>, path: &Path, recursive: bool, attr: MountAttr) -> io::Result<()> {
    let c = cstring(path)?;
    let mut flags = if recursive { AT_RECURSIVE } else { 0 };
    if path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    }
    let dirfd = dir.map(|d| d.as_raw_fd()).unwrap_or(libc::AT_FDCWD);
    // SAFETY: `c` is a valid NUL-terminated string and `attr` a valid
    // mount_attr of the size we pass; the kernel only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Joins a new anonymous session keyring (keyctl(KEYCTL_JOIN_SESSION_KEYRING)),
/// so the container does not share the caller's keys.
pub fn join_session_keyring(name: &str) -> io::Result<()> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: `c` is a valid NUL-terminated string the kernel only reads.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, c.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Marks every fd from `first` upwards close-on-exec (close_range(2)).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags; no memory is involved.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Clears close-on-exec on `fd`, so it survives into the container process.
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    // SAFETY: the fd is only used for the duration of this call; a closed
    // fd number makes fcntl fail with EBADF, which we return.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    fcntl(b, FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok(())
}

/// Makes `fd` the controlling terminal of the calling session (TIOCSCTTY).
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument, no memory.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the NIS domain name of the calling UTS namespace.
pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`, which the kernel only reads.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Duplicates `fd` onto `target` (dup3 without O_CLOEXEC), closing what was there.
pub fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the fd table; `fd` is open for the call.
    let r = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of a raw fd that the caller knows to be open and unowned.
///
/// # Safety
/// `fd` must be open and not owned by anything else.
pub unsafe fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn cstring(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// setrlimit(2) for any resource, including those nix has no name for.
pub fn setrlimit(resource: libc::__rlimit_resource_t, lim: &libc::rlimit) -> io::Result<()> {
    // SAFETY: `lim` points to a valid rlimit that the kernel only reads.
    let r = unsafe { libc::setrlimit(resource, lim) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

extern "C" fn exit_on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

/// The signals a waiting container init dies of, as a Go-based runc init
/// would: as pid 1 of a pid namespace it would otherwise ignore them.
pub const INIT_EXIT_SIGNALS: [nix::sys::signal::Signal; 6] = {
    use nix::sys::signal::Signal::*;
    [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]
};

/// Makes each of `signals` end the process with status 128+signal.
pub fn exit_on_signals(signals: &[nix::sys::signal::Signal]) -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let act = SigAction::new(SigHandler::Handler(exit_on_signal), SaFlags::empty(), SigSet::empty());
    for s in signals {
        // SAFETY: the handler only calls _exit, which is async-signal-safe.
        unsafe { sigaction(*s, &act) }?;
    }
    Ok(())
}

/// Restores the default disposition of `signals` (before execve; handlers
/// would be reset by exec anyway, ignored signals would not).
pub fn default_signals(signals: &[nix::sys::signal::Signal]) -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let act = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in signals {
        // SAFETY: installing SIG_DFL runs no code of ours.
        unsafe { sigaction(*s, &act) }?;
    }
    Ok(())
}

/// A pidfd for `pid` (pidfd_open(2)): signals through it can never reach a
/// process that reused the pid.
pub fn pidfd_open(pid: nix::unistd::Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes no pointers and returns a new fd we own.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(r).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The user namespace that owns the namespace open as `ns`
/// (ioctl NS_GET_USERNS).
pub fn ns_owner(ns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // _IO(0xb7, 0x1)
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    // SAFETY: this ioctl takes no argument and returns a new fd we own.
    let r = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS as libc::Ioctl) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Sends `sig` through a pidfd (pidfd_send_signal(2)).
pub fn pidfd_kill(pidfd: BorrowedFd<'_>, sig: nix::sys::signal::Signal) -> io::Result<()> {
    // SAFETY: no pointers besides a null siginfo, which the call allows.
    let r = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig as libc::c_int, std::ptr::null::<u8>(), 0)
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ignores `sig` (e.g. SIGPIPE while writing to a pipe whose reader may be gone).
pub fn ignore_signal(sig: nix::sys::signal::Signal) -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let act = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_IGN runs no code of ours.
    unsafe { sigaction(sig, &act) }.map(drop)
}

/// Whether `fd` is open in this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer; on a closed fd it fails with EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// A new procfs instance showing only the pid directories (`subset=pid`,
/// Linux 5.8), as a detached mount: an fd to its root and no mount point
/// anywhere. No /proc/sys, no host-wide files; needs CAP_SYS_ADMIN.
pub fn procfs_pids_only() -> io::Result<OwnedFd> {
    procfs_instance(true)
}

/// A new procfs instance of the caller's pid namespace as a detached mount
/// (an fd to its root, no mount point anywhere); `pids_only` as above.
pub fn procfs_instance(pids_only: bool) -> io::Result<OwnedFd> {
    let params: &[(&CStr, Option<&CStr>)] = if pids_only { &[(c"subset", Some(c"pid"))] } else { &[] };
    new_mount(c"proc", params, 0)
}

/// MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC
pub const MOUNT_ATTR_NOSUID_NODEV_NOEXEC: u32 = 0x2 | 0x4 | 0x8;
/// MOUNT_ATTR_RDONLY, for [`new_mount`]
pub const MOUNT_ATTR_RDONLY_FLAG: u32 = 0x1;

/// A detached copy of the mount at `path` and everything mounted below it
/// (open_tree with OPEN_TREE_CLONE | AT_RECURSIVE).
pub fn clone_tree(path: &Path) -> io::Result<OwnedFd> {
    clone_mount(path, true)
}

/// A detached copy of the mount at `path` (a bind mount of it, as it would
/// be made there), with the mounts below it when `recursive`.
pub fn clone_mount(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let p = cstring(path)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the path is NUL-terminated and only read; returns a new fd.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, p.as_ptr(), flags) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(r).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new filesystem instance as a detached mount (fsopen, fsconfig,
/// fsmount): an fd to its root, no mount point anywhere. `params` are
/// string options, or flags when the value is `None`.
pub fn new_mount(fstype: &CStr, params: &[(&CStr, Option<&CStr>)], attr_flags: u32) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let check = |r: libc::c_long| -> io::Result<RawFd> {
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        RawFd::try_from(r).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
    };
    // SAFETY: the string is NUL-terminated and only read; returns a new fd.
    let fs = check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs) };
    for (key, value) in params {
        let (cmd, v) = match value {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: key (and value, if any) are NUL-terminated strings the kernel only reads.
        check(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, key.as_ptr(), v, 0) })?;
    }
    // SAFETY: CMD_CREATE takes no pointers (null key and value).
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: fsmount takes the fs context fd and flags; returns a new fd.
    let m = check(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attr_flags) })?;
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(m) })
}

/// Attaches a detached mount (from [`new_mount`]) at `target`.
pub fn move_mount_to(mnt: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let t = cstring(target)?;
    // SAFETY: both strings are NUL-terminated and only read for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Closes every fd from 3 up except those in `keep` and regular files (a
/// log file the process still writes to). For helper processes that were
/// forked, not exec'd, and must not carry their parent's directories,
/// sockets and pipes into confinement.
pub fn close_inherited_fds(keep: &[RawFd]) -> io::Result<()> {
    let mut fds: Vec<RawFd> = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd")?.flatten() {
        if let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) {
            fds.push(fd);
        }
    }
    for fd in fds.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: fstat writes into a local struct; a stale fd number (the
        // read_dir fd itself, already closed) just fails with EBADF.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: see above.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            continue;
        }
        // (a log file, not a namespace, a cgroup or a /proc file: those
        // look like regular files too)
        if st.st_mode & libc::S_IFMT == libc::S_IFREG && !on_kernel_fs(fd) {
            continue;
        }
        // SAFETY: nothing in this process uses `fd` after this point (it is
        // not in `keep`, and the process is single-threaded).
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Whether `fd` lies on one of the kernel's own filesystems (nsfs, procfs,
/// sysfs, cgroupfs), whose files are not a log a helper may keep.
fn on_kernel_fs(fd: RawFd) -> bool {
    const KERNEL_FS: &[i64] = &[0x6e73_6673, 0x9fa0, 0x6265_6572, 0x0027_e0eb, 0x6367_7270];
    // SAFETY: fstatfs writes into a local struct; a stale fd fails with EBADF.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    let r = unsafe { libc::fstatfs(fd, &mut st) };
    r == 0 && KERNEL_FS.contains(&st.f_type)
}
