//! The container's view of cgroupfs, for a spec mount of type "cgroup".

use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::{host_version, v1, Version};
use crate::mount::Options;
use crate::{Error, Result};

/// Mounts cgroupfs at `dest`: cgroup2 on a v2 host; on v1, a tmpfs holding
/// one mount per hierarchy. Mounted from inside the container's cgroup
/// namespace, each hierarchy shows the container's cgroup as its root.
pub fn mount_cgroupfs(rootfs: &Path, dest: &Path, opts: &Options) -> Result<()> {
    let target = crate::mount::pin(rootfs, dest)?;
    let dest = target.path.as_path();
    let flags = opts.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    let ro = opts.flags.contains(MsFlags::MS_RDONLY);
    if host_version() == Version::V2 {
        let f = flags | if ro { MsFlags::MS_RDONLY } else { MsFlags::empty() };
        return mount(Some("cgroup2"), dest, Some("cgroup2"), f, None::<&str>)
            .map_err(|e| Error::path("mount cgroup2", dest, e));
    }
    mount(Some("tmpfs"), dest, Some("tmpfs"), flags, Some("mode=755"))
        .map_err(|e| Error::path("mount cgroup tmpfs", dest, e))?;
    // the hierarchies go into the new tmpfs, held open like its mount point
    let top = crate::mount::pin(rootfs, &target.real)?;
    let dest = top.path.as_path();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for (host_mount, key) in v1::hierarchies() {
        let name = key.strip_prefix("name=").unwrap_or(&key);
        let sub = dest.join(name);
        std::fs::create_dir_all(&sub).map_err(|e| Error::path("mkdir", &sub, e))?;
        let f = flags | if ro { MsFlags::MS_RDONLY } else { MsFlags::empty() };
        match mount(Some("cgroup"), &sub, Some("cgroup"), f, Some(key.as_str())) {
            // inside a user namespace, without a cgroup namespace it owns, no
            // cgroup filesystem may be mounted: the container's own cgroup
            // is bound in instead, as runc does
            Err(nix::errno::Errno::EPERM) => {
                let path =
                    own_cgroup(&own, &key).ok_or_else(|| Error::Config(format!("no cgroup of ours in {key}")))?;
                let src = host_mount.join(path.trim_start_matches('/'));
                mount(Some(&src), &sub, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                    .map_err(|e| Error::path("bind cgroup", &src, e))?;
                crate::mount::remount_bind(&sub, f)?;
            }
            r => r.map_err(|e| Error::path("mount cgroup", &sub, e))?,
        }
    }
    if ro {
        crate::mount::remount_bind(dest, MsFlags::MS_RDONLY | flags)?;
    }
    Ok(())
}

/// Our cgroup in the v1 hierarchy `key` (its /proc/self/cgroup line's path).
fn own_cgroup<'a>(proc_cgroup: &'a str, key: &str) -> Option<&'a str> {
    proc_cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, k, path) = (f.next()?, f.next()?, f.next()?);
        (k == key).then_some(path)
    })
}

#[cfg(test)]
mod own_cgroup_tests {
    #[test]
    fn finds_the_hierarchys_line() {
        let p = "9:name=systemd:/\n4:memory:/moat/c1\n1:cpu,cpuacct:/moat/c1\n0::/\n";
        assert_eq!(super::own_cgroup(p, "memory"), Some("/moat/c1"));
        assert_eq!(super::own_cgroup(p, "cpu,cpuacct"), Some("/moat/c1"));
        assert_eq!(super::own_cgroup(p, "name=systemd"), Some("/"));
        assert_eq!(super::own_cgroup(p, "pids"), None);
    }
}
