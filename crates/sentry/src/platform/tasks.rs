//! What the Sentry remembers of the stubs' threads between calls: their
//! file credentials and root, so a served call that changes the tree need
//! not read /proc/TID/status (the costliest step of one) every time.
//!
//! An entry holds a pidfd of its thread (PIDFD_THREAD): once that thread
//! has ended, the pidfd polls readable and the entry is dropped, so a tid
//! the kernel reuses never inherits it. A thread's credentials change only
//! through its own calls, and every one of those reaches the Sentry first
//! (the set*id family, setgroups, capset, execve: [`crate::syscalls::ids`]),
//! which forgets the entry before the host makes the change. The umask and
//! the root belong to the fs_struct the threads of a process share: umask
//! and chroot forget the whole process. (A process that shares its
//! fs_struct with another without being one of its threads — clone with
//! CLONE_FS but not CLONE_THREAD — is not followed; its sibling's umask or
//! chroot reach the Sentry only when the sibling's own entry is refreshed.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::vfs::creds::Creds;

/// Entries kept before the dead ones are swept.
const SWEEP_AT: usize = 4096;

struct Known {
    pidfd: OwnedFd,
    tgid: u32,
    creds: Creds,
    root: Option<Vec<u8>>,
}

/// The stubs' threads the Sentry knows.
#[derive(Default)]
pub struct Tasks {
    known: RefCell<HashMap<u32, Known>>,
}

fn alive(pidfd: &OwnedFd) -> bool {
    let mut p = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut p, PollTimeout::ZERO), Ok(0))
}

impl Tasks {
    /// An empty memory.
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// The remembered credentials of `tid`, if it is still the thread they
    /// were read from (the caller must be `tid`: its notification live).
    pub fn creds(&self, tid: u32) -> Option<Creds> {
        let mut known = self.known.borrow_mut();
        let k = known.get(&tid)?;
        if alive(&k.pidfd) {
            return Some(k.creds.clone());
        }
        known.remove(&tid);
        None
    }

    /// Remembers `creds` of `tid` (of process `tgid`), pinned by `pidfd`.
    pub fn remember(&self, tid: u32, tgid: u32, pidfd: OwnedFd, creds: Creds) {
        let mut known = self.known.borrow_mut();
        if known.len() >= SWEEP_AT {
            known.retain(|_, k| alive(&k.pidfd));
        }
        known.insert(tid, Known { pidfd, tgid, creds, root: None });
    }

    /// The remembered root of `tid` (entries are checked alive by [`Self::creds`]).
    pub fn root(&self, tid: u32) -> Option<Vec<u8>> {
        self.known.borrow().get(&tid).and_then(|k| k.root.clone())
    }

    /// Remembers the root of `tid`, if its credentials are.
    pub fn remember_root(&self, tid: u32, root: Vec<u8>) {
        if let Some(k) = self.known.borrow_mut().get_mut(&tid) {
            k.root = Some(root);
        }
    }

    /// Forgets `tid` (its credentials are about to change).
    pub fn forget(&self, tid: u32) {
        self.known.borrow_mut().remove(&tid);
    }

    /// Forgets every thread of `tid`'s process (its umask or root are about
    /// to change, or it execs).
    pub fn forget_process(&self, tid: u32) {
        let mut known = self.known.borrow_mut();
        let Some(tgid) = known.get(&tid).map(|k| k.tgid) else { return };
        known.retain(|_, k| k.tgid != tgid);
    }

    /// How many threads are remembered.
    pub fn len(&self) -> usize {
        self.known.borrow().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(uid: u32) -> Creds {
        Creds { fsuid: uid, fsgid: 0, groups: vec![], cap_eff: 0, umask: 0o22, real: (uid, 0), cap_prm: 0 }
    }

    #[test]
    fn a_dead_thread_is_forgotten() {
        let t = Tasks::new();
        let me = nix::unistd::gettid().as_raw() as u32;
        // a pidfd of a process that has ended polls readable
        // SAFETY: the child only calls _exit, which is async-signal-safe.
        let child = match unsafe { nix::unistd::fork() }.unwrap() {
            // SAFETY: ends the child at once, running nothing of the parent's.
            nix::unistd::ForkResult::Child => unsafe { libc::_exit(0) },
            nix::unistd::ForkResult::Parent { child } => child,
        };
        // SAFETY: pidfd_open takes a pid and flags; returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
        assert!(fd >= 0);
        // SAFETY: the kernel just returned this fd.
        let dead = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        let _ = nix::sys::wait::waitpid(child, None);
        t.remember(42, 42, dead, creds(1000));
        assert_eq!(t.creds(42), None);
        assert!(t.is_empty());
        // a live one is kept, until its process changes
        // SAFETY: as above, for ourselves.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
        // SAFETY: the kernel just returned this fd.
        let live = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        t.remember(me, 7, live, creds(0));
        t.remember_root(me, b"/".to_vec());
        assert_eq!(t.creds(me), Some(creds(0)));
        assert_eq!(t.root(me), Some(b"/".to_vec()));
        t.forget_process(me);
        assert_eq!(t.creds(me), None);
    }
}
