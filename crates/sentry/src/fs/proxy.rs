//! Reading a real filesystem the Sentry holds by a directory fd (the
//! sandbox's procfs or sysfs) on a stub's behalf: attributes, whole files,
//! directory listings. Paths are relative to the fd and never follow a
//! final symlink; callers decide which paths may be asked for.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};

use super::fuse::{Attr, Kind};

/// Largest file passed through (a huge environ or maps stops here).
const MAX_FILE: u64 = 16 << 20;

fn kind_of(st: &nix::sys::stat::FileStat) -> Kind {
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFDIR => Kind::Dir,
        SFlag::S_IFLNK => Kind::Symlink,
        _ => Kind::File,
    }
}

/// The attributes of `path` below `dir`, with host ids (the FUSE mounts
/// belong to the host's user namespace).
pub fn attr(dir: &OwnedFd, path: &str) -> Result<Attr, Errno> {
    let st = fstatat(dir, path, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    Ok(Attr {
        kind: kind_of(&st),
        perm: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: u64::try_from(st.st_mtime).unwrap_or(0),
    })
}

/// The whole of the file at `path` below `dir`.
pub fn read(dir: &OwnedFd, path: &str) -> Result<Vec<u8>, Errno> {
    let fd: OwnedFd = openat(dir.as_fd(), path, OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())?;
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_FILE)
        .read_to_end(&mut out)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok(out)
}

/// Writes `data` to the file at `path` below `dir`, in one write.
pub fn write(dir: &OwnedFd, path: &str, data: &[u8]) -> Result<(), Errno> {
    let fd: OwnedFd = openat(dir.as_fd(), path, OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())?;
    nix::unistd::write(&fd, data)?;
    Ok(())
}

/// The value of the `key` line (`key` with its colon) of a procfs text
/// such as status or meminfo, if it has one.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key))
}

/// The entries of the directory at `path` below `dir` (no "." or "..").
pub fn list(dir: &OwnedFd, path: &str) -> Result<Vec<(String, Kind)>, Errno> {
    let mut d = nix::dir::Dir::openat(
        dir.as_fd(),
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for e in d.iter().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        let kind = match e.file_type() {
            Some(nix::dir::Type::Directory) => Kind::Dir,
            Some(nix::dir::Type::Symlink) => Kind::Symlink,
            _ => Kind::File,
        };
        out.push((name, kind));
    }
    Ok(out)
}
