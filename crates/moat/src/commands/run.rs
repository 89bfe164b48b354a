//! `moat run`.

use anyhow::Result;
use moat_runtime::Global;

use crate::cli::CreateArgs;

pub fn run(g: &Global, a: CreateArgs, detach: bool, keep: bool) -> Result<i32> {
    let id = a.id.clone();
    let opts = super::create::opts(a);
    if detach {
        moat_runtime::create::create(g, opts)?;
        if let Err(e) = moat_runtime::start::start(g, &id) {
            let _ = moat_runtime::delete::delete(g, &id, true);
            return Err(e.into());
        }
        return Ok(0);
    }
    Ok(moat_runtime::run::run_foreground(g, opts, keep)?)
}
