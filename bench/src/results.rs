//! The result model: what `results.json` holds, and what the report and the chart read.
//!
//! Ratios compare medians with the baseline runtime (runc when it is in the run). `ratio` is
//! the plain quotient; `cost` is oriented so that above 1 is always worse than the baseline
//! (slower, or more memory): it equals `ratio` for lower-is-better metrics and `1 / ratio`
//! for throughputs.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::stats::{summarize, Summary};

/// Which direction is good for a metric.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub meta: Meta,
    pub workloads: Vec<WorkloadResult>,
}

#[derive(Debug, Serialize)]
pub struct Meta {
    pub date: String,
    pub host: String,
    pub kernel: String,
    pub cpus: usize,
    pub memory_mib: u64,
    pub mode: &'static str,
    pub duration_s: f64,
    /// 1-minute load average when the run started and ended: other work on the host skews
    /// results, and this says how much of it there was.
    pub load_start: f64,
    pub load_end: f64,
    /// The runtime every ratio is relative to.
    pub baseline: Option<String>,
    pub runtimes: Vec<RuntimeInfo>,
}

#[derive(Debug, Serialize)]
pub struct RuntimeInfo {
    pub name: String,
    pub command: String,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct WorkloadResult {
    pub id: &'static str,
    pub title: &'static str,
    /// Why the workload did not run at all (not built yet, skipped in --quick …).
    pub skipped: Option<String>,
    /// Preparation failed (e.g. the rootfs could not be built); no cell ran.
    pub error: Option<String>,
    pub warmup: u32,
    pub reps: u32,
    pub metrics: Vec<MetricResult>,
}

#[derive(Debug, Serialize)]
pub struct MetricResult {
    pub id: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub better: Better,
    /// Whether the chart shows this metric (counts and the like are table-only).
    pub chart: bool,
    pub cells: Vec<Cell>,
}

/// One (metric, runtime) pair.
#[derive(Debug, Serialize)]
pub struct Cell {
    pub runtime: String,
    pub samples: Vec<f64>,
    #[serde(flatten)]
    pub summary: Option<Summary>,
    pub ratio: Option<f64>,
    pub cost: Option<f64>,
    /// Failed repetitions, one message each.
    pub errors: Vec<String>,
}

impl Cell {
    pub fn new(runtime: &str) -> Self {
        Self {
            runtime: runtime.to_owned(),
            samples: Vec::new(),
            summary: None,
            ratio: None,
            cost: None,
            errors: Vec::new(),
        }
    }
}

impl Results {
    /// Fills in summaries and the ratios to `baseline`.
    pub fn finish(&mut self) {
        let baseline = self.meta.baseline.clone();
        for metric in self.workloads.iter_mut().flat_map(|w| w.metrics.iter_mut()) {
            for cell in &mut metric.cells {
                cell.summary = summarize(&cell.samples);
            }
            let base = metric
                .cells
                .iter()
                .find(|c| Some(&c.runtime) == baseline.as_ref())
                .and_then(|c| c.summary)
                .map(|s| s.median)
                .filter(|m| *m > 0.0);
            let Some(base) = base else { continue };
            for cell in &mut metric.cells {
                cell.ratio = cell.summary.map(|s| s.median / base);
                cell.cost =
                    cell.ratio.filter(|r| *r > 0.0).map(|r| if metric.better == Better::Lower { r } else { 1.0 / r });
            }
        }
    }
}

/// Facts about this host for the report header.
pub fn host_meta() -> (String, String, usize, u64) {
    let read = |path: &str| fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default();
    let memory_kib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map(usize::from).unwrap_or(0);
    (read("/proc/sys/kernel/hostname"), read("/proc/sys/kernel/osrelease"), cpus, memory_kib / 1024)
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().and_then(|w| w.parse().ok()).unwrap_or(0.0)
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a proleptic Gregorian date, counting eras of 400 years
    // from 0000-03-01 so that leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
