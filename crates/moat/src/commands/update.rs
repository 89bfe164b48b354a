//! `moat update --resources FILE`: new cgroup limits for a live container.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use moat_runtime::Global;
use oci_spec::runtime::LinuxResources;

pub fn run(g: &Global, id: &str, resources: Option<PathBuf>) -> Result<i32> {
    let Some(path) = resources else { bail!("update: only --resources FILE is supported") };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    }
    let de = &mut serde_json::Deserializer::from_str(&text);
    let r: LinuxResources = serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow::anyhow!("{}: linux.resources.{}: {}", path.display(), e.path(), e.inner()))?;
    moat_runtime::query::update(g, id, &r)?;
    Ok(0)
}
