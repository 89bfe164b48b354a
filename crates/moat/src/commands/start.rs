//! `moat start`.

use anyhow::Result;
use moat_runtime::Global;

pub fn run(g: &Global, id: &str) -> Result<i32> {
    moat_runtime::start::start(g, id)?;
    Ok(0)
}
