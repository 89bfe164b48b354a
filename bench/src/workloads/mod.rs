//! The workloads, and the interface the runner drives them through.
//!
//! A workload declares its metrics, says how often to run (or why not to), prepares its
//! bundles once, and then measures one repetition on one runtime at a time. A repetition
//! returns one value per metric; it owns every container it makes (through
//! [`Container`](crate::runtime::Container), which deletes on drop), so an error anywhere
//! still leaves nothing running.

mod fileio;
mod memory;
mod network;
mod pod;
mod real;
mod relay;
mod startup;
mod syscalls;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bundle::{self, BundleSpec};
use crate::reaper::Reaper;
use crate::results::Better;
use crate::runtime::{Container, Output, Runtime};
use crate::tools::Tools;

/// Deadline for one containerised run of a workload.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// A metric a workload reports.
pub struct Metric {
    pub id: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub better: Better,
    /// Shown in the chart (ratios of counts and the like are left to the table).
    pub chart: bool,
}

impl Metric {
    const fn lower(id: &'static str, label: &'static str, unit: &'static str) -> Self {
        Self { id, label, unit, better: Better::Lower, chart: true }
    }

    const fn higher(id: &'static str, label: &'static str, unit: &'static str) -> Self {
        Self { id, label, unit, better: Better::Higher, chart: true }
    }

    const fn table_only(self) -> Self {
        Self { chart: false, ..self }
    }
}

/// How a workload runs in this session.
pub enum Plan {
    Run { warmup: u32, reps: u32 },
    Skip(String),
}

/// What every workload can use.
pub struct Ctx {
    pub quick: bool,
    pub reaper: Reaper,
    /// The session's scratch directory (removed at the end).
    pub work: PathBuf,
    pub tools: Tools,
    /// The writable busybox root filesystem shared by the busybox bundles.
    pub busybox: PathBuf,
    pub debian_cache: PathBuf,
}

impl Ctx {
    /// Writes a bundle named `name` running `args` on the busybox rootfs.
    pub fn busybox_bundle(&self, name: &str, args: &[&str]) -> Result<PathBuf> {
        let spec = BundleSpec {
            rootfs: &self.busybox,
            readonly: false,
            args: bundle::args(args),
            tools: &self.tools.dir,
            tmpfs_tmp: false,
        };
        bundle::write(&self.work.join("bundles").join(name), &spec)
    }
}

pub trait Workload {
    fn id(&self) -> &'static str;
    fn title(&self) -> &'static str;
    fn metrics(&self) -> &'static [Metric];
    fn plan(&self, quick: bool) -> Plan;
    /// Builds bundles and anything else shared by all runs.
    fn prepare(&mut self, ctx: &Ctx) -> Result<()>;
    /// One repetition on one runtime: `(metric id, value)` pairs.
    fn run_once(&self, ctx: &Ctx, rt: &Runtime) -> Result<Vec<(&'static str, f64)>>;
}

/// Every workload, in report order.
pub fn all(quick: bool) -> Vec<Box<dyn Workload>> {
    vec![
        Box::new(startup::Startup::default()),
        Box::new(syscalls::Syscalls::new(quick)),
        Box::new(fileio::FileIo::new(quick)),
        Box::new(memory::Memory::new(quick)),
        Box::new(real::Shell::new(quick)),
        Box::new(real::Python::default()),
        Box::new(network::Network::new(quick)),
        Box::new(pod::Pod::new(quick)),
    ]
}

/// Runs `bundle` to completion with `run` and returns the container's stdout.
pub fn run_capture(rt: &Runtime, bundle: &Path, scratch: &Path) -> Result<String> {
    let container = Container::new(rt);
    let out = scratch.join(format!("{}.out", container.id));
    let result = rt.run(bundle, &container.id, Output::File(&out), RUN_TIMEOUT);
    let text = fs::read_to_string(&out).unwrap_or_default();
    let _ = fs::remove_file(&out);
    result?;
    Ok(text)
}

/// Parses the guest's `name value [iterations]` lines.
pub fn parse_values(stdout: &str) -> HashMap<String, f64> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let value = words.next()?.parse::<f64>().ok()?;
            Some((name.to_owned(), value))
        })
        .collect()
}

/// Looks up `name` in parsed guest output, with the whole output in the error.
pub fn value(values: &HashMap<String, f64>, name: &str, stdout: &str) -> Result<f64> {
    values.get(name).copied().with_context(|| format!("guest printed no {name:?} line; stdout was {stdout:?}"))
}
