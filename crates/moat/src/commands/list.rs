//! `moat list`: a table like runc's, or JSON.

use anyhow::{bail, Result};
use moat_runtime::Global;

pub fn run(g: &Global, format: &str, quiet: bool) -> Result<i32> {
    let all = moat_runtime::query::list(g);
    if quiet {
        for c in &all {
            println!("{}", c.id);
        }
        return Ok(0);
    }
    match format {
        "json" => println!("{}", serde_json::to_string(&all)?),
        "table" => {
            println!("{:<20} {:<10} {:<10} {:<40} {:<32} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
            for c in &all {
                println!(
                    "{:<20} {:<10} {:<10} {:<40} {:<32} {}",
                    c.id,
                    c.pid,
                    c.status,
                    c.bundle.display(),
                    c.created,
                    c.owner
                );
            }
        }
        f => bail!("invalid format {f:?} (table or json)"),
    }
    Ok(0)
}
