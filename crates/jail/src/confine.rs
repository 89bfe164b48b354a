//! Confining one of moat's own helper processes (the gofer now, the Sentry
//! later): a private mount namespace whose root is the one tree it serves,
//! a short capability list, no_new_privs and a seccomp policy.

use std::os::fd::BorrowedFd;
use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};
use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;

use crate::policy::{self, Policy};
use crate::{mount as m, ns, rootfs, Error, Result};

/// What to confine the calling process to.
#[derive(Debug, Clone)]
pub struct Confinement<'a> {
    /// the only directory the process may see; it becomes its `/`
    pub tree: &'a Path,
    /// make the tree read-only in this mount namespace too
    pub read_only: bool,
    /// capabilities to keep (all others leave every set, bounding included)
    pub keep_caps: &'a [Capability],
    /// seccomp policy, loaded last
    pub policy: Option<&'a Policy>,
    /// after the pivot, join this user namespace and become its root (uid
    /// and gid 0 there, no groups): a helper that acts inside a sandbox's
    /// user namespace. The tree is reached and made the root first, with
    /// the ids and capabilities the process came with (the namespace's
    /// root may not search the directories above it); the mount namespace
    /// stays the host's user namespace's, so none is mounted inside it.
    pub join_userns: Option<BorrowedFd<'a>>,
}

/// Confines the calling (single-threaded) process. Afterwards `/` is the tree.
pub fn confine(c: &Confinement<'_>) -> Result<()> {
    ns::create(CloneFlags::CLONE_NEWNS)?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| Error::path("make private", "/", e))?;
    if c.tree == Path::new("/") {
        // the root is the tree already (a helper that joined a container's
        // mount namespace): this private copy of it is all it sees
        if c.read_only {
            crate::sys::mount_setattr_rdonly(c.tree, true).map_err(|e| Error::path("make read-only", c.tree, e))?;
        }
    } else {
        mount(Some(c.tree), c.tree, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| Error::path("bind", c.tree, e))?;
        if c.read_only {
            m::remount_bind(c.tree, MsFlags::MS_RDONLY)?;
        }
        rootfs::pivot(c.tree)?;
    }
    if let Some(ns) = c.join_userns {
        nix::sched::setns(ns, CloneFlags::CLONE_NEWUSER).map_err(|e| Error::sys("join the user namespace", e))?;
        become_root()?;
    }
    drop_caps(c.keep_caps)?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| Error::sys("PR_SET_NO_NEW_PRIVS", e))?;
    if let Some(p) = c.policy {
        policy::load(p)?;
    }
    Ok(())
}

/// uid and gid 0 of the process's user namespace; no supplementary groups
/// (where the namespace allows setgroups). The capabilities stay: the new
/// effective uid is the namespace's root.
fn become_root() -> Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let root = Gid::from_raw(0);
    setresgid(root, root, root).map_err(|e| Error::sys("setresgid 0", e))?;
    // EPERM: the namespace's setgroups is "deny"; the groups stay empty anyway
    match setgroups(&[]) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(e) => return Err(Error::sys("setgroups", e)),
    }
    let root = Uid::from_raw(0);
    setresuid(root, root, root).map_err(|e| Error::sys("setresuid 0", e))
}

/// Keeps only `keep` in every capability set.
pub fn drop_caps(keep: &[Capability]) -> Result<()> {
    let err = |what: &str, e: caps::errors::CapsError| {
        Error::sys(format!("drop capabilities ({what})"), std::io::Error::other(e.to_string()))
    };
    let keep_set: CapsHashSet = keep.iter().copied().collect();
    for cap in caps::all() {
        if !keep_set.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| err("bounding", e))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| err("ambient", e))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(|e| err("inheritable", e))?;
    caps::set(None, CapSet::Effective, &keep_set).map_err(|e| err("effective", e))?;
    caps::set(None, CapSet::Permitted, &keep_set).map_err(|e| err("permitted", e))
}
