//! Handlers for attributes: getattr, setattr, statfs, xattrwalk, xattrcreate (and its commit at
//! clunk).
//!
//! Attribute changes go through the node's `O_PATH` fd with empty-path calls (`fchmodat2`,
//! `fchownat`, `utimensat` with `AT_EMPTY_PATH`), so no name is resolved. Truncation needs a
//! writable fd: the fid's own when open for writing, else a reopen checked against the inode.
//! Extended attributes are read on any file the server can open, and only `user.*` ones can be
//! set or removed, so a container cannot plant `security.*` or `trusted.*` attributes on the host.

use std::ffi::CString;
use std::os::fd::AsFd;

use moat_p9::consts::*;
use moat_p9::{Attr, Msg, SetAttr, StatFs};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::fstat;
use nix::unistd::{fchownat, ftruncate, Gid, Uid};

use super::fid::{lock, Charge, Fid, Xattr};
use super::node::{io_errno, Node};
use super::session::Session;
use crate::sys::{self, SetTime};

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Session<'_> {
    pub(super) fn getattr(&self, fid: u32, _mask: u64) -> Result<Msg<'static>, Errno> {
        let node = self.node(fid)?;
        let st = fstat(node.fd())?;
        Ok(Msg::Rgetattr {
            attr: Attr {
                valid: GETATTR_BASIC,
                qid: super::node::qid_of(st.st_mode, st.st_dev, st.st_ino),
                mode: st.st_mode,
                uid: st.st_uid,
                gid: st.st_gid,
                nlink: st.st_nlink,
                rdev: st.st_rdev,
                size: u64_of(st.st_size),
                blksize: u64_of(st.st_blksize),
                blocks: u64_of(st.st_blocks),
                atime_sec: u64_of(st.st_atime),
                atime_nsec: u64_of(st.st_atime_nsec),
                mtime_sec: u64_of(st.st_mtime),
                mtime_nsec: u64_of(st.st_mtime_nsec),
                ctime_sec: u64_of(st.st_ctime),
                ctime_nsec: u64_of(st.st_ctime_nsec),
                ..Attr::default()
            },
        })
    }

    pub(super) fn setattr(&self, fid: u32, a: &SetAttr) -> Result<Msg<'static>, Errno> {
        self.check_writable()?;
        let f = self.fids.get(fid)?;
        let (node, open_rw) = {
            let g = lock(&f);
            let rw = g.open.as_ref().filter(|o| o.writable).map(|o| o.file.clone());
            (g.node.clone(), rw)
        };
        if a.valid & SETATTR_MODE != 0 {
            sys::fchmod_path_fd(node.fd(), a.mode & 0o7777).map_err(io_errno)?;
        }
        if a.valid & (SETATTR_UID | SETATTR_GID) != 0 {
            let uid = (a.valid & SETATTR_UID != 0).then(|| Uid::from_raw(a.uid));
            let gid = (a.valid & SETATTR_GID != 0).then(|| Gid::from_raw(a.gid));
            fchownat(node.fd(), "", uid, gid, AtFlags::AT_EMPTY_PATH)?;
        }
        if a.valid & SETATTR_SIZE != 0 {
            let size = i64::try_from(a.size).map_err(|_| Errno::EFBIG)?;
            match open_rw {
                Some(file) => ftruncate(file.as_fd(), size)?,
                None => ftruncate(node.reopen(OFlag::O_WRONLY)?, size)?,
            }
        }
        let time = |set: u32, given: u32, sec: u64, nsec: u64| -> Result<SetTime, Errno> {
            Ok(if a.valid & set == 0 {
                SetTime::Omit
            } else if a.valid & given == 0 {
                SetTime::Now
            } else {
                SetTime::At(
                    i64::try_from(sec).map_err(|_| Errno::EINVAL)?,
                    i64::try_from(nsec).map_err(|_| Errno::EINVAL)?,
                )
            })
        };
        let atime = time(SETATTR_ATIME, SETATTR_ATIME_SET, a.atime_sec, a.atime_nsec)?;
        let mtime = time(SETATTR_MTIME, SETATTR_MTIME_SET, a.mtime_sec, a.mtime_nsec)?;
        if atime != SetTime::Omit || mtime != SetTime::Omit {
            sys::utimens_path_fd(node.fd(), atime, mtime).map_err(io_errno)?;
        }
        // SETATTR_CTIME alone: the kernel updates ctime on any change above; nothing to do.
        Ok(Msg::Rsetattr {})
    }

    pub(super) fn statfs(&self, fid: u32) -> Result<Msg<'static>, Errno> {
        let node = self.node(fid)?;
        let s = nix::sys::statfs::fstatfs(node.fd())?;
        let to32 = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(Msg::Rstatfs {
            stat: StatFs {
                ty: to32(s.filesystem_type().0),
                bsize: to32(s.block_size()),
                blocks: s.blocks(),
                bfree: s.blocks_free(),
                bavail: s.blocks_available(),
                files: s.files(),
                ffree: s.files_free(),
                fsid: 0,
                namelen: to32(s.maximum_name_length()),
            },
        })
    }

    /// An fd to read or write the xattrs of `node`: its open fd, or a read-only reopen.
    fn xattr_fd(node: &Node) -> Result<std::os::fd::OwnedFd, Errno> {
        if node.kind() == nix::sys::stat::SFlag::S_IFLNK {
            // Linux allows only trusted.* and security.* on symlinks, which we do not serve.
            return Err(Errno::EOPNOTSUPP);
        }
        node.reopen(OFlag::O_RDONLY)
    }

    pub(super) fn xattrwalk(&self, fid: u32, newfid: u32, name: &[u8]) -> Result<Msg<'static>, Errno> {
        let (node, uid) = {
            let f = self.fids.get(fid)?;
            let g = lock(&f);
            (g.node.clone(), g.uid)
        };
        let fd = Self::xattr_fd(&node)?;
        let cname = if name.is_empty() { None } else { Some(CString::new(name).map_err(|_| Errno::EINVAL)?) };
        let query = |buf: &mut [u8]| match &cname {
            Some(n) => sys::fgetxattr(fd.as_fd(), n, buf),
            None => sys::flistxattr(fd.as_fd(), buf),
        };
        // Size first, then the value; retry once if it grew in between.
        let mut value = Vec::new();
        for _ in 0..2 {
            let size = query(&mut []).map_err(io_errno)?;
            let size = size.min(XATTR_SIZE_MAX as usize);
            value.resize(size, 0);
            match query(&mut value) {
                Ok(n) => {
                    value.truncate(n);
                    let size = value.len() as u64;
                    let charge = Charge::take(&self.xattr_budget, value.len())?;
                    let xattr = Some(Xattr::Read { value, _charge: charge });
                    self.fids.insert(newfid, Fid { node, uid, open: None, xattr })?;
                    return Ok(Msg::Rxattrwalk { size });
                }
                Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
                Err(e) => return Err(io_errno(e)),
            }
        }
        Err(Errno::ERANGE)
    }

    pub(super) fn xattrcreate(&self, fid: u32, name: &[u8], size: u64, flags: u32) -> Result<Msg<'static>, Errno> {
        self.check_writable()?;
        if !name.starts_with(b"user.") {
            return Err(Errno::EPERM);
        }
        if size > XATTR_SIZE_MAX || flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
            return Err(Errno::EINVAL);
        }
        let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
        let f = self.fids.get(fid)?;
        let mut g = lock(&f);
        if g.open.is_some() || g.xattr.is_some() {
            return Err(Errno::EBADF);
        }
        // size <= XATTR_SIZE_MAX (64 KiB) was checked above.
        let size = usize::try_from(size).map_err(|_| Errno::EINVAL)?;
        let charge = Charge::take(&self.xattr_budget, size)?;
        g.xattr = Some(Xattr::Write { name, size, flags, data: Vec::with_capacity(size), _charge: charge });
        Ok(Msg::Rxattrcreate {})
    }

    /// Applies an xattr write at clunk. Size 0 with `XATTR_REPLACE` is how Linux v9fs removes one.
    pub(super) fn commit_xattr(
        &self,
        node: &Node,
        name: &CString,
        size: usize,
        flags: u32,
        data: &[u8],
    ) -> Result<(), Errno> {
        if data.len() != size {
            return Err(Errno::EINVAL);
        }
        let fd = Self::xattr_fd(node)?;
        if size == 0 && flags == XATTR_REPLACE {
            return sys::fremovexattr(fd.as_fd(), name).map_err(io_errno);
        }
        let flags = i32::try_from(flags).map_err(|_| Errno::EINVAL)?;
        sys::fsetxattr(fd.as_fd(), name, data, flags).map_err(io_errno)
    }
}
