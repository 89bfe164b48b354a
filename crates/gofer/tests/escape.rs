//! A served tree full of hostile symlinks, and a rename race, must never give the client a byte
//! from outside the tree.
//!
//! Layout: `<tmp>/outside/secret` holds a marker; `<tmp>/tree` is served. Every test tries to read
//! the marker through the server and checks that no reply, no donated fd and no listing ever
//! contains it.

mod common;

use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{names, serve};
use moat_gofer::client::Fid;
use moat_p9::consts::oflags;

const MARKER: &[u8] = b"OUTSIDE-SECRET-7f3a";

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), MARKER).unwrap();
    std::fs::write(outside.join("only_outside"), MARKER).unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("d/e")).unwrap();
    std::fs::write(tree.join("inside"), b"inside").unwrap();
    (tmp, tree)
}

/// Everything the client can get out of `path`: the 9P read, the donated fd, the listing.
fn try_read(root: &Fid, path: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let Ok(f) = root.walk(&names(path)) else { return got };
    if let Ok(t) = f.readlink() {
        got.extend(t);
    }
    let Ok(o) = f.open(oflags::RDONLY) else { return got };
    if f.is_dir() {
        for e in f.readdir_all().unwrap_or_default() {
            got.extend(e.name);
        }
        return got;
    }
    let mut buf = vec![0u8; 4096];
    let n = f.read(0, &mut buf).unwrap_or(0);
    got.extend(&buf[..n]);
    if let Some(fd) = o.fd {
        let mut file = std::fs::File::from(fd);
        let _ = file.read_to_end(&mut got);
    }
    got
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_clean(got: &[u8], what: &str) {
    assert!(!contains(got, MARKER), "{what} leaked the outside marker");
    assert!(!contains(got, b"only_outside"), "{what} listed the outside directory");
}

fn hostile_links(tree: &Path, outside: &Path) {
    symlink("/", tree.join("abs_root")).unwrap();
    symlink(outside.join("secret"), tree.join("abs_secret")).unwrap();
    symlink("../outside/secret", tree.join("rel_secret")).unwrap();
    symlink("../../../../../../../..", tree.join("d/e/up")).unwrap();
    symlink("../outside", tree.join("rel_dir")).unwrap();
    symlink("loop_b", tree.join("loop_a")).unwrap();
    symlink("loop_a", tree.join("loop_b")).unwrap();
    symlink("/proc/self/root", tree.join("magic")).unwrap();
    symlink("/proc/self/fd/0", tree.join("magic_fd")).unwrap();
}

#[test]
fn hostile_symlinks_never_leak() {
    let (tmp, tree) = setup();
    hostile_links(&tree, &tmp.path().join("outside"));
    for donate in [false, true] {
        let s = serve(&tree, donate, |_| {});
        let root = s.client().attach("root", "", 0).unwrap();
        for path in [
            "abs_root/outside/secret",
            "abs_root",
            "abs_secret",
            "rel_secret",
            "rel_dir",
            "rel_dir/secret",
            "d/e/up",
            "d/e/up/outside/secret",
            "loop_a",
            "loop_a/x",
            "magic",
            "magic/tmp",
            "magic_fd",
            "..",
            "../outside/secret",
            "../../../outside/secret",
            "d/../../outside/secret",
            "d/e/../../../outside",
        ] {
            assert_clean(&try_read(&root, path), path);
        }
        // Walking `..` above the root stays at the root.
        let up = root.walk(&names("../../..")).unwrap();
        assert_eq!(up.qid(), root.qid());
        // Names with slashes are refused outright.
        assert!(root.walk(&[b"../outside/secret".as_slice()]).is_err());
        assert!(root.walk(&[b"d/e".as_slice()]).is_err());
        // Symlinks come back as symlinks with their text, never resolved.
        let l = root.walk(&names("rel_secret")).unwrap();
        assert_eq!(l.readlink().unwrap(), b"../outside/secret");
        assert!(l.open(oflags::RDONLY).is_err());
        // Creating through a symlinked directory is impossible: the walk gives the link itself.
        let d = root.walk(&names("rel_dir")).unwrap();
        assert!(d.create(b"planted", oflags::RDWR, 0o600, 0).is_err());
        assert!(d.mkdir(b"planted", 0o700, 0).is_err());
    }
    assert!(!tmp.path().join("outside/planted").exists());
}

/// One thread swaps `tree/race` between a real directory and a symlink to the outside
/// (renameat2 RENAME_EXCHANGE, atomic), another walks and reads `race/secret` through the server.
#[test]
fn rename_race_never_leaks() {
    let (tmp, tree) = setup();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(tree.join("race")).unwrap();
    std::fs::write(tree.join("race/secret"), b"decoy").unwrap();
    symlink(&outside, tree.join("swap_abs")).unwrap();
    symlink("../outside", tree.join("swap_rel")).unwrap();
    let stop = AtomicBool::new(false);
    // Stops the renamer even if an assertion below fails, so a failure cannot hang the test.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let s = serve(&tree, true, |_| {});
    let root = s.client().attach("root", "", 0).unwrap();
    let (mut reads, mut decoys) = (0u32, 0u32);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let dir = std::fs::File::open(&tree).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let other = if i & 1 == 0 { "swap_abs" } else { "swap_rel" };
                // Swap twice, so `race` ends each round as a directory again.
                for _ in 0..2 {
                    nix::fcntl::renameat2(&dir, "race", &dir, other, nix::fcntl::RenameFlags::RENAME_EXCHANGE).unwrap();
                }
                i += 1;
            }
        });
        let _stop = StopOnDrop(&stop);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            for path in ["race/secret", "race", "swap_abs/secret", "swap_rel/secret"] {
                let got = try_read(&root, path);
                reads += 1;
                if contains(&got, b"decoy") {
                    decoys += 1;
                }
                assert_clean(&got, path);
            }
            // Also race a fid held on the file: reopening it by parent+name after a swap.
            if let Ok(f) = root.walk(&names("race/secret")) {
                std::thread::yield_now();
                if f.open(oflags::RDONLY).is_ok() {
                    let mut buf = [0u8; 64];
                    let n = f.read(0, &mut buf).unwrap_or(0);
                    assert_clean(&buf[..n], "held fid");
                }
            }
        }
    });
    assert!(reads > 100, "the race ran ({reads} reads)");
    assert!(decoys > 0, "some reads went through the real directory");
}
