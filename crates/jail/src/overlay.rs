//! An overlayfs rootfs (what containerd's and podman's snapshotters
//! mount) for a sandbox with a user namespace of its own.
//!
//! An overlayfs mount cannot be idmapped on this kernel, but its layers
//! can (see [`crate::idmapped`]). So the sandbox gets an overlayfs of its
//! own, made again from the layers of the one at the rootfs, each seen
//! through an idmapped copy: [`at`] reads which layers and options that
//! mount has, [`mount`] makes the new one.
//!
//! Overlayfs does its work in the layers with the credentials of whoever
//! mounted it. The new mount is made by a child of host root whose fsuid
//! and fsgid are the namespace's root (with every capability still
//! effective): its own files (the work dir, whiteouts, copy-up's temporary
//! files) then have an owner the idmapped layers can store (disk uid 0),
//! and it can still read the layers' trusted.overlay xattrs (opaque
//! directories, redirects), which only host root may. Mounted with host
//! root's fsuid, the work dir cannot be made (EOVERFLOW) and the kernel
//! falls back to read-only; mounted inside the namespace, trusted xattrs
//! are out of reach.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

use crate::{sys, Error, Result};

/// The layers and options of an overlayfs mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    /// lower layers, top first
    pub lowers: Vec<PathBuf>,
    /// the upper layer, if writable
    pub upper: Option<PathBuf>,
    /// its work dir (with the upper layer)
    pub work: Option<PathBuf>,
    /// every other option, as `key` or `key=value` (rw and ro left out)
    pub options: Vec<(String, Option<String>)>,
}

/// The layers of the overlayfs mounted at exactly `path` (the top mount
/// there), None if what is mounted there is not overlayfs or `path` is no
/// mount point. Err if its options name a layer this cannot use again: a
/// relative path, or data-only lower layers.
pub fn at(path: &Path) -> Result<Option<Layers>> {
    match crate::mount::mountinfo()?.into_iter().rev().find(|m| Path::new(&m.point) == path) {
        Some(m) if m.fstype == "overlay" => parse(&m.super_options).map(Some),
        _ => Ok(None),
    }
}

/// Layers from an overlayfs mount's super options, as mountinfo shows
/// them (separators bare, the same characters in paths octal-escaped).
fn parse(super_options: &str) -> Result<Layers> {
    let mut layers = Layers { lowers: Vec::new(), upper: None, work: None, options: Vec::new() };
    let absolute = |p: &str| -> Result<PathBuf> {
        let p = PathBuf::from(crate::mount::unescape(p));
        if p.is_absolute() {
            Ok(p)
        } else {
            Err(Error::Config(format!("overlayfs layer {} is not an absolute path", p.display())))
        }
    };
    for opt in super_options.split(',') {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        match (key, value) {
            ("rw" | "ro", None) => {}
            ("lowerdir", Some(v)) => {
                if v.split(':').any(str::is_empty) {
                    return Err(Error::Config("overlayfs with data-only lower layers".into()));
                }
                layers.lowers = v.split(':').map(absolute).collect::<Result<_>>()?;
            }
            ("upperdir", Some(v)) => layers.upper = Some(absolute(v)?),
            ("workdir", Some(v)) => layers.work = Some(absolute(v)?),
            _ => layers.options.push((key.to_string(), value.map(crate::mount::unescape))),
        }
    }
    if layers.lowers.is_empty() {
        return Err(Error::Config("overlayfs without lower layers".into()));
    }
    Ok(layers)
}

/// Mounts an overlayfs of `layers` at `target`, made with fsuid and fsgid
/// `owner` (see the module's doc): a child does it, so our own credentials
/// stay as they are.
pub fn mount(layers: &Layers, target: &Path, owner: u32) -> Result<()> {
    let cstr = |s: &str| CString::new(s).map_err(|_| Error::Config(format!("overlayfs option {s:?} has a NUL byte")));
    // a path's own ':' and '\' escaped, as the kernel reads lowerdir
    let escape = |p: &Path| p.display().to_string().replace('\\', "\\\\").replace(':', "\\:");
    let mut params: Vec<(CString, Option<CString>)> = Vec::new();
    if let (Some(upper), Some(work)) = (&layers.upper, &layers.work) {
        params.push((cstr("upperdir")?, Some(cstr(&upper.display().to_string())?)));
        params.push((cstr("workdir")?, Some(cstr(&work.display().to_string())?)));
    }
    for (k, v) in &layers.options {
        params.push((cstr(k)?, v.as_deref().map(cstr).transpose()?));
    }
    // a value of fsconfig(2) is at most 256 bytes: one layer a value
    // (lowerdir+, Linux 6.8), top first; before 6.8, all in one
    let each = layers
        .lowers
        .iter()
        .map(|p| Ok((cstr("lowerdir+")?, Some(cstr(&p.display().to_string())?))))
        .collect::<Result<Vec<_>>>()?;
    let lowers: Vec<String> = layers.lowers.iter().map(|p| escape(p)).collect();
    let joined = vec![(cstr("lowerdir")?, Some(cstr(&lowers.join(":"))?))];
    let child = sys::fork_with(|| {
        let made = (|| -> std::io::Result<()> {
            nix::unistd::setfsgid(Gid::from_raw(owner));
            nix::unistd::setfsuid(Uid::from_raw(owner));
            // leaving fsuid 0 dropped the file capabilities from the effective set
            let permitted = caps::read(None, caps::CapSet::Permitted).map_err(std::io::Error::other)?;
            caps::set(None, caps::CapSet::Effective, &permitted).map_err(std::io::Error::other)?;
            let with = |lowers: &[(CString, Option<CString>)]| {
                let refs: Vec<_> = lowers.iter().chain(&params).map(|(k, v)| (k.as_c_str(), v.as_deref())).collect();
                sys::new_mount(c"overlay", &refs, 0)
            };
            let mnt = match with(&each) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => with(&joined)?,
                made => made?,
            };
            sys::move_mount_to(std::os::fd::AsFd::as_fd(&mnt), target)
        })();
        match made {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO).clamp(1, 255),
        }
    })
    .map_err(|e| Error::sys("fork", e))?;
    match nix::sys::wait::waitpid(child, None).map_err(|e| Error::sys("wait for the overlayfs mount", e))? {
        nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
        nix::sys::wait::WaitStatus::Exited(_, errno) => Err(Error::path(
            "mount overlayfs over idmapped layers at",
            target,
            std::io::Error::from_raw_os_error(errno),
        )),
        other => Err(Error::Config(format!("mounting overlayfs at {}: {other:?}", target.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_layers_and_options_as_mountinfo_shows_them() {
        let l = parse("rw,lowerdir=/a/1:/a/2\\072x,upperdir=/u/fs,workdir=/u/work,uuid=on,volatile").unwrap();
        assert_eq!(l.lowers, [PathBuf::from("/a/1"), PathBuf::from("/a/2:x")]);
        assert_eq!(l.upper.as_deref(), Some(Path::new("/u/fs")));
        assert_eq!(l.work.as_deref(), Some(Path::new("/u/work")));
        assert_eq!(l.options, [("uuid".to_string(), Some("on".to_string())), ("volatile".to_string(), None)]);
        // podman's relative layers, data-only layers, none at all
        assert!(parse("rw,lowerdir=l/ABC:l/DEF,upperdir=/u,workdir=/w").is_err());
        assert!(parse("ro,lowerdir=/a::/b").is_err());
        assert!(parse("rw,upperdir=/u,workdir=/w").is_err());
    }

    #[test]
    fn an_overlay_made_again_over_idmapped_layers_keeps_disk_owners() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let base = 300_000;
        let ns = crate::idmapped::new_userns(base, 65536).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["lower", "up/fs", "up/work", "ilower", "iup", "merged"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let empty: Vec<PathBuf> = (0..40).map(|i| d.join(format!("empty/{i}"))).collect();
        for e in &empty {
            std::fs::create_dir_all(e).unwrap();
        }
        std::fs::write(d.join("lower/f"), "x").unwrap();
        std::fs::set_permissions(d.join("up/fs"), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
        std::os::unix::fs::chown(d.join("lower/f"), Some(1000), Some(1000)).unwrap();
        // a private mount namespace, so nothing outlives the test
        let child = sys::fork_with(|| {
            let ok = (|| -> Result<()> {
                crate::ns::create(nix::sched::CloneFlags::CLONE_NEWNS)?;
                nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .map_err(|e| Error::sys("private", e))?;
                for (src, dst) in [("lower", "ilower"), ("up", "iup")] {
                    let t = crate::idmapped::clone(&d.join(src), false, std::os::fd::AsFd::as_fd(&ns))?;
                    sys::move_mount_to(std::os::fd::AsFd::as_fd(&t), &d.join(dst))
                        .map_err(|e| Error::sys("move", e))?;
                }
                // as many layers as big images have: more than one
                // fsconfig value of 256 bytes could name
                let layers = Layers {
                    lowers: std::iter::once(d.join("ilower")).chain(empty.iter().cloned()).collect(),
                    upper: Some(d.join("iup/fs")),
                    work: Some(d.join("iup/work")),
                    options: Vec::new(),
                };
                mount(&layers, &d.join("merged"), base)?;
                let m = d.join("merged");
                // seen from the host, disk ids are the namespace's
                let f = std::fs::metadata(m.join("f")).map_err(|e| Error::sys("stat", e))?;
                if f.uid() != base + 1000 {
                    return Err(Error::Config(format!("uid {}", f.uid())));
                }
                // a copy-up and a new file, as the namespace's uid 5
                nix::unistd::setfsuid(Uid::from_raw(base + 5));
                nix::unistd::setfsgid(Gid::from_raw(base + 5));
                std::fs::write(m.join("new"), "n").map_err(|e| Error::sys("create", e))?;
                nix::unistd::setfsuid(Uid::from_raw(0));
                std::fs::write(m.join("f"), "y").map_err(|e| Error::sys("copy up", e))?;
                Ok(())
            })();
            if let Err(e) = &ok {
                eprintln!("{e}");
            }
            i32::from(ok.is_err())
        })
        .unwrap();
        assert_eq!(nix::sys::wait::waitpid(child, None).unwrap(), nix::sys::wait::WaitStatus::Exited(child, 0));
        // on disk: the copied-up file keeps uid 1000, the new one is uid 5
        assert_eq!(std::fs::metadata(d.join("up/fs/f")).unwrap().uid(), 1000);
        assert_eq!(std::fs::metadata(d.join("up/fs/new")).unwrap().uid(), 5);
        assert_eq!(std::fs::read_to_string(d.join("lower/f")).unwrap(), "x");
    }
}
