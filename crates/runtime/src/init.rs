//! What runs in the processes moat forks for a new container.
//!
//! Stage 1 (a child of `moat create`) joins and creates namespaces, then
//! forks the container's init and exits: a new pid namespace only applies to
//! children. Init (pid 1 in the container) builds the file tree, pivots into
//! it, applies the process settings, reports ready, and blocks until
//! `moat start` connects to the start socket; then it execs the program.
//! Every error goes back to the parent over the channel as one line.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use moat_jail::ns::{self, Plan};
use moat_jail::{pseudofs, replica, rootfs, sys};
use nix::sched::CloneFlags;
use nix::unistd::{setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::channel::{Channel, Msg};
use crate::process::{self, Prepared};
use crate::{hooks, Error, Result};

/// Everything the forked side of `create` needs.
pub struct InitArgs {
    /// the container's spec
    pub spec: Spec,
    /// namespace plan
    pub plan: Plan,
    /// root directory on the host
    pub root: PathBuf,
    /// where a root of "/" is bound
    pub staging: PathBuf,
    /// channel to the parent
    pub channel: Channel,
    /// connected console socket, when process.terminal
    pub console: Option<OwnedFd>,
    /// the start socket, already listening
    pub start: UnixListener,
    /// `--no-pivot`
    pub no_pivot: bool,
    /// `--no-new-keyring`
    pub no_new_keyring: bool,
    /// fds 3..3+N pass into the container
    pub preserve_fds: u32,
    /// extra environment (LISTEN_FDS)
    pub extra_env: Vec<String>,
    /// run the program under the Sentry's filter
    pub sentry: Option<crate::process::Filter>,
    /// the parent's lock on the state dir, closed in the child at once
    pub lock_fd: std::os::fd::RawFd,
    /// the sandbox's own user namespace (`--userns auto`), already mapped,
    /// and the idmapped copies to place before joining it
    pub userns: Option<crate::userns::Auto>,
}

/// Stage 1: namespaces, then fork init. Returns the exit code.
pub fn stage1(a: InitArgs) -> i32 {
    let ch = &a.channel;
    match stage1_steps(&a) {
        Ok(()) => 0,
        Err(e) => {
            let _ = ch.send(&Msg::Error(e.to_string()));
            1
        }
    }
}

fn stage1_steps(a: &InitArgs) -> Result<()> {
    // our copy of the state-dir lock must not outlive a killed `moat create`
    let _ = nix::unistd::close(a.lock_fd);
    // a foreground `run` blocks signals to forward them; the container must not inherit that
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    a.channel.expect(&Msg::Go)?;
    match &a.userns {
        // as create checked them
        Some(auto) => {
            for (t, f) in &auto.joins {
                ns::join_file(*t, f)?;
            }
        }
        None => {
            for (t, p) in &a.plan.join {
                ns::join(*t, p)?;
            }
        }
    }
    if let Some(auto) = &a.userns {
        crate::userns::place(auto)?;
        become_root()?;
    } else if a.plan.new_user() {
        ns::create(CloneFlags::CLONE_NEWUSER)?;
        a.channel.send(&Msg::UserNsReady)?;
        a.channel.expect(&Msg::MapsWritten)?;
        become_root()?;
    }
    // raw bits: nix's `!` would drop CLONE_NEWTIME, which it has no name for
    ns::create(CloneFlags::from_bits_retain(a.plan.new.bits() & !CloneFlags::CLONE_NEWUSER.bits()))?;
    if a.plan.new.contains(CloneFlags::CLONE_NEWNET) {
        ns::loopback_up()?;
    }
    if a.plan.new.contains(ns::flag(LinuxNamespaceType::Time)) {
        write_time_offsets(&a.spec)?;
    }
    let pid = sys::fork_with(|| init_main(a)).map_err(|e| Error::io("fork container init", e))?;
    a.channel.send(&Msg::InitPid(pid.as_raw()))
}

/// Root of the user namespace just joined or made.
fn become_root() -> Result<()> {
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).map_err(|e| Error::io("setresgid 0", e))?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).map_err(|e| Error::io("setresuid 0", e))?;
    // the id change made us non-dumpable: our /proc/self files would belong
    // to host root, which the namespace does not map (runc does the same)
    nix::sys::prctl::set_dumpable(true).map_err(|e| Error::io("PR_SET_DUMPABLE", e))
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let offsets = spec.linux().as_ref().and_then(|l| l.time_offsets().clone()).unwrap_or_default();
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!("{clock} {} {}\n", off.secs().unwrap_or(0), off.nanosecs().unwrap_or(0)));
    }
    if text.is_empty() {
        return Ok(());
    }
    std::fs::write("/proc/self/timens_offsets", text).map_err(|e| Error::io("write /proc/self/timens_offsets", e))
}

fn init_main(a: &InitArgs) -> i32 {
    match init_steps(a) {
        Ok(never) => match never {},
        Err(e) => {
            let _ = a.channel.send(&Msg::Error(e.to_string()));
            1
        }
    }
}

fn init_steps(a: &InitArgs) -> Result<std::convert::Infallible> {
    let spec = &a.spec;
    let ch = &a.channel;
    // stage 1 and init share the channel: wait until the parent has read
    // init's pid from stage 1, so no message of ours can overtake it
    ch.expect(&Msg::Go)?;
    let proc_ = spec.process().clone().unwrap_or_default();
    nix::unistd::setsid().map_err(|e| Error::io("setsid", e))?;
    if !a.plan.has(LinuxNamespaceType::Mount) {
        return Err(Error::Spec("config.json: linux.namespaces: moat needs a mount namespace".into()));
    }
    let rootfs = rootfs::prepare(
        spec,
        &rootfs::Prepare {
            root: a.root.clone(),
            staging: a.staging.clone(),
            in_userns: a.plan.has(LinuxNamespaceType::User),
        },
    )?;
    ch.send(&Msg::MountsReady)?;
    let state = match ch.recv()? {
        Msg::HooksDone(s) => s,
        Msg::Error(e) => return Err(Error::Init(e)),
        m => return Err(Error::Init(format!("unexpected {m:?}"))),
    };
    if let Some(h) = spec.hooks().as_ref().and_then(|h| h.create_container().clone()) {
        hooks::run_all("createContainer", &h, &state)?;
    }
    if a.no_pivot {
        rootfs::move_root(&rootfs)?;
    } else {
        rootfs::pivot(&rootfs)?;
    }
    let linux = spec.linux().clone().unwrap_or_default();
    for (k, v) in linux.sysctl().iter().flatten() {
        moat_jail::sysctl::write(k, v)?;
    }
    rootfs::finalize(spec)?;
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| Error::io(format!("sethostname {h:?}"), e))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys::setdomainname(d).map_err(|e| Error::io(format!("setdomainname {d:?}"), e))?;
    }
    if !a.no_new_keyring {
        // EACCES/ENOSYS where keyrings are off or locked down: runc ignores those too
        if let Err(e) = sys::join_session_keyring(&format!("_ses.{}", std::process::id())) {
            tracing::debug!(error = %e, "no new session keyring");
        }
    }
    if let Some(c) = &a.console {
        process::console(c.as_fd(), &proc_)?;
    }
    let seccomp_fd_to_parent = |fd: OwnedFd| ch.send_with_fd(&Msg::SeccompFd, Some(fd.as_fd()));
    // sentry: the Sentry starts now, with the instances behind the
    // sandbox's /proc and /sys; once it serves, they are swapped in
    let start_sentry = || -> Result<()> {
        let b = pseudofs::backing()?;
        for (kind, fd) in &b.instances {
            ch.send_with_fd(&Msg::Backing(kind.fstype().into()), Some(fd.as_fd()))?;
        }
        ch.send(&Msg::SpawnSentry)?;
        let mut mounts = Vec::new();
        loop {
            match ch.recv_with_fd()? {
                (Msg::PseudoMount(kind), Some(fd)) => {
                    let kind = pseudofs::Kind::from_fstype(&kind)
                        .ok_or_else(|| Error::Init(format!("unexpected mount {kind:?}")))?;
                    mounts.push((kind, fd));
                }
                (Msg::Go, _) => break,
                (Msg::Error(e), _) => return Err(Error::Init(e)),
                (m, _) => return Err(Error::Init(format!("unexpected {m:?}"))),
            }
        }
        pseudofs::attach(&b, &mounts)?;
        // the Sentry performs every change to the tree as the caller (with
        // a user namespace, its replayer inside it does); the stubs keep a
        // read-only replica. Not in a mount namespace the spec names (the
        // replica is a new one), nor in a user namespace it names (the
        // replayer may have no right to join one moat did not make)
        let joins = |t| a.plan.join.iter().any(|(j, _)| *j == t);
        if !joins(LinuxNamespaceType::Mount) && !joins(LinuxNamespaceType::User) {
            ch.send(&Msg::TreeReady)?;
            match ch.recv_with_fd()? {
                (Msg::Go, _) => replica::make()?,
                (Msg::ReplicaRoot, Some(root)) => {
                    ch.expect(&Msg::Go)?;
                    replica::over(root)?;
                }
                (Msg::Error(e), _) => return Err(Error::Init(e)),
                (m, _) => return Err(Error::Init(format!("unexpected {m:?}"))),
            }
        }
        Ok(())
    };
    let prepared = process::prepare(
        spec,
        &proc_,
        &a.extra_env,
        a.preserve_fds,
        a.plan.has(LinuxNamespaceType::User),
        a.sentry.clone().map(|f| crate::process::Filter { own: vec![ch.raw()], ..f }),
        seccomp_fd_to_parent,
        start_sentry,
    )?;
    sys::exit_on_signals(&sys::INIT_EXIT_SIGNALS).map_err(|e| Error::io("install signal handlers", e))?;
    ch.send(&Msg::Ready)?;
    wait_for_start(&a.start, spec, &state, prepared)
}

/// Blocks until `moat start` connects, then finishes and execs. A failure
/// after this point is written to the start connection for `start` to report.
fn wait_for_start(listener: &UnixListener, spec: &Spec, state: &str, p: Prepared) -> Result<std::convert::Infallible> {
    let (mut conn, _) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("accept start", e)),
        }
    };
    let hooks = spec.hooks().as_ref().and_then(|h| h.start_container().clone());
    let r = process::finish(p, || match &hooks {
        Some(h) => hooks::run_all("startContainer", h, state),
        None => Ok(()),
    });
    let e = match r {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = std::io::Write::write_all(&mut conn, e.to_string().as_bytes());
    sys::exit_now(127)
}

/// Resolves `prog` the way execvp would, so a missing program is reported
/// at create time (as runc does), not as a failed start.
pub fn lookup(prog: &str, env: &[String], cwd: &Path) -> Result<CString> {
    let not_found = || Error::Init(format!("exec: {prog:?}: executable file not found in $PATH"));
    let usable = |p: &Path| {
        nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
            && p.metadata().map(|m| m.is_file()).unwrap_or(false)
    };
    let cstr = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| not_found());
    if prog.contains('/') {
        let p = cwd.join(prog);
        if usable(&p) {
            return cstr(Path::new(prog));
        }
        return Err(Error::Init(format!("exec: {prog:?}: no such executable")));
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(prog);
        if usable(&p) {
            return cstr(&p);
        }
    }
    Err(not_found())
}
