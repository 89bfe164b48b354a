//! `moat do`: run a command sandboxed on the host's own root filesystem,
//! read-only, like `runsc do`.

use anyhow::{Context, Result};
use moat_runtime::defaults::{do_spec, DoOpts};
use moat_runtime::Global;

pub fn run(g: &Global, a: crate::cli::DoArgs) -> Result<i32> {
    // no pod here: anything but the host's is a new, empty namespace
    let host_network = g.network == moat_runtime::Network::Host;
    let cwd = match a.cwd {
        Some(c) => c,
        None => std::env::current_dir().context("current directory")?,
    };
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let spec = do_spec(&DoOpts { args: a.command, host_network, cwd, env });
    let id = format!("do-{}", std::process::id());
    let bundle = tempfile_dir(&id)?;
    let r = (|| {
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&spec)?)?;
        let opts = moat_runtime::create::CreateOpts { id, bundle: bundle.clone(), ..Default::default() };
        Ok::<_, anyhow::Error>(moat_runtime::run::run_foreground(g, opts, false)?)
    })();
    let _ = std::fs::remove_dir_all(&bundle);
    r
}

fn tempfile_dir(id: &str) -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("moat-{id}"));
    std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    Ok(d)
}
