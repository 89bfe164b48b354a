//! cgroup v2, on this v1-hybrid host: moat runs in a mount namespace of its
//! own where /sys/fs/cgroup is the unified hierarchy, so it sees a v2 host.
//! No controllers are enabled there (they are all bound to v1), so this
//! covers v2 placement, freezing, stats and removal; resource files are
//! covered by the unit tests in jail::cgroups::v2.

use std::process::Command;

use moat_e2e::{moat_bin, unique_id, Bundle, Moat};

#[test]
fn lifecycle_on_a_cgroup_v2_host() {
    let moat = Moat::new();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.edit(|s| s["linux"]["resources"] = serde_json::json!({}));
    let id = unique_id("v2");
    let m = format!("{} --root {}", moat_bin().display(), moat.root().display());
    let script = format!(
        "set -e; mount --bind /sys/fs/cgroup/unified /sys/fs/cgroup; \
         {m} run -d --bundle {bundle} {id}; \
         pid=$({m} state {id} | sed -n 's/.*\"pid\": \\([0-9]*\\).*/\\1/p'); \
         grep '^0::' /proc/$pid/cgroup; \
         {m} pause {id}; {m} state {id} | grep -o '\"status\": \"[a-z]*\"'; \
         cat /sys/fs/cgroup/moat/{id}/cgroup.freeze; \
         {m} resume {id}; {m} state {id} | grep -o '\"status\": \"[a-z]*\"'; \
         {m} ps --format json {id}; \
         {m} delete --force {id}; \
         test ! -e /sys/fs/cgroup/moat/{id} && echo removed",
        bundle = b.path().display()
    );
    let out = Command::new("unshare").args(["-m", "sh", "-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("0::/moat/{id}"), "{text}");
    assert_eq!(lines[1], "\"status\": \"paused\"");
    assert_eq!(lines[2], "1");
    assert_eq!(lines[3], "\"status\": \"running\"");
    assert!(lines[4].starts_with('[') && lines[4].len() > 2, "{text}");
    assert_eq!(lines[5], "removed");
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/unified/moat/{id}")).exists());
    assert!(!moat.root().join(&id).exists());
}
