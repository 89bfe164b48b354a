//! The container's file tree: propagation, the rootfs bind, the spec's
//! mounts and devices, pivot_root, then masked and read-only paths.
//!
//! Order (as runc): [`prepare`] runs in the new mount namespace before
//! pivot_root, [`pivot`] switches root, [`finalize`] runs inside the new root.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::Spec;

use crate::{devices, mount as m, sys, Error, Result};

/// What [`prepare`] needs besides the spec.
#[derive(Debug, Clone)]
pub struct Prepare {
    /// the root directory on the host (spec root.path made absolute)
    pub root: PathBuf,
    /// where to bind a root of "/" (a directory under the state dir)
    pub staging: PathBuf,
    /// whether the container has its own user namespace (no mknod then)
    pub in_userns: bool,
}

/// Sets up the tree under the new root and returns its host path.
pub fn prepare(spec: &Spec, p: &Prepare) -> Result<PathBuf> {
    let linux = spec.linux().clone().unwrap_or_default();
    let prop = match linux.rootfs_propagation().as_deref() {
        Some(w) if !w.is_empty() => m::propagation_flag(w)
            .ok_or_else(|| Error::Config(format!("linux.rootfsPropagation: unknown value {w:?}")))?,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    mount(None::<&str>, "/", None::<&str>, prop, None::<&str>).map_err(|e| Error::path("set propagation", "/", e))?;
    let host_root = p.root == Path::new("/");
    let rootfs = if host_root { p.staging.clone() } else { p.root.clone() };
    if host_root {
        fs::create_dir_all(&rootfs).map_err(|e| Error::path("mkdir", &rootfs, e))?;
    }
    make_parent_private(&rootfs)?;
    mount(Some(&p.root), &rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| Error::path("bind rootfs", &rootfs, e))?;
    let readonly = spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
    if host_root && readonly {
        // the host's tree with all its submounts becomes read-only at once;
        // the spec's own mounts (proc, dev, tmp) then go on top
        sys::mount_setattr_rdonly(&rootfs, true).map_err(|e| Error::path("make read-only", &rootfs, e))?;
    }
    for mnt in spec.mounts().iter().flatten() {
        m::mount_into(&rootfs, mnt)?;
    }
    let mut nodes = devices::defaults();
    nodes.extend(linux.devices().iter().flatten().map(devices::from_spec));
    let dev = crate::securejoin::join(&rootfs, Path::new("/dev"))?;
    if fs::symlink_metadata(&dev).map(|m| m.is_dir()).unwrap_or(false) || !host_root {
        devices::create(&rootfs, &nodes, p.in_userns)?;
        devices::create_symlinks(&rootfs)?;
    }
    Ok(rootfs)
}

/// pivot_root(2) cannot move a root whose parent mount is shared: make the
/// mount that holds `rootfs` private first (in our namespace only).
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let mut p = rootfs.to_path_buf();
    loop {
        match mount(None::<&str>, &p, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EINVAL) if p.pop() => continue,
            Err(e) => return Err(Error::path("make private", p, e)),
        }
    }
}

/// Makes `rootfs` the root: pivot_root(".", ".") and a lazy unmount of the
/// old root, so no directory of the host stays reachable.
pub fn pivot(rootfs: &Path) -> Result<()> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old = open("/", flags, Mode::empty()).map_err(|e| Error::path("open", "/", e))?;
    let new = open(rootfs, flags, Mode::empty()).map_err(|e| Error::path("open", rootfs, e))?;
    fchdir(new.as_fd()).map_err(|e| Error::path("chdir", rootfs, e))?;
    pivot_root(".", ".").map_err(|e| Error::path("pivot_root", rootfs, e))?;
    fchdir(old.as_fd()).map_err(|e| Error::path("chdir", "old root", e))?;
    // don't let the unmount below propagate to the host
    mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| Error::path("make slave", "old root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| Error::path("unmount", "old root", e))?;
    chdir("/").map_err(|e| Error::path("chdir", "/", e))
}

/// `--no-pivot`: move the rootfs over / and chroot into it (for ramfs roots
/// where pivot_root is impossible; weaker, as runc warns).
pub fn move_root(rootfs: &Path) -> Result<()> {
    chdir(rootfs).map_err(|e| Error::path("chdir", rootfs, e))?;
    mount(Some(rootfs), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| Error::path("move mount", rootfs, e))?;
    chroot(".").map_err(|e| Error::path("chroot", rootfs, e))?;
    chdir("/").map_err(|e| Error::path("chdir", "/", e))
}

/// Inside the new root: masked paths, read-only paths, read-only root,
/// and the root's final propagation.
pub fn finalize(spec: &Spec) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    for p in linux.readonly_paths().iter().flatten() {
        readonly_path(Path::new(p))?;
    }
    for p in linux.masked_paths().iter().flatten() {
        mask_path(Path::new(p))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        m::remount_bind(Path::new("/"), MsFlags::MS_RDONLY)?;
    }
    if let Some(w) = linux.rootfs_propagation().as_deref().filter(|w| !w.is_empty()) {
        if let Some(f) = m::propagation_flag(w) {
            mount(None::<&str>, "/", None::<&str>, f, None::<&str>)
                .map_err(|e| Error::path("set propagation", "/", e))?;
        }
    }
    Ok(())
}

fn readonly_path(p: &Path) -> Result<()> {
    match mount(Some(p), p, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>) {
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::path("bind read-only path", p, e)),
        Ok(()) => {}
    }
    m::remount_bind(p, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)
}

fn mask_path(p: &Path) -> Result<()> {
    let meta = match fs::metadata(p) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    let r = if meta.is_dir() {
        mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>)
    } else {
        mount(Some("/dev/null"), p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
    };
    r.map_err(|e| Error::path("mask", p, e))
}
