//! `exec`: a new process inside a running container.
//!
//! Like `create`, in two forks: stage 1 joins the container's namespaces
//! (user first), stage 2 — a child, so that it lands in the container's pid
//! namespace — applies the process settings and execs. A successful execve
//! closes the channel (close-on-exec); a failure arrives as a message.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::fs::MetadataExt;
use std::path::PathBuf;

use moat_jail::cgroups::Manager;
use moat_jail::ns::{self, JOIN_ORDER};
use moat_jail::sys;
use nix::sys::signal::SigSet;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::channel::{Channel, Msg};
use crate::state::{Container, Status};
use crate::{create, process, Error, Global, Result};

/// What `exec` was asked for.
#[derive(Debug, Default)]
pub struct ExecOpts {
    /// container id
    pub id: String,
    /// the process to run (already merged with the container's defaults)
    pub process: Process,
    /// `--console-socket`
    pub console_socket: Option<PathBuf>,
    /// a console socket already connected (foreground `exec -t`)
    pub console_fd: Option<OwnedFd>,
    /// `--pid-file`
    pub pid_file: Option<PathBuf>,
    /// `--preserve-fds`
    pub preserve_fds: u32,
}

/// The container's spec and init pid, for building an exec process.
pub fn container_spec(g: &Global, id: &str) -> Result<Spec> {
    Container::open(&g.root, id)?.spec()
}

struct Stage {
    spec: Spec,
    process: Process,
    joins: Vec<(LinuxNamespaceType, fs::File)>,
    in_userns: bool,
    channel: Channel,
    console: Option<OwnedFd>,
    preserve_fds: u32,
    /// connected to the Sentry's control socket (platform sentry)
    sentry: Option<std::os::unix::net::UnixStream>,
    /// the sandbox's filter (platform sentry)
    filter: Option<crate::process::Filter>,
}

/// Starts the process; returns its host pid once it has exec'd.
pub fn exec(g: &Global, o: ExecOpts) -> Result<Pid> {
    let (spec, init, init_start, cgroup, sentry, filter) = {
        let c = Container::open(&g.root, &o.id)?;
        match c.status() {
            Status::Running | Status::Created => {}
            Status::Paused => return Err(Error::BadState("cannot exec in a paused container".into())),
            _ => return Err(Error::BadState("cannot exec in a stopped container".into())),
        }
        let s = c.saved()?;
        let sentry = match s.platform {
            crate::Platform::Sentry => Some(crate::boot::connect(&c)?),
            crate::Platform::Native => None,
        };
        let filter = sentry.as_ref().map(|sock| crate::process::Filter {
            netstack: s.netstack,
            own: vec![std::os::fd::AsRawFd::as_raw_fd(sock)],
        });
        (c.spec()?, Pid::from_raw(s.pid), s.pid_start, s.cgroup.clone().map(Manager::from_location), sentry, filter)
        // the lock is released here: a long exec must not block delete
    };
    let terminal = o.process.terminal().unwrap_or(false);
    let console = match (o.console_fd, &o.console_socket) {
        (Some(fd), _) => Some(fd),
        (None, Some(p)) if terminal => Some(crate::console::connect(p)?),
        (None, None) if terminal => {
            return Err(Error::Invalid("--tty needs --console-socket when moat detaches".into()));
        }
        _ => None,
    };
    let ns_list = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    // Open the namespaces as files, then check init is still the same
    // process: if it died and its pid was reused, the files could be some
    // host process's namespaces (or our own, and nothing would be joined).
    let mut joins = Vec::new();
    for t in JOIN_ORDER {
        if !ns_list.iter().any(|n| n.typ() == t) {
            continue;
        }
        let not_running = || Error::BadState("container not running".into());
        let theirs = fs::File::open(format!("/proc/{init}/ns/{}", ns::proc_name(t))).map_err(|_| not_running())?;
        let ours = fs::metadata(format!("/proc/self/ns/{}", ns::proc_name(t))).map(|m| m.st_ino()).ok();
        if theirs.metadata().map(|m| m.st_ino()).ok() != ours {
            joins.push((t, theirs));
        }
    }
    if !crate::procs::alive(init, init_start) {
        return Err(Error::BadState("container not running".into()));
    }
    // a namespace the container's user namespace does not own (a network
    // namespace its caller made) is joined first, while we are host root
    let user = joins.iter().find(|(t, _)| *t == LinuxNamespaceType::User).map(|(_, f)| ns::Id::of(f.as_fd()));
    if let Some(Ok(user)) = user {
        let foreign = |f: &fs::File| ns::owner(f.as_fd()).is_ok_and(|o| o != user);
        joins.sort_by_key(|(t, f)| *t == LinuxNamespaceType::User || !foreign(f));
    }
    let (parent, child) = Channel::pair()?;
    let stage = Stage {
        spec,
        process: o.process,
        in_userns: ns_list.iter().any(|n| n.typ() == LinuxNamespaceType::User),
        joins,
        channel: child,
        console,
        preserve_fds: o.preserve_fds,
        sentry,
        filter,
    };
    let stage1 = sys::fork_with(|| stage1(&stage)).map_err(|e| Error::io("fork", e))?;
    drop(stage);
    let result = (|| {
        if let Some(cg) = &cgroup {
            cg.add(stage1)?;
        }
        parent.send(&Msg::Go)?;
        let pid = match parent.recv()? {
            Msg::InitPid(p) => Pid::from_raw(p),
            Msg::Error(e) => return Err(Error::Init(e)),
            m => return Err(Error::Init(format!("unexpected {m:?}"))),
        };
        let _ = waitpid(stage1, None);
        let failed = |e: Error| {
            // stage 2 is not our child (stage 1 forked it): kill, never leave it
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
            Err(e)
        };
        match parent.recv_or_eof() {
            Ok(None) => Ok(pid),
            Ok(Some((Msg::Error(e), _))) => failed(Error::Init(e)),
            Ok(Some((m, _))) => failed(Error::Init(format!("unexpected {m:?}"))),
            Err(e) => failed(e),
        }
    })();
    if result.is_err() {
        let _ = nix::sys::signal::kill(stage1, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(stage1, None);
    }
    let pid = result?;
    if let Some(pf) = &o.pid_file {
        create::write_pid_file(pf, pid)?;
    }
    Ok(pid)
}

fn stage1(s: &Stage) -> i32 {
    let r = (|| {
        let _ = SigSet::empty().thread_set_mask();
        s.channel.expect(&Msg::Go)?;
        // while the host's /proc is still ours (a sentry sandbox's is read-only); stage 2 inherits it
        if let Some(adj) = s.process.oom_score_adj() {
            process::set_oom_score_adj(adj)?;
        }
        for (t, f) in &s.joins {
            ns::join_file(*t, f)?;
        }
        let pid = sys::fork_with(|| stage2(s)).map_err(|e| Error::io("fork", e))?;
        s.channel.send(&Msg::InitPid(pid.as_raw()))
    })();
    match r {
        Ok(()) => 0,
        Err(e) => {
            let _ = s.channel.send(&Msg::Error(e.to_string()));
            1
        }
    }
}

fn stage2(s: &Stage) -> i32 {
    let r = (|| {
        let _ = SigSet::empty().thread_set_mask();
        if let Some(c) = &s.console {
            nix::unistd::setsid().map_err(|e| Error::io("setsid", e))?;
            process::console(c.as_fd(), &s.process)?;
        }
        let to_sentry = |fd: OwnedFd| match &s.sentry {
            Some(sock) => crate::boot::hand_over(sock, fd),
            None => {
                tracing::warn!("seccomp notify profiles are not forwarded for exec'd processes");
                Ok(())
            }
        };
        let p = process::prepare(
            &s.spec,
            &s.process,
            &[],
            s.preserve_fds,
            s.in_userns,
            s.filter
                .clone()
                .map(|f| crate::process::Filter { own: [f.own.clone(), vec![s.channel.raw()]].concat(), ..f }),
            to_sentry,
            || Ok(()),
        )?;
        process::finish(p, || Ok(()))
    })();
    let e = match r {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = s.channel.send(&Msg::Error(e.to_string()));
    127
}
