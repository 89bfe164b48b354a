//! A stub's memory.
//!
//! Writes go through its /proc/TID/mem, opened *before* the notification
//! is checked to be still live: once the check passes, the open file refers
//! to the caller's address space for good, even if the caller dies and its
//! tid is reused by another process a moment later (writing by tid, as
//! process_vm_writev does, could then reach that other process). procfs is
//! reached through a directory fd opened before the Sentry was confined.
//!
//! Reads, far more frequent (every path argument is looked at), use
//! process_vm_readv by tid — one call instead of open, read, close — and
//! check the notification *after* reading: if it is still live, the caller
//! was alive throughout, so its tid was never reused and the bytes are its
//! own; if not, they are discarded.

use std::cell::OnceCell;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

use crate::syscalls::Memory;

/// The memory of one stub thread, opened on first use.
pub struct ProcMem<'a> {
    proc: BorrowedFd<'a>,
    tid: u32,
    notify: BorrowedFd<'a>,
    id: u64,
    file: OnceCell<Result<File, Errno>>,
    /// `tid` is of another pid namespace than the Sentry's (a call another
    /// Sentry forwarded): reads go through the file too, never by tid
    foreign: bool,
}

impl<'a> ProcMem<'a> {
    /// The memory of `tid`, the caller of notification `id` on `notify`.
    pub fn new(proc: BorrowedFd<'a>, tid: u32, notify: BorrowedFd<'a>, id: u64) -> ProcMem<'a> {
        ProcMem { proc, tid, notify, id, file: OnceCell::new(), foreign: false }
    }

    /// The memory of a caller of another sandbox, whose Sentry forwarded
    /// its call: `proc` is that sandbox's procfs, where `tid` names it.
    pub fn forwarded(proc: BorrowedFd<'a>, tid: u32, notify: BorrowedFd<'a>, id: u64) -> ProcMem<'a> {
        ProcMem { foreign: true, ..ProcMem::new(proc, tid, notify, id) }
    }

    /// Opens `/proc/<tid>/mem`, then checks the notification is still live:
    /// from then on the file is the caller's whatever happens to its tid.
    fn file(&self) -> Result<&File, Errno> {
        let r = self.file.get_or_init(|| {
            let fd = open_proc_file(self.proc, self.tid, "mem", OFlag::O_RDWR)?;
            libseccomp::notify_id_valid(self.notify.as_raw_fd(), self.id).map_err(|_| Errno::ESRCH)?;
            Ok(File::from(fd))
        });
        r.as_ref().map_err(|e| *e)
    }
}

/// The caller's error for a failed access to its memory through
/// /proc/TID/mem: an address it has no page at reads EIO there (or short),
/// where the system call it made would have failed with EFAULT.
fn mem_error(e: std::io::Error) -> Errno {
    match e.raw_os_error() {
        None | Some(libc::EIO) => Errno::EFAULT,
        Some(n) => Errno::from_raw(n),
    }
}

impl Memory for ProcMem<'_> {
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.file()?.write_all_at(data, addr).map_err(mem_error)
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if self.foreign {
            return self.file()?.read_exact_at(buf, addr).map_err(mem_error);
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.tid).map_err(|_| Errno::ESRCH)?);
        let len = buf.len();
        let addr = usize::try_from(addr).map_err(|_| Errno::EFAULT)?;
        let n = nix::sys::uio::process_vm_readv(
            pid,
            &mut [std::io::IoSliceMut::new(buf)],
            &[nix::sys::uio::RemoteIoVec { base: addr, len }],
        )?;
        libseccomp::notify_id_valid(self.notify.as_raw_fd(), self.id).map_err(|_| Errno::ESRCH)?;
        if n != len {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }
}

/// Opens /proc/`tid`/`name` below the Sentry's procfs `proc`. The caller
/// checks its notification is still live after, so the file is known to be
/// the caller's.
pub(crate) fn open_proc_file(proc: BorrowedFd<'_>, tid: u32, name: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    openat(proc, format!("{tid}/{name}").as_str(), flags | OFlag::O_CLOEXEC, Mode::empty())
}

/// Takes ownership of an fd the kernel just installed for us (SCM_RIGHTS).
pub(crate) fn adopt(raw: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    // SAFETY: `raw` was just received with SCM_RIGHTS; nothing else owns it.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) }
}

/// An ioctl whose argument is a plain integer (SECCOMP_IOCTL_NOTIF_SET_FLAGS).
pub(crate) fn ioctl_u64(fd: std::os::fd::BorrowedFd<'_>, request: u64, arg: u64) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: the request takes its argument by value; no memory is passed.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as libc::Ioctl, arg) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}
