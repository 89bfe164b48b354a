//! The gofer-backed FUSE mount (`fs::gofer`) against a real gofer and the
//! host's FUSE driver: what the stubs would see with `--directfs=false`.
//! Needs root (mounting FUSE, registering backing files).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use moat_gofer::{Client, ClientOptions, Config, Server};
use moat_sentry::fs::gofer::{Cache, Session, Sharing, Stats};

struct Mounted {
    point: PathBuf,
    cache: Cache,
    stats: Arc<Mutex<Stats>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.point, nix::mount::MntFlags::MNT_DETACH);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `tree` read-only through a gofer on a socketpair, and mounts it at `point`.
fn mount(tree: &Path, point: &Path, sharing: Sharing) -> Mounted {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut cfg = Config::new(tree);
    cfg.read_only = true;
    let server = Server::new(cfg).unwrap();
    std::thread::spawn(move || {
        let _ = server.serve_conn(OwnedFd::from(b));
    });
    let client = Client::connect(OwnedFd::from(a), &ClientOptions::default()).unwrap();
    assert!(client.fd_donation());
    let root = client.attach("root", "", 0).unwrap();
    let dev: OwnedFd = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").unwrap().into();
    let data = format!("fd={},rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other", dev.as_raw_fd());
    nix::mount::mount(Some("moat-test"), point, Some("fuse"), nix::mount::MsFlags::MS_RDONLY, Some(data.as_str()))
        .unwrap();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let shared = stats.clone();
    let mut s = Session::new(dev, root, sharing).unwrap();
    let cache = s.cache();
    let thread = std::thread::spawn(move || {
        while let Ok(true) = s.handle_one() {
            *shared.lock().unwrap() = s.stats();
        }
    });
    Mounted { point: point.to_path_buf(), cache, stats, thread: Some(thread) }
}

/// A tree to serve and a point to mount it at; None (the test skipped)
/// without root.
fn dirs() -> Option<(tempfile::TempDir, tempfile::TempDir)> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    Some((tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()))
}

#[test]
fn the_gofer_tree_reads_lists_links_and_runs_as_the_host_would() {
    let Some((tree, point)) = dirs() else { return };
    let t = tree.path();
    std::fs::write(t.join("hello"), "hello, gofer\n").unwrap();
    std::fs::create_dir(t.join("d")).unwrap();
    std::fs::write(t.join("d/big"), vec![7u8; 3 << 20]).unwrap();
    std::os::unix::fs::symlink("hello", t.join("link")).unwrap();
    std::fs::hard_link(t.join("hello"), t.join("again")).unwrap();
    std::fs::write(t.join("secret"), "root only\n").unwrap();
    std::fs::set_permissions(t.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::copy("/bin/busybox", t.join("busybox")).unwrap();
    let m = mount(t, point.path(), Sharing::default());
    let p = point.path();

    assert_eq!(std::fs::read_to_string(p.join("hello")).unwrap(), "hello, gofer\n");
    assert_eq!(std::fs::read(p.join("d/big")).unwrap().len(), 3 << 20);
    assert_eq!(std::fs::read_link(p.join("link")).unwrap(), Path::new("hello"));
    assert_eq!(std::fs::read_to_string(p.join("link")).unwrap(), "hello, gofer\n");
    let mut names: Vec<String> =
        std::fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["again", "busybox", "d", "hello", "link", "secret"]);
    // the real inode numbers and owners, hard links included
    let (real, seen) = (std::fs::metadata(t.join("hello")).unwrap(), std::fs::metadata(p.join("hello")).unwrap());
    assert_eq!((seen.ino(), seen.nlink(), seen.uid(), seen.mode()), (real.ino(), 2, real.uid(), real.mode()));
    assert_eq!(std::fs::metadata(p.join("again")).unwrap().ino(), real.ino());
    // read-only
    let e = std::fs::OpenOptions::new().write(true).open(p.join("hello")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    assert_eq!(std::fs::write(p.join("new"), "x").unwrap_err().raw_os_error(), Some(libc::EROFS));
    // a program runs from it (exec and mmap through the backing file)
    let out = Command::new(p.join("busybox")).args(["echo", "ran"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    // the kernel checks permissions from the gofer's attributes
    let out = Command::new(p.join("busybox")).args(["cat", "secret"]).current_dir(p).uid(65534).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{out:?}");
    let out = Command::new(p.join("busybox")).args(["cat", "hello"]).current_dir(p).uid(65534).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, gofer\n");
    // an open file reads what the tree holds now (its backing file is the gofer's)
    std::fs::write(t.join("hello"), "changed\n").unwrap();
    assert_eq!(std::fs::read_to_string(p.join("hello")).unwrap(), "changed\n");
    // names and attributes are kept until the Sentry tells of a change
    let qid = |path: &Path| {
        let st = std::fs::symlink_metadata(path).unwrap();
        moat_gofer::server::path_of(st.dev(), st.ino())
    };
    assert!(!p.join("later").exists());
    std::fs::write(t.join("later"), "x").unwrap();
    std::fs::remove_file(t.join("again")).unwrap();
    std::fs::set_permissions(t.join("hello"), std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(!p.join("later").exists() && p.join("again").exists(), "kept");
    m.cache.name_changed(qid(t), b"later");
    m.cache.name_changed(qid(t), b"again");
    assert!(p.join("later").exists() && !p.join("again").exists(), "told");
    assert_eq!(std::fs::metadata(p.join("hello")).unwrap().mode() & 0o777, 0o644);
    m.cache.inode_changed(qid(&t.join("hello")));
    assert_eq!(std::fs::metadata(p.join("hello")).unwrap().mode() & 0o777, 0o640);
    assert_eq!(std::fs::metadata(p.join("hello")).unwrap().nlink(), 1);

    let stats = *m.stats.lock().unwrap();
    assert!(stats.passthrough_opens > 0, "{stats:?}");
    assert_eq!(stats.reads, 0, "every read went to the backing file: {stats:?}");
}

#[test]
fn a_shared_tree_shows_changes_beside_it_at_once() {
    let Some((tree, point)) = dirs() else { return };
    let t = tree.path();
    std::fs::create_dir(t.join("d")).unwrap();
    std::fs::write(t.join("d/f"), "one\n").unwrap();
    let m = mount(t, point.path(), Sharing { all: true, ..Sharing::default() });
    let p = point.path();
    assert!(!p.join("d/new").exists());
    std::fs::write(t.join("d/new"), "x").unwrap();
    assert!(p.join("d/new").exists());
    std::fs::write(t.join("d/f"), "longer\n").unwrap();
    assert_eq!(std::fs::metadata(p.join("d/f")).unwrap().len(), 7);
    std::fs::rename(t.join("d/f"), t.join("d/g")).unwrap();
    assert!(!p.join("d/f").exists() && p.join("d/g").exists());
    drop(m);
}

#[test]
fn a_file_written_beside_the_view_shows_its_size_without_9p() {
    let Some((tree, point)) = dirs() else { return };
    let t = tree.path();
    std::fs::write(t.join("log"), "a").unwrap();
    let m = mount(t, point.path(), Sharing::default());
    let p = point.path();
    assert_eq!(std::fs::metadata(p.join("log")).unwrap().len(), 1);
    let st = std::fs::metadata(t.join("log")).unwrap();
    // as the Sentry does when it opens a file for writing in the tree
    m.cache.opened_for_writing(moat_gofer::server::path_of(st.dev(), st.ino()));
    // (the session notes its counts once it has answered)
    std::thread::sleep(std::time::Duration::from_millis(50));
    let before = m.stats.lock().unwrap().getattrs;
    for n in 2..5u64 {
        std::fs::write(t.join("log"), "a".repeat(n as usize)).unwrap();
        assert_eq!(std::fs::metadata(p.join("log")).unwrap().len(), n);
    }
    let stats = m.stats.clone();
    drop(m);
    let stats = *stats.lock().unwrap();
    assert_eq!(stats.getattrs, before, "each size came from an fstat of the gofer's fd: {stats:?}");
}
