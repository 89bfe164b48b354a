//! The sandbox's kernel state that handlers read and change: its identity
//! (release string, hostname) and its own boot log. One `Kernel` per sandbox.

use std::sync::Mutex;

/// The release string `uname -r` shows inside a sandbox.
pub const RELEASE: &str = concat!("6.1.0-moat-", env!("CARGO_PKG_VERSION"));

/// The version string `uname -v` shows.
pub const VERSION: &str = "#1 SMP moat application kernel";

/// Kernel state of one sandbox.
#[derive(Debug)]
pub struct Kernel {
    /// the host's CLOCK_BOOTTIME when the sandbox started
    booted: std::time::Duration,
    /// the wall clock then, seconds since the epoch
    booted_wall: u64,
    /// sysctls the spec set (dotted keys), which /proc/sys shows
    pub sysctls: Vec<(String, String)>,
    /// the container's memory limit in bytes, which /proc/meminfo shows
    pub memory_limit: Option<u64>,
    /// the container cgroup's memory usage file (bytes), read at offset 0
    pub memory_usage: Option<std::fs::File>,
    /// the spec's mount destinations in order (mountinfo lists them so)
    pub mount_order: Vec<String>,
    /// the spec's boottime offset (a time namespace): uptime includes it
    pub boottime_offset: std::time::Duration,
    /// the sandbox has its own cgroup namespace: /proc/PID/cgroup shows
    /// paths from the container's cgroup
    pub cgroupns: bool,
    /// the container's real file tree, once `create` has handed it over
    pub tree: std::sync::OnceLock<crate::vfs::Tree>,
    /// the sandbox's own network stack (`--network=sandbox`: the loopback and
    /// the pod's interface; `none`: the loopback only);
    /// None: the host makes the app's sockets, in the spec's namespace
    pub net: Option<std::sync::Arc<crate::net::Netstack>>,
    /// without a netstack: a socket of the app's network namespace, on
    /// which the Sentry makes the interface ioctls ([`crate::net::ifreq`])
    /// an app makes on its unix sockets, which are of the Sentry's
    pub ifsock: Option<std::os::fd::OwnedFd>,
    /// a guest of the pod's netstack: the connection to the Sentry that has
    /// it, which serves the network calls ([`crate::platform::guest`])
    pub pod_owner: Option<crate::platform::guest::Owner>,
    /// `--network=host`: the maker of the app's internet sockets, in its
    /// network namespace ([`crate::net::maker`])
    pub maker: Option<crate::net::maker::Maker>,
    /// the Sentry's end of the replayer's socket, until the tree takes it
    /// (a sandbox with a user namespace: [`crate::vfs::remote`])
    pub replayer: Mutex<Option<std::os::fd::OwnedFd>>,
    hostname: Mutex<String>,
    domainname: Mutex<String>,
    boot_log: String,
}

impl Kernel {
    /// A kernel with the spec's hostname and its boot log written (as
    /// syslog(2) hands the kernel's out: each record with its priority,
    /// `<6>` for info, which dmesg reads and strips).
    pub fn new(hostname: &str) -> Kernel {
        let boot_log: String = [
            format!("[    0.000000] Starting moat {} (application kernel)...", env!("CARGO_PKG_VERSION")),
            "[    0.000000] moat: system calls served by the Sentry, not the host kernel".to_string(),
            "[    0.000100] moat: mounting the container's file tree".to_string(),
            "[    0.000200] moat: ready".to_string(),
        ]
        .iter()
        .map(|l| format!("<6>{l}\n"))
        .collect();
        Kernel {
            booted: boottime(),
            booted_wall: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            sysctls: Vec::new(),
            memory_limit: None,
            memory_usage: None,
            mount_order: Vec::new(),
            boottime_offset: std::time::Duration::ZERO,
            cgroupns: false,
            tree: std::sync::OnceLock::new(),
            net: None,
            ifsock: None,
            pod_owner: None,
            maker: None,
            replayer: Mutex::new(None),
            hostname: Mutex::new(hostname.into()),
            domainname: Mutex::new("(none)".into()),
            boot_log,
        }
    }

    /// The hostname.
    pub fn hostname(&self) -> String {
        self.hostname.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Sets the hostname (already permission-checked by the caller).
    pub fn set_hostname(&self, h: String) {
        if let Ok(mut g) = self.hostname.lock() {
            *g = h;
        }
    }

    /// Sets the NIS domain name (already permission-checked by the caller).
    pub fn set_domainname(&self, d: String) {
        if let Ok(mut g) = self.domainname.lock() {
            *g = d;
        }
    }

    /// The NIS domain name.
    pub fn domainname(&self) -> String {
        self.domainname.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Seconds since the sandbox started (its uptime).
    pub fn uptime(&self) -> u64 {
        self.uptime_exact().as_secs()
    }

    /// Time since the sandbox started, plus its time namespace's boottime offset.
    pub fn uptime_exact(&self) -> std::time::Duration {
        boottime().saturating_sub(self.booted) + self.boottime_offset
    }

    /// The host's uptime when the sandbox started (its clock's zero).
    pub fn boot_offset(&self) -> std::time::Duration {
        self.booted
    }

    /// The container's memory usage in bytes, from its cgroup.
    pub fn memory_used(&self) -> Option<u64> {
        let f = self.memory_usage.as_ref()?;
        let mut buf = [0u8; 32];
        let n = std::os::unix::fs::FileExt::read_at(f, &mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }

    /// Where the sandbox's clock starts, on the host's CLOCK_BOOTTIME: its
    /// start, less its time namespace's boottime offset.
    pub fn clock_shift(&self) -> std::time::Duration {
        self.booted.saturating_sub(self.boottime_offset)
    }

    /// When the sandbox started, seconds since the epoch.
    pub fn boot_wall(&self) -> u64 {
        self.booted_wall
    }

    /// The sandbox's dmesg.
    pub fn boot_log(&self) -> &str {
        &self.boot_log
    }
}

/// The host's CLOCK_BOOTTIME (its uptime, suspend included).
fn boottime() -> std::time::Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| std::time::Duration::new(t.tv_sec().max(0) as u64, t.tv_nsec().max(0) as u32))
        .unwrap_or_default()
}
