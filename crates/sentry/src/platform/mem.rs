//! A stub's memory, through process_vm_readv/writev (no ptrace stop needed).

use std::io::{IoSlice, IoSliceMut};

use nix::errno::Errno;
use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

use crate::syscalls::Memory;

/// The memory of one stub thread.
pub struct ProcMem {
    /// host tid of the caller
    pub pid: u32,
}

impl ProcMem {
    fn pid(&self) -> Result<Pid, Errno> {
        Ok(Pid::from_raw(i32::try_from(self.pid).map_err(|_| Errno::ESRCH)?))
    }
}

fn remote(addr: u64, len: usize) -> Result<RemoteIoVec, Errno> {
    Ok(RemoteIoVec { base: usize::try_from(addr).map_err(|_| Errno::EFAULT)?, len })
}

impl Memory for ProcMem {
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let n = process_vm_writev(self.pid()?, &[IoSlice::new(data)], &[remote(addr, data.len())?])?;
        if n == data.len() {
            Ok(())
        } else {
            Err(Errno::EFAULT)
        }
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let len = buf.len();
        let n = process_vm_readv(self.pid()?, &mut [IoSliceMut::new(buf)], &[remote(addr, len)?])?;
        if n == len {
            Ok(())
        } else {
            Err(Errno::EFAULT)
        }
    }
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
