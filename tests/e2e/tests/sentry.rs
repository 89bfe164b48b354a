//! The sentry platform as it stands: the program runs under the Sentry's
//! filter, identity calls are served by the Sentry, dangerous calls are
//! denied, and the Sentry's lifetime follows the container's.

use moat_e2e::{assert_no_leaks, run_fg, unique_id, Bundle, Moat};

fn sentry() -> Moat {
    let mut m = Moat::new();
    m.global = vec!["--platform".into(), "sentry".into()];
    m
}

#[test]
fn identity_is_the_sandbox_kernel() {
    let moat = sentry();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "uname -r; dmesg | head -1; hostname; hostname changed; hostname; grep Seccomp: /proc/self/status; uptime",
    ]);
    b.edit(|s| {
        s["hostname"] = "sandboxed".into();
        // sethostname needs CAP_SYS_ADMIN, as on Linux
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set].as_array_mut().unwrap().push("CAP_SYS_ADMIN".into());
        }
    });
    let id = unique_id("ident");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("moat"), "release: {out}");
    assert!(lines[1].contains("Starting moat"), "dmesg: {out}");
    assert_eq!(&lines[2..4], ["sandboxed", "changed"]);
    assert_eq!(lines[4], "Seccomp:\t2");
    // sysinfo: the sandbox's own uptime, no host load
    assert!(lines[5].contains("up 0 min") && lines[5].contains("load average: 0.00, 0.00, 0.00"), "{out}");
    assert_ne!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(), "changed");
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn programs_run_and_dangerous_calls_are_denied() {
    let moat = sentry();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "seq 1 100 | grep 7 | wc -l > /tmp/n; cat /tmp/n; ip link show lo | grep -c LOOPBACK; \
         unshare -U true 2>/dev/null && echo unshare-escaped || echo unshare-denied; \
         nsenter -t 1 -m true 2>/dev/null && echo setns-escaped || echo setns-denied",
    ]);
    b.tmp().edit(|s| {
        // full capabilities: the Sentry's denials must hold even for a privileged program
        let all: Vec<String> =
            ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_NET_ADMIN"].map(String::from).to_vec();
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set] = all.clone().into();
        }
        for set in ["inheritable", "ambient"] {
            s["process"]["capabilities"][set] = serde_json::json!([]);
        }
        s["process"]["noNewPrivileges"] = false.into();
    });
    let id = unique_id("deny");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "19\n1\nunshare-denied\nsetns-denied\n", "ip uses a NETLINK_ROUTE raw socket");
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn exec_and_lifecycle_under_the_sentry() {
    let mut moat = sentry();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("sexec");
    moat.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    moat.ok(&["start", &id]);
    assert_eq!(moat.status(&id), "running");
    // exec finds the platform in the container's state; its process gets the filter too
    moat.global.clear();
    let out = moat.ok(&["exec", &id, "sh", "-c", "uname -r; grep Seccomp: /proc/self/status"]);
    assert!(out.starts_with("6.1.0-moat"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // the Sentry and its watchdog run in the container's cgroup; ps shows the container's processes only
    let shown: Vec<i32> = serde_json::from_str(&moat.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(shown.len(), 1, "init: {shown:?}");
    let pids = cgroup_pids(&id);
    // and, when the sandbox has a user namespace of its own, the Sentry's replayer
    let state: serde_json::Value = serde_json::from_str(&moat.ok(&["state", &id])).unwrap();
    let userns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/user")).unwrap();
    let own_userns = userns(&state["pid"].to_string()) != userns("self");
    assert_eq!(pids.len(), 3 + own_userns as usize, "init, the Sentry, its watchdog (and replayer): {pids:?}");
    let ev: serde_json::Value = serde_json::from_str(&moat.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(ev["data"]["pids"]["current"], 1, "{ev}");
    // the Sentry is confined: seccomp, no_new_privs, CAP_SYS_PTRACE only, an empty root
    let sentry_pid = find_sentry(&pids);
    // it lives in the sandbox's pid namespace (the pids it can name, with its
    // CAP_SYS_PTRACE, are the sandbox's), hidden from the sandbox's /proc
    let ns = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).unwrap();
    assert_eq!(ns(sentry_pid), ns(shown[0]), "the Sentry is outside the sandbox's pid namespace");
    let status = std::fs::read_to_string(format!("/proc/{sentry_pid}/status")).unwrap();
    let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:")).unwrap();
    let inner = nspid.split_whitespace().last().unwrap().to_string();
    assert_eq!(nspid.split_whitespace().count(), 2, "{nspid}");
    let inside = moat.ok(&["exec", &id, "ls", "/proc"]);
    let pids: Vec<&str> = inside.split_whitespace().filter(|n| n.bytes().all(|b| b.is_ascii_digit())).collect();
    assert!(pids.contains(&"1") && !pids.contains(&inner.as_str()), "the Sentry ({inner}) shows: {pids:?}");
    let comms = moat.ok(&["exec", &id, "ps", "-o", "comm"]);
    assert!(!comms.contains("moat"), "{comms}");
    let st = std::fs::read_to_string(format!("/proc/{sentry_pid}/status")).unwrap();
    assert!(st.contains("Seccomp:\t2") && st.contains("NoNewPrivs:\t1"), "{st}");
    assert!(st.contains("CapEff:\t0000000000080002"), "{st}");
    // its root is empty; its notify thread alone (the main one) is in the
    // container's tree, where it makes the callers' changes
    let names = |dir: String| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(names(format!("/proc/{sentry_pid}/root")), names(b.rootfs().display().to_string()));
    let tasks = names(format!("/proc/{sentry_pid}/task"));
    assert!(tasks.len() > 1, "{tasks:?}");
    for t in tasks.iter().filter(|t| **t != sentry_pid.to_string()) {
        assert!(names(format!("/proc/{sentry_pid}/task/{t}/root")).is_empty(), "the Sentry's thread {t} sees files");
    }
    // and it holds nothing of create's: no state dir, no bundle, no channel
    let mut pipes = 0;
    for e in std::fs::read_dir(format!("/proc/{sentry_pid}/fd")).unwrap().flatten() {
        let target = std::fs::read_link(e.path()).unwrap_or_default().display().to_string();
        // one pipe, written only: its panic report, to the watchdog
        if target.starts_with("pipe:") {
            let info = std::fs::read_to_string(format!("/proc/{sentry_pid}/fdinfo/{}", e.file_name().display()));
            let flags =
                info.unwrap_or_default().lines().find_map(|l| l.strip_prefix("flags:").map(|f| f.trim().to_owned()));
            let write_only = flags.and_then(|f| u32::from_str_radix(&f, 8).ok()).is_some_and(|f| f & 3 == 1);
            pipes += 1;
            assert!(write_only && pipes == 1, "the Sentry holds fd {:?} -> {target}", e.file_name());
            continue;
        }
        // /dev/fuse: the connection of the sandbox's /proc, which it serves
        let ok = target == "/dev/null"
            || target == "/dev/fuse"
            // the container's memory usage, read-only, for /proc/meminfo
            || target.ends_with("/memory.usage_in_bytes")
            || target.ends_with("/memory.current")
            || target == "/"
            // the container's real tree (its root, and the mount namespace holding it)
            || target.starts_with("mnt:[")
            || target.starts_with("anon_inode:")
            || target.starts_with("socket:");
        assert!(ok, "the Sentry holds fd {:?} -> {target}", e.file_name());
    }
    moat.ok(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

/// Every process in the container's pids cgroup (moat's helpers too).
fn cgroup_pids(id: &str) -> Vec<i32> {
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/moat/{id}/cgroup.procs")).unwrap();
    procs.lines().map(|l| l.parse().unwrap()).collect()
}

/// The Sentry among a container's processes: the one holding CAP_SYS_PTRACE alone.
fn find_sentry(pids: &[i32]) -> i32 {
    *pids
        .iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .unwrap_or_default()
                .contains("CapEff:\t0000000000080002")
        })
        .expect("no confined sentry among the container's processes")
}

#[test]
fn killing_the_sentry_ends_the_container() {
    let mut moat = sentry();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let log = b.path().join("moat.log");
    moat.global.extend(["--log".to_string(), log.display().to_string(), "--log-format".into(), "json".into()]);
    let id = unique_id("skill");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let sentry_pid = find_sentry(&cgroup_pids(&id));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(sentry_pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(moat.wait_status(&id, "stopped"), "stopped", "the container outlived its Sentry");
    let why = std::fs::read_to_string(moat.root().join(&id).join("sentry.exit")).unwrap();
    assert!(why.contains("SIGKILL"), "{why}");
    let st: serde_json::Value = serde_json::from_str(&moat.ok(&["state", &id])).unwrap();
    assert!(st["annotations"]["run.moat.sentry.exit"].as_str().unwrap_or("").contains("SIGKILL"), "{st}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.lines().any(|l| l.contains("\"level\":\"error\"") && l.contains("sentry was killed")), "{text}");
    moat.ok(&["delete", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn strace_logs_served_calls_and_denials_once() {
    let mut moat = sentry();
    let b = Bundle::busybox(&["sh", "-c", "uname -r >/dev/null; mount -t tmpfs x /mnt; mount -t tmpfs x /mnt; true"]);
    let log = b.path().join("strace.log");
    moat.global.extend(["--strace".to_string(), "--log".into(), log.display().to_string()]);
    let id = unique_id("strace");
    let (code, _, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().any(|l| l.contains("uname(0x") && l.contains(") = 0")), "{text}");
    // paths and flags decoded, as strace shows them
    let open = r#"openat(AT_FDCWD, \"/dev/null\", O_WRONLY|O_CREAT|O_TRUNC, 0o666) = (host)"#;
    assert!(text.lines().any(|l| l.contains(open)), "{text}");
    assert!(text.lines().any(|l| l.contains("mount(0x") && l.contains("EPERM")), "{text}");
    let warnings = text.lines().filter(|l| l.contains("level=warn") && l.contains("denied mount")).count();
    assert_eq!(warnings, 1, "a denial is logged once per name: {text}");
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn served_calls_reach_stubs_that_changed_uid_or_live_in_a_user_namespace() {
    // the Sentry writes uname's answer into the memory of a non-root, non-dumpable stub
    let moat = sentry();
    let mut b = Bundle::busybox(&["uname", "-r"]);
    b.edit(|s| s["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000}));
    let id = unique_id("uid");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("moat"), "{out}");
    assert_no_leaks(&moat, &id, b.path());

    let mut b = Bundle::busybox(&["uname", "-r"]);
    b.edit(|s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(serde_json::json!({"type": "user"}));
        s["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["linux"]["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "cgroup");
        s["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup" && m["type"] != "sysfs");
    });
    let id = unique_id("userns");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("moat"), "{out}");
    assert_no_leaks(&moat, &id, b.path());

    // in a user namespace the sandbox's /proc shows the owners it sees:
    // container root owns its processes' files and reads its own environ
    b.edit(|s| {
        s["process"]["args"] = serde_json::json!(["sh", "-c", "stat -c %u /proc/self/environ; cat /proc/self/environ | tr '\\0' '\\n' | grep -c PATH; ls /proc/self/fd | wc -l"]);
    });
    let id = unique_id("userns-proc");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["0", "1"], "{out}");
    assert!(lines[2].trim().parse::<u32>().unwrap() >= 3, "{out}");
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn a_blocking_served_call_stalls_no_one_and_ends_with_its_caller() {
    let moat = sentry();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.tmp();
    let id = unique_id("block");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let sentry_pid = find_sentry(&cgroup_pids(&id));
    let threads = || std::fs::read_dir(format!("/proc/{sentry_pid}/task")).unwrap().count();
    // the loop and the FUSE servers of /proc and /sys
    let idle = threads();
    // reopening a FIFO by name waits for a writer: on a worker of the Sentry
    let script = r#"
        mkfifo /tmp/f
        (sleep 0.3; echo first > /tmp/f) &
        exec 3</tmp/f
        cat <&3
        ( cat /dev/fd/3 > /tmp/got ) &
        reader=$!
        sleep 0.3
        echo served=$(uname -r | cut -c1-5)
        echo second > /tmp/f
        wait $reader
        echo got=$(cat /tmp/got)
        ( cat /dev/fd/3 ) &
        r2=$!
        sleep 0.3
        kill $r2
        wait $r2
        echo killed
    "#;
    let out = moat.ok(&["exec", &id, "sh", "-c", script]);
    assert_eq!(out, "first\nserved=6.1.0\ngot=second\nkilled\n", "the Sentry stalled on the blocked open");
    // the worker of the killed reader was interrupted: the Sentry is back to its idle threads
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while threads() > idle && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(threads(), idle, "a worker outlived its caller");
    moat.ok(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn the_sentry_forgets_processes_that_ended() {
    // every process that reads its own /proc leaves nodes in the Sentry's
    // /proc; once it ends they must go, or a busy sandbox grows the Sentry
    // without bound
    let moat = sentry();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("forget");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let sentry_pid = find_sentry(&cgroup_pids(&id));
    let rss = || {
        let st = std::fs::read_to_string(format!("/proc/{sentry_pid}/status")).unwrap();
        let kb = st.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
        kb.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap()
    };
    let loop_ = "i=0; while [ $i -lt 4000 ]; do cat /proc/self/stat > /dev/null; i=$((i+1)); done; echo ok";
    moat.ok(&["exec", &id, "sh", "-c", loop_]);
    let before = rss();
    moat.ok(&["exec", &id, "sh", "-c", &loop_.replace("4000", "8000")]);
    let after = rss();
    // without forgetting: ~350 bytes a process, 2.7 MiB here
    assert!(after < before + 1024, "the Sentry grew from {before} to {after} kB over 8000 processes");
    moat.ok(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn a_broken_fuse_device_is_a_clear_error_and_leaves_nothing() {
    // in a mount namespace of the test's own, /dev/fuse is not a FUSE device:
    // the Sentry cannot mount the sandbox's /proc; create must say so in a
    // line, kill what it started (the Sentry in init's pid namespace too) and
    // not hang reaping it
    let moat = sentry();
    let b = Bundle::busybox(&["true"]);
    for (bind, why) in [
        ("mount --bind /dev/null /dev/fuse", "could not make the sandbox's /proc and /sys"),
        ("mount -t tmpfs none /dev && touch /dev/null", "cannot open /dev/fuse"),
    ] {
        let id = unique_id("nofuse");
        let cmd = format!(
            "{bind} && exec {} --root {} --platform sentry run --bundle {} {id}",
            moat_e2e::moat_bin().display(),
            moat.root().display(),
            b.path().display()
        );
        let out = std::process::Command::new("unshare").args(["-m", "sh", "-c", &cmd]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(why), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert_no_leaks(&moat, &id, b.path());
    }
}

#[test]
fn a_long_shell_loop_does_not_run_the_sentry_out_of_fds() {
    // the Sentry keeps a pidfd per thread it remembers; started by a caller
    // with the usual soft limit of 1024 fds, 1500 short-lived processes that
    // each change the tree must not leave it unable to open anything
    let moat = sentry();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 1500 ]; do touch /f; i=$((i+1)); done; touch /g && echo ok",
    ]);
    b.edit(|s| s["root"]["readonly"] = false.into());
    let id = unique_id("fds");
    let out = std::process::Command::new("prlimit")
        .arg("--nofile=1024:")
        .arg(moat_e2e::moat_bin())
        .arg("--root")
        .arg(moat.root())
        .args(["--platform", "sentry", "run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!((out.status.code(), stdout.as_ref()), (Some(0), "ok\n"), "{stderr}");
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    assert_no_leaks(&moat, &id, b.path());
}
