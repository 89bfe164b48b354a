//! A stub's file descriptors: taking a copy of one (pidfd_getfd), and
//! installing one of the Sentry's files as the result of its call
//! (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND, which answers
//! the notification in the same step).
//!
//! As with memory (platform::mem), the caller is pinned first (a pidfd)
//! and the notification checked to be live after: a reused tid can never
//! be reached.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

use super::tasks::{Forget, Tasks};
use super::workers::Workers;
use crate::syscalls::{Fds, Reply, Task};

/// SECCOMP_IOCTL_NOTIF_ADDFD: _IOW('!', 3, struct seccomp_notif_addfd)
const NOTIF_ADDFD: u64 = 0x4018_2103;
/// SECCOMP_ADDFD_FLAG_SEND: install and answer the call with the new fd
const ADDFD_FLAG_SEND: u32 = 1 << 1;
/// PIDFD_THREAD (Linux 6.9): a pidfd of a thread, not just of a leader
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// struct seccomp_notif_addfd
#[repr(C)]
struct AddFd {
    id: u64,
    flags: u32,
    srcfd: u32,
    newfd: u32,
    newfd_flags: u32,
}

/// The fds of the caller of notification `id`.
pub struct StubFds<'a> {
    proc: BorrowedFd<'a>,
    tid: u32,
    notify: BorrowedFd<'a>,
    id: u64,
    loop_: Loop<'a>,
    /// a pidfd of the caller's thread, for a call another Sentry forwarded
    /// (its tid is of another pid namespace's)
    pidfd: Option<BorrowedFd<'a>>,
}

/// What the notify loop keeps between calls.
#[derive(Clone, Copy)]
pub struct Loop<'a> {
    /// the threads that run what may block
    pub workers: &'a Workers,
    /// the stubs' threads' remembered credentials
    pub tasks: &'a Tasks,
}

impl<'a> StubFds<'a> {
    /// The fds of `tid`, the caller of notification `id` on `notify`;
    /// `proc` is the Sentry's procfs (to reopen its own fds).
    pub fn new(proc: BorrowedFd<'a>, tid: u32, notify: BorrowedFd<'a>, id: u64, loop_: Loop<'a>) -> StubFds<'a> {
        StubFds { proc, tid, notify, id, loop_, pidfd: None }
    }

    /// The fds of a caller of another sandbox of the pod, whose Sentry
    /// forwarded its call ([`super::guest`]): `proc` is that sandbox's
    /// procfs, `pidfd` the caller's thread's. (Only what network calls use
    /// works: the Sentry's own fds are not in that procfs, so reopening or
    /// naming one fails with ENOSYS.)
    pub fn forwarded(
        proc: BorrowedFd<'a>,
        tid: u32,
        notify: BorrowedFd<'a>,
        id: u64,
        loop_: Loop<'a>,
        pidfd: BorrowedFd<'a>,
    ) -> StubFds<'a> {
        StubFds { proc, tid, notify, id, loop_, pidfd: Some(pidfd) }
    }

    /// A pidfd of the caller's thread.
    fn thread_pidfd(&self) -> Result<OwnedFd, Errno> {
        match self.pidfd {
            Some(p) => p.try_clone_to_owned().map_err(|_| Errno::EMFILE),
            None => pidfd_of_thread(self.tid),
        }
    }
}

fn check(r: libc::c_long) -> Result<RawFd, Errno> {
    if r < 0 {
        return Err(Errno::last());
    }
    RawFd::try_from(r).map_err(|_| Errno::EINVAL)
}

/// pidfd_open(2) of a thread.
pub(super) fn pidfd_of_thread(tid: u32) -> Result<OwnedFd, Errno> {
    pidfd_open(tid, PIDFD_THREAD)
}

/// pidfd_open(2) of a process: it polls readable once every thread of it
/// has ended.
fn pidfd_of_process(tgid: u32) -> Result<OwnedFd, Errno> {
    pidfd_open(tgid, 0)
}

fn pidfd_open(pid: u32, flags: libc::c_uint) -> Result<OwnedFd, Errno> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| Errno::ESRCH)?;
    // SAFETY: pidfd_open takes a pid and flags, no memory; returns a new fd.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) })?;
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// PIDFD_GET_INFO: _IOWR(0xFF, 11, struct pidfd_info), its first version (64 bytes)
const PIDFD_GET_INFO: u64 = 0xC040_FF0B;
/// PIDFD_INFO_PID: ask for the pid, tgid and ppid
const PIDFD_INFO_PID: u64 = 1;

/// struct pidfd_info, first version
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ids: [u32; 8],
    exit_code: i32,
    spare: [u32; 2],
}

/// The process (thread group) of the thread behind `pidfd`, as the
/// Sentry's pid namespace numbers it.
fn pidfd_tgid(pidfd: BorrowedFd<'_>) -> Result<u32, Errno> {
    let mut info = PidfdInfo { mask: PIDFD_INFO_PID, ..Default::default() };
    // SAFETY: `info` is a live, writable struct pidfd_info of the size the
    // request number encodes; the kernel writes at most that much.
    let r = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_INFO as libc::Ioctl, &mut info as *mut PidfdInfo) };
    if r < 0 {
        return Err(Errno::last());
    }
    if info.mask & PIDFD_INFO_PID == 0 || info.tgid == 0 {
        return Err(Errno::ENOTSUP);
    }
    Ok(info.tgid)
}

/// The process id a /proc/TID/status text gives.
fn tgid_in(status: &str) -> Option<u32> {
    crate::fs::proxy::field(status, "Tgid:").and_then(|v| v.trim().parse().ok())
}

/// pidfd_getfd(2): a duplicate of `fd` of the process behind `pidfd`.
fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_getfd takes two fds and flags, no memory; returns a new fd.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })?;
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// SECCOMP_IOCTL_NOTIF_ADDFD.
fn addfd(notify: BorrowedFd<'_>, arg: &AddFd) -> Result<i64, Errno> {
    // SAFETY: `arg` points to a live struct seccomp_notif_addfd that the
    // kernel only reads for the duration of the call.
    let r = unsafe { libc::ioctl(notify.as_raw_fd(), NOTIF_ADDFD as libc::Ioctl, arg as *const AddFd) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(i64::from(r))
}

impl StubFds<'_> {
    /// The target of the caller's /proc/TID/`name` link (a path of the
    /// container's tree), checked to be the caller's after.
    fn link(&self, name: &str) -> Result<Vec<u8>, Errno> {
        let link = nix::fcntl::readlinkat(self.proc, format!("{}/{name}", self.tid).as_str())?;
        libseccomp::notify_id_valid(self.notify.as_raw_fd(), self.id).map_err(|_| Errno::ESRCH)?;
        Ok(link.into_encoded_bytes())
    }

    /// What the caller's /proc/TID/`name` link leads to, opened O_PATH,
    /// checked to be the caller's after.
    fn link_file(&self, name: &str) -> Result<OwnedFd, Errno> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = openat(self.proc, format!("{}/{name}", self.tid).as_str(), flags, Mode::empty())?;
        libseccomp::notify_id_valid(self.notify.as_raw_fd(), self.id).map_err(|_| Errno::ESRCH)?;
        Ok(fd)
    }

    /// The caller's process id: from a pidfd (PIDFD_GET_INFO, Linux 6.13;
    /// cheap), else from /proc/TID/status.
    fn tgid(&self) -> Option<u32> {
        // (PIDFD_GET_INFO numbers it in the Sentry's pid namespace: not a
        // forwarded caller's)
        let from_pidfd = match self.pidfd {
            Some(_) => Err(Errno::ENOTSUP),
            None => pidfd_of_thread(self.tid).and_then(|p| pidfd_tgid(p.as_fd())),
        };
        let tgid = match from_pidfd {
            Ok(t) => t,
            Err(_) => tgid_in(&self.status().ok()?)?,
        };
        libseccomp::notify_id_valid(self.notify.as_raw_fd(), self.id).ok()?;
        Some(tgid)
    }

    /// The caller's /proc/TID/status.
    fn status(&self) -> Result<String, Errno> {
        self.proc_text("status")
    }

    /// The caller's /proc/TID/`name`, a text file, checked to be the caller's after.
    fn proc_text(&self, name: &str) -> Result<String, Errno> {
        let fd = super::mem::open_proc_file(self.proc, self.tid, name, OFlag::O_RDONLY)?;
        let mut text = String::new();
        // through take(): a plain File would ask statx for a size hint, which the Sentry may not call
        std::io::Read::read_to_string(&mut std::io::Read::take(std::fs::File::from(fd), 1 << 16), &mut text)
            .map_err(|_| Errno::EIO)?;
        // the file was the caller's if the notification is still live
        libseccomp::notify_id_valid(self.notify.as_raw_fd(), self.id).map_err(|_| Errno::ESRCH)?;
        Ok(text)
    }
}

impl Task for StubFds<'_> {
    fn effective_caps(&self) -> Result<u64, Errno> {
        let text = self.status()?;
        crate::fs::proxy::field(&text, "CapEff:").and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).ok_or(Errno::EIO)
    }

    fn creds(&self) -> Result<crate::vfs::creds::Creds, Errno> {
        // the caller is `tid` (its notification is live); a remembered
        // entry whose thread still lives is the caller's
        libseccomp::notify_id_valid(self.notify.as_raw_fd(), self.id).map_err(|_| Errno::ESRCH)?;
        if let Some(c) = self.loop_.tasks.creds(self.tid) {
            return Ok(c);
        }
        let text = self.status()?;
        let creds = crate::vfs::creds::Creds::parse(&text).ok_or(Errno::EIO)?;
        let tgid = tgid_in(&text).ok_or(Errno::EIO)?;
        // the leader of a process with other threads is not remembered: an
        // exec by one of them takes over the leader's tid (and pidfd) with
        // new credentials
        let threads = crate::fs::proxy::field(&text, "Threads:").and_then(|v| v.trim().parse::<u32>().ok());
        if self.tid == tgid && threads != Some(1) {
            return Ok(creds);
        }
        // pinned while the caller waits on us: its credentials cannot change meanwhile
        let pidfd = self.thread_pidfd()?;
        libseccomp::notify_id_valid(self.notify.as_raw_fd(), self.id).map_err(|_| Errno::ESRCH)?;
        self.loop_.tasks.remember(self.tid, tgid, pidfd, creds.clone());
        Ok(creds)
    }

    fn cwd(&self) -> Result<Vec<u8>, Errno> {
        self.link("cwd")
    }

    fn cwd_file(&self) -> Result<OwnedFd, Errno> {
        self.link_file("cwd")
    }

    fn root_file(&self) -> Result<OwnedFd, Errno> {
        self.link_file("root")
    }

    fn file_size_limit(&self) -> Result<Option<u64>, Errno> {
        let text = self.proc_text("limits")?;
        let soft = crate::fs::proxy::field(&text, "Max file size")
            .and_then(|v| v.split_whitespace().next())
            .ok_or(Errno::EIO)?;
        Ok(soft.parse().ok())
    }

    fn exe(&self) -> Result<Vec<u8>, Errno> {
        self.link("exe")
    }

    fn root(&self) -> Result<Vec<u8>, Errno> {
        self.link("root")
    }

    fn forget(&self, what: Forget) {
        // the process is read fresh: the thread may not be remembered, its
        // leader may be (an exec by another thread takes the leader's tid)
        let tgid = match what {
            Forget::Thread => None,
            _ => self.tgid(),
        };
        if let (Forget::Process, Some(g)) = (what, tgid) {
            if g != self.tid {
                // (gone already: then nothing of it calls again)
                if let Ok(p) = self.thread_pidfd() {
                    self.loop_.tasks.exec_pending(g, p);
                }
            }
        }
        match tgid {
            Some(g) if what == Forget::ForGood => {
                self.loop_.tasks.forget(self.tid, g, what);
                // kept until the process ends (a pid may come back for another)
                self.loop_.tasks.volatile_until(g, pidfd_of_process(g).ok());
            }
            Some(g) => self.loop_.tasks.forget(self.tid, g, what),
            // unknown: forget everything rather than too little
            None if what != Forget::Thread => self.loop_.tasks.forget_all(),
            None => self.loop_.tasks.forget(self.tid, 0, Forget::Thread),
        }
    }
}

impl Fds for StubFds<'_> {
    fn get(&self, fd: i32) -> Result<OwnedFd, Errno> {
        let pidfd = self.thread_pidfd()?;
        libseccomp::notify_id_valid(self.notify.as_raw_fd(), self.id).map_err(|_| Errno::ESRCH)?;
        pidfd_getfd(pidfd.as_fd(), fd)
    }

    fn reopen_into_caller(&self, file: OwnedFd, flags: OFlag, cloexec: bool) -> Result<Reply, Errno> {
        // (the Sentry's own fds are not in a forwarded caller's procfs)
        if self.pidfd.is_some() {
            return Err(Errno::ENOSYS);
        }
        let fifo = nix::sys::stat::fstat(file.as_fd())
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO && !flags.contains(OFlag::O_NONBLOCK));
        let proc = self.proc.try_clone_to_owned().map_err(|_| Errno::EMFILE)?;
        let id = self.id;
        let job = move |notify: BorrowedFd<'_>| -> Result<i64, Errno> {
            let ours = reopen(proc.as_fd(), file.as_fd(), flags)?;
            install(notify, id, ours.as_fd(), cloexec)
        };
        if fifo {
            // opening a FIFO waits for its other end: not on the loop's thread
            self.loop_.workers.spawn(self.notify, id, move |n| job(n).map(|_| ()))?;
            return Ok(Reply::Pending);
        }
        job(self.notify).map(Reply::Answered)
    }

    fn install(&self, file: OwnedFd, cloexec: bool) -> Result<Reply, Errno> {
        install(self.notify, self.id, file.as_fd(), cloexec).map(Reply::Answered)
    }

    fn place(&self, file: OwnedFd, cloexec: bool) -> Result<i32, Errno> {
        let fd = add_to_caller(self.notify, self.id, file.as_fd(), cloexec, 0)?;
        i32::try_from(fd).map_err(|_| Errno::EBADF)
    }

    fn path_of(&self, ours: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
        if self.pidfd.is_some() {
            return Err(Errno::ENOSYS);
        }
        Ok(nix::fcntl::readlinkat(self.proc, own_link(ours).as_str())?.into_encoded_bytes())
    }

    fn later(&self, job: crate::syscalls::LaterJob) -> Result<Reply, Errno> {
        let proc = self.proc.try_clone_to_owned().map_err(|_| Errno::EMFILE)?;
        let (tid, id, foreign) = (self.tid, self.id, self.pidfd.is_some());
        self.loop_.workers.spawn(self.notify, id, move |notify| {
            let mem = match foreign {
                true => super::mem::ProcMem::forwarded(proc.as_fd(), tid, notify, id),
                false => super::mem::ProcMem::new(proc.as_fd(), tid, notify, id),
            };
            match job(&Worker { mem: &mem, notify, id }) {
                Reply::Value(v) => libseccomp::ScmpNotifResp::new_val(id, v, libseccomp::ScmpNotifRespFlags::empty())
                    .respond(notify.as_raw_fd())
                    .map_err(|_| Errno::ENOENT),
                Reply::Error(e) => Err(e),
                Reply::Answered(_) => Ok(()),
                Reply::Continue | Reply::Pending => Err(Errno::EINVAL),
            }
        })?;
        Ok(Reply::Pending)
    }

    fn readlink_as_caller(&self, start: &str, rel: &[u8]) -> Result<std::ffi::OsString, Errno> {
        use std::os::unix::ffi::OsStrExt;
        let mut p = format!("{}/{start}/", self.tid).into_bytes();
        p.extend_from_slice(rel);
        let target = nix::fcntl::readlinkat(self.proc, std::ffi::OsStr::from_bytes(&p))?;
        libseccomp::notify_id_valid(self.notify.as_raw_fd(), self.id).map_err(|_| Errno::ESRCH)?;
        Ok(target)
    }
}

/// A caller as a worker answering its call has it.
struct Worker<'a> {
    mem: &'a super::mem::ProcMem<'a>,
    notify: BorrowedFd<'a>,
    id: u64,
}

impl crate::syscalls::Later for Worker<'_> {
    fn mem(&self) -> &dyn crate::syscalls::Memory {
        self.mem
    }

    fn install(&self, file: OwnedFd, cloexec: bool) -> Result<i64, Errno> {
        install(self.notify, self.id, file.as_fd(), cloexec)
    }
}

/// The name of the Sentry's magic link to its fd `ours`, in its procfs.
fn own_link(ours: BorrowedFd<'_>) -> String {
    format!("{}/fd/{}", std::process::id(), ours.as_raw_fd())
}

/// Opens `file` (one of the Sentry's fds) anew through `proc`, as open(2)
/// of its /proc/self/fd link would.
fn reopen(proc: BorrowedFd<'_>, file: BorrowedFd<'_>, flags: OFlag) -> Result<OwnedFd, Errno> {
    openat(proc, own_link(file).as_str(), flags, Mode::empty())
}

/// Installs `file` in the caller of notification `id` as its call's result.
fn install(notify: BorrowedFd<'_>, id: u64, file: BorrowedFd<'_>, cloexec: bool) -> Result<i64, Errno> {
    add_to_caller(notify, id, file, cloexec, ADDFD_FLAG_SEND)
}

/// ADDFD of `file` to the caller of notification `id`, with `flags`
/// (ADDFD_FLAG_SEND: as the call's result); the caller's new fd.
fn add_to_caller(
    notify: BorrowedFd<'_>,
    id: u64,
    file: BorrowedFd<'_>,
    cloexec: bool,
    flags: u32,
) -> Result<i64, Errno> {
    let srcfd = u32::try_from(file.as_raw_fd()).map_err(|_| Errno::EBADF)?;
    let newfd_flags = if cloexec { libc::O_CLOEXEC as u32 } else { 0 };
    addfd(notify, &AddFd { id, flags, srcfd, newfd: 0, newfd_flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_pidfd_tells_its_process() {
        let me = std::process::id();
        // from a thread other than the main one
        let got = std::thread::spawn(move || {
            let tid = nix::unistd::gettid().as_raw() as u32;
            assert_ne!(tid, me);
            pidfd_tgid(pidfd_of_thread(tid).unwrap().as_fd())
        })
        .join()
        .unwrap();
        assert_eq!(got, Ok(me));
    }
}
