//! The text rewrites of the sandbox's /proc: what the kernel's procfs says,
//! as the sandbox should see it — mount tables in the spec's order without
//! host layer paths, cgroup paths from the container's cgroup, start times
//! from the sandbox's boot, address fields hidden from who may not trace.

use crate::vfs::remote::IdMap;

/// USER_HZ: the clock-tick unit of /proc/PID/stat's times
const TICKS: u128 = 100;

/// /proc/PID/cgroup as the sandbox's cgroup namespace shows it: paths
/// from the container's cgroup (`own`, per hierarchy), which is "/".
pub(super) fn rewrite_cgroup(real: &str, own: &[(String, String)]) -> String {
    real.lines()
        .map(|l| {
            let Some((h, path)) = l.rsplit_once(':') else { return format!("{l}\n") };
            let root = own.iter().find(|(k, _)| k == h).map(|(_, p)| p.as_str()).unwrap_or("/");
            let inside = match path.strip_prefix(root) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') || root == "/" => format!("/{}", rest.trim_start_matches('/')),
                _ => path.to_string(),
            };
            format!("{h}:{inside}\n")
        })
        .collect()
}

/// /proc/PID/stat with the start time counted from the sandbox's boot.
/// `traceable`: whether the reader passes procfs's ptrace check; if not,
/// the address-layout fields read 0, as procfs shows them to such a reader.
/// /proc/PID/status with its Uid, Gid and Groups lines numbered as the
/// process's user namespace numbers them (`uids`, `gids`: its maps).
pub(super) fn rewrite_status(real: &str, uids: &IdMap, gids: &IdMap) -> String {
    real.lines()
        .map(|l| {
            let (map, key) = match l.split_once(':') {
                Some((k @ "Uid", _)) => (uids, k),
                Some((k @ ("Gid" | "Groups"), _)) => (gids, k),
                _ => return format!("{l}\n"),
            };
            let ids: Vec<String> = l[key.len() + 1..]
                .split_whitespace()
                .map(|v| v.parse::<u32>().map(|id| map.inside(id).to_string()).unwrap_or_else(|_| v.to_string()))
                .collect();
            match key {
                "Groups" => format!("{key}:\t{}{}\n", ids.join(" "), if ids.is_empty() { "" } else { " " }),
                _ => format!("{key}:\t{}\n", ids.join("\t")),
            }
        })
        .collect()
}

pub(super) fn rewrite_stat(real: &str, boot: std::time::Duration, traceable: bool) -> String {
    let Some(close) = real.rfind(')') else { return real.to_string() };
    let (head, tail) = real.split_at(close + 1);
    let mut fields: Vec<String> = tail.split_whitespace().map(str::to_string).collect();
    if !traceable {
        // start_code, end_code, start_stack, esp, eip (26-30); start_data
        // through env_end (45-51)
        for field in (26..=30).chain(45..=51) {
            if let Some(f) = fields.get_mut(field - 3) {
                *f = "0".into();
            }
        }
    }
    // fields after "(comm)" start at field 3; starttime is field 22
    if let Some(f) = fields.get_mut(19) {
        if let Ok(t) = f.parse::<u128>() {
            let shift = boot.as_millis() * TICKS / 1000;
            *f = t.saturating_sub(shift).to_string();
        }
    }
    format!("{head} {}\n", fields.join(" "))
}

/// The lines of a mount table in the order of the spec's mounts (field
/// `at` is the mount point): the Sentry's /proc and /sys were attached
/// last, but belong where the spec put them. A mount sorts with the
/// deepest spec destination it lies in; the root and mounts in no
/// destination come first, each group keeping the kernel's order.
pub(super) fn in_spec_order<'a>(table: &'a str, at: usize, order: &[String]) -> Vec<&'a str> {
    let key = |line: &str| {
        let Some(point) = line.split(' ').nth(at) else { return 0 };
        order
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                let d = d.trim_end_matches('/');
                point == d || point.strip_prefix(d).is_some_and(|r| r.starts_with('/'))
            })
            .max_by_key(|(_, d)| d.len())
            .map_or(0, |(i, _)| i + 1)
    };
    let mut lines: Vec<&str> = table.lines().collect();
    lines.sort_by_key(|l| key(l));
    lines
}

/// Mount options that name host paths.
fn host_option(o: &str) -> bool {
    ["lowerdir=", "upperdir=", "workdir=", "datadir=", "metacopy=", "redirect_dir=", "index=", "xino="]
        .iter()
        .any(|p| o.starts_with(p))
}

fn clean_options(opts: &str) -> String {
    let kept: Vec<&str> = opts.split(',').filter(|o| !host_option(o)).collect();
    kept.join(",")
}

/// Whether a mount is one of the Sentry's (FUSE, with the source naming
/// what it stands for).
fn ours(fstype: &str, source: &str) -> bool {
    fstype.starts_with("fuse") && (source == "proc" || source == "sysfs")
}

/// One line of mountinfo: bind mounts show their configured sources (the
/// root of the mount within its filesystem, as on Linux), but the
/// container's root shows as "/" and overlay's layer directories go; the
/// Sentry's /proc and /sys show as proc and sysfs.
///
/// The stubs' mounts are a read-only replica: a mount `writable` says is
/// writable in the real tree shows "rw", as the container's own.
pub(super) fn rewrite_mountinfo_line(line: &str, cgroup_root: Option<&str>, writable: &dyn Fn(&str) -> bool) -> String {
    let Some((left, right)) = line.split_once(" - ") else { return format!("{line}\n") };
    let mut l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.splitn(3, ' ').collect();
    if l.len() < 6 || r.len() < 3 {
        return format!("{line}\n");
    }
    if l[4] == "/" {
        l[3] = "/";
    }
    let opts_rw;
    if l[5].split(',').any(|o| o == "ro") && writable(l[4]) {
        opts_rw = as_rw(l[5]);
        l[5] = &opts_rw;
    }
    let inside;
    if let Some(root) = cgroup_root.filter(|_| r[0] == "cgroup" || r[0] == "cgroup2") {
        if let Some(rest) = l[3].strip_prefix(root).filter(|r| r.is_empty() || r.starts_with('/')) {
            inside = if rest.is_empty() { "/".to_string() } else { rest.to_string() };
            l[3] = &inside;
        }
    }
    let (fstype, source, opts) =
        if ours(r[0], r[1]) { (r[1], r[1], "rw".to_string()) } else { (r[0], r[1], clean_options(r[2])) };
    format!("{} - {fstype} {source} {opts}\n", l.join(" "))
}

/// Mount options with "ro" turned "rw".
fn as_rw(opts: &str) -> String {
    opts.split(',').map(|o| if o == "ro" { "rw" } else { o }).collect::<Vec<_>>().join(",")
}

/// One line of /proc/PID/mounts, cleaned the same way.
pub(super) fn rewrite_mounts_line(line: &str, writable: &dyn Fn(&str) -> bool) -> String {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() < 6 {
        return format!("{line}\n");
    }
    if ours(f[2], f[0]) {
        let ro = if f[3].split(',').any(|o| o == "ro") { "ro" } else { "rw" };
        return format!("{0} {1} {0} {ro},nosuid,nodev,noexec 0 0\n", f[0], f[1]);
    }
    let opts = clean_options(f[3]);
    let opts = if opts.split(',').any(|o| o == "ro") && writable(f[1]) { as_rw(&opts) } else { opts };
    format!("{} {} {} {} {} {}\n", f[0], f[1], f[2], opts, f[4], f[5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replica_shows_the_trees_flags() {
        let l = "45 44 254:0 / / ro,relatime - ext4 /dev/vda rw";
        let rw = |p: &str| p == "/";
        assert_eq!(rewrite_mountinfo_line(l, None, &rw), "45 44 254:0 / / rw,relatime - ext4 /dev/vda rw\n");
        assert_eq!(rewrite_mountinfo_line(l, None, &|_| false), format!("{l}\n"));
        assert_eq!(rewrite_mounts_line("/dev/vda / ext4 ro,relatime 0 0", &rw), "/dev/vda / ext4 rw,relatime 0 0\n");
    }

    #[test]
    fn mountinfo_loses_host_paths() {
        let l = "312 290 0:61 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/x/1/fs,upperdir=/var/lib/x/2/fs,workdir=/var/lib/x/2/work";
        assert_eq!(rewrite_mountinfo_line(l, None, &|_| false), "312 290 0:61 / / rw,relatime - overlay overlay rw\n");
        let b = "320 312 254:0 /srv/data /data rw - ext4 /dev/vda rw";
        assert_eq!(rewrite_mountinfo_line(b, None, &|_| false), format!("{b}\n"), "a bind mount shows its source");
        let r = "300 290 254:0 /tmp/bundle/rootfs / rw - ext4 /dev/vda rw";
        assert_eq!(rewrite_mountinfo_line(r, None, &|_| false), "300 290 254:0 / / rw - ext4 /dev/vda rw\n");
        let p = "330 312 0:70 / /proc rw,nosuid,nodev,relatime - fuse proc rw,user_id=0,group_id=0,allow_other";
        assert_eq!(
            rewrite_mountinfo_line(p, None, &|_| false),
            "330 312 0:70 / /proc rw,nosuid,nodev,relatime - proc proc rw\n"
        );
        let shared = "40 30 0:5 / /dev rw shared:3 master:1 - tmpfs tmpfs rw,mode=755";
        assert_eq!(rewrite_mountinfo_line(shared, None, &|_| false), format!("{shared}\n"));
        let s = "331 312 0:71 / /sys ro,nosuid - fuse sysfs rw,user_id=0";
        assert_eq!(rewrite_mountinfo_line(s, None, &|_| false), "331 312 0:71 / /sys ro,nosuid - sysfs sysfs rw\n");
        let c = "340 331 0:30 /moat/c1 /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids";
        let want = "340 331 0:30 / /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids\n";
        assert_eq!(rewrite_mountinfo_line(c, Some("/moat/c1"), &|_| false), want);
        assert_eq!(rewrite_mountinfo_line(c, None, &|_| false), format!("{c}\n"));
    }

    #[test]
    fn cgroup_paths_start_at_the_container() {
        let own = vec![("12:pids".to_string(), "/moat/c1".to_string()), ("0:".to_string(), "/moat/c1".to_string())];
        let real = "12:pids:/moat/c1\n0::/moat/c1/sub\n3:cpu:/other\n";
        assert_eq!(rewrite_cgroup(real, &own), "12:pids:/\n0::/sub\n3:cpu:/other\n");
        assert_eq!(rewrite_cgroup("12:pids:/moat/c10\n", &own), "12:pids:/moat/c10\n");
    }

    #[test]
    fn mount_tables_follow_the_spec_order() {
        let table = "1 0 0:1 / / rw - ext4 a rw\n\
                     2 1 0:2 / /dev rw - tmpfs b rw\n\
                     3 2 0:3 / /dev/pts rw - devpts c rw\n\
                     4 2 0:4 / /dev/null rw - devtmpfs d rw\n\
                     5 1 0:5 / /proc rw - fuse proc rw\n\
                     6 1 0:6 / /sys ro - fuse sysfs rw\n\
                     7 6 0:7 / /sys/fs/cgroup ro - cgroup2 e rw\n";
        let order: Vec<String> = ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup/"].map(String::from).to_vec();
        let ids: Vec<&str> = in_spec_order(table, 4, &order).iter().map(|l| &l[..1]).collect();
        assert_eq!(ids, ["1", "5", "2", "4", "3", "6", "7"]);
    }

    #[test]
    fn mounts_show_proc_as_proc() {
        let l = "proc /proc fuse rw,nosuid,user_id=0 0 0";
        assert_eq!(rewrite_mounts_line(l, &|_| false), "proc /proc proc rw,nosuid,nodev,noexec 0 0\n");
        let o = "overlay / overlay rw,lowerdir=/a,upperdir=/b,workdir=/c 0 0";
        assert_eq!(rewrite_mounts_line(o, &|_| false), "overlay / overlay rw 0 0\n");
        assert_eq!(
            rewrite_mounts_line("sysfs /sys fuse ro,nosuid 0 0", &|_| false),
            "sysfs /sys sysfs ro,nosuid,nodev,noexec 0 0\n"
        );
    }

    #[test]
    fn status_ids_are_the_namespaces() {
        let real = "Name:\tsh\nUid:\t1073741824\t1073741824\t1073741824\t1073742824\nGid:\t1073741824\t0\t1073741824\t1073741824\nGroups:\t1073741834 \nNSpid:\t7\n";
        let m = IdMap::parse("0 1073741824 65536");
        assert_eq!(
            rewrite_status(real, &m, &m),
            "Name:\tsh\nUid:\t0\t0\t0\t1000\nGid:\t0\t65534\t0\t0\nGroups:\t10 \nNSpid:\t7\n"
        );
        let host = IdMap::parse("0 0 4294967295");
        assert_eq!(rewrite_status("Groups:\t\n", &host, &host), "Groups:\t\n");
    }

    #[test]
    fn stat_start_time_counts_from_the_sandbox_boot() {
        let real = "7 (a (b) c) S 1 7 7 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10 0 0 0\n";
        let out = rewrite_stat(real, std::time::Duration::from_secs(100), true);
        assert_eq!(out, "7 (a (b) c) S 1 7 7 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 2345 1000 10 0 0 0\n");
        // before the boot: zero, never negative
        assert!(rewrite_stat(real, std::time::Duration::from_secs(1000), true).contains(" 0 1000 10 "));
    }
}
