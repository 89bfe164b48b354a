//! Our client against our server over a socketpair: every operation the client offers, with and
//! without fd donation, read-only enforcement and resource limits.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{names, put, serve};
use moat_gofer::ClientError;
use moat_p9::consts::*;
use moat_p9::SetAttr;
use nix::errno::Errno;

fn remote(e: ClientError) -> Errno {
    match e {
        ClientError::Remote(e) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[test]
fn walk_getattr_read_without_donation() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "a/b/hello.txt", b"hello world");
    let s = serve(dir.path(), false, |_| {});
    let c = s.client();
    assert!(!c.fd_donation());
    let root = c.attach("root", "", 0).unwrap();
    assert!(root.is_dir());
    let f = root.walk(&names("a/b/hello.txt")).unwrap();
    let attr = f.getattr(GETATTR_BASIC).unwrap();
    assert_eq!(attr.size, 11);
    assert_eq!(attr.qid, f.qid());
    let o = f.open(oflags::RDONLY).unwrap();
    assert!(o.fd.is_none());
    let mut buf = [0u8; 64];
    assert_eq!(f.read(6, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"world");
    assert_eq!(remote(root.walk(&names("a/nope")).unwrap_err()), Errno::ENOENT);
    assert_eq!(remote(f.walk(&names("x")).unwrap_err()), Errno::ENOTDIR);
}

#[test]
fn donated_fd_reads_and_writes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "f", b"0123456789");
    let s = serve(dir.path(), true, |_| {});
    let c = s.client();
    assert!(c.fd_donation());
    let root = c.attach("root", "", 0).unwrap();
    let f = root.walk(&names("f")).unwrap();
    let o = f.open(oflags::RDWR).unwrap();
    let mut file = std::fs::File::from(o.fd.expect("donated fd"));
    let mut s2 = String::new();
    file.read_to_string(&mut s2).unwrap();
    assert_eq!(s2, "0123456789");
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(b"ab").unwrap();
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"ab23456789");
    // 9P I/O on the same fid keeps working next to the donated fd.
    let mut buf = [0u8; 4];
    assert_eq!(f.read(0, &mut buf).unwrap(), 4);
    assert_eq!(&buf, b"ab23");
    // Directories are never donated.
    let d = root.clone_fid().unwrap();
    assert!(d.open(oflags::RDONLY).unwrap().fd.is_none());
}

#[test]
fn create_write_readdir_and_namespace_ops() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), true, |_| {});
    let c = s.client();
    let root = c.attach("root", "", 0).unwrap();
    let (f, o) = root.create(b"new", oflags::RDWR, 0o640, u32::MAX).unwrap();
    assert!(o.fd.is_some());
    assert_eq!(f.write(0, b"data!").unwrap(), 5);
    f.fsync(false).unwrap();
    assert_eq!(std::fs::read(dir.path().join("new")).unwrap(), b"data!");
    assert_eq!(std::fs::metadata(dir.path().join("new")).unwrap().permissions().mode() & 0o777, 0o640);
    assert_eq!(remote(root.create(b"new", oflags::RDWR | oflags::EXCL, 0o600, 0).unwrap_err()), Errno::EEXIST);

    root.mkdir(b"sub", 0o755, u32::MAX).unwrap();
    root.symlink(b"ln", b"../../etc/passwd", u32::MAX).unwrap();
    let ln = root.walk(&names("ln")).unwrap();
    assert_eq!(ln.qid().ty, QTSYMLINK);
    assert_eq!(ln.readlink().unwrap(), b"../../etc/passwd");
    assert_eq!(remote(ln.open(oflags::RDONLY).unwrap_err()), Errno::ELOOP);

    let sub = root.walk(&names("sub")).unwrap();
    sub.link(&f, b"hard").unwrap();
    assert_eq!(std::fs::metadata(dir.path().join("new")).unwrap().nlink(), 2);
    f.rename(&sub, b"moved").unwrap();
    assert!(dir.path().join("sub/moved").exists());
    // The renamed fid still works (it follows the rename it made).
    assert_eq!(f.getattr(GETATTR_BASIC).unwrap().size, 5);
    sub.renameat(b"hard", &root, b"hard2").unwrap();
    assert!(dir.path().join("hard2").exists());
    root.unlinkat(b"hard2", 0).unwrap();
    root.mknod(b"fifo", libc::S_IFIFO | 0o600, 0, 0, u32::MAX).unwrap();
    assert_eq!(remote(root.mknod(b"dev", libc::S_IFCHR | 0o600, 1, 3, 0).unwrap_err()), Errno::EPERM);

    let d = root.clone_fid().unwrap();
    d.open(oflags::RDONLY).unwrap();
    let mut got: Vec<_> = d.readdir_all().unwrap().into_iter().map(|e| String::from_utf8(e.name).unwrap()).collect();
    got.sort();
    assert_eq!(got, [".", "..", "fifo", "ln", "sub"]);
    // Tiny Treaddir counts page through the same entries.
    let mut paged = Vec::new();
    let mut off = 0;
    loop {
        let batch = d.readdir(off, 40).unwrap();
        let Some(last) = batch.last() else { break };
        off = last.offset;
        paged.extend(batch.into_iter().map(|e| String::from_utf8(e.name).unwrap()));
    }
    paged.sort();
    assert_eq!(paged, got);

    let victim = root.walk(&names("sub/moved")).unwrap();
    victim.remove().unwrap();
    assert!(!dir.path().join("sub/moved").exists());
    root.unlinkat(b"sub", AT_REMOVEDIR).unwrap();
    assert!(root.statfs().unwrap().bsize > 0);
}

#[test]
fn setattr_xattrs_and_locks() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "f", b"0123456789");
    let s = serve(dir.path(), true, |_| {});
    let root = s.client().attach("root", "", 0).unwrap();
    let f = root.walk(&names("f")).unwrap();
    let mut a = SetAttr { valid: SETATTR_MODE | SETATTR_SIZE, mode: 0o600, size: 3, ..SetAttr::default() };
    f.setattr(&a).unwrap();
    a = SetAttr { valid: SETATTR_MTIME | SETATTR_MTIME_SET, mtime_sec: 1_000_000, ..SetAttr::default() };
    f.setattr(&a).unwrap();
    let md = std::fs::metadata(dir.path().join("f")).unwrap();
    assert_eq!((md.len(), md.permissions().mode() & 0o777, md.mtime()), (3, 0o600, 1_000_000));

    f.xattr_set(b"user.moat", b"value", 0).unwrap();
    assert_eq!(f.xattr_get(b"user.moat").unwrap(), b"value");
    assert!(f.xattr_list().unwrap().split(|&b| b == 0).any(|n| n == b"user.moat"));
    assert_eq!(remote(f.xattr_set(b"trusted.x", b"v", 0).unwrap_err()), Errno::EPERM);
    f.xattr_remove(b"user.moat").unwrap();
    assert_eq!(remote(f.xattr_get(b"user.moat").unwrap_err()), Errno::ENODATA);

    let g = root.walk(&names("f")).unwrap();
    f.open(oflags::RDWR).unwrap();
    g.open(oflags::RDWR).unwrap();
    assert_eq!(f.lock(LOCK_TYPE_WRLCK, 0, 10, 1, "t").unwrap(), LOCK_SUCCESS);
    assert_eq!(g.lock(LOCK_TYPE_WRLCK, 5, 1, 2, "t").unwrap(), LOCK_BLOCKED);
    assert_eq!(g.getlock(LOCK_TYPE_WRLCK, 0, 0, 2).unwrap().0, LOCK_TYPE_WRLCK);
    f.unlock(0, 10, 1).unwrap();
    assert_eq!(g.lock(LOCK_TYPE_WRLCK, 5, 1, 2, "t").unwrap(), LOCK_SUCCESS);
}

#[test]
fn read_only_tree_refuses_every_change() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "f", b"keep");
    let s = serve(dir.path(), true, |c| c.read_only = true);
    let root = s.client().attach("root", "", 0).unwrap();
    let f = root.walk(&names("f")).unwrap();
    assert_eq!(remote(f.open(oflags::RDWR).unwrap_err()), Errno::EROFS);
    assert_eq!(remote(f.open(oflags::RDONLY | oflags::TRUNC).unwrap_err()), Errno::EROFS);
    assert_eq!(remote(root.create(b"x", oflags::RDWR, 0o600, 0).unwrap_err()), Errno::EROFS);
    assert_eq!(remote(root.mkdir(b"x", 0o700, 0).unwrap_err()), Errno::EROFS);
    assert_eq!(remote(root.symlink(b"x", b"y", 0).unwrap_err()), Errno::EROFS);
    assert_eq!(remote(root.unlinkat(b"f", 0).unwrap_err()), Errno::EROFS);
    assert_eq!(remote(root.renameat(b"f", &root, b"g").unwrap_err()), Errno::EROFS);
    assert_eq!(remote(f.setattr(&SetAttr { valid: SETATTR_SIZE, ..SetAttr::default() }).unwrap_err()), Errno::EROFS);
    assert_eq!(remote(f.xattr_set(b"user.a", b"b", 0).unwrap_err()), Errno::EROFS);
    let g = root.walk(&names("f")).unwrap();
    assert_eq!(remote(g.remove().unwrap_err()), Errno::EROFS);
    // Reading works, and the donated fd is read-only.
    let o = f.open(oflags::RDONLY).unwrap();
    let mut file = std::fs::File::from(o.fd.unwrap());
    assert!(file.write_all(b"x").is_err());
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"keep");
}

#[test]
fn fid_table_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), false, |c| c.max_fids = 8);
    let root = s.client().attach("root", "", 0).unwrap();
    let mut held = Vec::new();
    for _ in 0..7 {
        held.push(root.clone_fid().unwrap());
    }
    assert_eq!(remote(root.clone_fid().unwrap_err()), Errno::EMFILE);
    held.pop();
    root.clone_fid().unwrap();
}

#[test]
fn many_threads_share_one_client() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..8 {
        put(dir.path(), &format!("f{i}"), format!("file {i}").as_bytes());
    }
    let s = serve(dir.path(), false, |_| {});
    let root = s.client().attach("root", "", 0).unwrap();
    std::thread::scope(|sc| {
        for i in 0..8 {
            let root = &root;
            sc.spawn(move || {
                for _ in 0..200 {
                    let f = root.walk(&[format!("f{i}").as_bytes()]).unwrap();
                    f.open(oflags::RDONLY).unwrap();
                    let mut buf = [0u8; 16];
                    let n = f.read(0, &mut buf).unwrap();
                    assert_eq!(&buf[..n], format!("file {i}").as_bytes());
                }
            });
        }
    });
}

#[test]
fn xattr_memory_is_bounded_per_session() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "f", b"x");
    let s = serve(dir.path(), false, |_| {});
    let root = s.client().attach("root", "", 0).unwrap();
    let f = root.walk(&names("f")).unwrap();
    // Park 64 KiB xattr writes in fids until the 1 MiB session budget refuses one.
    let mut parked = Vec::new();
    let err = loop {
        let g = f.clone_fid().unwrap();
        let msg = moat_p9::Msg::Txattrcreate { fid: g.id(), name: "user.big".into(), attr_size: 65536, flags: 0 };
        match s.client().call(msg).unwrap().msg() {
            Ok(_) => parked.push(g),
            Err(e) => break e,
        }
        assert!(parked.len() <= 16, "budget not enforced");
    };
    assert_eq!(remote(err), Errno::ENOMEM);
    assert_eq!(parked.len(), 16);
    // Clunking gives the budget back (the incomplete writes fail to commit, as they should).
    for g in parked {
        assert_eq!(remote(g.clunk().unwrap_err()), Errno::EINVAL);
    }
    f.xattr_set(b"user.small", b"ok", 0).unwrap();
    assert_eq!(root.walk(&[&[b'a'; 256][..]]).map(|_| ()).map_err(remote), Err(Errno::ENAMETOOLONG));
}
