//! Real programs: a busybox shell script, and Python from a Debian root filesystem.
//!
//! Both are timed inside the container by `micro time` (fork, exec, wait), so container
//! start-up is not part of the number.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{parse_values, run_capture, value, Ctx, Metric, Plan, Workload};
use crate::bundle::{self, BundleSpec};
use crate::debian;
use crate::runtime::Runtime;

static SHELL_METRICS: [Metric; 1] =
    [Metric::lower("real/shell", "shell script: busybox coreutils, pipes, small files", "ms/iter")];

pub struct Shell {
    iterations: u32,
    bundle: Option<PathBuf>,
}

impl Shell {
    pub fn new(quick: bool) -> Self {
        Self { iterations: if quick { 10 } else { 30 }, bundle: None }
    }
}

impl Workload for Shell {
    fn id(&self) -> &'static str {
        "real/shell"
    }

    fn title(&self) -> &'static str {
        "Real programs: shell"
    }

    fn metrics(&self) -> &'static [Metric] {
        &SHELL_METRICS
    }

    fn plan(&self, quick: bool) -> Plan {
        Plan::Run { warmup: 1, reps: if quick { 3 } else { 9 } }
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<()> {
        let n = self.iterations.to_string();
        let args = ["/bench/micro", "time", "1", "/bin/sh", "/bench/shell.sh", &n];
        self.bundle = Some(ctx.busybox_bundle("shell", &args)?);
        Ok(())
    }

    fn run_once(&self, ctx: &Ctx, rt: &Runtime) -> Result<Vec<(&'static str, f64)>> {
        let bundle = self.bundle.as_deref().context("shell bundle not prepared")?;
        let stdout = run_capture(rt, bundle, &ctx.work)?;
        let total_ms = value(&parse_values(&stdout), "elapsed", &stdout)?;
        Ok(vec![("real/shell", total_ms / f64::from(self.iterations))])
    }
}

static PYTHON_METRICS: [Metric; 2] = [
    Metric::lower("real/python-startup", "python3 -c pass", "ms"),
    Metric::lower("real/python-script", "python3 script: json, regex, files, stdlib walk", "ms"),
];

/// Interpreter start-ups per measurement (one is too short to time well).
const PYTHON_STARTS: &str = "5";

#[derive(Default)]
pub struct Python {
    bundles: Option<(PathBuf, PathBuf)>,
}

impl Workload for Python {
    fn id(&self) -> &'static str {
        "real/python"
    }

    fn title(&self) -> &'static str {
        "Real programs: Python (Debian rootfs)"
    }

    fn metrics(&self) -> &'static [Metric] {
        &PYTHON_METRICS
    }

    fn plan(&self, quick: bool) -> Plan {
        if quick {
            Plan::Skip("skipped in --quick".into())
        } else {
            Plan::Run { warmup: 1, reps: 9 }
        }
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<()> {
        let rootfs = debian::ensure_rootfs(&ctx.reaper, &ctx.debian_cache)?;
        let bundle = |name: &str, args: &[&str]| {
            let spec = BundleSpec {
                rootfs: &rootfs,
                readonly: true,
                args: bundle::args(args),
                tools: &ctx.tools.dir,
                tmpfs_tmp: true,
            };
            bundle::write(&ctx.work.join("bundles").join(name), &spec)
        };
        let startup =
            bundle("python-startup", &["/bench/micro", "time", PYTHON_STARTS, "/usr/bin/python3", "-c", "pass"])?;
        let script = bundle("python-script", &["/bench/micro", "time", "1", "/usr/bin/python3", "/bench/work.py"])?;
        self.bundles = Some((startup, script));
        Ok(())
    }

    fn run_once(&self, ctx: &Ctx, rt: &Runtime) -> Result<Vec<(&'static str, f64)>> {
        let (startup, script) = self.bundles.as_ref().context("python bundles not prepared")?;
        let stdout = run_capture(rt, startup, &ctx.work)?;
        let start_ms = value(&parse_values(&stdout), "elapsed", &stdout)?;
        let stdout = run_capture(rt, script, &ctx.work)?;
        if !stdout.lines().any(|l| l.starts_with("ok ")) {
            anyhow::bail!("work.py did not finish; stdout was {stdout:?}");
        }
        let script_ms = value(&parse_values(&stdout), "elapsed", &stdout)?;
        Ok(vec![("real/python-startup", start_ms), ("real/python-script", script_ms)])
    }
}
