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

pub fn syscalls(markdown: bool) -> Result<i32> {
    use moat_sentry::syscalls::{docs, table::TABLE};
    if markdown {
        print!("{}", docs::markdown());
        return Ok(0);
    }
    let (s, i, p, d) = docs::counts();
    println!("# {s} served, {i} served (interim: host), {p} passthrough, {d} denied");
    for e in TABLE {
        println!("{:<24} {:<24} {}", e.name, e.class.label(), e.note);
    }
    Ok(0)
}

pub fn boot(print_filter: bool) -> Result<i32> {
    anyhow::ensure!(
        print_filter,
        "moat boot is started by `create --platform sentry`; only --print-filter runs by hand"
    );
    let p = moat_jail::policy::sentry::policy();
    print!("{}", p.describe());
    println!("# {} BPF instructions", moat_jail::policy::instruction_count(&p)?);
    Ok(0)
}
