//! `moat pause` and `moat resume`.

use anyhow::Result;
use moat_runtime::Global;

pub fn pause(g: &Global, id: &str) -> Result<i32> {
    moat_runtime::freeze::pause(g, id)?;
    Ok(0)
}

pub fn resume(g: &Global, id: &str) -> Result<i32> {
    moat_runtime::freeze::resume(g, id)?;
    Ok(0)
}
