//! The sandbox's /proc: only the sandbox's processes, the sandbox's own
//! kernel identity, nothing of the host's that a container has no business
//! reading.
//!
//! Per-process entries are read, on the stub's behalf, from a procfs
//! instance of the sandbox's pid namespace that only the Sentry holds (the
//! stubs never see a real procfs); only the entries listed here exist, and
//! the ones that would show host paths (mounts, mountinfo) or the host's
//! clock (stat) are rewritten. Global files are the Sentry's own: version,
//! uptime and loadavg of the sandbox, meminfo within the container's memory
//! limit, the cpuinfo of the host, /proc/sys with a short read-only list.
//! Nothing can be written (EROFS) but a process's oom_score_adj (and oom_adj),
//! which the Sentry writes through, as an unprivileged process would.

use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::readlinkat;

mod rewrite;

use super::fuse::{Attr, Ctx, DirEntry, Filesystem, Kind};
use super::proxy;
use crate::kernel::{Kernel, RELEASE, VERSION};
use rewrite::{
    in_spec_order, rewrite_cgroup, rewrite_mountinfo_line, rewrite_mounts_line, rewrite_stat, rewrite_status,
};

/// Files of /proc itself.
const GLOBAL: &[&str] =
    &["cmdline", "cpuinfo", "filesystems", "loadavg", "meminfo", "stat", "uptime", "version", "vmstat"];

/// Files of /proc/PID (and /proc/PID/task/TID) passed through as the
/// sandbox's procfs has them. Not here: mem, pagemap, stack, syscall,
/// mountstats, attr, and anything else that reaches past the process.
const PID_FILES: &[&str] = &[
    "auxv",
    "cmdline",
    "comm",
    "coredump_filter",
    "cpuset",
    "environ",
    "gid_map",
    "io",
    "limits",
    "loginuid",
    "maps",
    "oom_adj",
    "oom_score",
    "oom_score_adj",
    "personality",
    "sched",
    "schedstat",
    "sessionid",
    "setgroups",
    "smaps",
    "smaps_rollup",
    "statm",
    "timerslack_ns",
    "uid_map",
    "wchan",
];
/// Files of /proc/PID that procfs guards with a ptrace access check, beyond
/// their mode bits (which the kernel checks against the attributes we give).
const PTRACE_GUARDED: &[&str] = &["auxv", "environ", "io", "maps", "personality", "smaps", "smaps_rollup", "wchan"];
/// CAP_SYS_PTRACE
const CAP_SYS_PTRACE: u32 = 19;
/// Files of /proc/PID that take writes (the process's OOM-killer score).
const WRITABLE: &[&str] = &["oom_adj", "oom_score_adj"];
/// Rewritten files of /proc/PID.
const PID_REWRITTEN: &[&str] = &["cgroup", "mountinfo", "mounts", "stat", "status"];
/// Symlinks of /proc/PID, as the process sees them.
const PID_LINKS: &[&str] = &["cwd", "exe", "root"];
/// Directories of /proc/PID whose entries are listed as the procfs has them.
const PID_DIRS: &[&str] = &["fd", "fdinfo", "ns", "net"];
/// Files of /proc/PID/net (the process's network namespace).
const NET_FILES: &[&str] = &[
    "arp",
    "dev",
    "if_inet6",
    "igmp",
    "ipv6_route",
    "netlink",
    "netstat",
    "packet",
    "protocols",
    "raw",
    "raw6",
    "route",
    "snmp",
    "snmp6",
    "sockstat",
    "sockstat6",
    "tcp",
    "tcp6",
    "udp",
    "udp6",
    "unix",
];

/// Where a /proc/sys file's value comes from.
#[derive(Clone, Copy)]
enum Sys {
    /// the host's value (global, read-only, harmless)
    Host,
    /// the sandbox's hostname
    Hostname,
    /// the sandbox's domain name
    Domainname,
    /// a fixed value
    Fixed(&'static str),
    /// a fresh random UUID each read
    Uuid,
    /// the sandbox's boot id
    BootId,
}

/// /proc/sys, besides the spec's own sysctls.
const SYS: &[(&str, Sys)] = &[
    ("fs/file-max", Sys::Host),
    ("fs/file-nr", Sys::Host),
    ("fs/inotify/max_queued_events", Sys::Host),
    ("fs/inotify/max_user_instances", Sys::Host),
    ("fs/inotify/max_user_watches", Sys::Host),
    ("fs/nr_open", Sys::Host),
    ("fs/pipe-max-size", Sys::Host),
    ("kernel/cap_last_cap", Sys::Host),
    ("kernel/domainname", Sys::Domainname),
    ("kernel/hostname", Sys::Hostname),
    ("kernel/ngroups_max", Sys::Host),
    ("kernel/osrelease", Sys::Fixed(RELEASE)),
    ("kernel/ostype", Sys::Fixed("Linux")),
    ("kernel/overflowgid", Sys::Host),
    ("kernel/overflowuid", Sys::Host),
    ("kernel/pid_max", Sys::Fixed("4194304")),
    ("kernel/random/boot_id", Sys::BootId),
    ("kernel/random/entropy_avail", Sys::Fixed("256")),
    ("kernel/random/poolsize", Sys::Fixed("256")),
    ("kernel/random/uuid", Sys::Uuid),
    ("kernel/threads-max", Sys::Host),
    ("kernel/version", Sys::Fixed(VERSION)),
    ("net/core/somaxconn", Sys::Fixed("4096")),
    ("vm/max_map_count", Sys::Host),
    ("vm/overcommit_memory", Sys::Host),
    ("vm/overcommit_ratio", Sys::Host),
];

/// The sandbox's /proc.
pub struct ProcFs<'k> {
    /// a procfs of the sandbox's pid namespace, held by the Sentry only
    sandbox: OwnedFd,
    /// the Sentry's own procfs (host pids): FUSE callers come numbered so
    host: OwnedFd,
    kernel: &'k Kernel,
    boot_id: String,
    /// the Sentry's own cgroup per hierarchy ("N:controllers" → path): the
    /// container's, which the sandbox's cgroup namespace shows as "/"
    cgroups: Vec<(String, String)>,
}

/// A /proc path, decoded.
enum Node {
    Root,
    Global(&'static str),
    SelfLink,
    ThreadSelf,
    /// "mounts" or "net": a symlink into self
    SelfAlias(&'static str),
    SysDir(String),
    SysFile(String),
    /// /proc/PID or /proc/PID/task/TID: the real path, and whether a task dir
    Pid(String, bool),
    /// a directory of a pid ("task", "fd", "net", …): the real path
    PidDir(String),
    /// a passed-through file
    PidFile(String),
    /// a rewritten file: (real pid dir, name)
    PidRewritten(String, &'static str),
    /// a symlink passed through
    PidLink(String),
    /// a socket table the sandbox's netstack makes: (the real file, for
    /// its attributes; which table)
    NetTable(String, crate::net::table::Table),
    /// /proc/PID/net/unix: the Sentry's own (the path of its file in the
    /// sandbox's procfs), where the app's unix sockets are, less the
    /// netstack's socketpairs
    UnixTable(String),
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() < 11
}

impl<'k> ProcFs<'k> {
    /// /proc over `sandbox` (a procfs of the sandbox's pid namespace);
    /// `host` is the Sentry's procfs, which numbers the callers.
    pub fn new(sandbox: OwnedFd, host: OwnedFd, kernel: &'k Kernel) -> ProcFs<'k> {
        let mut fs = ProcFs { sandbox, host, kernel, boot_id: String::new(), cgroups: Vec::new() };
        fs.boot_id = fs.random_uuid();
        if let Ok(own) = proxy::read(&fs.host, &format!("{}/cgroup", std::process::id())) {
            fs.cgroups = String::from_utf8_lossy(&own)
                .lines()
                .filter_map(|l| l.rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())))
                .collect();
        }
        fs
    }

    /// A fresh random UUID (the host kernel's generator, through our procfs).
    fn random_uuid(&self) -> String {
        let u = self.read_real("sys/kernel/random/uuid").unwrap_or_default();
        String::from_utf8_lossy(&u).trim().to_string()
    }

    fn read_real(&self, path: &str) -> Result<Vec<u8>, Errno> {
        proxy::read(&self.sandbox, path)
    }

    /// The caller's (tgid, tid) in the sandbox. The mount was made in the
    /// host's pid namespace: the kernel gives the caller's host tid (0 for
    /// one it cannot number), and its status has the sandbox's numbers last.
    fn caller(&self, ctx: &Ctx) -> Result<(u32, u32), Errno> {
        if ctx.pid == 0 {
            return Err(Errno::ENOENT);
        }
        let status = proxy::read(&self.host, &format!("{}/status", ctx.pid))?;
        let status = String::from_utf8_lossy(&status);
        let last = |key| proxy::field(&status, key)?.split_whitespace().last()?.parse::<u32>().ok();
        match (last("NStgid:"), last("NSpid:")) {
            (Some(tgid), Some(tid)) => Ok((tgid, tid)),
            _ => Err(Errno::ENOENT),
        }
    }

    /// Whether pid (or tid) `n` is the Sentry or one of its threads.
    fn is_sentry(&self, n: &str) -> bool {
        let me = std::process::id();
        n == me.to_string() || proxy::attr(&self.host, &format!("{me}/task/{n}")).is_ok()
    }

    /// What procfs's ptrace access check would say: may the caller look
    /// into the process of pid dir `base`? Its own process, one whose
    /// owner (root for a non-dumpable one, as procfs shows it) is all of the
    /// caller's uids, or any with CAP_SYS_PTRACE. The Sentry reads with its
    /// own capabilities, so it asks this before it answers.
    fn may_trace(&self, ctx: &Ctx, base: &str) -> bool {
        let target = base.split('/').next().unwrap_or("");
        if self.caller(ctx).is_ok_and(|(tgid, _)| tgid.to_string() == target) {
            return true;
        }
        let Ok(owner) = self.real_attr(target).map(|a| a.uid) else { return false };
        let Ok(status) = proxy::read(&self.host, &format!("{}/status", ctx.pid)) else { return false };
        let status = String::from_utf8_lossy(&status);
        let field = |key| proxy::field(&status, key).unwrap_or("");
        let caps = u64::from_str_radix(field("CapEff:").trim(), 16).unwrap_or(0);
        let uids: Vec<u32> = field("Uid:").split_whitespace().filter_map(|u| u.parse().ok()).collect();
        caps & (1 << CAP_SYS_PTRACE) != 0 || (!uids.is_empty() && uids.iter().all(|u| *u == owner))
    }

    /// A ptrace-guarded file, read with the Sentry's capabilities: checked
    /// before and after, and the process the same one throughout (its start
    /// time), so an exec of a setuid program or a reused pid in between
    /// cannot slip through.
    fn guarded_read(&self, ctx: &Ctx, path: &str) -> Result<Vec<u8>, Errno> {
        let target = path.split('/').next().unwrap_or("");
        let started = || {
            let stat = self.read_real(&format!("{target}/stat")).ok()?;
            let stat = String::from_utf8_lossy(&stat).into_owned();
            stat.rsplit_once(')')?.1.split_whitespace().nth(19).map(str::to_string)
        };
        let before = started();
        self.check_trace(ctx, path)?;
        let data = self.read_real(path)?;
        self.check_trace(ctx, path)?;
        if before.is_none() || started() != before {
            return Err(Errno::ESRCH);
        }
        Ok(data)
    }

    /// EACCES unless [`Self::may_trace`].
    fn check_trace(&self, ctx: &Ctx, base: &str) -> Result<(), Errno> {
        if self.may_trace(ctx, base) {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }

    fn real_attr(&self, path: &str) -> Result<Attr, Errno> {
        proxy::attr(&self.sandbox, path)
    }

    fn synthetic(&self, kind: Kind, perm: u32) -> Attr {
        Attr { mtime: self.kernel.boot_wall(), ..Attr::root(kind, perm) }
    }

    fn sys_entries(&self) -> Vec<(String, Sys)> {
        let mut v: Vec<(String, Sys)> = SYS.iter().map(|(p, s)| (p.to_string(), *s)).collect();
        for (k, _) in &self.kernel.sysctls {
            let p = k.replace('.', "/");
            if !v.iter().any(|(q, _)| *q == p) {
                v.push((p, Sys::Host));
            }
        }
        v
    }

    fn decode(&self, path: &str) -> Result<Node, Errno> {
        if path.is_empty() {
            return Ok(Node::Root);
        }
        let parts: Vec<&str> = path.split('/').collect();
        match parts[0] {
            "self" if parts.len() == 1 => return Ok(Node::SelfLink),
            "thread-self" if parts.len() == 1 => return Ok(Node::ThreadSelf),
            "mounts" if parts.len() == 1 => return Ok(Node::SelfAlias("mounts")),
            "net" if parts.len() == 1 => return Ok(Node::SelfAlias("net")),
            "sys" => {
                let rest = parts[1..].join("/");
                let entries = self.sys_entries();
                if entries.iter().any(|(p, _)| *p == rest) {
                    return Ok(Node::SysFile(rest));
                }
                let prefix = if rest.is_empty() { String::new() } else { format!("{rest}/") };
                if entries.iter().any(|(p, _)| p.starts_with(&prefix)) {
                    return Ok(Node::SysDir(rest));
                }
                return Err(Errno::ENOENT);
            }
            g if parts.len() == 1 => {
                if let Some(n) = GLOBAL.iter().find(|n| **n == g) {
                    return Ok(Node::Global(n));
                }
            }
            _ => {}
        }
        // the Sentry lives in the sandbox's pid namespace, but is not the sandbox's to see
        if !is_number(parts[0]) || self.is_sentry(parts[0]) {
            return Err(Errno::ENOENT);
        }
        let (base, rest, task) = match parts.get(1..3) {
            Some(["task", tid]) if is_number(tid) => (format!("{}/task/{tid}", parts[0]), &parts[3..], true),
            _ => (parts[0].to_string(), &parts[1..], false),
        };
        match rest {
            [] => Ok(Node::Pid(base, task)),
            ["task"] if !task => Ok(Node::PidDir(format!("{base}/task"))),
            [f] if PID_FILES.contains(f) => Ok(Node::PidFile(format!("{base}/{f}"))),
            [f] if PID_LINKS.contains(f) => Ok(Node::PidLink(format!("{base}/{f}"))),
            [f] if PID_DIRS.contains(f) => Ok(Node::PidDir(format!("{base}/{f}"))),
            [f] => match PID_REWRITTEN.iter().find(|n| *n == f) {
                Some(n) => Ok(Node::PidRewritten(base, n)),
                None => Err(Errno::ENOENT),
            },
            ["fd" | "ns", n] => Ok(Node::PidLink(format!("{base}/{}/{n}", rest[0]))),
            ["fdinfo", n] if is_number(n) => Ok(Node::PidFile(format!("{base}/fdinfo/{n}"))),
            ["net", f]
                if (self.kernel.net.is_some() || self.kernel.pod_owner.is_some())
                    && crate::net::table::Table::named(f).is_some() =>
            {
                let table = crate::net::table::Table::named(f).ok_or(Errno::ENOENT)?;
                Ok(Node::NetTable(format!("{base}/net/{f}"), table))
            }
            // the sandbox's unix sockets live in the Sentry's network namespace
            ["net", "unix"] => Ok(Node::UnixTable(crate::net::table::unix_path())),
            ["net", f] if NET_FILES.contains(f) => Ok(Node::PidFile(format!("{base}/net/{f}"))),
            _ => Err(Errno::ENOENT),
        }
    }

    fn sys_value(&self, path: &str) -> Result<Vec<u8>, Errno> {
        let dotted = path.replace('/', ".");
        if let Some((_, v)) = self.kernel.sysctls.iter().find(|(k, _)| *k == dotted) {
            return Ok(format!("{v}\n").into_bytes());
        }
        let src = SYS.iter().find(|(p, _)| *p == path).map(|(_, s)| *s).ok_or(Errno::ENOENT)?;
        let text = match src {
            Sys::Host => return self.read_real(&format!("sys/{path}")),
            Sys::Hostname => self.kernel.hostname(),
            Sys::Domainname => self.kernel.domainname(),
            Sys::Fixed(v) => v.to_string(),
            Sys::Uuid => self.random_uuid(),
            Sys::BootId => self.boot_id.clone(),
        };
        Ok(format!("{text}\n").into_bytes())
    }

    fn global(&self, name: &str) -> Result<Vec<u8>, Errno> {
        let text = match name {
            "version" => format!(
                "Linux version {RELEASE} (moat@sandbox) {VERSION} (moat {})\n",
                env!("CARGO_PKG_VERSION")
            ),
            "cmdline" => "BOOT_IMAGE=moat quiet\n".to_string(),
            "filesystems" => "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tdevpts\nnodev\tmqueue\nnodev\tcgroup\nnodev\tcgroup2\nnodev\toverlay\n\text4\n".to_string(),
            "uptime" => {
                let up = self.kernel.uptime_exact();
                format!("{}.{:02} 0.00\n", up.as_secs(), up.subsec_millis() / 10)
            }
            "loadavg" => {
                let pids = self.pids()?;
                let last = pids.iter().max().copied().unwrap_or(0);
                format!("0.00 0.00 0.00 1/{} {last}\n", pids.len())
            }
            "meminfo" => return self.meminfo(),
            "stat" => {
                let host = String::from_utf8_lossy(&self.read_real("stat")?).into_owned();
                let shift = self.kernel.clock_shift().as_secs();
                host.lines()
                    .map(|l| match l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok()) {
                        Some(b) => format!("btime {}\n", b + shift),
                        None => format!("{l}\n"),
                    })
                    .collect()
            }
            other => return self.read_real(other),
        };
        Ok(text.into_bytes())
    }

    /// The host's meminfo, bounded by the container's memory limit.
    fn meminfo(&self) -> Result<Vec<u8>, Errno> {
        let host = String::from_utf8_lossy(&self.read_real("meminfo")?).into_owned();
        let Some(limit) = self.kernel.memory_limit else {
            return Ok(host.into_bytes());
        };
        let kb = |text: &str, key| {
            proxy::field(text, key).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse::<u64>().ok())
        };
        let total = (limit / 1024).min(kb(&host, "MemTotal:").unwrap_or(0));
        // the cgroup's usage (page cache included, which then counts as used);
        // without it, the resident memory of the sandbox's processes
        let used = match self.kernel.memory_used() {
            Some(bytes) => bytes / 1024,
            None => self
                .pids()?
                .iter()
                .filter_map(|pid| self.read_real(&format!("{pid}/status")).ok())
                .map(|s| kb(&String::from_utf8_lossy(&s), "VmRSS:").unwrap_or(0))
                .sum(),
        };
        let free = total.saturating_sub(used);
        let out: String = host
            .lines()
            .map(|l| {
                let key = l.split(':').next().unwrap_or("");
                let v = match key {
                    "MemTotal" => Some(total),
                    "MemFree" => Some(free.min(kb(&host, "MemFree:").unwrap_or(0))),
                    "MemAvailable" => Some(free.min(kb(&host, "MemAvailable:").unwrap_or(0))),
                    // the host's caches are not the container's: `free` shows its usage as used
                    "Buffers" | "Cached" | "SwapCached" | "Shmem" | "SReclaimable" => Some(0),
                    _ => None,
                };
                match v {
                    Some(v) => format!("{:<16}{v:>8} kB\n", format!("{key}:")),
                    None => format!("{l}\n"),
                }
            })
            .collect();
        Ok(out.into_bytes())
    }

    /// The sandbox's pids.
    fn pids(&self) -> Result<Vec<u32>, Errno> {
        Ok(proxy::list(&self.sandbox, ".")?
            .into_iter()
            .filter(|(n, _)| !self.is_sentry(n))
            .filter_map(|(n, _)| n.parse::<u32>().ok())
            .collect())
    }

    fn rewritten(&self, base: &str, name: &str, ctx: &Ctx) -> Result<Vec<u8>, Errno> {
        let real = String::from_utf8_lossy(&self.read_real(&format!("{base}/{name}"))?).into_owned();
        let order = &self.kernel.mount_order;
        let tree = self.kernel.tree.get();
        let writable = |point: &str| tree.and_then(|t| t.writable(point)).unwrap_or(false);
        let text = match name {
            "cgroup" if self.kernel.cgroupns => rewrite_cgroup(&real, &self.cgroups),
            "cgroup" => real,
            "stat" => rewrite_stat(&real, self.kernel.clock_shift(), self.may_trace(ctx, base)),
            "status" => {
                // ids as the process's user namespace numbers them (the
                // Sentry reads host ids)
                let map = |name: &str| {
                    let text = self.read_real(&format!("{base}/{name}")).unwrap_or_default();
                    crate::vfs::remote::IdMap::parse(&String::from_utf8_lossy(&text))
                };
                rewrite_status(&real, &map("uid_map"), &map("gid_map"))
            }
            "mountinfo" => {
                // under a cgroup namespace, a cgroup mount's root is shown from the container's cgroup
                let cg_root = self.cgroups.first().map(|(_, p)| p.as_str()).filter(|_| self.kernel.cgroupns);
                in_spec_order(&real, 4, order)
                    .into_iter()
                    .map(|l| rewrite_mountinfo_line(l, cg_root, &writable))
                    .collect()
            }
            _ => in_spec_order(&real, 1, order).into_iter().map(|l| rewrite_mounts_line(l, &writable)).collect(),
        };
        Ok(text.into_bytes())
    }
}

impl Filesystem for ProcFs<'_> {
    fn gone(&self, name: &str) -> bool {
        is_number(name) && proxy::attr(&self.sandbox, name).is_err()
    }

    fn writable(&self, path: &str) -> bool {
        matches!(self.decode(path), Ok(Node::PidFile(p)) if WRITABLE.iter().any(|w| p.ends_with(&format!("/{w}"))))
    }

    fn write(&self, path: &str, data: &[u8], _ctx: &Ctx) -> Result<(), Errno> {
        match self.decode(path)? {
            // the kernel checked the caller against the file's owner and mode;
            // lowering below the minimum needs CAP_SYS_RESOURCE, which the
            // Sentry lacks: such a write fails as an unprivileged one would
            Node::PidFile(p) if self.writable(path) => proxy::write(&self.sandbox, &p, data),
            _ => Err(Errno::EROFS),
        }
    }

    fn getattr(&self, path: &str, _ctx: &Ctx) -> Result<Attr, Errno> {
        match self.decode(path)? {
            Node::Root | Node::SysDir(_) => Ok(self.synthetic(Kind::Dir, 0o555)),
            Node::Global(_) | Node::SysFile(_) => Ok(self.synthetic(Kind::File, 0o444)),
            Node::SelfLink | Node::ThreadSelf | Node::SelfAlias(_) => Ok(self.synthetic(Kind::Symlink, 0o777)),
            Node::Pid(p, _) | Node::PidDir(p) | Node::PidFile(p) | Node::PidLink(p) => self.real_attr(&p),
            Node::PidRewritten(base, _) => {
                let a = self.real_attr(&base)?;
                Ok(Attr { kind: Kind::File, perm: 0o444, ..a })
            }
            Node::NetTable(real, _) | Node::UnixTable(real) => self.real_attr(&real),
        }
    }

    fn readlink(&self, path: &str, ctx: &Ctx) -> Result<Vec<u8>, Errno> {
        let text = match self.decode(path)? {
            Node::SelfLink => self.caller(ctx)?.0.to_string(),
            Node::ThreadSelf => {
                let (tgid, tid) = self.caller(ctx)?;
                format!("{tgid}/task/{tid}")
            }
            Node::SelfAlias(n) => format!("self/{n}"),
            Node::PidLink(p) => {
                self.check_trace(ctx, &p)?;
                return Ok(readlinkat(&self.sandbox, p.as_str())?.into_encoded_bytes());
            }
            _ => return Err(Errno::EINVAL),
        };
        Ok(text.into_bytes())
    }

    fn read_all(&self, path: &str, ctx: &Ctx) -> Result<Vec<u8>, Errno> {
        match self.decode(path)? {
            Node::Global(n) => self.global(n),
            Node::SysFile(p) => self.sys_value(&p),
            Node::PidFile(p) => {
                let name = p.rsplit('/').next().unwrap_or("");
                if PTRACE_GUARDED.contains(&name) || p.contains("/fdinfo/") {
                    return self.guarded_read(ctx, &p);
                }
                self.read_real(&p)
            }
            Node::PidRewritten(base, n) => self.rewritten(&base, n, ctx),
            Node::NetTable(_, t) => match (&self.kernel.net, &self.kernel.pod_owner) {
                (Some(n), _) => Ok(n.lock().table(t).into_bytes()),
                // a guest of the pod's netstack: the owner's
                (None, Some(owner)) => owner.table(crate::platform::guest::Asked::Net(t)).map(String::into_bytes),
                (None, None) => Ok(Vec::new()),
            },
            Node::UnixTable(_) => match &self.kernel.pod_owner {
                // a guest of the pod's netstack: its unix sockets are the owner's Sentry's
                Some(owner) => owner.table(crate::platform::guest::Asked::Unix).map(String::into_bytes),
                None => crate::net::table::unix_of(&self.sandbox, self.kernel.net.as_deref()).map(String::into_bytes),
            },
            Node::Root | Node::SysDir(_) | Node::Pid(..) | Node::PidDir(_) => Err(Errno::EISDIR),
            _ => Err(Errno::ELOOP),
        }
    }

    fn readdir(&self, path: &str, ctx: &Ctx) -> Result<Vec<DirEntry>, Errno> {
        let e = |name: &str, kind| DirEntry { name: name.to_string(), kind };
        let mut out = Vec::new();
        match self.decode(path)? {
            Node::Root => {
                out.extend(GLOBAL.iter().map(|n| e(n, Kind::File)));
                out.extend(["self", "thread-self", "mounts", "net"].iter().map(|n| e(n, Kind::Symlink)));
                out.push(e("sys", Kind::Dir));
                out.extend(self.pids()?.iter().map(|p| e(&p.to_string(), Kind::Dir)));
            }
            Node::SysDir(dir) => {
                let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
                for (p, _) in self.sys_entries() {
                    if let Some(rest) = p.strip_prefix(&prefix) {
                        let (name, kind) = match rest.split_once('/') {
                            Some((d, _)) => (d, Kind::Dir),
                            None => (rest, Kind::File),
                        };
                        if !out.iter().any(|x: &DirEntry| x.name == name) {
                            out.push(e(name, kind));
                        }
                    }
                }
            }
            Node::Pid(base, task) => {
                let present = proxy::list(&self.sandbox, &base)?;
                let has = |n: &str| present.iter().any(|(p, _)| p == n);
                out.extend(PID_FILES.iter().chain(PID_REWRITTEN).filter(|n| has(n)).map(|n| e(n, Kind::File)));
                out.extend(PID_LINKS.iter().filter(|n| has(n)).map(|n| e(n, Kind::Symlink)));
                out.extend(PID_DIRS.iter().filter(|n| has(n)).map(|n| e(n, Kind::Dir)));
                if !task {
                    out.push(e("task", Kind::Dir));
                }
            }
            Node::PidDir(p) if p.ends_with("/net") => {
                let present = proxy::list(&self.sandbox, &p)?;
                out.extend(NET_FILES.iter().filter(|n| present.iter().any(|(q, _)| q == *n)).map(|n| e(n, Kind::File)));
            }
            Node::PidDir(p) => {
                if ["/fd", "/fdinfo", "/ns"].iter().any(|d| p.ends_with(d)) {
                    self.check_trace(ctx, &p)?;
                }
                out.extend(proxy::list(&self.sandbox, &p)?.into_iter().map(|(n, k)| DirEntry { name: n, kind: k }));
            }
            _ => return Err(Errno::ENOTDIR),
        }
        Ok(out)
    }
}
