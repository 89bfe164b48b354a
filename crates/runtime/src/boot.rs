//! Starting the Sentry (the `sentry` platform): a daemon process per
//! sandbox that owns the stubs' notify fds and serves their calls and the
//! sandbox's /proc and /sys.
//!
//! `create` binds the Sentry's control socket in the state dir, and when the
//! container's init asks for it (its setup done, its filter not yet loaded),
//! double-forks the Sentry (so it is nobody's child and outlives `moat
//! create`) into the container's cgroup: `delete` kills it with the rest, and
//! its memory counts against the container. Init's notify fd, and each
//! `exec`'d process's, reach it over the control socket.
//!
//! The Sentry lives in the sandbox's pid namespace (the watchdog joins it
//! for its child only): every pid it can name — for process_vm_readv,
//! pidfd_open, its own procfs of that namespace — is the sandbox's, so its
//! capabilities reach no host process. There it makes the FUSE mounts of
//! /proc and /sys (callers are then numbered as the sandbox numbers them)
//! and sends them to `create` for init. It is hidden from the sandbox's
//! /proc; a root program of the sandbox could still signal it, which only
//! ends its own container. It stays in the host's user namespace even when
//! the sandbox has one: the FUSE mounts belong to the host's, and the
//! owners the Sentry reads for them must be host ids (from inside, host
//! root's files would all read as the overflow id).
//!
//! The Sentry is confined before it serves: an empty, read-only mount
//! namespace, a pids-only procfs reached by fd (for /proc/TID/mem),
//! CAP_SYS_PTRACE and CAP_DAC_OVERRIDE effective (to open the memory of
//! stubs that changed uid), no_new_privs, and the
//! [`moat_jail::policy::sentry`] allowlist. Once init's file tree is
//! complete, `create` hands it the tree ([`hand_tree`]): its notify thread
//! chroots there and makes the stubs' changes to the tree as the caller,
//! raising for the step the id and file capabilities it keeps permitted.
//!
//! A sandbox with a user namespace of its own gets the Sentry's replayer
//! too ([`moat_sentry::vfs::remote`]): forked before the Sentry has any
//! thread, it joins that namespace, becomes root there, is confined like
//! the Sentry (the same allowlist, only the capabilities a caller may lend
//! it), and makes the changes to the tree inside the namespace, where a
//! caller's capabilities mean what they mean for the caller.
//!
//! The stubs never outlive the Sentry: its parent, a small watchdog that
//! also lives in the container's cgroup, waits for it and, however it ends
//! (crash, `kill -9`, or normally once every stub is gone), kills the
//! container's init through a pidfd — with a pid namespace, that ends every
//! process in it. An abnormal end is logged as an error and recorded in the
//! state dir (`sentry.exit`); the kernel's SIGKILL when init has ended is a
//! normal end.
//!
//! A sandbox whose spec brings no user namespace gets one of its own where
//! its files allow ([`crate::userns`]); the Sentry stays in the host's.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use moat_jail::cgroups::Manager;
use moat_jail::ns::Plan;
use moat_jail::{pseudofs, sys};
use moat_sentry::platform::notify::{FsKind, FsMount};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::state::Container;
use crate::{Error, Result};

/// The Sentry's control socket in the container directory.
pub const CONTROL_SOCKET: &str = "sentry.sock";

/// The empty directory that becomes the Sentry's root.
pub const EMPTY_ROOT: &str = "sentry-root";

/// Binds the control socket (before the Sentry exists, so exec never races it).
pub fn control_socket(c: &Container) -> Result<UnixListener> {
    let (_dir, path) = c.short_path(CONTROL_SOCKET)?;
    UnixListener::bind(&path).map_err(|e| Error::io("bind the sentry control socket", e))
}

/// Connects to a running Sentry's control socket.
pub fn connect(c: &Container) -> Result<UnixStream> {
    let (_dir, path) = c.short_path(CONTROL_SOCKET)?;
    UnixStream::connect(&path).map_err(|e| Error::io("connect to the sandbox's sentry", e))
}

/// Hands a notify fd to the Sentry.
pub fn hand_over(sock: &UnixStream, fd: OwnedFd) -> Result<()> {
    crate::fdpass::send(sock.as_fd(), b"fd", Some(fd.as_fd()))
        .map_err(|e| Error::io("hand the notify fd to the sentry", e))
}

/// Hands the Sentry the container's real file tree: the root of `init`
/// and the mount namespace that holds it (init then leaves it for the
/// read-only replica). Waits until the Sentry has entered it.
///
/// With a `gofer` (`--directfs=false`: the container's cgroup, and whether
/// its root may change beside the Sentry), starts the container's gofer on
/// that tree too, and makes the FUSE mount the Sentry serves from it: the
/// root of the stubs' view, returned for init.
pub fn hand_tree(c: &Container, init: nix::unistd::Pid, gofer: Option<(&Manager, bool)>) -> Result<Option<OwnedFd>> {
    let open = |what: &str, flags: OFlag| {
        nix::fcntl::open(format!("/proc/{init}/{what}").as_str(), flags | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::io(format!("open the container's {what}"), e))
    };
    let root = open("root", OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    let ns = open("ns/mnt", OFlag::O_RDONLY)?;
    let sock = connect(c)?;
    let mut view = None;
    match gofer {
        None => crate::fdpass::send_many(sock.as_fd(), b"tree", &[root.as_fd(), ns.as_fd()]),
        Some((cgroup, shared_root)) => {
            let to_gofer = start_gofer(cgroup, &ns)?;
            let dev = nix::fcntl::open("/dev/fuse", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| Error::io("open /dev/fuse for the gofer's tree", e))?;
            view = Some(moat_jail::replica::mount_gofer(&dev)?);
            let fds = [root.as_fd(), ns.as_fd(), to_gofer.as_fd(), dev.as_fd()];
            let what: &[u8] = if shared_root { b"tree+gofer,shared" } else { b"tree+gofer" };
            crate::fdpass::send_many(sock.as_fd(), what, &fds)
        }
    }
    .map_err(|e| Error::io("hand the file tree to the sentry", e))?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30))).map_err(|e| Error::io("wait for the sentry", e))?;
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut &sock, &mut answer).map_err(|e| Error::io("wait for the sentry", e))?;
    match answer.as_str() {
        "ok" => Ok(view),
        "" => Err(Error::Init("the sentry ended before it took the file tree".into())),
        why => Err(Error::Init(format!("the sentry: {why}"))),
    }
}

/// Starts the container's gofer: a daemon in the container's cgroup that
/// joins the mount namespace `ns` (whose root is the container's), makes
/// a private read-only copy of it, confines itself there
/// ([`moat_gofer::process`]) and serves it over 9P on a socket whose
/// other end is returned (for the Sentry). It ends when that end closes.
fn start_gofer(cgroup: &Manager, ns: &OwnedFd) -> Result<OwnedFd> {
    let (ours, theirs) = UnixStream::pair().map_err(|e| Error::io("socketpair for the gofer", e))?;
    let theirs = OwnedFd::from(theirs);
    let ns = ns.try_clone().map_err(|e| Error::io("dup", e))?;
    let cgroup = cgroup.clone();
    // (create's lock goes with the other inherited fds)
    sys::fork_with(move || {
        let _ = nix::unistd::setsid();
        if let Err(e) = cgroup.add(nix::unistd::getpid()) {
            tracing::error!("gofer: join the container's cgroup: {e}");
            return 1;
        }
        quiet_stdio();
        if let Err(e) = sys::close_inherited_fds(&[theirs.as_raw_fd(), ns.as_raw_fd()]) {
            tracing::error!("gofer: close inherited fds: {e}");
            return 1;
        }
        if let Err(e) = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNS) {
            tracing::error!("gofer: join the container's mount namespace: {e}");
            return 1;
        }
        drop(ns);
        let opts = moat_gofer::process::GoferOpts { dir: "/".into(), read_only: true, no_confine: false };
        match moat_gofer::process::run(opts, moat_gofer::process::Endpoint::Conn(theirs)) {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!("gofer: {e}");
                1
            }
        }
    })
    .map_err(|e| Error::io("fork the gofer", e))?;
    Ok(OwnedFd::from(ours))
}

/// The watchdog's way out when it cannot start the Sentry: the container's
/// init is killed (with it, the sandbox), and the exit code is 1.
fn end_init(init: &OwnedFd) -> i32 {
    let _ = sys::pidfd_kill(init.as_fd(), nix::sys::signal::Signal::SIGKILL);
    1
}

/// Where the watchdog records how the Sentry ended, if not normally.
pub const EXIT_FILE: &str = "sentry.exit";

/// What the Sentry of a sandbox is started with.
pub struct Sentry {
    /// the spec's hostname
    pub hostname: String,
    /// `--strace`
    pub strace: bool,
    /// the sandbox's /proc and /sys, as far as the spec mounts them
    pub mounts: Vec<FsMount>,
    /// the spec's sysctls
    pub sysctls: Vec<(String, String)>,
    /// the spec's memory limit, bytes
    pub memory_limit: Option<u64>,
    /// the container cgroup's memory usage file, open
    pub memory_usage: Option<std::fs::File>,
    /// the spec's mount destinations, in order
    pub mount_order: Vec<String>,
    /// the spec's domain name
    pub domainname: String,
    /// the spec's boottime offset (time namespace)
    pub boottime_offset: std::time::Duration,
    /// whether the sandbox has its own cgroup namespace
    pub cgroupns: bool,
    /// whether the sandbox has a user namespace of its own (the Sentry's
    /// changes to the tree are then made by its replayer, inside it)
    pub userns: bool,
    /// `--directfs`: false serves the stubs' view from the gofer (the
    /// Sentry then keeps CAP_SYS_ADMIN permitted, raised only to register
    /// a gofer's file as the backing file of an open FUSE file)
    pub directfs: bool,
    /// the Sentry's own netstack makes the app's internet sockets
    /// (`--network=sandbox` and `none`)
    pub netstack: bool,
    /// `--network=sandbox`: the pod's interface, taken over for the netstack
    pub pod: Option<moat_sentry::net::pod::Pod>,
    /// `--network=sandbox` in a pod whose interface another sandbox's
    /// netstack has: two connections to that Sentry's control socket
    /// (calls, tables), announced; it serves this sandbox's network calls
    /// ([`moat_sentry::platform::guest`])
    pub pod_owner: Option<(UnixStream, UnixStream)>,
}

impl Sentry {
    /// What the Sentry of the sandbox `spec` describes is started with.
    pub fn for_spec(spec: &Spec, plan: &Plan, strace: bool, cgroup: &Manager, mounts: Vec<FsMount>) -> Sentry {
        let linux = spec.linux().clone().unwrap_or_default();
        Sentry {
            hostname: spec.hostname().clone().unwrap_or_default(),
            strace,
            mounts,
            sysctls: linux.sysctl().clone().unwrap_or_default().into_iter().collect(),
            memory_limit: linux
                .resources()
                .as_ref()
                .and_then(|r| r.memory().as_ref())
                .and_then(|m| m.limit())
                .and_then(|l| u64::try_from(l).ok()),
            memory_usage: cgroup.memory_usage_file().and_then(|p| std::fs::File::open(p).ok()),
            mount_order: spec.mounts().iter().flatten().map(|m| m.destination().display().to_string()).collect(),
            domainname: spec.domainname().clone().unwrap_or_default(),
            boottime_offset: if plan.has(LinuxNamespaceType::Time) {
                boottime_offset(spec)
            } else {
                std::time::Duration::ZERO
            },
            cgroupns: plan.has(LinuxNamespaceType::Cgroup),
            userns: plan.new_user(),
            directfs: true,
            netstack: false,
            pod: None,
            pod_owner: None,
        }
    }
}

/// The spec's boottime offset, for a sandbox with its own time namespace.
fn boottime_offset(spec: &Spec) -> std::time::Duration {
    let offsets = spec.linux().as_ref().and_then(|l| l.time_offsets().clone()).unwrap_or_default();
    offsets
        .get("boottime")
        .map(|o| {
            let secs = u64::try_from(o.secs().unwrap_or(0)).unwrap_or(0);
            std::time::Duration::new(secs, o.nanosecs().unwrap_or(0))
        })
        .unwrap_or_default()
}

/// A FUSE connection of `create`'s and the instance init made for it, as the Sentry serves them.
pub fn fs_mount(p: pseudofs::Prepared, backing: OwnedFd) -> FsMount {
    let kind = match p.kind {
        pseudofs::Kind::Proc => FsKind::Proc,
        pseudofs::Kind::Sys => FsKind::Sys,
    };
    FsMount { kind, dev: p.dev, backing }
}

/// The other way round: what a served mount is to the jail.
fn pseudo_kind(k: FsKind) -> pseudofs::Kind {
    match k {
        FsKind::Proc => pseudofs::Kind::Proc,
        FsKind::Sys => pseudofs::Kind::Sys,
    }
}

/// Starts the Sentry daemon, which serves the notify fds handed over on
/// `control` (init's first, then each exec's) and the sandbox's /proc and
/// /sys at once, under a watchdog that ends the container `init` when the
/// Sentry ends. The Sentry lives in the sandbox's pid namespace: the pids
/// it can name, and so its capabilities' reach, are the sandbox's. It makes
/// the FUSE mounts of `s.mounts` there and sends each on `mounts_to` (the
/// kind's name, and the mount fd), for `create` to pass to init.
pub fn spawn(
    c: &Container,
    control: UnixListener,
    s: Sentry,
    cgroup: &Manager,
    init: nix::unistd::Pid,
    mounts_to: UnixStream,
) -> Result<()> {
    let init_fd = sys::pidfd_open(init).map_err(|e| Error::io("pidfd_open of the container init", e))?;
    let pidns = std::fs::File::open(format!("/proc/{init}/ns/pid"))
        .map_err(|e| Error::io("open the sandbox's pid namespace", e))?;
    let userns = match s.userns {
        true => Some(
            std::fs::File::open(format!("/proc/{init}/ns/user"))
                .map_err(|e| Error::io("open the sandbox's user namespace", e))?,
        ),
        false => None,
    };
    let exit_file = c.dir().join(EXIT_FILE);
    let lock_fd = c.lock_fd();
    let root = c.dir().join(EMPTY_ROOT);
    std::fs::create_dir_all(&root).map_err(|e| Error::io(format!("create {}", root.display()), e))?;
    // libseccomp probes the kernel on first use (loading test filters); do
    // it before the allowlist is in place
    let _ = libseccomp::get_api();
    let cgroup = cgroup.clone();
    sys::fork_with(move || {
        // the watchdog and the Sentry outlive create: they must not keep its lock
        let _ = nix::unistd::close(lock_fd);
        let _ = nix::unistd::setsid();
        if cgroup.add(nix::unistd::getpid()).is_err() {
            return end_init(&init_fd);
        }
        quiet_stdio();
        // the replayer stays out of the sandbox's pid namespace: no process
        // of the sandbox can name it (signal, stop, limit it), though it
        // runs as container root's uid
        let replayer = match userns.map(|ns| start_replayer(ns, &root)).transpose() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("sentry: start its replayer: {e}");
                return end_init(&init_fd);
            }
        };
        // `--network=host`: the app's internet sockets are made by a maker
        // in its network namespace (the Sentry leaves it), out of the
        // sandbox's pid namespace as the replayer is
        let maker = match s.netstack {
            true => None,
            false => match start_maker(&init_fd, &root) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!("sentry: start its socket maker: {e}");
                    return end_init(&init_fd);
                }
            },
        };
        // the Sentry (our child) goes into the sandbox's pid namespace; we stay out
        let joined = nix::sched::setns(&pidns, nix::sched::CloneFlags::CLONE_NEWPID);
        let Ok(init_for_sentry) = init_fd.try_clone().map_err(|_| ()).and_then(|f| joined.map(|_| f).map_err(|_| ()))
        else {
            return end_init(&init_fd);
        };
        drop(pidns);
        // (a panic's message, which its stdio would lose, to the watchdog)
        let Ok((panics, panic_to)) = crate::panic_report::pipe() else {
            return end_init(&init_fd);
        };
        let sentry = sys::fork_with(move || {
            let panic_fd = panic_to.as_raw_fd();
            crate::panic_report::report_to(panic_to);
            // it reaches stub memory through a procfs of its own, of the
            // sandbox's pid namespace, with nothing but the pid directories
            let proc = match sys::procfs_pids_only() {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("sentry: mount a pids-only procfs: {e}");
                    return 1;
                }
            };
            if let Err(e) = send_mounts(&s.mounts, &mounts_to) {
                // create reports it: the Sentry's own stderr goes nowhere
                let _ = crate::fdpass::send(mounts_to.as_fd(), format!("error: {e}").as_bytes(), None);
                return 1;
            }
            drop(mounts_to);
            // nothing of create's (state dir, channel, console, pidfds) goes into confinement
            let mut keep = vec![control.as_raw_fd(), proc.as_raw_fd(), init_for_sentry.as_raw_fd(), panic_fd];
            keep.extend(replayer.as_ref().map(|r| r.as_raw_fd()));
            keep.extend(maker.as_ref().map(|m| m.as_raw_fd()));
            for m in &s.mounts {
                keep.extend([m.dev.as_raw_fd(), m.backing.as_raw_fd()]);
            }
            keep.extend(s.memory_usage.as_ref().map(|f| f.as_raw_fd()));
            keep.extend(s.pod.iter().flat_map(|p| p.packets.iter().map(|f| f.as_raw_fd())));
            keep.extend(s.pod_owner.iter().flat_map(|(calls, tables)| [calls.as_raw_fd(), tables.as_raw_fd()]));
            if let Err(e) = sys::close_inherited_fds(&keep) {
                tracing::error!("sentry: close inherited fds: {e}");
                return 1;
            }
            // a POSIX message queue is charged to its creator's real uid:
            // one the Sentry made for a caller would count against host
            // root's. It may make none (the host makes them, as the caller)
            if let Err(e) = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_MSGQUEUE, 0, 0) {
                tracing::error!("sentry: RLIMIT_MSGQUEUE: {e}");
                return 1;
            }
            // a pidfd per remembered thread, the callers' fds it takes a
            // copy of: not within a caller's soft limit of 1024
            use nix::sys::resource::{getrlimit, setrlimit, Resource::RLIMIT_NOFILE};
            if let Err(e) = getrlimit(RLIMIT_NOFILE).and_then(|(_, hard)| setrlimit(RLIMIT_NOFILE, hard, hard)) {
                tracing::warn!("sentry: RLIMIT_NOFILE: {e}");
            }
            // a network namespace of its own, with nothing in it: the app's
            // unix sockets are made here, so the abstract names they bind
            // and reach are the sandbox's alone (not the host's, nor a
            // pod's), and the Sentry itself reaches no network but the
            // pod's interface it was handed
            if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
                tracing::error!("sentry: a network namespace of its own: {e}");
                return 1;
            }
            // ptrace access to stub memory, and DAC override to open the
            // /proc/TID/mem of a stub that switched to another uid; and
            // what acting as a caller in the tree takes
            let mut keep: Vec<caps::Capability> =
                [caps::Capability::CAP_SYS_PTRACE].iter().chain(ACTING_CAPS).copied().collect();
            if !s.directfs {
                keep.push(caps::Capability::CAP_SYS_ADMIN);
            }
            if let Err(e) = confine(&root, &keep, None) {
                tracing::error!("sentry: {e}");
                return 1;
            }
            // between calls only these two are effective; the rest stay
            // permitted, raised by the thread that needs them for a step
            let effective = [caps::Capability::CAP_SYS_PTRACE, caps::Capability::CAP_DAC_OVERRIDE];
            if let Err(e) = caps::set(None, caps::CapSet::Effective, &effective.into_iter().collect()) {
                tracing::error!("sentry: lower its effective capabilities: {e}");
                return 1;
            }
            // one per sandbox, for the life of this process (its FUSE threads share it)
            let kernel: &'static mut moat_sentry::kernel::Kernel =
                Box::leak(Box::new(moat_sentry::kernel::Kernel::new(&s.hostname)));
            kernel.sysctls = s.sysctls;
            kernel.memory_limit = s.memory_limit;
            kernel.memory_usage = s.memory_usage;
            kernel.mount_order = s.mount_order;
            kernel.boottime_offset = s.boottime_offset;
            kernel.cgroupns = s.cgroupns;
            kernel.replayer = std::sync::Mutex::new(replayer);
            if let Some(m) = maker {
                let m = moat_sentry::net::maker::Maker::new(m);
                // without a netstack, the interface ioctls an app makes on its
                // unix sockets are made on a socket of its own namespace
                match m.socket(libc::AF_INET, libc::SOCK_DGRAM, 0, 0, 0) {
                    Ok(sock) => kernel.ifsock = Some(sock),
                    Err(e) => {
                        tracing::error!("sentry: a socket in the sandbox's network namespace: {e}");
                        return 1;
                    }
                }
                kernel.maker = Some(m);
            }
            if let Some((calls, tables)) = s.pod_owner {
                match moat_sentry::platform::guest::Owner::hello(calls, tables, proc.as_fd()) {
                    Ok(o) => kernel.pod_owner = Some(o),
                    Err(e) => {
                        tracing::error!("sentry: reach the pod's netstack: {e}");
                        return 1;
                    }
                }
            } else if s.netstack {
                match moat_sentry::net::Netstack::new(s.pod) {
                    Ok(net) => kernel.net = Some(net),
                    Err(e) => {
                        tracing::error!("sentry: start the netstack: {e}");
                        return 1;
                    }
                }
            }
            if !s.domainname.is_empty() {
                kernel.set_domainname(s.domainname);
            }
            let opts = moat_sentry::platform::notify::Options { strace: s.strace };
            let init = Some(init_for_sentry);
            match moat_sentry::platform::notify::serve(None, Some(control), proc, s.mounts, init, kernel, opts) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("sentry: {e}");
                    1
                }
            }
        });
        // (the replayer's other end went with the Sentry's closure: the
        // Sentry alone holds it, and the replayer sees it close when it ends)
        watch(sentry.ok(), &init_fd, &exit_file, &panics)
    })
    .map_err(|e| Error::io("fork the sentry", e))?;
    Ok(())
}

/// Makes the FUSE mounts (here, in the sandbox's pid namespace) and sends
/// them to `create`.
fn send_mounts(mounts: &[FsMount], to: &UnixStream) -> Result<()> {
    for m in mounts {
        let kind = pseudo_kind(m.kind);
        let mnt = pseudofs::mount(&m.dev, kind)?;
        crate::fdpass::send(to.as_fd(), kind.fstype().as_bytes(), Some(mnt.as_fd()))
            .map_err(|e| Error::io("send a pseudo filesystem mount", e))?;
    }
    Ok(())
}

/// Receives the mounts [`spawn`]'s Sentry makes: `n` of them, by kind.
pub fn receive_mounts(from: &UnixStream, n: usize) -> Result<Vec<(pseudofs::Kind, OwnedFd)>> {
    from.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .map_err(|e| Error::io("wait for the sentry's mounts", e))?;
    let mut out = Vec::new();
    for _ in 0..n {
        let mut buf = [0u8; 1024];
        let (len, fd) = crate::fdpass::recv(from.as_fd(), &mut buf).map_err(|e| Error::io("receive a mount", e))?;
        let text = String::from_utf8_lossy(&buf[..len]);
        match (pseudofs::Kind::from_fstype(&text), fd) {
            (Some(k), Some(fd)) => out.push((k, fd)),
            _ => {
                let why = text.strip_prefix("error: ").unwrap_or("it ended");
                return Err(Error::Init(format!("the sentry could not make the sandbox's /proc and /sys: {why}")));
            }
        }
    }
    Ok(out)
}

/// The watchdog: waits for the Sentry, then ends the container.
fn watch(sentry: Option<nix::unistd::Pid>, init: &OwnedFd, exit_file: &std::path::Path, panics: &OwnedFd) -> i32 {
    use nix::sys::wait::WaitStatus;
    let status = match sentry {
        Some(pid) => waitpid(pid, None).ok(),
        None => None,
    };
    // the Sentry lives in the sandbox's pid namespace: when the container's
    // init ends, the kernel kills it too, and that is a normal end
    // (the kernel may kill the Sentry with the namespace a moment before
    // init's pidfd says init has ended: a SIGKILL waits a little for it)
    let wait_for_init = match status {
        Some(nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)) => 1000u16,
        _ => 0,
    };
    let init_gone = nix::poll::poll(
        &mut [nix::poll::PollFd::new(init.as_fd(), nix::poll::PollFlags::POLLIN)],
        nix::poll::PollTimeout::from(wait_for_init),
    )
    .is_ok_and(|n| n > 0);
    let abnormal = match status {
        Some(WaitStatus::Exited(_, 0)) => None,
        Some(WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)) if init_gone => None,
        Some(WaitStatus::Exited(_, c)) => Some(format!("the sentry exited with status {c}")),
        Some(WaitStatus::Signaled(_, s, _)) => Some(format!("the sentry was killed by {s}")),
        _ => Some("the sentry could not be started".to_string()),
    };
    // (a panic's own words, when it was one)
    let abnormal = abnormal.map(|why| match crate::panic_report::read(panics) {
        Some(panic) => format!("{why} ({panic})"),
        None => why,
    });
    if let Some(why) = &abnormal {
        tracing::error!("{why}: ending the container");
        let _ = std::fs::write(exit_file, format!("{why}\n"));
    }
    let _ = sys::pidfd_kill(std::os::fd::AsFd::as_fd(init), nix::sys::signal::Signal::SIGKILL);
    i32::from(abnormal.is_some())
}

/// What acting as a caller in the tree takes: the ids, the root to enter,
/// and the file capabilities a caller may hold (lent only as far as it
/// holds them).
const ACTING_CAPS: &[caps::Capability] = &[
    caps::Capability::CAP_SYS_CHROOT,
    caps::Capability::CAP_SETUID,
    caps::Capability::CAP_SETGID,
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_DAC_READ_SEARCH,
    caps::Capability::CAP_FOWNER,
    caps::Capability::CAP_FSETID,
    caps::Capability::CAP_MKNOD,
    caps::Capability::CAP_LINUX_IMMUTABLE,
    caps::Capability::CAP_SETFCAP,
];

/// Confines the Sentry, or (`userns`) its replayer inside the sandbox's
/// user namespace, to the empty `root` with the Sentry's allowlist.
fn confine(
    root: &std::path::Path,
    keep_caps: &[caps::Capability],
    userns: Option<std::os::fd::BorrowedFd<'_>>,
) -> moat_jail::Result<()> {
    let policy = moat_jail::policy::sentry::policy();
    moat_jail::confine::confine(&moat_jail::confine::Confinement {
        tree: root,
        read_only: true,
        keep_caps,
        policy: Some(&policy),
        join_userns: userns,
    })
}

/// Starts the Sentry's socket maker ([`moat_sentry::net::maker`]) for a
/// sandbox whose init is `init` (a pidfd): a process of its own in init's
/// network namespace, confined as the Sentry is (`root`, the same
/// allowlist) with only CAP_SETUID and CAP_SETGID (for each caller's
/// file-system ids). Returns the Sentry's end of its socket.
fn start_maker(init: &OwnedFd, root: &std::path::Path) -> Result<OwnedFd> {
    let root = root.to_path_buf();
    let init_fd = init.as_raw_fd();
    start_helper("socket maker", move |sock| {
        // SAFETY: the child owns its copy of init's pidfd; nothing else closes it.
        let init = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(init_fd) };
        nix::sched::setns(&init, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::io("join the sandbox's network namespace", e))?;
        drop(init);
        sys::close_inherited_fds(&[sock.as_raw_fd()]).map_err(|e| Error::io("close inherited fds", e))?;
        confine(&root, &[caps::Capability::CAP_SETUID, caps::Capability::CAP_SETGID], None)?;
        moat_sentry::net::maker::serve(sock.as_fd()).map_err(|e| Error::io("serve", e))
    })
}

/// Forks a helper of the Sentry's (`what`, for its log lines) that runs
/// `main` on its end of a SOCK_SEQPACKET socketpair; returns the Sentry's.
fn start_helper(what: &'static str, main: impl FnOnce(OwnedFd) -> Result<()>) -> Result<OwnedFd> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::io(format!("socketpair for the {what}"), e))?;
    let theirs_fd = theirs.as_raw_fd();
    sys::fork_with(move || {
        // SAFETY: the child owns its copy of the socket; nothing else closes it.
        let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(theirs_fd) };
        match main(sock) {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!("sentry {what}: {e}");
                1
            }
        }
    })
    .map_err(|e| Error::io(format!("fork the {what}"), e))?;
    drop(theirs);
    Ok(ours)
}

/// Starts the Sentry's replayer ([`moat_sentry::vfs::remote`]) for a sandbox
/// whose user namespace is `userns`: a process of its own, inside that
/// namespace as its root, confined as the Sentry is (`root`, the same
/// allowlist) with only the capabilities a caller may lend it. Returns the
/// Sentry's end of its socket.
fn start_replayer(userns: std::fs::File, root: &std::path::Path) -> Result<OwnedFd> {
    let root = root.to_path_buf();
    start_helper("replayer", move |sock| replayer_main(sock, userns, &root))
}

fn replayer_main(sock: OwnedFd, userns: std::fs::File, root: &std::path::Path) -> Result<()> {
    // a procfs where its own pid names it (Arg::Link), taken before confinement
    let proc = nix::fcntl::open("/proc", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open /proc", e))?;
    // it ends when the Sentry's end of its socket closes (a parent-death
    // signal would not hold: every change of its fsuid clears it)
    sys::close_inherited_fds(&[sock.as_raw_fd(), userns.as_raw_fd(), proc.as_raw_fd()])
        .map_err(|e| Error::io("close inherited fds", e))?;
    // as the Sentry: it may make no message queue (the host does, as the caller)
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_MSGQUEUE, 0, 0)
        .map_err(|e| Error::io("RLIMIT_MSGQUEUE", e))?;
    // the namespace is joined once the empty root is ours (its root may not
    // search the directories above the state dir)
    confine(root, ACTING_CAPS, Some(std::os::fd::AsFd::as_fd(&userns)))?;
    drop(userns);
    let me = std::process::id();
    let map = |name: &str| -> Result<moat_sentry::vfs::remote::IdMap> {
        let fd = nix::fcntl::openat(
            &proc,
            format!("{me}/{name}").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(format!("open its {name}"), e))?;
        // plain reads: std's would statx first, which the allowlist refuses
        let mut text = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            match nix::unistd::read(&fd, &mut buf).map_err(|e| Error::io(format!("read its {name}"), e))? {
                0 => break,
                n => text.extend_from_slice(&buf[..n]),
            }
        }
        Ok(moat_sentry::vfs::remote::IdMap::parse(&String::from_utf8_lossy(&text)))
    };
    let (uids, gids) = (map("uid_map")?, map("gid_map")?);
    // none effective between calls: each is raised for its step
    caps::clear(None, caps::CapSet::Effective).map_err(|e| Error::Init(format!("lower its capabilities: {e}")))?;
    moat_sentry::vfs::remote::serve(sock, proc, uids, gids).map_err(|e| Error::io("serve", e))
}

/// The Sentry must not hold the caller's stdio open (a shim waits for EOF on it).
fn quiet_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for target in 0..3 {
            let _ = sys::dup_onto(std::os::fd::AsFd::as_fd(&null), target);
        }
    }
}
