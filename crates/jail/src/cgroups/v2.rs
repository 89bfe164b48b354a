//! cgroup v2: one directory in the unified tree; controllers are enabled in
//! every ancestor's cgroup.subtree_control.

use std::fs;
use std::path::Path;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use super::{read_u64, write, Stats, CGROUP_ROOT};
use crate::{Error, Result};

/// Enables the available controllers down to `dir`'s parent.
pub fn prepare(dir: &Path) -> Result<()> {
    let root = Path::new(CGROUP_ROOT);
    let avail = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let want: Vec<String> = avail
        .split_whitespace()
        .filter(|c| matches!(*c, "cpu" | "cpuset" | "memory" | "pids" | "io" | "hugetlb"))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    let Ok(rel) = dir.strip_prefix(root) else { return Ok(()) };
    let mut cur = root.to_path_buf();
    for comp in rel.parent().into_iter().flat_map(|p| p.components()) {
        // best effort: a parent with processes in it cannot delegate
        let _ = fs::write(cur.join("cgroup.subtree_control"), want.join(" "));
        cur.push(comp);
    }
    let _ = fs::write(cur.join("cgroup.subtree_control"), want.join(" "));
    Ok(())
}

/// cpu.weight from cgroup v1 cpu.shares (the conversion runc and crun use).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}

/// Applies resource limits to the unified cgroup.
pub fn apply(d: &Path, r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            write(d, "memory.max", limit(l))?;
        }
        if let (Some(s), Some(l)) = (m.swap(), m.limit()) {
            // v1 swap is memory+swap; v2 counts swap alone
            let v = if s < 0 { "max".to_string() } else { (s - l.max(0)).max(0).to_string() };
            write(d, "memory.swap.max", v)?;
        }
        if let Some(v) = m.reservation() {
            write(d, "memory.low", limit(v))?;
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(v) = c.shares() {
            write(d, "cpu.weight", shares_to_weight(v).to_string())?;
        }
        if c.quota().is_some() || c.period().is_some() {
            let q = c.quota().filter(|q| *q > 0).map(|q| q.to_string()).unwrap_or_else(|| "max".into());
            let p = c.period().unwrap_or(100_000);
            write(d, "cpu.max", format!("{q} {p}"))?;
        }
        if let Some(v) = c.cpus() {
            write(d, "cpuset.cpus", v)?;
        }
        if let Some(v) = c.mems() {
            write(d, "cpuset.mems", v)?;
        }
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() > 0 { p.limit().to_string() } else { "max".into() };
        write(d, "pids.max", v)?;
    }
    if let Some(u) = r.unified() {
        for (k, v) in u {
            if k.contains('/') || k.starts_with('.') {
                return Err(Error::Config(format!("linux.resources.unified: bad key {k:?}")));
            }
            write(d, k, v)?;
        }
    }
    if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        tracing::warn!("device cgroup rules are not enforced on cgroup v2 yet");
    }
    Ok(())
}

fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Writes cgroup.freeze and waits for cgroup.events to agree.
pub fn set_frozen(d: &Path, frozen: bool) -> Result<()> {
    write(d, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    for _ in 0..1000 {
        if fs::read_to_string(d.join("cgroup.events")).unwrap_or_default().lines().any(|l| l == want) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(Error::Config(format!("cgroup {} did not reach {want}", d.display())))
}

/// Whether cgroup.events says frozen.
pub fn is_frozen(d: &Path) -> bool {
    fs::read_to_string(d.join("cgroup.events")).unwrap_or_default().lines().any(|l| l == "frozen 1")
}

/// Usage figures from the unified cgroup.
pub fn stats(d: &Path) -> Stats {
    let mut s = Stats::default();
    s.memory.usage = read_u64(d, "memory.current").unwrap_or(0);
    s.memory.max_usage = read_u64(d, "memory.peak").unwrap_or(0);
    s.memory.limit = read_u64(d, "memory.max").unwrap_or(u64::MAX);
    s.memory.raw = super::stats::read_flat_keyed(&d.join("memory.stat"));
    let cpu = super::stats::read_flat_keyed(&d.join("cpu.stat"));
    s.cpu.total = cpu.get("usage_usec").copied().unwrap_or(0) * 1000;
    s.cpu.user = cpu.get("user_usec").copied().unwrap_or(0) * 1000;
    s.cpu.kernel = cpu.get("system_usec").copied().unwrap_or(0) * 1000;
    s.pids.current = read_u64(d, "pids.current").unwrap_or(0);
    s.pids.limit = read_u64(d, "pids.max").unwrap_or(0);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_convert_like_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
    }
}

#[cfg(test)]
mod apply_tests {
    use super::*;

    #[test]
    fn limits_land_in_the_v2_files() {
        let d = tempfile::tempdir().unwrap();
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1048576, "swap": 2097152},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
            "pids": {"limit": 10},
            "unified": {"io.weight": "50"}
        }))
        .unwrap();
        apply(d.path(), &r).unwrap();
        let read = |f: &str| fs::read_to_string(d.path().join(f)).unwrap();
        assert_eq!(read("memory.max"), "1048576");
        assert_eq!(read("memory.swap.max"), "1048576");
        assert_eq!(read("cpu.weight"), "39");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "10");
        assert_eq!(read("io.weight"), "50");
        let bad: LinuxResources = serde_json::from_value(serde_json::json!({"unified": {"../x": "1"}})).unwrap();
        assert!(apply(d.path(), &bad).is_err());
    }
}
