//! Handlers for sessions, walks and I/O: attach, walk, lopen, lcreate, read, write, readdir,
//! fsync, lock, getlock, clunk; and the dispatch table.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use moat_p9::consts::{oflags, LOCK_BLOCKED, LOCK_SUCCESS, LOCK_TYPE_RDLCK, LOCK_TYPE_UNLCK, LOCK_TYPE_WRLCK};
use moat_p9::{Data, DirEntry, Msg, Qid, Qids, Str, WalkNames, IOHDRSZ};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::fstat;
use nix::sys::uio::{pread, pwrite};
use nix::unistd::{lseek, Whence};

use super::fid::{lock, Fid, Open, Xattr};
use super::node::{qid_of, valid_entry_name, Node};
use super::session::{Reply, Session};
use crate::sys;

/// Linux `DT_DIR` and `DT_LNK`, to type directory entries without a stat.
const DT_DIR: u8 = 4;
const DT_LNK: u8 = 10;

impl Session<'_> {
    /// Serves one request (not Tversion or Tflush, which the session handles).
    pub(super) fn dispatch<'s>(&self, msg: Msg<'_>, scratch: &'s mut Vec<u8>) -> Result<Reply<'s>, Errno> {
        Ok(match msg {
            // No authentication: whoever holds the socket may attach (the socket is the
            // capability; moat hands it only to the Sentry). ENOENT is what diod answers when
            // it needs no authentication, and what its clients and Linux v9fs take to mean so.
            Msg::Tauth { .. } => return Err(Errno::ENOENT),
            Msg::Tattach { fid, afid: _, uname: _, aname: _, n_uname } => self.attach(fid, n_uname)?.into(),
            Msg::Twalk { fid, newfid, wnames } => self.walk(fid, newfid, &wnames)?.into(),
            Msg::Tlopen { fid, flags } => self.lopen(fid, flags)?,
            Msg::Tlcreate { fid, name, flags, mode, gid } => self.lcreate(fid, name.0, flags, mode, gid)?,
            Msg::Tread { fid, offset, count } => self.read(fid, offset, count, scratch)?.into(),
            Msg::Twrite { fid, offset, data } => self.write(fid, offset, data.0)?.into(),
            Msg::Treaddir { fid, offset, count } => self.readdir(fid, offset, count, scratch)?.into(),
            Msg::Tfsync { fid, datasync } => self.fsync(fid, datasync.0 != 0)?.into(),
            Msg::Tlock { fid, ty, flags: _, start, length, proc_id: _, client_id: _ } => {
                self.lock(fid, ty, start, length)?.into()
            }
            Msg::Tgetlock { fid, ty, start, length, proc_id: _, client_id } => {
                let (ty, start, length, proc_id) = self.getlock(fid, ty, start, length)?;
                scratch.clear();
                scratch.extend_from_slice(client_id.0);
                Msg::Rgetlock { ty, start, length, proc_id, client_id: Str(scratch) }.into()
            }
            Msg::Tclunk { fid } => self.clunk(fid)?.into(),
            Msg::Tremove { fid } => self.remove(fid)?.into(),
            Msg::Tgetattr { fid, request_mask } => self.getattr(fid, request_mask)?.into(),
            Msg::Tsetattr { fid, attr } => self.setattr(fid, &attr)?.into(),
            Msg::Tstatfs { fid } => self.statfs(fid)?.into(),
            Msg::Txattrwalk { fid, newfid, name } => self.xattrwalk(fid, newfid, name.0)?.into(),
            Msg::Txattrcreate { fid, name, attr_size, flags } => {
                self.xattrcreate(fid, name.0, attr_size, flags)?.into()
            }
            Msg::Treadlink { fid } => self.readlink(fid, scratch)?.into(),
            Msg::Tmkdir { dfid, name, mode, gid } => self.mkdir(dfid, name.0, mode, gid)?.into(),
            Msg::Tsymlink { fid, name, symtgt, gid } => self.symlink(fid, name.0, symtgt.0, gid)?.into(),
            Msg::Tmknod { dfid, name, mode, major, minor, gid } => {
                self.mknod(dfid, name.0, mode, major, minor, gid)?.into()
            }
            Msg::Tlink { dfid, fid, name } => self.link(dfid, fid, name.0)?.into(),
            Msg::Trename { fid, dfid, name } => self.rename(fid, dfid, name.0)?.into(),
            Msg::Trenameat { olddirfid, oldname, newdirfid, newname } => {
                self.renameat(olddirfid, oldname.0, newdirfid, newname.0)?.into()
            }
            Msg::Tunlinkat { dirfid, name, flags } => self.unlinkat(dirfid, name.0, flags)?.into(),
            _ => return Err(Errno::EOPNOTSUPP),
        })
    }

    /// `EROFS` when the tree is served read-only.
    pub(super) fn check_writable(&self) -> Result<(), Errno> {
        if self.shared.config.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// The node fid `id` names.
    pub(super) fn node(&self, id: u32) -> Result<Arc<Node>, Errno> {
        Ok(lock(&self.fids.get(id)?).node.clone())
    }

    fn attach(&self, fid: u32, n_uname: u32) -> Result<Msg<'static>, Errno> {
        // n_uname is ~0 when the client sent only a name; files it creates then belong to us.
        let uid = if n_uname == u32::MAX { self.shared.euid } else { n_uname };
        let root = self.shared.root.clone();
        let qid = root.qid();
        self.fids.insert(fid, Fid { node: root, uid, open: None, xattr: None })?;
        Ok(Msg::Rattach { qid })
    }

    fn walk(&self, fid: u32, newfid: u32, wnames: &WalkNames<'_>) -> Result<Msg<'static>, Errno> {
        let (start, uid) = {
            let f = self.fids.get(fid)?;
            let g = lock(&f);
            // walk(5) says the fid must not be open, but diod and its clients (diodls -l) walk
            // from open directory fids; the new fid is never open, so allowing it is harmless.
            if g.xattr.is_some() {
                return Err(Errno::EBADF);
            }
            (g.node.clone(), g.uid)
        };
        let mut node = start;
        let mut qids = Qids::default();
        for (i, name) in wnames.as_slice().iter().enumerate() {
            match node.walk_one(name.0) {
                Ok(next) => {
                    // At most MAX_WELEM names were decoded, so the push cannot overflow.
                    qids.push(next.qid()).map_err(|_| Errno::EINVAL)?;
                    node = next;
                }
                // The first element failing is an error; a later one ends the walk short and
                // newfid is not set (walk(5)).
                Err(e) if i == 0 => return Err(e),
                Err(_) => return Ok(Msg::Rwalk { wqids: qids }),
            }
        }
        let new = Fid { node, uid, open: None, xattr: None };
        if newfid == fid {
            self.fids.replace(newfid, new);
        } else {
            self.fids.insert(newfid, new)?;
        }
        Ok(Msg::Rwalk { wqids: qids })
    }

    /// Host open flags for 9P `flags`, refusing writes on a read-only tree.
    fn open_flags(&self, flags: u32) -> Result<(OFlag, bool, bool), Errno> {
        let (acc, readable, writable) = match flags & oflags::ACCMODE {
            oflags::RDONLY => (OFlag::O_RDONLY, true, false),
            oflags::WRONLY => (OFlag::O_WRONLY, false, true),
            oflags::RDWR => (OFlag::O_RDWR, true, true),
            _ => return Err(Errno::EINVAL),
        };
        if writable || flags & oflags::TRUNC != 0 {
            self.check_writable()?;
        }
        let mut f = acc;
        for (bit, flag) in [
            (oflags::TRUNC, OFlag::O_TRUNC),
            (oflags::APPEND, OFlag::O_APPEND),
            (oflags::NONBLOCK, OFlag::O_NONBLOCK),
            (oflags::DSYNC, OFlag::O_DSYNC),
            (oflags::DIRECT, OFlag::O_DIRECT),
            (oflags::DIRECTORY, OFlag::O_DIRECTORY),
            (oflags::SYNC, OFlag::O_SYNC),
        ] {
            if flags & bit != 0 {
                f |= flag;
            }
        }
        // Everything else (CREAT, EXCL, NOFOLLOW, CLOEXEC, NOCTTY, FASYNC, NOATIME, unknown bits) is
        // ignored: the server sets the safe values itself.
        Ok((f, readable, writable))
    }

    fn lopen(&self, fid: u32, flags: u32) -> Result<Reply<'static>, Errno> {
        let (oflag, readable, writable) = self.open_flags(flags)?;
        let f = self.fids.get(fid)?;
        let mut g = lock(&f);
        if g.open.is_some() || g.xattr.is_some() {
            return Err(Errno::EBADF);
        }
        if g.node.is_dir() && writable {
            return Err(Errno::EISDIR);
        }
        let file = Arc::new(g.node.reopen(oflag)?);
        let qid = g.node.qid();
        let donate = self.donating() && !g.node.is_dir();
        g.open = Some(Open { file: file.clone(), readable, writable, dir_pos: None });
        Ok(Reply { msg: Msg::Rlopen { qid, iounit: self.iounit() }, fd: donate.then_some(file) })
    }

    pub(super) fn iounit(&self) -> u32 {
        self.msize().saturating_sub(IOHDRSZ)
    }

    fn lcreate(&self, fid: u32, name: &[u8], flags: u32, mode: u32, gid: u32) -> Result<Reply<'static>, Errno> {
        self.check_writable()?;
        valid_entry_name(name)?;
        let (oflag, readable, writable) = self.open_flags(flags)?;
        let f = self.fids.get(fid)?;
        let mut g = lock(&f);
        if g.open.is_some() || g.xattr.is_some() {
            return Err(Errno::EBADF);
        }
        let dir = g.node.clone();
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let excl = if flags & oflags::EXCL != 0 { OFlag::O_EXCL } else { OFlag::empty() };
        let file = super::node::open_beneath(&dir.fd, name, oflag | OFlag::O_CREAT | excl, mode & 0o7777)?;
        let st = fstat(&file)?;
        if nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT
            != nix::sys::stat::SFlag::S_IFREG
        {
            return Err(Errno::EPERM);
        }
        let node = dir.child_after_create(name, Some(&st))?;
        self.chown_created(&node, g.uid, gid);
        let qid = node.qid();
        let file = Arc::new(file);
        g.node = node;
        g.open = Some(Open { file: file.clone(), readable, writable, dir_pos: None });
        let fd = self.donating().then_some(file);
        Ok(Reply { msg: Msg::Rlcreate { qid, iounit: self.iounit() }, fd })
    }

    fn read<'s>(&self, fid: u32, offset: u64, count: u32, scratch: &'s mut Vec<u8>) -> Result<Msg<'s>, Errno> {
        let count = count.min(self.iounit()) as usize;
        let f = self.fids.get(fid)?;
        let g = lock(&f);
        if let Some(Xattr::Read { value, .. }) = &g.xattr {
            let from = usize::try_from(offset).unwrap_or(usize::MAX).min(value.len());
            let to = from.saturating_add(count).min(value.len());
            scratch.clear();
            scratch.extend_from_slice(&value[from..to]);
            return Ok(Msg::Rread { data: Data(scratch) });
        }
        let open = g.open.as_ref().ok_or(Errno::EBADF)?;
        if !open.readable {
            return Err(Errno::EBADF);
        }
        let file = open.file.clone();
        drop(g);
        let off = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        scratch.resize(count, 0);
        let n = loop {
            match pread(file.as_fd(), &mut scratch[..count], off) {
                Err(Errno::EINTR) => continue,
                other => break other?,
            }
        };
        Ok(Msg::Rread { data: Data(&scratch[..n]) })
    }

    fn write(&self, fid: u32, offset: u64, data: &[u8]) -> Result<Msg<'static>, Errno> {
        let f = self.fids.get(fid)?;
        let mut g = lock(&f);
        if let Some(Xattr::Write { size, data: buf, .. }) = &mut g.xattr {
            if usize::try_from(offset).ok() != Some(buf.len()) || buf.len() + data.len() > *size {
                return Err(Errno::EINVAL);
            }
            buf.extend_from_slice(data);
            return Ok(Msg::Rwrite { count: u32::try_from(data.len()).map_err(|_| Errno::EINVAL)? });
        }
        self.check_writable()?;
        let open = g.open.as_ref().ok_or(Errno::EBADF)?;
        if !open.writable {
            return Err(Errno::EBADF);
        }
        let file = open.file.clone();
        drop(g);
        let off = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        let n = loop {
            match pwrite(file.as_fd(), data, off) {
                Err(Errno::EINTR) => continue,
                other => break other?,
            }
        };
        Ok(Msg::Rwrite { count: u32::try_from(n).map_err(|_| Errno::EIO)? })
    }

    fn readdir<'s>(&self, fid: u32, offset: u64, count: u32, scratch: &'s mut Vec<u8>) -> Result<Msg<'s>, Errno> {
        let count = count.min(self.iounit()) as usize;
        let f = self.fids.get(fid)?;
        let mut g = lock(&f);
        let dev = g.node.dev;
        if !g.node.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let open = g.open.as_mut().ok_or(Errno::EBADF)?;
        if open.dir_pos != Some(offset) {
            lseek(open.file.as_fd(), i64::try_from(offset).map_err(|_| Errno::EINVAL)?, Whence::SeekSet)?;
        }
        let mut raw = vec![0u8; count.max(512)];
        let n = sys::getdents64(open.file.as_fd(), &mut raw).map_err(super::node::io_errno)?;
        scratch.clear();
        let mut pos = Some(offset);
        for ent in RawDirents(&raw[..n]) {
            let ty = match ent.d_type {
                DT_DIR => libc::S_IFDIR,
                DT_LNK => libc::S_IFLNK,
                _ => libc::S_IFREG,
            };
            let e = DirEntry { qid: qid_of(ty, dev, ent.ino), offset: ent.off, ty: ent.d_type, name: Str(ent.name) };
            if scratch.len() + e.encoded_len() > count {
                // The fd has read past what fits; the next Treaddir seeks back to its offset.
                pos = None;
                break;
            }
            e.emit(scratch).map_err(|_| Errno::EIO)?;
            pos = Some(ent.off);
        }
        if scratch.is_empty() && n > 0 {
            return Err(Errno::EINVAL);
        }
        open.dir_pos = pos;
        Ok(Msg::Rreaddir { data: Data(scratch) })
    }

    fn fsync(&self, fid: u32, datasync: bool) -> Result<Msg<'static>, Errno> {
        let file = lock(&self.fids.get(fid)?).open.as_ref().ok_or(Errno::EBADF)?.file.clone();
        if datasync {
            nix::unistd::fdatasync(file.as_fd())?;
        } else {
            nix::unistd::fsync(file.as_fd())?;
        }
        Ok(Msg::Rfsync {})
    }

    fn open_file(&self, fid: u32) -> Result<Arc<OwnedFd>, Errno> {
        Ok(lock(&self.fids.get(fid)?).open.as_ref().ok_or(Errno::EBADF)?.file.clone())
    }

    /// Tlock, served with open-file-description locks on the fid's own fd, so locks of different
    /// fids conflict as they would between processes. Blocking requests are not waited on: a
    /// conflict answers `LOCK_BLOCKED` and the client retries (as Linux v9fs does).
    fn lock(&self, fid: u32, ty: u8, start: u64, length: u64) -> Result<Msg<'static>, Errno> {
        let file = self.open_file(fid)?;
        let fl = flock(ty, start, length)?;
        match fcntl(file.as_fd(), FcntlArg::F_OFD_SETLK(&fl)) {
            Ok(_) => Ok(Msg::Rlock { status: LOCK_SUCCESS }),
            Err(Errno::EAGAIN) | Err(Errno::EACCES) => Ok(Msg::Rlock { status: LOCK_BLOCKED }),
            Err(e) => Err(e),
        }
    }

    fn getlock(&self, fid: u32, ty: u8, start: u64, length: u64) -> Result<(u8, u64, u64, u32), Errno> {
        let file = self.open_file(fid)?;
        let mut fl = flock(ty, start, length)?;
        fcntl(file.as_fd(), FcntlArg::F_OFD_GETLK(&mut fl))?;
        let ty = match i32::from(fl.l_type) {
            libc::F_RDLCK => LOCK_TYPE_RDLCK,
            libc::F_WRLCK => LOCK_TYPE_WRLCK,
            _ => LOCK_TYPE_UNLCK,
        };
        let start = u64::try_from(fl.l_start).unwrap_or(0);
        let length = u64::try_from(fl.l_len).unwrap_or(0);
        Ok((ty, start, length, u32::try_from(fl.l_pid).unwrap_or(0)))
    }

    fn clunk(&self, fid: u32) -> Result<Msg<'static>, Errno> {
        let f = self.fids.remove(fid)?;
        let mut g = lock(&f);
        if let Some(Xattr::Write { name, size, flags, data, .. }) = g.xattr.take() {
            self.commit_xattr(&g.node, &name, size, flags, &data)?;
        }
        Ok(Msg::Rclunk {})
    }
}

fn flock(ty: u8, start: u64, length: u64) -> Result<libc::flock, Errno> {
    let l_type = match ty {
        LOCK_TYPE_RDLCK => libc::F_RDLCK,
        LOCK_TYPE_WRLCK => libc::F_WRLCK,
        LOCK_TYPE_UNLCK => libc::F_UNLCK,
        _ => return Err(Errno::EINVAL),
    };
    Ok(libc::flock {
        l_type: i16::try_from(l_type).map_err(|_| Errno::EINVAL)?,
        l_whence: i16::try_from(libc::SEEK_SET).map_err(|_| Errno::EINVAL)?,
        l_start: i64::try_from(start).map_err(|_| Errno::EINVAL)?,
        l_len: i64::try_from(length).map_err(|_| Errno::EINVAL)?,
        // OFD locks require l_pid 0.
        l_pid: 0,
    })
}

/// One `linux_dirent64` record.
struct RawDirent<'a> {
    ino: u64,
    off: u64,
    d_type: u8,
    name: &'a [u8],
}

/// Iterates the records getdents64 filled in, checking every length (a short or odd record ends
/// the walk instead of reading out of bounds).
struct RawDirents<'a>(&'a [u8]);

impl<'a> Iterator for RawDirents<'a> {
    type Item = RawDirent<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.0;
        let ino = u64::from_ne_bytes(b.get(0..8)?.try_into().ok()?);
        let off = u64::from_ne_bytes(b.get(8..16)?.try_into().ok()?);
        let reclen = usize::from(u16::from_ne_bytes(b.get(16..18)?.try_into().ok()?));
        let d_type = *b.get(18)?;
        let rec = b.get(..reclen)?;
        let name_area = rec.get(19..)?;
        let end = name_area.iter().position(|&c| c == 0)?;
        self.0 = &b[reclen..];
        Some(RawDirent { ino, off, d_type, name: &name_area[..end] })
    }
}

/// The qid of a newly made node, for Rmkdir, Rsymlink, Rmknod.
pub(super) fn qid_of_node(node: &Node) -> Qid {
    node.qid()
}
