//! The steps that turn a jailed process into the container's program:
//! console, limits, capabilities, user, seccomp, cwd, env, then execve.
//! Shared by a container's init and by `exec`.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use libseccomp::ScmpFilterContext;
use moat_jail::{caps, identity, rlimit, seccomp, sys};
use oci_spec::runtime::{Process, Spec};

use crate::{console, init, Error, Result};

/// A process ready to exec, with what must happen last.
pub struct Prepared {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    seccomp_late: Option<ScmpFilterContext>,
}

/// Allocates the pty, sends its master to the console socket and makes the
/// slave our controlling terminal and stdio.
pub fn console(sock: BorrowedFd<'_>, p: &Process) -> Result<()> {
    let (master, slave) = console::open_pty()?;
    if let Some(sz) = p.console_size() {
        let rows = u16::try_from(sz.height()).unwrap_or(u16::MAX);
        let cols = u16::try_from(sz.width()).unwrap_or(u16::MAX);
        console::set_size(slave.as_fd(), rows, cols)?;
    }
    console::send_master(sock, master.as_fd())?;
    console::attach_stdio(slave.as_fd())
}

fn cstrings(v: impl IntoIterator<Item = String>, what: &str) -> Result<Vec<CString>> {
    v.into_iter()
        .map(|s| CString::new(s).map_err(|_| Error::Spec(format!("config.json: {what}: contains a NUL byte"))))
        .collect()
}

/// The Sentry's filter for a sandbox's processes.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// the sandbox has a netstack (`--network=sandbox` or `none`): sendmsg and recvmsg go to the Sentry
    pub netstack: bool,
    /// fds of ours whose sendmsg and recvmsg pass all the same (our channels,
    /// used after the filter is on and before the Sentry has its notify fd)
    pub own: Vec<std::os::fd::RawFd>,
}

/// Everything up to the point of waiting for start (init) or exec (exec).
/// `send_notify_fd` hands a seccomp notify fd to whoever forwards it to the
/// profile's listener; `before_filter` runs just before the Sentry's filter
/// is loaded (sentry platform only).
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    spec: &Spec,
    p: &Process,
    extra_env: &[String],
    preserve_fds: u32,
    in_userns: bool,
    sentry: Option<Filter>,
    send_notify_fd: impl FnOnce(OwnedFd) -> Result<()>,
    before_filter: impl FnOnce() -> Result<()>,
) -> Result<Prepared> {
    if let Some(adj) = p.oom_score_adj() {
        set_oom_score_adj(adj)?;
    }
    rlimit::apply(p.rlimits().as_deref().unwrap_or(&[]))?;
    // before seccomp: a profile may well deny close_range
    for fd in 3..3 + preserve_fds {
        sys::clear_cloexec(i32::try_from(fd).unwrap_or(i32::MAX)).map_err(|e| Error::io(format!("keep fd {fd}"), e))?;
    }
    sys::cloexec_from(3 + preserve_fds).map_err(|e| Error::io("close_range", e))?;
    let nnp = p.no_new_privileges().unwrap_or(false);
    nix::sys::prctl::set_keepcaps(true).map_err(|e| Error::io("PR_SET_KEEPCAPS", e))?;
    if let Some(c) = p.capabilities() {
        caps::drop_bounding(c)?;
    }
    let mut seccomp_late = None;
    let mut send_notify_fd = Some(send_notify_fd);
    if let Some(filter) = sentry {
        before_filter()?;
        // the Sentry's filter goes on first: every later call of ours, and
        // all of the program's, meet it (a spec profile stacks on top)
        let own: Vec<u64> = filter.own.iter().filter_map(|fd| u64::try_from(*fd).ok()).collect();
        let mut ctx =
            moat_sentry::platform::filter::compile(filter.netstack, &own).map_err(|e| Error::Init(e.to_string()))?;
        ctx.set_ctl_nnp(nnp).map_err(|e| Error::Init(e.to_string()))?;
        ctx.load().map_err(|e| Error::Init(format!("load the sentry filter: {e}")))?;
        let fd = ctx.get_notify_fd().map_err(|e| Error::Init(format!("sentry notify fd: {e}")))?;
        // SAFETY: libseccomp just created this fd for us and does not close it.
        let fd = unsafe { moat_jail::sys::own_fd(fd) };
        if let Some(send) = send_notify_fd.take() {
            send(fd)?;
        }
    }
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().clone()) {
        let ctx = seccomp::build(&s)?;
        let notify = seccomp::uses_notify(&s);
        // Without no_new_privs the load needs CAP_SYS_ADMIN, which the user
        // switch may drop: load it now (runc does the same).
        if notify || !nnp {
            if let Some(fd) = seccomp::load(ctx, nnp, notify)? {
                match send_notify_fd.take() {
                    Some(send) => send(fd)?,
                    None => {
                        return Err(Error::Unsupported(
                            "a seccomp notify profile cannot be used with --platform sentry".into(),
                        ))
                    }
                }
            }
        } else {
            seccomp_late = Some(ctx);
        }
    }
    let may_setgroups =
        !in_userns || std::fs::read_to_string("/proc/self/setgroups").map(|s| s.trim() != "deny").unwrap_or(true);
    identity::switch(p.user(), may_setgroups)?;
    if let Some(c) = p.capabilities() {
        caps::apply(c)?;
    }
    let cwd = p.cwd();
    nix::unistd::chdir(cwd.as_path()).map_err(|e| Error::io(format!("chdir to process.cwd {}", cwd.display()), e))?;
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    env.extend(extra_env.iter().cloned());
    let args = p.args().clone().unwrap_or_default();
    let prog = args.first().ok_or_else(|| Error::Spec("config.json: process.args: empty".into()))?;
    let path = init::lookup(prog, &env, Path::new("/"))?;
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(|e| Error::io("PR_SET_NO_NEW_PRIVS", e))?;
    }
    Ok(Prepared { path, args: cstrings(args, "process.args")?, env: cstrings(env, "process.env")?, seccomp_late })
}

/// Sets our oom_score_adj, unless it already has that value (an `exec`
/// into a sentry sandbox inherits it from the side that could write it:
/// the sandbox's /proc is the Sentry's, and read-only).
pub fn set_oom_score_adj(adj: i32) -> Result<()> {
    const PATH: &str = "/proc/self/oom_score_adj";
    if std::fs::read_to_string(PATH).is_ok_and(|v| v.trim() == adj.to_string()) {
        return Ok(());
    }
    std::fs::write(PATH, adj.to_string()).map_err(|e| Error::io(format!("set process.oomScoreAdj to {adj}"), e))
}

/// Loads a late seccomp filter, runs `before_exec` (startContainer hooks),
/// and execs. Returns only on failure.
pub fn finish(p: Prepared, before_exec: impl FnOnce() -> Result<()>) -> Result<std::convert::Infallible> {
    if let Some(ctx) = p.seccomp_late {
        seccomp::load(ctx, true, false)?;
    }
    before_exec()?;
    sys::default_signals(&sys::INIT_EXIT_SIGNALS).map_err(|e| Error::io("reset signal handlers", e))?;
    let e = nix::unistd::execve(&p.path, &p.args, &p.env).err().unwrap_or(nix::errno::Errno::EINVAL);
    Err(Error::Init(format!("exec {:?}: {e}", p.path)))
}
