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
    booted: std::time::Instant,
    hostname: Mutex<String>,
    domainname: Mutex<String>,
    boot_log: String,
}

impl Kernel {
    /// A kernel with the spec's hostname and its boot log written.
    pub fn new(hostname: &str) -> Kernel {
        let boot_log = [
            format!("[    0.000000] Starting moat {} (application kernel)...", env!("CARGO_PKG_VERSION")),
            "[    0.000000] moat: system calls served by the Sentry, not the host kernel".to_string(),
            "[    0.000100] moat: mounting the container's file tree".to_string(),
            "[    0.000200] moat: ready".to_string(),
        ]
        .join("\n")
            + "\n";
        Kernel {
            booted: std::time::Instant::now(),
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

    /// The NIS domain name.
    pub fn domainname(&self) -> String {
        self.domainname.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Seconds since the sandbox started (its uptime).
    pub fn uptime(&self) -> u64 {
        self.booted.elapsed().as_secs()
    }

    /// The sandbox's dmesg.
    pub fn boot_log(&self) -> &str {
        &self.boot_log
    }
}
