//! `moat ps`: the container's processes, through the host's ps(1) as runc does.

use std::process::Command;

use anyhow::{bail, Context, Result};
use moat_runtime::Global;

pub fn run(g: &Global, id: &str, format: &str, ps_args: Vec<String>) -> Result<i32> {
    let pids = moat_runtime::query::pids(g, id)?;
    match format {
        "json" => {
            let v: Vec<i32> = pids.iter().map(|p| p.as_raw()).collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        "table" => {
            let args = if ps_args.is_empty() { vec!["-ef".to_string()] } else { ps_args };
            let out = Command::new("ps").args(&args).output().context("run ps")?;
            if !out.status.success() {
                bail!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let col = header.split_whitespace().position(|h| h == "PID").context("ps output has no PID column")?;
            println!("{header}");
            for l in lines {
                let pid = l.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.iter().any(|x| x.as_raw() == p)) {
                    println!("{l}");
                }
            }
        }
        f => bail!("invalid format {f:?} (table or json)"),
    }
    Ok(0)
}
