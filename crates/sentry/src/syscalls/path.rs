//! Calls that change the file tree, performed by the Sentry in the real
//! tree as the caller (see [`crate::vfs`]). Each is replayed: its path
//! and buffer arguments are copied out of the caller, its dirfds taken
//! (pidfd_getfd), the notify thread moves to the caller's working directory
//! and takes on its credentials, and makes the same system call. Opens
//! install the new file in the caller (ADDFD).
//!
//! Left to the host, in the stubs' read-only replica: opens that only read
//! (the same files, cheaper), paths on the Sentry's own /proc and /sys and
//! on /dev/mqueue, and opening anything that is not a regular file
//! (devices and FIFOs have no tree to change, and their open has effects
//! that belong to the caller: a controlling terminal, waiting for the other
//! end; a directory of the real tree must never reach a stub). Before the
//! tree arrives (or in a sandbox with its own user namespace, or one that
//! joins a mount namespace, which get none) everything is.

use std::ffi::CString;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use super::file::Link;
use super::{Call, Reply};
use crate::vfs::job::{Arg, Done, Job, Special};
use crate::vfs::{self};

/// How a replayed call's argument is carried over.
#[derive(Clone, Copy, PartialEq, Eq)]
enum A {
    /// a value, as is
    V,
    /// a path (NULL allowed), resolved relative to the dirfd at this index, if any
    P(Option<usize>),
    /// a dirfd
    D,
    /// a string that is not resolved (a symlink's target, an xattr's name)
    S,
    /// a buffer of this many bytes (NULL allowed)
    B(usize),
    /// a buffer whose length is the argument at this index
    L(usize),
    /// a struct open_how, whose size is the argument at this index
    How(usize),
    /// an fd of the caller's, taken
    F,
    /// an fd of the caller's on a read-only mount of its replica, replaced
    /// by its file's name, in that file's directory in the tree (worked in
    /// as the cwd); an fd in the tree: the host changes it itself
    Fp,
    /// a buffer of this many bytes the call fills, copied back to the caller
    O(usize),
    /// a struct sockaddr_un naming a path, whose size is the argument at this index
    Sun(usize),
}

use A::{Fp, How, Sun, B, D, F, L, O, P, S, V};

impl A {
    /// The index of the dirfd a path argument is relative to, if any.
    fn dir(self) -> Option<usize> {
        match self {
            P(d) => d,
            _ => None,
        }
    }
}

/// Starts the path at `i` in `start` (a directory of the tree): as its
/// dirfd argument, or as the directory the call is made in (`here`), which
/// one call can have only once.
fn start_at(
    carried: &mut [Carried],
    here: &mut Option<OwnedFd>,
    dir: Option<usize>,
    start: OwnedFd,
) -> Result<(), Errno> {
    match dir {
        Some(d) => carried[d] = Carried::Fd(start),
        None if here.is_none() => *here = Some(start),
        None => return Err(Errno::EINVAL),
    }
    Ok(())
}

/// What becomes of the result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Post {
    /// returned as is
    Value,
    /// an fd of the Sentry's, to install in the caller; open flags are the
    /// argument at this index (or in the open_how)
    Open(Option<usize>),
    /// returned as is; the check is made with the caller's real ids
    Access,
}

const PATH_MAX: usize = 4096;
const XATTR_SIZE_MAX: u64 = 65536;
const OPEN_HOW_MAX: u64 = 256;

/// One argument, carried over.
enum Carried {
    Raw(u64),
    Str(CString),
    Buf(Vec<u8>),
    Fd(OwnedFd),
    /// a caller's fd standing for its file (before it becomes a name in its
    /// directory, found again in the tree)
    Alias(OwnedFd),
    /// a path through one of the caller's magic links: the link, the rest
    /// of the path, the whole path (before the Sentry makes the jump)
    Magic(Link, Vec<u8>, CString),
    /// a file opened in the tree, named through a magic link to it of
    /// whoever makes the call (linkat's source, with AT_SYMLINK_FOLLOW)
    Link(OwnedFd),
}

pub(super) fn is_at_fdcwd(v: u64) -> bool {
    v as i32 == libc::AT_FDCWD
}

fn read_string(c: &Call<'_>, addr: u64, max: usize) -> Result<CString, Errno> {
    let bytes = c.mem.read_cstr(addr, max)?.ok_or(Errno::ENAMETOOLONG)?;
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

fn read_buf(c: &Call<'_>, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut b = vec![0u8; len];
    c.mem.read(addr, &mut b)?;
    Ok(b)
}

/// Replays call `nr` with arguments described by `shape`.
fn replay(c: &Call<'_>, nr: libc::c_long, shape: &[A], post: Post) -> Reply {
    match try_replay(c, nr, shape, post) {
        Ok(r) => r,
        Err(e) => Reply::Error(e),
    }
}

fn try_replay(c: &Call<'_>, nr: libc::c_long, shape: &[A], post: Post) -> Result<Reply, Errno> {
    let Some(tree) = c.kernel.tree.get().filter(|t| t.here()) else { return Ok(Reply::Continue) };
    if let Post::Open(Some(at)) = post {
        if !changes(c.args[at]) {
            return Ok(Reply::Continue);
        }
    }
    // 1. copy the caller's arguments
    let mut carried: Vec<Carried> = Vec::with_capacity(6);
    for (i, a) in shape.iter().enumerate() {
        let v = c.args[i];
        carried.push(match *a {
            V | D => Carried::Raw(v),
            O(n) => Carried::Buf(vec![0u8; n]),
            F => Carried::Fd(c.fds.get(i32::try_from(v).map_err(|_| Errno::EBADF)?)?),
            Fp => {
                let ours = c.fds.get(i32::try_from(v).map_err(|_| Errno::EBADF)?)?;
                // as on Linux: an O_PATH fd changes nothing through itself
                let fl = nix::fcntl::fcntl(&ours, nix::fcntl::FcntlArg::F_GETFL)?;
                if fl & libc::O_PATH != 0 {
                    return Err(Errno::EBADF);
                }
                // a file opened in the tree: the host changes it through the fd
                if !vfs::read_only(&ours) {
                    return Ok(Reply::Continue);
                }
                Carried::Alias(ours)
            }
            P(_) | S | B(_) | L(_) | How(_) | Sun(_) if v == 0 => Carried::Raw(0),
            Sun(at) => Carried::Buf(read_buf(c, v, usize::try_from(c.args[at]).map_err(|_| Errno::EINVAL)?)?),
            P(_) => {
                let p = read_string(c, v, PATH_MAX)?;
                // a path naming one of the caller's fds (glibc's fchmodat
                // goes through /proc/self/fd/N) names its file, for a call
                // that follows its last component; one that does not (unlink,
                // rename, mkdir …) acts on the /proc entry itself, as on
                // Linux: the host's to refuse
                let follows = follows_last(nr, i, &c.args);
                match (super::file::alias(p.as_bytes()), super::file::magic(p.as_bytes(), c.pid)) {
                    (Some(fd), _) if follows => Carried::Alias(c.fds.get(fd)?),
                    (None, Some((link, rest))) if follows || !rest.is_empty() => {
                        Carried::Magic(link, rest.to_vec(), p.clone())
                    }
                    _ => Carried::Str(p),
                }
            }
            S => Carried::Str(read_string(c, v, PATH_MAX)?),
            B(n) => Carried::Buf(read_buf(c, v, n)?),
            L(at) => {
                let n = c.args[at];
                if n > XATTR_SIZE_MAX {
                    return Err(Errno::E2BIG);
                }
                Carried::Buf(read_buf(c, v, n as usize)?)
            }
            How(at) => {
                let n = c.args[at];
                if !(24..=OPEN_HOW_MAX).contains(&n) {
                    return Err(if n < 24 { Errno::EINVAL } else { Errno::E2BIG });
                }
                Carried::Buf(read_buf(c, v, n as usize)?)
            }
        });
    }
    // 2. where each path lies: a call on the Sentry's own filesystems goes
    // to the host. Every directory the Sentry derives itself (the caller's
    // cwd and root, its dirfds, the file of an fd) is found again in the
    // tree as that very file, never by a name alone.
    let root = c.task.root()?;
    let mut cwd: Option<Vec<u8>> = None;
    let mut needs_cwd = false;
    // a directory to work in instead of the cwd (the parent of an fd's file)
    let mut here: Option<OwnedFd> = None;
    // paths through the caller's own magic links start at the link's
    // directory, found again in the tree (its path here)
    let mut based: [Option<Vec<u8>>; 6] = Default::default();
    for i in 0..shape.len() {
        if !matches!(carried[i], Carried::Magic(..)) {
            continue;
        }
        let Carried::Magic(link, rest, whole) = std::mem::replace(&mut carried[i], Carried::Raw(0)) else { continue };
        let dir = shape[i].dir();
        // a caller in a chroot of its own resolves /proc there (if at all)
        if root != b"/" {
            carried[i] = Carried::Str(whole);
            continue;
        }
        let c_string = |b: Vec<u8>| CString::new(b).map_err(|_| Errno::EINVAL);
        let ours = match link {
            Link::Root => {
                carried[i] = Carried::Str(c_string([b"/", &rest[..]].concat())?);
                continue;
            }
            Link::Cwd => c.task.cwd_file()?,
            Link::Fd(n) => c.fds.get(n)?,
        };
        let path = match link {
            Link::Cwd => c.task.cwd()?,
            _ => c.fds.path_of(ours.as_fd())?,
        };
        if rest.is_empty() {
            // the tree's root has no parent to find it in: it is "/"
            carried[i] = match path.as_slice() {
                b"/" => Carried::Str(c_string(path)?),
                _ => Carried::Alias(ours),
            };
            continue;
        }
        if vfs::pseudo(&vfs::absolute(b"/", &path)) {
            return Ok(Reply::Continue);
        }
        if link == Link::Cwd && dir.is_none() {
            // relative to the cwd, as any relative path
            carried[i] = Carried::Str(c_string(rest)?);
            continue;
        }
        start_at(&mut carried, &mut here, dir, tree.twin(ours, &path)?)?;
        carried[i] = Carried::Str(c_string(rest)?);
        based[i] = Some(path);
    }
    for i in 0..shape.len() {
        if let (Some(base), Carried::Str(p)) = (&based[i], &carried[i]) {
            if vfs::pseudo(&vfs::absolute(base, p.as_bytes())) {
                return Ok(Reply::Continue);
            }
            continue;
        }
        let (dir, p) = match (shape[i], &carried[i]) {
            (P(dir), Carried::Str(p)) => (dir, p.as_bytes().to_vec()),
            (Sun(_), Carried::Buf(b)) => (None, sun_path(b).ok_or(Errno::EINVAL)?.to_vec()),
            (P(_) | Fp, Carried::Alias(ours)) => {
                let dir = shape[i].dir();
                // linkat(…, AT_SYMLINK_FOLLOW) of a file opened in the tree
                // follows the Sentry's own magic link to it, as the caller's
                // own would: a file with no name yet (O_TMPFILE) gets one
                if nr == libc::SYS_linkat && follows_last(nr, i, &c.args) && !vfs::read_only(ours) {
                    if let Carried::Alias(ours) = std::mem::replace(&mut carried[i], Carried::Raw(0)) {
                        carried[i] = Carried::Link(ours);
                    }
                    continue;
                }
                let path = c.fds.path_of(ours.as_fd())?;
                if vfs::pseudo(&vfs::absolute(b"/", &path)) {
                    return Ok(Reply::Continue);
                }
                let (parent, name) = tree.parent_of(ours, &path)?;
                start_at(&mut carried, &mut here, dir, parent)?;
                carried[i] = Carried::Str(name);
                continue;
            }
            _ => continue,
        };
        let p = p.as_slice();
        let base = if p.first() == Some(&b'/') {
            root.clone()
        } else {
            match dir.map(|d| c.args[d]) {
                Some(fd) if !is_at_fdcwd(fd) => {
                    let ours = c.fds.get(fd as i32)?;
                    let path = c.fds.path_of(ours.as_fd())?;
                    if vfs::pseudo(&vfs::absolute(&path, p)) {
                        return Ok(Reply::Continue);
                    }
                    carried[dir.unwrap_or(0)] = Carried::Fd(tree.twin(ours, &path)?);
                    path
                }
                _ => {
                    needs_cwd = true;
                    if cwd.is_none() {
                        cwd = Some(c.task.cwd()?);
                    }
                    cwd.clone().unwrap_or_default()
                }
            }
        };
        // an absolute path starts at the caller's root
        let rel = if p.first() == Some(&b'/') { &p[1..] } else { p };
        if vfs::pseudo(&vfs::absolute(&base, rel)) {
            return Ok(Reply::Continue);
        }
    }
    if needs_cwd {
        if here.is_some() {
            return Err(Errno::EINVAL);
        }
        let theirs = c.task.cwd_file()?;
        here = Some(tree.twin(theirs, &cwd.unwrap_or_default())?);
    }
    // the caller's own root if it chrooted (its working directory may lie
    // outside that root, as on Linux)
    let jail = match root.as_slice() {
        b"/" => None,
        _ => Some(tree.twin(c.task.root_file()?, &root)?),
    };
    // 3. as the caller (access(2) checks with its real ids)
    let who = c.task.creds()?;
    let caller_flags = match post {
        Post::Open(Some(at)) => c.args[at],
        Post::Open(None) => open_how_flags(&carried)?,
        Post::Value | Post::Access => 0,
    };
    if let Post::Open(None) = post {
        if !changes(caller_flags) {
            return Ok(Reply::Continue);
        }
    }
    let mut special = None;
    if let Post::Open(at) = post {
        // never wait on a FIFO swapped in, never take a terminal
        let flags = caller_flags | (libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC) as u64;
        match at {
            Some(at) => carried[at] = Carried::Raw(flags),
            None => set_open_how_flags(&mut carried, flags),
        }
        // devices, FIFOs and sockets: the host opens them
        special = shape.iter().position(|a| matches!(a, P(_))).map(|path| Special {
            path,
            dir: shape[path].dir(),
            nofollow: caller_flags & libc::O_NOFOLLOW as u64 != 0,
        });
    }
    // the names the call may change, for the gofer's view to forget after it
    let mut touched = Vec::new();
    if tree.telling() && post != Post::Access && nr != libc::SYS_statfs {
        for (i, a) in shape.iter().enumerate() {
            let path = match (a, &carried[i]) {
                (P(_), Carried::Str(p)) => p.as_bytes(),
                (Sun(_), Carried::Buf(b)) => match sun_path(b) {
                    Some(p) => p,
                    None => continue,
                },
                _ => continue,
            };
            let start = match (path.first(), a.dir().map(|d| &carried[d])) {
                (Some(b'/'), _) => jail.as_ref().map_or(tree.root(), |j| j.as_fd()),
                (_, Some(Carried::Fd(dir))) => dir.as_fd(),
                _ => match &here {
                    Some(h) => h.as_fd(),
                    None => continue,
                },
            };
            touched.extend(tree.touching(start, path));
        }
    }
    let mut args = Vec::with_capacity(shape.len());
    for (a, carried) in shape.iter().zip(carried) {
        args.push(match carried {
            Carried::Raw(v) => Arg::Raw(v),
            Carried::Str(s) => Arg::In(s.into_bytes_with_nul()),
            Carried::Buf(b) if matches!(a, O(_)) => Arg::Out(b.len()),
            Carried::Buf(b) => Arg::In(b),
            Carried::Fd(f) => Arg::Fd(f),
            // linkat's source, through the magic link of whoever makes the call
            Carried::Link(f) => Arg::Link(f, 0),
            Carried::Alias(_) | Carried::Magic(..) => return Err(Errno::EINVAL),
        });
    }
    let job =
        Job { nr, args, here, jail, who, access: post == Post::Access, special, opens: matches!(post, Post::Open(_)) };
    let done = tree.run(job);
    tree.touched(touched);
    let (result, outs) = match done? {
        Done::Special => return Ok(Reply::Continue),
        Done::Made(r, outs) => (r, outs),
    };
    for (i, bytes) in outs {
        c.mem.write(c.args[i], &bytes)?;
    }
    match post {
        Post::Value | Post::Access => Ok(result.map(Reply::Value).unwrap_or_else(Reply::Error)),
        Post::Open(_) => match result {
            Err(Errno::ENXIO) => Ok(Reply::Continue),
            // a message queue (through a symlink to /dev/mqueue): charged to
            // its creator's real uid, so the Sentry may make none (its
            // RLIMIT_MSGQUEUE is 0); the host makes it as the caller
            Err(Errno::EMFILE) if caller_flags & libc::O_CREAT as u64 != 0 => Ok(Reply::Continue),
            Err(e) => Ok(Reply::Error(e)),
            Ok(fd) => {
                // SAFETY: the kernel just returned this new fd of ours.
                let file = unsafe { OwnedFd::from_raw_fd(fd as i32) };
                let st = nix::sys::stat::fstat(file.as_fd())?;
                // regular files only: a directory of the tree in a stub's
                // hands would let calls the host makes (relative to it) write
                if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Ok(Reply::Continue);
                }
                tree.opened_for_writing(&st);
                if caller_flags & libc::O_NONBLOCK as u64 == 0 {
                    let fl = nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
                    let fl = nix::fcntl::OFlag::from_bits_retain(fl & !libc::O_NONBLOCK);
                    nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_SETFL(fl))?;
                }
                c.fds.install(file, caller_flags & libc::O_CLOEXEC as u64 != 0)
            }
        },
    }
}

/// Whether an open with these flags may change the tree (write, create,
/// truncate). The others the host makes in the replica: the same files,
/// and cheaper. Among them O_PATH, which ADDFD could not install anyway (fget
/// refuses O_PATH files). An fd opened there and later used to change its
/// file (fchmod, fchown, futimens, fsetxattr) is found again in the tree
/// by its path ([`A::Fp`]).
fn changes(flags: u64) -> bool {
    let f = flags as i32;
    if f & libc::O_PATH != 0 {
        return false;
    }
    // O_TMPFILE holds O_DIRECTORY's bit: only all of it means a new file
    f & libc::O_ACCMODE != libc::O_RDONLY
        || f & (libc::O_CREAT | libc::O_TRUNC) != 0
        || f & libc::O_TMPFILE == libc::O_TMPFILE
}

/// Whether call `nr` follows a symlink (a magic link among them) that is
/// the last component of its path argument at index `i`.
fn follows_last(nr: libc::c_long, i: usize, args: &[u64; 6]) -> bool {
    let nofollow = |at: usize| args[at] & libc::AT_SYMLINK_NOFOLLOW as u64 != 0;
    let opens_following = |flags: u64| {
        let f = flags as i32;
        f & libc::O_NOFOLLOW == 0 && f & (libc::O_CREAT | libc::O_EXCL) != (libc::O_CREAT | libc::O_EXCL)
    };
    match nr {
        libc::SYS_unlink
        | libc::SYS_unlinkat
        | libc::SYS_rmdir
        | libc::SYS_rename
        | libc::SYS_renameat
        | libc::SYS_renameat2
        | libc::SYS_mkdir
        | libc::SYS_mkdirat
        | libc::SYS_mknod
        | libc::SYS_mknodat
        | libc::SYS_symlink
        | libc::SYS_symlinkat
        | libc::SYS_link
        | libc::SYS_lchown
        | libc::SYS_lsetxattr
        | libc::SYS_lremovexattr
        | libc::SYS_bind => false,
        libc::SYS_linkat => i == 1 && args[4] & libc::AT_SYMLINK_FOLLOW as u64 != 0,
        libc::SYS_fchownat => !nofollow(4),
        libc::SYS_utimensat => !nofollow(3),
        libc::SYS_open => opens_following(args[1]),
        libc::SYS_openat => opens_following(args[2]),
        _ => true,
    }
}

/// The path in a struct sockaddr_un (up to its NUL), if it names one.
fn sun_path(addr: &[u8]) -> Option<&[u8]> {
    let path = addr.get(2..)?;
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    Some(&path[..end]).filter(|p| !p.is_empty())
}

/// bind(fd, addr, len) of a unix socket to a path: the socket file is made
/// in the tree, as the caller. Other addresses stay with the host until
/// the netstack (the abstract namespace, other families).
pub fn bind(c: &Call<'_>) -> Reply {
    let len = c.args[2];
    // sizeof(struct sockaddr_un)
    if !(3..=110).contains(&len) {
        return Reply::Continue;
    }
    let mut head = [0u8; 3];
    if let Err(e) = c.mem.read(c.args[1], &mut head) {
        // never the host: it would read the address again
        return Reply::Error(e);
    }
    if u16::from_le_bytes([head[0], head[1]]) != libc::AF_UNIX as u16 || head[2] == 0 {
        return Reply::Continue;
    }
    replay(c, libc::SYS_bind, &[F, Sun(2), V], Post::Value)
}

fn open_how_flags(carried: &[Carried]) -> Result<u64, Errno> {
    match carried.get(2) {
        Some(Carried::Buf(b)) if b.len() >= 8 => Ok(u64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EINVAL)?)),
        _ => Err(Errno::EFAULT),
    }
}

fn set_open_how_flags(carried: &mut [Carried], flags: u64) {
    if let Some(Carried::Buf(b)) = carried.get_mut(2) {
        b[..8].copy_from_slice(&flags.to_le_bytes());
    }
}

macro_rules! replayed {
    ($(#[$doc:meta] $name:ident => $nr:ident, [$($a:expr),*], $post:expr;)*) => {$(
        #[$doc]
        pub fn $name(c: &Call<'_>) -> Reply {
            replay(c, libc::$nr, &[$($a),*], $post)
        }
    )*};
}

replayed! {
    /// mkdir(path, mode)
    mkdir => SYS_mkdir, [P(None), V], Post::Value;
    /// mkdirat(dirfd, path, mode)
    mkdirat => SYS_mkdirat, [D, P(Some(0)), V], Post::Value;
    /// mknod(path, mode, dev)
    mknod => SYS_mknod, [P(None), V, V], Post::Value;
    /// mknodat(dirfd, path, mode, dev)
    mknodat => SYS_mknodat, [D, P(Some(0)), V, V], Post::Value;
    /// unlink(path)
    unlink => SYS_unlink, [P(None)], Post::Value;
    /// unlinkat(dirfd, path, flags)
    unlinkat => SYS_unlinkat, [D, P(Some(0)), V], Post::Value;
    /// rmdir(path)
    rmdir => SYS_rmdir, [P(None)], Post::Value;

    /// renameat(olddirfd, old, newdirfd, new)
    renameat => SYS_renameat, [D, P(Some(0)), D, P(Some(2))], Post::Value;
    /// renameat2(olddirfd, old, newdirfd, new, flags)
    renameat2 => SYS_renameat2, [D, P(Some(0)), D, P(Some(2)), V], Post::Value;

    /// linkat(olddirfd, old, newdirfd, new, flags)
    linkat => SYS_linkat, [D, P(Some(0)), D, P(Some(2)), V], Post::Value;
    /// symlink(target, path)
    symlink => SYS_symlink, [S, P(None)], Post::Value;
    /// symlinkat(target, dirfd, path)
    symlinkat => SYS_symlinkat, [S, D, P(Some(1))], Post::Value;
    /// chmod(path, mode)
    chmod => SYS_chmod, [P(None), V], Post::Value;
    /// fchmodat(dirfd, path, mode)
    fchmodat => SYS_fchmodat, [D, P(Some(0)), V], Post::Value;
    /// chown(path, uid, gid)
    chown => SYS_chown, [P(None), V, V], Post::Value;
    /// lchown(path, uid, gid)
    lchown => SYS_lchown, [P(None), V, V], Post::Value;
    /// fchownat(dirfd, path, uid, gid, flags)
    fchownat => SYS_fchownat, [D, P(Some(0)), V, V, V], Post::Value;
    /// utime(path, times)
    utime => SYS_utime, [P(None), B(16)], Post::Value;
    /// utimes(path, times)
    utimes => SYS_utimes, [P(None), B(32)], Post::Value;
    /// futimesat(dirfd, path, times)
    futimesat => SYS_futimesat, [D, P(Some(0)), B(32)], Post::Value;

    /// statfs(path, buf): the tree's mount, not the replica's read-only copy
    statfs => SYS_statfs, [P(None), O(120)], Post::Value;
    /// setxattr(path, name, value, size, flags)
    setxattr => SYS_setxattr, [P(None), S, L(3), V, V], Post::Value;
    /// lsetxattr(path, name, value, size, flags)
    lsetxattr => SYS_lsetxattr, [P(None), S, L(3), V, V], Post::Value;
    /// removexattr(path, name)
    removexattr => SYS_removexattr, [P(None), S], Post::Value;
    /// lremovexattr(path, name)
    lremovexattr => SYS_lremovexattr, [P(None), S], Post::Value;
    /// openat2(dirfd, path, how, size)
    openat2 => SYS_openat2, [D, P(Some(0)), How(3), V], Post::Open(None);
}

/// rename(old, new), as renameat: each path with a start of its own (one
/// may go through a magic link, the other from the cwd)
pub fn rename(c: &Call<'_>) -> Reply {
    let at = libc::AT_FDCWD as u64;
    let args = [at, c.args[0], at, c.args[1], 0, 0];
    replay(&Call { args, ..*c }, libc::SYS_renameat, &[D, P(Some(0)), D, P(Some(2))], Post::Value)
}

/// link(old, new), as linkat without AT_SYMLINK_FOLLOW (as link(2) does)
pub fn link(c: &Call<'_>) -> Reply {
    let at = libc::AT_FDCWD as u64;
    let args = [at, c.args[0], at, c.args[1], 0, 0];
    replay(&Call { args, ..*c }, libc::SYS_linkat, &[D, P(Some(0)), D, P(Some(2)), V], Post::Value)
}

/// fstatfs(fd, buf): a file opened in the read-only replica reports the
/// tree's mount (whose flags say whether it is writable), as statfs of its
/// path there; any other fd, an O_PATH one among them, and a file whose
/// path is gone, the host (the replica's flags then)
pub fn fstatfs(c: &Call<'_>) -> Reply {
    let o_path = i32::try_from(c.args[0])
        .map_err(|_| Errno::EBADF)
        .and_then(|fd| c.fds.get(fd))
        .and_then(|f| nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETFL))
        .map(|fl| fl & libc::O_PATH != 0);
    if o_path != Ok(false) {
        return Reply::Continue;
    }
    try_replay(c, libc::SYS_statfs, &[Fp, O(120)], Post::Value).unwrap_or(Reply::Continue)
}

/// truncate(path, length), within the caller's RLIMIT_FSIZE (the Sentry's
/// own is not the caller's). Linux also sends SIGXFSZ; the Sentry does not.
pub fn truncate(c: &Call<'_>) -> Reply {
    match c.task.file_size_limit() {
        Ok(Some(limit)) if c.args[1] > limit => Reply::Error(Errno::EFBIG),
        Ok(_) => replay(c, libc::SYS_truncate, &[P(None), V], Post::Value),
        Err(e) => Reply::Error(e),
    }
}

/// utimensat(dirfd, path, times, flags); a NULL path is the dirfd itself
/// (futimens), which if opened in the replica is found again by its path
pub fn utimensat(c: &Call<'_>) -> Reply {
    if c.args[1] == 0 && !is_at_fdcwd(c.args[0]) {
        let args = [libc::AT_FDCWD as u64, c.args[0], c.args[2], libc::AT_SYMLINK_NOFOLLOW as u64, 0, 0];
        return replay(&Call { args, ..*c }, libc::SYS_utimensat, &[V, Fp, B(32), V], Post::Value);
    }
    replay(c, libc::SYS_utimensat, &[D, P(Some(0)), B(32), V], Post::Value)
}

/// creat(path, mode): openat(AT_FDCWD, path, O_CREAT|O_WRONLY|O_TRUNC, mode)
pub fn creat(c: &Call<'_>) -> Reply {
    let flags = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64;
    let args = [libc::AT_FDCWD as u64, c.args[0], flags, c.args[1], 0, 0];
    let c = Call { args, ..*c };
    replay(&c, libc::SYS_openat, &[D, P(Some(0)), V, V], Post::Open(Some(2)))
}

/// access(path, mode) for writing: the replica is read-only, the tree may
/// not be (checks for reading or executing the host makes there)
pub fn access(c: &Call<'_>) -> Reply {
    let args = [libc::AT_FDCWD as u64, c.args[0], c.args[1], 0, 0, 0];
    faccessat2(&Call { args, ..*c })
}

/// faccessat(dirfd, path, mode), for writing
pub fn faccessat(c: &Call<'_>) -> Reply {
    let args = [c.args[0], c.args[1], c.args[2], 0, 0, 0];
    faccessat2(&Call { args, ..*c })
}

/// faccessat2(dirfd, path, mode, flags), for writing: made with
/// AT_EACCESS, the caller's real ids having been taken on unless it asked
/// for AT_EACCESS itself
pub fn faccessat2(c: &Call<'_>) -> Reply {
    if c.args[2] & libc::W_OK as u64 == 0 {
        return Reply::Continue;
    }
    let eaccess = c.args[3] & libc::AT_EACCESS as u64 != 0;
    let args = [c.args[0], c.args[1], c.args[2], c.args[3] | libc::AT_EACCESS as u64, 0, 0];
    let post = if eaccess { Post::Value } else { Post::Access };
    replay(&Call { args, ..*c }, libc::SYS_faccessat2, &[D, P(Some(0)), V, V], post)
}

replayed! {
    /// fchmod(fd, mode) of a file opened in the replica: chmod of its path
    fchmod => SYS_chmod, [Fp, V], Post::Value;
    /// fchown(fd, uid, gid) of a file opened in the replica: lchown of its path
    fchown => SYS_lchown, [Fp, V, V], Post::Value;
    /// fsetxattr(fd, name, value, size, flags) of a file opened in the replica
    fsetxattr => SYS_lsetxattr, [Fp, S, L(3), V, V], Post::Value;
    /// fremovexattr(fd, name) of a file opened in the replica
    fremovexattr => SYS_lremovexattr, [Fp, S], Post::Value;
}

/// open(path, flags, mode), past the caller's own fds by name
pub fn open(c: &Call<'_>) -> Reply {
    replay(c, libc::SYS_open, &[P(None), V, V], Post::Open(Some(1)))
}

/// openat(dirfd, path, flags, mode), past the caller's own fds by name
pub fn openat(c: &Call<'_>) -> Reply {
    replay(c, libc::SYS_openat, &[D, P(Some(0)), V, V], Post::Open(Some(2)))
}
