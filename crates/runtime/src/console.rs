//! Terminals: a pty allocated inside the container, its master sent to the
//! caller over `--console-socket` (SCM_RIGHTS, as runc does), or proxied to
//! moat's own stdio for a foreground `moat run -t`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, Winsize};
use nix::sys::stat::Mode;

use crate::{Error, Result};

/// A new pty: (master, slave), opened through the container's /dev/ptmx.
pub fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let master =
        posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(|e| Error::io("open /dev/ptmx", e))?;
    grantpt(&master).map_err(|e| Error::io("grantpt", e))?;
    unlockpt(&master).map_err(|e| Error::io("unlockpt", e))?;
    let name = ptsname_r(&master).map_err(|e| Error::io("ptsname", e))?;
    let slave = open(Path::new(&name), OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::io(format!("open {name}"), e))?;
    let master: OwnedFd = master.into();
    Ok((master, slave))
}

/// Sets a terminal's window size.
pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<()> {
    let ws = Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    moat_sys_winsize(fd, &ws).map_err(|e| Error::io("set window size", e))
}

fn moat_sys_winsize(fd: BorrowedFd<'_>, ws: &Winsize) -> nix::Result<()> {
    nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, Winsize);
    // SAFETY: `ws` is a valid Winsize the kernel only reads; fd is open.
    unsafe { tiocswinsz(fd.as_raw_fd(), ws) }.map(drop)
}

/// Sends the pty master over the console socket (named /dev/ptmx, as runc does).
pub fn send_master(socket: BorrowedFd<'_>, master: BorrowedFd<'_>) -> Result<()> {
    crate::fdpass::send(socket, b"/dev/ptmx", Some(master))
        .map_err(|e| Error::io("send pty master to console socket", e))
}

/// Makes `slave` the calling process's controlling terminal and stdio.
pub fn attach_stdio(slave: BorrowedFd<'_>) -> Result<()> {
    moat_jail::sys::set_controlling_tty(slave).map_err(|e| Error::io("TIOCSCTTY", e))?;
    for target in 0..3 {
        moat_jail::sys::dup_onto(slave, target).map_err(|e| Error::io("dup pty onto stdio", e))?;
    }
    Ok(())
}

/// Connects to a caller's console socket.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s =
        UnixStream::connect(path).map_err(|e| Error::io(format!("connect to console socket {}", path.display()), e))?;
    Ok(s.into())
}

/// Receives a pty master sent over a console socket.
pub fn recv_master(sock: BorrowedFd<'_>) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let (_, fd) = crate::fdpass::recv(sock, &mut buf).map_err(|e| Error::io("receive pty master", e))?;
    fd.ok_or_else(|| Error::Init("console socket closed without a pty master".into()))
}

/// Copies between moat's stdin/stdout and a pty master until the master
/// hangs up (the container's side closed). Puts a terminal stdin in raw mode
/// for the duration, and passes window-size changes on.
pub fn proxy(master: OwnedFd) -> Result<()> {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(stdin.as_fd()).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        copy_winsize(stdin.as_fd(), master.as_fd());
    }
    let m2 = master.try_clone().map_err(|e| Error::io("dup pty master", e))?;
    // stdin → master on a thread of its own; it ends with the process
    std::thread::spawn(move || {
        let mut inp = std::io::stdin();
        let mut out = std::fs::File::from(m2);
        let _ = std::io::copy(&mut inp, &mut out);
    });
    let mut from = std::fs::File::from(master);
    let mut out = std::io::stdout();
    // EIO from the master means the last slave fd closed: the program ended
    let _ = std::io::copy(&mut from, &mut out);
    if let Some(t) = &saved {
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, t);
    }
    Ok(())
}

/// Copies the window size of `from` (a terminal) to `to` (a pty master).
pub fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, Winsize);
    let mut ws = Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: `ws` is a valid, writable Winsize; the fd is open.
    if unsafe { tiocgwinsz(from.as_raw_fd(), &mut ws) }.is_ok() {
        let _ = moat_sys_winsize(to, &ws);
    }
}
