//! `moat delete`.

use anyhow::Result;
use moat_runtime::Global;

pub fn run(g: &Global, id: &str, force: bool) -> Result<i32> {
    moat_runtime::delete::delete(g, id, force)?;
    Ok(0)
}
