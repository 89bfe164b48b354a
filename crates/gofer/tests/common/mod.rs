//! Helpers shared by the gofer's crate tests: serve a tree on a socketpair, connect a client.
#![allow(dead_code)]

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::JoinHandle;

use moat_gofer::{Client, ClientOptions, Config, Server};

/// A server thread on one end of a socketpair; joined on drop after the client end is closed.
pub struct Served {
    pub client: Option<Client>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.client.take();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Served {
    pub fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }
}

/// Serves `cfg` on a fresh socketpair and returns the server's thread plus the client end.
pub fn serve_pair(cfg: Config) -> (JoinHandle<()>, OwnedFd) {
    let (a, b) = UnixStream::pair().unwrap();
    let server = Server::new(cfg).unwrap();
    let t = std::thread::spawn(move || server.serve_conn(a.into()).unwrap());
    (t, b.into())
}

/// Serves `root` (with `tweak` applied to the default config) and connects a client.
pub fn serve(root: &Path, want_fds: bool, tweak: impl FnOnce(&mut Config)) -> Served {
    let mut cfg = Config::new(root);
    tweak(&mut cfg);
    let (t, sock) = serve_pair(cfg);
    let client = Client::connect(sock, &ClientOptions { want_fds, ..ClientOptions::default() }).unwrap();
    Served { client: Some(client), thread: Some(t) }
}

/// Writes `data` to `root/rel`, making parent directories.
pub fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Splits a path into walk names.
pub fn names(path: &str) -> Vec<&[u8]> {
    path.split('/').filter(|s| !s.is_empty()).map(str::as_bytes).collect()
}
