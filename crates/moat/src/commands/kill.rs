//! `moat kill`.

use anyhow::Result;
use moat_runtime::{signal, Global};

pub fn run(g: &Global, id: &str, sig: &str, all: bool) -> Result<i32> {
    let s = signal::parse(sig)?;
    signal::kill(g, id, s, all)?;
    Ok(0)
}
