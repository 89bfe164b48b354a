//! The sandbox's /proc and /sys under the Sentry: they show the sandbox and
//! its own kernel, and none of the host's procfs or sysfs is reachable from
//! inside, even by a program holding every capability.

use moat_e2e::{assert_no_leaks, run_fg, unique_id, Bundle, Moat};

fn sentry() -> Moat {
    let mut m = Moat::new();
    m.global = vec!["--platform".into(), "sentry".into()];
    m
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `key=value` lines of a probe's output.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key} in {out}"))
}

#[test]
fn proc_shows_the_sandbox_and_its_kernel() {
    let moat = sentry();
    let script = r#"
        echo version=$(cat /proc/version)
        echo pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')
        echo ps=$(ps -o pid,comm | tail -n +2 | awk '{print $2}' | sort | tr '\n' ' ')
        echo uptime=$(cut -d. -f1 /proc/uptime)
        echo memtotal=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
        echo memused=$(free | awk '/^Mem:/ {print $3}')
        echo 500 > /proc/self/oom_score_adj
        echo oom=$(cat /proc/self/oom_score_adj)
        echo comm-write=$( (echo x > /proc/self/comm) 2>/dev/null && echo yes || echo no)
        echo exe=$(readlink /proc/self/exe)
        echo self=$(readlink /proc/self)
        echo hostname=$(cat /proc/sys/kernel/hostname)
        echo osrelease=$(cat /proc/sys/kernel/osrelease)
        echo sysctl=$(cat /proc/sys/net/ipv4/ip_forward)
        echo procline=$(grep ' /proc ' /proc/self/mountinfo | sed 's/.* - //')
        echo cwd=$(cd /proc/self && cat comm)
        echo status=$(grep -c '^Pid:' /proc/1/status)
        echo cmdline=$(tr '\0' ' ' < /proc/1/cmdline)
        echo stderr-alias > /dev/stderr
        echo alias-of-proc=$(cat /dev/stdin < /proc/version | cut -c1-13)
        echo stat-of-proc=$(stat -L -c %F /dev/stdin < /proc/cpuinfo)
        echo fd-alias=$(cat /dev/fd/0 < /etc/hostname)
        cat /proc/self/mountinfo > /tmp/mountinfo
        echo mountinfo-lines=$(wc -l < /tmp/mountinfo)
        echo sys=$(ls /sys | tr '\n' ' ')
        echo cpus=$(cat /sys/devices/system/cpu/online)
        echo nproc=$(nproc)
        echo net=$(ls /sys/class/net | tr '\n' ' ')
        echo lo-mtu=$(cat /sys/class/net/lo/mtu)
        echo cgroup=$(ls /sys/fs/cgroup | wc -l)
        echo sysline=$(grep ' /sys ' /proc/self/mountinfo | sed 's/.* - //')
    "#;
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.tmp().edit(|s| {
        s["hostname"] = "procbox".into();
        s["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
        s["linux"]["resources"]["memory"] = serde_json::json!({"limit": 268_435_456});
    });
    std::fs::write(b.rootfs().join("etc/hostname"), "from-a-file\n").unwrap();
    let id = unique_id("proc");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(field(&out, "version").contains("moat"), "{out}");
    // pid 1 (sh) and the short-lived helpers of the script: nothing of the host's
    let pids: Vec<u32> = field(&out, "pids").split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert!(pids.contains(&1) && pids.iter().all(|p| *p < 100), "{out}");
    // ps sees the script's own processes only (the pipeline's later stages may not have started yet)
    let comms: Vec<&str> = field(&out, "ps").split_whitespace().collect();
    assert!(comms.contains(&"ps") && comms.contains(&"sh"), "{out}");
    // ("exe": a busybox applet started through /proc/self/exe, before it names itself)
    assert!(comms.iter().all(|c| ["ps", "sh", "tail", "awk", "sort", "tr", "exe"].contains(c)), "{out}");
    assert!(field(&out, "uptime").parse::<u64>().unwrap() < 60, "the sandbox's own uptime: {out}");
    assert_eq!(field(&out, "memtotal"), "262144", "the memory limit, in kB: {out}");
    assert_eq!(field(&out, "oom"), "500", "a process sets its own OOM score, as on Linux: {out}");
    assert_eq!(field(&out, "comm-write"), "no", "every other /proc file is read-only: {out}");
    let used: u64 = field(&out, "memused").parse().unwrap();
    assert!(used > 0 && used < 262_144, "the container's own usage: {out}");
    assert_eq!(field(&out, "exe"), "/bin/busybox", "readlink is a busybox applet: {out}");
    assert!(field(&out, "self").parse::<u32>().unwrap() < 100, "{out}");
    assert_eq!(field(&out, "hostname"), "procbox");
    assert!(field(&out, "osrelease").contains("moat"), "{out}");
    assert_eq!(field(&out, "sysctl"), "1", "the spec's sysctl: {out}");
    assert_eq!(field(&out, "procline"), "proc proc rw", "{out}");
    assert_eq!(field(&out, "cwd"), "cat");
    assert_eq!(field(&out, "status"), "1");
    assert!(field(&out, "cmdline").starts_with("sh -c echo version="), "{out}");
    assert!(err.contains("stderr-alias"), "/dev/stderr reopens the caller's stderr: {err}");
    // an alias of a /proc file: the Sentry's own FUSE server answers the Sentry (no deadlock)
    assert_eq!(field(&out, "alias-of-proc"), "Linux version");
    assert_eq!(field(&out, "stat-of-proc"), "regular file");
    assert_eq!(field(&out, "fd-alias"), "from-a-file");
    assert!(field(&out, "mountinfo-lines").parse::<u32>().unwrap() >= 5, "{out}");
    assert_eq!(field(&out, "sys").trim(), "class devices fs kernel", "{out}");
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    assert_eq!(field(&out, "cpus"), online.trim());
    assert!(field(&out, "nproc").parse::<u32>().unwrap() >= 1, "{out}");
    assert_eq!(field(&out, "net").trim(), "lo", "the sandbox's own interfaces: {out}");
    assert_eq!(field(&out, "lo-mtu"), "65536");
    assert!(field(&out, "cgroup").parse::<u32>().unwrap() > 0, "the spec's cgroup mount sits on /sys: {out}");
    assert_eq!(field(&out, "sysline"), "sysfs sysfs rw", "{out}");
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn mountinfo_names_no_host_path() {
    let moat = sentry();
    let b = Bundle::busybox(&["cat", "/proc/self/mountinfo", "/proc/self/mounts"]);
    let id = unique_id("minfo");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    let bundle = b.path().display().to_string();
    assert!(out.contains(" / / "), "{out}");
    assert!(!out.contains(&bundle), "the bundle's host path leaks: {out}");
    assert!(!out.contains(" fuse"), "{out}");
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn the_hosts_procfs_is_out_of_reach() {
    let moat = sentry();
    // each line names a host procfs file a container must not read or
    // write; with every capability the program still finds none of them
    let script = r#"
        for f in /proc/kallsyms /proc/kcore /proc/sysrq-trigger /proc/sched_debug /proc/timer_list \
                 /proc/keys /proc/modules /proc/sys/kernel/core_pattern /proc/sys/kernel/modprobe \
                 /proc/1/mem /proc/1/pagemap /proc/1/stack /proc/1/syscall /proc/self/mem /proc/config.gz \
                 /proc/sys/vm/drop_caches /proc/acpi /proc/bus /proc/irq /proc/scsi /proc/kmsg /proc/vmallocinfo \
                 /sys/firmware /sys/kernel/debug /sys/kernel/security /sys/module /sys/power/state /sys/block \
                 /sys/bus/pci /sys/kernel/mm/transparent_hugepage/khugepaged /sys/devices/system/cpu/cpufreq; do
            if [ -e "$f" ]; then echo "present $f"; fi
        done
        echo c > /proc/sysrq-trigger 2>/dev/null && echo "wrote sysrq"
        echo x > /proc/sys/kernel/hostname 2>/dev/null && echo "wrote hostname"
        mkdir /proc/x 2>/dev/null && echo "mkdir in proc"
        ls /proc/1/root/ | tr '\n' ' ' > /tmp/a; ls / | tr '\n' ' ' > /tmp/b
        cmp -s /tmp/a /tmp/b || echo "/proc/1/root is not the sandbox root"
        mount -t proc proc /mnt 2>/dev/null && echo "mounted a procfs"
        mount -t sysfs sysfs /mnt 2>/dev/null && echo "mounted a sysfs"
        echo 1 > /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null && echo "wrote a sysfs knob"
        echo done
    "#;
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.tmp().edit(|s| {
        let all: Vec<String> =
            ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_SYS_RAWIO", "CAP_SYS_MODULE"]
                .map(String::from)
                .to_vec();
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set] = all.clone().into();
        }
        for set in ["inheritable", "ambient"] {
            s["process"]["capabilities"][set] = serde_json::json!([]);
        }
        s["process"]["noNewPrivileges"] = false.into();
        s["linux"]["maskedPaths"] = serde_json::json!([]);
        s["linux"]["readonlyPaths"] = serde_json::json!([]);
    });
    let id = unique_id("hostproc");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "done\n", "the host's procfs was reachable");
    assert_no_leaks(&moat, &id, b.path());

    // the control: the same probe on the native platform does reach the
    // host's procfs (no masks), so the probe can see an escape
    let mut native = Moat::new();
    native.global = vec!["--platform".into(), "native".into()];
    let id = unique_id("hostproc-native");
    let (code, out, err) = run_fg(&native, &b, &id);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("present /proc/kallsyms") && out.contains("present /proc/sys/kernel/core_pattern"), "{out}");
    assert!(out.contains("present /sys/module") && out.contains("present /sys/firmware"), "{out}");
    assert_no_leaks(&native, &id, b.path());
}

#[test]
fn a_spec_procfs_or_sysfs_anywhere_else_is_refused() {
    for (fstype, dest, why) in [
        ("proc", "/mnt", "proc can only be mounted at /proc (not /mnt)"),
        ("sysfs", "/mnt/s", "sysfs can only be mounted at /sys (not /mnt/s)"),
    ] {
        let moat = sentry();
        let mut b = Bundle::busybox(&["true"]);
        b.mount(serde_json::json!({"destination": dest, "type": fstype, "source": fstype}));
        let id = unique_id(fstype);
        let (code, _, err) = run_fg(&moat, &b, &id);
        assert_ne!(code, 0);
        assert!(err.contains(why), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert_no_leaks(&moat, &id, b.path());
    }
}

#[test]
fn the_sentry_lends_no_access_of_its_own() {
    // the Sentry reads /proc and reopens fds with its own capabilities; a
    // program without them must get no more than Linux would give it
    let moat = sentry();
    let script = r#"
        cat /proc/1/environ > /dev/null 2>&1 && echo "read init's environ"
        ls /proc/1/fd > /dev/null 2>&1 && echo "listed init's fds"
        readlink /proc/1/cwd > /dev/null 2>&1 && echo "read init's cwd"
        exec 3< /etc/passwd
        (echo x >> /proc/self/fd/3) 2>/dev/null && echo "wrote through a read-only fd"
        (echo x >> /dev/fd/3) 2>/dev/null && echo "wrote through a read-only fd by /dev/fd"
        grep -q '^x$' /etc/passwd && echo "/etc/passwd changed"
        cat /proc/self/status > /dev/null || echo "cannot read own status"
        echo done
    "#;
    let mut b = Bundle::busybox(&["sh", "-c", "sleep 1000"]);
    b.edit(|s| s["root"]["readonly"] = false.into());
    let id = unique_id("lend");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let out = moat.ok(&["exec", "--user", "1000:1000", &id, "sh", "-c", script]);
    assert_eq!(out, "done\n", "the Sentry lent its access");
    // the control: root in the container reads init's environ
    let out = moat.ok(&["exec", &id, "sh", "-c", "cat /proc/1/environ | tr '\\0' '\\n' | grep -c PATH"]);
    assert_eq!(out.trim(), "1");
    // root without CAP_SYS_PTRACE (the default set) cannot look into another user's process
    moat.ok(&["exec", "-d", "--user", "1000:1000", &id, "sleep", "1000"]);
    let probe = r#"
        for p in /proc/[0-9]*; do
            [ "$(stat -c %u $p)" = 1000 ] || continue
            cat $p/environ > /dev/null 2>&1 && echo "read a uid-1000 environ"
            readlink $p/exe > /dev/null 2>&1 && echo "read a uid-1000 exe"
            ls $p/fd > /dev/null 2>&1 && echo "listed a uid-1000 fd dir"
            echo checked
        done
    "#;
    let out = moat.ok(&["exec", &id, "sh", "-c", probe]);
    assert_eq!(out, "checked\n", "{out}");
    moat.ok(&["delete", "--force", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn no_way_around_the_sentrys_checks() {
    // found in review: an O_PATH fd reopened through /dev/fd, O_TRUNC through
    // a read-only fd, the Sentry's own threads, address fields of another
    // user's stat — each tried from inside, as an unprivileged user
    let moat = sentry();
    let probe = r#"
        python3 - <<'PY'
import os
fd = os.open('/etc/shadow', os.O_PATH)
try:
    open(f'/dev/fd/{fd}').read(); print('read /etc/shadow through an O_PATH fd')
except OSError:
    pass
with open('/tmp/ro', 'w') as f:
    f.write('keep')
os.chmod('/tmp/ro', 0o444)
ro = os.open('/tmp/ro', os.O_RDONLY)
try:
    os.close(os.open(f'/dev/fd/{ro}', os.O_RDONLY | os.O_TRUNC))
except OSError:
    pass
if open('/tmp/ro').read() != 'keep':
    print('truncated a read-only file through its fd')
PY
        for i in $(seq 1200); do cat /proc/self/stat; done > /dev/null
        # every number the pids above could have reached, without a process per probe
        for ((n = 1; n < 6000; n++)); do
            { read -r line < /proc/$n/status; } 2>/dev/null || continue
            [[ $line == *moat* ]] && echo "the Sentry shows as $n"
        done
        echo addr=$(cut -d' ' -f26-28 /proc/$ROOTS/stat)
        echo done
    "#;
    // root starts a process; the probe runs as uid 1000
    let script = format!(
        "sleep 100 & export ROOTS=$!; setpriv --reuid 1000 --regid 1000 --clear-groups bash -c {}; kill $ROOTS",
        shell_quote(probe)
    );
    let mut b = moat_e2e::debian::bundle(&["bash", "-c", &script]);
    b.edit(|s| {
        for set in ["bounding", "effective", "permitted"] {
            let caps = s["process"]["capabilities"][set].as_array_mut().unwrap();
            caps.extend(["CAP_SETUID".into(), "CAP_SETGID".into()]);
        }
    });
    let id = unique_id("around");
    let (code, out, err) = run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "addr=0 0 0\ndone\n", "{out}");
    assert_no_leaks(&moat, &id, b.path());
}
