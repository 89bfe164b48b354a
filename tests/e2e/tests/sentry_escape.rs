//! The Sentry's denials hold against a program holding every capability
//! that matters: a static C probe (probes/escape.c) tries bpf, ptrace,
//! keyctl, io_uring, userfaultfd, perf, module loading, namespaces, mount and
//! packet sockets from inside, and every try must fail.

use std::process::Command;

use moat_e2e::{assert_no_leaks, run_fg, unique_id, Bundle, Moat};
use serde_json::json;

/// Each try and the answer the Sentry gives it. The errno matters: several
/// of these fail natively too, for other reasons (ENOSYS, EINVAL), and only
/// the Sentry's own answer proves the Sentry refused them.
const PROBES: &[(&str, &str)] = &[
    ("bpf", "EPERM"),
    ("ptrace", "EPERM"),
    ("keyctl", "EPERM"),
    ("io_uring_setup", "EPERM"),
    ("userfaultfd", "EPERM"),
    ("perf_event_open", "EPERM"),
    ("init_module", "EPERM"),
    ("unshare_user", "EPERM"),
    ("unshare_net", "EPERM"),
    ("setns", "EPERM"),
    ("mount", "EPERM"),
    ("packet_socket", "EPERM"),
    ("netlink_uevent", "EPERM"),
    ("tiocsti", "ENOTTY"),
    ("prctl_set_mm", "EINVAL"),
    ("clone_newpid", "EPERM"),
];

/// Tries that succeed natively with the same capabilities: the probe can see
/// an escape when there is one.
const NATIVE_OK: &[&str] = &["bpf", "keyctl", "unshare_user", "unshare_net", "packet_socket", "clone_newpid"];

fn build_probe(dir: &std::path::Path) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/escape.c");
    let out = Command::new("gcc").args(["-O2", "-static", "-o"]).arg(dir.join("escape")).arg(&src).output().unwrap();
    assert!(out.status.success(), "gcc: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs the probe with every capability that matters, on `platform`.
fn probe(platform: &str) -> String {
    let mut moat = Moat::new();
    moat.global = vec!["--platform".into(), platform.into()];
    let mut b = Bundle::busybox(&["/escape"]);
    build_probe(&b.rootfs());
    b.edit(|s| {
        let caps = json!([
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE",
            "CAP_SYS_MODULE",
            "CAP_NET_RAW",
            "CAP_NET_ADMIN",
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_IPC_LOCK",
        ]);
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set] = caps.clone();
        }
        for set in ["inheritable", "ambient"] {
            s["process"]["capabilities"][set] = json!([]);
        }
        s["process"]["noNewPrivileges"] = false.into();
        s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    });
    let id = unique_id("escape");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{platform}: {err}");
    assert_no_leaks(&moat, &id, b.path());
    out
}

fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name} line in {out}"))
}

#[test]
fn privileged_escapes_are_denied_under_the_sentry() {
    let out = probe("sentry");
    for (name, errno) in PROBES {
        assert_eq!(line(&out, name), format!("{name} denied {errno}"), "{name} was not refused by the Sentry");
    }
    // the control: natively, with the same capabilities, the same tries get through
    let native = probe("native");
    for name in NATIVE_OK {
        assert_eq!(line(&native, name), format!("{name} ok"), "the probe cannot see {name} succeed");
    }
}
