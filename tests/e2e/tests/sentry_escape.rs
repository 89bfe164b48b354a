//! The Sentry's denials hold against a program holding every capability
//! that matters: a static C probe (probes/escape.c) tries bpf, ptrace,
//! keyctl, io_uring, userfaultfd, perf, module loading, namespaces, mount and
//! packet sockets from inside, and every try must fail.

use std::process::Command;

use moat_e2e::{assert_no_leaks, run_fg, unique_id, Bundle, Moat};
use serde_json::json;

const PROBES: &[&str] = &[
    "bpf",
    "ptrace",
    "keyctl",
    "io_uring_setup",
    "userfaultfd",
    "perf_event_open",
    "init_module",
    "unshare_user",
    "unshare_net",
    "setns",
    "mount",
    "packet_socket",
    "clone_newpid",
    "tiocsti",
    "netlink_uevent",
    "prctl_set_mm",
];

fn build_probe(dir: &std::path::Path) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/escape.c");
    let out = Command::new("gcc").args(["-O2", "-static", "-o"]).arg(dir.join("escape")).arg(&src).output().unwrap();
    assert!(out.status.success(), "gcc: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn privileged_escapes_are_denied_under_the_sentry() {
    let mut moat = Moat::new();
    moat.global = vec!["--platform".into(), "sentry".into()];
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
    assert_eq!(code, 0, "{err}");
    for p in PROBES {
        let line =
            out.lines().find(|l| l.split(' ').next() == Some(p)).unwrap_or_else(|| panic!("no {p} line in {out}"));
        assert!(line.starts_with(&format!("{p} denied")), "{p} escaped the sentry: {line}");
    }
    assert_no_leaks(&moat, &id, b.path());
}
