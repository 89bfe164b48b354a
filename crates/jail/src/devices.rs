//! Device nodes in the container's /dev: the default set every OCI container
//! gets, plus the spec's `linux.devices`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::{securejoin, Error, Result};

/// A device node to create.
#[derive(Debug, Clone)]
pub struct Node {
    /// path inside the container
    pub path: String,
    /// 'c', 'b', 'p' or 'u'
    pub kind: char,
    /// major number
    pub major: i64,
    /// minor number
    pub minor: i64,
    /// permission bits
    pub mode: u32,
    /// owner
    pub uid: u32,
    /// group
    pub gid: u32,
}

/// The devices the runtime spec requires in every container.
pub fn defaults() -> Vec<Node> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, ma, mi)| Node { path: p.into(), kind: 'c', major: ma, minor: mi, mode: 0o666, uid: 0, gid: 0 })
    .collect()
}

/// A spec device as a node.
pub fn from_spec(d: &LinuxDevice) -> Node {
    let kind = match d.typ() {
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::P => 'p',
        LinuxDeviceType::U => 'u',
        _ => 'c',
    };
    Node {
        path: d.path().to_string_lossy().into_owned(),
        kind,
        major: d.major(),
        minor: d.minor(),
        mode: d.file_mode().unwrap_or(0o666),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    }
}

/// Creates `nodes` under `rootfs`. In a user namespace mknod is not allowed,
/// so each device is bind-mounted from the host instead (as runc does).
pub fn create(rootfs: &Path, nodes: &[Node], bind_from_host: bool) -> Result<()> {
    for n in nodes {
        let dest = securejoin::join(rootfs, Path::new(&n.path))?;
        if let Some(p) = dest.parent() {
            fs::create_dir_all(p).map_err(|e| Error::path("mkdir", p, e))?;
        }
        if bind_from_host {
            crate::mount::make_target(&dest, false)?;
            mount(Some(Path::new(&n.path)), &dest, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| Error::path("bind device", &dest, e))?;
            continue;
        }
        let kind = match n.kind {
            'b' => SFlag::S_IFBLK,
            'p' => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let dev = makedev(u64::try_from(n.major).unwrap_or(0), u64::try_from(n.minor).unwrap_or(0));
        let _ = fs::remove_file(&dest);
        mknod(&dest, kind, Mode::from_bits_truncate(n.mode), dev).map_err(|e| Error::path("mknod", &dest, e))?;
        // mknod applies the umask; set the exact mode the spec asked for
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &dest,
            Mode::from_bits_truncate(n.mode & 0o7777),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| Error::path("chmod", &dest, e))?;
        chown(&dest, Some(Uid::from_raw(n.uid)), Some(Gid::from_raw(n.gid)))
            .map_err(|e| Error::path("chown", &dest, e))?;
    }
    Ok(())
}

/// The symlinks every container's /dev has: fd, stdio, and ptmx → pts/ptmx.
/// /dev is resolved inside the rootfs first: an image whose /dev is a
/// symlink must not make us create or delete files on the host.
pub fn create_symlinks(rootfs: &Path) -> Result<()> {
    let dev = securejoin::join(rootfs, Path::new("/dev"))?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        let p = dev.join(name);
        // symlink(2) never follows an existing final component
        if let Err(e) = symlink(target, &p) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(Error::path("symlink", p, e));
            }
        }
    }
    let pts_is_dir = fs::symlink_metadata(dev.join("pts")).map(|m| m.is_dir()).unwrap_or(false);
    if pts_is_dir {
        let ptmx = dev.join("ptmx");
        // remove_file unlinks the final component itself, never its target
        let _ = fs::remove_file(&ptmx);
        symlink("pts/ptmx", &ptmx).map_err(|e| Error::path("symlink", ptmx, e))?;
    }
    Ok(())
}
