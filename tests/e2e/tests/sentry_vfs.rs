//! The Sentry's file tree: every call that changes the container's files is
//! made by the Sentry in the container's real tree, as the caller (its
//! ids, groups, file capabilities and umask), and the stubs themselves only
//! hold a read-only replica. Changes land where runc would put them (the
//! bundle's rootfs, the spec's bind mounts), symlinks and `..` never leave
//! the container's root, and a caller gets exactly its own permissions.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use moat_e2e::{assert_no_leaks, run_fg, set_caps, unique_id, Bundle, Moat, CONTAINERD_CAPS};
use serde_json::json;

fn sentry() -> Moat {
    let mut m = Moat::new();
    m.global = vec!["--platform".into(), "sentry".into()];
    m
}

/// A busybox bundle running `script` with a writable rootfs and `data`
/// bound read-write on /data.
fn bundle(script: &str, data: &std::path::Path, caps: &[&str]) -> Bundle {
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        set_caps(s, caps);
    });
    b.mount(json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]}));
    b
}

fn run_ok(moat: &Moat, b: &Bundle, name: &str) -> String {
    let id = unique_id(name);
    let (code, out, err) = run_fg(moat, b, &id);
    assert_eq!(code, 0, "{err}\nstdout: {out}");
    assert_no_leaks(moat, &id, b.path());
    out
}

#[test]
fn changes_land_in_the_bundle_as_the_caller_made_them() {
    let data = tempfile::tempdir().unwrap();
    // names unique to this run: an escape would leave them in the host's /etc
    let tag = unique_id("vfs");
    let script = format!(
        r#"set -e
        echo one > /made
        mkdir -p /d/e && mv /made /d/e/moved
        ln -s /etc /d/etc-link && echo two > /d/etc-link/{tag}-via-link
        ln -s ../../../../../../../../etc /d/up && echo three > /d/up/{tag}-escape
        echo four > /d/up/../../../../tmp/../{tag}-dots
        umask 077 && echo five > /data/private && umask 022
        chown 1234:2345 /d/e/moved && chmod 640 /d/e/moved
        touch -d '2001-02-03 04:05:06' /d/e/moved
        mkfifo /d/fifo
        ln /d/e/moved /d/hard
        echo longer-text > /d/trunc && truncate -s 3 /d/trunc
        rm /d/etc-link
        rmdir /d/e 2>/dev/null || echo rmdir-refused
        [ -w /d ] && echo d-writable
        echo done"#
    );
    let b = bundle(&script, data.path(), CONTAINERD_CAPS);
    let out = run_ok(&sentry(), &b, "vfs");
    assert_eq!(out, "rmdir-refused\nd-writable\ndone\n");
    let root = b.rootfs();
    let moved = root.join("d/e/moved");
    let m = std::fs::metadata(&moved).unwrap();
    assert_eq!(std::fs::read_to_string(&moved).unwrap(), "one\n");
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777, m.nlink()), (1234, 2345, 0o640, 2));
    assert_eq!(m.mtime(), 981_173_106, "2001-02-03 04:05:06 UTC");
    assert_eq!(std::fs::read_to_string(root.join("d/trunc")).unwrap(), "lon");
    assert!(std::fs::metadata(root.join("d/fifo")).unwrap().file_type().is_fifo());
    assert!(std::fs::symlink_metadata(root.join("d/etc-link")).is_err());
    // symlinks and .. stop at the container's root
    assert_eq!(std::fs::read_to_string(root.join(format!("etc/{tag}-via-link"))).unwrap(), "two\n");
    assert_eq!(std::fs::read_to_string(root.join(format!("etc/{tag}-escape"))).unwrap(), "three\n");
    assert_eq!(std::fs::read_to_string(root.join(format!("{tag}-dots"))).unwrap(), "four\n");
    for name in ["via-link", "escape"] {
        assert!(!std::path::Path::new(&format!("/etc/{tag}-{name}")).exists(), "a write escaped to the host");
    }
    assert!(!std::path::Path::new(&format!("/{tag}-dots")).exists(), "a write escaped to the host");
    // the caller's umask, on the bind mount's host directory
    let p = std::fs::metadata(data.path().join("private")).unwrap();
    assert_eq!(p.mode() & 0o777, 0o600);
}

/// On Linux a path may run through the caller's own procfs magic links
/// (/proc/self/cwd, root, fd/N). The sandbox's /proc is the Sentry's and has
/// none, so the Sentry makes the jump itself, to the very directory.
#[test]
fn writes_through_the_callers_own_magic_links_land_in_the_tree() {
    let data = tempfile::tempdir().unwrap();
    let tag = unique_id("magic");
    let script = format!(
        r#"set -e
        mkdir -p /w/sub && cd /w
        echo a > /proc/self/cwd/via-cwd
        mkdir /proc/self/cwd/dir-via-cwd
        echo b > /proc/self/root/w/via-root
        exec 3</w/sub
        echo c > /proc/self/fd/3/via-fd
        touch /proc/self/fd/3/touched
        ln -s target /proc/self/fd/3/link
        chmod 600 /proc/self/cwd/via-cwd
        mv /proc/self/cwd/via-root /proc/self/cwd/moved
        echo f > /proc/$$/cwd/via-pid
        rm /proc/self/fd/3/touched
        echo d > /proc/self/fd/3/../../../../../../{tag}-dots
        cd /data && echo e > /proc/self/cwd/on-bind
        ln -s /dev/stdout /w/log && ln -s ../log /w/sub/log2 && (echo via-symlink >> /w/sub/log2) | cat
        echo done"#
    );
    let b = bundle(&script, data.path(), CONTAINERD_CAPS);
    let out = run_ok(&sentry(), &b, "magic");
    // a log file linked to /dev/stdout (as the nginx image ships its logs)
    assert_eq!(out, "via-symlink\ndone\n");
    let w = b.rootfs().join("w");
    let read = |p: &str| std::fs::read_to_string(w.join(p)).unwrap();
    assert_eq!((read("via-cwd"), read("moved"), read("sub/via-fd")), ("a\n".into(), "b\n".into(), "c\n".into()));
    assert!(w.join("dir-via-cwd").is_dir());
    assert_eq!(read("via-pid"), "f\n");
    assert_eq!(std::fs::read_link(w.join("sub/link")).unwrap(), std::path::Path::new("target"));
    assert_eq!(std::fs::metadata(w.join("via-cwd")).unwrap().mode() & 0o777, 0o600);
    assert!(!w.join("sub/touched").exists() && !w.join("via-root").exists());
    assert_eq!(std::fs::read_to_string(b.rootfs().join(format!("{tag}-dots"))).unwrap(), "d\n");
    assert!(!std::path::Path::new(&format!("/{tag}-dots")).exists(), "a write escaped to the host");
    assert_eq!(std::fs::read_to_string(data.path().join("on-bind")).unwrap(), "e\n");
}

/// A file made with O_TMPFILE (in the tree, by the Sentry) gets its name
/// through /proc/self/fd/N, as on Linux.
#[test]
fn an_unnamed_temporary_file_gets_a_name_through_its_fd() {
    let data = tempfile::tempdir().unwrap();
    let mut b = bundle("/tmpfile", data.path(), CONTAINERD_CAPS);
    b.edit(|s| s["process"]["args"] = json!(["/tmpfile"]));
    build_probe("tmpfile", &b.rootfs().join("tmpfile"));
    std::fs::set_permissions(b.rootfs().join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run_ok(&sentry(), &b, "vfstmp");
    assert_eq!(
        out,
        "linked ok\nagain File exists\nexcl No such file or directory\nuser-closed Permission denied\nuser-tmp ok\n\
         user-roots Operation not permitted\n"
    );
    let linked = data.path().join("linked");
    assert_eq!(std::fs::read_to_string(&linked).unwrap(), "tmp\n");
    assert_eq!(std::fs::metadata(&linked).unwrap().mode() & 0o7777, 0o640);
    assert!(!b.rootfs().join("closed/x").exists() && !b.rootfs().join("tmp/roots").exists());
    let mine = b.rootfs().join("tmp/mine");
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "tmp\n");
    assert_eq!(std::fs::metadata(&mine).unwrap().uid(), 1000);
}

/// With a user namespace (container root is host uid 100000), changes are
/// made inside that namespace, by the Sentry's replayer: the caller's
/// capabilities reach only files whose owners the namespace maps, and its
/// ids are its own numbers. The stubs still hold a read-only replica.
#[test]
fn in_a_user_namespace_changes_are_made_inside_it() {
    const BASE: u32 = 100_000;
    let data = tempfile::tempdir().unwrap();
    let script = r#"
        echo a > /w/made && echo made
        chown 1000:1000 /w/made && echo chowned
        mkdir /w/d && echo b > /w/d/f && ln -s f /w/d/l && echo tree
        stat -c '%u %g' /w/made /w/d/f
        echo x > /etc/moat-userns 2>/dev/null || echo etc-refused
        chmod 777 /etc/passwd 2>/dev/null || echo chmod-refused
        chown 0 /etc/hostname 2>/dev/null || echo chown-refused
        rm /etc/passwd 2>/dev/null || echo rm-refused
        echo c > /data/on-bind && echo bind
        grep ' / / ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1
        "#;
    let mut b = bundle(script, data.path(), CONTAINERD_CAPS);
    b.edit(|s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        for m in ["uidMappings", "gidMappings"] {
            s["linux"][m] = json!([{"containerID": 0, "hostID": BASE, "size": 65536}]);
        }
        s["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "cgroup");
        s["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup" && m["type"] != "sysfs");
    });
    // the mount point and a directory of the container's own (inside, root
    // may not write the host's directories: they are not its)
    let w = b.rootfs().join("w");
    std::fs::create_dir(&w).unwrap();
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    for dir in [w.as_path(), data.path()] {
        std::os::unix::fs::chown(dir, Some(BASE), Some(BASE)).unwrap();
    }
    let out = run_ok(&sentry(), &b, "vfsuserns");
    assert_eq!(
        out,
        "made\nchowned\ntree\n1000 1000\n0 0\netc-refused\nchmod-refused\nchown-refused\nrm-refused\nbind\nrw\n"
    );
    let owner = |p: &std::path::Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    // on disk: the host ids the namespace maps the caller's to
    assert_eq!(owner(&w.join("made")), (BASE + 1000, BASE + 1000));
    assert_eq!(owner(&w.join("d/f")), (BASE, BASE));
    assert_eq!(owner(&w.join("d/l")), (BASE, BASE));
    assert_eq!(owner(&data.path().join("on-bind")), (BASE, BASE));
    // host root's files stay out of reach, capabilities or not
    assert!(!b.rootfs().join("etc/moat-userns").exists());
    let passwd = std::fs::metadata(b.rootfs().join("etc/passwd")).unwrap();
    assert_eq!((passwd.uid(), passwd.mode() & 0o777), (0, 0o644));

    // seen from the host: the stubs hold a read-only replica, and the
    // replayer is root of the sandbox's user namespace (host uid 100000),
    // hidden from `moat ps` as the Sentry is
    b.edit(|s| s["process"]["args"] = json!(["sleep", "1000"]));
    let moat = sentry();
    let id = unique_id("vfsuserns");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let state: serde_json::Value = serde_json::from_str(&moat.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = info.lines().find(|l| l.split(' ').nth(4) == Some("/")).unwrap();
    assert!(root.split(' ').nth(5).unwrap().split(',').any(|o| o == "ro"), "{root}");
    let userns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let in_ns: Vec<(String, String)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path().join("ns/user")).is_ok_and(|n| n == userns))
        .filter_map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let uid = status.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            Some((comm.trim().to_string(), uid))
        })
        .collect();
    let replayer: Vec<&(String, String)> = in_ns.iter().filter(|(comm, _)| comm == "moat").collect();
    assert_eq!(replayer.len(), 1, "{in_ns:?}");
    assert_eq!(replayer[0].1.split_whitespace().collect::<Vec<_>>(), ["Uid:", "100000", "100000", "100000", "100000"]);
    let ps = moat.ok(&["ps", &id]);
    assert_eq!(ps.lines().count(), 2, "only the container's sleep: {ps}");
    moat.ok(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn a_user_gets_its_own_permissions_and_no_more() {
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let grp = data.path().join("grp");
    std::fs::create_dir(&grp).unwrap();
    std::fs::set_permissions(&grp, std::fs::Permissions::from_mode(0o770)).unwrap();
    nix::unistd::chown(&grp, Some(nix::unistd::Uid::from_raw(0)), Some(nix::unistd::Gid::from_raw(2000))).unwrap();
    std::fs::write(data.path().join("roots"), "secret").unwrap();
    std::fs::set_permissions(data.path().join("roots"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let script = r#"
        touch /etc/nope 2>/dev/null && echo etc-written || echo etc-refused
        echo x >> /data/roots 2>/dev/null && echo roots-written || echo roots-refused
        mkdir /bin/nope 2>/dev/null && echo bin-written || echo bin-refused
        echo mine > /data/mine && echo mine-ok
        echo g > /data/grp/g && echo group-ok
        [ -w /etc ] && echo etc-w || echo etc-not-w
        [ -w /data ] && echo data-w || echo data-not-w
        chown 0 /data/mine 2>/dev/null && echo chown-done || echo chown-refused
    "#;
    let mut b = bundle(script, data.path(), &[]);
    b.edit(|s| s["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]}));
    let out = run_ok(&sentry(), &b, "vfsuser");
    assert_eq!(out, "etc-refused\nroots-refused\nbin-refused\nmine-ok\ngroup-ok\netc-not-w\ndata-w\nchown-refused\n");
    let mine = std::fs::metadata(data.path().join("mine")).unwrap();
    assert_eq!((mine.uid(), mine.gid()), (1000, 1000));
    assert_eq!(std::fs::metadata(grp.join("g")).unwrap().uid(), 1000);
    assert_eq!(std::fs::read_to_string(data.path().join("roots")).unwrap(), "secret");
    assert!(!b.rootfs().join("etc/nope").exists() && !b.rootfs().join("bin/nope").exists());
}

#[test]
fn the_stubs_own_view_is_a_read_only_replica() {
    let data = tempfile::tempdir().unwrap();
    let moat = sentry();
    let b = bundle("echo in > /inside && sleep 1000", data.path(), CONTAINERD_CAPS);
    let id = unique_id("replica");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let pid: serde_json::Value = serde_json::from_str(&moat.ok(&["state", &id])).unwrap();
    let pid = pid["pid"].as_i64().unwrap();
    // the program's own writes go through the Sentry, into the bundle
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.rootfs().join("inside").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(b.rootfs().join("inside")).unwrap(), "in\n");
    // every mount the stubs see is read-only but the Sentry's /proc
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    for line in info.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (point, opts) = (f[4], f[5]);
        let ro = opts.split(',').any(|o| o == "ro");
        // (and /dev/mqueue: the host makes a queue as the caller, charged to it)
        if point == "/proc" || point == "/dev/mqueue" {
            assert!(!ro, "{line}");
        } else {
            assert!(ro, "a writable mount in the stubs' view: {line}");
        }
    }
    // yet the container is shown its own mounts' flags: the real tree's
    let inside = moat.ok(&["exec", &id, "cat", "/proc/self/mountinfo"]);
    for (point, want) in [("/", "rw"), ("/data", "rw"), ("/sys", "ro")] {
        let line = inside.lines().find(|l| l.split(' ').nth(4) == Some(point)).unwrap_or_else(|| panic!("{inside}"));
        let opts = line.split(' ').nth(5).unwrap();
        assert!(opts.split(',').any(|o| o == want), "{point} shows {opts}, not {want}");
    }
    // and a host process in that view cannot write either
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "--", "sh", "-c", "echo x > /data/through-the-replica"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"), "{out:?}");
    assert!(!data.path().join("through-the-replica").exists());
    moat.ok(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn a_chrooted_caller_changes_its_own_root() {
    let data = tempfile::tempdir().unwrap();
    let script = r#"set -e
        mkdir -p /jail/bin /jail/work && cp /bin/busybox /jail/bin/busybox
        chroot /jail /bin/busybox sh -c 'cd /work && /bin/busybox mkdir /made && /bin/busybox ln -s /made /abs \
            && echo x > /abs/file && echo y > relative && /bin/busybox ls /made'
        [ -e /made ] && echo outside || echo inside
        chroot /jail /bin/busybox readlink /proc/self/exe || echo no-proc-in-the-jail"#;
    let b = bundle(script, data.path(), CONTAINERD_CAPS);
    let out = run_ok(&sentry(), &b, "vfsjail");
    assert_eq!(out, "file\ninside\nno-proc-in-the-jail\n");
    let root = b.rootfs();
    assert_eq!(std::fs::read_to_string(root.join("jail/made/file")).unwrap(), "x\n");
    assert_eq!(std::fs::read_to_string(root.join("jail/work/relative")).unwrap(), "y\n");
    assert!(!root.join("made").exists());
}

#[test]
fn credential_changes_reach_the_sentry_at_once() {
    let data = tempfile::tempdir().unwrap();
    let mut b = bundle("/creds", data.path(), CONTAINERD_CAPS);
    b.edit(|s| s["process"]["args"] = json!(["/creds"]));
    build_probe("creds", &b.rootfs().join("creds"));
    std::fs::set_permissions(b.rootfs().join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run_ok(&sentry(), &b, "vfscreds");
    assert_eq!(
        out,
        "root-022 ok 644\nroot-077 ok 600\nroot-000 ok 666\nuser-etc Permission denied\nuser-tmp ok 666\n\
         user-rewrite Permission denied\n"
    );
    assert_eq!(std::fs::metadata(b.rootfs().join("tmp/creds-e")).unwrap().uid(), 1000);
}

/// Builds `probes/<name>.c`, statically, into `dest`.
fn build_probe(name: &str, dest: &std::path::Path) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("probes/{name}.c"));
    let out = std::process::Command::new("gcc").args(["-O2", "-static", "-o"]).arg(dest).arg(&src).output().unwrap();
    assert!(out.status.success(), "gcc: {}", String::from_utf8_lossy(&out.stderr));
}

/// A bundle running `args` as uid 1000 without capabilities (setuid
/// allowed), with probe `program` and a setuid-root probe `setuid`, each
/// built as (source name, name at the root).
fn user_with_setuid_probe(
    data: &std::path::Path,
    args: &[&str],
    program: (&str, &str),
    setuid: (&str, &str),
) -> Bundle {
    let mut b = bundle(args[0], data, &[]);
    b.edit(|s| {
        s["process"]["args"] = json!(args);
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        s["process"]["noNewPrivileges"] = false.into();
    });
    let root = b.rootfs();
    build_probe(program.0, &root.join(program.1));
    build_probe(setuid.0, &root.join(setuid.1));
    std::fs::set_permissions(root.join(setuid.1), std::fs::Permissions::from_mode(0o4755)).unwrap();
    b
}

#[test]
fn the_sentry_finds_nothing_again_by_name_and_reopens_no_proc_file_for_a_caller() {
    let data = tempfile::tempdir().unwrap();
    let b =
        user_with_setuid_probe(data.path(), &["/attacks"], ("vfs_attacks", "attacks"), ("suid_sleep", "suid-sleep"));
    let root = b.rootfs();
    std::fs::create_dir_all(root.join("priv/pub")).unwrap();
    std::fs::set_permissions(root.join("priv"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(root.join("priv/pub/f"), "orig\n").unwrap();
    std::fs::set_permissions(root.join("priv/pub/f"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(root.join("priv/pub"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::create_dir_all(root.join("home/u")).unwrap();
    nix::unistd::chown(&root.join("home/u"), Some(nix::unistd::Uid::from_raw(1000)), None).unwrap();
    let out = run_ok(&sentry(), &b, "vfsattack");
    assert_eq!(
        out,
        "direct Permission denied\n\
         deleted-dirfd No such file or directory\n\
         deleted-dirfd-create No such file or directory\n\
         deleted-cwd No such file or directory\n\
         deleted-cwd-mkdir No such file or directory\n\
         environ-while-ours ok\n\
         environ-direct Permission denied\n\
         environ-reopen Permission denied\n"
    );
    assert_eq!(std::fs::read_to_string(root.join("priv/pub/f")).unwrap(), "orig\n");
    let left: Vec<_> = std::fs::read_dir(root.join("priv/pub")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("f")]);
}

#[test]
fn a_setuid_program_execd_by_a_thread_gets_its_own_credentials() {
    let data = tempfile::tempdir().unwrap();
    let args = ["/exec-race", "150"];
    let b = user_with_setuid_probe(data.path(), &args, ("exec_race", "exec-race"), ("suid_made", "suid-made"));
    let root = b.rootfs();
    std::fs::create_dir_all(root.join("work")).unwrap();
    std::fs::set_permissions(root.join("work"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run_ok(&sentry(), &b, "vfsexec");
    let stale = out.lines().filter(|l| *l == "stale").count();
    assert_eq!(stale, 0, "{stale} of {} programs ran with the credentials from before their exec", out.lines().count());
    assert_eq!(out.lines().filter(|l| *l == "root").count(), 150, "{out}");
}

#[test]
fn a_message_queue_is_charged_to_its_caller_even_through_a_symlink() {
    // with no queue quota of its own, the caller can make none: a queue the
    // Sentry made would be charged to host root instead
    let data = tempfile::tempdir().unwrap();
    let script = r#"ln -s /dev/mqueue /tmp/m
        (: > /tmp/m/q1) 2>/dev/null && echo created || echo refused
        [ -e /dev/mqueue/q1 ] && echo exists || echo absent"#;
    let mut b = bundle(script, data.path(), &[]);
    b.edit(|s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        s["process"]["rlimits"] = json!([{"type": "RLIMIT_MSGQUEUE", "hard": 0, "soft": 0}]);
    });
    std::fs::set_permissions(b.rootfs().join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(run_ok(&sentry(), &b, "vfsmq"), "refused\nabsent\n");
}

/// 5000 path calls with random arguments ([`fs_fuzz.py`]) in a Debian
/// sandbox, with the default view and the gofer's: each ends with an error
/// of the program's own, and the Sentry lives on.
#[test]
fn random_arguments_to_the_path_calls_never_bring_the_sentry_down() {
    for (seed, directfs) in [("1", "--directfs=true"), ("2", "--directfs=false")] {
        let mut moat = sentry();
        moat.global.push(directfs.into());
        let b = moat_e2e::debian::bundle(&["python3", "-c", include_str!("../probes/fs_fuzz.py"), seed]);
        assert_eq!(run_ok(&moat, &b, "vfs-fuzz"), "done True True True\n", "{directfs}");
    }
}
