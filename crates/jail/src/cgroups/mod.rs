//! Control groups: one [`Manager`] per container, over the v1 hierarchies or
//! the v2 unified tree, whichever the host runs (a hybrid host counts as v1,
//! as runc treats it).
//!
//! The manager is rebuilt from the saved [`Location`] by every moat command, so
//! it holds no state that is not in the cgroup filesystem itself.

pub mod mount;
mod stats;
mod v1;
mod v2;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use stats::Stats;

use crate::{Error, Result};

/// Where the host mounts cgroupfs.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup version the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// per-controller hierarchies (including hybrid hosts)
    V1,
    /// the unified hierarchy
    V2,
}

/// Detects the host's cgroup version by the filesystem at /sys/fs/cgroup.
pub fn host_version() -> Version {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    match statfs(CGROUP_ROOT) {
        Ok(s) if s.filesystem_type() == CGROUP2_SUPER_MAGIC => Version::V2,
        _ => Version::V1,
    }
}

/// A container's cgroup, as saved in its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// cgroup version
    pub version: Version,
    /// v2: the one directory; v1: one directory per hierarchy
    pub dirs: Vec<PathBuf>,
}

/// Operations on one container's cgroup.
#[derive(Debug, Clone)]
pub struct Manager {
    loc: Location,
}

impl Manager {
    /// Resolves the spec's `cgroupsPath` (absolute: from the hierarchy root;
    /// relative: from moat's own cgroup, as runc does) for this host.
    pub fn for_path(cgroups_path: &Path) -> Result<Manager> {
        let rel = cgroups_path.to_string_lossy();
        if rel.split('/').any(|c| c == "..") {
            return Err(Error::Config(format!("linux.cgroupsPath: {rel:?} may not contain \"..\"")));
        }
        let own = own_cgroups();
        let version = host_version();
        let dirs = match version {
            Version::V2 => {
                let base = own.iter().find(|(k, _)| k.is_empty()).map(|(_, p)| p.as_str()).unwrap_or("/");
                vec![join(Path::new(CGROUP_ROOT), base, cgroups_path)]
            }
            Version::V1 => v1::hierarchies()
                .into_iter()
                .map(|(mnt, key)| {
                    let base = own.iter().find(|(k, _)| *k == key).map(|(_, p)| p.as_str()).unwrap_or("/");
                    join(&mnt, base, cgroups_path)
                })
                .collect(),
        };
        if dirs.is_empty() {
            return Err(Error::Config("no cgroup hierarchy is mounted under /sys/fs/cgroup".into()));
        }
        Ok(Manager { loc: Location { version, dirs } })
    }

    /// Rebuilds the manager of a container from its saved location.
    pub fn from_location(loc: Location) -> Manager {
        Manager { loc }
    }

    /// The location to save in the container's state.
    pub fn location(&self) -> &Location {
        &self.loc
    }

    /// The file that says how much memory the cgroup uses, in bytes (v1
    /// memory.usage_in_bytes, v2 memory.current), if the controller is there.
    pub fn memory_usage_file(&self) -> Option<PathBuf> {
        let name = match self.loc.version {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        };
        self.loc.dirs.iter().map(|d| d.join(name)).find(|p| p.exists())
    }

    /// Creates the cgroup directories.
    pub fn create(&self) -> Result<()> {
        for d in &self.loc.dirs {
            fs::create_dir_all(d).map_err(|e| Error::path("create cgroup", d, e))?;
        }
        match self.loc.version {
            Version::V1 => v1::prepare(&self.loc.dirs),
            Version::V2 => v2::prepare(self.unified()?),
        }
    }

    /// Moves `pid` into the cgroup.
    pub fn add(&self, pid: Pid) -> Result<()> {
        for d in &self.loc.dirs {
            let p = d.join("cgroup.procs");
            fs::write(&p, pid.to_string()).map_err(|e| Error::path("join cgroup", &p, e))?;
        }
        Ok(())
    }

    /// Applies the spec's resource limits.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        match self.loc.version {
            Version::V1 => v1::apply(&self.loc.dirs, r),
            Version::V2 => v2::apply(self.unified()?, r),
        }
    }

    /// The pids of every process in the cgroup.
    pub fn pids(&self) -> Result<Vec<Pid>> {
        if self.loc.dirs.is_empty() {
            return Ok(Vec::new());
        }
        let dir = self.procs_dir();
        let p = dir.join("cgroup.procs");
        let s = match fs::read_to_string(&p) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::path("read", &p, e)),
        };
        Ok(s.lines().filter_map(|l| l.trim().parse().ok()).map(Pid::from_raw).collect())
    }

    /// Freezes (`true`) or thaws every process in the cgroup, waiting until done.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        match self.loc.version {
            Version::V1 => v1::set_frozen(&self.loc.dirs, frozen),
            Version::V2 => v2::set_frozen(self.unified()?, frozen),
        }
    }

    /// Whether the cgroup is frozen.
    pub fn is_frozen(&self) -> bool {
        match self.loc.version {
            Version::V1 => v1::is_frozen(&self.loc.dirs),
            Version::V2 => self.unified().map(v2::is_frozen).unwrap_or(false),
        }
    }

    /// Resource usage figures.
    pub fn stats(&self) -> Stats {
        match self.loc.version {
            Version::V1 => v1::stats(&self.loc.dirs),
            Version::V2 => self.unified().map(v2::stats).unwrap_or_default(),
        }
    }

    /// Whether the cgroup still exists.
    pub fn exists(&self) -> bool {
        self.loc.dirs.iter().any(|d| d.exists())
    }

    /// Removes the cgroup directories. Processes still inside make this fail
    /// with EBUSY, so the caller kills them first; a few retries cover the
    /// time the kernel takes to let go of dying tasks.
    pub fn destroy(&self) -> Result<()> {
        for d in self.loc.dirs.iter().rev() {
            remove_tree(d)?;
        }
        Ok(())
    }

    /// The one directory of a v2 cgroup (an error for a broken saved state).
    fn unified(&self) -> Result<&Path> {
        self.loc
            .dirs
            .first()
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::Config("cgroup location has no directory".into()))
    }

    fn procs_dir(&self) -> PathBuf {
        match self.loc.version {
            Version::V2 => self.loc.dirs.first().cloned().unwrap_or_default(),
            Version::V1 => v1::pick(&self.loc.dirs, &["pids", "freezer", "memory"])
                .or_else(|| self.loc.dirs.first().cloned())
                .unwrap_or_default(),
        }
    }
}

/// Removes a cgroup directory and any child cgroups the container made.
fn remove_tree(d: &Path) -> Result<()> {
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path())?;
            }
        }
    }
    let mut tries = 0;
    loop {
        match fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(Error::path("remove cgroup", d, e)),
        }
    }
}

fn join(mnt: &Path, own: &str, p: &Path) -> PathBuf {
    let mut out = mnt.to_path_buf();
    if !p.is_absolute() {
        out.push(own.trim_start_matches('/'));
    }
    out.push(p.to_string_lossy().trim_start_matches('/'));
    out
}

/// moat's own cgroups: (controllers key, path) from /proc/self/cgroup; the
/// key is "" for the v2 line and e.g. "cpu,cpuacct" or "name=systemd" for v1.
fn own_cgroups() -> Vec<(String, String)> {
    let s = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    s.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

pub(crate) fn write(dir: &Path, file: &str, value: impl AsRef<str>) -> Result<()> {
    let p = dir.join(file);
    fs::write(&p, value.as_ref()).map_err(|e| Error::path("write", &p, e))
}

pub(crate) fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_hang_below_own_cgroup() {
        assert_eq!(
            join(Path::new("/sys/fs/cgroup/pids"), "/a/b", Path::new("c/d")),
            PathBuf::from("/sys/fs/cgroup/pids/a/b/c/d")
        );
        assert_eq!(
            join(Path::new("/sys/fs/cgroup/pids"), "/a/b", Path::new("/c")),
            PathBuf::from("/sys/fs/cgroup/pids/c")
        );
    }

    #[test]
    fn dotdot_is_rejected() {
        assert!(Manager::for_path(Path::new("/../../etc")).is_err());
    }
}
