//! Real callers drive the runtime under test: containerd 1.6 through its runc v2 shim (`ctr run --runc-binary`)
//! and podman 4 through conmon (`podman --runtime`).
//!
//! Each test builds the busybox image locally, starts its own private containerd or podman (see
//! `moat_e2e::containerd` and `moat_e2e::podman`), uses ids unique in the machine, and then checks that the
//! runtime left nothing behind: no process or mount naming the container, no cgroup, no state dir.
//! The runtime is `$MOAT_E2E_RUNTIME`, else the workspace's `target/debug/moat`; run against runc with
//! `MOAT_E2E_RUNTIME=/usr/bin/runc`. The tests need root, containerd and podman; they fail (never skip)
//! without them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use moat_e2e::containerd::{cgroups_named, mount_points, processes, Containerd};
use moat_e2e::image::busybox_oci_archive;
use moat_e2e::podman::Podman;

/// The image's ref name; ctr keeps it when imported with `--base-name IMAGE_BASE`.
const IMAGE: &str = "localhost/moat-busybox:latest";
const IMAGE_BASE: &str = "localhost/moat-busybox";

/// How long the runtime and its callers get to tear a container down after the caller says it is gone.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(15);

/// The OCI runtime binary under test.
fn runtime() -> PathBuf {
    if let Some(path) = std::env::var_os("MOAT_E2E_RUNTIME") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/moat")
}

/// The runtime as an absolute path (callers resolve relative ones against other dirs), checked to exist.
/// Symlinks are kept: podman derives the runtime's name from the file name.
fn runtime_checked() -> String {
    let rt = std::path::absolute(runtime()).expect("absolute path of the runtime");
    assert!(rt.is_file(), "runtime under test {} is missing; build it or set MOAT_E2E_RUNTIME", rt.display());
    rt.to_str().expect("runtime path is UTF-8").to_string()
}

/// A container name no other test (in this or another process) uses. Fixed width, so none is a prefix of another.
fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("moat-{prefix}-{}-{:04}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until nothing on the machine refers to the container any more: no process whose argv mentions one of
/// `names`, no mount point or cgroup whose path does, and none of `state_dirs` exists. Panics listing what is
/// left after [`CLEANUP_TIMEOUT`].
fn assert_no_leaks(names: &[&str], state_dirs: &[PathBuf]) {
    let deadline = Instant::now() + CLEANUP_TIMEOUT;
    loop {
        let mut left = Vec::new();
        for p in processes() {
            if p.argv.iter().any(|a| names.iter().any(|n| a.contains(n))) {
                left.push(format!("process {}: {}", p.pid, p.argv.join(" ")));
            }
        }
        for m in mount_points() {
            if names.iter().any(|n| m.contains(n)) {
                left.push(format!("mount {m}"));
            }
        }
        for name in names {
            left.extend(cgroups_named(name).into_iter().map(|c| format!("cgroup {}", c.display())));
        }
        left.extend(state_dirs.iter().filter(|d| d.exists()).map(|d| format!("state dir {}", d.display())));
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("container {names:?} leaked after {CLEANUP_TIMEOUT:?}:\n  {}", left.join("\n  "));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `cond` every 50ms; panics with `what` if it does not hold within `timeout`.
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn containerd_with_busybox() -> Containerd {
    let ctrd = Containerd::start().expect("starting a private containerd");
    let archive = ctrd.dir().join("busybox.oci.tar");
    busybox_oci_archive(&archive, IMAGE).expect("building the busybox image");
    ctrd.import(&archive, IMAGE_BASE);
    ctrd
}

/// Arguments of a `ctr run` of the runtime under test: `run --fifo-dir <fifo> --runc-binary <rt> <flags> IMAGE <id>
/// <cmd>`.
fn run_args<'a>(fifo: &'a str, rt: &'a str, flags: &[&'a str], id: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--fifo-dir", fifo, "--runc-binary", rt];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[IMAGE, id]);
    args.extend_from_slice(cmd);
    args
}

/// The state a container leaves with containerd and with the runtime, which must all be gone after delete.
fn containerd_state(ctrd: &Containerd, id: &str) -> Vec<PathBuf> {
    vec![ctrd.task_dir(id), ctrd.runtime_root().join(id)]
}

#[test]
fn containerd_run_output_and_exit_code() {
    let rt = runtime_checked();
    let ctrd = containerd_with_busybox();
    let fifo = ctrd.fifo_dir();

    let id = unique_id("ctr-run");
    // sh is PID 1 of a new PID namespace; ctr sets no_new_privs unless told --allow-new-privs
    let script = "echo hello; echo pid $$; grep NoNewPrivs /proc/self/status; id -u; echo $PATH";
    let out = ctrd.ctr_ok(&run_args(&fifo, &rt, &["--rm"], &id, &["sh", "-c", script]));
    let path = moat_e2e::image::IMAGE_PATH_ENV.trim_start_matches("PATH=");
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(lines, ["hello", "pid 1", "NoNewPrivs:\t1", "0", path], "output of ctr run: {out:?}");
    assert_no_leaks(&[&id], &containerd_state(&ctrd, &id));

    let id = unique_id("ctr-exit");
    let out = ctrd.ctr(&run_args(&fifo, &rt, &["--rm"], &id, &["sh", "-c", "echo bye >&2; exit 3"]));
    assert_eq!(out.status.code(), Some(3), "ctr run of `exit 3`: stderr {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bye"), "container stderr not relayed");
    assert_no_leaks(&[&id], &containerd_state(&ctrd, &id));

    // a terminal: the shim hands the runtime a --console-socket and receives the pty master through it
    let id = unique_id("ctr-tty");
    let args = run_args(&fifo, &rt, &["--rm", "--tty"], &id, &["sh", "-c", "tty; echo tty-ok; exit 4"]);
    let (status, out) = ctrd.ctr_tty(&args, 24, 80);
    assert_eq!(status.code(), Some(4), "ctr run --tty: {out}");
    assert_eq!(out, "/dev/pts/0\ntty-ok\n", "ctr run --tty output");
    assert_no_leaks(&[&id], &containerd_state(&ctrd, &id));

    let ls = ctrd.ctr_ok(&["containers", "ls", "--quiet"]);
    assert_eq!(ls.trim(), "", "ctr run --rm left containers");
}

#[test]
fn containerd_detached_exec_kill_delete() {
    let rt = runtime_checked();
    let ctrd = containerd_with_busybox();
    let fifo = ctrd.fifo_dir();
    let id = unique_id("ctr-detach");

    // PID 1 ignores signals it has no handler for, so trap TERM to prove the kill is delivered
    let script = "trap 'exit 7' TERM; while :; do sleep 0.1; done";
    ctrd.ctr_ok(&run_args(&fifo, &rt, &["--detach"], &id, &["sh", "-c", script]));
    let task_status = |ctrd: &Containerd| {
        let ls = ctrd.ctr_ok(&["tasks", "ls"]);
        ls.lines()
            .find(|l| l.split_whitespace().next() == Some(&id))
            .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
    };
    assert_eq!(task_status(&ctrd).as_deref(), Some("RUNNING"));

    let exec = |exec_id: &'static str, cmd: &'static str| {
        ["tasks", "exec", "--fifo-dir", &fifo, "--exec-id", exec_id, &id, "sh", "-c", cmd]
    };
    let out = ctrd.ctr_ok(&exec("e1", "echo exec says hi; cat /proc/1/cmdline"));
    assert!(out.starts_with("exec says hi\n"), "exec output: {out:?}");
    assert!(out.contains("trap"), "exec does not see the container's PID 1: {out:?}");
    let out = ctrd.ctr(&exec("e2", "exit 5"));
    assert_eq!(out.status.code(), Some(5), "exit code of exec: stderr {}", String::from_utf8_lossy(&out.stderr));

    let (status, out) = ctrd.ctr_tty(
        &["tasks", "exec", "--fifo-dir", &fifo, "--tty", "--exec-id", "e3", &id, "sh", "-c", "tty"],
        24,
        80,
    );
    assert!(status.success(), "ctr task exec --tty failed ({status}): {out}");
    // ctr may log first that it could not resize the pty of a process that
    // had already ended (its own race with `tty`, which ends at once)
    assert!(out.lines().any(|l| l.starts_with("/dev/pts/")), "ctr task exec --tty output: {out:?}");

    let ps = ctrd.ctr_ok(&["tasks", "ps", &id]);
    assert!(ps.lines().count() >= 2, "ctr task ps lists no process: {ps:?}");

    ctrd.ctr_ok(&["tasks", "pause", &id]);
    assert_eq!(task_status(&ctrd).as_deref(), Some("PAUSED"));
    ctrd.ctr_ok(&["tasks", "resume", &id]);
    assert_eq!(task_status(&ctrd).as_deref(), Some("RUNNING"));

    ctrd.ctr_ok(&["tasks", "kill", "--signal", "SIGTERM", &id]);
    wait_for("the task to stop after SIGTERM", Duration::from_secs(20), || {
        task_status(&ctrd).as_deref() == Some("STOPPED")
    });
    // ctr 1.6 only warns about a non-zero exit status of the deleted task
    let out = ctrd.ctr(&["tasks", "delete", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ctr task delete failed: {stderr}");
    assert!(stderr.contains("exit code 7"), "SIGTERM was not delivered to the trap: ctr task delete says {stderr:?}");
    ctrd.ctr_ok(&["containers", "delete", &id]);
    assert_eq!(task_status(&ctrd), None, "task still listed after delete");
    assert_no_leaks(&[&id], &containerd_state(&ctrd, &id));
}

fn podman_with_busybox() -> Podman {
    let podman = Podman::new(Path::new(&runtime_checked())).expect("preparing an isolated podman");
    let archive = podman.dir().join("busybox.oci.tar");
    busybox_oci_archive(&archive, IMAGE).expect("building the busybox image");
    podman.load(&archive);
    podman
}

/// The full ID podman gave container `name`.
fn podman_id(podman: &Podman, name: &str) -> String {
    podman.run_ok(&["container", "inspect", "--format", "{{.Id}}", name]).trim().to_string()
}

/// The state a podman container leaves with podman and with the runtime, which must all be gone after rm.
fn podman_state(podman: &Podman, id: &str) -> Vec<PathBuf> {
    vec![podman.runtime_root().join(id), podman.dir().join("root/overlay-containers").join(id)]
}

/// `podman run --rm --pull=never --cidfile F --name NAME <args>`; returns its output and the container's ID.
fn podman_run_rm(podman: &Podman, name: &str, args: &[&str]) -> (std::process::Output, String) {
    let cidfile = podman.dir().join(format!("{name}.cid"));
    let cidfile_arg = format!("--cidfile={}", cidfile.display());
    let mut full = vec!["run", "--rm", "--pull=never", &cidfile_arg, "--name", name];
    full.extend_from_slice(args);
    let out = podman.run(&full);
    let id = std::fs::read_to_string(&cidfile).unwrap_or_else(|e| panic!("podman wrote no {}: {e}", cidfile.display()));
    (out, id.trim().to_string())
}

#[test]
fn podman_run_output_and_exit_code() {
    let podman = podman_with_busybox();

    let name = unique_id("podman-run");
    let (out, id) = podman_run_rm(&podman, &name, &[IMAGE, "sh", "-c", "echo hi; echo pid $$; id -u"]);
    assert!(out.status.success(), "podman run failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_of(&out), "hi\npid 1\n0\n");
    assert_no_leaks(&[&name, &id], &podman_state(&podman, &id));

    let name = unique_id("podman-exit");
    let (out, id) = podman_run_rm(&podman, &name, &[IMAGE, "sh", "-c", "echo bye >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "podman run of `exit 3`: stderr {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bye"), "container stderr not relayed");
    assert_no_leaks(&[&name, &id], &podman_state(&podman, &id));

    // a terminal: conmon hands the runtime a --console-socket and relays the pty
    let name = unique_id("podman-tty");
    let (out, id) = podman_run_rm(&podman, &name, &["--tty", IMAGE, "sh", "-c", "tty; echo tty-ok"]);
    assert!(out.status.success(), "podman run --tty failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_of(&out).replace("\r\n", "\n"), "/dev/pts/0\ntty-ok\n", "podman run --tty output");
    assert_no_leaks(&[&name, &id], &podman_state(&podman, &id));

    let ps = podman.run_ok(&["ps", "--all", "--quiet"]);
    assert_eq!(ps.trim(), "", "podman run --rm left containers");
}

#[test]
fn podman_detached_exec_stop_rm() {
    let podman = podman_with_busybox();
    let name = unique_id("podman-detach");

    let script = "trap 'exit 7' TERM; while :; do sleep 0.1; done";
    let id = podman.run_ok(&["run", "--detach", "--pull=never", "--name", &name, IMAGE, "sh", "-c", script]);
    let id = id.trim().to_string();
    assert_eq!(id, podman_id(&podman, &name));
    let state = || podman.run_ok(&["container", "inspect", "--format", "{{.State.Status}}", &name]).trim().to_string();
    assert_eq!(state(), "running");

    let out = podman.run_ok(&["exec", &name, "sh", "-c", "echo exec says hi; cat /proc/1/cmdline"]);
    assert!(out.starts_with("exec says hi\n"), "exec output: {out:?}");
    assert!(out.contains("trap"), "exec does not see the container's PID 1: {out:?}");
    let out = podman.run(&["exec", &name, "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5), "exit code of exec: stderr {}", String::from_utf8_lossy(&out.stderr));

    let out = podman.run_ok(&["exec", "--tty", &name, "tty"]);
    assert!(out.starts_with("/dev/pts/"), "podman exec --tty output: {out:?}");

    let top = podman.run_ok(&["top", &name]);
    assert!(top.contains("sh -c"), "podman top: {top:?}");

    podman.run_ok(&["pause", &name]);
    assert_eq!(state(), "paused");
    podman.run_ok(&["unpause", &name]);
    assert_eq!(state(), "running");

    podman.run_ok(&["stop", "--time", "20", &name]);
    assert_eq!(state(), "exited");
    let code = podman.run_ok(&["container", "inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(code.trim(), "7", "SIGTERM was not delivered to the trap (exit code {code:?})");
    podman.run_ok(&["rm", &name]);
    let out = podman.run(&["container", "exists", &name]);
    assert_eq!(out.status.code(), Some(1), "container still exists after rm: {}", stdout_of(&out));
    assert_no_leaks(&[&name, &id], &podman_state(&podman, &id));

    // rm --force of a running container: SIGKILL, then delete
    let name = unique_id("podman-rmf");
    let id = podman.run_ok(&["run", "--detach", "--pull=never", "--name", &name, IMAGE, "sleep", "1000"]);
    let id = id.trim().to_string();
    podman.run_ok(&["rm", "--force", "--time", "0", &name]);
    assert_no_leaks(&[&name, &id], &podman_state(&podman, &id));
}

/// Two podman containers in one network namespace the test made
/// (`--network ns:`, as a CNI plugin leaves a pod's; podman 4.3's own pods
/// refuse a path): the first one's sandbox takes the interface, the second
/// shares its netstack. A server in the first is reached from the pod's
/// network, and over the loopback from the second.
#[test]
fn podman_containers_in_one_network_namespace_share_one_netstack() {
    use moat_e2e::podnet::{PodNet, POD_IP};
    let net = PodNet::new("pm-pod");
    let podman = podman_with_busybox();
    let ns = format!("--network=ns:{}", net.pod_path());
    let app = unique_id("pm-app");
    let serve = "echo hello from the pod > /tmp/index.html; exec httpd -f -p 8080 -h /tmp";
    let app_id = podman.run_ok(&["run", "--detach", "--pull=never", &ns, "--name", &app, IMAGE, "sh", "-c", serve]);
    let app_id = app_id.trim().to_string();
    let curl = || {
        let out = net.peer_run(&["curl", "-sS", "-m", "5", &format!("http://{POD_IP}:8080/index.html")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for("the app's server from the pod's network", Duration::from_secs(20), || curl() == "hello from the pod\n");
    // the default runtime, moat on the sentry platform, has a netstack, which
    // took the addresses (the pod's kernel does not answer for them); runc
    // and moat's native platform leave them to the kernel's stack
    let kernel = net.pod_kernel_addrs();
    if std::env::var_os("MOAT_E2E_RUNTIME").is_none() {
        assert!(!kernel.contains(&format!("inet {POD_IP}/")), "{kernel}");
    }
    let side = unique_id("pm-side");
    let (out, side_id) =
        podman_run_rm(&podman, &side, &[&ns, IMAGE, "wget", "-qO-", "http://127.0.0.1:8080/index.html"]);
    assert!(out.status.success(), "the sidecar: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_of(&out), "hello from the pod\n");
    assert_no_leaks(&[&side, &side_id], &podman_state(&podman, &side_id));
    podman.run_ok(&["rm", "--force", "--time", "0", &app]);
    assert_no_leaks(&[&app, &app_id], &podman_state(&podman, &app_id));
    // the pod's kernel has its address back
    assert!(net.pod_kernel_addrs().contains(&format!("inet {POD_IP}/24")), "{}", net.pod_kernel_addrs());
}
