//! `moat state`.

use anyhow::Result;
use moat_runtime::Global;

pub fn run(g: &Global, id: &str) -> Result<i32> {
    let st = moat_runtime::query::state(g, id)?;
    println!("{}", serde_json::to_string_pretty(&st)?);
    Ok(0)
}
