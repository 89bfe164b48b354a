//! `--directfs=false`: the stubs' view of the container's files is a FUSE
//! mount the Sentry serves from the container's gofer over 9P (opened files
//! passed through to the gofer's fds). Programs run from it, read it, list
//! it; the Sentry still makes every change in the real tree, found from the
//! caller's cwd and fds in that view; the kernel checks permissions from the
//! gofer's attributes; the gofer ends with the sandbox.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use moat_e2e::{assert_no_leaks, unique_id, Bundle, Moat};
use serde_json::json;

fn gofer_moat() -> Moat {
    let mut m = Moat::new();
    m.global = vec!["--platform".into(), "sentry".into(), "--directfs=false".into()];
    m
}

/// A busybox bundle running `args`, rootfs writable, `data` bound on /data,
/// a root-only /secret and a file whose inode number the test knows.
fn bundle(args: &[&str], data: &std::path::Path) -> Bundle {
    let mut b = Bundle::busybox(args);
    b.edit(|s| s["root"]["readonly"] = false.into());
    b.mount(json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]}));
    let secret = b.rootfs().join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(data.join("from-host"), "host data\n").unwrap();
    b
}

#[test]
fn the_gofer_serves_the_view_and_changes_still_land_in_the_bundle() {
    let data = tempfile::tempdir().unwrap();
    let moat = gofer_moat();
    let b = bundle(&["sleep", "60"], data.path());
    let id = unique_id("gofer");
    moat.ok(&["create".as_ref(), "--bundle".as_ref(), b.path().as_os_str(), id.as_ref()]);
    moat.ok(&["start", &id]);
    // from the host: the container's root is the gofer's FUSE mount, with
    // the kernel's own /dev and the Sentry's /proc stacked on it
    let pid = moat.ok(&["state", &id]);
    let pid: serde_json::Value = serde_json::from_str(&pid).unwrap();
    let pid = pid["pid"].as_i64().unwrap();
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let fstype = |point: &str| {
        info.lines()
            .rfind(|l| l.split(' ').nth(4) == Some(point))
            .map(|l| l.split(" - ").nth(1).unwrap_or("").split(' ').take(2).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(fstype("/"), "fuse moat-gofer", "{info}");
    assert_eq!(fstype("/dev"), "tmpfs tmpfs", "{info}");
    assert_eq!(fstype("/proc"), "fuse proc", "{info}");

    let script = r#"set -e
        cat /data/from-host
        ls /bin | grep -qx busybox
        stat -c %i /etc/passwd
        cd /tmp && echo made > rel && cat rel
        mkdir -p deep/er && cd deep && touch er/f && mv er/f er/g && ln -s g er/link && readlink er/link
        cd / && echo changed > /data/from-host && rm /tmp/rel
        echo hi > /dev/null
        echo done"#;
    let out = moat.ok(&["exec", &id, "sh", "-c", script]);
    let ino = std::fs::metadata(b.rootfs().join("etc/passwd")).unwrap().ino();
    assert_eq!(out, format!("host data\n{ino}\nmade\ng\ndone\n"));
    assert!(b.rootfs().join("tmp/deep/er/g").exists());
    assert!(!b.rootfs().join("tmp/rel").exists());
    assert_eq!(std::fs::read_to_string(data.path().join("from-host")).unwrap(), "changed\n");
    // what the view keeps stays true through the Sentry's own changes: a
    // missing name made, modes, sizes written through the real file, link
    // counts, removals and renames
    let script = r#"set -e
        cd /tmp && [ ! -e new ] && ls new 2>/dev/null || true
        echo x > new && [ -e new ] && echo made
        chmod 600 new && stat -c %a new
        echo more >> new && stat -c %s new
        ln new hard && stat -c %h new && rm hard && stat -c %h new
        mkdir d && touch d/f && ls d && rm d/f && ls d | wc -l && rmdir d && [ ! -e d ] && echo gone
        mv new renamed && [ ! -e new ] && cat renamed
        ln -s renamed sl && readlink sl && rm sl && ln -s other sl && readlink sl
        exec 3>>renamed && [ "$(stat -c %d:%i renamed)" = "$(stat -L -c %d:%i /dev/fd/3)" ] && echo one-device
        chmod 644 /secret"#;
    let out = moat.ok(&["exec", &id, "sh", "-c", script]);
    assert_eq!(out, "made\n600\n7\n2\n1\nf\n0\ngone\nx\nmore\nrenamed\nother\none-device\n");
    assert_eq!(moat.ok(&["exec", "--user", "1000:1000", &id, "cat", "/secret"]), "root only\n");
    moat.ok(&["exec", &id, "chmod", "600", "/secret"]);
    // below a mount of the spec, a change made on the host shows at once
    assert!(!moat.run(&["exec", &id, "cat", "/data/later"]).status.success());
    std::fs::write(data.path().join("later"), "from the host\n").unwrap();
    assert_eq!(moat.ok(&["exec", &id, "cat", "/data/later"]), "from the host\n");
    std::fs::write(data.path().join("later"), "longer, from the host\n").unwrap();
    assert_eq!(moat.ok(&["exec", &id, "stat", "-c", "%s", "/data/later"]), "22\n");
    // the kernel checks permissions from the gofer's attributes
    let out = moat.run(&["exec", "--user", "1000:1000", &id, "cat", "/secret"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{out:?}");
    assert_eq!(moat.ok(&["exec", &id, "cat", "/secret"]), "root only\n");
    // a remount is refused; a write as root goes through the Sentry to the real file
    let out = moat.run(&["exec", &id, "sh", "-c", "mount -o remount,rw / 2>&1; echo x > /secret; cat /secret"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().last(), Some("x"));
    moat.ok(&["kill", &id, "KILL"]);
    moat.wait_status(&id, "stopped");
    moat.ok(&["delete", &id]);
    // the gofer ended with the sandbox (it ran in the container's cgroup)
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn a_pipeline_with_find_tar_and_gzip_runs_from_the_gofer_view() {
    // busybox's own applets: a shell pipeline, find, tar and gzip through the view
    let data = tempfile::tempdir().unwrap();
    let moat = gofer_moat();
    let script = r#"set -e
        find /bin -type f -name 'b*' | sort | head -1
        tar -C / -czf /tmp/etc.tgz etc && tar -tzf /tmp/etc.tgz | grep -c passwd
        mkdir /tmp/x && tar -C /tmp/x -xzf /tmp/etc.tgz && cmp /etc/passwd /tmp/x/etc/passwd && echo same"#;
    let b = bundle(&["sh", "-c", script], data.path());
    let id = unique_id("gofer-work");
    let out = moat.run(&["run".as_ref(), "--bundle".as_ref(), b.path().as_os_str(), id.as_ref()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/bin/busybox\n1\nsame\n");
    assert_no_leaks(&moat, &id, b.path());
}
