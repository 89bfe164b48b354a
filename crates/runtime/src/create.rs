//! `create`: everything up to a container init that waits for `start`.
//!
//! The parent side of the protocol in [`crate::init`]: make the state dir
//! and cgroup, fork stage 1, place it in the cgroup, write user-namespace
//! maps, run the createRuntime hooks, and save the state once init is ready.
//! On any failure, [`Abort`] undoes it all: no process, cgroup or state dir
//! is left behind.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use moat_jail::cgroups::Manager;
use moat_jail::ns::Plan;
use moat_jail::{idmap, pseudofs, sys};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::channel::{Channel, Msg};
use crate::init::{self, InitArgs};
use crate::state::{Container, Saved, Status, START_SOCKET};
use crate::{hooks, procs, spec, Error, Global, Result, OCI_VERSION};

/// What `create` was asked for.
#[derive(Debug, Default)]
pub struct CreateOpts {
    /// container id
    pub id: String,
    /// bundle directory
    pub bundle: PathBuf,
    /// `--pid-file`
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`
    pub console_socket: Option<PathBuf>,
    /// a console socket already connected (foreground `run -t`)
    pub console_fd: Option<OwnedFd>,
    /// `--preserve-fds`
    pub preserve_fds: u32,
    /// `--no-pivot`
    pub no_pivot: bool,
    /// `--no-new-keyring`
    pub no_new_keyring: bool,
}

/// A created container.
#[derive(Debug, Clone, Copy)]
pub struct Created {
    /// host pid of its init
    pub pid: Pid,
}

/// Undoes a half-made container on drop unless disarmed.
struct Abort {
    dir: Option<PathBuf>,
    cgroup: Option<Manager>,
    pids: Vec<Pid>,
    /// a rootfs whose overlayfs got a work dir of the sandbox's own
    rootfs: Option<PathBuf>,
    /// a pod's interface the netstack took over
    pod: Option<crate::state::TakenPod>,
}

impl Drop for Abort {
    fn drop(&mut self) {
        for p in &self.pids {
            let _ = kill(*p, Signal::SIGKILL);
        }
        if let Some(cg) = &self.cgroup {
            for p in cg.pids().unwrap_or_default() {
                let _ = kill(p, Signal::SIGKILL);
            }
        }
        // reap every child the kills ended, not just ours by name: the
        // Sentry's watchdog, and (when we are a subreaper, as `run` is) an
        // orphaned Sentry, which lives in init's pid namespace — init cannot
        // finish dying until it is reaped
        reap_children(&self.pids, std::time::Duration::from_secs(2));
        for p in &self.pids {
            // not our child: wait until it is gone
            if let Some((start, _)) = procs::stat(*p) {
                procs::wait_gone(*p, start, 2000);
            }
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!(error = %e, "cleanup: cgroup not removed");
            }
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
            crate::idrange::release(std::path::Path::new(crate::idrange::REGISTRY), d);
        }
        if let Some(r) = &self.rootfs {
            crate::userns::forget(r);
        }
        if let Some(p) = &self.pod {
            if let Err(e) = give_back_pod(p) {
                tracing::warn!(error = %e, "cleanup: the pod's interface not given back");
            }
        }
    }
}

/// Reaps our children until every one of `pids` that is ours has been
/// reaped, we have none left, or `limit` has passed.
fn reap_children(pids: &[Pid], limit: std::time::Duration) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus};
    let deadline = std::time::Instant::now() + limit;
    let mut left: Vec<Pid> = pids.to_vec();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                // the ones not our children never show up here
                left.retain(|p| procs::stat(*p).is_some() && procs::parent(*p) == Some(nix::unistd::getpid()));
                if left.is_empty() || std::time::Instant::now() > deadline {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(s) => left.retain(|p| Some(*p) != s.pid()),
            Err(_) => return,
        }
    }
}

impl Abort {
    fn disarm(mut self) {
        self.dir = None;
        self.cgroup = None;
        self.pids.clear();
        self.rootfs = None;
        self.pod = None;
    }
}

/// The cgroup path of a container whose spec names none.
pub fn default_cgroup_path(id: &str) -> PathBuf {
    PathBuf::from(format!("/moat/{id}"))
}

/// Resolves the container's cgroup manager (and refuses a systemd driver,
/// which needs a running systemd).
pub fn cgroup_manager(g: &Global, spec: &Spec, id: &str) -> Result<Manager> {
    let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()).unwrap_or_else(|| default_cgroup_path(id));
    if g.systemd_cgroup {
        if !Path::new("/run/systemd/system").exists() {
            return Err(Error::Unsupported(
                "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use the cgroupfs driver".into(),
            ));
        }
        return Err(Error::Unsupported("--systemd-cgroup: the systemd cgroup driver is not supported yet".into()));
    }
    Ok(Manager::for_path(&path)?)
}

/// Creates a container: on return its init waits for `start`.
pub fn create(g: &Global, o: CreateOpts) -> Result<Created> {
    crate::id::validate(&o.id)?;
    let bundle =
        std::fs::canonicalize(&o.bundle).map_err(|e| Error::io(format!("bundle {}", o.bundle.display()), e))?;
    let spec = spec::load(&bundle)?;
    spec::validate(&spec, &bundle)?;
    let proc_ = spec.process().clone().unwrap_or_default();
    let terminal = proc_.terminal().unwrap_or(false);
    if terminal && o.console_socket.is_none() && o.console_fd.is_none() {
        return Err(Error::Invalid(
            "process.terminal is true: cannot allocate a tty without --console-socket when moat detaches".into(),
        ));
    }
    if !terminal && o.console_socket.is_some() {
        return Err(Error::Invalid("--console-socket given but process.terminal is false".into()));
    }
    let plan = Plan::from_spec(spec.linux().as_ref().and_then(|l| l.namespaces().as_deref()).unwrap_or(&[]))?;
    let cgroup = cgroup_manager(g, &spec, &o.id)?;
    let console = match (&o.console_fd, &o.console_socket) {
        (Some(_), _) => None,
        (None, Some(p)) if terminal => Some(crate::console::connect(p)?),
        _ => None,
    };
    let console = match o.console_fd {
        Some(fd) => Some(fd),
        None => console,
    };

    let mut c = Container::create(&g.root, &o.id)?;
    let mut abort = Abort { dir: Some(c.dir().to_path_buf()), cgroup: None, pids: Vec::new(), rootfs: None, pod: None };
    // the sandbox's own user namespace (sentry, --userns auto): the spec
    // saved has it; init builds from idmapped copies of the rootfs and the
    // bind sources, which stage 1 places
    let rootfs = spec::rootfs(&spec, &bundle)?;
    let auto = match (g.platform, g.userns) {
        (crate::Platform::Sentry, crate::Userns::Auto) => crate::userns::plan(&spec, &rootfs, &plan, c.dir())?,
        _ => None,
    };
    let (spec, init_spec, auto) = match auto {
        Some((auto, saved, for_init)) => (saved, for_init, Some(auto)),
        None => (spec.clone(), spec, None),
    };
    let auto_userns = auto.is_some();
    if auto.as_ref().is_some_and(|a| a.overlay.is_some()) {
        abort.rootfs = Some(rootfs.clone());
    }
    let plan = Plan::from_spec(spec.linux().as_ref().and_then(|l| l.namespaces().as_deref()).unwrap_or(&[]))?;
    c.save_spec(&spec)?;
    cgroup.create()?;
    // a cgroup with processes in it belongs to someone else (another
    // container, or moat's own): sharing it would let delete kill them
    if !cgroup.pids()?.is_empty() {
        return Err(Error::Invalid(format!(
            "linux.cgroupsPath: cgroup {} already has processes; refusing to share it",
            cgroup.location().dirs.first().map(|d| d.display().to_string()).unwrap_or_default()
        )));
    }
    abort.cgroup = Some(cgroup.clone());
    if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().clone()) {
        cgroup.apply(&r)?;
    }
    let start = {
        // the dir fd behind the short path is closed at once: no child inherits it
        let (_dirfd, sock_path) = c.short_path(START_SOCKET)?;
        UnixListener::bind(&sock_path).map_err(|e| Error::io("bind start socket", e))?
    };

    if g.platform == crate::Platform::Sentry
        && spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()).is_some_and(moat_jail::seccomp::uses_notify)
    {
        return Err(Error::Unsupported(
            "config.json: linux.seccomp: a notify profile (SCMP_ACT_NOTIFY) cannot be used with --platform sentry"
                .into(),
        ));
    }
    let mut sentry_control = match g.platform {
        crate::Platform::Sentry => Some(crate::boot::control_socket(&c)?),
        crate::Platform::Native => None,
    };
    let (parent, child) = Channel::pair()?;
    // the sandbox's /proc and /sys (sentry): made here, see moat_jail::pseudofs
    let mut pseudo = match g.platform {
        crate::Platform::Sentry => {
            pseudofs::Kind::ALL.into_iter().map(pseudofs::prepare).collect::<moat_jail::Result<Vec<_>>>()?
        }
        crate::Platform::Native => Vec::new(),
    };
    let mut extra_env = Vec::new();
    let mut preserve = o.preserve_fds;
    let n = crate::fds::listen_fds();
    if n > 0 {
        extra_env.push(format!("LISTEN_FDS={n}"));
        extra_env.push("LISTEN_PID=1".into());
        preserve += n;
    }
    let args = InitArgs {
        root: spec::rootfs(&init_spec, &bundle)?,
        spec: init_spec,
        plan: plan.clone(),
        userns: auto,
        staging: c.dir().join("rootfs"),
        channel: child,
        console,
        start,
        no_pivot: o.no_pivot,
        no_new_keyring: o.no_new_keyring,
        preserve_fds: preserve,
        extra_env,
        sentry: (g.platform == crate::Platform::Sentry)
            .then(|| crate::process::Filter { netstack: netstack(g), own: Vec::new() }),
        lock_fd: c.lock_fd(),
    };
    let stage1 = sys::fork_with(|| init::stage1(args)).map_err(|e| Error::io("fork", e))?;
    abort.pids.push(stage1);
    // our copies of the child's fds (channel end, console, start socket)
    // were moved into `args` and dropped with it in this process

    cgroup.add(stage1)?;
    parent.send(&Msg::Go)?;
    if plan.new_user() && !auto_userns {
        parent.expect(&Msg::UserNsReady)?;
        let linux = spec.linux().clone().unwrap_or_default();
        idmap::write(
            stage1,
            linux.uid_mappings().as_deref().unwrap_or(&[]),
            linux.gid_mappings().as_deref().unwrap_or(&[]),
        )?;
        parent.send(&Msg::MapsWritten)?;
    }
    let init_pid = match parent.recv()? {
        Msg::InitPid(p) => Pid::from_raw(p),
        Msg::Error(e) => return Err(Error::Init(e)),
        m => return Err(Error::Init(format!("unexpected {m:?}"))),
    };
    abort.pids.insert(0, init_pid);
    let _ = waitpid(stage1, None);
    abort.pids.retain(|p| *p != stage1);
    // stage 1 is gone: only init reads the channel now
    parent.send(&Msg::Go)?;
    let (pid_start, _) = procs::stat(init_pid).ok_or_else(|| Error::Init("container init died during setup".into()))?;

    let mut saved = Saved {
        oci_version: spec.version().clone(),
        id: o.id.clone(),
        pid: init_pid.as_raw(),
        pid_start,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: crate::time::now_rfc3339(),
        owner: owner_name(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup: Some(cgroup.location().clone()),
        started: false,
        platform: g.platform,
        netstack: netstack(g),
        pod: None,
    };
    if saved.oci_version.is_empty() {
        saved.oci_version = OCI_VERSION.into();
    }
    c.save(saved)?;

    parent.expect(&Msg::MountsReady)?;
    let state = state_json(&c, Status::Creating)?;
    if let Some(h) = spec.hooks() {
        hooks::run_all("prestart", h.prestart().as_deref().unwrap_or(&[]), &state)?;
        hooks::run_all("createRuntime", h.create_runtime().as_deref().unwrap_or(&[]), &state)?;
    }
    parent.send(&Msg::HooksDone(state))?;
    let mut backing = Vec::new();
    let mut sentry_up = false;
    loop {
        match parent.recv_with_fd()? {
            (Msg::Ready, _) => break,
            (Msg::Backing(kind), Some(fd)) => backing.push((kind, fd)),
            (Msg::SpawnSentry, _) => {
                let control = sentry_control.take().ok_or_else(|| Error::Init("the sentry twice".into()))?;
                let mut mounts = Vec::new();
                for (kind, fd) in backing.drain(..) {
                    let Some(i) = pseudo.iter().position(|p| Some(p.kind) == pseudofs::Kind::from_fstype(&kind)) else {
                        continue;
                    };
                    mounts.push(crate::boot::fs_mount(pseudo.swap_remove(i), fd));
                }
                // the ones the spec does not mount: nobody will serve them
                pseudo.clear();
                let mut sentry = crate::boot::Sentry::for_spec(&spec, &plan, g.strace, &cgroup, mounts);
                sentry.directfs = g.directfs;
                sentry.netstack = netstack(g);
                // the pod's interface: a guest of the netstack that has it,
                // or the netstack that takes it
                if sentry.netstack && g.network == crate::Network::Sandbox {
                    sentry.pod_owner = pod_owner(&g.root, c.dir(), init_pid);
                }
                if sentry.netstack && g.network == crate::Network::Sandbox && sentry.pod_owner.is_none() {
                    sentry.pod = take_pod(init_pid)?;
                    if let (Some(p), Some(netns)) = (&sentry.pod, netns_path(&spec)) {
                        let taken = crate::state::TakenPod {
                            netns,
                            index: p.index,
                            addrs: p.addrs.iter().map(ToString::to_string).collect(),
                            routes: p.routes.iter().map(ToString::to_string).collect(),
                        };
                        abort.pod = Some(taken.clone());
                        let mut saved = c.saved()?.clone();
                        saved.pod = Some(taken);
                        c.save(saved)?;
                    }
                }
                let n = sentry.mounts.len();
                let (to_us, from_sentry) =
                    std::os::unix::net::UnixStream::pair().map_err(|e| Error::io("socketpair", e))?;
                crate::boot::spawn(&c, control, sentry, &cgroup, init_pid, to_us)?;
                sentry_up = true;
                for (kind, fd) in crate::boot::receive_mounts(&from_sentry, n)? {
                    parent.send_with_fd(&Msg::PseudoMount(kind.fstype().into()), Some(fd.as_fd()))?;
                }
                parent.send(&Msg::Go)?;
            }
            (Msg::TreeReady, _) if sentry_up => {
                if let Some(root) =
                    crate::boot::hand_tree(&c, init_pid, (!g.directfs).then_some((&cgroup, g.shared_root)))?
                {
                    parent.send_with_fd(&Msg::ReplicaRoot, Some(root.as_fd()))?;
                }
                parent.send(&Msg::Go)?;
            }
            (Msg::SeccompFd, Some(fd)) if sentry_up => crate::boot::hand_over(&crate::boot::connect(&c)?, fd)?,
            (Msg::SeccompFd, Some(fd)) => forward_seccomp_fd(&spec, &c, fd)?,
            (Msg::Error(e), _) => return Err(Error::Init(e)),
            (m, _) => return Err(Error::Init(format!("unexpected {m:?}"))),
        }
    }
    if let Some(pf) = &o.pid_file {
        write_pid_file(pf, init_pid)?;
    }
    abort.disarm();
    Ok(Created { pid: init_pid })
}

/// The OCI state JSON for hooks, with the given status.
pub fn state_json(c: &Container, status: Status) -> Result<String> {
    let mut st = c.oci_state()?;
    st.status = status;
    st.pid = c.saved()?.pid;
    serde_json::to_string(&st).map_err(|e| Error::Invalid(e.to_string()))
}

/// Writes a pid file atomically (callers poll for it).
pub fn write_pid_file(path: &Path, pid: Pid) -> Result<()> {
    let tmp = path.with_extension("moat-tmp");
    std::fs::write(&tmp, pid.to_string()).map_err(|e| Error::io(format!("write pid file {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("write pid file {}", path.display()), e))
}

fn owner_name() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string())
}

/// Sends the seccomp notify fd to the profile's listener, with the
/// container process state, as runc does (`ContainerProcessState`).
fn forward_seccomp_fd(spec: &Spec, c: &Container, fd: OwnedFd) -> Result<()> {
    let s =
        spec.linux().as_ref().and_then(|l| l.seccomp().clone()).ok_or_else(|| Error::Invalid("no seccomp".into()))?;
    let path = s.listener_path().clone().ok_or_else(|| Error::Invalid("linux.seccomp.listenerPath missing".into()))?;
    let sock = std::os::unix::net::UnixStream::connect(&path)
        .map_err(|e| Error::io(format!("connect to seccomp listener {}", path.display()), e))?;
    let msg = serde_json::json!({
        "ociVersion": OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": c.saved()?.pid,
        "metadata": s.listener_metadata().clone().unwrap_or_default(),
        "state": c.oci_state()?,
    });
    let body = serde_json::to_vec(&msg).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::fdpass::send(sock.as_fd(), &body, Some(fd.as_fd())).map_err(|e| Error::io("send seccomp fd to listener", e))
}

/// Whether the sandbox gets a netstack of its own (the sentry platform,
/// `--network=sandbox` or `none`).
fn netstack(g: &Global) -> bool {
    g.platform == crate::Platform::Sentry && g.network != crate::Network::Host
}

/// The Sentry whose netstack has the interface of `init`'s network
/// namespace (another container under `root` took it: the pod's first,
/// as a Kubernetes pod's pause container): two connections to its control
/// socket, for calls and for tables, each announced at once, over which
/// the new Sentry becomes its guest ([`moat_sentry::platform::guest`]).
/// None if no running one has it.
fn pod_owner(root: &std::path::Path, ours: &std::path::Path, init: Pid) -> Option<(UnixStream, UnixStream)> {
    use moat_jail::ns::Id;
    use moat_sentry::platform::guest::{HELLO_CALLS, HELLO_TABLES};
    let theirs = Id::at(std::path::Path::new(&format!("/proc/{init}/ns/net"))).ok()?;
    for id in crate::state::list_ids(root) {
        let dir = root.join(&id);
        if dir == ours {
            continue;
        }
        let Some((saved, _)) = crate::state::Container::peek(root, &id) else { continue };
        let Some(pod) = saved.pod else { continue };
        if Id::at(&pod.netns).ok() != Some(theirs) {
            continue;
        }
        // (through the directory: the root may be too long for a socket's path)
        let Ok(d) = std::fs::File::open(&dir) else { continue };
        let path = format!("/proc/self/fd/{}/{}", std::os::fd::AsRawFd::as_raw_fd(&d), crate::boot::CONTROL_SOCKET);
        let connect = |hello: &[u8]| -> std::io::Result<UnixStream> {
            let s = UnixStream::connect(&path)?;
            crate::fdpass::send(s.as_fd(), hello, None)?;
            Ok(s)
        };
        match connect(HELLO_CALLS).and_then(|calls| Ok((calls, connect(HELLO_TABLES)?))) {
            Ok(both) => return Some(both),
            Err(e) => tracing::warn!("the pod's netstack (container {id}) does not answer: {e}"),
        }
    }
    None
}

/// The path of the network namespace the spec joins, if it joins one (one
/// moat makes goes with its sandbox).
fn netns_path(spec: &Spec) -> Option<PathBuf> {
    let namespaces = spec.linux().as_ref()?.namespaces().clone()?;
    namespaces.into_iter().find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)?.path().clone()
}

/// Gives the pod's network namespace back the addresses and routes its
/// sandbox's netstack took.
pub fn give_back_pod(t: &crate::state::TakenPod) -> Result<()> {
    fn parse<T: std::str::FromStr<Err = String>>(what: &[String]) -> Result<Vec<T>> {
        what.iter().map(|a| a.parse().map_err(Error::Invalid)).collect()
    }
    let addrs = parse(&t.addrs)?;
    let routes = parse(&t.routes)?;
    let ns = std::fs::File::open(&t.netns)
        .map_err(|e| Error::io(format!("open the pod's network namespace {}", t.netns.display()), e))?;
    moat_sentry::net::pod::give_back(ns.as_fd(), t.index, &addrs, &routes).map_err(Error::Init)
}

/// The pod's interface of `init`'s network namespace, taken over for the
/// netstack; None when init shares ours (the host's interfaces stay the
/// host's) or it has none with an address.
fn take_pod(init: Pid) -> Result<Option<moat_sentry::net::pod::Pod>> {
    use moat_jail::ns::Id;
    let theirs = std::fs::File::open(format!("/proc/{init}/ns/net"))
        .map_err(|e| Error::io("open the sandbox's network namespace", e))?;
    if Id::of(theirs.as_fd())? == Id::at(std::path::Path::new("/proc/self/ns/net"))? {
        return Ok(None);
    }
    moat_sentry::net::pod::take(theirs.as_fd()).map_err(|e| Error::Init(format!("take over the pod's interface: {e}")))
}
