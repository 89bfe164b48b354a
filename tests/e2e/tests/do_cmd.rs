//! `moat do`: the README's demo. A command on the host's own root, read-only,
//! with fresh namespaces, on both platforms and both network modes.

use moat_e2e::Moat;

#[test]
fn do_runs_on_the_host_root_read_only() {
    for platform in ["native", "sentry"] {
        let moat = Moat::new();
        let out = moat.run(&[
            "--platform",
            platform,
            "do",
            "--",
            "sh",
            "-c",
            "echo hello; touch /etc/moat-do-test 2>&1 | grep -c 'Read-only'; ls /sys/class/net; echo $$; pwd",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{platform}: {text}{}", String::from_utf8_lossy(&out.stderr));
        // the test runs from somewhere under /tmp in CI: a fresh /tmp inside has no such dir, so cwd is /
        let cwd = std::env::current_dir().unwrap();
        let want_cwd = if cwd.starts_with("/tmp") { "/".to_string() } else { cwd.display().to_string() };
        assert_eq!(
            text,
            format!("hello\n1\nlo\n1\n{want_cwd}\n"),
            "{platform}: own pid and network namespaces, read-only root"
        );
        assert!(!std::path::Path::new("/etc/moat-do-test").exists());
        assert_eq!(std::fs::read_dir(moat.root()).map(|d| d.count()).unwrap_or(0), 0, "state left behind");
    }
}

/// The README demo's dmesg (util-linux's, the host's own program) shows
/// the sandbox's boot log one record a line.
#[test]
fn dmesg_shows_the_sandboxs_boot_log() {
    let moat = Moat::new();
    let out = moat.run(&["do", "--", "dmesg"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("[    0.000000] Starting moat"), "{text}");
    assert!(lines.iter().all(|l| l.starts_with('[')), "{text}");
}

#[test]
fn do_with_the_host_network_and_exit_status() {
    let moat = Moat::new();
    let out = moat.run(&["do", "--network", "host", "--", "sh", "-c", "ls /sys/class/net | grep -vc '^lo$'; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    let n: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    assert!(n >= 1, "the host's interfaces are visible with --network host");
    assert!(moat.fails(&["do", "--network", "bogus", "--", "true"]).contains("--network"));
}

/// On sentry, `moat do`'s root is root of a user namespace of its own (an
/// unprivileged host uid), over idmapped copies of the host's root and of
/// each mount below it that allows them, all read-only: a tmpfs mounted
/// below the root shows inside with its owners, and cannot be written; one
/// that cannot be idmapped (ramfs) shows as its empty mount point.
#[test]
fn do_on_sentry_runs_as_an_unprivileged_host_uid_over_read_only_copies() {
    use std::process::Command;
    let dir = std::path::PathBuf::from(format!("/run/moat-e2e-do-{}", std::process::id()));
    let (tmpfs, ramfs) = (dir.join("tmpfs"), dir.join("ramfs"));
    for (point, fstype) in [(&tmpfs, "tmpfs"), (&ramfs, "ramfs")] {
        std::fs::create_dir_all(point).unwrap();
        // what the mount hides on the host stays hidden inside
        std::fs::write(point.join("under-the-mount"), "hidden\n").unwrap();
        let st = Command::new("mount").args(["-t", fstype, fstype]).arg(point).status().unwrap();
        assert!(st.success(), "mount {fstype}");
        std::fs::write(point.join("file"), "on the host\n").unwrap();
        std::os::unix::fs::chown(point.join("file"), Some(1000), Some(1000)).unwrap();
    }
    let script = format!(
        "cat /proc/self/uid_map; id -u; stat -c '%u %g' {t}/file; cat {t}/file; \
         (echo x > {t}/file) 2>&1 | grep -c Read-only; ls -A {r} | wc -l",
        t = tmpfs.display(),
        r = ramfs.display()
    );
    let moat = Moat::new();
    let out = moat.run(&["do", "--", "sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let kept = std::fs::read_to_string(tmpfs.join("file")).unwrap();
    // run from a directory on the mount that cannot be idmapped: it would
    // be missing, so the sandbox keeps the host's user namespace there
    std::fs::create_dir_all(ramfs.join("sub")).unwrap();
    let from_ramfs = moat
        .cmd(&["do", "--", "sh", "-c", "pwd; cat /proc/self/uid_map"])
        .current_dir(ramfs.join("sub"))
        .output()
        .unwrap();
    for point in [&tmpfs, &ramfs] {
        let _ = Command::new("umount").arg(point).status();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    moat_e2e::own_range(lines[0]);
    assert_eq!(lines[1..], ["0", "1000 1000", "on the host", "1", "0"], "{text}");
    assert_eq!(kept, "on the host\n");
    let from_ramfs = String::from_utf8_lossy(&from_ramfs.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(from_ramfs, format!("{} 0 0 4294967295", ramfs.join("sub").display()));
    assert_eq!(std::fs::read_dir(moat.root()).map(|d| d.count()).unwrap_or(0), 0, "state left behind");
}
