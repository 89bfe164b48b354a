//! A sentry sandbox whose spec brings no user namespace gets one of its own
//! (`--userns auto`, the default): its root is an unprivileged host uid, and
//! its files keep their ids on disk (idmapped copies of the rootfs and the
//! bind sources). Where the spec or its filesystems do not allow it, the
//! sandbox keeps the host's, as with runc.

use std::os::unix::fs::MetadataExt;

use moat_e2e::{assert_no_leaks, own_range, run_fg, set_caps, unique_id, Bundle, Moat, CONTAINERD_CAPS};
use serde_json::json;

/// The first host id of the range container `pid`'s user namespace maps.
fn host_base(pid: i64) -> u32 {
    own_range(&std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap())
}

fn status_ids(pid: i64, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect()
}

/// Nothing of the idmapped copies (made in stage 1's private mount
/// namespace) shows in the host's mount table.
fn assert_no_idmapped_mount_on_the_host() {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let idmapped: Vec<&str> =
        mounts.lines().filter(|l| l.split(' ').nth(5).is_some_and(|o| o.split(',').any(|f| f == "idmapped"))).collect();
    assert!(idmapped.is_empty(), "{idmapped:?}");
}

/// Makes the spec join the namespace of type `t` (as the spec names it) at `path`.
fn join(s: &mut serde_json::Value, t: &str, path: &str) {
    for n in s["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == t {
            n["path"] = path.into();
        }
    }
}

/// A network namespace of the test's own (`ip netns`), lo up; deleted when dropped.
struct NetNs(String);

impl NetNs {
    fn new(tag: &str) -> NetNs {
        let ns = NetNs(format!("moat-e2e-{tag}-{}", std::process::id()));
        ns.ip(&["netns", "add", &ns.0]);
        ns.ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let st = std::process::Command::new("ip").args(args).status().unwrap();
        assert!(st.success(), "ip {args:?}");
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }

    /// A sysctl of it, as `sysctl -n` prints it (whitespace folded).
    fn sysctl(&self, key: &str) -> String {
        let out =
            std::process::Command::new("ip").args(["netns", "exec", &self.0, "sysctl", "-n", key]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "delete", &self.0]).status();
    }
}

/// A podman of the test's own with the busybox image, driving moat.
fn podman_with_busybox() -> moat_e2e::podman::Podman {
    let podman = moat_e2e::podman::Podman::new(&std::path::absolute(moat_e2e::moat_bin()).unwrap()).unwrap();
    let archive = podman.dir().join("busybox.oci.tar");
    moat_e2e::image::busybox_oci_archive(&archive, "localhost/moat-busybox:latest").unwrap();
    podman.load(&archive);
    podman
}

fn host_userns() -> std::path::PathBuf {
    std::fs::read_link("/proc/self/ns/user").unwrap()
}

#[test]
fn container_root_is_an_unprivileged_host_uid_and_files_keep_their_ids() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("hosts-file"), "from the host\n").unwrap();
    let script = r#"set -e
        id -u; cat /proc/self/uid_map | tr -s ' '
        stat -c '%u %g' /bin/busybox /data/hosts-file
        echo made > /made; mkdir /d; chown 1000:1000 /d
        echo root > /data/by-root
        exec sleep 1000"#;
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        // containerd's defaults: CAP_CHOWN among them
        set_caps(s, CONTAINERD_CAPS);
    });
    b.mount(json!({"destination": "/data", "type": "bind", "source": data.path(), "options": ["rbind", "rw"]}));
    let moat = Moat::new();
    let id = unique_id("autouserns");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let state: serde_json::Value = serde_json::from_str(&moat.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    // seen from the host: a user namespace of its own, container root an
    // unprivileged host uid of a range from 2^30 up
    assert_ne!(std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap(), host_userns());
    let base = host_base(pid);
    assert_eq!(status_ids(pid, "Uid:"), [base; 4]);
    assert_eq!(status_ids(pid, "Gid:"), [base; 4]);
    // a second sandbox at the same time gets a range of its own
    let other = Bundle::busybox(&["sleep", "1000"]);
    let other_id = unique_id("autouserns2");
    moat.ok(&["run", "-d", "--bundle", other.path().to_str().unwrap(), &other_id]);
    let state2: serde_json::Value = serde_json::from_str(&moat.ok(&["state", &other_id])).unwrap();
    assert_ne!(host_base(state2["pid"].as_i64().unwrap()), base);
    moat.ok(&["delete", "--force", &other_id]);
    assert_no_leaks(&moat, &other_id, other.path());
    // so does one of the same name under another --root (as containerd's
    // namespaces have), whose cgroup is elsewhere
    let elsewhere = Moat::new();
    let mut same_name = Bundle::busybox(&["sleep", "1000"]);
    same_name.edit(|s| s["linux"]["cgroupsPath"] = format!("/moat/{id}-elsewhere").into());
    elsewhere.ok(&["run", "-d", "--bundle", same_name.path().to_str().unwrap(), &id]);
    let state3: serde_json::Value = serde_json::from_str(&elsewhere.ok(&["state", &id])).unwrap();
    assert_ne!(host_base(state3["pid"].as_i64().unwrap()), base);
    elsewhere.ok(&["delete", "--force", &id]);
    assert_no_leaks(&elsewhere, &format!("{id}-elsewhere"), same_name.path());
    let gone = elsewhere.root().join(&id);
    assert!(!gone.exists());
    let claims: Vec<_> =
        std::fs::read_dir("/run/moat-userns").unwrap().flatten().map(|e| std::fs::read_link(e.path())).collect();
    assert!(!claims.iter().any(|c| c.as_ref().is_ok_and(|o| *o == gone)), "{claims:?}");
    // inside: root, owning its files (disk uid 0 reads as 0, host files as theirs)
    let out = moat.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; stat -c '%u %g' /bin/busybox /data/hosts-file /made /d; grep -E '^(Uid|Gid):' /proc/self/status",
    ]);
    assert_eq!(out, "0\n0 0\n0 0\n0 0\n1000 1000\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n");
    // on disk: the container's ids, as without a user namespace
    let owner = |p: std::path::PathBuf| {
        let m = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        (m.uid(), m.gid())
    };
    assert_eq!(owner(b.rootfs().join("made")), (0, 0));
    assert_eq!(owner(b.rootfs().join("d")), (1000, 1000));
    assert_eq!(owner(data.path().join("by-root")), (0, 0));
    assert_no_idmapped_mount_on_the_host();
    moat.ok(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn an_escaped_container_root_is_nobody_on_the_host() {
    // a file only host root may read, next to the bundle: the container's
    // root, seen from the host, is not host root and may not
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "host secret\n").unwrap();
    std::fs::set_permissions(secret.path(), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.edit(|s| s["root"]["readonly"] = false.into());
    let moat = Moat::new();
    let id = unique_id("userns-escape");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let state: serde_json::Value = serde_json::from_str(&moat.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    // a host process with the container root's very credentials (its user
    // namespace, its uid 0 there, all its capabilities there) tries the host's file
    let out = std::process::Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--user", "--", "sh", "-c", "id -u; cat /proc/self/status | grep CapEff"])
        .output()
        .unwrap();
    // root of the namespace, with every capability there, and still refused
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0\n"), "{out:?}");
    let out = std::process::Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--user", "--", "cat"])
        .arg(secret.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "namespace root read host root's file: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{out:?}");
    moat.ok(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

/// The replayer runs as container root's uid, yet no process of the
/// sandbox can name it; and it acts as each caller would: its
/// capabilities (access as root), its working directory whatever the
/// replayer's own permissions, its magic links.
#[test]
fn the_replayer_is_out_of_reach_and_acts_as_the_caller() {
    let script = r#"
        exec > /log 2>&1
        kill -9 -1 2>/dev/null; kill -STOP -1 2>/dev/null; sleep 0.2
        echo after > /after && echo changes-after-kill
        touch /ro && chmod 444 /ro && [ -w /ro ] && echo root-may-write
        mkdir -p /home/u && chown 1000:1000 /home/u && chmod 700 /home/u
        mkdir /c1 && cd /c1 && exec 3</c1
        rmdir /proc/self/cwd 2>/dev/null || echo rmdir-refused
        touch m2 && mv /proc/self/cwd/m2 /proc/self/fd/3/m4 && echo moved
        mv m4 /proc/self/fd/3/m5 && echo moved-again
        cd / && chmod 755 /proc/self/cwd && echo chmod-root
        exec sleep 1000"#;
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        set_caps(s, CONTAINERD_CAPS);
    });
    let moat = Moat::new();
    let id = unique_id("replayer");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = || std::fs::read_to_string(b.rootfs().join("log")).unwrap_or_default();
    while !log().contains("chmod-root") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(log(), "changes-after-kill\nroot-may-write\nrmdir-refused\nmoved\nmoved-again\nchmod-root\n");
    assert!(b.rootfs().join("c1").is_dir() && b.rootfs().join("c1/m5").exists());
    // a user in its own 0700 directory
    let out =
        moat.ok(&["exec", "--user", "1000:1000", &id, "sh", "-c", "cd /home/u && echo x > x && mkdir sub && echo ok"]);
    assert_eq!(out, "ok\n");
    assert_eq!(std::fs::metadata(b.rootfs().join("home/u/x")).unwrap().uid(), 1000);
    moat.ok(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn sandboxes_that_cannot_have_one_keep_the_hosts() {
    let own = |edit: &dyn Fn(&mut serde_json::Value), moat: &Moat| -> bool {
        let mut b = Bundle::busybox(&["sh", "-c", "cat /proc/self/uid_map | tr -s ' '"]);
        b.edit(edit);
        let id = unique_id("nouserns");
        let (code, out, err) = run_fg(moat, &b, &id);
        assert_eq!(code, 0, "{err}");
        assert_no_leaks(moat, &id, b.path());
        out.trim() != "0 0 4294967295"
    };
    let moat = Moat::new();
    assert!(own(&|_| {}, &moat), "the default bundle gets one");
    // devices of the spec's own could not be made inside one
    assert!(!own(
        &|s| s["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]),
        &moat
    ));
    // the host's network namespace: the namespace's root could not configure it
    assert!(!own(&|s| s["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network"), &moat));
    // ... nor when joined by path (a sysctl written there would be the host's)
    let join_host = |s: &mut serde_json::Value| join(s, "network", &format!("/proc/{}/ns/net", std::process::id()));
    assert!(!own(&join_host, &moat));
    // namespaces of a user namespace moat did not make
    let mut foreign = std::process::Command::new("unshare").args(["--user", "--uts", "sleep", "100"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let uts = format!("/proc/{}/ns/uts", foreign.id());
    let join_foreign = |s: &mut serde_json::Value| {
        join(s, "uts", &uts);
        s.as_object_mut().unwrap().remove("hostname");
    };
    let kept = !own(&join_foreign, &moat);
    let _ = foreign.kill();
    let _ = foreign.wait();
    assert!(kept, "a foreign user namespace's uts namespace");
    // cgroups mounted without a cgroup namespace: the container's own are bound in
    assert!(own(
        &|s| {
            s["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "cgroup");
            s["process"]["args"] = json!([
                "sh",
                "-c",
                "cat /sys/fs/cgroup/pids/pids.max >/dev/null && cat /proc/self/uid_map | tr -s ' '"
            ]);
        },
        &moat
    ));
    // mount propagation asked for: an idmapped copy is in no peer group
    let data = tempfile::tempdir().unwrap();
    assert!(!own(
        &|s| s["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/data", "type": "bind", "source": data.path(), "options": ["rbind", "rslave"]})
        ),
        &moat
    ));
    // --userns off, and the native platform
    let mut off = Moat::new();
    off.global = vec!["--userns".into(), "off".into()];
    assert!(!own(&|_| {}, &off));
    let mut native = Moat::new();
    native.global = vec!["--platform".into(), "native".into()];
    assert!(!own(&|_| {}, &native));
}

/// An rbind source with a mount below it comes along, idmapped too.
#[test]
fn an_rbind_source_brings_its_submounts() {
    let data = tempfile::tempdir().unwrap();
    let sub = data.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let status = std::process::Command::new("mount").args(["-t", "tmpfs", "moat-test"]).arg(&sub).status().unwrap();
    assert!(status.success());
    std::fs::write(sub.join("f"), "below\n").unwrap();
    let mut b =
        Bundle::busybox(&["sh", "-c", "cat /data/sub/f; stat -c %u /data/sub/f; cat /proc/self/uid_map | wc -l"]);
    b.mount(json!({"destination": "/data", "type": "bind", "source": data.path(), "options": ["rbind", "rw"]}));
    let moat = Moat::new();
    let id = unique_id("rbindsub");
    let (code, out, err) = run_fg(&moat, &b, &id);
    let _ = std::process::Command::new("umount").arg(&sub).status();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "below\n0\n1\n");
    assert_no_leaks(&moat, &id, b.path());
}

/// containerd's overlayfs rootfs: the sandbox gets an overlayfs of its own
/// over idmapped copies of the snapshot's layers. Container root is an
/// unprivileged host uid; what it writes lands in the snapshot's upper
/// layer with the container's ids, a changed image file keeps its owner,
/// and a removed one becomes a whiteout, as without a user namespace.
#[test]
fn containerd_overlay_rootfs_gets_a_user_namespace_and_keeps_disk_ids() {
    use moat_e2e::containerd::{mount_points, Containerd};
    let ctrd = Containerd::start().expect("starting a private containerd");
    let archive = ctrd.dir().join("busybox.oci.tar");
    moat_e2e::image::busybox_oci_archive(&archive, "localhost/moat-busybox:latest").unwrap();
    ctrd.import(&archive, "localhost/moat-busybox");
    let rt = std::path::absolute(moat_e2e::moat_bin()).unwrap();
    let id = unique_id("ctr-userns");
    let script = format!(
        "cat /proc/self/uid_map; id -u; stat -c '%u %g' /bin/busybox; \
         echo made > /made-{id}; mkdir /d-{id}; chown 1000:1000 /d-{id}; \
         echo more >> /etc/passwd; rm /bin/vi; stat -c '%u %g' /etc/passwd"
    );
    let out = ctrd.ctr_ok(&[
        "run",
        "--fifo-dir",
        &ctrd.fifo_dir(),
        "--runc-binary",
        rt.to_str().unwrap(),
        "localhost/moat-busybox:latest",
        &id,
        "sh",
        "-c",
        &script,
    ]);
    let lines: Vec<&str> = out.lines().collect();
    own_range(lines[0]);
    assert_eq!(lines[1..], ["0", "0 0", "0 0"], "{out:?}");
    // the snapshot's upper layer, found by the file the container made
    let snapshots = ctrd.dir().join("root/io.containerd.snapshotter.v1.overlayfs/snapshots");
    let upper = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path().join("fs"))
        .find(|fs| fs.join(format!("made-{id}")).exists())
        .unwrap_or_else(|| panic!("no upper layer under {} has made-{id}", snapshots.display()));
    let owner = |p: std::path::PathBuf| {
        let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        (m.uid(), m.gid(), m.rdev())
    };
    // the task is deleted: the sandbox's own overlayfs work dir went with it
    assert!(!upper.parent().unwrap().join("work.moat").exists(), "work.moat left next to {}", upper.display());
    assert_eq!(owner(upper.join(format!("made-{id}"))), (0, 0, 0));
    assert_eq!(owner(upper.join(format!("d-{id}"))), (1000, 1000, 0));
    assert_eq!(owner(upper.join("etc/passwd")), (0, 0, 0));
    // a whiteout: a character device 0:0
    let vi = std::fs::symlink_metadata(upper.join("bin/vi")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(&vi.file_type()) && vi.rdev() == 0, "{vi:?}");
    assert_no_idmapped_mount_on_the_host();
    ctrd.ctr_ok(&["containers", "rm", &id]);
    assert!(!mount_points().iter().any(|m| m.contains(&id)), "a mount names {id}");
    assert!(!ctrd.runtime_root().join(&id).exists(), "the runtime's state dir is left");
}

/// podman's overlayfs rootfs (its network namespace is a new one here, as
/// with `--network none`): the same, through conmon, with the upper layer
/// podman names.
#[test]
fn podman_overlay_rootfs_gets_a_user_namespace_and_keeps_disk_ids() {
    use moat_e2e::containerd::mount_points;
    let podman = podman_with_busybox();
    let name = unique_id("podman-userns");
    let script = "cat /proc/self/uid_map; id -u; echo made > /made; mkdir /d; chown 1000:1000 /d; \
                  echo more >> /etc/passwd; stat -c '%u %g' /etc/passwd";
    let out =
        podman.run_ok(&["run", "--pull=never", "--name", &name, "localhost/moat-busybox:latest", "sh", "-c", script]);
    let lines: Vec<&str> = out.lines().collect();
    own_range(lines[0]);
    assert_eq!(lines[1..], ["0", "0 0"], "{out:?}");
    let upper = podman.run_ok(&["container", "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", &name]);
    let upper = std::path::PathBuf::from(upper.trim());
    let owner = |p: std::path::PathBuf| {
        let m = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        (m.uid(), m.gid())
    };
    assert_eq!(owner(upper.join("made")), (0, 0));
    assert_eq!(owner(upper.join("d")), (1000, 1000));
    assert_eq!(owner(upper.join("etc/passwd")), (0, 0));
    assert_no_idmapped_mount_on_the_host();
    let id = podman.run_ok(&["container", "inspect", "--format", "{{.Id}}", &name]).trim().to_string();
    podman.run_ok(&["rm", &name]);
    assert!(!mount_points().iter().any(|m| m.contains(&id)), "a mount names {id}");
    assert!(!podman.runtime_root().join(&id).exists(), "the runtime's state dir is left");
}

/// A network namespace the caller made (podman's default network, a
/// Kubernetes pod's): joined as host root, it stays the host user
/// namespace's, and the sandbox still gets one of its own. Stage 1 does
/// there what its root could not: ip_unprivileged_port_start=0 (root binds
/// port 80, as in runsc), the spec's net.* sysctls (ping_group_range in
/// host ids), a sysfs of it for the Sentry's /sys.
#[test]
fn a_joined_network_namespace_keeps_the_sandboxs_own_user_namespace() {
    let netns = NetNs::new("joined");
    let script = "cat /proc/self/uid_map; (nc -l -p 80 &); sleep 0.3; netstat -ltn | grep -c ':80 '; \
                  ls /sys/class/net; echo made > /made && cat /made";
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        set_caps(s, CONTAINERD_CAPS);
        s["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "0 0"});
        join(s, "network", &netns.path());
    });
    let moat = Moat::new();
    let id = unique_id("joinednet");
    let (code, out, err) = run_fg(&moat, &b, &id);
    // `moat exec` joins that network namespace before the user namespace,
    // which does not own it
    let mut d = Bundle::busybox(&["sleep", "1000"]);
    d.edit(|s| join(s, "network", &netns.path()));
    let detached = unique_id("joinednet-exec");
    moat.ok(&["run", "-d", "--bundle", d.path().to_str().unwrap(), &detached]);
    let exec_out = moat.ok(&["exec", &detached, "sh", "-c", "cat /proc/self/uid_map; ls /sys/class/net"]);
    moat.ok(&["delete", "--force", &detached]);
    assert_no_leaks(&moat, &detached, d.path());
    let (port_start, ping) =
        (netns.sysctl("net.ipv4.ip_unprivileged_port_start"), netns.sysctl("net.ipv4.ping_group_range"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let base = own_range(lines[0]);
    // root binds port 80; /sys shows the pod's interfaces (lo), not the host's
    assert_eq!(lines[1..], ["1", "lo", "made"], "{out}");
    let exec_lines: Vec<&str> = exec_out.lines().collect();
    own_range(exec_lines[0]);
    assert_eq!(exec_lines[1..], ["lo"], "{exec_out}");
    assert_eq!(port_start, "0");
    assert_eq!(ping, format!("{base} {base}"));
    assert_no_leaks(&moat, &id, b.path());
    assert!(err.is_empty() || !err.contains("error"), "{err}");
}

/// A pod: a second sandbox joins the first one's ipc, uts and network
/// namespaces, which belong to the first one's user namespace. It joins
/// that user namespace too (with its range of host ids), and its own
/// changes to its tree still work.
#[test]
fn a_sandbox_joining_another_ones_namespaces_shares_its_user_namespace() {
    let moat = Moat::new();
    let pause = Bundle::busybox(&["sleep", "1000"]);
    let pause_id = unique_id("pod-pause");
    moat.ok(&["run", "-d", "--bundle", pause.path().to_str().unwrap(), &pause_id]);
    let pid_of = |id: &str| {
        let state: serde_json::Value = serde_json::from_str(&moat.ok(&["state", id])).unwrap();
        state["pid"].as_i64().unwrap()
    };
    let pause_pid = pid_of(&pause_id);
    let mut app = Bundle::busybox(&["sleep", "1000"]);
    app.edit(|s| {
        s["root"]["readonly"] = false.into();
        for (t, kind) in [("ipc", "ipc"), ("uts", "uts"), ("network", "net")] {
            join(s, t, &format!("/proc/{pause_pid}/ns/{kind}"));
        }
    });
    let app_id = unique_id("pod-app");
    moat.ok(&["run", "-d", "--bundle", app.path().to_str().unwrap(), &app_id]);
    let app_pid = pid_of(&app_id);
    let userns = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_eq!(userns(app_pid), userns(pause_pid));
    assert_ne!(userns(app_pid), host_userns());
    assert_eq!(host_base(app_pid), host_base(pause_pid));
    let out = moat.ok(&["exec", &app_id, "sh", "-c", "id -u; echo made > /made; stat -c '%u' /made"]);
    assert_eq!(out, "0\n0\n");
    assert_eq!(std::fs::metadata(app.rootfs().join("made")).unwrap().uid(), 0);
    // the pause sandbox goes first: the app still holds a share of the range
    let base = host_base(app_pid);
    moat.ok(&["delete", "--force", &pause_id]);
    assert_no_leaks(&moat, &pause_id, pause.path());
    let shares: Vec<_> = std::fs::read_dir("/run/moat-userns")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{base}+")))
        .map(|e| std::fs::read_link(e.path()).unwrap())
        .collect();
    assert_eq!(shares, [moat.root().join(&app_id)], "the app's share of range {base}");
    moat.ok(&["delete", "--force", &app_id]);
    assert_no_leaks(&moat, &app_id, app.path());
}

/// podman with a network namespace it joins (`--network ns:PATH`, what its
/// default network does with one it made): the sandbox keeps a user
/// namespace of its own, its root binds port 80, and `podman exec` works.
#[test]
fn podman_joining_a_network_namespace_keeps_the_sandboxs_own_user_namespace() {
    let netns = NetNs::new("podman");
    let podman = podman_with_busybox();
    let name = unique_id("podman-netns");
    let network = format!("--network=ns:{}", netns.path());
    let run = podman.run(&[
        "run",
        "-d",
        "--pull=never",
        &network,
        "--name",
        &name,
        "localhost/moat-busybox:latest",
        "sleep",
        "1000",
    ]);
    let exec = podman.run(&[
        "exec",
        &name,
        "sh",
        "-c",
        "cat /proc/self/uid_map; (nc -l -p 80 &); sleep 0.3; netstat -ltn | grep -c ':80 '",
    ]);
    let _ = podman.run(&["rm", "--force", "--time=0", &name]);
    assert!(run.status.success(), "podman run: {}", String::from_utf8_lossy(&run.stderr));
    let out = String::from_utf8_lossy(&exec.stdout).into_owned();
    assert!(exec.status.success(), "podman exec: {out}{}", String::from_utf8_lossy(&exec.stderr));
    let lines: Vec<&str> = out.lines().collect();
    own_range(lines[0]);
    assert_eq!(lines[1..], ["1"], "{out}");
}

/// An overlayfs of the test's own, as a snapshotter mounts one: `lower` as
/// its only lower layer, `snap/fs` and `snap/work` its upper and work dirs
/// (`prepare` runs on `snap` first), mounted at `merged` with `options`
/// added; unmounted when dropped, also on a failed assertion.
struct HandOverlay {
    dir: tempfile::TempDir,
}

impl HandOverlay {
    fn mount(lower: &std::path::Path, options: &str, prepare: impl FnOnce(&std::path::Path)) -> HandOverlay {
        let o = HandOverlay { dir: tempfile::tempdir().unwrap() };
        for d in [o.upper(), o.snap().join("work"), o.merged()] {
            std::fs::create_dir_all(d).unwrap();
        }
        prepare(&o.snap());
        let mut opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            o.upper().display(),
            o.snap().join("work").display()
        );
        if !options.is_empty() {
            opts = format!("{opts},{options}");
        }
        let st = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(o.merged())
            .status()
            .unwrap();
        assert!(st.success(), "mount overlay {opts}");
        o
    }

    fn snap(&self) -> std::path::PathBuf {
        self.dir.path().join("snap")
    }

    fn upper(&self) -> std::path::PathBuf {
        self.snap().join("fs")
    }

    fn merged(&self) -> std::path::PathBuf {
        self.dir.path().join("merged")
    }
}

impl Drop for HandOverlay {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.merged()).status();
    }
}

/// An overlayfs rootfs that cannot be made again over idmapped layers (here
/// a file where its own work dir would go) is found out at create, before
/// the sandbox is committed to a user namespace: it keeps the host's, and
/// runs.
#[test]
fn an_overlayfs_that_cannot_be_made_again_keeps_the_hosts() {
    let b = Bundle::busybox(&["true"]);
    let o =
        HandOverlay::mount(&b.rootfs(), "", |snap| std::fs::write(snap.join("work.moat"), "not a directory").unwrap());
    let mut ov = Bundle::busybox(&["sh", "-c", "cat /proc/self/uid_map | tr -s ' '; echo ran"]);
    ov.edit(|s| s["root"]["path"] = o.merged().display().to_string().into());
    let moat = Moat::new();
    let id = unique_id("ovfallback");
    let (code, out, err) = run_fg(&moat, &ov, &id);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "0 0 4294967295\nran", "{err}");
    assert_no_leaks(&moat, &id, ov.path());
}

/// A volatile overlayfs (podman mounts its rootfs so), with the mark an
/// earlier volatile mount left in the sandbox's own work dir: the sandbox's
/// overlayfs is not volatile, and the stale mark is cleared, so it still
/// gets a user namespace of its own.
#[test]
fn a_volatile_overlayfs_with_a_stale_mark_gets_a_user_namespace() {
    let lower = Bundle::busybox(&["true"]);
    let o = HandOverlay::mount(&lower.rootfs(), "volatile", |snap| {
        std::fs::create_dir_all(snap.join("work.moat/work/incompat/volatile")).unwrap();
    });
    let mut ov = Bundle::busybox(&["sh", "-c", "cat /proc/self/uid_map; echo made > /made"]);
    ov.edit(|s| {
        s["root"]["path"] = o.merged().display().to_string().into();
        s["root"]["readonly"] = false.into();
    });
    let moat = Moat::new();
    let id = unique_id("ovvolatile");
    let (code, out, err) = run_fg(&moat, &ov, &id);
    assert_eq!(code, 0, "{err}");
    own_range(out.lines().next().unwrap_or_default());
    assert_eq!(std::fs::read_to_string(o.upper().join("made")).unwrap(), "made\n");
    assert_no_leaks(&moat, &id, ov.path());
}
