//! Child processes: spawning, waiting with a deadline, and reaping orphans.
//!
//! The bench makes itself a child subreaper, as containerd-shim does. runc and runsc leave
//! processes behind that outlive the CLI call (runc's container init, runsc's sandbox, gofer and
//! ptrace stubs). Without a subreaper they are reparented to pid 1, and where pid 1 reaps only
//! now and then (as on our VMs, whose init is not a full init system) they linger as zombies;
//! `runsc delete` waits for its sandbox pid to vanish, so each delete would cost a second or
//! more. As the subreaper we reap them at once, which is what a real shim gives the runtime.
//!
//! Invariant: one thread owns `waitpid(-1)`. It records the exit code of every process spawned
//! through [`Reaper::spawn`] and silently reaps everything else. Nothing else in the bench may
//! wait for a child, so `Command::status`/`output` are off limits; use [`Reaper::spawn`] and
//! [`Proc::wait`].

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// How long the reaper sleeps when it has no children, before it looks again for orphans
/// that were reparented to us while it slept (a new spawn wakes it at once).
const IDLE_POLL: Duration = Duration::from_millis(50);

/// How long [`Proc::wait`] waits after SIGKILL for a timed-out process to be reaped.
const KILL_GRACE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    /// Pids spawned through [`Reaper::spawn`] that nobody has waited for yet.
    tracked: HashSet<i32>,
    /// Exit codes of tracked pids (128 + signal for a killed process).
    exited: HashMap<i32, i32>,
    /// Bumped by every spawn, so the idle reaper never sleeps through a new child.
    spawns: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only plain maps behind; keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The process's only waiter for children; cheap to clone.
#[derive(Clone)]
pub struct Reaper {
    shared: Arc<Shared>,
}

impl Reaper {
    /// Makes this process a child subreaper and starts the reaping thread.
    pub fn install() -> Result<Self> {
        nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), changed: Condvar::new() });
        let for_thread = Arc::clone(&shared);
        thread::Builder::new()
            .name("reaper".into())
            .spawn(move || reap_loop(&for_thread))
            .context("start the reaper thread")?;
        Ok(Self { shared })
    }

    /// Spawns `cmd` and tracks it, so that [`Proc::wait`] gets its exit code.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Proc> {
        // Hold the lock across spawn so the reaper cannot record the exit before we track it.
        let mut state = self.shared.lock();
        let child = cmd.spawn().with_context(|| format!("spawn {:?}", cmd.get_program()))?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        state.tracked.insert(pid);
        state.spawns += 1;
        drop(state);
        self.shared.changed.notify_all();
        // `child` is dropped without waiting: the reaper thread owns the wait.
        Ok(Proc { pid, shared: Arc::clone(&self.shared), done: false })
    }
}

/// What [`Reaper::capture`] collected.
pub struct Captured {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reaper {
    /// Runs `cmd` to completion (stdin from /dev/null), capturing stdout and stderr through
    /// unlinked temporary files rather than pipes, which a lingering grandchild could hold open.
    pub fn capture(&self, cmd: &mut Command, timeout: Duration) -> Result<Captured> {
        let mut out = tempfile::tempfile().context("create a temporary file")?;
        let mut err = tempfile::tempfile().context("create a temporary file")?;
        cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(err.try_clone()?);
        let code = self.spawn(cmd)?.wait(timeout)?;
        Ok(Captured { code, stdout: read_all(&mut out)?, stderr: read_all(&mut err)? })
    }
}

fn read_all(file: &mut File) -> Result<String> {
    let mut bytes = Vec::new();
    file.rewind()?;
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A spawned process; dropping it unwaited kills it.
pub struct Proc {
    pid: i32,
    shared: Arc<Shared>,
    done: bool,
}

impl Proc {
    /// Waits for the process to exit and returns its exit code (128 + signal if killed).
    /// After `timeout` it is killed and an error is returned.
    pub fn wait(&mut self, timeout: Duration) -> Result<i32> {
        if let Some(code) = self.wait_until(Instant::now() + timeout) {
            return Ok(code);
        }
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        let _ = self.wait_until(Instant::now() + KILL_GRACE);
        bail!("timed out after {}s (killed pid {})", timeout.as_secs(), self.pid)
    }

    fn wait_until(&mut self, deadline: Instant) -> Option<i32> {
        let mut state = self.shared.lock();
        loop {
            if let Some(code) = state.exited.remove(&self.pid) {
                state.tracked.remove(&self.pid);
                self.done = true;
                return Some(code);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self.shared.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.done {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            let mut state = self.shared.lock();
            state.tracked.remove(&self.pid);
            state.exited.remove(&self.pid);
        }
    }
}

fn reap_loop(shared: &Shared) {
    loop {
        let spawns = shared.lock().spawns;
        match waitpid(Pid::from_raw(-1), None) {
            Ok(status) => {
                let (pid, code) = match status {
                    WaitStatus::Exited(pid, code) => (pid, code),
                    WaitStatus::Signaled(pid, sig, _) => (pid, 128 + sig as i32),
                    _ => continue,
                };
                let mut state = shared.lock();
                if state.tracked.contains(&pid.as_raw()) {
                    state.exited.insert(pid.as_raw(), code);
                    drop(state);
                    shared.changed.notify_all();
                }
            }
            Err(Errno::ECHILD) => {
                let state = shared.lock();
                if state.spawns == spawns {
                    let _ = shared.changed.wait_timeout(state, IDLE_POLL);
                }
            }
            Err(_) => {}
        }
    }
}
