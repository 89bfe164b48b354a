//! `moat gofer` as a process: confined to its tree (mount namespace, caps,
//! no_new_privs, seccomp), it still serves every 9P operation the client
//! has, and nothing outside the tree.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

use moat_e2e::moat_bin;
use moat_gofer::{Client, ClientOptions};
use moat_p9::consts::*;
use moat_p9::SetAttr;

struct Gofer {
    child: Child,
    client: Client,
}

impl Drop for Gofer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, read_only: bool) -> Gofer {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let theirs: OwnedFd = theirs.into();
    let raw = theirs.as_raw_fd();
    let mut cmd = Command::new(moat_bin());
    cmd.args(["gofer", "--fd", "3", "--dir"]).arg(dir).stdin(Stdio::null());
    if read_only {
        cmd.arg("--read-only");
    }
    // SAFETY: dup2/fcntl in the child before exec only touch its fd table.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(theirs);
    let client = Client::connect(ours.into(), &ClientOptions::default()).expect("connect to the gofer");
    Gofer { child, client }
}

fn status(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap()
}

#[test]
fn confined_gofer_serves_every_operation() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("hello.txt"), "hello").unwrap();
    let g = start(tree.path(), false);
    assert!(g.client.fd_donation(), "fd donation over the socketpair");
    let root = g.client.attach("root", "", 0).unwrap();

    // create, write, read back through the donated fd
    let (f, opened) = root.create(b"new.txt", oflags::RDWR, 0o644, 0).unwrap();
    assert_eq!(f.write(0, b"written by 9P").unwrap(), 13);
    assert!(opened.fd.is_some());
    let mut buf = [0u8; 64];
    let n = f.read(0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"written by 9P");
    f.fsync(false).unwrap();
    assert_eq!(f.lock(LOCK_TYPE_WRLCK, 0, 0, 1, "t").unwrap(), LOCK_SUCCESS);
    let _ = f.getlock(LOCK_TYPE_WRLCK, 0, 0, 2).unwrap();
    f.unlock(0, 0, 1).unwrap();
    let attr = SetAttr { valid: SETATTR_MODE | SETATTR_SIZE, mode: 0o600, size: 5, ..Default::default() };
    f.setattr(&attr).unwrap();
    let a = f.getattr(GETATTR_BASIC).unwrap();
    assert_eq!((a.mode & 0o777, a.size), (0o600, 5));
    f.xattr_set(b"user.moat", b"v", 0).unwrap();
    assert_eq!(f.xattr_get(b"user.moat").unwrap(), b"v");
    assert!(f.xattr_list().unwrap().windows(9).any(|w| w == b"user.moat"));
    f.xattr_remove(b"user.moat").unwrap();
    drop(f);

    // directories, links, rename, mknod, readdir, statfs, unlink
    root.mkdir(b"d", 0o755, 0).unwrap();
    root.symlink(b"ln", b"hello.txt", 0).unwrap();
    assert_eq!(root.walk(&[b"ln"]).unwrap().readlink().unwrap(), b"hello.txt");
    let hello = root.walk(&[b"hello.txt"]).unwrap();
    root.link(&hello, b"hard").unwrap();
    let d = root.walk(&[b"d"]).unwrap();
    root.renameat(b"new.txt", &d, b"moved.txt").unwrap();
    root.mknod(b"fifo", 0o010644, 0, 0, 0).unwrap();
    let listing = root.clone_fid().unwrap();
    listing.open(oflags::RDONLY).unwrap();
    let names: Vec<String> =
        listing.readdir_all().unwrap().into_iter().map(|e| String::from_utf8_lossy(&e.name).into_owned()).collect();
    for want in ["hello.txt", "hard", "fifo", "ln", "d"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    let _ = root.statfs().unwrap();
    d.unlinkat(b"moved.txt", 0).unwrap();
    root.unlinkat(b"d", AT_REMOVEDIR).unwrap();
    assert!(tree.path().join("hard").exists() && tree.path().join("fifo").exists());

    // still alive, and confined
    let st = status(g.child.id());
    assert!(st.contains("Seccomp:\t2"), "{st}");
    assert!(st.contains("NoNewPrivs:\t1"), "{st}");
    assert!(st.contains("CapEff:\t000000000000001f"), "{st}");
    let seen: Vec<String> = std::fs::read_dir(format!("/proc/{}/root", g.child.id()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(seen.contains(&"hello.txt".to_string()) && !seen.contains(&"etc".to_string()), "{seen:?}");
}

#[test]
fn confined_gofer_keeps_to_its_tree() {
    let tree = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/", tree.path().join("up")).unwrap();
    std::os::unix::fs::symlink("../../../../etc", tree.path().join("rel")).unwrap();
    let g = start(tree.path(), true);
    let root = g.client.attach("root", "", 0).unwrap();
    // .. from the root stays at the root
    let dotdot = root.walk(&[b"..", b".."]).unwrap();
    assert_eq!(dotdot.qid().path, root.qid().path);
    // symlinks are not followed by a walk
    assert!(root.walk(&[b"up", b"etc", b"passwd"]).is_err());
    assert!(root.walk(&[b"rel", b"passwd"]).is_err());
    // read-only is enforced whatever the client asks
    let e = root.create(b"x", oflags::RDWR, 0o644, 0).map(|_| ()).expect_err("create on a read-only tree");
    assert_eq!(e.errno(), nix::errno::Errno::EROFS);
    assert!(g.child.id() > 0 && status(g.child.id()).contains("Seccomp:\t2"));
}

#[test]
fn print_filter_counts_the_policy() {
    let out = Command::new(moat_bin()).args(["gofer", "--print-filter"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("# seccomp policy \"gofer\": "), "{text}");
    assert!(text.contains("openat2") && text.contains("BPF instructions"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("socket ") || l.starts_with("execve ")), "{text}");
}
