//! A user namespace of the sandbox's own over files the host owns.
//!
//! The container's root is an unprivileged host uid, yet its files must
//! not change owners on disk (the bundle is the host's; runc without a user
//! namespace leaves container ids there). So the namespace sees the tree
//! through idmapped mounts made with that same namespace: a file of disk
//! uid k shows as uid k inside, and what the container creates gets disk
//! uid k again. Only a host-privileged process can make them (the
//! filesystem belongs to the host's user namespace), on detached copies of
//! the mounts, and only on filesystems that allow it: on this kernel ext4,
//! xfs, btrfs and tmpfs do, overlayfs does not.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::unistd::{pipe, read, write};

use crate::{sys, Error, Result};

/// Filesystems whose mounts may be idmapped here, by their mountinfo names.
const FILESYSTEMS: &[&str] = &["ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs"];

/// A mount, as /proc/self/mountinfo lists it.
#[derive(Debug, Clone)]
pub struct Mount {
    /// its mount point
    pub point: PathBuf,
    /// whether it allows an idmapped copy: a filesystem that does, and not
    /// idmapped already (the kernel refuses a copy of one)
    pub idmappable: bool,
}

fn mounts() -> Vec<Mount> {
    crate::mount::mountinfo()
        .unwrap_or_default()
        .into_iter()
        .map(|m| Mount {
            idmappable: FILESYSTEMS.contains(&m.fstype.as_str()) && !m.options.split(',').any(|o| o == "idmapped"),
            point: PathBuf::from(m.point),
        })
        .collect()
}

/// Whether `path` lies on a mount that allows an idmapped copy (the mount
/// holding it: the one at the longest mount point above it).
pub fn supported(path: &Path) -> bool {
    let Ok(real) = std::fs::canonicalize(path) else { return false };
    mounts()
        .into_iter()
        .filter(|m| real.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len())
        .is_some_and(|m| m.idmappable)
}

/// The mounts strictly below `path`, as /proc/self/mountinfo lists them
/// (nothing is asked of their filesystems: an autofs point stays unmounted).
pub fn mounts_below(path: &Path) -> Vec<Mount> {
    mounts().into_iter().filter(|m| m.point != path && m.point.starts_with(path)).collect()
}

/// The mount points strictly below `path`.
pub fn submounts(path: &Path) -> Vec<PathBuf> {
    mounts_below(path).into_iter().map(|m| m.point).collect()
}

/// A detached copy of the mount at `path` (and, when `recursive`, of those
/// below it, which must all allow it), every one idmapped with `userns`.
pub fn clone(path: &Path, recursive: bool, userns: BorrowedFd<'_>) -> Result<OwnedFd> {
    let tree = sys::clone_mount(path, recursive).map_err(|e| Error::path("clone the mount at", path, e))?;
    // one call for the whole copy: the kernel refuses a submount of a
    // detached tree on its own
    sys::mount_setattr_idmap(tree.as_fd(), recursive, userns)
        .map_err(|e| Error::path("idmap the mount at", path, e))?;
    Ok(tree)
}

/// A new user namespace, with no process in it, that maps ids [0, size)
/// to the host's [base, base + size): a child unshares it and waits while
/// we write its maps and take the namespace, then ends.
pub fn new_userns(base: u32, size: u32) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let (ready_r, ready_w) = pipe().map_err(|e| Error::sys("pipe", e))?;
    let (done_r, done_w) = pipe().map_err(|e| Error::sys("pipe", e))?;
    let (child_ready, child_done, parents_end) = (ready_w.as_raw_fd(), done_r.as_raw_fd(), done_w.as_raw_fd());
    let child = sys::fork_with(move || {
        // the parent's end, or our own read would never see it close
        let _ = nix::unistd::close(parents_end);
        // SAFETY: both fds stay open in the child until it exits.
        let (ready, done) = unsafe { (BorrowedFd::borrow_raw(child_ready), BorrowedFd::borrow_raw(child_done)) };
        if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_err() {
            return 1;
        }
        let _ = write(ready, b"u");
        // until the parent has taken the namespace (it closes its end)
        let _ = read(done, &mut [0u8; 1]);
        0
    })
    .map_err(|e| Error::sys("fork", e))?;
    drop((ready_w, done_r));
    let taken = (|| {
        let mut b = [0u8; 1];
        if read(ready_r.as_fd(), &mut b).map_err(|e| Error::sys("wait for a new user namespace", e))? != 1 {
            return Err(Error::Config("could not make a user namespace".into()));
        }
        let map = format!("0 {base} {size}\n");
        for file in ["gid_map", "uid_map"] {
            let p = format!("/proc/{child}/{file}");
            std::fs::write(&p, &map).map_err(|e| Error::path("write", p, e))?;
        }
        let p = format!("/proc/{child}/ns/user");
        Ok(OwnedFd::from(std::fs::File::open(&p).map_err(|e| Error::path("open", p, e))?))
    })();
    drop(done_w);
    let _ = nix::sys::wait::waitpid(child, None);
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_which_filesystems_allow_it() {
        // /proc never does; the test's own temporary directory (tmpfs or
        // ext4 on the machines we run on) does
        assert!(!supported(Path::new("/proc")));
        assert!(supported(&std::env::temp_dir()));
    }

    #[test]
    fn an_idmapped_copy_shows_disk_ids_inside_the_namespace() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let ns = new_userns(200_000, 65536).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tree = clone(dir.path(), false, ns.as_fd()).unwrap();
        // seen from the host, through the copy, disk uid 0 is the namespace's root
        let st = nix::sys::stat::fstat(&tree).unwrap();
        assert_eq!(st.st_uid, 200_000);
    }
}
