//! OCI hooks: each runs as a child process with the container's state on
//! its stdin, its own args and env, and an optional timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::{Error, Result};

/// Runs every hook of one kind in order; the first failure stops the rest.
pub fn run_all(kind: &str, hooks: &[Hook], state_json: &str) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state_json).map_err(|e| Error::Hook(format!("{kind} hook #{i} ({}): {e}", h.path().display())))?;
    }
    Ok(())
}

/// Runs every hook of one kind; failures are logged as warnings and the
/// rest still run (what the spec asks of poststart and poststop hooks).
pub fn run_all_warn(kind: &str, hooks: &[Hook], state_json: &str) {
    for (i, h) in hooks.iter().enumerate() {
        if let Err(e) = run_one(h, state_json) {
            tracing::warn!("{kind} hook #{i} ({}) failed: {e}", h.path().display());
        }
    }
}

fn run_one(h: &Hook, state_json: &str) -> std::result::Result<(), String> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first).args(rest);
        }
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // stderr goes to a memfd, not a pipe: a hook that writes more than a
    // pipe holds must not block until its timeout (or forever)
    let err_file = nix::sys::memfd::memfd_create("moat-hook-stderr", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map(std::fs::File::from)
        .map_err(|e| e.to_string())?;
    let err_child = err_file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::from(err_child));
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // a hook that does not read its stdin is fine: EPIPE, not SIGPIPE
        use nix::sys::signal::Signal::SIGPIPE;
        let _ = moat_jail::sys::ignore_signal(SIGPIPE);
        let _ = stdin.write_all(state_json.as_bytes());
        let _ = moat_jail::sys::default_signals(&[SIGPIPE]);
    }
    let deadline = h.timeout().map(|t| Instant::now() + Duration::from_secs(u64::try_from(t).unwrap_or(1)));
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(st) if st.success() => return Ok(()),
            Some(st) => {
                let mut err = String::new();
                let mut f = &err_file;
                let _ = std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0));
                let _ = std::io::Read::read_to_string(&mut std::io::Read::take(f, 4096), &mut err);
                let err = err.trim().replace('\n', "; ");
                return Err(format!("{st}{}{err}", if err.is_empty() { "" } else { ": " }));
            }
            None => {}
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", h.timeout().unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
