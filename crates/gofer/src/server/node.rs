//! Nodes: files of the served tree as the server holds them, and the path-safe walk.
//!
//! A node owns an `O_PATH|O_NOFOLLOW` fd of its file and a lexical link to the node it was walked
//! from. Invariants that keep the server inside the tree:
//!
//! - A walk step resolves exactly one validated name (no `/`, no NUL, not empty) relative to the
//!   parent's fd with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` and
//!   `O_NOFOLLOW`: a symlink yields a node *of the symlink*, never of its target.
//! - `..` is lexical: it returns the parent node, and the root's `..` is the root. No `..` is ever
//!   resolved by the kernel, so a rename race cannot carry a walk above the root.
//! - Reopening a non-directory for I/O goes through its parent's fd and its name with the same
//!   resolve flags, and the result must be the same inode (else `ESTALE`); directories reopen
//!   through `.` of their own fd. A name swapped for a symlink fails with `ELOOP`.
//!
//! Costs of that choice: a node keeps its ancestors (and their fds) alive, so fds grow with
//! fids times walk depth (shared between fids walked from the same place; the kernel's
//! `RLIMIT_NOFILE` answers `EMFILE` beyond). A regular file renamed behind the server's back
//! (not through this server's Trename) can no longer be reopened through an old fid: `ESTALE`,
//! and the client walks again. TODO: a reopen through an `O_PATH` fd of `/proc/self/fd` opened
//! before confinement would lift that.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use moat_p9::consts::{QTDIR, QTFILE, QTSYMLINK};
use moat_p9::Qid;
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

/// The resolve flags of every lookup the server makes.
fn resolve() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// `openat2` of one validated name below `dir`, never following a symlink.
pub(crate) fn open_beneath(dir: &OwnedFd, name: &[u8], flags: OFlag, mode: u32) -> Result<OwnedFd, Errno> {
    // openat2 rejects O_PATH combined with anything but O_DIRECTORY/O_NOFOLLOW/O_CLOEXEC.
    let noctty = if flags.contains(OFlag::O_PATH) { OFlag::empty() } else { OFlag::O_NOCTTY };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | noctty)
        .mode(Mode::from_bits_truncate(mode))
        .resolve(resolve());
    loop {
        match openat2(dir, name, how) {
            // openat2 returns EAGAIN when a concurrent rename may have raced the lookup.
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Checks a single path component from the client: no `/`, no NUL, not empty.
pub(crate) fn valid_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

/// Like [`valid_name`], and also not `.` or `..` (names that create or remove an entry).
pub(crate) fn valid_entry_name(name: &[u8]) -> Result<(), Errno> {
    valid_name(name)?;
    if name == b"." || name == b".." {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// A file of the served tree.
#[derive(Debug)]
pub(crate) struct Node {
    /// `O_PATH|O_NOFOLLOW` fd of the file.
    pub fd: OwnedFd,
    /// The node this one was walked from; `None` for the root.
    pub parent: Option<Arc<Node>>,
    /// Its name in `parent` (empty for the root).
    pub name: Box<[u8]>,
    /// Device and inode when it was walked to.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// `st_mode` when it was walked to (the type cannot change for one inode).
    pub mode: u32,
}

impl Node {
    /// The root node, from an fd of the served directory.
    pub fn root(fd: OwnedFd) -> Result<Arc<Node>, Errno> {
        let st = fstat(&fd)?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        Ok(Arc::new(Node { fd, parent: None, name: Box::new([]), dev: st.st_dev, ino: st.st_ino, mode: st.st_mode }))
    }

    fn from_fd(fd: OwnedFd, parent: &Arc<Node>, name: &[u8]) -> Result<Arc<Node>, Errno> {
        let st = fstat(&fd)?;
        Ok(Arc::new(Node {
            fd,
            parent: Some(parent.clone()),
            name: name.into(),
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
        }))
    }

    /// The same file under a new parent and name (after a rename through this server).
    pub fn renamed(&self, parent: &Arc<Node>, name: &[u8]) -> Result<Arc<Node>, Errno> {
        let fd = self.fd.try_clone().map_err(io_errno)?;
        Ok(Arc::new(Node {
            fd,
            parent: Some(parent.clone()),
            name: name.into(),
            dev: self.dev,
            ino: self.ino,
            mode: self.mode,
        }))
    }

    /// The file type bits.
    pub fn kind(&self) -> SFlag {
        SFlag::from_bits_truncate(self.mode) & SFlag::S_IFMT
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == SFlag::S_IFDIR
    }

    /// The qid of this node.
    pub fn qid(&self) -> Qid {
        qid_of(self.mode, self.dev, self.ino)
    }

    /// Walks one name. `..` is lexical and stops at the root.
    pub fn walk_one(self: &Arc<Self>, name: &[u8]) -> Result<Arc<Node>, Errno> {
        valid_name(name)?;
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        match name {
            b"." => Ok(self.clone()),
            b".." => Ok(self.parent.clone().unwrap_or_else(|| self.clone())),
            _ => {
                let fd = open_beneath(&self.fd, name, OFlag::O_PATH, 0)?;
                Node::from_fd(fd, self, name)
            }
        }
    }

    /// Looks up `name` in this directory after creating it, checking it is what was created.
    pub fn child_after_create(self: &Arc<Self>, name: &[u8], created: Option<&FileStat>) -> Result<Arc<Node>, Errno> {
        let fd = open_beneath(&self.fd, name, OFlag::O_PATH, 0)?;
        let node = Node::from_fd(fd, self, name)?;
        if let Some(st) = created {
            if (st.st_dev, st.st_ino) != (node.dev, node.ino) {
                return Err(Errno::ESTALE);
            }
        }
        Ok(node)
    }

    /// Opens the file for I/O with host `flags` (no `O_CREAT`). Only regular files and
    /// directories can be opened; the server never opens devices, fifos or sockets for a client.
    pub fn reopen(&self, flags: OFlag) -> Result<OwnedFd, Errno> {
        match self.kind() {
            SFlag::S_IFDIR => {
                let how = OpenHow::new()
                    .flags(flags | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
                    .resolve(resolve());
                openat2(&self.fd, ".", how)
            }
            SFlag::S_IFREG => {
                let parent = self.parent.as_ref().ok_or(Errno::ESTALE)?;
                // O_NONBLOCK: if the name was swapped for a fifo, the open must not hang.
                let fd = open_beneath(&parent.fd, &self.name, flags | OFlag::O_NONBLOCK, 0)?;
                let st = fstat(&fd)?;
                if (st.st_dev, st.st_ino) != (self.dev, self.ino) {
                    return Err(Errno::ESTALE);
                }
                if !flags.contains(OFlag::O_NONBLOCK) {
                    let fl = OFlag::from_bits_truncate(nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?);
                    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(fl - OFlag::O_NONBLOCK))?;
                }
                Ok(fd)
            }
            SFlag::S_IFLNK => Err(Errno::ELOOP),
            _ => Err(Errno::EPERM),
        }
    }

    /// The fd, borrowed.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The qid of a file from its `stat`. Files of different devices (mounts inside the tree) get
/// the device folded into the top 16 bits so paths stay distinct; the low 48 are the inode
/// number, as `stat` shows it ([`ino_of`]).
pub(crate) fn qid_of(mode: u32, dev: u64, ino: u64) -> Qid {
    let kind = SFlag::from_bits_truncate(mode) & SFlag::S_IFMT;
    let ty = match kind {
        SFlag::S_IFDIR => QTDIR,
        SFlag::S_IFLNK => QTSYMLINK,
        _ => QTFILE,
    };
    Qid { ty, version: 0, path: path_of(dev, ino) }
}

/// The qid path of the file with inode number `ino` on device `dev` (a caller that reaches the
/// same file by another way finds it again by this).
pub fn path_of(dev: u64, ino: u64) -> u64 {
    let fold = (dev ^ (dev >> 16) ^ (dev >> 32) ^ (dev >> 48)) & 0xffff;
    ino ^ (fold << 48)
}

/// The inode number of the file whose qid path is `path`: exact for inode numbers below 2^48
/// (every one ext4, xfs, btrfs and tmpfs hand out in practice).
pub fn ino_of(path: u64) -> u64 {
    path & ((1 << 48) - 1)
}

/// An `io::Error` from a host call as an errno.
pub(crate) fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qid_paths_keep_the_inode_number_in_their_low_bits() {
        // a large anonymous device number (minor above 255) too
        for dev in [0x801, 0x2a, (300 & 0xff) | ((300 & !0xff) << 12)] {
            let q = qid_of(libc::S_IFREG, dev, 123_456);
            assert_eq!(ino_of(q.path), 123_456);
        }
        assert_ne!(qid_of(libc::S_IFREG, 0x801, 7).path, qid_of(libc::S_IFREG, 0x2a, 7).path);
    }
}
