//! The only `unsafe` of the crate: small safe wrappers over calls nix does not offer with the
//! flags we need (empty-path `*at` calls on `O_PATH` fds, getdents64, fd-based xattrs) and the
//! adoption of fds received with `SCM_RIGHTS`.

use std::ffi::CStr;
use std::io;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

const EMPTY: &CStr = c"";

fn check(ret: libc::c_long) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// Most fds one `recvmsg` accepts; a peer sending more gets them truncated (and closed by the
/// kernel, `MSG_CTRUNC`).
pub const MAX_FDS_PER_RECV: usize = 8;

/// `recvmsg(2)` into `buf`, adopting any `SCM_RIGHTS` fds (received close-on-exec) into `fds`.
/// Returns the bytes read (0 at end of stream).
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS_PER_RECV]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other.map_err(io::Error::from)?,
        }
    };
    let n = msg.bytes;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel has just installed `fd` in our table for this recvmsg
                // (SCM_RIGHTS); nothing else in the process knows the number, so we are its
                // only owner.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok(n)
}

/// `fchmodat2(fd, "", mode, AT_EMPTY_PATH)`: chmod through an `O_PATH` fd (Linux 6.6+), so the
/// server never resolves a name to change a mode.
pub fn fchmod_path_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall; `EMPTY` is a valid NUL-terminated string that outlives the call and
    // the kernel only reads it.
    let ret = unsafe { libc::syscall(libc::SYS_fchmodat2, fd.as_raw_fd(), EMPTY.as_ptr(), mode, libc::AT_EMPTY_PATH) };
    check(ret).map(drop)
}

/// A time for [`utimens_path_fd`]: leave, set to now, or set to the given value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTime {
    /// `UTIME_OMIT`.
    Omit,
    /// `UTIME_NOW`.
    Now,
    /// Seconds and nanoseconds.
    At(i64, i64),
}

impl SetTime {
    fn timespec(self) -> libc::timespec {
        match self {
            SetTime::Omit => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
            SetTime::Now => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
            SetTime::At(s, ns) => libc::timespec { tv_sec: s, tv_nsec: ns },
        }
    }
}

/// `utimensat(fd, "", times, AT_EMPTY_PATH)`: set times through an `O_PATH` fd.
pub fn utimens_path_fd(fd: BorrowedFd<'_>, atime: SetTime, mtime: SetTime) -> io::Result<()> {
    let times = [atime.timespec(), mtime.timespec()];
    // SAFETY: `times` is a valid array of two timespecs and `EMPTY` a valid C string, both alive
    // for the call; the kernel only reads them.
    let ret = unsafe { libc::utimensat(fd.as_raw_fd(), EMPTY.as_ptr(), times.as_ptr(), libc::AT_EMPTY_PATH) };
    check(ret.into()).map(drop)
}

/// `getdents64(2)` into `buf`; returns the bytes filled (0 at the end of the directory).
pub fn getdents64(dir: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which we borrow mutably for
    // the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    check(ret)
}

/// `fgetxattr(2)`; with an empty `buf` returns the value's size.
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `name` is a valid C string; the kernel writes at most `buf.len()` bytes to `buf`.
    let ret = unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    check(ret.try_into().unwrap_or(-1))
}

/// `flistxattr(2)`; with an empty `buf` returns the list's size.
pub fn flistxattr(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes to `buf`.
    let ret = unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    check(ret.try_into().unwrap_or(-1))
}

/// `fsetxattr(2)`.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    // SAFETY: `name` is a valid C string and `value` a valid slice; the kernel only reads them.
    let ret = unsafe { libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
    check(ret.into()).map(drop)
}

/// `fremovexattr(2)`.
pub fn fremovexattr(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid C string; the kernel only reads it.
    let ret = unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) };
    check(ret.into()).map(drop)
}

/// Adopts an fd number inherited from our parent (`moat gofer --fd N`),
/// checking that it is open and above stdio.
pub fn adopt_inherited_fd(fd: i32) -> io::Result<OwnedFd> {
    if fd < 3 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "fd must be above stdio"));
    }
    // SAFETY: F_GETFD takes no pointer; it only probes whether `fd` is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open (checked above) and was handed to this process
    // by its parent for this purpose; nothing else in the process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn received_fds_are_adopted() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let fds = [file.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        nix::sys::socket::sendmsg::<()>(a.as_raw_fd(), &[io::IoSlice::new(b"x")], &cmsg, MsgFlags::empty(), None)
            .unwrap();
        let mut buf = [0u8; 4];
        let mut got = Vec::new();
        assert_eq!(recv_with_fds(b.as_fd(), &mut buf, &mut got).unwrap(), 1);
        assert_eq!(got.len(), 1);
        let st = nix::sys::stat::fstat(&got[0]).unwrap();
        assert_eq!(st.st_ino, nix::sys::stat::fstat(&file).unwrap().st_ino);
    }
}
