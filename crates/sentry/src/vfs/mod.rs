//! The container's file tree as the Sentry serves it.
//!
//! The stubs live in a read-only replica of the container's mount tree (a
//! copy of its mount namespace with every mount but the Sentry's own /proc
//! and /sys, and /dev/mqueue, made read-only): the host kernel resolves
//! paths there only for what cannot change anything — exec, stat, readlink,
//! read-only opens, opening devices and FIFOs. Every call that changes the
//! tree (open for writing or creating,
//! mkdir, unlink, rename, link, symlink, chmod, chown, utimes, truncate,
//! xattrs, binding a unix socket) is performed by the Sentry in the real
//! tree, which `create` hands it as a root fd and the mount namespace that
//! holds it.
//!
//! The notify thread [`Tree::enter`]s the real tree: it unshares its
//! fs_struct and chroots into the tree's root, so a path resolves for the
//! Sentry exactly as for the caller — absolute symlinks and `..` stop at
//! the container's root, and no host path can be named. Each call then runs
//! with the caller's file credentials ([`creds`]): the host kernel makes
//! every permission decision as it would for the caller. Writes land where
//! runc would put them (the bundle's rootfs, the spec's bind mounts), so
//! the tools around the container see them.
//!
//! Every directory the Sentry derives itself (a caller's cwd or root, a
//! dirfd, the file behind an fd) is found again in the tree as that very
//! file ([`Tree::find`], [`Tree::twin`], [`Tree::parent_of`]), never by a
//! name alone.
//!
//! Each change is a self-contained [`job::Job`] (its arguments carried over
//! as bytes and fds) made by a [`job::Seat`]: the notify thread itself, or,
//! in a sandbox with a user namespace, the Sentry's replayer inside that
//! namespace ([`remote`]): a caller's capabilities are relative to its
//! namespace, which the host's checks for the Sentry outside would not see.
//!
//! Not yet: the reads of the tree, the gofer-backed VFS with its own
//! dentry cache and permission checks.

pub mod creds;
pub mod job;
pub mod remote;
pub mod view;

use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

/// Mount points of the Sentry's own filesystems: a call on a path below
/// them is left to the host (in the replica, where they are the FUSE
/// mounts the Sentry serves; in the real tree the caller would be the
/// Sentry itself).
pub const PSEUDO: &[&[u8]] = &[b"proc", b"sys", b"dev/mqueue"];

/// The real tree, entered by one thread.
#[derive(Debug)]
pub struct Tree {
    seat: job::Seat,
    _ns: OwnedFd,
    thread: libc::pid_t,
    /// the replayer, for a sandbox with a user namespace
    remote: Option<remote::Remote>,
    /// with `--directfs=false`: the stubs' files are the gofer's view, of
    /// one FUSE device whatever the file's own, told of every change
    view: Option<view::View>,
}

impl Tree {
    /// Enters the tree whose root is `root` (in mount namespace `ns`) on
    /// the calling thread, which from now on resolves paths there; with
    /// `remote`, the replayer enters it too, and makes the calls. `proc`: the
    /// Sentry's procfs.
    pub fn enter(root: OwnedFd, ns: OwnedFd, proc: OwnedFd, remote: Option<remote::Remote>) -> Result<Tree, Errno> {
        let seat = job::Seat::enter(root, proc)?;
        if let Some(r) = &remote {
            r.enter(seat.root())?;
        }
        Ok(Tree { seat, _ns: ns, thread: nix::unistd::gettid().as_raw(), remote, view: None })
    }

    /// The stubs' view is the gofer's (`--directfs=false`): their files
    /// are found again in the tree by inode number alone, and the view is
    /// told of every change ([`view`]).
    pub fn viewed_through_gofer(&mut self, view: view::View) {
        self.view = Some(view);
    }

    /// The tree's root.
    pub fn root(&self) -> std::os::fd::BorrowedFd<'_> {
        self.seat.root()
    }

    /// Whether a caller's file `theirs` (`st` its fstat) is the tree's file
    /// whose fstat is `mine`: the same device and inode, or in the gofer's
    /// view (a FUSE file) the same inode number.
    fn same(&self, theirs: &OwnedFd, st: &libc::stat, mine: &libc::stat) -> bool {
        (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
            || (self.view.is_some() && st.st_ino == mine.st_ino && crate::fs::fuse::on_fuse(theirs))
    }

    /// Whether the calling thread is the one in the tree.
    pub fn here(&self) -> bool {
        nix::unistd::gettid().as_raw() == self.thread
    }

    /// Makes `job` as its caller: here, or in the replayer.
    pub fn run(&self, job: job::Job) -> Result<job::Done, Errno> {
        match &self.remote {
            Some(r) => r.run(job),
            None => self.seat.run(job),
        }
    }

    /// Whether the mount at `point` (an absolute path of the tree, as
    /// mountinfo names it) is writable in the real tree: the replica's copy
    /// is read-only whatever the original was. None for the Sentry's own
    /// filesystems (asking would wait on them), or a point that no longer
    /// resolves without symlinks. Any thread may ask.
    pub fn writable(&self, point: &str) -> Option<bool> {
        if pseudo(&absolute(b"/", point.as_bytes())) {
            return None;
        }
        self.find(point.as_bytes(), None).ok().map(|fd| !read_only(&fd))
    }

    /// Opens `path` (absolute, as the stubs' mount namespace names it: a
    /// readlink of one of their fds) in the tree, O_PATH, without following
    /// any symlink; with `want`, only if it is that very file (device and
    /// inode). A name is never trusted: a directory that was removed reads
    /// "`<path> (deleted)`", a name its owner may have made.
    pub fn find(&self, path: &[u8], want: Option<(&OwnedFd, &libc::stat)>) -> Result<OwnedFd, Errno> {
        if path.first() != Some(&b'/') || path.ends_with(b" (deleted)") {
            return Err(Errno::ENOENT);
        }
        let how = nix::fcntl::OpenHow::new()
            .flags(nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC)
            .resolve(
                nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT
                    | nix::fcntl::ResolveFlag::RESOLVE_NO_SYMLINKS
                    | nix::fcntl::ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        let rel = std::ffi::OsStr::from_bytes(&path[1..]);
        let rel = if rel.is_empty() { std::ffi::OsStr::new(".") } else { rel };
        let fd = nix::fcntl::openat2(self.seat.root(), rel, how)?;
        if let Some((theirs, w)) = want {
            let st = nix::sys::stat::fstat(&fd)?;
            if !self.same(theirs, w, &st) {
                return Err(Errno::ENOENT);
            }
        }
        Ok(fd)
    }

    /// The file of `theirs` (a caller's fd, as the Sentry holds it; `path`
    /// its readlink) as an fd of the tree: itself if its mount is writable
    /// (opened in the tree), else the same file found again in the tree.
    pub fn twin(&self, theirs: OwnedFd, path: &[u8]) -> Result<OwnedFd, Errno> {
        if !read_only(&theirs) {
            return Ok(theirs);
        }
        let st = nix::sys::stat::fstat(&theirs)?;
        self.find(path, Some((&theirs, &st)))
    }

    /// The directory holding the file of `theirs` (`path` its readlink),
    /// in the tree, and the file's name there, checked to be that file.
    pub fn parent_of(&self, theirs: &OwnedFd, path: &[u8]) -> Result<(OwnedFd, std::ffi::CString), Errno> {
        let st = nix::sys::stat::fstat(theirs)?;
        let cut = path.iter().rposition(|&b| b == b'/').ok_or(Errno::ENOENT)?;
        let (dir, name) = (&path[..cut.max(1)], &path[cut + 1..]);
        if name.is_empty() || path.ends_with(b" (deleted)") {
            return Err(Errno::ENOENT);
        }
        let parent = self.find(dir, None)?;
        let name = std::ffi::CString::new(name).map_err(|_| Errno::ENOENT)?;
        let there = nix::sys::stat::fstatat(&parent, name.as_c_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if !self.same(theirs, &st, &there) {
            return Err(Errno::ENOENT);
        }
        Ok((parent, name))
    }
}

/// Whether `fd` lies on a read-only mount (the stubs' replica, or a
/// read-only mount of the tree, where the same call fails the same way).
pub fn read_only(fd: &OwnedFd) -> bool {
    nix::sys::statvfs::fstatvfs(fd).is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// `path` made absolute against `base` (an absolute directory), with
/// "." and ".." and repeated slashes folded lexically.
pub fn absolute(base: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let joined = if path.first() == Some(&b'/') { [path].concat() } else { [base, b"/", path].concat() };
    for p in joined.split(|&b| b == b'/') {
        match p {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(joined.len());
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Whether an absolute, folded path lies on one of the Sentry's own filesystems.
///
/// /dev/mqueue too: a queue is charged to the real uid and RLIMIT_MSGQUEUE
/// of its creator, which for a call the Sentry made would be host root's.
pub fn pseudo(abs: &[u8]) -> bool {
    let rel = abs.strip_prefix(b"/").unwrap_or(abs);
    PSEUDO.iter().any(|p| rel.strip_prefix(*p).is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_paths() {
        assert_eq!(absolute(b"/home/u", b"x/../y"), b"/home/u/y");
        assert_eq!(absolute(b"/home/u", b"/etc//./passwd"), b"/etc/passwd");
        assert_eq!(absolute(b"/", b"../../.."), b"/");
        assert_eq!(absolute(b"/a", b""), b"/a");
    }

    #[test]
    fn knows_its_own_filesystems() {
        assert!(pseudo(b"/proc/self/oom_score_adj"));
        assert!(pseudo(b"/sys"));
        assert!(!pseudo(b"/procfoo"));
        assert!(!pseudo(b"/etc/sys"));
        assert!(!pseudo(b"/"));
        assert!(pseudo(b"/dev/mqueue/q1") && pseudo(b"/dev/mqueue"));
        assert!(!pseudo(b"/dev/null") && !pseudo(b"/dev/mqueuex"));
    }
}
