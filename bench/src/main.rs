//! `bench`: moat against runc and runsc on the same workloads, side by side.
//!
//! Every workload runs under every runtime, a few times after a warm-up, in locally built
//! bundles; the results go to `<out>/results.json` (machine-readable), `<out>/report.md` (a
//! table) and `<out>/chart.svg` (costs relative to runc). See bench/README.md.
//!
//! Needs root (the runtimes create namespaces and cgroups), gcc with static libc, Debian's
//! busybox-static, and for the Python workload debootstrap and a reachable apt mirror.

mod bundle;
mod debian;
mod discover;
mod interrupt;
mod procs;
mod reaper;
mod report;
mod results;
mod runner;
mod runtime;
mod stats;
mod svg;
mod tools;
mod workloads;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::discover::RuntimeSpec;
use crate::reaper::Reaper;
use crate::results::{Meta, Results, RuntimeInfo};
use crate::runtime::Runtime;
use crate::tools::Tools;
use crate::workloads::Ctx;

/// Benchmarks OCI runtimes (moat, runc, runsc) on the same workloads.
#[derive(Parser, Debug)]
#[command(name = "bench", version)]
struct Args {
    /// Smoke run: fewer repetitions and smaller sizes, no Python workload (< 2 minutes).
    #[arg(long)]
    quick: bool,

    /// Directory for results.json, report.md and chart.svg.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,

    /// A runtime to compare, as NAME=COMMAND (repeatable; the command is split on spaces).
    /// Default: runc and runsc if installed, and moat --platform native if built.
    #[arg(long = "runtime", value_name = "NAME=COMMAND")]
    runtimes: Vec<String>,

    /// Run only workloads whose id contains this (repeatable): startup, syscalls, fileio,
    /// memory, real/shell, real/python, network, pod.
    #[arg(long, value_name = "SUBSTRING")]
    only: Vec<String>,

    /// Where the Debian rootfs for the Python workload is built once and kept.
    #[arg(long, value_name = "DIR", default_value = debian::CACHE_DIR)]
    debian_cache: PathBuf,
}

fn main() {
    let args = Args::parse();
    if let Err(err) = run(&args) {
        eprintln!("bench: {err:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root: the runtimes create namespaces, mounts and cgroups");
    }
    let started = Instant::now();
    let load_start = results::load_average();
    interrupt::install()?;
    let reaper = Reaper::install()?;
    let specs = if args.runtimes.is_empty() {
        discover::defaults(&reaper)
    } else {
        args.runtimes.iter().map(|s| discover::parse_spec(s)).collect::<Result<_>>()?
    };
    if specs.is_empty() {
        bail!("no runtime found; pass --runtime NAME=COMMAND");
    }
    let mut workloads = workloads::all(args.quick);
    if !args.only.is_empty() {
        workloads.retain(|w| args.only.iter().any(|o| w.id().contains(o.as_str())));
        if workloads.is_empty() {
            bail!("--only {:?} matches no workload", args.only);
        }
    }

    let session = tempfile::Builder::new().prefix("moat-bench.").tempdir().context("create the session tempdir")?;
    let runtimes = open_runtimes(&reaper, &specs, session.path())?;
    eprintln!("bench: {} run; runtimes: {}", mode(args.quick), names(&runtimes));
    let ctx = prepare(args, &reaper, session.path())?;

    let workload_results = runner::run_all(&ctx, &runtimes, workloads);
    for rt in &runtimes {
        if let Some(message) = runner::reap_leftovers(rt) {
            eprintln!("bench: {}: {message}", rt.name);
        }
    }

    let mut results = Results { meta: meta(args, &runtimes, started, load_start), workloads: workload_results };
    results.finish();
    write_outputs(&args.out, &results)?;
    drop(ctx);
    session.close().context("remove the session tempdir")?;
    if interrupt::requested() {
        bail!("interrupted; partial results in {}", args.out.display());
    }
    eprintln!("bench: done in {:.0}s; wrote {}", started.elapsed().as_secs_f64(), args.out.display());
    Ok(())
}

fn open_runtimes(reaper: &Reaper, specs: &[RuntimeSpec], session: &Path) -> Result<Vec<Runtime>> {
    let mut runtimes: Vec<Runtime> = Vec::new();
    for spec in specs {
        if runtimes.iter().any(|r| r.name == spec.name) {
            bail!("runtime {} given twice", spec.name);
        }
        let version =
            discover::version(reaper, Path::new(&spec.argv[0])).unwrap_or_else(|e| format!("unknown ({e:#})"));
        let dir = session.join("runtimes").join(&spec.name);
        runtimes.push(Runtime::new(&spec.name, spec.argv.clone(), version, &dir, reaper.clone())?);
    }
    Ok(runtimes)
}

fn prepare(args: &Args, reaper: &Reaper, session: &Path) -> Result<Ctx> {
    let tools = Tools::build(reaper, &session.join("tools")).context("build the guest tools")?;
    let busybox = session.join("rootfs-busybox");
    bundle::busybox_rootfs(reaper, &busybox).context("build the busybox rootfs")?;
    Ok(Ctx {
        quick: args.quick,
        reaper: reaper.clone(),
        work: session.to_path_buf(),
        tools,
        busybox,
        debian_cache: args.debian_cache.clone(),
    })
}

fn meta(args: &Args, runtimes: &[Runtime], started: Instant, load_start: f64) -> Meta {
    let (host, kernel, cpus, memory_mib) = results::host_meta();
    let baseline = runtimes.iter().find(|r| r.name == "runc").or(runtimes.first()).map(|r| r.name.clone());
    Meta {
        date: results::utc_now(),
        host,
        kernel,
        cpus,
        memory_mib,
        mode: mode(args.quick),
        duration_s: started.elapsed().as_secs_f64(),
        load_start,
        load_end: results::load_average(),
        baseline,
        runtimes: runtimes
            .iter()
            .map(|r| RuntimeInfo { name: r.name.clone(), command: r.command_line(), version: r.version.clone() })
            .collect(),
    }
}

fn write_outputs(out: &Path, results: &Results) -> Result<()> {
    fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let json = serde_json::to_string_pretty(results).context("encode results")?;
    for (name, text) in
        [("results.json", json), ("report.md", report::markdown(results)), ("chart.svg", svg::chart(results))]
    {
        let path = out.join(name);
        fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

fn mode(quick: bool) -> &'static str {
    if quick {
        "quick"
    } else {
        "full"
    }
}

fn names(runtimes: &[Runtime]) -> String {
    runtimes.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
}
