//! File I/O on the container's root filesystem (a host directory; for runsc every access
//! goes through its gofer): many small files created, read and deleted, then one large file
//! written sequentially (with fsync) and read back (from the page cache, so the read measures
//! the runtime's I/O path rather than the disk).

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{parse_values, run_capture, value, Ctx, Metric, Plan, Workload};
use crate::runtime::Runtime;

static METRICS: [Metric; 5] = [
    Metric::lower("fileio/small-create", "small file: create + write 4 KiB + close", "µs/file"),
    Metric::lower("fileio/small-read", "small file: open + read + close", "µs/file"),
    Metric::lower("fileio/small-delete", "small file: unlink", "µs/file"),
    Metric::higher("fileio/seq-write", "sequential write 1 MiB blocks + fsync", "MB/s"),
    Metric::higher("fileio/seq-read", "sequential read 1 MiB blocks (cached)", "MB/s"),
];

pub struct FileIo {
    files: u32,
    seq_mib: u32,
    bundles: Option<(PathBuf, PathBuf)>,
}

impl FileIo {
    pub fn new(quick: bool) -> Self {
        if quick {
            Self { files: 300, seq_mib: 32, bundles: None }
        } else {
            Self { files: 2000, seq_mib: 256, bundles: None }
        }
    }
}

impl Workload for FileIo {
    fn id(&self) -> &'static str {
        "fileio"
    }

    fn title(&self) -> &'static str {
        "File I/O"
    }

    fn metrics(&self) -> &'static [Metric] {
        &METRICS
    }

    fn plan(&self, quick: bool) -> Plan {
        Plan::Run { warmup: 1, reps: if quick { 3 } else { 9 } }
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<()> {
        let files = self.files.to_string();
        let mib = self.seq_mib.to_string();
        let small = ctx.busybox_bundle("fileio-small", &["/bench/micro", "files", "/scratch", &files, "4096"])?;
        let seq = ctx.busybox_bundle("fileio-seq", &["/bench/micro", "seq", "/scratch", &mib])?;
        self.bundles = Some((small, seq));
        Ok(())
    }

    fn run_once(&self, ctx: &Ctx, rt: &Runtime) -> Result<Vec<(&'static str, f64)>> {
        let (small, seq) = self.bundles.as_ref().context("fileio bundles not prepared")?;
        let mut out = Vec::new();
        let stdout = run_capture(rt, small, &ctx.work)?;
        let values = parse_values(&stdout);
        for (id, name) in [
            ("fileio/small-create", "small-create"),
            ("fileio/small-read", "small-read"),
            ("fileio/small-delete", "small-delete"),
        ] {
            out.push((id, value(&values, name, &stdout)?));
        }
        let stdout = run_capture(rt, seq, &ctx.work)?;
        let values = parse_values(&stdout);
        out.push(("fileio/seq-write", value(&values, "seq-write", &stdout)?));
        out.push(("fileio/seq-read", value(&values, "seq-read", &stdout)?));
        Ok(out)
    }
}
