//! Passing fds over unix sockets (SCM_RIGHTS): the one implementation that
//! the parent/child channel, the console socket, the seccomp listener and
//! the Sentry's control socket share.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Sends `payload`, with `fd` attached when given. A closed peer is an
/// error (EPIPE), never a SIGPIPE.
pub fn send(sock: BorrowedFd<'_>, payload: &[u8], fd: Option<BorrowedFd<'_>>) -> nix::Result<()> {
    send_many(sock, payload, fd.as_slice())
}

/// Sends `payload` with every fd of `fds` attached.
pub fn send_many(sock: BorrowedFd<'_>, payload: &[u8], fds: &[BorrowedFd<'_>]) -> nix::Result<()> {
    let iov = [IoSlice::new(payload)];
    let fds: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg: Vec<ControlMessage> = if fds.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(&fds)] };
    // (the flags mark it as moat's own to the sentry platform's filter)
    let flags = MsgFlags::from_bits_retain(moat_sentry::platform::filter::OWN_SEND_FLAGS as i32);
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, flags, None).map(drop)
}

/// Receives one message into `buf`: its length (0 at EOF) and the first fd
/// that came with it (close-on-exec; any others are closed).
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<(usize, Option<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        let flags = MsgFlags::from_bits_retain(moat_sentry::platform::filter::OWN_RECV_FLAGS as i32);
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    let mut fd = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(v) = c {
            for f in v {
                // SAFETY: the kernel just installed this fd for us; nothing else owns it.
                let owned = unsafe { moat_jail::sys::own_fd(f) };
                fd.get_or_insert(owned);
            }
        }
    }
    Ok((msg.bytes, fd))
}
