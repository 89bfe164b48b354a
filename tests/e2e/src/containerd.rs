//! A private containerd daemon for the end-to-end tests, and the process/mount helpers its cleanup needs.
//!
//! [`Containerd::start`] runs `containerd` with its own config, root, state and sockets in a fresh tempdir
//! (CRI disabled, cgroupfs, the overlayfs snapshotter, or native where overlayfs cannot mount there), so tests
//! never touch, nor depend on, a containerd the host may run, and several can run in parallel. Each instance
//! also owns one containerd namespace, unique on the machine, which [`Containerd::ctr`] passes to every `ctr`
//! call.
//!
//! Dropping it stops the daemon by PID, kills the shims left behind that talk to *our* socket (found by their
//! `-address` argument, never by name) together with their descendants, unmounts whatever is left under its
//! tempdir and removes the runtime state the shim kept outside it (`/run/containerd/runc/<namespace>`).
//!
//! The generic helpers below ([`output_timeout`], [`processes`], [`kill_with_descendants`],
//! [`unmount_under`]) are shared with `podman.rs`.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The containerd daemon binary (Debian package containerd).
pub const CONTAINERD: &str = "containerd";
/// containerd's CLI client.
pub const CTR: &str = "ctr";
/// How long one `ctr` call may take before the test fails.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the daemon may take to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

static NEXT_NAMESPACE: AtomicUsize = AtomicUsize::new(0);

/// A containerd daemon private to one test. See the module docs.
pub struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
    socket: PathBuf,
    namespace: String,
    snapshotter: &'static str,
}

impl Containerd {
    /// Starts the daemon and waits until it answers `ctr version`.
    pub fn start() -> Result<Self> {
        let mut dir = tempfile::Builder::new().prefix("moat-e2e-containerd-").tempdir()?;
        if dir.path().join("containerd.sock.ttrpc").as_os_str().len() > 100 {
            // unix socket paths are limited to 108 bytes; a long $TMPDIR would break the daemon
            dir = tempfile::Builder::new().prefix("moat-e2e-containerd-").tempdir_in("/tmp")?;
        }
        let base = dir.path();
        let socket = base.join("containerd.sock");
        // our PID makes it unique on the machine; fixed width, so that no name is a prefix of another
        let n = NEXT_NAMESPACE.fetch_add(1, Ordering::Relaxed);
        let namespace = format!("moat-e2e-{}-{n:04}", std::process::id());

        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
# CRI is of no use to ctr, and its defaults would raise OOM scores (this VM lacks CAP_SYS_RESOURCE)
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  level = "info"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{opt}"
  [plugins."io.containerd.runtime.v2.task"]
    platforms = ["linux/amd64", "linux/arm64"]
"#,
            root = base.join("root").display(),
            state = base.join("state").display(),
            socket = socket.display(),
            opt = base.join("opt").display(),
        );
        let config_path = base.join("config.toml");
        fs::write(&config_path, config)?;

        let log = fs::File::create(base.join("containerd.log"))?;
        let mut cmd = Command::new(CONTAINERD);
        cmd.arg("--config").arg(&config_path).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run {CONTAINERD} (install the containerd package; it is required)"))?;

        let snapshotter = if overlay_works(base) { "overlayfs" } else { "native" };
        let mut me = Self { dir, child, socket, namespace, snapshotter };
        me.wait_ready()?;
        Ok(me)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("containerd exited early ({status}); its log:\n{}", self.log());
            }
            if self.socket.exists() {
                let out = self.ctr(&["version"]);
                if out.status.success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd did not answer on {} within {START_TIMEOUT:?}; its log:\n{}",
                    self.socket.display(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The snapshotter every [`Self::ctr`] call uses (`$CONTAINERD_SNAPSHOTTER`): overlayfs where it works.
    pub fn snapshotter(&self) -> &str {
        self.snapshotter
    }

    /// The daemon's gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The containerd namespace every [`Self::ctr`] call uses.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The tempdir holding config, root, state, sockets and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the runc v2 shim keeps a task's bundle (`config.json`, `rootfs`, logs).
    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join("state/io.containerd.runtime.v2.task").join(&self.namespace).join(id)
    }

    /// The `--root` the runc v2 shim passes to the runtime unless `ctr run --runc-root` says otherwise.
    pub fn runtime_root(&self) -> PathBuf {
        Path::new("/run/containerd/runc").join(&self.namespace)
    }

    /// A directory for `ctr run --fifo-dir` / `ctr task exec --fifo-dir`, so ctr's stdio FIFOs stay in our
    /// tempdir (by default they go to `/run/containerd/fifo`, and stay there if a detached task is never deleted).
    pub fn fifo_dir(&self) -> String {
        self.dir.path().join("fifo").to_string_lossy().into_owned()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CTR);
        cmd.env("CONTAINERD_SNAPSHOTTER", self.snapshotter);
        cmd.arg("--address").arg(&self.socket).arg("--namespace").arg(&self.namespace).args(args);
        cmd
    }

    /// Runs `ctr --address <ours> --namespace <ours> <args>`; panics only if ctr cannot run or times out.
    pub fn ctr(&self, args: &[&str]) -> Output {
        let mut cmd = self.ctr_command(args);
        output_timeout(&mut cmd, CTR_TIMEOUT)
            .unwrap_or_else(|e| panic!("ctr {args:?}: {e:#}\ncontainerd log tail:\n{}", tail(&self.log(), 40)))
    }

    /// Like [`Self::ctr`], but panics (showing stderr and the daemon's log) unless ctr succeeds; returns stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        if !out.status.success() {
            panic!(
                "ctr {args:?} failed ({})\nstdout:\n{}\nstderr:\n{}\ncontainerd log tail:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail(&self.log(), 40)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `ctr ... <args>` with a fresh pty (of `rows` x `cols`) as its stdin, stdout and stderr, as `ctr run -t`
    /// and `ctr task exec -t` need; returns its exit status and everything it wrote to the pty, `\r` removed.
    /// Panics if ctr cannot run or times out.
    pub fn ctr_tty(&self, args: &[&str], rows: u16, cols: u16) -> (ExitStatus, String) {
        let size = nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(&size, None).expect("openpty");
        let mut cmd = self.ctr_command(args);
        let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pty slave"));
        cmd.stdin(slave(&pty.slave)).stdout(slave(&pty.slave)).stderr(slave(&pty.slave));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run ctr {args:?}: {e}"));
        // only ctr may hold the slave, so that reading the master ends (EIO) when ctr exits
        drop(cmd);
        drop(pty.slave);
        let output = Arc::new(Mutex::new(Vec::new()));
        let reader = drain(fs::File::from(pty.master), output.clone());
        let text = || String::from_utf8_lossy(&output.lock().unwrap()).replace('\r', "");

        let deadline = Instant::now() + CTR_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for ctr") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ctr {args:?} timed out after {CTR_TIMEOUT:?}; its terminal so far:\n{}", text());
            }
            thread::sleep(Duration::from_millis(10));
        };
        let grace = Instant::now() + Duration::from_secs(10);
        while !reader.is_finished() && Instant::now() < grace {
            thread::sleep(Duration::from_millis(5));
        }
        (status, text())
    }

    /// Imports an OCI archive whose ref name starts with `base_name` (e.g. `localhost/moat-busybox`).
    pub fn import(&self, archive: &Path, base_name: &str) {
        let archive = archive.to_str().expect("archive path is UTF-8");
        self.ctr_ok(&["images", "import", "--base-name", base_name, archive]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // the daemon first, so it starts no new shim
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();

        // shims (and the containers they reap) that a failed test left running
        let socket = self.socket.to_string_lossy().into_owned();
        let shims: Vec<i32> = processes()
            .into_iter()
            .filter(|p| p.argv.windows(2).any(|w| w[0] == "-address" && w[1] == socket))
            .map(|p| p.pid)
            .collect();
        kill_with_descendants(&shims);

        let runtime_root = self.runtime_root();
        unmount_under(&runtime_root);
        unmount_under(self.dir.path());
        let _ = fs::remove_dir_all(&runtime_root);
        remove_cgroups_named(&self.namespace);
        // the TempDir removes the rest
    }
}

/// Whether an overlay filesystem mounts in `dir` (it does not where `dir` itself sits on overlayfs, as in most
/// containers).
fn overlay_works(dir: &Path) -> bool {
    let probe = dir.join("overlay-probe");
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| probe.join(d));
    if [&lower, &upper, &work, &merged].iter().any(|d| fs::create_dir_all(d).is_err()) {
        return false;
    }
    let options = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    let flags = nix::mount::MsFlags::empty();
    let mounted = nix::mount::mount(Some("overlay"), &merged, Some("overlay"), flags, Some(options.as_str())).is_ok();
    if mounted {
        let _ = nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = fs::remove_dir_all(&probe);
    mounted
}

/// Makes the child die with SIGKILL when the thread that spawned it exits, so a test binary killed by a
/// timeout leaves no daemon behind. Spawn from the thread that owns the handle (each test's own thread).
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec; it only calls prctl(2), which is
    // async-signal-safe, allocates nothing and touches no state shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` with stdin from /dev/null, capturing stdout and stderr; fails if it runs longer than
/// `timeout` (it is then killed) or if a descendant keeps its output pipes open for long after it exits.
pub fn output_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().with_context(|| format!("cannot run {what}"))?;
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        drain(child.stdout.take().expect("stdout is piped"), stdout.clone()),
        drain(child.stderr.take().expect("stderr is piped"), stderr.clone()),
    ];
    let take = |buf: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();

    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "timed out after {timeout:?}: {what}\nstdout so far:\n{}\nstderr so far:\n{}",
                take(&stdout),
                take(&stderr)
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let grace = Instant::now() + Duration::from_secs(10);
    while readers.iter().any(|r| !r.is_finished()) {
        if Instant::now() > grace {
            bail!("{what} exited ({status}) but a descendant holds its stdout/stderr open\nstdout:\n{}", take(&stdout));
        }
        thread::sleep(Duration::from_millis(5));
    }
    let out = Output { status, stdout: stdout.lock().unwrap().clone(), stderr: stderr.lock().unwrap().clone() };
    Ok(out)
}

fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

/// One process as /proc shows it.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    /// The command line, split at NULs; empty for kernel threads.
    pub argv: Vec<String>,
}

/// Every process currently visible in /proc (those that exit while we read are skipped).
pub fn processes() -> Vec<Process> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    let mut all = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
        let Some(ppid) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)) else { continue };
        let Ok(ppid) = ppid.parse() else { continue };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let argv =
            cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned());
        all.push(Process { pid, ppid, argv: argv.collect() });
    }
    all
}

/// SIGKILLs `roots` and all their descendants (never this process).
pub fn kill_with_descendants(roots: &[i32]) {
    if roots.is_empty() {
        return;
    }
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in processes() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut doomed = BTreeSet::new();
    let mut todo: Vec<i32> = roots.to_vec();
    while let Some(pid) = todo.pop() {
        if doomed.insert(pid) {
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    doomed.remove(&(std::process::id() as i32));
    for pid in doomed {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Mount points, as this process's mount namespace lists them (`\040`-style escapes decoded), in mount order.
pub fn mount_points() -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().filter_map(|l| l.split(' ').nth(4)).map(unescape_mount_path).collect()
}

fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) if bytes[i] == b'\\' => {
                out.push(d.iter().fold(0u8, |v, b| v.wrapping_mul(8) + (b - b'0')));
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmounts every mount at or under `dir`, newest first.
pub fn unmount_under(dir: &Path) {
    let dir = dir.to_string_lossy().into_owned();
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    for _ in 0..3 {
        let mine: Vec<String> = mount_points().into_iter().filter(|m| *m == dir || m.starts_with(&prefix)).collect();
        if mine.is_empty() {
            return;
        }
        for m in mine.iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Cgroup directories (in every mounted hierarchy under /sys/fs/cgroup) whose name contains `needle`.
pub fn cgroups_named(needle: &str) -> Vec<PathBuf> {
    cgroups_where(|name| name.contains(needle))
}

fn cgroups_where(pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            // file_type() does not follow symlinks (cgroup v1 has e.g. cpu,cpuacct -> cpu)
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if pred(&entry.file_name().to_string_lossy()) {
                found.push(path.clone());
            }
            todo.push(path);
        }
    }
    found
}

/// Removes (deepest first) the cgroups named exactly `name`, and the cgroups below them.
fn remove_cgroups_named(name: &str) {
    let mut all = Vec::new();
    for top in cgroups_where(|n| n == name) {
        let mut todo = vec![top];
        while let Some(dir) = todo.pop() {
            if let Ok(entries) = fs::read_dir(&dir) {
                todo.extend(entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
            }
            all.push(dir);
        }
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for dir in all {
        let _ = fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b\011c"), "/a b\tc");
        assert_eq!(unescape_mount_path(r"/plain\"), "/plain\\");
    }

    #[test]
    fn output_timeout_kills_slow_commands() {
        let err = output_timeout(Command::new("sleep").arg("5"), Duration::from_millis(200)).unwrap_err();
        assert!(format!("{err:#}").contains("timed out"), "{err:#}");
        let out = output_timeout(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 4"]), CTR_TIMEOUT);
        let out = out.unwrap();
        assert_eq!(
            (out.status.code(), out.stdout.as_slice(), out.stderr.as_slice()),
            (Some(4), &b"out\n"[..], &b"err\n"[..])
        );
    }
}
