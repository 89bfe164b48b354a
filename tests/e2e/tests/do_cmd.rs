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
