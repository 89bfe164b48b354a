//! Namespaced kernel parameters (`linux.sysctl`), written under /proc/sys.

use std::fs;
use std::path::PathBuf;

use crate::{Error, Result};

/// Whether a sysctl is namespaced, given which namespaces the container owns
/// (the list runc checks against; anything else would change the host).
pub fn allowed(key: &str, has_ipc: bool, has_net: bool, has_uts: bool) -> bool {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        return has_ipc;
    }
    if key.starts_with("net.") {
        return has_net;
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return has_uts;
    }
    false
}

/// The /proc/sys file of a key (`net.ipv4.ip_forward` → /proc/sys/net/ipv4/ip_forward).
pub fn path(key: &str) -> Result<PathBuf> {
    if key.split(['.', '/']).any(|c| c.is_empty() || c == "..") {
        return Err(Error::Config(format!("linux.sysctl: invalid key {key:?}")));
    }
    Ok(PathBuf::from("/proc/sys").join(key.replace('.', "/")))
}

/// Writes one sysctl.
pub fn write(key: &str, value: &str) -> Result<()> {
    let p = path(key)?;
    fs::write(&p, value).map_err(|e| Error::path("write sysctl", p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_keys_pass() {
        assert!(allowed("net.ipv4.ip_forward", false, true, false));
        assert!(!allowed("net.ipv4.ip_forward", true, false, true));
        assert!(allowed("kernel.shmmax", true, false, false));
        assert!(!allowed("kernel.panic", true, true, true));
        assert!(path("net/../../etc").is_err());
    }
}
