//! One OCI runtime under test, driven through the runc command line.
//!
//! Every runtime (runc, runsc, moat) takes the same verbs: `<argv…> --root <dir> run|create|
//! start|state|kill|delete`. Each gets a `--root` of its own inside the session's tempdir, so
//! runs never see each other's state and cleanup is one directory. Runtime processes write
//! their stderr to a file (never a pipe: runsc's sandbox inherits the caller's stdio and would
//! keep a pipe open long after the CLI call returns), and errors carry its last lines.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::reaper::Reaper;

/// Deadline for the short verbs (create, start, state, kill, delete).
const VERB_TIMEOUT: Duration = Duration::from_secs(60);

/// How often [`Runtime::wait_stopped`] asks `state`.
const STATE_POLL: Duration = Duration::from_millis(5);

/// Container ids are unique per bench process: `mb<pid>-<n>`.
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A fresh container id.
pub fn new_id() -> String {
    format!("mb{}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Where a container's stdout goes.
pub enum Output<'a> {
    Null,
    File(&'a Path),
}

/// The subset of `state` output the bench uses.
#[derive(Debug, Deserialize)]
pub struct State {
    pub status: String,
    #[serde(default)]
    pub pid: i32,
}

/// A runtime with its own state directory.
pub struct Runtime {
    pub name: String,
    /// The command and its global flags, e.g. `["/usr/bin/runsc", "--platform=ptrace"]`.
    pub argv: Vec<String>,
    pub version: String,
    /// The `--root` state directory.
    pub root: PathBuf,
    /// Scratch space for stdout/stderr files.
    logs: PathBuf,
    reaper: Reaper,
}

impl Runtime {
    /// Creates the runtime's root and log directories under `dir`.
    pub fn new(name: &str, argv: Vec<String>, version: String, dir: &Path, reaper: Reaper) -> Result<Self> {
        let root = dir.join("root");
        let logs = dir.join("logs");
        fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
        fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;
        Ok(Self { name: name.to_owned(), argv, version, root, logs, reaper })
    }

    /// The same runtime (its state and log directories) with other global flags.
    pub fn variant(&self, argv: Vec<String>) -> Runtime {
        Runtime {
            name: self.name.clone(),
            argv,
            version: self.version.clone(),
            root: self.root.clone(),
            logs: self.logs.clone(),
            reaper: self.reaper.clone(),
        }
    }

    /// The command line as the user would type it.
    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }

    /// `run`: create, start, wait and delete in one call; returns its wall time.
    pub fn run(&self, bundle: &Path, id: &str, out: Output<'_>, timeout: Duration) -> Result<Duration> {
        let bundle = bundle.to_string_lossy();
        self.invoke(&["run", "--bundle", &bundle, id], id, out, timeout).context("run")
    }

    /// `create`, with the container's stdio on /dev/null; returns its wall time.
    pub fn create(&self, bundle: &Path, id: &str) -> Result<Duration> {
        let bundle = bundle.to_string_lossy();
        self.invoke(&["create", "--bundle", &bundle, id], id, Output::Null, VERB_TIMEOUT).context("create")
    }

    /// `start`; returns its wall time.
    pub fn start(&self, id: &str) -> Result<Duration> {
        self.invoke(&["start", id], id, Output::Null, VERB_TIMEOUT).context("start")
    }

    /// `kill <id> <signal>`.
    pub fn kill(&self, id: &str, signal: &str) -> Result<Duration> {
        self.invoke(&["kill", id, signal], id, Output::Null, VERB_TIMEOUT).context("kill")
    }

    /// `delete --force`; returns its wall time.
    pub fn delete(&self, id: &str) -> Result<Duration> {
        self.invoke(&["delete", "--force", id], id, Output::Null, VERB_TIMEOUT).context("delete")
    }

    /// `state`, parsed.
    pub fn state(&self, id: &str) -> Result<State> {
        let out = self.logs.join(format!("{id}.state"));
        self.invoke(&["state", id], id, Output::File(&out), VERB_TIMEOUT).context("state")?;
        let text = fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
        let _ = fs::remove_file(&out);
        serde_json::from_str(&text).with_context(|| format!("parse state output {text:?}"))
    }

    /// Polls `state` until the container has stopped.
    pub fn wait_stopped(&self, id: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.state(id)?.status != "stopped" {
            if Instant::now() > deadline {
                bail!("container {id} still running after {}s", timeout.as_secs());
            }
            std::thread::sleep(STATE_POLL);
        }
        Ok(())
    }

    /// Runs one verb; fails on a non-zero exit with the tail of its stderr.
    fn invoke(&self, args: &[&str], id: &str, out: Output<'_>, timeout: Duration) -> Result<Duration> {
        let err_path = self.logs.join(format!("{id}.{}.err", args[0]));
        let stderr = File::create(&err_path).with_context(|| format!("create {}", err_path.display()))?;
        let stdout = match out {
            Output::Null => Stdio::null(),
            Output::File(path) => File::create(path).with_context(|| format!("create {}", path.display()))?.into(),
        };
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]).arg("--root").arg(&self.root).args(args);
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);

        let started = Instant::now();
        let code = self.reaper.spawn(&mut cmd)?.wait(timeout);
        let elapsed = started.elapsed();
        let errors = fs::read_to_string(&err_path).unwrap_or_default();
        let _ = fs::remove_file(&err_path);
        let code = code?;
        if code != 0 {
            bail!("{} exited with {code}: {}", self.name, tail(&errors));
        }
        Ok(elapsed)
    }
}

/// The last few lines of a runtime's stderr, on one line.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() {
        return "(no stderr)".into();
    }
    joined.chars().take(400).collect()
}

/// A container that is deleted (with `--force`) when dropped, whatever happened to it.
pub struct Container<'r> {
    pub rt: &'r Runtime,
    pub id: String,
    deleted: bool,
}

impl<'r> Container<'r> {
    /// Names a new container; nothing is created yet.
    pub fn new(rt: &'r Runtime) -> Self {
        Self { rt, id: new_id(), deleted: false }
    }

    /// Deletes the container now; returns the wall time of `delete --force`.
    pub fn delete(mut self) -> Result<Duration> {
        self.deleted = true;
        self.rt.delete(&self.id)
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        if !self.deleted {
            // After `run` the container is usually gone already and this fails; that is fine.
            let _ = self.rt.delete(&self.id);
        }
    }
}
