//! A relay in a pod's network namespace: each connection to its port is carried to a server of
//! the pod by two threads that copy the bytes each way, on the host kernel's sockets. It stands
//! for the least that anything between the wire and the app adds (a sandbox's network stack,
//! a proxy): a request wakes the relay, then the app, then the relay again for the answer, where
//! without it the kernel wakes the app alone. Measured in front of a runtime whose container the
//! pod's kernel serves (runc), it is the floor of a sandbox's latency under load.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};

/// A relay running; it stops when dropped.
pub struct Relay {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts a relay in namespace `ns` from `at` to `to`. None if `at` is no address of the
    /// namespace's kernel (a sandbox's netstack took it).
    pub fn start(ns: &fs::File, at: SocketAddr, to: SocketAddr) -> Result<Option<Relay>> {
        let ns = ns.try_clone().context("the pod's namespace")?;
        let (ready, bound) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        // (the thread joins the namespace for good, and its copiers with it)
        let thread = std::thread::spawn(move || {
            let listener = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
                .and_then(|()| TcpListener::bind(at))
                .and_then(|l| l.set_nonblocking(true).map(|()| l));
            let listener = match listener {
                Ok(l) => {
                    let _ = ready.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            // (non-blocking, looked at every few ms until stopped; wrk's connections are made once)
            while !stopped.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => continue,
                };
                let Ok(server) = TcpStream::connect(to) else { continue };
                for s in [&client, &server] {
                    let _ = s.set_nodelay(true);
                }
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { continue };
                std::thread::spawn(move || copy(client, server));
                std::thread::spawn(move || copy(s2, c2));
            }
        });
        match bound.recv().context("the relay's thread")? {
            Ok(()) => Ok(Some(Relay { stop, thread: Some(thread) })),
            Err(e) if e.kind() == ErrorKind::AddrNotAvailable => Ok(None),
            Err(e) => Err(e).with_context(|| format!("the relay's listener on {at}")),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s sending side.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
