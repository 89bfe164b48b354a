//! What the Sentry remembers of the stubs' threads between calls: their
//! file credentials and root, so a served call that changes the tree need
//! not read /proc/TID/status (the costliest step of one) every time.
//!
//! An entry holds a pidfd of its thread (PIDFD_THREAD): once that thread
//! has ended, the pidfd polls readable and the entry is dropped, so a tid
//! the kernel reuses never inherits it. A thread's credentials change only
//! through its own calls, and every one of those reaches the Sentry first
//! (the set*id family, setgroups, capset: [`crate::syscalls::ids`]), which
//! forgets the entry before the host makes the change (the thread waits
//! meanwhile, so it cannot be remembered anew in between). An exec forgets
//! the whole process: the thread that execs takes over the leader's tid.
//! An exec by a thread other than the leader is pending until that
//! thread's own tid is gone (the exec has replaced every other thread then):
//! meanwhile nothing of the process is remembered, or the leader, calling
//! in between, would be remembered with its old credentials, and its pidfd
//! would follow its tid to the new program.
//! The umask belongs to the fs_struct the threads of a process share: a
//! sibling thread could be remembered again between the Sentry's answer to
//! umask and the host's change, so a process that calls umask is never
//! remembered again. (Nor followed: a process sharing its fs_struct with
//! another without being one of its threads — clone with CLONE_FS but not
//! CLONE_THREAD — whose sibling changes the umask.) The root is not
//! remembered: chroot has the same race, and a stale root would let a
//! caller out of its own chroot.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::vfs::creds::Creds;

/// Entries kept before the dead ones are first swept. Each entry holds a
/// pidfd until then: the next sweep comes at twice the entries left alive
/// (never below this), so dead threads hold at most about as many fds as
/// live ones, and sweeping costs O(1) per remembered thread, amortized.
const SWEEP_AT: usize = 64;

struct Known {
    pidfd: OwnedFd,
    tgid: u32,
    creds: Creds,
}

/// The stubs' threads the Sentry knows.
#[derive(Default)]
pub struct Tasks {
    known: RefCell<HashMap<u32, Known>>,
    /// processes never remembered (they changed their umask)
    /// with a pidfd of the process when it could be had: dropped once it
    /// ends (a pid may come back for another process)
    volatile: RefCell<HashMap<u32, Option<OwnedFd>>>,
    /// processes with an exec under way in a thread other than the leader:
    /// not remembered while that thread (this pidfd) lives
    exec_pending: RefCell<HashMap<u32, OwnedFd>>,
    /// how many entries trigger the next sweep (0: [`SWEEP_AT`])
    sweep_at: std::cell::Cell<usize>,
}

/// What to forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget {
    /// the calling thread (its credentials change)
    Thread,
    /// every thread of its process (it execs)
    Process,
    /// every thread of its process, for good (its umask changes)
    ForGood,
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
        if self.volatile.borrow().contains_key(&tgid) {
            return;
        }
        {
            let mut pending = self.exec_pending.borrow_mut();
            if let Some(p) = pending.get(&tgid) {
                if alive(p) {
                    return;
                }
                pending.remove(&tgid);
            }
        }
        let mut known = self.known.borrow_mut();
        if known.len() >= self.sweep_at.get().max(SWEEP_AT) {
            known.retain(|_, k| alive(&k.pidfd));
            self.sweep_at.set(known.len() * 2);
            self.volatile.borrow_mut().retain(|_, p| p.as_ref().is_none_or(alive));
        }
        known.insert(tid, Known { pidfd, tgid, creds });
    }

    /// Forgets `tid`, or its process `tgid` (see [`Forget`]).
    pub fn forget(&self, tid: u32, tgid: u32, what: Forget) {
        let mut known = self.known.borrow_mut();
        known.remove(&tid);
        if what != Forget::Thread {
            known.retain(|_, k| k.tgid != tgid);
        }
        if what == Forget::ForGood {
            self.volatile.borrow_mut().entry(tgid).or_insert(None);
        }
    }

    /// Pins the mark that process `tgid` is never remembered again to
    /// `process` (a pidfd of it): the mark goes when the process ends.
    pub fn volatile_until(&self, tgid: u32, process: Option<OwnedFd>) {
        self.volatile.borrow_mut().insert(tgid, process);
    }

    /// Notes an exec by `thread` (a pidfd of it), not the leader of `tgid`.
    pub fn exec_pending(&self, tgid: u32, thread: OwnedFd) {
        self.exec_pending.borrow_mut().insert(tgid, thread);
    }

    /// Forgets every thread.
    pub fn forget_all(&self) {
        self.known.borrow_mut().clear();
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

    /// A pidfd of process `pid`.
    fn pidfd(pid: i32) -> OwnedFd {
        // SAFETY: pidfd_open takes a pid and flags, no memory; returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        assert!(fd >= 0, "pidfd_open {pid}");
        // SAFETY: the kernel just returned this fd; nothing else owns it.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) }
    }

    /// A process that has ended (reaped), and a pidfd of it.
    fn ended() -> OwnedFd {
        // SAFETY: the child only calls _exit, which is async-signal-safe.
        let child = match unsafe { nix::unistd::fork() }.unwrap() {
            // SAFETY: ends the child at once, running nothing of the parent's.
            nix::unistd::ForkResult::Child => unsafe { libc::_exit(0) },
            nix::unistd::ForkResult::Parent { child } => child,
        };
        let fd = pidfd(child.as_raw());
        let _ = nix::sys::wait::waitpid(child, None);
        fd
    }

    fn creds(uid: u32) -> Creds {
        Creds { fsuid: uid, fsgid: 0, groups: vec![], cap_eff: 0, umask: 0o22, real: (uid, 0), cap_prm: 0 }
    }

    #[test]
    fn a_dead_thread_is_forgotten() {
        let t = Tasks::new();
        let me = nix::unistd::gettid().as_raw() as u32;
        // a pidfd of a process that has ended polls readable
        t.remember(42, 42, ended(), creds(1000));
        assert_eq!(t.creds(42), None);
        assert!(t.is_empty());
        // a live one is kept, until its process changes
        let live = pidfd(std::process::id() as i32);
        t.remember(me, 7, live.try_clone().unwrap(), creds(0));
        assert_eq!(t.creds(me), Some(creds(0)));
        // another thread's exec forgets the whole process
        t.forget(me + 1, 7, Forget::Process);
        assert_eq!(t.creds(me), None);
        // while another thread's exec is under way, nothing is remembered
        t.exec_pending(7, live.try_clone().unwrap());
        t.remember(me, 7, live.try_clone().unwrap(), creds(0));
        assert_eq!(t.creds(me), None);
        t.exec_pending.borrow_mut().clear();
        t.remember(me, 7, live.try_clone().unwrap(), creds(0));
        t.forget(me, 7, Forget::ForGood);
        t.remember(me, 7, live, creds(0));
        assert_eq!(t.creds(me), None, "a process that changed its umask is not remembered again");
    }

    #[test]
    fn dead_threads_hold_no_more_fds_than_live_ones() {
        let t = Tasks::new();
        let me = nix::unistd::gettid().as_raw() as u32;
        let live = pidfd(std::process::id() as i32);
        t.remember(me, me, live.try_clone().unwrap(), creds(0));
        // a process that changed its umask, still alive (here: ours)
        t.forget(4242, 4242, Forget::ForGood);
        t.volatile_until(4242, Some(live.try_clone().unwrap()));
        // a shell loop's worth of processes, each gone before the next
        for i in 0..3000u32 {
            t.remember(1_000_000 + i, 1_000_000 + i, ended(), creds(0));
            assert!(t.len() <= SWEEP_AT, "{} entries after {i} dead processes", t.len());
        }
        assert_eq!(t.creds(me), Some(creds(0)), "the live thread stays remembered");
        // the sweeps kept the mark of the live process that changed its umask
        t.remember(4242, 4242, live, creds(0));
        assert_eq!(t.creds(4242), None, "remembered again after a sweep");
    }
}
