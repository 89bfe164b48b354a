//! Foreground verbs: `run` and `exec` that wait for the program, forward
//! signals to it, proxy its pty, and return its exit status.

use std::os::fd::OwnedFd;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::create::{create, CreateOpts};
use crate::exec::{exec, ExecOpts};
use crate::state::Container;
use crate::{console, delete, start, wait, Error, Global, Result};

/// A console socketpair for a foreground pty: (ours, the container's).
fn console_pair() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::io("socketpair", e))
}

/// A pty being proxied: the copying thread, and the master for resizes.
struct Pty {
    thread: std::thread::JoinHandle<()>,
    master: OwnedFd,
}

/// Proxies a pty in the background; the thread ends when the pty closes.
fn proxy(ours: OwnedFd) -> Result<Pty> {
    let master = console::recv_master(std::os::fd::AsFd::as_fd(&ours))?;
    // now, not in the thread: the program must never see a 0x0 terminal
    console::copy_winsize(std::os::fd::AsFd::as_fd(&std::io::stdin()), std::os::fd::AsFd::as_fd(&master));
    let copy = master.try_clone().map_err(|e| Error::io("dup pty master", e))?;
    let thread = std::thread::spawn(move || {
        let _ = console::proxy(copy);
    });
    Ok(Pty { thread, master })
}

/// Waits for the program, then for the pty copy to drain.
fn wait_with(pid: nix::unistd::Pid, set: &nix::sys::signal::SigSet, pty: Option<Pty>) -> Result<i32> {
    let code = wait::wait_forwarding(pid, set, pty.as_ref().map(|p| std::os::fd::AsFd::as_fd(&p.master)));
    if let Some(p) = pty {
        drop(p.master);
        let _ = p.thread.join();
    }
    code
}

fn wants_tty(bundle: &std::path::Path) -> bool {
    crate::spec::load(bundle).ok().and_then(|s| s.process().as_ref().and_then(|p| p.terminal())).unwrap_or(false)
}

/// `run` in the foreground: create, start, wait, delete (unless `keep`).
pub fn run_foreground(g: &Global, mut o: CreateOpts, keep: bool) -> Result<i32> {
    let set = wait::block_signals()?;
    wait::become_subreaper()?;
    let id = o.id.clone();
    let mut ours = None;
    if o.console_socket.is_none() && wants_tty(&o.bundle) {
        let (a, b) = console_pair()?;
        o.console_fd = Some(b);
        ours = Some(a);
    }
    let created = create(g, o)?;
    let cleanup = |g: &Global| {
        if !keep {
            if let Ok(c) = Container::open(&g.root, &id) {
                let _ = delete::destroy(c);
            }
        }
    };
    // the pty master arrived during create: size it and start copying
    // before the program runs, so it never sees a 0x0 terminal
    let pty = match ours.map(proxy) {
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            cleanup(g);
            return Err(e);
        }
        None => None,
    };
    if let Err(e) = start::start(g, &id) {
        cleanup(g);
        return Err(e);
    }
    let code = wait_with(created.pid, &set, pty);
    cleanup(g);
    code
}

/// `exec` in the foreground: start the process and wait for it.
pub fn exec_foreground(g: &Global, mut o: ExecOpts) -> Result<i32> {
    let set = wait::block_signals()?;
    wait::become_subreaper()?;
    let mut ours = None;
    if o.console_socket.is_none() && o.process.terminal().unwrap_or(false) {
        let (a, b) = console_pair()?;
        o.console_fd = Some(b);
        ours = Some(a);
    }
    let pid = exec(g, o)?;
    let pty = match ours {
        Some(fd) => Some(proxy(fd)?),
        None => None,
    };
    wait_with(pid, &set, pty)
}
