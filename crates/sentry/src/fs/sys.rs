//! The sandbox's /sys: a short read-only list of what programs actually
//! read (how many CPUs, their topology, transparent huge pages, the
//! sandbox's network interfaces), passed through from a sysfs instance of
//! the sandbox's network namespace that only the Sentry holds. Everything
//! else of the host's sysfs — devices, firmware, modules, kernel knobs,
//! power, buses — does not exist. /sys/fs/cgroup is a directory for the
//! spec's cgroup mount to sit on.

use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::readlinkat;

use super::fuse::{Attr, Ctx, DirEntry, Filesystem};
use super::proxy;

/// What exists, as paths below /sys. A component `*` matches any name,
/// one ending in `#` its stem followed by digits (`cpu#`: cpu0, cpu1 …).
const ALLOWED: &[&str] = &[
    "devices/system/cpu/online",
    "devices/system/cpu/possible",
    "devices/system/cpu/present",
    "devices/system/cpu/offline",
    "devices/system/cpu/kernel_max",
    "devices/system/cpu/cpu#/online",
    "devices/system/cpu/cpu#/topology/*",
    "devices/system/node/online",
    "devices/system/node/possible",
    "devices/system/node/node#/cpulist",
    "devices/system/node/node#/cpumap",
    "kernel/mm/transparent_hugepage/enabled",
    "kernel/mm/transparent_hugepage/defrag",
    "kernel/mm/transparent_hugepage/hpage_pmd_size",
    "kernel/mm/transparent_hugepage/shmem_enabled",
    "kernel/mm/transparent_hugepage/use_zero_page",
    "class/net/*",
    "devices/virtual/net/*/address",
    "devices/virtual/net/*/addr_len",
    "devices/virtual/net/*/broadcast",
    "devices/virtual/net/*/carrier",
    "devices/virtual/net/*/dev_id",
    "devices/virtual/net/*/dev_port",
    "devices/virtual/net/*/duplex",
    "devices/virtual/net/*/flags",
    "devices/virtual/net/*/ifindex",
    "devices/virtual/net/*/iflink",
    "devices/virtual/net/*/mtu",
    "devices/virtual/net/*/operstate",
    "devices/virtual/net/*/speed",
    "devices/virtual/net/*/tx_queue_len",
    "devices/virtual/net/*/type",
    "devices/virtual/net/*/statistics/*",
    "fs/cgroup",
];

fn component_matches(pattern: &str, name: &str) -> bool {
    if name.is_empty() || name == "." || name == ".." {
        return false;
    }
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('#') {
        Some(stem) => name
            .strip_prefix(stem)
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())),
        None => pattern == name,
    }
}

/// Whether `path` is listed, or is a directory on the way to one.
pub fn allowed(path: &str) -> bool {
    if path.is_empty() {
        return true;
    }
    let parts: Vec<&str> = path.split('/').collect();
    ALLOWED.iter().any(|pat| {
        let pat: Vec<&str> = pat.split('/').collect();
        parts.len() <= pat.len() && parts.iter().zip(&pat).all(|(n, p)| component_matches(p, n))
    })
}

/// The sandbox's /sys.
pub struct SysFs {
    /// a sysfs of the sandbox's network namespace, held by the Sentry only
    sandbox: OwnedFd,
}

impl SysFs {
    /// /sys over `sandbox`.
    pub fn new(sandbox: OwnedFd) -> SysFs {
        SysFs { sandbox }
    }

    fn real(&self, path: &str) -> Result<String, Errno> {
        if !allowed(path) {
            return Err(Errno::ENOENT);
        }
        Ok(if path.is_empty() { ".".to_string() } else { path.to_string() })
    }
}

impl Filesystem for SysFs {
    fn getattr(&self, path: &str, _ctx: &Ctx) -> Result<Attr, Errno> {
        proxy::attr(&self.sandbox, &self.real(path)?)
    }

    fn readlink(&self, path: &str, _ctx: &Ctx) -> Result<Vec<u8>, Errno> {
        Ok(readlinkat(&self.sandbox, self.real(path)?.as_str())?.into_encoded_bytes())
    }

    fn read_all(&self, path: &str, _ctx: &Ctx) -> Result<Vec<u8>, Errno> {
        proxy::read(&self.sandbox, &self.real(path)?)
    }

    fn readdir(&self, path: &str, _ctx: &Ctx) -> Result<Vec<DirEntry>, Errno> {
        let dir = self.real(path)?;
        let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
        Ok(proxy::list(&self.sandbox, &dir)?
            .into_iter()
            .filter(|(name, _)| allowed(&format!("{prefix}{name}")))
            .map(|(name, kind)| DirEntry { name, kind })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn only_the_listed_paths_exist() {
        for ok in [
            "",
            "devices",
            "devices/system/cpu",
            "devices/system/cpu/online",
            "devices/system/cpu/cpu0",
            "devices/system/cpu/cpu12/topology/core_id",
            "class/net/eth0",
            "devices/virtual/net/lo/statistics/rx_bytes",
            "fs/cgroup",
            "kernel/mm/transparent_hugepage/enabled",
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for no in [
            "firmware",
            "module",
            "kernel/debug",
            "kernel/mm/transparent_hugepage/khugepaged",
            "devices/system/cpu/cpufreq",
            "devices/system/cpu/cpu",
            "devices/system/cpu/cpu0/cpufreq",
            "devices/pci0000:00",
            "fs/cgroup/memory",
            "class/block",
            "devices/virtual/net/lo/power",
            "class/net/..",
            "devices/virtual/net/../statistics/..",
        ] {
            assert!(!allowed(no), "{no}");
        }
    }
}
