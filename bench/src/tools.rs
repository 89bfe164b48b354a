//! The guest side: programs and scripts that run inside the containers.
//!
//! Sources live in `src/guest/` and are compiled into the bench. At start-up they are written
//! to one host directory, the C programs built there with the system gcc (`-O2 -static`, so
//! they run on any root filesystem), and that directory is bind-mounted read-only at /bench in
//! every bundle.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::reaper::Reaper;

const MICRO_C: &str = include_str!("guest/micro.c");
const NOOP_C: &str = include_str!("guest/noop.c");
const SHELL_SH: &str = include_str!("guest/shell.sh");
const WORK_PY: &str = include_str!("guest/work.py");

/// Path of the guest tools inside the container.
pub const GUEST_DIR: &str = "/bench";

/// The host directory that is mounted at /bench.
pub struct Tools {
    pub dir: PathBuf,
}

impl Tools {
    /// Writes the sources to `dir` and compiles `micro` and `noop`.
    pub fn build(reaper: &Reaper, dir: &Path) -> Result<Self> {
        let src = dir.join("src");
        fs::create_dir_all(&src).with_context(|| format!("create {}", src.display()))?;
        for (name, text) in [("micro.c", MICRO_C), ("noop.c", NOOP_C)] {
            fs::write(src.join(name), text).with_context(|| format!("write {name}"))?;
        }
        for (name, text) in [("shell.sh", SHELL_SH), ("work.py", WORK_PY)] {
            fs::write(dir.join(name), text).with_context(|| format!("write {name}"))?;
        }
        gcc(reaper, &src.join("micro.c"), &dir.join("micro"), &[])?;
        // No libc at all: the exec benchmark should measure exec, not C start-up.
        gcc(reaper, &src.join("noop.c"), &dir.join("noop"), &["-nostdlib"])?;
        Ok(Self { dir: dir.to_path_buf() })
    }
}

fn gcc(reaper: &Reaper, source: &Path, output: &Path, extra: &[&str]) -> Result<()> {
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-static", "-Wall", "-o"]).arg(output).args(extra).arg(source);
    let out = reaper.capture(&mut cmd, Duration::from_secs(120)).context("run gcc (apt-get install gcc libc6-dev)")?;
    if out.code != 0 {
        bail!("gcc {} failed: {}", source.display(), out.stderr.trim());
    }
    Ok(())
}
