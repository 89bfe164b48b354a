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
    for (_, key) in v1::hierarchies() {
        let name = key.strip_prefix("name=").unwrap_or(&key);
        let sub = dest.join(name);
        std::fs::create_dir_all(&sub).map_err(|e| Error::path("mkdir", &sub, e))?;
        let f = flags | if ro { MsFlags::MS_RDONLY } else { MsFlags::empty() };
        mount(Some("cgroup"), &sub, Some("cgroup"), f, Some(key.as_str()))
            .map_err(|e| Error::path("mount cgroup", &sub, e))?;
    }
    if ro {
        crate::mount::remount_bind(dest, MsFlags::MS_RDONLY | flags)?;
    }
    Ok(())
}
