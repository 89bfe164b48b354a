//! Each supported config.json field, checked from inside the container.

use moat_e2e::{assert_no_leaks, run_fg, sh, unique_id, Bundle, Moat};
use serde_json::{json, Value};

fn ns_without(s: &mut Value, t: &str) {
    s["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != t);
}

#[test]
fn hostname_domainname_env_cwd_umask() {
    let out = sh("hostname; cat /proc/sys/kernel/domainname; echo $GREETING; pwd; umask", |s| {
        s["hostname"] = "box".into();
        s["domainname"] = "example.test".into();
        s["process"]["env"] = json!(["PATH=/bin", "GREETING=hi"]);
        s["process"]["cwd"] = "/tmp".into();
        s["process"]["user"]["umask"] = 0o027.into();
    });
    assert_eq!(out, "box\nexample.test\nhi\n/tmp\n0027\n");
}

#[test]
fn user_groups_and_capabilities() {
    let out = sh("id; grep -E '^Cap(Eff|Bnd)' /proc/self/status; grep NoNewPrivs /proc/self/status", |s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 100, "additionalGids": [10, 20]});
        s["process"]["noNewPrivileges"] = true.into();
    });
    assert!(out.starts_with("uid=1000 gid=100 groups=10,20"), "{out}");
    // the template's three capabilities: AUDIT_WRITE(29) KILL(5) NET_BIND_SERVICE(10)
    assert!(out.contains("CapBnd:\t0000000020000420"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    let out = sh("grep -E '^CapEff' /proc/self/status", |s| {
        s["process"]["capabilities"] =
            json!({"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]});
    });
    assert_eq!(out, "CapEff:\t0000000000000001\n");
}

#[test]
fn rlimits_and_oom_score_adj() {
    let out = sh("ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj", |s| {
        s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]);
        s["process"]["oomScoreAdj"] = 500.into();
    });
    assert_eq!(out, "321\n654\n500\n");
}

#[test]
fn readonly_root_masked_and_readonly_paths() {
    let out = sh_with_secrets(
        "touch /x 2>/dev/null && echo root-rw || echo root-ro; \
         wc -c < /etc/secret; ls /etc/secrets | wc -l; \
         echo 1 > /proc/sys/kernel/shmmax 2>/dev/null && echo sys-rw || echo sys-ro; \
         touch /tmp/ok && echo tmp-rw",
        |s| {
            s["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
            s["linux"]["maskedPaths"].as_array_mut().unwrap().extend([json!("/etc/secret"), json!("/etc/secrets")]);
        },
    );
    assert_eq!(out, "root-ro\n0\n0\nsys-ro\ntmp-rw\n");
    let out = sh("touch /x && echo root-rw", |s| s["root"]["readonly"] = false.into());
    assert_eq!(out, "root-rw\n");
}

/// Like `sh`, with /etc/secret and /etc/secrets/key in the rootfs.
fn sh_with_secrets(script: &str, edit: impl FnOnce(&mut Value)) -> String {
    let moat = Moat::new();
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    std::fs::write(b.rootfs().join("etc/secret"), "top secret\n").unwrap();
    std::fs::create_dir(b.rootfs().join("etc/secrets")).unwrap();
    std::fs::write(b.rootfs().join("etc/secrets/key"), "k\n").unwrap();
    b.edit(edit);
    let id = unique_id("masked");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    assert_no_leaks(&moat, &id, b.path());
    out
}

#[test]
fn mounts_bind_tmpfs_and_options() {
    let moat = Moat::new();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "cat /data/hello; touch /data/new 2>/dev/null && echo data-rw || echo data-ro; \
         grep ' /scratch ' /proc/mounts; grep -c mqueue /proc/mounts",
    ]);
    let data = b.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("hello"), "hello from the host\n").unwrap();
    b.edit(|s| {
        let m = s["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "ro"]}));
        m.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "noexec", "nosuid"]}));
    });
    let id = unique_id("mounts");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello from the host");
    assert_eq!(lines[1], "data-ro");
    assert!(lines[2].contains("tmpfs") && lines[2].contains("size=1024k") && lines[2].contains("noexec"), "{out}");
    assert_eq!(lines[3], "1");
    assert!(!data.join("new").exists());
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn devices_and_default_dev() {
    let out = sh("ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/fuse | awk '{print $1, $5 $6}'; head -c 3 /dev/zero | wc -c", |s| {
        s["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 0, "gid": 0}]);
        s["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]);
    });
    assert!(out.contains("crw-r-----") && out.contains("10,229"), "{out}");
    assert!(out.contains("1,3") && out.contains("5,0"), "{out}");
    assert!(out.ends_with("3\n"), "{out}");
}

#[test]
fn sysctl_in_own_network_namespace() {
    let host = |k: &str| std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap();
    let before = (host("net/ipv4/ip_forward"), host("kernel/shmmni"));
    let out = sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni", |s| {
        s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
        s["linux"]["readonlyPaths"] = json!([]);
    });
    assert_eq!(out, "1\n1234\n");
    assert_eq!((host("net/ipv4/ip_forward"), host("kernel/shmmni")), before, "the host's values changed");
}

#[test]
fn cgroup_limits_apply() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("limits");
    let mut b = b;
    let cg = format!("/moat-e2e/{id}");
    b.edit(|s| {
        s["linux"]["cgroupsPath"] = cg.clone().into();
        s["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        s["linux"]["resources"]["pids"] = json!({"limit": 42});
        s["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
    });
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let read = |p: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{p}")).unwrap_or_default().trim().to_string();
    assert_eq!(read(&format!("memory{cg}/memory.limit_in_bytes")), (64u64 << 20).to_string());
    assert_eq!(read(&format!("pids{cg}/pids.max")), "42");
    assert_eq!(read(&format!("cpu{cg}/cpu.shares")), "512");
    assert_eq!(read(&format!("cpu{cg}/cpu.cfs_quota_us")), "50000");
    // the pids limit holds inside
    let out = moat.run(&["exec", &id, "sh", "-c", "for i in $(seq 60); do sleep 5 & done 2>&1 | grep -c 'Resource'"]);
    assert!(String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().unwrap_or(0) > 0, "pids.max not enforced");
    moat.ok(&["delete", "-f", &id]);
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/pids{cg}")).exists(), "cgroup left behind");
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn user_namespace_with_mappings() {
    let out = sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u /bin/busybox", |s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // the rootfs belongs to host root, which is unmapped: read-only works
        ns_without(s, "cgroup");
        s["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup" && m["type"] != "sysfs");
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    assert_eq!(lines[2], "0");
    assert_eq!(lines[3], "65534", "host root shows as the overflow uid");
}

#[test]
fn join_a_network_namespace_by_path() {
    let name = unique_id("netns");
    let ok = std::process::Command::new("ip").args(["netns", "add", &name]).status().unwrap();
    assert!(ok.success());
    let path = format!("/var/run/netns/{name}");
    let ino = std::os::linux::fs::MetadataExt::st_ino(&std::fs::metadata(&path).unwrap());
    let out = sh("readlink /proc/self/ns/net", |s| {
        for n in s["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = path.clone().into();
            }
        }
    });
    std::process::Command::new("ip").args(["netns", "del", &name]).status().unwrap();
    assert_eq!(out, format!("net:[{ino}]\n"));
}

#[test]
fn seccomp_profile_denies_and_allows() {
    let out = sh("mkdir /tmp/d 2>&1 || true; echo alive", |s| {
        s["root"]["readonly"] = false.into();
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.ends_with("alive\n"));
}

#[test]
fn no_pid_namespace_shares_host_pids() {
    let out = sh("echo $$; test -d /proc/1 && echo has-1", |s| ns_without(s, "pid"));
    let pid: u32 = out.lines().next().unwrap().parse().unwrap();
    assert!(pid > 1, "{out}");
}

#[test]
fn preserve_fds_and_listen_fds() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["sh", "-c", "cat <&3; echo $LISTEN_FDS"]);
    let id = unique_id("fds");
    let f = b.path().join("fd3");
    std::fs::write(&f, "via fd 3\n").unwrap();
    let file = std::fs::File::open(&f).unwrap();
    let mut cmd = moat.cmd(&["run", "--preserve-fds", "1", "--bundle", b.path().to_str().unwrap(), &id]);
    use std::os::fd::AsRawFd;
    let raw = file.as_raw_fd();
    // SAFETY: dup2 in the child before exec only touches its fd table.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = moat_e2e::output_via_files(cmd);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via fd 3\n\n", "{}", String::from_utf8_lossy(&out.stderr));
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn time_namespace_offsets() {
    let out = sh("cut -d. -f1 /proc/uptime", |s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
        s["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1000000, "nanosecs": 0}});
    });
    let up: u64 = out.trim().parse().unwrap();
    assert!(up >= 1_000_000, "uptime {up} lacks the boottime offset");
}

#[test]
fn cgroup_mount_shows_the_container_cgroup_as_root() {
    let out = sh("cat /proc/self/cgroup | grep -c ':/$'; ls /sys/fs/cgroup/pids/pids.max", |_| {});
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].parse::<u32>().unwrap() >= 8, "cgroup namespace root: {out}");
    assert_eq!(lines[1], "/sys/fs/cgroup/pids/pids.max");
}

#[test]
fn seccomp_notify_fd_goes_to_the_listener() {
    use std::os::fd::AsFd;
    // native: the sentry platform owns the notify listener itself (checked below)
    let mut moat = Moat::new();
    moat.global = vec!["--platform".into(), "native".into()];
    let mut b = Bundle::busybox(&["sh", "-c", "mkdir /tmp/x; echo done"]);
    let sock = b.path().join("seccomp.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "meta-42",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let id = unique_id("notify");
    let got = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (body, fds) = moat_e2e::recv_with_fds(conn.as_fd());
        let v: Value = serde_json::from_slice(&body).unwrap();
        // dropping the fds closes them: the notified call then fails with ENOSYS instead of hanging
        (v, fds.len())
    });
    moat.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let (v, nfds) = got.join().unwrap();
    assert_eq!(nfds, 1);
    assert_eq!(v["fds"], json!(["seccompFd"]));
    assert_eq!(v["metadata"], "meta-42");
    assert_eq!(v["state"]["id"], id.as_str());
    moat.ok(&["start", &id]);
    moat.ok(&["delete", "-f", &id]);
    assert_no_leaks(&moat, &id, b.path());

    moat.global = vec!["--platform".into(), "sentry".into()];
    let id = unique_id("notify-sentry");
    let err = moat.fails(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(err.contains("linux.seccomp: a notify profile"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn programs_do_not_inherit_ignored_sigpipe() {
    // Rust ignores SIGPIPE and an ignored signal survives execve: moat must undo it
    let out = sh("grep SigIgn /proc/self/status", |_| {});
    let mask = u64::from_str_radix(out.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE ignored: {out}");
}
