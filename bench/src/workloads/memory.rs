//! Memory: the host-side cost of one idle sandbox.
//!
//! A container running `sleep 1000` is created and started (stdio on /dev/null), left to
//! settle, and then every host process the runtime keeps for it is summed: RSS and PSS from
//! `/proc/<pid>/smaps_rollup` (PSS splits shared pages fairly, so it is the number to add
//! up), plus what its memory cgroup is charged. For runc that is the container's own process;
//! for runsc also the sandbox (Sentry), its ptrace stubs and the gofer.

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{Ctx, Metric, Plan, Workload};
use crate::procs;
use crate::runtime::{Container, Runtime};

const STOP_TIMEOUT: Duration = Duration::from_secs(30);

static METRICS: [Metric; 4] = [
    Metric::lower("memory/pss", "PSS of all its host processes", "MiB"),
    Metric::lower("memory/rss", "RSS of all its host processes", "MiB"),
    Metric::lower("memory/cgroup", "memory cgroup usage", "MiB"),
    Metric::lower("memory/processes", "host processes", "count").table_only(),
];

pub struct Memory {
    /// Time between `start` and the measurement.
    settle: Duration,
    bundle: Option<PathBuf>,
}

impl Memory {
    pub fn new(quick: bool) -> Self {
        Self { settle: Duration::from_millis(if quick { 500 } else { 1500 }), bundle: None }
    }
}

impl Workload for Memory {
    fn id(&self) -> &'static str {
        "memory"
    }

    fn title(&self) -> &'static str {
        "Memory of an idle sandbox"
    }

    fn metrics(&self) -> &'static [Metric] {
        &METRICS
    }

    fn plan(&self, quick: bool) -> Plan {
        Plan::Run { warmup: 1, reps: if quick { 3 } else { 5 } }
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<()> {
        self.bundle = Some(ctx.busybox_bundle("memory", &["/bin/sleep", "1000"])?);
        Ok(())
    }

    fn run_once(&self, _ctx: &Ctx, rt: &Runtime) -> Result<Vec<(&'static str, f64)>> {
        let bundle = self.bundle.as_deref().context("memory bundle not prepared")?;
        let container = Container::new(rt);
        rt.create(bundle, &container.id)?;
        rt.start(&container.id)?;
        thread::sleep(self.settle);

        let state = rt.state(&container.id)?;
        if state.status != "running" {
            bail!("container is {} after start, not running", state.status);
        }
        let pids = procs::container_pids(state.pid, &rt.root, &container.id);
        let (mut rss, mut pss) = (0, 0);
        for &pid in &pids {
            // A helper may exit between listing and reading; count what is still there.
            if let Ok((r, p)) = procs::rss_pss_kib(pid) {
                rss += r;
                pss += p;
            }
        }
        let cgroup = procs::cgroup_memory_bytes(state.pid);

        rt.kill(&container.id, "KILL")?;
        rt.wait_stopped(&container.id, STOP_TIMEOUT)?;
        container.delete()?;

        let mut out = vec![("memory/pss", kib_to_mib(pss)), ("memory/rss", kib_to_mib(rss))];
        if let Some(bytes) = cgroup {
            out.push(("memory/cgroup", kib_to_mib(bytes / 1024)));
        }
        out.push(("memory/processes", pids.len() as f64));
        Ok(out)
    }
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
