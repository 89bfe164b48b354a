//! The stubs' view of the container's files on the sentry platform (the
//! replica): once the Sentry holds the real tree, init turns its own view
//! into a new mount namespace that every stub inherits, in which nothing
//! can be written but through the Sentry.
//!
//! Two kinds: [`make`], read-only copies of the real tree's mounts (the
//! host kernel reads the container's files itself, `--directfs`, the
//! default), and [`over`], the same with the container's files served by
//! the Sentry from the gofer (`--directfs=false`): a FUSE mount ([`mount_gofer`])
//! replaces the rootfs and everything mounted in it, but for /dev (device
//! nodes and ptys must be the kernel's own), /proc and /sys (the Sentry's
//! already), which are moved onto it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, fchdir, pivot_root};

use crate::pseudofs::Kind;
use crate::{sys, Error, Result};

/// Turns the calling process's file tree into the stubs' read-only
/// replica: a new mount namespace, whose copies of every mount are
/// read-only, except the Sentry's /proc and /sys where they were writable
/// (their writes are the Sentry's to refuse), and /dev/mqueue. Writes
/// reach the real tree only through the Sentry. Processes that join the
/// container later join this namespace.
pub fn make() -> Result<()> {
    let writable = writable();
    crate::ns::create(nix::sched::CloneFlags::CLONE_NEWNS)?;
    finish(&writable)
}

/// Like [`make`], with `root` (a detached [`mount_gofer`]) in place of the
/// rootfs and every mount in it but /dev, /proc and /sys and what lies
/// below them.
pub fn over(root: OwnedFd) -> Result<()> {
    let writable = writable();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let points: Vec<String> = crate::mount::mountinfo()?.into_iter().map(|m| m.point).collect();
    crate::ns::create(nix::sched::CloneFlags::CLONE_NEWNS)?;
    // what happens here stays here (the unmount of the old root below)
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(|e| Error::path("make slave", "/", e))?;
    let mut kept = Vec::new();
    for p in ["/dev", "/proc", "/sys"] {
        if points.iter().any(|m| m == p) {
            let copy = sys::clone_tree(Path::new(p)).map_err(|e| Error::path("copy the mounts at", p, e))?;
            kept.push((p, copy));
        }
    }
    let slash = Path::new("/");
    sys::move_mount_to(root.as_fd(), slash).map_err(|e| Error::path("mount the gofer's tree at", slash, e))?;
    fchdir(root.as_fd()).map_err(|e| Error::path("chdir", "the gofer's tree", e))?;
    pivot_root(".", ".").map_err(|e| Error::path("pivot_root", "the gofer's tree", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| Error::path("unmount", "the old root", e))?;
    chdir("/").map_err(|e| Error::path("chdir", "/", e))?;
    for (p, copy) in kept {
        sys::move_mount_to(copy.as_fd(), Path::new(p)).map_err(|e| Error::path("mount again", p, e))?;
    }
    finish(&writable)?;
    chdir(&cwd).map_err(|e| Error::path("chdir", &cwd, e))
}

/// A detached FUSE mount on connection `dev` for [`over`], read-only. The
/// kernel checks permissions from the attributes the Sentry answers.
pub fn mount_gofer(dev: &OwnedFd) -> Result<OwnedFd> {
    crate::pseudofs::fuse_mount(dev, c"moat-gofer", c"40000", sys::MOUNT_ATTR_RDONLY_FLAG)
        .map_err(|e| Error::path("make the gofer's mount of", "/", e))
}

/// The mounts that stay writable in the replica, as seen before it is
/// made: the Sentry's /proc and /sys where writable, and /dev/mqueue (a
/// queue is charged to its creator's real uid, so the host makes those
/// calls for the stubs; the Sentry would be host root). Only where they
/// are mounted: a spec may mount neither /sys nor /dev/mqueue, and the
/// directory is then the rootfs's, which stays read-only.
fn writable() -> Vec<&'static Path> {
    const FUSE: i64 = 0x6573_5546;
    const MQUEUE: i64 = 0x1980_0202;
    Kind::ALL
        .iter()
        .map(|k| (Path::new(k.path()), FUSE))
        .chain([(Path::new("/dev/mqueue"), MQUEUE)])
        .filter(|(p, kind)| {
            nix::sys::statfs::statfs(*p).is_ok_and(|s| s.filesystem_type().0 == *kind)
                && nix::sys::statvfs::statvfs(*p)
                    .is_ok_and(|s| !s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        })
        .map(|(p, _)| p)
        .collect()
}

/// Every mount read-only but `writable`.
fn finish(writable: &[&Path]) -> Result<()> {
    let root = Path::new("/");
    sys::mount_setattr_rdonly(root, true).map_err(|e| Error::path("make the stubs' view read-only", root, e))?;
    for p in writable {
        sys::mount_setattr_rw(p).map_err(|e| Error::path("keep writable", p, e))?;
    }
    Ok(())
}
