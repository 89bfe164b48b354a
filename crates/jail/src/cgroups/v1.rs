//! cgroup v1: one directory per hierarchy, one file family per controller.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

use super::{read_u64, write, Stats};
use crate::{Error, Result};

/// The v1 hierarchies mounted on the host: (mount point, controller key as
/// /proc/self/cgroup spells it, e.g. "cpu,cpuacct" or "name=systemd").
pub fn hierarchies() -> Vec<(PathBuf, String)> {
    let s = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in s.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let super_opts = post.nth(1).unwrap_or("");
        let Some(mnt) = pre.split(' ').nth(4) else { continue };
        let key: Vec<&str> = super_opts
            .split(',')
            .filter(|o| {
                !matches!(*o, "rw" | "ro" | "clone_children" | "noprefix" | "xattr" | "cpuset_v2_mode")
                    && !o.starts_with("release_agent=")
            })
            .collect();
        out.push((PathBuf::from(crate::mount::unescape(mnt)), key.join(",")));
    }
    out
}

/// Picks the first directory that belongs to one of `controllers`.
pub fn pick(dirs: &[PathBuf], controllers: &[&str]) -> Option<PathBuf> {
    controllers.iter().find_map(|c| dir_of(dirs, c))
}

fn dir_of(dirs: &[PathBuf], controller: &str) -> Option<PathBuf> {
    let root = Path::new(super::CGROUP_ROOT);
    dirs.iter()
        .find(|d| {
            d.strip_prefix(root)
                .ok()
                .and_then(|r| r.components().next())
                .map(|c| c.as_os_str().to_string_lossy().split(',').any(|x| x == controller))
                .unwrap_or(false)
        })
        .cloned()
}

/// cpuset needs cpus and mems before a task may join: copy them down from
/// the nearest ancestor that has them.
pub fn prepare(dirs: &[PathBuf]) -> Result<()> {
    if let Some(d) = dir_of(dirs, "cpuset") {
        fill_cpuset(&d)?;
    }
    Ok(())
}

fn fill_cpuset(d: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let cur = fs::read_to_string(d.join(f)).unwrap_or_default();
        if !cur.trim().is_empty() {
            continue;
        }
        if let Some(parent) = d.parent() {
            fill_cpuset(parent)?;
            let v = fs::read_to_string(parent.join(f)).unwrap_or_default();
            write(d, f, v.trim())?;
        }
    }
    Ok(())
}

/// Applies resource limits to the v1 hierarchies.
pub fn apply(dirs: &[PathBuf], r: &LinuxResources) -> Result<()> {
    if let (Some(m), Some(d)) = (r.memory(), dir_of(dirs, "memory")) {
        if let Some(l) = m.limit() {
            write(&d, "memory.limit_in_bytes", l.to_string())?;
        }
        if let Some(s) = m.swap() {
            // memsw is only there when the kernel accounts swap
            if d.join("memory.memsw.limit_in_bytes").exists() {
                write(&d, "memory.memsw.limit_in_bytes", s.to_string())?;
            }
        }
        if let Some(v) = m.reservation() {
            write(&d, "memory.soft_limit_in_bytes", v.to_string())?;
        }
        if let Some(v) = m.swappiness() {
            if v > 100 {
                return Err(Error::Config(format!("linux.resources.memory.swappiness: {v} is above 100")));
            }
            write(&d, "memory.swappiness", v.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            write(&d, "memory.oom_control", "1")?;
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(d) = dir_of(dirs, "cpu") {
            if let Some(v) = c.shares() {
                write(&d, "cpu.shares", v.to_string())?;
            }
            if let Some(v) = c.period() {
                write(&d, "cpu.cfs_period_us", v.to_string())?;
            }
            if let Some(v) = c.quota() {
                write(&d, "cpu.cfs_quota_us", v.to_string())?;
            }
            if let Some(v) = c.realtime_period() {
                write(&d, "cpu.rt_period_us", v.to_string())?;
            }
            if let Some(v) = c.realtime_runtime() {
                write(&d, "cpu.rt_runtime_us", v.to_string())?;
            }
        }
        if let Some(d) = dir_of(dirs, "cpuset") {
            if let Some(v) = c.cpus() {
                write(&d, "cpuset.cpus", v)?;
            }
            if let Some(v) = c.mems() {
                write(&d, "cpuset.mems", v)?;
            }
        }
    }
    if let (Some(p), Some(d)) = (r.pids(), dir_of(dirs, "pids")) {
        let v = if p.limit() > 0 { p.limit().to_string() } else { "max".into() };
        write(&d, "pids.max", v)?;
    }
    if let (Some(b), Some(d)) = (r.block_io(), dir_of(dirs, "blkio")) {
        if let Some(w) = b.weight() {
            if d.join("blkio.weight").exists() {
                write(&d, "blkio.weight", w.to_string())?;
            }
        }
        for (list, file) in [
            (b.throttle_read_bps_device(), "blkio.throttle.read_bps_device"),
            (b.throttle_write_bps_device(), "blkio.throttle.write_bps_device"),
            (b.throttle_read_iops_device(), "blkio.throttle.read_iops_device"),
            (b.throttle_write_iops_device(), "blkio.throttle.write_iops_device"),
        ] {
            for t in list.iter().flatten() {
                write(&d, file, format!("{}:{} {}", t.major(), t.minor(), t.rate()))?;
            }
        }
    }
    if let Some(d) = dir_of(dirs, "devices") {
        apply_devices(&d, r.devices().as_deref().unwrap_or(&[]))?;
    }
    Ok(())
}

/// The device rules every container gets after the spec's own, as runc adds
/// them: mknod of anything, and the standard character devices.
pub const DEFAULT_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

fn apply_devices(d: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    write(d, "devices.deny", "a")?;
    for r in rules {
        let typ = r.typ().map(|t| t.as_str().to_string()).unwrap_or_else(|| "a".into());
        let num = |n: Option<i64>| n.filter(|n| *n >= 0).map(|n| n.to_string()).unwrap_or_else(|| "*".into());
        let rule = if typ == "a" {
            "a".to_string()
        } else {
            format!("{} {}:{} {}", typ, num(r.major()), num(r.minor()), r.access().as_deref().unwrap_or("rwm"))
        };
        write(d, if r.allow() { "devices.allow" } else { "devices.deny" }, rule)?;
    }
    for rule in DEFAULT_DEVICE_RULES {
        write(d, "devices.allow", rule)?;
    }
    Ok(())
}

/// Sets freezer.state and waits until the kernel reports it reached (a
/// few seconds at most).
pub fn set_frozen(dirs: &[PathBuf], frozen: bool) -> Result<()> {
    let d = dir_of(dirs, "freezer").ok_or_else(|| Error::Config("the freezer cgroup is not mounted".into()))?;
    let want = if frozen { "FROZEN" } else { "THAWED" };
    for i in 0..2000 {
        // a task waiting on a FUSE server in the same cgroup (a sentry
        // sandbox's /proc) cannot freeze until it is answered; if the server
        // froze first, only a thaw lets it progress (runc thaws likewise)
        if frozen && i % 50 == 49 {
            write(&d, "freezer.state", "THAWED")?;
            std::thread::sleep(Duration::from_millis(10));
        }
        write(&d, "freezer.state", want)?;
        if fs::read_to_string(d.join("freezer.state")).unwrap_or_default().trim() == want {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(Error::Config(format!("cgroup {} did not reach {want}", d.display())))
}

/// Whether the freezer reports FROZEN.
pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    dir_of(dirs, "freezer")
        .and_then(|d| fs::read_to_string(d.join("freezer.state")).ok())
        .map(|s| s.trim() == "FROZEN")
        .unwrap_or(false)
}

/// Usage figures from the v1 controllers.
pub fn stats(dirs: &[PathBuf]) -> Stats {
    let mut s = Stats::default();
    if let Some(d) = dir_of(dirs, "memory") {
        s.memory.usage = read_u64(&d, "memory.usage_in_bytes").unwrap_or(0);
        s.memory.max_usage = read_u64(&d, "memory.max_usage_in_bytes").unwrap_or(0);
        s.memory.limit = read_u64(&d, "memory.limit_in_bytes").unwrap_or(0);
        s.memory.failcnt = read_u64(&d, "memory.failcnt").unwrap_or(0);
        s.memory.raw = super::stats::read_flat_keyed(&d.join("memory.stat"));
    }
    if let Some(d) = dir_of(dirs, "cpuacct") {
        s.cpu.total = read_u64(&d, "cpuacct.usage").unwrap_or(0);
        s.cpu.percpu = fs::read_to_string(d.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let st = super::stats::read_flat_keyed(&d.join("cpuacct.stat"));
        // cpuacct.stat counts USER_HZ ticks (100 per second)
        s.cpu.user = st.get("user").copied().unwrap_or(0) * 10_000_000;
        s.cpu.kernel = st.get("system").copied().unwrap_or(0) * 10_000_000;
    }
    if let Some(d) = dir_of(dirs, "pids") {
        s.pids.current = read_u64(&d, "pids.current").unwrap_or(0);
        s.pids.limit = read_u64(&d, "pids.max").unwrap_or(0);
    }
    s
}
