//! A Debian bookworm rootfs for the "unmodified programs run" tests, and bundles that use it.
//!
//! [`rootfs`] builds the tree once with `debootstrap --variant=minbase` from the mirror this host's apt
//! uses, and caches it in [`CACHE_DIR`]. Invariants:
//! - the cache dir, when it exists, is complete: debootstrap writes into a temporary sibling that is
//!   renamed into place only after it succeeded, so an interrupted build is never used;
//! - one builder at a time: test processes (nextest runs one per test) serialise on a `flock` of
//!   [`LOCK_FILE`], and the holder removes what dead builders left behind;
//! - the tree records what it was built with (suite and packages, in [`STAMP`]); a tree built from
//!   another package list is rebuilt;
//! - containers never write to it: [`DebianBundle`] marks the root read-only and mounts a tmpfs on
//!   `/tmp`.
//!
//! A failed build panics with the tail of the debootstrap log: these tests must fail, not skip, on a
//! host that cannot build the tree.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::mount::{umount2, MntFlags};
use serde_json::json;

use crate::harness::Bundle;

/// Where the finished rootfs lives.
pub const CACHE_DIR: &str = "/var/cache/moat-e2e/debian-rootfs";
/// The lock that serialises builders across test processes.
pub const LOCK_FILE: &str = "/var/cache/moat-e2e/.lock";
/// The Debian release.
pub const SUITE: &str = "bookworm";
/// Packages on top of minbase: the programs the scenarios run.
pub const PACKAGES: &[&str] = &[
    "bash",
    "coreutils",
    "grep",
    "sed",
    "findutils",
    "tar",
    "gzip",
    "procps",
    "python3",
    "gcc",
    "libc6-dev",
    "iperf3",
];
/// Inside the tree: the suite and package list it was built with.
pub const STAMP: &str = "etc/moat-e2e-rootfs";

/// Used only when apt's sources name no Debian archive.
const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";
/// A cold build with gcc downloads about 100 MB; leave room for a slow mirror.
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Prefixes of the build's temporary siblings of the cache dir.
const STAGING_PREFIX: &str = ".debian-rootfs.building-";
const STALE_PREFIX: &str = ".debian-rootfs.stale-";

/// The cached Debian rootfs, built first if needed. Panics if it cannot be built.
pub fn rootfs() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| ensure(Path::new(CACHE_DIR)).unwrap_or_else(|e| panic!("debian rootfs: {e:#}"))).clone()
}

fn stamp_text() -> String {
    format!("{SUITE} {}\n", PACKAGES.join(" "))
}

fn is_current(cache: &Path) -> bool {
    fs::read_to_string(cache.join(STAMP)).is_ok_and(|s| s == stamp_text())
}

fn ensure(cache: &Path) -> Result<PathBuf> {
    // The rename makes a stamped tree complete, so readers need no lock.
    if is_current(cache) {
        return Ok(cache.to_path_buf());
    }
    let parent = cache.parent().context("cache dir has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    let lock = File::create(LOCK_FILE).with_context(|| format!("create {LOCK_FILE}"))?;
    // Released when `lock` is closed, also if this process dies mid-build.
    lock.lock().with_context(|| format!("flock {LOCK_FILE}"))?;
    if is_current(cache) {
        return Ok(cache.to_path_buf());
    }
    // Holding the lock, any staging tree belongs to a builder that died.
    remove_leftovers(parent)?;
    if cache.exists() {
        // Built from another package list. Rename first so the cache path is never half-deleted.
        let stale = parent.join(format!("{STALE_PREFIX}{}", std::process::id()));
        fs::rename(cache, &stale).with_context(|| format!("move aside {}", cache.display()))?;
        remove_tree(&stale)?;
    }
    let staging = parent.join(format!("{STAGING_PREFIX}{}", std::process::id()));
    let started = Instant::now();
    debootstrap(&staging, &parent.join("debootstrap.log")).inspect_err(|_| {
        let _ = remove_tree(&staging);
    })?;
    // The downloaded .debs are only needed during the build (apt-get clean).
    if let Ok(debs) = fs::read_dir(staging.join("var/cache/apt/archives")) {
        for deb in debs.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "deb")) {
            let _ = fs::remove_file(deb.path());
        }
    }
    fs::write(staging.join(STAMP), stamp_text()).context("write the rootfs stamp")?;
    fs::rename(&staging, cache).with_context(|| format!("move the rootfs to {}", cache.display()))?;
    eprintln!("debian rootfs built in {:.0?} at {}", started.elapsed(), cache.display());
    Ok(cache.to_path_buf())
}

/// Runs debootstrap into `target`, logging to `log_path`, with a timeout.
fn debootstrap(target: &Path, log_path: &Path) -> Result<()> {
    let mirror = apt_mirror().unwrap_or_else(|| FALLBACK_MIRROR.to_owned());
    eprintln!("building the debian rootfs with debootstrap from {mirror} (once; log in {})", log_path.display());
    let log = File::create(log_path).with_context(|| format!("create {}", log_path.display()))?;
    let mut cmd = Command::new("debootstrap");
    cmd.arg("--variant=minbase").arg(format!("--include={}", PACKAGES.join(","))).arg(SUITE).arg(target).arg(&mirror);
    // debootstrap lives in /usr/sbin, which a test runner's PATH may lack.
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{path}:/usr/local/sbin:/usr/sbin:/sbin"));
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    let mut child = cmd.spawn().context("run debootstrap (apt-get install debootstrap)")?;
    let deadline = Instant::now() + DEBOOTSTRAP_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().context("wait for debootstrap")? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("debootstrap timed out after {DEBOOTSTRAP_TIMEOUT:?}; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        let text = fs::read_to_string(log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("debootstrap failed ({status}); {}:\n{}", log_path.display(), tail.join("\n"));
    }
    Ok(())
}

/// Removes the staging and stale trees of earlier runs.
fn remove_leftovers(parent: &Path) -> Result<()> {
    for entry in fs::read_dir(parent).with_context(|| format!("read {}", parent.display()))?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(STAGING_PREFIX) || name.starts_with(STALE_PREFIX) {
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

/// Removes a tree, first detaching what a killed debootstrap left mounted in it (its /proc, /sys),
/// so the removal never descends into a live filesystem.
fn remove_tree(dir: &Path) -> Result<()> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    let mut inside: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    // Deepest first.
    inside.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in inside {
        umount2(&m, MntFlags::MNT_DETACH).with_context(|| format!("unmount {}", m.display()))?;
    }
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The first Debian archive in apt's sources: `/etc/apt/sources.list`, then the `.list` and `.sources`
/// files of `/etc/apt/sources.list.d` in name order (disabled files have other suffixes).
fn apt_mirror() -> Option<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    files.iter().filter_map(|f| fs::read_to_string(f).ok()).find_map(|text| mirror_in(&text))
}

/// A `…/debian` archive URL (not `debian-security`) in one-line or deb822 sources text.
fn mirror_in(text: &str) -> Option<String> {
    let is_archive = |u: &str| u.starts_with("http") && u.trim_end_matches('/').ends_with("/debian");
    text.lines().find_map(|line| {
        let words: Vec<&str> = line.split('#').next().unwrap_or("").split_whitespace().collect();
        let candidates: &[&str] = match words.as_slice() {
            // `deb [options] URL suite components`; options may hold spaces, the URL never does
            ["deb", rest @ ..] => rest,
            ["URIs:", uris @ ..] => uris,
            _ => &[],
        };
        candidates.iter().copied().find(|u| is_archive(u)).map(|u| u.trim_end_matches('/').to_owned())
    })
}

/// A bundle running `args` whose root is the cached Debian tree, read-only,
/// with a tmpfs on /tmp; its config is `moat spec`'s template without a terminal.
pub fn bundle(args: &[&str]) -> Bundle {
    let root = rootfs();
    let mut b = Bundle::template(args);
    b.edit(|spec| {
        spec["root"] = json!({"path": root, "readonly": true});
        spec["process"]["env"] =
            json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"]);
        spec["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]
        }));
    });
    b
}

#[cfg(test)]
mod tests {
    use super::{mirror_in, unescape_mountinfo};

    #[test]
    fn finds_the_archive_in_either_format() {
        let deb822 =
            "Types: deb\n# http://snapshot.debian.org/archive/debian/2025\nURIs: http://deb.debian.org/debian\n";
        assert_eq!(mirror_in(deb822).as_deref(), Some("http://deb.debian.org/debian"));
        let one_line = "deb [arch=amd64 signed-by=/k.gpg] http://ftp.de.debian.org/debian/ bookworm main\n";
        assert_eq!(mirror_in(one_line).as_deref(), Some("http://ftp.de.debian.org/debian"));
        assert_eq!(mirror_in("URIs: http://deb.debian.org/debian-security\n"), None);
        assert_eq!(mirror_in("deb https://packages.cloud.google.com/apt cloud-sdk main\n"), None);
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape_mountinfo(r"/a\040b/c\134d"), r"/a b/c\d");
        assert_eq!(unescape_mountinfo(r"/plain\x"), r"/plain\x");
    }
}
