//! Resource usage of a cgroup, in the shape `runc events --stats` prints.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// Usage of one container.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    /// cpu time
    pub cpu: Cpu,
    /// memory
    pub memory: Memory,
    /// process count
    pub pids: Pids,
}

/// cpu time, in nanoseconds.
#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    /// total
    pub total: u64,
    /// per cpu
    pub percpu: Vec<u64>,
    /// in user mode
    pub user: u64,
    /// in kernel mode
    pub kernel: u64,
}

/// memory, in bytes.
#[derive(Debug, Default, Serialize)]
pub struct Memory {
    /// current usage
    pub usage: u64,
    /// peak usage
    pub max_usage: u64,
    /// limit
    pub limit: u64,
    /// times the limit was hit
    pub failcnt: u64,
    /// memory.stat as it is
    pub raw: BTreeMap<String, u64>,
}

/// process count.
#[derive(Debug, Default, Serialize)]
pub struct Pids {
    /// now
    pub current: u64,
    /// limit (0: none)
    pub limit: u64,
}

/// Reads a "key value" per line file such as memory.stat.
pub fn read_flat_keyed(p: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}
