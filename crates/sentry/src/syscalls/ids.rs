//! Calls that change a thread's credentials, umask or root, or replace its
//! program: the host performs them, but they reach the Sentry first, so it
//! forgets what it remembers of the thread (platform::tasks) before the
//! change is made.

use super::{Call, Reply};

/// set*id, setgroups, capset: this thread's credentials change.
pub fn thread(c: &Call<'_>) -> Reply {
    c.task.forget(false);
    Reply::Continue
}

/// umask, chroot (the fs_struct its threads share), execve and execveat
/// (the program, and with it the credentials of a setuid binary): the
/// whole process's.
pub fn process(c: &Call<'_>) -> Reply {
    c.task.forget(true);
    Reply::Continue
}
