//! `moat spec` and `moat features`.

use std::path::Path;

use anyhow::Result;

pub fn spec(bundle: &Path, rootless: bool) -> Result<i32> {
    moat_runtime::defaults::write_template(bundle, rootless)?;
    Ok(0)
}

pub fn features() -> Result<i32> {
    println!("{}", serde_json::to_string_pretty(&moat_runtime::features::features())?);
    Ok(0)
}
