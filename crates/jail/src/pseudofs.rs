//! The sentry platform's /proc and /sys: the procfs and sysfs the spec
//! mounted there are swapped, as the last step of building the file tree,
//! for FUSE mounts the Sentry serves (moat_sentry::fs). The Sentry gets the
//! FUSE connections and, behind them, a procfs of the sandbox's pid
//! namespace and a sysfs of its network namespace that no stub can reach;
//! the stubs see only what the Sentry answers.
//!
//! `moat create` opens /dev/fuse ([`prepare`]): the container's device
//! cgroup would refuse it to init, and FUSE wants its device opened in the
//! user namespace that mounts (a container's own user namespace cannot
//! open the host's node). The Sentry makes the mounts ([`mount`]), detached,
//! from inside the sandbox's pid namespace, so callers come numbered as the
//! sandbox numbers them; they belong to the host's user namespace (the
//! Sentry reports host ids). `create` passes them on to init.
//!
//! Init swaps them in in two steps, after masked and read-only paths and
//! sysctls are applied (they need the real filesystems): [`backing`] makes
//! the Sentry's instances and keeps a detached copy of what sits on
//! /sys/fs/cgroup; then, once the Sentry serves (a FUSE request would wait
//! for it), [`attach`] unmounts the real /proc and /sys, attaches the FUSE
//! mounts and puts the cgroup mounts back on top.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{umount2, MntFlags};
use nix::sys::stat::Mode;

use crate::mount::MountInfo;
use crate::{sys, Error, Result};

/// The pseudo filesystems the Sentry serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// /proc
    Proc,
    /// /sys
    Sys,
}

impl Kind {
    /// Both, in the order they are handled.
    pub const ALL: [Kind; 2] = [Kind::Proc, Kind::Sys];

    /// The filesystem type the spec mounts.
    pub fn fstype(self) -> &'static str {
        match self {
            Kind::Proc => "proc",
            Kind::Sys => "sysfs",
        }
    }

    /// Where it must be mounted.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Proc => "/proc",
            Kind::Sys => "/sys",
        }
    }

    /// The name it travels under between moat's processes.
    pub fn from_fstype(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.fstype() == s)
    }
}

/// A FUSE connection, not mounted yet.
pub struct Prepared {
    /// what it will show
    pub kind: Kind,
    /// the connection: the Sentry mounts and serves it
    pub dev: OwnedFd,
}

/// Opens /dev/fuse for a FUSE connection of `kind`.
pub fn prepare(kind: Kind) -> Result<Prepared> {
    let dev = open("/dev/fuse", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
        Error::Config(format!(
            "the sentry platform serves /proc and /sys over FUSE and cannot open /dev/fuse ({e}): \
             load the fuse module, or use --platform native"
        ))
    })?;
    Ok(Prepared { kind, dev })
}

/// Makes a detached FUSE mount of `kind` on the connection `dev` (nosuid,
/// nodev, noexec; /sys read-only too). The caller's pid namespace numbers
/// the callers in requests.
pub fn mount(dev: &OwnedFd, kind: Kind) -> Result<OwnedFd> {
    let source = CString::new(kind.fstype()).map_err(|_| Error::Config("fstype".into()))?;
    let mut attrs = sys::MOUNT_ATTR_NOSUID_NODEV_NOEXEC;
    if kind == Kind::Sys {
        attrs |= sys::MOUNT_ATTR_RDONLY_FLAG;
    }
    fuse_mount(dev, &source, c"40555", attrs)
        .map_err(|e| Error::path("make the sandbox's pseudo filesystem", kind.path(), e))
}

/// A detached FUSE mount on connection `dev` of the Sentry's: `source` as
/// mountinfo names it, a root of `rootmode`, host root's, open to every
/// user, permissions checked by the kernel from the Sentry's attributes.
pub(crate) fn fuse_mount(dev: &OwnedFd, source: &CStr, rootmode: &CStr, attrs: u32) -> std::io::Result<OwnedFd> {
    let fd = CString::new(dev.as_raw_fd().to_string())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let params = [
        (c"source", Some(source)),
        (c"fd", Some(fd.as_c_str())),
        (c"rootmode", Some(rootmode)),
        (c"user_id", Some(c"0")),
        (c"group_id", Some(c"0")),
        (c"allow_other", None),
        (c"default_permissions", None),
    ];
    sys::new_mount(c"fuse", &params, attrs)
}

/// Whether something is mounted on /sys/fs/cgroup of the visible /sys
/// (the last mount there), not just on one it covers.
fn cgroup_on_top(all: &[MountInfo]) -> bool {
    let Some(sys) = all.iter().rev().find(|m| m.point == "/sys") else { return false };
    all.iter().any(|m| m.point == "/sys/fs/cgroup" && m.parent == sys.id)
}

/// What [`backing`] made for the Sentry, and what [`attach`] puts back.
pub struct Backing {
    /// the kinds the spec mounts, each with the Sentry's instance of it
    pub instances: Vec<(Kind, OwnedFd)>,
    /// a detached copy of the mounts on /sys/fs/cgroup
    cgroup: Option<OwnedFd>,
}

/// Checks the spec's procfs and sysfs mounts (each only at its own place:
/// anywhere else it would give the stubs the host kernel's) and makes the
/// Sentry's instances of the ones mounted. Where the sandbox may mount no
/// sysfs (a network namespace owned by another user namespace), the
/// instance is a copy of the spec's /sys mount.
pub fn backing() -> Result<Backing> {
    let all = crate::mount::mountinfo()?;
    let mut instances = Vec::new();
    for kind in Kind::ALL {
        let here = kind.path();
        let inside = format!("{here}/");
        let points: Vec<&String> = all.iter().filter(|m| m.fstype == kind.fstype()).map(|m| &m.point).collect();
        if let Some(p) = points.iter().find(|p| **p != here && !p.starts_with(&inside)) {
            return Err(Error::Config(format!(
                "mounts: with --platform sentry, {} can only be mounted at {here} (not {p})",
                kind.fstype()
            )));
        }
        if !points.iter().any(|p| *p == here) {
            continue;
        }
        let instance = match kind {
            Kind::Proc => sys::procfs_instance(false),
            // inside a user namespace a new sysfs may be no more permissive
            // than the one already visible: the spec's, often read-only
            Kind::Sys => sys::new_mount(c"sysfs", &[], 0)
                .or_else(|_| {
                    sys::new_mount(c"sysfs", &[], sys::MOUNT_ATTR_RDONLY_FLAG | sys::MOUNT_ATTR_NOSUID_NODEV_NOEXEC)
                })
                // none at all (a network namespace the sandbox's user
                // namespace does not own): a copy of the spec's, which
                // stage 1 made of that network namespace as host root
                .or_else(|_| sys::clone_mount(Path::new(here), false)),
        };
        match instance {
            Ok(fd) => instances.push((kind, fd)),
            Err(e) if kind == Kind::Sys => tracing::debug!("the host's /sys stays: {e}"),
            Err(e) => return Err(Error::path("mount an instance for the sentry", here, e)),
        }
    }
    let mut cgroup = None;
    if instances.iter().any(|(k, _)| *k == Kind::Sys) && cgroup_on_top(&all) {
        cgroup = Some(
            sys::clone_tree(Path::new("/sys/fs/cgroup"))
                .map_err(|e| Error::path("keep the cgroup mounts", "/sys/fs/cgroup", e))?,
        );
    }
    Ok(Backing { instances, cgroup })
}

/// Swaps the spec's filesystems for the FUSE mounts (of the kinds that
/// have an instance in `b`) and puts the cgroup mounts back on /sys.
pub fn attach(b: &Backing, prepared: &[(Kind, OwnedFd)]) -> Result<()> {
    for (kind, _) in &b.instances {
        let Some((_, mount)) = prepared.iter().find(|(k, _)| k == kind) else { continue };
        let path = Path::new(kind.path());
        // every mount stacked there (a host root bound with its submounts has one below the spec's)
        umount2(path, MntFlags::MNT_DETACH).map_err(|e| Error::path("unmount", path, e))?;
        while umount2(path, MntFlags::MNT_DETACH).is_ok() {}
        sys::move_mount_to(mount.as_fd(), path).map_err(|e| Error::path("mount the sandbox's own", path, e))?;
    }
    if let Some(c) = &b.cgroup {
        let path = Path::new("/sys/fs/cgroup");
        sys::move_mount_to(c.as_fd(), path).map_err(|e| Error::path("mount again", path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::parse_mountinfo;

    #[test]
    fn lists_every_mount() {
        let info = "22 1 0:5 / / rw - overlay overlay rw\n\
                    23 22 0:6 / /proc rw,nosuid - proc proc rw\n\
                    24 23 0:6 /sys /proc/sys ro - proc proc rw\n\
                    25 22 0:7 / /sys rw - sysfs sysfs rw\n";
        let m = parse_mountinfo(info);
        assert_eq!((m[1].point.as_str(), m[1].fstype.as_str()), ("/proc", "proc"));
        assert_eq!((m[3].id, m[3].parent, m[3].point.as_str()), (25, 22, "/sys"));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn only_a_cgroup_mount_on_the_visible_sys_counts() {
        let covered = parse_mountinfo(
            "30 1 0:5 / /sys ro - sysfs sysfs rw\n31 30 0:6 / /sys/fs/cgroup ro - tmpfs tmpfs rw\n\
             40 1 0:7 / /sys rw - sysfs sysfs rw\n",
        );
        assert!(!cgroup_on_top(&covered));
        let on_top = parse_mountinfo(
            "40 1 0:7 / /sys rw - sysfs sysfs rw\n41 40 0:8 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
        );
        assert!(cgroup_on_top(&on_top));
    }
}
