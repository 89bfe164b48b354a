//! Interop with Debian's diod, a 9P2000.L implementation no one here wrote: our client against
//! `diod`, and diod's clients (`diodls`, `diodcat`, `diodload`) against our server.
//!
//! The tests need the `diod` package and root (diod serves files as their owners). Without them
//! each test says so and passes vacuously, so `cargo test` works on a bare machine; the CI
//! script must `apt-get install -y diod` for them to count.

mod common;

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{names, put};
use moat_gofer::{Client, ClientOptions, Config, Server};
use moat_p9::consts::*;
use moat_p9::SetAttr;

const DIOD: &str = "/usr/sbin/diod";

/// The interop tests must not pass vacuously: CI installs diod and runs as root.
fn have_diod() -> bool {
    assert!(Path::new(DIOD).exists(), "{DIOD} is missing: apt-get install diod (scripts/deps.sh --test does)");
    assert!(nix::unistd::geteuid().is_root(), "the diod interop tests need root");
    true
}

/// A diod we started; killed and reaped by PID on drop.
struct Diod(Child);

impl Drop for Diod {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts diod exporting `export` on a loopback port, without authentication.
fn start_diod(export: &Path) -> (Diod, u16) {
    let port = free_port();
    let child = Command::new(DIOD)
        .args(["-f", "-n", "-N", "-l", &format!("127.0.0.1:{port}"), "-e"])
        .arg(export)
        .args(["-L", "stderr"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let diod = Diod(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "diod did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    (diod, port)
}

#[test]
fn our_client_against_diod() {
    if !have_diod() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().canonicalize().unwrap();
    put(&export, "a/hello.txt", b"hello from diod");
    let (_diod, port) = start_diod(&export);
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let c = Client::connect(sock.into(), &ClientOptions::default()).unwrap();
    assert!(!c.fd_donation());
    let root = c.attach("root", export.to_str().unwrap(), 0).unwrap();

    let f = root.walk(&names("a/hello.txt")).unwrap();
    assert_eq!(f.getattr(GETATTR_BASIC).unwrap().size, 15);
    f.open(oflags::RDONLY).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(f.read(0, &mut buf).unwrap(), 15);
    assert_eq!(&buf[..15], b"hello from diod");

    let (n, _) = root.create(b"new", oflags::RDWR, 0o644, 0).unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(n.write(0, &big).unwrap(), big.len());
    n.fsync(false).unwrap();
    assert_eq!(std::fs::read(export.join("new")).unwrap(), big);
    let mut back = vec![0u8; big.len()];
    assert_eq!(n.read(0, &mut back).unwrap(), big.len());
    assert_eq!(back, big);
    n.setattr(&SetAttr { valid: SETATTR_SIZE | SETATTR_MODE, size: 10, mode: 0o600, ..SetAttr::default() }).unwrap();
    assert_eq!(std::fs::metadata(export.join("new")).unwrap().len(), 10);
    assert_eq!(n.lock(LOCK_TYPE_WRLCK, 0, 0, 1, "moat").unwrap(), LOCK_SUCCESS);
    assert_eq!(n.getlock(LOCK_TYPE_WRLCK, 0, 0, 1).unwrap().0, LOCK_TYPE_UNLCK);

    root.mkdir(b"d", 0o755, 0).unwrap();
    root.symlink(b"l", b"a/hello.txt", 0).unwrap();
    assert_eq!(root.walk(&names("l")).unwrap().readlink().unwrap(), b"a/hello.txt");
    let d = root.walk(&names("d")).unwrap();
    // diod 1.0.24 aborts (ioctx.c assertion) when an open fid is renamed: use a fresh fid.
    n.clunk().unwrap();
    let n = root.walk(&names("new")).unwrap();
    d.link(&n, b"hard").unwrap();
    // diod 1.0.24 has no Trenameat/Tunlinkat (EOPNOTSUPP; Linux v9fs then falls back to
    // Trename/Tremove, as we do here).
    match d.renameat(b"hard", &root, b"hard2") {
        Ok(()) => {}
        Err(e) if e.errno() == nix::errno::Errno::EOPNOTSUPP => {
            d.walk(&names("hard")).unwrap().rename(&root, b"hard2").unwrap()
        }
        Err(e) => panic!("renameat: {e}"),
    }
    n.rename(&d, b"moved").unwrap();
    assert!(export.join("d/moved").exists() && export.join("hard2").exists());
    match root.unlinkat(b"hard2", 0) {
        Ok(()) => {}
        Err(e) if e.errno() == nix::errno::Errno::EOPNOTSUPP => root.walk(&names("hard2")).unwrap().remove().unwrap(),
        Err(e) => panic!("unlinkat: {e}"),
    }
    assert!(!export.join("hard2").exists());

    let ls = root.clone_fid().unwrap();
    ls.open(oflags::RDONLY | oflags::DIRECTORY).unwrap();
    let mut got: Vec<_> = ls.readdir_all().unwrap().into_iter().map(|e| String::from_utf8(e.name).unwrap()).collect();
    got.sort();
    assert_eq!(got, [".", "..", "a", "d", "l"]);
    assert!(root.statfs().unwrap().blocks > 0);

    match f.xattr_set(b"user.moat", b"v1", 0) {
        Ok(()) => assert_eq!(f.xattr_get(b"user.moat").unwrap(), b"v1"),
        // tmpfs without user xattrs, or diod built without them.
        Err(e) => eprintln!("diod xattr set failed ({e}); not checked"),
    }
    root.walk(&names("d/moved")).unwrap().remove().unwrap();
    assert!(!export.join("d/moved").exists());
}

/// diod on a socketpair (its `-r/-w` fd mode): we ask for fd donation, diod knows nothing of it,
/// and the client falls back to plain 9P2000.L.
#[test]
fn donation_request_falls_back_with_diod() {
    if !have_diod() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().canonicalize().unwrap();
    put(&export, "f", b"plain");
    let (ours, theirs) = UnixStream::pair().unwrap();
    let theirs2 = theirs.try_clone().unwrap();
    let child = Command::new(DIOD)
        .args(["-f", "-n", "-N", "-r", "0", "-w", "1", "-e"])
        .arg(&export)
        .args(["-L", "stderr"])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs2)))
        .spawn()
        .unwrap();
    let _diod = Diod(child);
    let c = Client::connect(ours.into(), &ClientOptions { want_fds: true, ..ClientOptions::default() }).unwrap();
    assert!(!c.fd_donation());
    let root = c.attach("root", export.to_str().unwrap(), 0).unwrap();
    let f = root.walk(&names("f")).unwrap();
    let o = f.open(oflags::RDONLY).unwrap();
    assert!(o.fd.is_none());
    let mut buf = [0u8; 8];
    assert_eq!(f.read(0, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"plain");
}

/// Serves `root` on a loopback port from a background thread (it lives until the test exits).
fn serve_tcp(root: &Path) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::new(Config::new(root)).unwrap();
    std::thread::spawn(move || server.serve_listener(listener));
    port
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn diod_clients_against_our_server() {
    if !have_diod() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "hello.txt", b"hello from moat\n");
    put(dir.path(), "sub/deep.txt", b"deep\n");
    std::fs::write(dir.path().join("null"), b"").unwrap();
    let port = serve_tcp(dir.path());
    let server = format!("127.0.0.1:{port}");

    let ls = run("/usr/sbin/diodls", &["-s", &server, "-a", "/", "/"]);
    let mut names: Vec<_> = ls.lines().collect();
    names.sort();
    assert!(names.contains(&"hello.txt") && names.contains(&"sub"), "diodls said {ls:?}");
    let long = run("/usr/sbin/diodls", &["-s", &server, "-a", "/", "-l", "/sub"]);
    assert!(long.contains("deep.txt"), "diodls -l said {long:?}");

    let cat = run("/usr/sbin/diodcat", &["-s", &server, "-a", "/", "hello.txt"]);
    assert_eq!(cat, "hello from moat\n");
    let cat = run("/usr/sbin/diodcat", &["-s", &server, "-a", "/", "sub/deep.txt"]);
    assert_eq!(cat, "deep\n");

    // 16 threads of concurrent getattrs on "null" for one second: many tags in flight.
    let load = run("/usr/sbin/diodload", &["-s", &server, "-g", "-r", "1", "-n", "16"]);
    eprintln!("diodload: {}", load.trim());
}
