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
use moat_sentry::fs::gofer::{Session, Stats};

struct Mounted {
    point: PathBuf,
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
fn mount(tree: &Path, point: &Path) -> Mounted {
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
    let thread = std::thread::spawn(move || {
        let mut s = Session::new(dev, root);
        while let Ok(true) = s.handle_one() {
            *shared.lock().unwrap() = s.stats();
        }
    });
    Mounted { point: point.to_path_buf(), stats, thread: Some(thread) }
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn the_gofer_tree_reads_lists_links_and_runs_as_the_host_would() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::write(t.join("hello"), "hello, gofer\n").unwrap();
    std::fs::create_dir(t.join("d")).unwrap();
    std::fs::write(t.join("d/big"), vec![7u8; 3 << 20]).unwrap();
    std::os::unix::fs::symlink("hello", t.join("link")).unwrap();
    std::fs::hard_link(t.join("hello"), t.join("again")).unwrap();
    std::fs::write(t.join("secret"), "root only\n").unwrap();
    std::fs::set_permissions(t.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::copy("/bin/busybox", t.join("busybox")).unwrap();
    let point = tempfile::tempdir().unwrap();
    let m = mount(t, point.path());
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
    // a change made in the tree beside the mount shows at once
    std::fs::write(t.join("hello"), "changed\n").unwrap();
    assert_eq!(std::fs::read_to_string(p.join("hello")).unwrap(), "changed\n");
    std::fs::remove_file(t.join("again")).unwrap();
    assert!(!p.join("again").exists());

    let stats = *m.stats.lock().unwrap();
    assert!(stats.passthrough_opens > 0, "{stats:?}");
    assert_eq!(stats.reads, 0, "every read went to the backing file: {stats:?}");
}
