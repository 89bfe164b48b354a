//! The syscall table against the kernel ABI, the security rules it must
//! keep, the compiled filter, and the committed documentation.

use libseccomp::{ScmpArch, ScmpSyscall};
use moat_sentry::syscalls::{docs, table::TABLE, Class};

#[test]
fn every_known_syscall_has_exactly_one_line() {
    for nr in 0..=450 {
        let Ok(name) = ScmpSyscall::from(nr).get_name_by_arch(ScmpArch::X8664) else { continue };
        let n = TABLE.iter().filter(|e| e.name == name).count();
        assert_eq!(n, 1, "{name} ({nr}) has {n} table lines");
    }
    let mut names: Vec<&str> = TABLE.iter().map(|e| e.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), TABLE.len(), "duplicate names");
}

#[test]
fn dangerous_calls_are_never_passed_through() {
    for name in [
        "ioctl",
        "prctl",
        "mount",
        "umount2",
        "bpf",
        "keyctl",
        "add_key",
        "request_key",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "userfaultfd",
        "perf_event_open",
        "ptrace",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "unshare",
        "setns",
        "pivot_root",
        "process_vm_writev",
        "open_tree",
        "move_mount",
        "fsopen",
    ] {
        let e = TABLE.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(!matches!(e.class, Class::Passthrough(_)), "{name} must not be passed through");
    }
    let clone = TABLE.iter().find(|e| e.name == "clone").unwrap();
    assert!(
        matches!(clone.class, Class::Passthrough(moat_sentry::syscalls::Rule::ArgMaskedZero(0, m)) if m & libc::CLONE_NEWUSER as u64 != 0),
        "clone must be checked for namespace flags"
    );
}

#[test]
fn filter_compiles() {
    moat_sentry::platform::filter::compile(false, &[]).expect("sentry filter");
    moat_sentry::platform::filter::compile(true, &[3, 5]).expect("sentry filter with a netstack");
}

#[test]
fn committed_doc_is_fresh() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/syscalls.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == docs::markdown(),
        "docs/syscalls.md is stale: regenerate with `target/debug/moat syscalls --markdown > docs/syscalls.md`"
    );
}
