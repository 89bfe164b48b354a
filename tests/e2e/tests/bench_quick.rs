//! Keeps the benchmark harness working: runs `bench --quick` against runc alone and checks
//! that it wrote a start-up result and a pod-network stream for runc, the Markdown report and
//! the chart.
//!
//! Uses the `bench` binary from this build's target directory (the test script runs
//! `cargo build --workspace --bins` first); it fails with a clear message if it is missing.
//! Needs root and runc, like the other end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

const RUNC: &str = "/usr/bin/runc";

/// `<target>/<profile>/bench`, found from this test's own path (`<target>/<profile>/deps/…`),
/// so it follows CARGO_TARGET_DIR and the profile.
fn bench_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the test binary")?;
    let profile_dir = exe.parent().and_then(Path::parent).context("test binary has no target dir")?;
    let bench = profile_dir.join("bench");
    if !bench.is_file() {
        bail!(
            "{} is missing: run `cargo build --workspace --bins` (or `cargo build -p moat-bench`) first",
            bench.display()
        );
    }
    Ok(bench)
}

/// The cell of `runtime` for metric `metric` of workload `workload`.
fn cell<'a>(results: &'a Value, workload: &str, metric: &str, runtime: &str) -> Option<&'a Value> {
    let workload = results["workloads"].as_array()?.iter().find(|w| w["id"] == workload)?;
    let metric = workload["metrics"].as_array()?.iter().find(|m| m["id"] == metric)?;
    metric["cells"].as_array()?.iter().find(|c| c["runtime"] == runtime)
}

#[test]
fn bench_quick_against_runc() -> Result<()> {
    assert!(nix::unistd::geteuid().is_root(), "bench_quick needs root (runc creates namespaces and cgroups)");
    assert!(Path::new(RUNC).exists(), "bench_quick needs runc at {RUNC}");
    let bench = bench_binary()?;
    let out = tempfile::tempdir()?;

    let status = Command::new(&bench)
        .args(["--quick", "--runtime", &format!("runc={RUNC}"), "--out"])
        .arg(out.path())
        .status()
        .with_context(|| format!("run {}", bench.display()))?;
    assert!(status.success(), "bench --quick failed: {status}");

    let text = std::fs::read_to_string(out.path().join("results.json")).context("read results.json")?;
    let results: Value = serde_json::from_str(&text).context("parse results.json")?;
    let startup = cell(&results, "startup", "startup/run", "runc").context("no startup/run cell for runc")?;
    let median = startup["median"].as_f64().with_context(|| format!("startup cell has no median: {startup}"))?;
    assert!(median > 0.0, "startup median for runc is {median}");
    assert_eq!(startup["errors"].as_array().map(Vec::len), Some(0), "startup errors: {startup}");

    // the pod workload: a veth pair, streams read from the peer's side, wrk
    let pod = cell(&results, "pod", "pod/tcp-1", "runc").context("no pod/tcp-1 cell for runc")?;
    assert_eq!(pod["errors"].as_array().map(Vec::len), Some(0), "pod errors: {pod}");
    assert!(pod["median"].as_f64().is_some_and(|m| m > 0.0), "pod stream for runc: {pod}");

    for name in ["report.md", "chart.svg"] {
        let path = out.path().join(name);
        let len = std::fs::metadata(&path).with_context(|| format!("{} missing", path.display()))?.len();
        assert!(len > 0, "{} is empty", path.display());
    }
    let report = std::fs::read_to_string(out.path().join("report.md"))?;
    assert!(report.contains("| metric | unit | runc |"), "report.md has no table:\n{report}");
    Ok(())
}
