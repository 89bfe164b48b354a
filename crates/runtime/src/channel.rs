//! The message channel between a moat command and the processes it forks
//! (stage 1 and the container's init): a SOCK_SEQPACKET socketpair carrying
//! one JSON message per packet, optionally with one fd (SCM_RIGHTS).

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A message between moat and its children.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    /// parent → stage 1: the cgroup is joined, go on; parent → init: stage 1
    /// has reported and exited, go on
    Go,
    /// stage 1 → parent: the new user namespace exists; write its maps
    UserNsReady,
    /// parent → stage 1: maps written
    MapsWritten,
    /// stage 1 → parent: the container init's host pid
    InitPid(i32),
    /// init → parent: mounts are set up; run createRuntime hooks
    MountsReady,
    /// parent → init: hooks done; the OCI state for createContainer hooks
    HooksDone(String),
    /// init → parent: the seccomp notify fd is attached
    SeccompFd,
    /// init → parent (sentry): the Sentry's instance of "proc" or "sysfs" (with the fd)
    Backing(String),
    /// init → parent (sentry): start the Sentry now (then its mounts, then Go, back)
    SpawnSentry,
    /// parent → init (sentry): the Sentry's FUSE mount of "proc" or "sysfs" (with the fd)
    PseudoMount(String),
    /// init → parent (sentry): the file tree is complete; hand it to the
    /// Sentry (then Go, back, and init turns its own view into the replica)
    TreeReady,
    /// parent → init (sentry, `--directfs=false`): the root of the replica,
    /// a FUSE mount the Sentry serves from the gofer (with the fd; before Go)
    ReplicaRoot,
    /// init → parent: everything is ready; waiting for start
    Ready,
    /// any → parent: a step failed
    Error(String),
}

/// One end of the channel.
pub struct Channel {
    fd: OwnedFd,
}

const MAX_MSG: usize = 64 * 1024;

impl Channel {
    /// A connected pair (both ends close-on-exec).
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| Error::io("socketpair", e))?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Its fd's number (the Sentry's filter lets its messages through).
    pub fn raw(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }

    /// Sends a message.
    pub fn send(&self, m: &Msg) -> Result<()> {
        self.send_with_fd(m, None)
    }

    /// Sends a message with an fd attached.
    pub fn send_with_fd(&self, m: &Msg, fd: Option<std::os::fd::BorrowedFd<'_>>) -> Result<()> {
        let buf = serde_json::to_vec(m).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::fdpass::send(self.fd.as_fd(), &buf, fd).map_err(|e| Error::io("send to channel", e))
    }

    /// Receives a message (and an fd, if one came with it). EOF is an error
    /// that says the other side died.
    pub fn recv_with_fd(&self) -> Result<(Msg, Option<OwnedFd>)> {
        match self.recv_or_eof()? {
            Some(m) => Ok(m),
            None => Err(Error::Init("container process exited during setup".into())),
        }
    }

    /// Receives a message, or `None` when every other end has closed (for
    /// `exec`, that is how a successful execve shows: close-on-exec).
    pub fn recv_or_eof(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let (n, fd) =
            crate::fdpass::recv(self.fd.as_fd(), &mut buf).map_err(|e| Error::io("receive from channel", e))?;
        if n == 0 {
            return Ok(None);
        }
        let m: Msg =
            serde_json::from_slice(&buf[..n]).map_err(|e| Error::Invalid(format!("bad channel message: {e}")))?;
        Ok(Some((m, fd)))
    }

    /// Receives a message.
    pub fn recv(&self) -> Result<Msg> {
        Ok(self.recv_with_fd()?.0)
    }

    /// Receives a message and checks it is `want`; an `Error` message turns
    /// into an error.
    pub fn expect(&self, want: &Msg) -> Result<()> {
        match self.recv()? {
            m if &m == want => Ok(()),
            Msg::Error(e) => Err(Error::Init(e)),
            other => Err(Error::Init(format!("unexpected message {other:?} (wanted {want:?})"))),
        }
    }

    /// The underlying fd.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
