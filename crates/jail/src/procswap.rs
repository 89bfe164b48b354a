//! The sentry platform's /proc: the procfs the spec mounted at /proc is
//! swapped, as the last step of building the file tree, for a FUSE mount
//! the Sentry serves (moat_sentry::fs::proc). The Sentry gets the FUSE
//! connection and a procfs instance of the sandbox's pid namespace that no
//! stub can reach; the stubs see only what the Sentry answers.
//!
//! `moat create` makes the FUSE mount itself ([`prepare`]), detached, and
//! hands it to init: the container's device cgroup would refuse /dev/fuse
//! to init, and FUSE wants its device opened in the user namespace that
//! mounts (a container's own user namespace cannot open the host's node).
//! So the mount belongs to the host's user and pid namespaces: the Sentry
//! reports host ids and is told host pids. Init attaches it ([`swap`])
//! after masked and read-only paths and sysctls are applied (they need the
//! real procfs), and touches /proc no more: until the Sentry runs, a FUSE
//! request would wait.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{umount2, MntFlags};
use nix::sys::stat::Mode;

use crate::{sys, Error, Result};

/// A FUSE connection and its mount, not attached anywhere yet.
pub struct Prepared {
    /// the connection: the Sentry serves it
    pub dev: OwnedFd,
    /// the detached mount: init attaches it at /proc
    pub mount: OwnedFd,
}

/// Opens /dev/fuse and makes a detached FUSE mount on it (read-only to
/// the stubs by the Sentry's answers; nosuid, nodev, noexec).
pub fn prepare() -> Result<Prepared> {
    let dev = open("/dev/fuse", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::path("open", "/dev/fuse", e))?;
    let fd = CString::new(dev.as_raw_fd().to_string()).map_err(|_| Error::Config("fd".into()))?;
    let params = [
        (c"source", Some(c"proc")),
        (c"fd", Some(fd.as_c_str())),
        (c"rootmode", Some(c"40555")),
        (c"user_id", Some(c"0")),
        (c"group_id", Some(c"0")),
        (c"allow_other", None),
        (c"default_permissions", None),
    ];
    let mount = sys::new_mount(c"fuse", &params, sys::MOUNT_ATTR_NOSUID_NODEV_NOEXEC)
        .map_err(|e| Error::path("make the sandbox's /proc", "/dev/fuse", e))?;
    Ok(Prepared { dev, mount })
}

/// The mount points of procfs mounts in `mountinfo`.
fn proc_mounts(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            (right.split(' ').next()? == "proc").then(|| point.to_string())
        })
        .collect()
}

/// Swaps the procfs at /proc for `mount` (from [`prepare`]), and returns a
/// procfs of the sandbox's pid namespace for the Sentry alone. `None` if
/// the spec mounted no procfs at /proc. Any other procfs mount is refused:
/// it would give the stubs the host kernel's /proc.
pub fn swap(mount: &OwnedFd) -> Result<Option<OwnedFd>> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::path("read", "/proc/self/mountinfo", e))?;
    let points = proc_mounts(&info);
    if let Some(p) = points.iter().find(|p| *p != "/proc" && !p.starts_with("/proc/")) {
        return Err(Error::Config(format!(
            "mounts: with --platform sentry, proc can only be mounted at /proc (not {p})"
        )));
    }
    if !points.iter().any(|p| p == "/proc") {
        return Ok(None);
    }
    let sandbox = sys::procfs_instance(false).map_err(|e| Error::path("mount a procfs for the sentry", "/proc", e))?;
    umount2("/proc", MntFlags::MNT_DETACH).map_err(|e| Error::path("unmount", "/proc", e))?;
    sys::move_mount_to(mount.as_fd(), Path::new("/proc"))
        .map_err(|e| Error::path("mount the sandbox's /proc", "/proc", e))?;
    Ok(Some(sandbox))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_procfs_mount() {
        let info = "22 1 0:5 / / rw - overlay overlay rw\n\
                    23 22 0:6 / /proc rw,nosuid - proc proc rw\n\
                    24 23 0:6 /sys /proc/sys ro - proc proc rw\n\
                    25 22 0:7 / /dev rw - tmpfs tmpfs rw\n\
                    26 22 0:6 / /mnt/p rw - proc proc rw\n";
        assert_eq!(proc_mounts(info), vec!["/proc", "/proc/sys", "/mnt/p"]);
    }
}
