//! Every isolation claim of the native platform, tried from inside a
//! container with the default template (runc's defaults) — and failing.

use moat_e2e::{sh, unique_id};
use serde_json::json;

/// Runs each probe in the default container; every one must print DENIED.
fn probes(cases: &[(&str, &str)], edit: impl FnOnce(&mut serde_json::Value)) {
    let script: String = cases
        .iter()
        .map(|(name, cmd)| {
            format!("if ( {cmd} ) >/dev/null 2>&1; then echo '{name} ESCAPED'; else echo '{name} DENIED'; fi\n")
        })
        .collect();
    let out = sh(&script, edit);
    for (name, _) in cases {
        assert!(out.contains(&format!("{name} DENIED")), "{name}: {out}");
    }
}

#[test]
fn host_filesystem_is_out_of_reach() {
    let marker = format!("/tmp/moat-host-marker-{}", unique_id("m"));
    std::fs::write(&marker, "host secret").unwrap();
    let m = marker.as_str();
    let c1 = format!("cat {m}");
    let c2 = format!("cat /../../..{m}");
    let c3 = format!("cat /proc/1/root{m}");
    let c4 = format!("cat /proc/self/cwd/../../..{m}");
    let c5 = format!("ln -s / /tmp/up && cat /tmp/up/../..{m}");
    probes(
        &[
            ("plain path", &c1),
            ("dotdot", &c2),
            ("proc 1 root", &c3),
            ("proc self cwd", &c4),
            ("symlink", &c5),
            ("write root", "touch /etc/pwned"),
            ("write proc sys", "echo 1 > /proc/sys/kernel/sysrq"),
            ("write sysfs", "echo x > /sys/kernel/uevent_helper"),
        ],
        |s| {
            s["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        },
    );
    std::fs::remove_file(&marker).unwrap();
}

#[test]
fn privileged_operations_are_denied() {
    // module loading: this host's kernel has no module support (ENOSYS for
    // everyone), so it is proved under the Sentry only (sentry_escape.rs)
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    probes(
        &[
            ("mount tmpfs", "mount -t tmpfs none /mnt"),
            ("remount root rw", "mount -o remount,rw /"),
            ("mknod block device", "mknod /dev/sdz b 8 0"),
            // busybox date exits 0 even when settimeofday fails: look for the error
            ("set host time", "! date -s 2000-01-01 2>&1 | grep -q 'not permitted'"),
            ("set a hostname without CAP_SYS_ADMIN", "hostname evil"),
            ("raise hard rlimit", "ulimit -Hn 1048577"),
            ("chroot escape", "mkdir -p /dev/shm/x && chroot /dev/shm/x /bin/sh"),
            ("raw socket", "ping -c1 -W1 127.0.0.1"),
            ("reboot", "reboot -f"),
        ],
        |_| {},
    );
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), hostname, "host hostname changed");
}

#[test]
fn host_processes_and_network_are_invisible() {
    let me = std::process::id();
    let c1 = format!("kill -0 {me}");
    let c2 = format!("test -d /proc/{me}");
    probes(
        &[
            ("signal a host process", &c1),
            ("see a host process", &c2),
            ("see host init", "grep -qv '^sh' /proc/1/comm"),
            ("host network interfaces", "grep -v -e lo: -e Inter -e face /proc/net/dev | grep -q :"),
        ],
        |_| {},
    );
}

#[test]
fn device_cgroup_blocks_devices_even_with_mknod() {
    use std::os::unix::fs::MetadataExt;
    // the disk the host's root lies on (a node for a device this machine
    // lacks would fail to open anyway)
    let dev = std::fs::metadata("/").unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let open_disk = format!("mknod /dev/hostdisk b {major} {minor} && head -c1 /dev/hostdisk");
    // /dev/fuse, outside the default device rules (any host user may open it)
    let open_fuse = "mknod /dev/f c 10 229 && true < /dev/f";
    let with_mknod = |s: &mut serde_json::Value| {
        let caps = json!(["CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set] = caps.clone();
        }
    };
    // grant CAP_MKNOD: the nodes can be made, but the device cgroup refuses to open them
    probes(&[("open a host disk", &open_disk), ("open a device outside the rules", open_fuse)], with_mknod);
    // the control: allowed by the spec's device rules, the same probe opens
    // it (this machine refuses new nodes of block devices to host root too,
    // so a character device is the one that shows the rules at work). In
    // the host's user namespace: in one of the sandbox's own no node can
    // be made at all
    let mut moat = moat_e2e::Moat::new();
    moat.global = vec!["--userns".into(), "off".into()];
    let mut b = moat_e2e::Bundle::busybox(&["sh", "-c", &format!("{open_fuse} && echo OPENED")]);
    b.edit(|s| {
        with_mknod(s);
        s["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}));
    });
    let id = unique_id("devctl");
    let (code, out, err) = moat_e2e::run_fg(&moat, &b, &id);
    assert_eq!((code, out.as_str()), (0, "OPENED\n"), "{err}");
    moat_e2e::assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn no_new_privileges_blocks_setuid_gain() {
    // a setuid-root copy of busybox must not make uid 1000 root
    probes(&[("setuid gain", "cp /bin/busybox /tmp/su && chmod 4755 /tmp/su && /tmp/su id -u | grep -qx 0")], |s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}));
    });
}

#[test]
fn moat_never_passes_its_own_fds_into_the_container() {
    use moat_e2e::{assert_no_leaks, Bundle, Moat};
    // the caller has no fd 3: --preserve-fds 1 must be refused, not filled with one of moat's fds
    let moat = Moat::new();
    let b = Bundle::busybox(&["sh", "-c", "ls /proc/self/fd/3/ && echo LEAKED"]);
    let id = unique_id("fdleak");
    let err = moat.fails(&["run", "--preserve-fds", "1", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(err.contains("fd 3 is not open"), "{err}");
    assert_no_leaks(&moat, &id, b.path());
    // an inherited LISTEN_FDS without our LISTEN_PID is not socket activation
    let mut cmd = moat.cmd(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    cmd.env("LISTEN_FDS", "3").env_remove("LISTEN_PID");
    let out = moat_e2e::output_via_files(cmd);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("LEAKED"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn an_image_dev_symlink_cannot_touch_the_host() {
    use moat_e2e::{assert_no_leaks, run_fg, Bundle, Moat};
    // the image's /dev points at a host path that exists on the host
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("pts")).unwrap();
    std::fs::write(host.path().join("ptmx"), "host file").unwrap();
    let moat = Moat::new();
    let mut b = Bundle::busybox(&["true"]);
    let dev = b.rootfs().join("dev");
    let _ = std::fs::remove_dir_all(&dev);
    std::os::unix::fs::symlink(host.path(), &dev).unwrap();
    b.edit(|s| {
        s["mounts"].as_array_mut().unwrap().retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    });
    let id = unique_id("devlink");
    let (code, _, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    let names: Vec<String> = std::fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "moat wrote into the host dir: {names:?}");
    assert_eq!(std::fs::read_to_string(host.path().join("ptmx")).unwrap(), "host file");
    assert_no_leaks(&moat, &id, b.path());
}
