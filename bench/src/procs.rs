//! Host processes as /proc shows them: finding what a runtime left running, and its memory.
//!
//! A container's processes are found two ways, because runtimes differ: the pid `state`
//! reports and its descendants (runc: the container init; runsc: the sandbox and its ptrace
//! stubs), and every process whose command line names the runtime's `--root` directory or the
//! container id (runsc's gofer is not a descendant of its sandbox), with their descendants.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// One process from /proc.
struct Proc {
    pid: i32,
    ppid: i32,
    args: Vec<String>,
}

fn list() -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            // The process may exit between readdir and here; skip it then.
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name, which is in parentheses and may hold anything.
            let rest = &stat[stat.rfind(')')? + 2..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args =
                raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into()).collect();
            Some(Proc { pid, ppid, args })
        })
        .collect()
}

/// Pids of the processes that belong to a container (see the module docs).
pub fn container_pids(state_pid: i32, root: &Path, id: &str) -> BTreeSet<i32> {
    let procs = list();
    let root = root.to_string_lossy();
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    let mut seeds: BTreeSet<i32> = procs
        .iter()
        .filter(|p| p.pid != me && p.args.iter().any(|a| a.contains(root.as_ref()) || a == id))
        .map(|p| p.pid)
        .collect();
    if state_pid > 0 {
        seeds.insert(state_pid);
    }
    with_descendants(&procs, seeds)
}

/// Pids of processes whose command line mentions `needle`, with their descendants.
pub fn mentioning(needle: &str) -> BTreeSet<i32> {
    let procs = list();
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    let seeds =
        procs.iter().filter(|p| p.pid != me && p.args.iter().any(|a| a.contains(needle))).map(|p| p.pid).collect();
    with_descendants(&procs, seeds)
}

fn with_descendants(procs: &[Proc], mut set: BTreeSet<i32>) -> BTreeSet<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut todo: Vec<i32> = set.iter().copied().collect();
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            if set.insert(child) {
                todo.push(child);
            }
        }
    }
    set
}

/// Resident and proportional set size of one process, in KiB.
pub fn rss_pss_kib(pid: i32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("Rss:"), field("Pss:")))
}

/// Memory charged to the cgroup of `pid`, in bytes, if its memory controller is visible.
/// Reads `memory.current` on cgroup v2 and `memory.usage_in_bytes` on v1.
pub fn cgroup_memory_bytes(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut v1 = None;
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(format!("/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"));
        } else if controllers.is_empty() {
            v2 = Some(format!("/sys/fs/cgroup{path}/memory.current"));
        }
    }
    [v1, v2].into_iter().flatten().find_map(|file| fs::read_to_string(file).ok()?.trim().parse().ok())
}
