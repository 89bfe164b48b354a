//! Which runtimes to compare: given as `--runtime name=command`, or found on this host.
//!
//! Defaults: runc and runsc when they are on PATH, and moat (`target/release/moat`, else
//! `target/debug/moat`) with `--platform native` when it exists and `moat --version` works.
//! runsc gets `--platform=ptrace` (the platform that works in our nested VMs) and
//! `--network=none`: our bundles ask for a new network namespace without a path, which runsc's
//! default sandbox network refuses ("cannot run with network enabled in root network
//! namespace"); runc gives such a container loopback only, and so does `--network=none`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::reaper::Reaper;

/// A runtime as named on the command line: `name=command [flags…]`.
#[derive(Clone, Debug)]
pub struct RuntimeSpec {
    pub name: String,
    pub argv: Vec<String>,
}

/// Parses `name=command flags…` (the command is split on whitespace; no quoting).
pub fn parse_spec(text: &str) -> Result<RuntimeSpec> {
    let Some((name, command)) = text.split_once('=') else {
        bail!("runtime {text:?} is not name=command");
    };
    let mut argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    if name.is_empty() || argv.is_empty() {
        bail!("runtime {text:?} has an empty name or command");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
        bail!("runtime name {name:?} may only hold letters, digits, '-', '_' and '.'");
    }
    argv[0] = resolve(&argv[0]).with_context(|| format!("runtime {name}"))?.to_string_lossy().into_owned();
    Ok(RuntimeSpec { name: name.to_owned(), argv })
}

/// The runtimes installed here, in report order: runc, runsc, moat-native.
pub fn defaults(reaper: &Reaper) -> Vec<RuntimeSpec> {
    let mut found = Vec::new();
    if let Ok(runc) = resolve("runc") {
        found.push(RuntimeSpec { name: "runc".into(), argv: vec![runc.to_string_lossy().into_owned()] });
    }
    if let Ok(runsc) = resolve("runsc") {
        let argv = vec![runsc.to_string_lossy().into_owned(), "--platform=ptrace".into(), "--network=none".into()];
        found.push(RuntimeSpec { name: "runsc".into(), argv });
    }
    if let Some(moat) = moat_candidates().into_iter().find(|p| version(reaper, p).is_ok()) {
        let argv = vec![moat.to_string_lossy().into_owned(), "--platform".into(), "native".into()];
        found.push(RuntimeSpec { name: "moat-native".into(), argv });
    }
    found
}

/// Where a workspace build of moat would be: next to this binary's target dir first.
fn moat_candidates() -> Vec<PathBuf> {
    let mut targets = Vec::new();
    if let Some(target) = env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf())) {
        targets.push(target);
    }
    targets.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let mut out = Vec::new();
    for target in targets {
        for profile in ["release", "debug"] {
            let path = target.join(profile).join("moat");
            let path = path.canonicalize().unwrap_or(path);
            if path.is_file() && !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out
}

/// First line of `<binary> --version`.
pub fn version(reaper: &Reaper, binary: &Path) -> Result<String> {
    let out = reaper.capture(Command::new(binary).arg("--version"), Duration::from_secs(10))?;
    if out.code != 0 {
        bail!("{} --version exited with {}", binary.display(), out.code);
    }
    Ok(out.stdout.lines().next().unwrap_or("").trim().to_owned())
}

/// An absolute path as is; a bare name looked up on PATH.
pub fn resolve(program: &str) -> Result<PathBuf> {
    let path = Path::new(program);
    if program.contains('/') {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("{program} does not exist");
    }
    let dirs = env::var_os("PATH").unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin".into());
    env::split_paths(&dirs)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{program} not found on PATH"))
}
