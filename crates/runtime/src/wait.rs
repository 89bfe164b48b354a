//! Waiting in the foreground (`run`, `exec` without `--detach`): forward
//! signals to the container process and return its exit code, as runc does.

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::{Error, Result};

/// Signals moat handles itself rather than forwarding.
fn not_forwarded(s: Signal) -> bool {
    matches!(
        s,
        Signal::SIGCHLD | Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGURG | Signal::SIGWINCH | Signal::SIGPIPE
    )
}

/// Blocks every signal moat forwards, plus SIGCHLD, so they queue for
/// [`wait_forwarding`]. Call before forking; children unblock their own.
pub fn block_signals() -> Result<SigSet> {
    let mut set = SigSet::empty();
    for s in Signal::iterator() {
        if !matches!(
            s,
            Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGSEGV | Signal::SIGBUS | Signal::SIGILL | Signal::SIGFPE
        ) {
            set.add(s);
        }
    }
    set.thread_block().map_err(|e| Error::io("block signals", e))?;
    Ok(set)
}

/// Becomes a child subreaper, so a container process whose parent (stage 1)
/// exits is reparented to us and we can wait for it.
pub fn become_subreaper() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| Error::io("PR_SET_CHILD_SUBREAPER", e))
}

/// Exit code of a wait status: the code, or 128+N for signal N.
pub fn exit_code(st: WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// Waits for `pid`, forwarding the signals in `set` to it; reaps any other
/// child that exits meanwhile; on SIGWINCH passes our terminal's new size to
/// the container's pty (`pty`). Returns the exit code.
pub fn wait_forwarding(pid: Pid, set: &SigSet, pty: Option<std::os::fd::BorrowedFd<'_>>) -> Result<i32> {
    loop {
        // reap first: the child may have exited before we waited
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) => {
                    if st.pid() == Some(pid) {
                        if let Some(code) = exit_code(st) {
                            return Ok(code);
                        }
                    }
                }
            }
        }
        let sig = set.wait().map_err(|e| Error::io("sigwait", e))?;
        if sig == Signal::SIGWINCH {
            if let Some(master) = pty {
                crate::console::copy_winsize(std::os::fd::AsFd::as_fd(&std::io::stdin()), master);
            }
        } else if !not_forwarded(sig) {
            let _ = kill(pid, sig);
        }
    }
}
