//! System-call microbenchmarks: the guest `micro syscalls` times each operation in a loop
//! inside the container and prints ns/op; reported here in µs/op.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{parse_values, run_capture, value, Ctx, Metric, Plan, Workload};
use crate::runtime::Runtime;

/// (metric id, name the guest prints).
const OPS: [(&str, &str); 12] = [
    ("syscalls/getpid", "getpid"),
    ("syscalls/stat", "stat"),
    ("syscalls/open+close", "open+close"),
    ("syscalls/stat-image", "stat-image"),
    ("syscalls/open+close-image", "open+close-image"),
    ("syscalls/pread-4k", "pread-4k"),
    ("syscalls/pwrite-4k", "pwrite-4k"),
    ("syscalls/mmap+munmap", "mmap+munmap"),
    ("syscalls/mmap-64k+munmap", "mmap-64k+munmap"),
    ("syscalls/pipe-pingpong", "pipe-pingpong"),
    ("syscalls/fork+wait", "fork+wait"),
    ("syscalls/fork+exec+wait", "fork+exec+wait"),
];

static METRICS: [Metric; 12] = [
    Metric::lower("syscalls/getpid", "getpid", "µs/op"),
    Metric::lower("syscalls/stat", "stat (a file the container writes)", "µs/op"),
    Metric::lower("syscalls/open+close", "open + close (a file the container writes)", "µs/op"),
    Metric::lower("syscalls/stat-image", "stat (a file of the image)", "µs/op"),
    Metric::lower("syscalls/open+close-image", "open + close (a file of the image)", "µs/op"),
    Metric::lower("syscalls/pread-4k", "pread 4 KiB", "µs/op"),
    Metric::lower("syscalls/pwrite-4k", "pwrite 4 KiB", "µs/op"),
    Metric::lower("syscalls/mmap+munmap", "mmap + touch + munmap 4 KiB", "µs/op"),
    Metric::lower("syscalls/mmap-64k+munmap", "mmap 64 KiB + touch 1 page + munmap", "µs/op"),
    Metric::lower("syscalls/pipe-pingpong", "pipe ping-pong (round trip)", "µs/op"),
    Metric::lower("syscalls/fork+wait", "fork + wait", "µs/op"),
    Metric::lower("syscalls/fork+exec+wait", "fork + exec static binary + wait", "µs/op"),
];

pub struct Syscalls {
    /// Time budget per operation, in the guest.
    budget_ms: u32,
    bundle: Option<PathBuf>,
}

impl Syscalls {
    pub fn new(quick: bool) -> Self {
        Self { budget_ms: if quick { 40 } else { 250 }, bundle: None }
    }
}

impl Workload for Syscalls {
    fn id(&self) -> &'static str {
        "syscalls"
    }

    fn title(&self) -> &'static str {
        "System calls"
    }

    fn metrics(&self) -> &'static [Metric] {
        &METRICS
    }

    fn plan(&self, quick: bool) -> Plan {
        Plan::Run { warmup: 1, reps: if quick { 3 } else { 9 } }
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<()> {
        let budget = self.budget_ms.to_string();
        self.bundle = Some(ctx.busybox_bundle("syscalls", &["/bench/micro", "syscalls", &budget, "/scratch"])?);
        Ok(())
    }

    fn run_once(&self, ctx: &Ctx, rt: &Runtime) -> Result<Vec<(&'static str, f64)>> {
        let bundle = self.bundle.as_deref().context("syscalls bundle not prepared")?;
        let stdout = run_capture(rt, bundle, &ctx.work)?;
        let values = parse_values(&stdout);
        OPS.iter().map(|(id, name)| Ok((*id, value(&values, name, &stdout)? / 1e3))).collect()
    }
}
