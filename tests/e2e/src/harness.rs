//! Driving the built `moat` binary: a private state root per test, busybox
//! bundles, and the checks that nothing leaked after a container is gone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use tempfile::TempDir;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The moat binary under test: `$MOAT_BIN`, else target/debug/moat.
pub fn moat_bin() -> PathBuf {
    let p = std::env::var_os("MOAT_BIN").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/debug/moat"));
    assert!(p.exists(), "{} is missing: run `cargo build --bins` first", p.display());
    p
}

/// A unique container id for this test process.
pub fn unique_id(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// moat with a private `--root`, so tests run in parallel and leak checks
/// see only their own containers.
pub struct Moat {
    root: TempDir,
    /// extra global flags (e.g. `--platform native`)
    pub global: Vec<String>,
}

impl Default for Moat {
    fn default() -> Self {
        Self::new()
    }
}

/// A test that fails halfway leaves its containers: they are deleted
/// (forced) before the state root goes, or their processes would outlive
/// the test with nothing left to find them by.
impl Drop for Moat {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.root.path()) else { return };
        for e in entries.flatten() {
            if e.path().join("state.json").exists() {
                let _ = self.cmd(&["delete".as_ref(), "--force".as_ref(), e.file_name().as_os_str()]).output();
            }
        }
    }
}

impl Moat {
    /// A fresh state root.
    pub fn new() -> Moat {
        Moat { root: tempfile::Builder::new().prefix("moat-root-").tempdir().expect("tempdir"), global: vec![] }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A command `moat --root <root> <args>`.
    pub fn cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(moat_bin());
        c.arg("--root").arg(self.root.path()).args(&self.global).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs moat and returns its output. stdout and stderr go through
    /// files, not pipes: a detached container inherits them and would keep
    /// a pipe open long after moat has exited.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        output_via_files(self.cmd(args))
    }

    /// Runs moat, panics (with its stderr) unless it succeeds; returns stdout.
    pub fn ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        let out = self.run(args);
        let shown: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
        assert!(
            out.status.success(),
            "moat {shown:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs moat expecting failure; returns stderr, checking it is one line
    /// and no panic.
    pub fn fails<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let shown: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
        assert_eq!(out.status.code(), Some(1), "moat {shown:?} should fail with 1: {err}");
        assert_clean_error(&err);
        err
    }

    /// Waits up to three seconds for a container to reach `want`; returns the last status seen.
    pub fn wait_status(&self, id: &str, want: &str) -> String {
        for _ in 0..300 {
            let st = self.status(id);
            if st == want {
                return st;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.status(id)
    }

    /// The OCI status of a container.
    pub fn status(&self, id: &str) -> String {
        let st: Value = serde_json::from_str(&self.ok(&["state", id])).expect("state json");
        st["status"].as_str().unwrap_or_default().to_string()
    }
}

/// Runs `cmd` with stdout and stderr in temp files; returns what it wrote.
pub fn output_via_files(mut cmd: Command) -> Output {
    let out = tempfile::tempfile().expect("tempfile");
    let err = tempfile::tempfile().expect("tempfile");
    cmd.stdout(out.try_clone().expect("dup")).stderr(err.try_clone().expect("dup"));
    let status = cmd.status().expect("spawn");
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).expect("seek");
        f.read_to_end(&mut v).expect("read");
        v
    };
    Output { status, stdout: read(out), stderr: read(err) }
}

/// An error output must be one line, not a panic or backtrace.
pub fn assert_clean_error(err: &str) {
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "panic in: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "error should be one line: {err:?}");
}

/// A bundle with a busybox rootfs and a config.json from `moat spec`.
pub struct Bundle {
    dir: TempDir,
    /// the spec, written by [`Bundle::write`]
    pub spec: Value,
}

impl Bundle {
    /// A bundle from `moat spec`'s template running `args` without a
    /// terminal, with an empty `rootfs` directory.
    pub fn template(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new().prefix("moat-bundle-").tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("rootfs")).expect("rootfs dir");
        let out = Command::new(moat_bin()).args(["spec", "--bundle"]).arg(dir.path()).output().expect("moat spec");
        assert!(out.status.success(), "moat spec: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(dir.path().join("config.json")).expect("config.json");
        let mut spec: Value = serde_json::from_str(&text).expect("spec json");
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        let b = Bundle { dir, spec };
        b.write();
        b
    }

    /// A busybox bundle running `args`, without a terminal.
    pub fn busybox(args: &[&str]) -> Bundle {
        let b = Bundle::template(args);
        crate::image::busybox_rootfs(&b.rootfs()).expect("busybox rootfs");
        b
    }

    /// Changes the spec and writes it.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.spec);
        self.write();
        self
    }

    /// Adds a mount to the spec (a JSON object as config.json has it) and writes it.
    pub fn mount(&mut self, m: Value) -> &mut Self {
        self.edit(|s| s["mounts"].as_array_mut().expect("mounts").push(m))
    }

    /// Adds a fresh tmpfs on /tmp (the busybox rootfs is read-only) and writes the spec.
    pub fn tmp(&mut self) -> &mut Self {
        self.mount(serde_json::json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}))
    }

    /// Writes config.json.
    pub fn write(&self) {
        std::fs::write(self.dir.path().join("config.json"), serde_json::to_vec_pretty(&self.spec).expect("json"))
            .expect("write spec");
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// Runs a container in the foreground; returns (exit code, stdout, stderr).
pub fn run_fg(moat: &Moat, b: &Bundle, id: &str) -> (i32, String, String) {
    let out = moat.run(&["run".as_ref(), "--bundle".as_ref(), b.path().as_os_str(), id.as_ref()]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `sh -c script` in a fresh busybox container (after `edit`), and
/// returns stdout, asserting exit 0 and no leaks.
pub fn sh(script: &str, edit: impl FnOnce(&mut Value)) -> String {
    let moat = Moat::new();
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.edit(edit);
    let id = unique_id("sh");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "script failed: {err}\nstdout: {out}");
    assert_no_leaks(&moat, &id, b.path());
    out
}

/// Checks that nothing of container `id` remains: state dir, cgroups,
/// processes in its cgroup, mounts under its bundle.
pub fn assert_no_leaks(moat: &Moat, id: &str, bundle: &Path) {
    assert!(!moat.root().join(id).exists(), "state dir of {id} left behind");
    // its claim on a range of host ids for its user namespace
    let state_dir = moat.root().join(id);
    for e in std::fs::read_dir("/run/moat-userns").into_iter().flatten().flatten() {
        let owner = std::fs::read_link(e.path()).unwrap_or_default();
        assert!(owner != state_dir, "range {:?} of {id} still claimed", e.file_name());
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").expect("cgroupfs").flatten() {
        let p = h.path().join("moat").join(id);
        assert!(!p.exists(), "cgroup {} left behind", p.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let b = bundle.to_string_lossy();
    assert!(!mounts.lines().any(|l| l.contains(&*b)), "mount under {b} left behind");
    for p in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(cg) = std::fs::read_to_string(p.path().join("cgroup")) else { continue };
        assert!(
            !cg.lines().any(|l| l.ends_with(&format!("/moat/{id}"))),
            "process {:?} of {id} still runs",
            p.file_name()
        );
    }
}

/// Receives one message and the fds sent with it (SCM_RIGHTS) on `sock`.
pub fn recv_with_fds(sock: std::os::fd::BorrowedFd<'_>) -> (Vec<u8>, Vec<std::os::fd::OwnedFd>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 65536];
    let mut space = nix::cmsg_space!([i32; 4]);
    let (n, raw) = {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg =
            recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).expect("recvmsg");
        let raw: Vec<i32> = msg
            .cmsgs()
            .expect("cmsgs")
            .filter_map(|c| match c {
                ControlMessageOwned::ScmRights(v) => Some(v),
                _ => None,
            })
            .flatten()
            .collect();
        (msg.bytes, raw)
    };
    buf.truncate(n);
    // SAFETY: the kernel just installed these fds for us; nothing else owns them.
    let fds = raw.into_iter().map(|f| unsafe { std::os::fd::FromRawFd::from_raw_fd(f) }).collect();
    (buf, fds)
}

/// containerd's default capabilities.
pub const CONTAINERD_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Gives a spec's process exactly `caps` (bounding, effective, permitted;
/// none inheritable or ambient).
pub fn set_caps(s: &mut Value, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        s["process"]["capabilities"][set] = serde_json::json!(caps);
    }
    for set in ["inheritable", "ambient"] {
        s["process"]["capabilities"][set] = serde_json::json!([]);
    }
}

/// The first host id a sandbox's own user namespace maps container uid 0
/// to, from the text of its uid_map: one line, container ids 0..65536 to a
/// whole range of 65536 host ids from 2^30 up (moat's `--userns auto`).
/// Panics, showing the map, otherwise.
pub fn own_range(uid_map: &str) -> u32 {
    let f: Vec<u64> = uid_map.split_whitespace().map(|v| v.parse().unwrap_or(u64::MAX)).collect();
    let ok = f.len() == 3 && f[0] == 0 && f[2] == 65536 && f[1] >= 1 << 30 && f[1] + 65536 <= 1 << 31;
    assert!(ok && f[1].is_multiple_of(65536), "not a range of the sandbox's own: {uid_map:?}");
    f[1] as u32
}
