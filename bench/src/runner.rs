//! Drives the workloads: warm-up, then repetitions, round-robin over the runtimes.
//!
//! Round-robin (rep 1 on every runtime, then rep 2 …) spreads slow drift on a shared machine
//! over all runtimes instead of charging it to whichever ran last. A failed repetition is
//! recorded in that runtime's cells and the run goes on; after [`MAX_FAILURES`] failures the
//! runtime is dropped from the workload. After each workload, anything still running under a
//! runtime's `--root` is reported and killed.

use std::collections::BTreeSet;
use std::time::Instant;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::results::{Cell, MetricResult, WorkloadResult};
use crate::runtime::Runtime;
use crate::workloads::{Ctx, Plan, Workload};
use crate::{interrupt, procs};

/// Failed repetitions (warm-up included) after which a runtime is dropped from a workload.
const MAX_FAILURES: usize = 2;

/// Runs every workload on every runtime.
pub fn run_all(ctx: &Ctx, runtimes: &[Runtime], workloads: Vec<Box<dyn Workload>>) -> Vec<WorkloadResult> {
    workloads.into_iter().map(|w| run_workload(ctx, runtimes, w)).collect()
}

fn run_workload(ctx: &Ctx, runtimes: &[Runtime], mut workload: Box<dyn Workload>) -> WorkloadResult {
    let metrics = workload
        .metrics()
        .iter()
        .map(|m| MetricResult {
            id: m.id,
            label: m.label,
            unit: m.unit,
            better: m.better,
            chart: m.chart,
            cells: runtimes.iter().map(|rt| Cell::new(&rt.name)).collect(),
        })
        .collect();
    let mut result = WorkloadResult {
        id: workload.id(),
        title: workload.title(),
        skipped: None,
        error: None,
        warmup: 0,
        reps: 0,
        metrics,
    };
    let (warmup, reps) = match workload.plan(ctx.quick) {
        Plan::Skip(reason) => {
            eprintln!("[{}] skipped: {reason}", result.id);
            result.skipped = Some(reason);
            return result;
        }
        Plan::Run { warmup, reps } => (warmup, reps),
    };
    (result.warmup, result.reps) = (warmup, reps);
    if interrupt::requested() {
        result.skipped = Some("interrupted".into());
        return result;
    }
    eprintln!("[{}] preparing", result.id);
    if let Err(err) = workload.prepare(ctx) {
        eprintln!("[{}] preparation failed: {err:#}", result.id);
        result.error = Some(format!("{err:#}"));
        return result;
    }

    let started = Instant::now();
    let mut failures = vec![0usize; runtimes.len()];
    for round in 0..warmup + reps {
        let recording = round >= warmup;
        for (i, rt) in runtimes.iter().enumerate() {
            if failures[i] >= MAX_FAILURES || interrupt::requested() {
                continue;
            }
            match workload.run_once(ctx, rt) {
                Ok(values) if recording => record(&mut result, i, &values),
                Ok(_) => {}
                Err(err) => {
                    failures[i] += 1;
                    let what = if recording { format!("rep {}", round - warmup + 1) } else { "warm-up".into() };
                    let message = format!("{what}: {err:#}");
                    eprintln!("[{}] {}: {message}", result.id, rt.name);
                    for metric in &mut result.metrics {
                        metric.cells[i].errors.push(message.clone());
                    }
                }
            }
        }
    }
    for (i, rt) in runtimes.iter().enumerate() {
        if let Some(message) = reap_leftovers(rt) {
            eprintln!("[{}] {}: {message}", result.id, rt.name);
            for metric in &mut result.metrics {
                metric.cells[i].errors.push(message.clone());
            }
        }
    }
    eprintln!("[{}] done in {:.1}s", result.id, started.elapsed().as_secs_f64());
    result
}

fn record(result: &mut WorkloadResult, runtime: usize, values: &[(&'static str, f64)]) {
    for (id, value) in values {
        if let Some(metric) = result.metrics.iter_mut().find(|m| m.id == *id) {
            metric.cells[runtime].samples.push(*value);
        }
    }
}

/// Kills whatever still runs under `rt`'s root directory; says what it found.
pub fn reap_leftovers(rt: &Runtime) -> Option<String> {
    let pids: BTreeSet<i32> = procs::mentioning(&rt.root.to_string_lossy());
    if pids.is_empty() {
        return None;
    }
    for &pid in &pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    Some(format!("left {} process(es) running after delete (killed): pids {pids:?}", pids.len()))
}
