//! The OCI lifecycle through the moat binary: create, start, state, kill,
//! delete, run, exec, pause/resume, ps, list, events, hooks, console.

use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;

use moat_e2e::{assert_no_leaks, run_fg, unique_id, Bundle, Moat};
use serde_json::{json, Value};

#[test]
fn run_returns_the_exit_code_and_128_plus_signal() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let id = unique_id("exit");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    assert_no_leaks(&moat, &id, b.path());

    // pid 1 of a pid namespace cannot be killed from inside: share the host's
    let mut b = Bundle::busybox(&["sh", "-c", "kill -9 $$"]);
    b.edit(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    let id = unique_id("sig");
    assert_eq!(run_fg(&moat, &b, &id).0, 137);
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn create_start_kill_delete_walks_the_states() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("life");
    let pidfile = b.path().join("pid");
    moat.ok(&["create", "--bundle", b.path().to_str().unwrap(), "--pid-file", pidfile.to_str().unwrap(), &id]);
    let st: Value = serde_json::from_str(&moat.ok(&["state", &id])).unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.path().canonicalize().unwrap().to_str().unwrap());
    let pid: i64 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(st["pid"], pid);
    // a second create with the same id is refused
    let err = moat.fails(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(err.contains("exists"), "{err}");

    moat.ok(&["start", &id]);
    assert_eq!(moat.status(&id), "running");
    assert!(moat.fails(&["start", &id]).contains("running"));
    let err = moat.fails(&["delete", &id]);
    assert!(err.contains("not stopped"), "{err}");

    moat.ok(&["kill", &id, "KILL"]);
    assert_eq!(moat.wait_status(&id, "stopped"), "stopped");
    let err = moat.fails(&["kill", &id, "TERM"]);
    assert!(err.contains("container not running"), "{err}");
    moat.ok(&["delete", &id]);
    assert!(moat.fails(&["state", &id]).contains("does not exist"));
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn kill_term_ends_a_created_container_and_force_delete_a_running_one() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("term");
    moat.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    moat.ok(&["kill", &id, "15"]);
    assert_eq!(moat.wait_status(&id, "stopped"), "stopped");
    moat.ok(&["delete", &id]);
    assert_no_leaks(&moat, &id, b.path());

    let id = unique_id("force");
    moat.ok(&["run", "--detach", "--bundle", b.path().to_str().unwrap(), &id]);
    moat.ok(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
    // deleting what is gone: an error, except with --force
    assert!(moat.fails(&["delete", &id]).contains("does not exist"));
    moat.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_joins_the_container_and_returns_its_status() {
    let moat = Moat::new();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.edit(|s| s["hostname"] = "inside".into());
    let id = unique_id("exec");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let out =
        moat.ok(&["exec", "--env", "FOO=bar", "--cwd", "/tmp", &id, "sh", "-c", "hostname; echo $FOO; pwd; echo $$"]);
    // a small pid of the container's pid namespace (under sentry, the Sentry has taken one)
    let (head, pid) = out.rsplit_once("/tmp\n").unwrap();
    assert_eq!(head, "inside\nbar\n", "exec sees the container's uts namespace: {out}");
    assert!((2..10).contains(&pid.trim().parse::<u32>().unwrap()), "exec is in the container's pid namespace: {out}");
    let out = moat.run(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let out = moat.ok(&["exec", "--user", "1000:1000", &id, "id"]);
    assert!(out.starts_with("uid=1000 gid=1000"), "{out}");
    // --process with a file, detached with a pid file
    let pf = b.path().join("exec.pid");
    let proc_json = b.path().join("p.json");
    let p = json!({"args": ["sleep", "1000"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]});
    std::fs::write(&proc_json, p.to_string()).unwrap();
    moat.ok(&["exec", "-d", "--pid-file", pf.to_str().unwrap(), "--process", proc_json.to_str().unwrap(), &id]);
    let pid: i32 = std::fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    let pids: Vec<i32> = serde_json::from_str(&moat.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks {pid}");
    assert_eq!(pids.len(), 2);
    let err = moat.fails(&["exec", &id, "no-such-program"]);
    assert!(err.contains("not found"), "{err}");
    moat.ok(&["delete", "-f", &id]);
    assert_no_leaks(&moat, &id, b.path());
    assert!(moat.fails(&["exec", &id, "true"]).contains("does not exist"));
}

#[test]
fn pause_resume_list_and_events() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("pause");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    moat.ok(&["pause", &id]);
    assert_eq!(moat.status(&id), "paused");
    assert!(moat.fails(&["pause", &id]).contains("paused"));
    moat.ok(&["resume", &id]);
    assert_eq!(moat.status(&id), "running");
    assert!(moat.fails(&["resume", &id]).contains("not paused"));
    let list: Value = serde_json::from_str(&moat.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(moat.ok(&["list", "-q"]).trim(), id);
    assert!(moat.ok(&["list"]).contains("running"));
    let ev: Value = serde_json::from_str(&moat.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["data"]["pids"]["current"], 1);
    assert!(ev["data"]["memory"]["usage"].as_u64().unwrap() > 0);
    let table = moat.ok(&["ps", &id]);
    assert!(table.contains("sleep 1000"), "{table}");
    moat.ok(&["delete", "-f", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    let moat = Moat::new();
    let mut b = Bundle::busybox(&["true"]);
    let log = b.path().join("hooks.log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read s; echo {name} \"$s\" >> {}", log.display())]});
    // startContainer runs inside the container: its path and output are the container's
    let start = json!({"path": "/bin/sh", "args": ["sh", "-c", "read s; echo startContainer >> /hooks.log"]});
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        s["hooks"] = json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "startContainer": [start],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
    });
    let id = unique_id("hooks");
    let (code, _, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(order, ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]);
    for l in text.lines() {
        let st: Value = serde_json::from_str(l.split_once(' ').unwrap().1).unwrap();
        assert_eq!(st["id"], id.as_str());
    }
    assert_eq!(std::fs::read_to_string(b.rootfs().join("hooks.log")).unwrap(), "startContainer\n");
    assert_no_leaks(&moat, &id, b.path());

    // a failing createRuntime hook fails create and leaves nothing behind
    b.edit(|s| s["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]}));
    let id = unique_id("badhook");
    let err = moat.fails(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(err.contains("createRuntime"), "{err}");
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn console_socket_receives_the_pty_master() {
    let moat = Moat::new();
    let mut b = Bundle::busybox(&["sh", "-c", "tty; echo hello-tty"]);
    b.edit(|s| s["process"]["terminal"] = true.into());
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = unique_id("tty");
    moat.ok(&["create", "--bundle", b.path().to_str().unwrap(), "--console-socket", sock.to_str().unwrap(), &id]);
    let (conn, _) = listener.accept().unwrap();
    let master = moat_e2e::recv_with_fds(conn.as_fd()).1.pop().expect("no fd on the console socket");
    moat.ok(&["start", &id]);
    let mut out = String::new();
    let mut f = std::fs::File::from(master);
    let _ = std::io::Read::read_to_string(&mut f, &mut out);
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("hello-tty"), "{out:?}");
    moat.ok(&["delete", "-f", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

/// Runs a terminal container in the foreground under script(1), whose pty
/// is 20x90; `before` runs in script's shell first (backgrounded jobs may
/// resize the pty). Returns what the program printed.
fn run_in_script(platform: &str, script: &str, before: &str) -> String {
    let moat = Moat::new();
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.edit(|s| s["process"]["terminal"] = true.into());
    let id = unique_id("fgtty");
    let cmd = format!(
        "stty cols 90 rows 20; {before} {} --root {} --platform {platform} run --bundle {} {id}",
        moat_e2e::moat_bin().display(),
        moat.root().display(),
        b.path().display()
    );
    let out = std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    // script(1) turns its own stdin's EOF into a NUL the pty echoes as "^@"
    let text = String::from_utf8_lossy(&out.stdout).replace(['\0', '\r'], "").replace("^@", "");
    assert!(out.status.success(), "{platform}: {text}");
    assert_no_leaks(&moat, &id, b.path());
    text
}

#[test]
fn foreground_run_with_a_terminal_proxies_the_pty() {
    // the program must see the terminal's size from its first instruction
    for platform in ["native", "sentry"] {
        let text = run_in_script(platform, "tty; stty size", "");
        assert!(text.contains("/dev/pts/0\n20 90\n"), "{platform}: {text:?}");
    }
}

#[test]
fn foreground_terminal_follows_window_size_changes() {
    // resizing script's terminal sends moat SIGWINCH; moat resizes the container's pty
    // (after 1.5 s: a sentry sandbox on a loaded machine took more than 0.4 to start)
    for platform in ["native", "sentry"] {
        let text =
            run_in_script(platform, "stty size; sleep 3; stty size", "(sleep 1.5; stty cols 50 rows 10 </dev/tty) &");
        assert!(text.contains("20 90\n10 50\n"), "{platform}: {text:?}");
    }
}

#[test]
fn job_control_in_a_terminal_shell() {
    // an interactive shell's job control: a background job gets its own
    // process group (setpgid, TIOCSPGRP on the container's pty), jobs lists
    // it, and fg/kill reach it
    let script = "set -m; sleep 30 & jobs; kill %1; wait; echo after=$(jobs | wc -l); \
                  sleep 0.2 & fg %1; echo fg-done";
    for platform in ["native", "sentry"] {
        let text = run_in_script(platform, script, "");
        assert!(
            text.starts_with("[1]+") && text.contains("Running") && text.contains("sleep 30"),
            "{platform}: {text:?}"
        );
        assert!(text.contains("after=0\n") && text.contains("fg-done"), "{platform}: {text:?}");
    }
}

#[test]
fn update_kill_all_and_exec_into_a_created_container() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["sh", "-c", "sleep 1000 & sleep 1000"]);
    let id = unique_id("upd");
    moat.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    // exec works before start (runc allows it): the container's namespaces exist
    let out = moat.ok(&["exec", &id, "hostname"]);
    assert_eq!(out.trim(), "moat");
    moat.ok(&["start", &id]);
    // update: a new pids limit lands in the cgroup
    let res = b.path().join("res.json");
    std::fs::write(&res, r#"{"pids": {"limit": 77}}"#).unwrap();
    moat.ok(&["update", "--resources", res.to_str().unwrap(), &id]);
    let ev: Value = serde_json::from_str(&moat.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(ev["data"]["pids"]["limit"], 77);
    let bad = b.path().join("bad.json");
    std::fs::write(&bad, r#"{"pids": {"limit": "many"}}"#).unwrap();
    let err = moat.fails(&["update", "--resources", bad.to_str().unwrap(), &id]);
    assert!(err.contains("linux.resources.pids.limit"), "{err}");
    // kill --all reaches every process, not just init
    for _ in 0..100 {
        let pids: Vec<i32> = serde_json::from_str(&moat.ok(&["ps", "--format", "json", &id])).unwrap();
        if pids.len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    moat.ok(&["kill", "--all", &id, "KILL"]);
    assert_eq!(moat.wait_status(&id, "stopped"), "stopped");
    moat.ok(&["delete", &id]);
    assert_no_leaks(&moat, &id, b.path());
}
