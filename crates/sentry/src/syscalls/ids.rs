//! Calls that change a thread's credentials or umask, or replace its
//! program: the host performs them, but they reach the Sentry first, so it
//! forgets what it remembers of the thread (platform::tasks) before the
//! change is made.

use super::{Call, Reply};
use crate::platform::tasks::Forget;

/// set*id, setgroups, capset: this thread's credentials change.
pub fn thread(c: &Call<'_>) -> Reply {
    c.task.forget(Forget::Thread);
    Reply::Continue
}

/// execve and execveat: the program, and with it the credentials (a setuid
/// binary; capabilities are recomputed), of the whole process.
pub fn exec(c: &Call<'_>) -> Reply {
    c.task.forget(Forget::Process);
    Reply::Continue
}

/// umask: of the fs_struct the process's threads share; the process is
/// not remembered again (see platform::tasks).
pub fn umask(c: &Call<'_>) -> Reply {
    c.task.forget(Forget::ForGood);
    Reply::Continue
}
