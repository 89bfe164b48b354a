//! Podman, isolated from the host's own podman state, for the end-to-end tests.
//!
//! A [`Podman`] owns a tempdir holding everything podman would otherwise keep in host-wide places: image and
//! container storage (`--root`, `--runroot`), libpod's tmp dir (`--tmpdir`, which also holds file locks
//! instead of the shared `/dev/shm/libpod_lock`), network and volume dirs, the event log, and a
//! `containers.conf` / `storage.conf` passed through `CONTAINERS_CONF` / `CONTAINERS_STORAGE_CONF` so the host's
//! config files play no part. Two things escape: the runtime keeps its state in its default root (see
//! [`Podman::runtime_root`]), and podman 4.3 running as root keeps its blob-info cache in
//! `/var/lib/containers/cache` whatever the flags (a harmless, locked cache).
//!
//! Containers run with cgroupfs and no network (`netns = "none"`), and with `default_ulimits` within the hard
//! limits podman itself runs with: podman would otherwise ask for 1048576 open files and processes, which a
//! runtime without CAP_SYS_RESOURCE cannot grant above the hard limit.
//!
//! Dropping it removes all its containers (`podman rm -af`), kills any process still naming its tempdir (conmon,
//! found by its arguments, never by name) with their descendants, and unmounts whatever is left under it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::resource::{getrlimit, Resource};

use crate::containerd::{kill_with_descendants, output_timeout, processes, unmount_under};

/// The podman binary (Debian package podman).
pub const PODMAN: &str = "podman";
/// How long one podman call may take before the test fails.
pub const PODMAN_TIMEOUT: Duration = Duration::from_secs(120);

/// A podman whose every call is confined to one tempdir and uses one given OCI runtime. See the module docs.
pub struct Podman {
    dir: tempfile::TempDir,
    runtime: PathBuf,
}

impl Podman {
    /// Prepares the tempdir and config for a podman that runs containers with `runtime` (an absolute path).
    pub fn new(runtime: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("moat-e2e-podman-").tempdir()?;
        let base = dir.path();
        for sub in ["root", "runroot", "tmp", "net", "volumes"] {
            fs::create_dir_all(base.join(sub))?;
        }
        let runtime_name = runtime.file_name().context("runtime path has no file name")?.to_string_lossy();
        let (nofile_soft, nofile_hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
        // podman 4.3 lowers its own RLIMIT_NPROC to 32768 before it starts conmon, so the runtime inherits at
        // most that; ask for well below it (and below our own limit)
        let nproc = getrlimit(Resource::RLIMIT_NPROC)?.1.min(4096);
        let limit = |v: u64| if v == libc::RLIM_INFINITY { "-1".to_string() } else { v.to_string() };

        let conf = format!(
            r#"[containers]
# never above the hard limits podman runs with: raising them needs CAP_SYS_RESOURCE
default_ulimits = ["nofile={nofile_soft}:{nofile_hard}", "nproc={nproc}:{nproc}"]
netns = "none"
log_driver = "k8s-file"

[network]
network_backend = "cni"
network_config_dir = "{net}"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
lock_type = "file"
tmp_dir = "{tmp}"
volume_path = "{volumes}"
# podman passes --log-format=json to runtimes it knows speak it; ours does, as runc does
runtime_supports_json = ["runc", "crun", "{runtime_name}"]
"#,
            nofile_soft = limit(nofile_soft),
            nofile_hard = limit(nofile_hard),
            net = base.join("net").display(),
            events = base.join("events.log").display(),
            tmp = base.join("tmp").display(),
            volumes = base.join("volumes").display(),
        );
        fs::write(base.join("containers.conf"), conf)?;
        let storage = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            base.join("root").display(),
            base.join("runroot").display()
        );
        fs::write(base.join("storage.conf"), storage)?;
        let me = Self { dir, runtime: runtime.to_path_buf() };

        let out = output_timeout(Command::new(PODMAN).arg("--version"), PODMAN_TIMEOUT)
            .context("cannot run podman (install the podman package; it is required)")?;
        anyhow::ensure!(out.status.success(), "podman --version failed: {}", String::from_utf8_lossy(&out.stderr));
        Ok(me)
    }

    /// The tempdir holding podman's storage, state and config.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the runtime keeps container state: podman passes no `--root`, so it is the runtime's default,
    /// taken to be `/run/<runtime file name>` (`/run/runc`, `/run/moat`) unless `$MOAT_E2E_RUNTIME_ROOT` says.
    ///
    /// (Podman can pass one with `--runtime-flag root=DIR`, but podman 4.3 drops it from the `container
    /// cleanup` that conmon runs when the container exits, whose `delete --force` then misses the container.)
    pub fn runtime_root(&self) -> PathBuf {
        if let Some(root) = std::env::var_os("MOAT_E2E_RUNTIME_ROOT") {
            return PathBuf::from(root);
        }
        Path::new("/run").join(self.runtime.file_name().unwrap_or_default())
    }

    /// A `podman` command with our global flags and environment, ready for a subcommand.
    pub fn command(&self) -> Command {
        let base = self.dir.path();
        let mut cmd = Command::new(PODMAN);
        cmd.env("CONTAINERS_CONF", base.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", base.join("storage.conf"))
            .arg("--root")
            .arg(base.join("root"))
            .arg("--runroot")
            .arg(base.join("runroot"))
            .arg("--tmpdir")
            .arg(base.join("tmp"))
            .arg("--storage-driver=overlay")
            .arg("--cgroup-manager=cgroupfs")
            .arg("--events-backend=file")
            .arg("--network-config-dir")
            .arg(base.join("net"))
            .arg("--runtime")
            .arg(&self.runtime);
        cmd
    }

    /// Runs `podman <global flags> <args>` (any subcommand); panics only if podman cannot run or times out.
    pub fn run(&self, args: &[&str]) -> Output {
        output_timeout(self.command().args(args), PODMAN_TIMEOUT).unwrap_or_else(|e| panic!("podman {args:?}: {e:#}"))
    }

    /// Like [`Self::run`], but panics (showing stdout and stderr) unless podman succeeds; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        if !out.status.success() {
            panic!(
                "podman {args:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Loads an OCI archive (see [`crate::image::busybox_oci_archive`]); the image is named after its ref name.
    pub fn load(&self, archive: &Path) {
        let archive = archive.to_str().expect("archive path is UTF-8");
        self.run_ok(&["load", "--input", archive]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = output_timeout(self.command().args(["rm", "--all", "--force", "--time", "0"]), PODMAN_TIMEOUT);
        let base = self.dir.path().to_string_lossy().into_owned();
        let stragglers: Vec<i32> =
            processes().into_iter().filter(|p| p.argv.iter().any(|a| a.contains(&base))).map(|p| p.pid).collect();
        kill_with_descendants(&stragglers);
        unmount_under(self.dir.path());
        // the TempDir removes the rest
    }
}
