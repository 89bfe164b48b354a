//! Handlers that make, name or remove directory entries: mkdir, symlink, mknod, link, rename,
//! renameat, unlinkat, remove; and readlink.
//!
//! Every call is relative to a directory fd with one validated name, so none can reach outside
//! the tree. Symlink targets are stored as given and never resolved by the server.

use std::sync::Arc;

use moat_p9::consts::AT_REMOVEDIR;
use moat_p9::{Msg, Str};
use nix::errno::Errno;
use nix::fcntl::{readlinkat, renameat, AtFlags};
use nix::sys::stat::{fstatat, mkdirat, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::fid::lock;
use super::node::{valid_entry_name, Node};
use super::ops_file::qid_of_node;
use super::session::Session;

impl Session<'_> {
    /// The directory node of fid `id`.
    fn dir(&self, id: u32) -> Result<Arc<Node>, Errno> {
        let node = self.node(id)?;
        if !node.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(node)
    }

    /// Gives a file this server created to the attaching user and the requested group. Only
    /// possible when the gofer is privileged; otherwise files stay the gofer's, as on a plain
    /// 9P export, and the failure is ignored.
    pub(super) fn chown_created(&self, node: &Node, uid: u32, gid: u32) {
        let euid = self.shared.euid;
        let egid = nix::unistd::getegid().as_raw();
        if uid == euid && gid == egid {
            return;
        }
        let gid = if gid == u32::MAX { None } else { Some(Gid::from_raw(gid)) };
        let res = fchownat(node.fd(), "", Some(Uid::from_raw(uid)), gid, AtFlags::AT_EMPTY_PATH);
        if let Err(e) = res {
            tracing::trace!(error = %e, "chown of a created file failed");
        }
    }

    fn created(&self, dir: &Arc<Node>, name: &[u8], uid: u32, gid: u32) -> Result<Msg<'static>, Errno> {
        let node = dir.child_after_create(name, None)?;
        self.chown_created(&node, uid, gid);
        let qid = qid_of_node(&node);
        Ok(match node.kind() {
            SFlag::S_IFDIR => Msg::Rmkdir { qid },
            SFlag::S_IFLNK => Msg::Rsymlink { qid },
            _ => Msg::Rmknod { qid },
        })
    }

    fn uid_of(&self, id: u32) -> Result<u32, Errno> {
        Ok(lock(&self.fids.get(id)?).uid)
    }

    pub(super) fn mkdir(&self, dfid: u32, name: &[u8], mode: u32, gid: u32) -> Result<Msg<'static>, Errno> {
        self.check_writable()?;
        valid_entry_name(name)?;
        let dir = self.dir(dfid)?;
        mkdirat(dir.fd(), name, Mode::from_bits_truncate(mode & 0o7777))?;
        self.created(&dir, name, self.uid_of(dfid)?, gid)
    }

    pub(super) fn symlink(&self, fid: u32, name: &[u8], target: &[u8], gid: u32) -> Result<Msg<'static>, Errno> {
        self.check_writable()?;
        valid_entry_name(name)?;
        if target.is_empty() || target.contains(&0) {
            return Err(Errno::EINVAL);
        }
        let dir = self.dir(fid)?;
        symlinkat(target, dir.fd(), name)?;
        self.created(&dir, name, self.uid_of(fid)?, gid)
    }

    /// Tmknod makes fifos, sockets and empty regular files only: device nodes would let a container
    /// reach host devices through its rootfs (runc's default also drops `CAP_MKNOD`).
    pub(super) fn mknod(
        &self,
        dfid: u32,
        name: &[u8],
        mode: u32,
        major: u32,
        minor: u32,
        gid: u32,
    ) -> Result<Msg<'static>, Errno> {
        self.check_writable()?;
        valid_entry_name(name)?;
        let kind = SFlag::from_bits_truncate(mode) & SFlag::S_IFMT;
        if ![SFlag::S_IFIFO, SFlag::S_IFSOCK, SFlag::S_IFREG].contains(&kind) {
            return Err(Errno::EPERM);
        }
        let dir = self.dir(dfid)?;
        let dev = nix::sys::stat::makedev(major.into(), minor.into());
        mknodat(dir.fd(), name, kind, Mode::from_bits_truncate(mode & 0o7777), dev)?;
        self.created(&dir, name, self.uid_of(dfid)?, gid)
    }

    pub(super) fn link(&self, dfid: u32, fid: u32, name: &[u8]) -> Result<Msg<'static>, Errno> {
        self.check_writable()?;
        valid_entry_name(name)?;
        let dir = self.dir(dfid)?;
        let target = self.node(fid)?;
        if target.is_dir() {
            return Err(Errno::EPERM);
        }
        // linkat(AT_EMPTY_PATH) links the very inode we hold but needs CAP_DAC_READ_SEARCH; an
        // unprivileged gofer links by parent and name, and checks the inode afterwards.
        match linkat(target.fd(), "", dir.fd(), name, AtFlags::AT_EMPTY_PATH) {
            Ok(()) => return Ok(Msg::Rlink {}),
            Err(Errno::ENOENT) | Err(Errno::EPERM) => {}
            Err(e) => return Err(e),
        }
        let parent = target.parent.as_ref().ok_or(Errno::ESTALE)?;
        linkat(parent.fd(), &*target.name, dir.fd(), name, AtFlags::empty())?;
        let st = fstatat(dir.fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if (st.st_dev, st.st_ino) != (target.dev, target.ino) {
            // The name was swapped under us; undo rather than leave a link to another file.
            let _ = unlinkat(dir.fd(), name, UnlinkatFlags::NoRemoveDir);
            return Err(Errno::ESTALE);
        }
        Ok(Msg::Rlink {})
    }

    pub(super) fn rename(&self, fid: u32, dfid: u32, name: &[u8]) -> Result<Msg<'static>, Errno> {
        self.check_writable()?;
        valid_entry_name(name)?;
        let dir = self.dir(dfid)?;
        let f = self.fids.get(fid)?;
        let mut g = lock(&f);
        let parent = g.node.parent.clone().ok_or(Errno::EBUSY)?;
        self.check_same_inode(&parent, &g.node)?;
        renameat(parent.fd(), &*g.node.name, dir.fd(), name)?;
        g.node = g.node.renamed(&dir, name)?;
        Ok(Msg::Rrename {})
    }

    /// Fails with `ESTALE` unless `name` in `parent` is still the inode `node` holds.
    fn check_same_inode(&self, parent: &Node, node: &Node) -> Result<(), Errno> {
        let st = fstatat(parent.fd(), &*node.name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if (st.st_dev, st.st_ino) != (node.dev, node.ino) {
            return Err(Errno::ESTALE);
        }
        Ok(())
    }

    pub(super) fn renameat(
        &self,
        olddir: u32,
        oldname: &[u8],
        newdir: u32,
        newname: &[u8],
    ) -> Result<Msg<'static>, Errno> {
        self.check_writable()?;
        valid_entry_name(oldname)?;
        valid_entry_name(newname)?;
        let (od, nd) = (self.dir(olddir)?, self.dir(newdir)?);
        renameat(od.fd(), oldname, nd.fd(), newname)?;
        Ok(Msg::Rrenameat {})
    }

    pub(super) fn unlinkat(&self, dirfid: u32, name: &[u8], flags: u32) -> Result<Msg<'static>, Errno> {
        self.check_writable()?;
        valid_entry_name(name)?;
        let dir = self.dir(dirfid)?;
        let how = if flags & AT_REMOVEDIR != 0 { UnlinkatFlags::RemoveDir } else { UnlinkatFlags::NoRemoveDir };
        unlinkat(dir.fd(), name, how)?;
        Ok(Msg::Runlinkat {})
    }

    /// Tremove: unlink the fid's file and clunk the fid, even when the unlink fails (remove(5)).
    pub(super) fn remove(&self, fid: u32) -> Result<Msg<'static>, Errno> {
        let f = self.fids.remove(fid)?;
        self.check_writable()?;
        let node = lock(&f).node.clone();
        let parent = node.parent.clone().ok_or(Errno::EBUSY)?;
        self.check_same_inode(&parent, &node)?;
        let how = if node.is_dir() { UnlinkatFlags::RemoveDir } else { UnlinkatFlags::NoRemoveDir };
        unlinkat(parent.fd(), &*node.name, how)?;
        Ok(Msg::Rremove {})
    }

    pub(super) fn readlink<'s>(&self, fid: u32, scratch: &'s mut Vec<u8>) -> Result<Msg<'s>, Errno> {
        let node = self.node(fid)?;
        if node.kind() != SFlag::S_IFLNK {
            return Err(Errno::EINVAL);
        }
        let target = readlinkat(node.fd(), "")?;
        scratch.clear();
        scratch.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()));
        Ok(Msg::Rreadlink { target: Str(scratch) })
    }
}
