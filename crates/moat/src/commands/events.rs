//! `moat events`: resource usage, once (`--stats`) or every interval.

use std::time::Duration;

use anyhow::{bail, Result};
use moat_runtime::Global;

fn parse_interval(s: &str) -> Result<Duration> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map(|i| s.split_at(i)).unwrap_or((s, "s"));
    let n: u64 = num.parse().map_err(|_| anyhow::anyhow!("invalid --interval {s:?}"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => bail!("invalid --interval {s:?} (e.g. 500ms, 5s, 1m)"),
    })
}

pub fn run(g: &Global, id: &str, once: bool, interval: &str) -> Result<i32> {
    let every = parse_interval(interval)?;
    if every.is_zero() {
        bail!("--interval must be above zero");
    }
    loop {
        let ev = moat_runtime::query::stats(g, id)?;
        println!("{}", serde_json::to_string(&ev)?);
        if once {
            return Ok(0);
        }
        std::thread::sleep(every);
    }
}
