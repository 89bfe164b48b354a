//! OCI bundles: a `config.json` like `runc spec` writes, and the busybox root filesystem.
//!
//! A bundle here is a directory holding only `config.json`; its `root.path` is absolute, so
//! one root filesystem serves every bundle of a session. The spec is runc's default (same
//! namespaces, mounts, masked paths, capabilities) with `terminal: false`, plus the bench's
//! tool directory bind-mounted read-only at `/bench`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::reaper::Reaper;
use crate::tools::GUEST_DIR;

/// Where busybox-static installs its binary.
const BUSYBOX: &str = "/bin/busybox";

/// What a bundle runs and on which root.
pub struct BundleSpec<'a> {
    pub rootfs: &'a Path,
    pub readonly: bool,
    pub args: Vec<String>,
    /// Host directory mounted read-only at /bench (the micro binary, scripts).
    pub tools: &'a Path,
    /// Mount a tmpfs on /tmp (for read-only roots).
    pub tmpfs_tmp: bool,
}

/// Writes `<dir>/config.json` for `spec`; returns `dir`.
pub fn write(dir: &Path, spec: &BundleSpec<'_>) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let config = config(spec);
    let text = serde_json::to_string_pretty(&config).context("encode config.json")?;
    let path = dir.join("config.json");
    fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(dir.to_path_buf())
}

/// Shorthand for a bundle's argv.
pub fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

fn config(spec: &BundleSpec<'_>) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut mounts = default_mounts();
    mounts.push(json!({
        "destination": GUEST_DIR, "type": "bind", "source": spec.tools, "options": ["rbind", "ro", "nosuid", "nodev"]
    }));
    if spec.tmpfs_tmp {
        mounts.push(json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]
        }));
    }
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": spec.args,
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/root",
                "PYTHONDONTWRITEBYTECODE=1"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": spec.rootfs, "readonly": spec.readonly },
        "hostname": "bench",
        "mounts": mounts,
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// The mounts of `runc spec` 1.1.
fn default_mounts() -> Vec<Value> {
    vec![
        json!({ "destination": "/proc", "type": "proc", "source": "proc" }),
        json!({ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }),
        json!({ "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] }),
        json!({ "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] }),
        json!({ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"] }),
        json!({ "destination": "/sys", "type": "sysfs", "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"] }),
        json!({ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }),
    ]
}

/// Builds a root filesystem of Debian's busybox-static and its applet links at `dir`.
/// Writable dirs: /tmp and /scratch (where the file benchmarks write).
pub fn busybox_rootfs(reaper: &Reaper, dir: &Path) -> Result<()> {
    if !Path::new(BUSYBOX).is_file() {
        bail!("{BUSYBOX} not found (apt-get install busybox-static)");
    }
    for sub in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "scratch", "bench", "proc", "dev", "sys"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
    }
    let target = dir.join("bin/busybox");
    fs::copy(BUSYBOX, &target).with_context(|| format!("copy {BUSYBOX}"))?;
    for applet in applets(reaper)? {
        let link = dir.join(applet.trim_start_matches('/'));
        if link != target && !link.exists() {
            symlink("/bin/busybox", &link).with_context(|| format!("symlink {}", link.display()))?;
        }
    }
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").context("write etc/passwd")?;
    fs::write(dir.join("etc/group"), "root:x:0:\n").context("write etc/group")?;
    Ok(())
}

/// Applet paths (`/bin/ls`, `/usr/bin/seq` …), as busybox lists them.
fn applets(reaper: &Reaper) -> Result<Vec<String>> {
    let out = reaper.capture(Command::new(BUSYBOX).arg("--list-full"), Duration::from_secs(10))?;
    if out.code != 0 {
        bail!("busybox --list-full exited with {}", out.code);
    }
    Ok(out.stdout.lines().filter(|l| !l.is_empty() && !l.contains("..")).map(str::to_owned).collect())
}
