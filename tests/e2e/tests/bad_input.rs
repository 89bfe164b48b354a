//! Bad input gets a one-line error naming what is wrong, exit status 1, no
//! panic, and leaves nothing behind.

use moat_e2e::{assert_no_leaks, unique_id, Bundle, Moat};
use serde_json::json;

fn create_fails(edit: impl FnOnce(&mut serde_json::Value), want: &str) {
    let moat = Moat::new();
    let mut b = Bundle::busybox(&["true"]);
    b.edit(edit);
    let id = unique_id("bad");
    let err = moat.fails(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(err.contains(want), "wanted {want:?} in {err:?}");
    assert_no_leaks(&moat, &id, b.path());
    assert_eq!(std::fs::read_dir(moat.root()).map(|d| d.count()).unwrap_or(0), 0, "state root not empty");
}

#[test]
fn wrong_types_name_the_json_path() {
    create_fails(|s| s["process"]["terminal"] = json!(5), "config.json: process.terminal: invalid type");
    create_fails(
        |s| s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": -1, "hard": 1}]),
        "process.rlimits[0].soft",
    );
    create_fails(|s| s["linux"]["namespaces"][0]["type"] = json!("bogus"), "linux.namespaces[0].type");
    create_fails(|s| s["process"]["capabilities"]["bounding"] = json!(["CAP_NOPE"]), "process.capabilities.bounding");
}

#[test]
fn invalid_values_name_the_field() {
    create_fails(|s| s["ociVersion"] = json!("0.9"), "ociVersion");
    create_fails(|s| s["process"]["args"] = json!([]), "process.args");
    create_fails(|s| s["process"]["cwd"] = json!("relative"), "process.cwd");
    create_fails(|s| s["root"]["path"] = json!("/nonexistent/rootfs"), "root.path");
    create_fails(|s| s["linux"]["sysctl"] = json!({"kernel.panic": "1"}), "linux.sysctl.kernel.panic");
    // the host's own network namespace, joined by path: its sysctls are the host's
    create_fails(
        |s| {
            for n in s["linux"]["namespaces"].as_array_mut().unwrap() {
                if n["type"] == "network" {
                    n["path"] = format!("/proc/{}/ns/net", std::process::id()).into();
                }
            }
            s["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "77"});
        },
        "linux.sysctl.net.ipv4.ip_unprivileged_port_start",
    );
    create_fails(|s| s["mounts"][0]["destination"] = json!("proc"), "mounts[0].destination");
    create_fails(|s| s["hooks"] = json!({"prestart": [{"path": "relative"}]}), "hooks.prestart[0].path");
    create_fails(|s| s["linux"]["cgroupsPath"] = json!("/../../escape"), "cgroupsPath");
    create_fails(|s| s["process"]["args"] = json!(["/no/such/program"]), "/no/such/program");
    create_fails(
        |s| {
            s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        },
        "linux.uidMappings",
    );
}

#[test]
fn broken_json_and_missing_files() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["true"]);
    std::fs::write(b.path().join("config.json"), "{\"ociVersion\": ").unwrap();
    let id = unique_id("broken");
    let err = moat.fails(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(err.contains("config.json"), "{err}");
    assert_no_leaks(&moat, &id, b.path());
    let err = moat.fails(&["create", "--bundle", "/nonexistent-bundle", &id]);
    assert!(err.contains("/nonexistent-bundle"), "{err}");
}

#[test]
fn bad_ids_signals_and_flags() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["true"]);
    for id in ["../escape", "a/b", ".."] {
        let err = moat.fails(&["create", "--bundle", b.path().to_str().unwrap(), id]);
        assert!(err.contains("container id"), "{err}");
    }
    assert!(moat.fails(&["state", "nope"]).contains("does not exist"));
    assert!(moat.fails(&["kill", "nope", "KILL"]).contains("does not exist"));
    assert!(moat.fails(&["start", "nope"]).contains("does not exist"));
    assert!(moat.fails(&["--platform", "vm", "state", "x"]).contains("platform"));
    assert!(moat.fails(&["--directfs=maybe", "state", "x"]).contains("--directfs"));
    assert!(moat.fails(&["--file-access=open", "state", "x"]).contains("--file-access"));
    assert!(moat.fails(&["--systemd-cgroup", "run", "--bundle", b.path().to_str().unwrap(), "sd"]).contains("systemd"));
    let id = unique_id("sig");
    let sleeper = Bundle::busybox(&["sleep", "100"]);
    moat.ok(&["run", "-d", "--bundle", sleeper.path().to_str().unwrap(), &id]);
    assert!(moat.fails(&["kill", &id, "SIGNOPE"]).contains("unknown signal"));
    moat.ok(&["delete", "-f", &id]);
    assert_no_leaks(&moat, &id, sleeper.path());
    let out = moat.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn terminal_without_console_socket_is_refused() {
    create_fails(|s| s["process"]["terminal"] = json!(true), "console-socket");
}

#[test]
fn json_log_names_the_error_for_shims() {
    let moat = Moat::new();
    let b = Bundle::busybox(&["true"]);
    let log = b.path().join("log.json");
    let id = unique_id("log");
    let mut args = vec!["--log".to_string(), log.display().to_string(), "--log-format".into(), "json".into()];
    args.extend(["state".to_string(), id.clone()]);
    let out = moat.run(&args);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("does not exist"));
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_cgroup_in_use_is_not_shared() {
    let moat = Moat::new();
    let first = Bundle::busybox(&["sleep", "100"]);
    let id = unique_id("cgown");
    let path = format!("/moat-e2e/shared-{id}");
    let mut first = first;
    first.edit(|s| s["linux"]["cgroupsPath"] = json!(path));
    moat.ok(&["run", "-d", "--bundle", first.path().to_str().unwrap(), &id]);
    let mut second = Bundle::busybox(&["true"]);
    second.edit(|s| s["linux"]["cgroupsPath"] = json!(path));
    let id2 = unique_id("cgthief");
    let err = moat.fails(&["create", "--bundle", second.path().to_str().unwrap(), &id2]);
    assert!(err.contains("already has processes"), "{err}");
    // the first container is untouched by the failed create's cleanup
    assert_eq!(moat.status(&id), "running");
    moat.ok(&["delete", "-f", &id]);
    assert_no_leaks(&moat, &id, first.path());
    assert_no_leaks(&moat, &id2, second.path());
}

#[test]
fn a_hook_flooding_stderr_fails_without_hanging() {
    let moat = Moat::new();
    let mut b = Bundle::busybox(&["true"]);
    let flood = "head -c 300000 /dev/zero | tr '\\0' x >&2; exit 3";
    b.edit(|s| s["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", flood]}]}));
    let id = unique_id("flood");
    let t = std::time::Instant::now();
    let err = moat.fails(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(err.contains("createRuntime"), "{}", &err[..err.len().min(200)]);
    assert!(t.elapsed().as_secs() < 10, "create hung on the hook's stderr");
    assert_no_leaks(&moat, &id, b.path());
}
