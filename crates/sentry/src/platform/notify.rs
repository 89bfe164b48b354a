//! The seccomp user-notification loop: receive a served call, run its
//! handler, answer. One Sentry serves every filter of its sandbox: the
//! container's init and each `exec`'d process bring their own notify fd,
//! handed over on the Sentry's control socket. The loop ends when every
//! notify fd has hung up (all processes using the filters are gone).
//! The network calls of a pod's other sandboxes, which their Sentries
//! forward on connections to the control socket, are served on a thread
//! per sandbox ([`super::guest`]); a guest's own loop forwards them.
//!
//! Handlers run on the loop's thread; a call that may block (today:
//! reopening a FIFO by name) goes to a worker ([`super::workers`]), which
//! answers it itself, so every other stub is still served meanwhile.

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::fds::{Loop, StubFds};
use super::guest::Notification;
use super::mem::ProcMem;
use super::workers::Workers;
use crate::fs::fuse::{Filesystem, Session};
use crate::fs::proc::ProcFs;
use crate::fs::sys::SysFs;
use crate::kernel::Kernel;
use crate::syscalls::{table::TABLE, Call, Class, Entry, Reply};

/// How the loop reports what it serves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// log every served call with its arguments and result (`--strace`)
    pub strace: bool,
}

/// SECCOMP_IOCTL_NOTIF_SET_FLAGS (Linux 6.6): _IOW('!', 4, __u64)
const NOTIF_SET_FLAGS: u64 = 0x4008_2104;
/// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: wake the Sentry on the caller's CPU
const FD_SYNC_WAKE_UP: u64 = 1;

/// Asks the kernel to hand each notification over synchronously (the
/// Sentry runs on the caller's CPU while the caller waits): fewer cross-CPU
/// wake-ups. Older kernels refuse; then nothing changes.
fn sync_wake_up(fd: &OwnedFd) {
    if let Err(e) = crate::platform::mem::ioctl_u64(fd.as_fd(), NOTIF_SET_FLAGS, FD_SYNC_WAKE_UP) {
        tracing::debug!("sentry: no synchronous wake-up ({e})");
    }
}

/// Which of the Sentry's filesystems a FUSE mount shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// the sandbox's /proc
    Proc,
    /// the sandbox's /sys
    Sys,
}

/// A Sentry filesystem mounted over FUSE in the stubs' view.
pub struct FsMount {
    /// what it shows
    pub kind: FsKind,
    /// the /dev/fuse fd the mount was made with
    pub dev: OwnedFd,
    /// the real filesystem of the sandbox behind it (a procfs of its pid
    /// namespace, a sysfs of its network namespace), held by the Sentry only
    pub backing: OwnedFd,
}

/// Serves `first` (or, if `None`, the first notify fd that arrives on
/// `control`), and every notify fd that arrives on `control` after, until
/// all of them have hung up — or, if none ever came, until `init` (a pidfd
/// of the container's init) exits. `proc` is a directory fd of the host's
/// procfs (stub memory is reached through /proc/TID/mem); `mounts` are the
/// filesystems to serve alongside, each on a thread of its own: a handler
/// of the loop may touch them (fstat of a caller's fd that is a /proc file,
/// stub memory mapped from one), and must not wait on itself.
pub fn serve(
    first: Option<OwnedFd>,
    control: Option<UnixListener>,
    proc: OwnedFd,
    mounts: Vec<FsMount>,
    init: Option<OwnedFd>,
    kernel: &'static Kernel,
    opts: Options,
) -> std::io::Result<()> {
    let mut fds: Vec<OwnedFd> = first.into_iter().collect();
    fds.iter().for_each(sync_wake_up);
    let mut seen = !fds.is_empty();
    let mut warned: HashSet<String> = HashSet::new();
    let dispatch = Dispatch::new();
    for m in mounts {
        let fs: Box<dyn Filesystem + Send> = match m.kind {
            FsKind::Proc => Box::new(ProcFs::new(m.backing, proc.try_clone()?, kernel)),
            FsKind::Sys => Box::new(SysFs::new(m.backing)),
        };
        let mut session = Session::new(m.dev, fs);
        // it ends when the mount goes (the connection is aborted with the
        // sandbox's mount namespace), or with the process
        std::thread::Builder::new().spawn(move || loop {
            match session.handle_one() {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::error!("sentry: a FUSE mount: {e}");
                    return;
                }
            }
        })?;
    }
    let mut init_gone = init.is_none();
    // a guest of the pod's netstack watches its connection to the owner
    let mut owner_conn = kernel.pod_owner.as_ref().and_then(|o| o.watched());
    let workers = Workers::new();
    let tasks = super::tasks::Tasks::new();
    while !(fds.is_empty() && (seen || init_gone)) {
        let (ready, hung, new_conn, init_ended, owner_lost) = {
            let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN)).collect();
            let control_at = pfds.len();
            if let Some(l) = &control {
                pfds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
            }
            let init_at = pfds.len();
            if let Some(i) = init.as_ref().filter(|_| !init_gone) {
                pfds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
            }
            let owner_at = pfds.len();
            if let Some(o) = &owner_conn {
                pfds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
            }
            let end = pfds.len();
            // with workers out, tick: a caller that stops waiting frees its worker
            let timeout = if workers.busy() { PollTimeout::from(100u16) } else { PollTimeout::NONE };
            match poll(&mut pfds, timeout) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            let mut ready = Vec::new();
            let mut hung = Vec::new();
            for (i, p) in pfds.iter().enumerate().take(fds.len()) {
                let rev = p.revents().unwrap_or(PollFlags::empty());
                if rev.contains(PollFlags::POLLIN) {
                    ready.push(i);
                } else if rev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
                    hung.push(i);
                }
            }
            let revents = |i: usize| pfds.get(i).and_then(|p| p.revents()).unwrap_or(PollFlags::empty());
            let new_conn = control.is_some() && revents(control_at).contains(PollFlags::POLLIN);
            let init_ended = init_at < owner_at && !revents(init_at).is_empty();
            let owner_lost = owner_at < end && !revents(owner_at).is_empty();
            (ready, hung, new_conn, init_ended, owner_lost)
        };
        init_gone |= init_ended;
        if owner_lost {
            // (it never writes on this connection: readable is its end)
            if let Some(o) = &kernel.pod_owner {
                tracing::warn!("sentry: the pod's netstack is gone: network calls fail with ENETDOWN");
                o.lost();
            }
            owner_conn = None;
        }
        workers.tend();
        for i in ready {
            serve_one(
                fds[i].as_fd(),
                proc.as_fd(),
                &dispatch,
                kernel,
                opts,
                &mut warned,
                Loop { workers: &workers, tasks: &tasks },
            );
        }
        for i in hung.into_iter().rev() {
            fds.swap_remove(i);
        }
        if new_conn {
            if let Some(l) = &control {
                if let Ok((conn, _)) = l.accept() {
                    match recv_control(conn.as_fd()) {
                        // (threads unnamed: naming one is a prctl the allowlist refuses)
                        Some(Control::GuestCalls) => {
                            let serving = std::thread::Builder::new().spawn(move || {
                                if let Some(proc) = super::guest::receive_procfs(conn.as_fd()) {
                                    serve_guest(conn, proc, kernel, opts);
                                }
                            });
                            if let Err(e) = serving {
                                tracing::error!("sentry: serve a guest sandbox: {e}");
                            }
                            continue;
                        }
                        Some(Control::GuestTables) => {
                            let own = proc.try_clone();
                            let serving = std::thread::Builder::new().spawn(move || {
                                let own = own.ok();
                                super::guest::serve_tables(conn, |asked| pod_table(kernel, own.as_ref(), asked))
                            });
                            if let Err(e) = serving {
                                tracing::error!("sentry: serve a guest sandbox: {e}");
                            }
                            continue;
                        }
                        Some(Control::Notify(fd)) => {
                            sync_wake_up(&fd);
                            fds.push(fd);
                            seen = true;
                        }
                        // entered on this thread, which serves every call
                        // the sender waits for the answer: the stubs' view
                        // turns read-only only once the Sentry is in the tree
                        Some(Control::Tree(root, ns, gofer)) => {
                            let remote = kernel.replayer.lock().ok().and_then(|mut r| r.take());
                            let entered = proc
                                .try_clone()
                                .map_err(|_| Errno::EMFILE)
                                .and_then(|p| {
                                    crate::vfs::Tree::enter(root, ns, p, remote.map(crate::vfs::remote::Remote::new))
                                })
                                .map_err(|e| e.to_string())
                                .and_then(|mut t| match gofer {
                                    Some(g) => {
                                        let (sharing, devices) = sharing(&t, kernel, g.shared);
                                        let cache = crate::fs::gofer::spawn(g.sock, g.dev, sharing)
                                            .map_err(|e| e.to_string())?;
                                        t.viewed_through_gofer(crate::vfs::view::View::new(cache, devices));
                                        Ok(t)
                                    }
                                    None => Ok(t),
                                })
                                .and_then(|t| kernel.tree.set(t).map_err(|_| "a second tree".to_string()));
                            let answer = match entered {
                                Ok(()) => "ok".to_string(),
                                Err(e) => format!("cannot enter the container's tree: {e}"),
                            };
                            let _ = nix::unistd::write(&conn, answer.as_bytes());
                        }
                        None => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// With `--directfs=false`: the gofer's socket, and the FUSE connection of
/// the stubs' view to serve from it.
struct GoferView {
    sock: OwnedFd,
    dev: OwnedFd,
    /// `--file-access=shared`: the container's root may change beside the Sentry
    shared: bool,
}

/// What of the view may change beside the Sentry: the root with
/// `--file-access=shared`, and below each of the spec's mounts (found in
/// the tree by its destination) but the Sentry's own and those under /dev
/// (the kernel's own in the view). With it, the devices of the files the
/// view shows: the root's and those mounts'.
fn sharing(
    tree: &crate::vfs::Tree,
    kernel: &Kernel,
    all: bool,
) -> (crate::fs::gofer::Sharing, std::collections::HashSet<u64>) {
    let stat_of = |d: &[u8]| tree.find(d, None).ok().and_then(|fd| nix::sys::stat::fstat(&fd).ok());
    let mounts: Vec<_> = kernel
        .mount_order
        .iter()
        .map(|d| crate::vfs::absolute(b"/", d.as_bytes()))
        .filter(|d| !crate::vfs::pseudo(d) && d != b"/dev" && !d.starts_with(b"/dev/"))
        .filter_map(|d| stat_of(&d))
        .collect();
    let roots = mounts.iter().map(|st| moat_gofer::server::path_of(st.st_dev, st.st_ino)).collect();
    let devices = mounts.iter().chain(stat_of(b"/").as_ref()).map(|st| st.st_dev).collect();
    (crate::fs::gofer::Sharing { all, roots }, devices)
}

/// What arrives on the control socket.
enum Control {
    /// a notify fd (init's, or an exec'd process's)
    Notify(OwnedFd),
    /// the container's real tree: its root, and the mount namespace holding
    /// it; with `--directfs=false`, the gofer's view
    Tree(OwnedFd, OwnedFd, Option<GoferView>),
    /// another sandbox of the pod, whose network calls come on this
    /// connection from now on, after its procfs ([`super::guest`])
    GuestCalls,
    /// the same sandbox's connection for its /proc/net tables
    GuestTables,
}

/// A /proc/net table of the pod, for a guest: the stack's, or the unix
/// sockets of this Sentry's network namespace (`proc`, its procfs), less
/// the stack's own socketpairs.
fn pod_table(kernel: &Kernel, proc: Option<&OwnedFd>, asked: super::guest::Asked) -> String {
    match asked {
        super::guest::Asked::Net(t) => kernel.net.as_ref().map(|n| n.lock().table(t)).unwrap_or_default(),
        super::guest::Asked::Unix => {
            proc.and_then(|p| crate::net::table::unix_of(p, kernel.net.as_deref()).ok()).unwrap_or_default()
        }
    }
}

/// Serves the network calls a guest sandbox forwards on `conn`, until it
/// hangs up; `proc` is its procfs.
fn serve_guest(conn: std::os::unix::net::UnixStream, proc: OwnedFd, kernel: &'static Kernel, opts: Options) {
    let dispatch = Dispatch::new();
    let mut warned = HashSet::new();
    let workers = Workers::new();
    let tasks = super::tasks::Tasks::new();
    loop {
        // with workers out, tick: a caller that stops waiting frees its worker
        let timeout = if workers.busy() { PollTimeout::from(100u16) } else { PollTimeout::NONE };
        let mut p = [PollFd::new(conn.as_fd(), PollFlags::POLLIN)];
        match poll(&mut p, timeout) {
            Err(Errno::EINTR) | Ok(0) => {
                workers.tend();
                continue;
            }
            Err(_) => break,
            Ok(_) => {}
        }
        let Some((req, pidfd, notify)) = super::guest::receive(conn.as_fd()) else { break };
        let loop_ = Loop { workers: &workers, tasks: &tasks };
        let fds = StubFds::forwarded(proc.as_fd(), req.pid, notify.as_fd(), req.id, loop_, pidfd.as_fd());
        let mem = ProcMem::forwarded(proc.as_fd(), req.pid, notify.as_fd(), req.id);
        // only what a guest forwards (its Sentry is trusted; the check
        // keeps the handlers that would need the caller's own Sentry away)
        if !dispatch.entry(req.syscall).is_some_and(|e| super::guest::forwarded(e.name, &req.args, &mem)) {
            let _ = ScmpNotifResp::new_error(req.id, -(Errno::EPERM as i32), ScmpNotifRespFlags::empty())
                .respond(notify.as_raw_fd());
            continue;
        }
        serve_req(&req, notify.as_fd(), &mem, &fds, &dispatch, kernel, opts, &mut warned);
        workers.tend();
    }
    // the guest is gone: its callers' waits end (each worker holds the
    // caller's socket, which would keep its port)
    while workers.busy() {
        workers.tend();
        // (poll as a sleep: the allowlist has no nanosleep)
        let _ = poll(&mut [], PollTimeout::from(100u16));
    }
}

/// One message on the control socket, as what it asks.
fn recv_control(sock: BorrowedFd<'_>) -> Option<Control> {
    let (text, mut fds) = super::guest::recv_with_fds(sock, 64)?;
    match (text.as_slice(), fds.len()) {
        (super::guest::HELLO_CALLS, 0) => Some(Control::GuestCalls),
        (super::guest::HELLO_TABLES, 0) => Some(Control::GuestTables),
        (b"fd", 1) => fds.pop().map(Control::Notify),
        (b"tree", 2) => {
            let ns = fds.pop()?;
            let root = fds.pop()?;
            Some(Control::Tree(root, ns, None))
        }
        (b"tree+gofer" | b"tree+gofer,shared", 4) => {
            let dev = fds.pop()?;
            let sock = fds.pop()?;
            let ns = fds.pop()?;
            let root = fds.pop()?;
            let shared = text.ends_with(b",shared");
            Some(Control::Tree(root, ns, Some(GoferView { sock, dev, shared })))
        }
        _ => None,
    }
}

/// Table lines by syscall number, resolved once (no name lookups per call).
struct Dispatch {
    by_nr: Vec<Option<&'static Entry>>,
}

impl Dispatch {
    fn new() -> Dispatch {
        let mut by_nr = vec![None; 1024];
        for e in TABLE {
            if let Ok(sc) = ScmpSyscall::from_name(e.name) {
                if let Some(slot) = usize::try_from(i32::from(sc)).ok().and_then(|n| by_nr.get_mut(n)) {
                    *slot = Some(e);
                }
            }
        }
        Dispatch { by_nr }
    }

    fn entry(&self, sc: ScmpSyscall) -> Option<&'static Entry> {
        usize::try_from(i32::from(sc)).ok().and_then(|n| self.by_nr.get(n).copied().flatten())
    }
}

fn serve_one(
    notify: BorrowedFd<'_>,
    proc: BorrowedFd<'_>,
    dispatch: &Dispatch,
    kernel: &Kernel,
    opts: Options,
    warned: &mut HashSet<String>,
    loop_: Loop<'_>,
) {
    let raw = notify.as_raw_fd();
    let req = match ScmpNotifReq::receive(raw) {
        Ok(r) => r,
        // the caller died between poll and receive
        Err(_) => return,
    };
    // memory is opened, and the notification re-checked, on first use (see
    // platform::mem); a handler that fails to reach it answers with the
    // error, so the caller never waits forever
    let mem = ProcMem::new(proc, req.pid, notify, req.id);
    // a guest of the pod's netstack: its owner serves the network calls;
    // once it is gone they are served here (net::socket then refuses new
    // internet sockets; unix ones work on; the stack's are dead ends)
    if let (Some(owner), Some(e)) = (&kernel.pod_owner, dispatch.entry(req.data.syscall)) {
        if super::guest::forwarded(e.name, &req.data.args, &mem) {
            match owner.forward(&(&req).into(), notify) {
                // forwarded, or the caller is gone
                Ok(()) | Err(Errno::ESRCH) => return,
                Err(_) => {}
            }
        }
    }
    let fds = StubFds::new(proc, req.pid, notify, req.id, loop_);
    serve_req(&(&req).into(), notify, &mem, &fds, dispatch, kernel, opts, warned);
}

/// Serves notification `req` of `notify` (its caller's fds: `fds`; its
/// memory: `mem`) and answers it.
#[allow(clippy::too_many_arguments)]
fn serve_req(
    req: &Notification,
    notify: BorrowedFd<'_>,
    mem: &ProcMem<'_>,
    fds: &StubFds<'_>,
    dispatch: &Dispatch,
    kernel: &Kernel,
    opts: Options,
    warned: &mut HashSet<String>,
) {
    let raw = notify.as_raw_fd();
    let entry = dispatch.entry(req.syscall);
    let name = match entry {
        Some(e) => e.name.to_string(),
        None => format!("syscall {}", i32::from(req.syscall)),
    };
    // the log line's arguments are read before the call is answered
    let shown_call = opts.strace.then(|| crate::syscalls::strace::call(&name, req.args, mem));
    let reply = match entry.map(|e| e.class) {
        Some(Class::Served(h) | Class::Interim(Some(h)) | Class::Checked(_, h) | Class::Net(h)) => {
            h(&Call { pid: req.pid, args: req.args, kernel, mem, fds, task: fds })
        }
        Some(Class::Interim(None)) => Reply::Continue,
        Some(Class::Denied(errno)) => {
            if warned.insert(name.clone()) {
                tracing::warn!(syscall = %name, "sentry: denied {name}: {}", entry.map(|e| e.note).unwrap_or(""));
            }
            Reply::Error(Errno::from_raw(errno))
        }
        Some(Class::Passthrough(_)) => {
            // the filter let it through only when its argument rule held
            if warned.insert(name.clone()) {
                tracing::warn!(syscall = %name, "sentry: denied {name} with these arguments: {}", entry.map(|e| e.note).unwrap_or(""));
            }
            Reply::Error(Errno::EPERM)
        }
        None => {
            if warned.insert(name.clone()) {
                tracing::warn!(syscall = %name, "sentry: unimplemented {name}: answered ENOSYS");
            }
            Reply::Error(Errno::ENOSYS)
        }
    };
    if let Some(call) = shown_call {
        let shown = match reply {
            Reply::Value(v) => format!("{v}"),
            Reply::Error(e) => format!("-1 {e}"),
            Reply::Continue => "(host)".to_string(),
            Reply::Answered(v) => format!("{v} (fd installed)"),
            Reply::Pending => "(on a worker)".to_string(),
        };
        tracing::info!("[{:>6}] {call} = {shown}", req.pid);
    }
    let resp = match reply {
        Reply::Value(v) => ScmpNotifResp::new_val(req.id, v, ScmpNotifRespFlags::empty()),
        Reply::Error(e) => ScmpNotifResp::new_error(req.id, -(e as i32), ScmpNotifRespFlags::empty()),
        Reply::Continue => ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty()),
        Reply::Answered(_) | Reply::Pending => return,
    };
    // ENOENT: the caller was killed meanwhile; nothing to answer
    let _ = resp.respond(raw);
}
