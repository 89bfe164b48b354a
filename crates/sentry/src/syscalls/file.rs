//! File calls that read: the host performs them in the stubs' read-only
//! replica of the tree (interim, until the VFS), except what the host
//! cannot do for a stub: naming one of the caller's own fds
//! by path (/dev/stdin, /dev/fd/N, /proc/self/fd/N …) to open, stat or
//! access it. On Linux those are procfs "magic links"; the sandbox's /proc
//! is the Sentry's and has none, so the Sentry answers: it opens the
//! caller's file anew itself and installs it, or describes it.
//!
//! The path is read once from the caller's memory; if the caller changes it
//! afterwards, the answer is still the one for the path read (the caller's
//! own fd), and anything else goes to the host unchanged.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::{Call, Reply};

/// open(path, flags, mode)
pub fn open(c: &Call<'_>) -> Reply {
    reopen(c, c.args[0], c.args[1])
        .unwrap_or_else(|| through_symlink(c, None, c.args[0], c.args[1], super::path::open(c)))
}

/// openat(dirfd, path, flags, mode): an absolute path ignores dirfd.
pub fn openat(c: &Call<'_>) -> Reply {
    reopen(c, c.args[1], c.args[2])
        .unwrap_or_else(|| through_symlink(c, Some(c.args[0]), c.args[1], c.args[2], super::path::openat(c)))
}

/// A served open that found nothing may have followed a symlink to one of
/// the caller's own fds (`ln -s /dev/stdout access.log`, as the nginx
/// image ships its logs): on Linux the walk ends in a magic link, which the
/// sandbox's /proc lacks. The symlink chain of the path's last component is
/// read through the caller's own root, cwd or dirfd (its magic links in the
/// Sentry's procfs of the sandbox), and if it ends at an alias, that fd is
/// reopened.
fn through_symlink(c: &Call<'_>, dirfd: Option<u64>, path: u64, flags: u64, served: Reply) -> Reply {
    const HOPS: usize = 8;
    if served != Reply::Error(Errno::ENOENT) || flags & libc::O_NOFOLLOW as u64 != 0 {
        return served;
    }
    let Ok(Some(mut p)) = c.mem.read_cstr(path, 4096) else { return served };
    for _ in 0..HOPS {
        let start = match (p.first(), dirfd.filter(|d| *d as i32 != libc::AT_FDCWD)) {
            (Some(b'/'), _) => "root".to_string(),
            (_, Some(fd)) => format!("fd/{}", fd as i32),
            _ => "cwd".to_string(),
        };
        let rel = p.strip_prefix(b"/").unwrap_or(&p);
        let Ok(target) = c.fds.readlink_as_caller(&start, rel) else { return served };
        let target = target.into_encoded_bytes();
        if let Some(fd) = alias(&target) {
            return reopen_fd(c, fd, flags).unwrap_or_else(Reply::Error);
        }
        // a relative target is relative to the link's directory
        p = match (target.first(), p.iter().rposition(|&b| b == b'/')) {
            (Some(b'/'), _) | (_, None) => target,
            (_, Some(cut)) => [&p[..=cut], &target[..]].concat(),
        };
    }
    served
}

/// stat(path, buf)
pub fn stat(c: &Call<'_>) -> Reply {
    stat_alias(c, c.args[0], c.args[1], false)
}

/// newfstatat(dirfd, path, buf, flags)
pub fn newfstatat(c: &Call<'_>) -> Reply {
    if let Some(r) = stat_as_viewed(c, c.args[3], c.args[2], false) {
        return r;
    }
    if c.args[3] & libc::AT_SYMLINK_NOFOLLOW as u64 != 0 {
        return Reply::Continue;
    }
    stat_alias(c, c.args[1], c.args[2], false)
}

/// statx(dirfd, path, flags, mask, buf)
pub fn statx(c: &Call<'_>) -> Reply {
    if let Some(r) = stat_as_viewed(c, c.args[2], c.args[4], true) {
        return r;
    }
    if c.args[2] & libc::AT_SYMLINK_NOFOLLOW as u64 != 0 {
        return Reply::Continue;
    }
    stat_alias(c, c.args[1], c.args[4], true)
}

/// access(path, mode)
pub fn access(c: &Call<'_>) -> Reply {
    access_alias(c, c.args[0], c.args[1]).unwrap_or_else(|| super::path::access(c))
}

/// faccessat(dirfd, path, mode)
pub fn faccessat(c: &Call<'_>) -> Reply {
    access_alias(c, c.args[1], c.args[2]).unwrap_or_else(|| super::path::faccessat(c))
}

/// faccessat2(dirfd, path, mode, flags)
pub fn faccessat2(c: &Call<'_>) -> Reply {
    access_alias(c, c.args[1], c.args[2]).unwrap_or_else(|| super::path::faccessat2(c))
}

/// readlink(path, buf, size)
pub fn readlink(c: &Call<'_>) -> Reply {
    own_exe(c, c.args[0], c.args[1], c.args[2]).unwrap_or(Reply::Continue)
}

/// readlinkat(dirfd, path, buf, size): an absolute path ignores dirfd.
pub fn readlinkat(c: &Call<'_>) -> Reply {
    own_exe(c, c.args[1], c.args[2], c.args[3]).unwrap_or(Reply::Continue)
}

/// /proc/self/exe, which every static glibc program reads as it starts:
/// answered from the caller's own, without a round trip through the
/// sandbox's /proc (three FUSE requests).
fn own_exe(c: &Call<'_>, path: u64, buf: u64, size: u64) -> Option<Reply> {
    let p = c.mem.read_cstr(path, 32).ok()??;
    if p != b"/proc/self/exe" && p != b"/proc/thread-self/exe" {
        return None;
    }
    // a caller in a chroot of its own resolves /proc there (if at all)
    if c.task.root().ok()? != b"/" {
        return None;
    }
    let r = (|| {
        let size = usize::try_from(size).ok().filter(|s| (1..=i32::MAX as usize).contains(s)).ok_or(Errno::EINVAL)?;
        let link = c.task.exe()?;
        let n = link.len().min(size);
        c.mem.write(buf, &link[..n])?;
        Ok(n as i64)
    })();
    Some(r.map(Reply::Value).unwrap_or_else(Reply::Error))
}

/// The caller's fd named by the path at `path`, if it is an alias.
fn named_fd(c: &Call<'_>, path: u64) -> Option<i32> {
    match c.mem.read_cstr(path, 32) {
        Ok(Some(p)) => alias(&p),
        _ => None,
    }
}

fn stat_alias(c: &Call<'_>, path: u64, buf: u64, x: bool) -> Reply {
    let Some(fd) = named_fd(c, path) else { return Reply::Continue };
    let r = (|| {
        let file = c.fds.get(fd)?;
        let mut st = nix::sys::stat::fstat(file.as_fd())?;
        if let Some(tree) = c.kernel.tree.get() {
            tree.as_viewed(&mut st, || c.task.root_file().ok());
        }
        let bytes = if x { statx_bytes(&st) } else { stat_bytes(&st) };
        c.mem.write(buf, &bytes)
    })();
    match r {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Error(e),
    }
}

/// An fstat (an empty path with AT_EMPTY_PATH: glibc's fstat) of a file
/// the Sentry opened in the tree for the caller, in the gofer's view: the
/// file as a stat of its path there shows it ([`crate::vfs::Tree::as_viewed`]).
/// None for anything else.
fn stat_as_viewed(c: &Call<'_>, flags: u64, buf: u64, x: bool) -> Option<Reply> {
    let tree = c.kernel.tree.get().filter(|t| t.telling())?;
    if flags & libc::AT_EMPTY_PATH as u64 == 0 || super::path::is_at_fdcwd(c.args[0]) {
        return None;
    }
    if !c.mem.read_cstr(c.args[1], 1).ok()??.is_empty() {
        return None;
    }
    let file = c.fds.get(i32::try_from(c.args[0]).ok()?).ok()?;
    let mut st = nix::sys::stat::fstat(file.as_fd()).ok()?;
    if !tree.as_viewed(&mut st, || c.task.root_file().ok()) {
        return None;
    }
    let bytes = if x { statx_bytes(&st) } else { stat_bytes(&st) };
    Some(match c.mem.write(buf, &bytes) {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Error(e),
    })
}

fn access_alias(c: &Call<'_>, path: u64, mode: u64) -> Option<Reply> {
    let fd = named_fd(c, path)?;
    let r = (|| {
        let file = c.fds.get(fd)?;
        let flags = OFlag::from_bits_truncate(fcntl(file.as_fd(), FcntlArg::F_GETFL)?);
        let had = flags & OFlag::O_ACCMODE;
        let path_only = flags.contains(OFlag::O_PATH);
        let readable = had != OFlag::O_WRONLY && !path_only;
        let writable = had != OFlag::O_RDONLY && !path_only;
        let ok = (mode & libc::R_OK as u64 == 0 || readable) && (mode & libc::W_OK as u64 == 0 || writable);
        if ok {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    })();
    Some(match r {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Error(e),
    })
}

/// struct stat of x86-64, as the kernel lays it out.
fn stat_bytes(st: &libc::stat) -> Vec<u8> {
    let mut b = Vec::with_capacity(144);
    for v in [st.st_dev, st.st_ino, st.st_nlink] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [st.st_mode, st.st_uid, st.st_gid, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&st.st_rdev.to_le_bytes());
    let times = [
        st.st_size,
        st.st_blksize,
        st.st_blocks,
        st.st_atime,
        st.st_atime_nsec,
        st.st_mtime,
        st.st_mtime_nsec,
        st.st_ctime,
        st.st_ctime_nsec,
    ];
    for v in times {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.resize(144, 0);
    b
}

/// struct statx with the basic fields (STATX_BASIC_STATS).
fn statx_bytes(st: &libc::stat) -> Vec<u8> {
    const STATX_BASIC_STATS: u32 = 0x7ff;
    let mut b = Vec::with_capacity(256);
    let u32s = |b: &mut Vec<u8>, v: &[u32]| v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
    u32s(&mut b, &[STATX_BASIC_STATS, st.st_blksize as u32]);
    b.extend_from_slice(&0u64.to_le_bytes()); // attributes
    u32s(&mut b, &[st.st_nlink as u32, st.st_uid, st.st_gid]);
    b.extend_from_slice(&(st.st_mode as u16).to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    for v in [st.st_ino, st.st_size as u64, st.st_blocks as u64, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    // atime, btime (unknown: zero), ctime, mtime
    let ts =
        [(st.st_atime, st.st_atime_nsec), (0, 0), (st.st_ctime, st.st_ctime_nsec), (st.st_mtime, st.st_mtime_nsec)];
    for (s, ns) in ts {
        b.extend_from_slice(&s.to_le_bytes());
        u32s(&mut b, &[ns as u32, 0]);
    }
    let (rmaj, rmin) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    let (dmaj, dmin) = (libc::major(st.st_dev), libc::minor(st.st_dev));
    u32s(&mut b, &[rmaj, rmin, dmaj, dmin]);
    b.resize(256, 0);
    b
}

/// The caller's fd that `path` names, if it is one of the aliases.
pub(super) fn alias(path: &[u8]) -> Option<i32> {
    let p = std::str::from_utf8(path).ok()?;
    let n = match p {
        "/dev/stdin" => return Some(0),
        "/dev/stdout" => return Some(1),
        "/dev/stderr" => return Some(2),
        _ => ["/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/"].iter().find_map(|pre| p.strip_prefix(pre))?,
    };
    if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// A procfs magic link of the caller's own that a longer path goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// /proc/self/cwd
    Cwd,
    /// /proc/self/root
    Root,
    /// /proc/self/fd/N
    Fd(i32),
}

/// The caller's own magic link that `path` starts with, and the rest of
/// the path after it (without its leading slashes): /proc/self/cwd/x,
/// /proc/thread-self/root/y, /proc/TID/fd/3/z (TID: the caller's own).
/// On Linux the walk jumps to the link's file; the sandbox's /proc is the
/// Sentry's and has no such links, so the Sentry makes the jump.
pub(super) fn magic(path: &[u8], tid: u32) -> Option<(Link, &[u8])> {
    let p = path.strip_prefix(b"/proc/")?;
    let slash = p.iter().position(|&b| b == b'/')?;
    let (who, p) = (&p[..slash], &p[slash + 1..]);
    if who != b"self" && who != b"thread-self" && who != tid.to_string().as_bytes() {
        return None;
    }
    let end = p.iter().position(|&b| b == b'/').unwrap_or(p.len());
    let (name, mut rest) = p.split_at(end);
    let link = match name {
        b"cwd" => Link::Cwd,
        b"root" => Link::Root,
        b"fd" => {
            let rest2 = rest.strip_prefix(b"/")?;
            let end = rest2.iter().position(|&b| b == b'/').unwrap_or(rest2.len());
            let (n, tail) = rest2.split_at(end);
            if n.is_empty() || n.len() > 9 || !n.iter().all(u8::is_ascii_digit) {
                return None;
            }
            rest = tail;
            Link::Fd(std::str::from_utf8(n).ok()?.parse().ok()?)
        }
        _ => return None,
    };
    while let Some(r) = rest.strip_prefix(b"/") {
        rest = r;
    }
    Some((link, rest))
}

/// The answer, if the path names one of the caller's own fds.
fn reopen(c: &Call<'_>, path: u64, flags: u64) -> Option<Reply> {
    let Ok(Some(p)) = c.mem.read_cstr(path, 32) else { return None };
    let fd = alias(&p)?;
    Some(match reopen_fd(c, fd, flags) {
        Ok(r) => r,
        Err(e) => Reply::Error(e),
    })
}

fn reopen_fd(c: &Call<'_>, fd: i32, flags: u64) -> Result<Reply, Errno> {
    let flags = OFlag::from_bits_truncate(i32::try_from(flags & 0xffff_ffff).unwrap_or(0));
    let theirs = c.fds.get(fd)?;
    // a file of the Sentry's own /proc or /sys: its contents are made for
    // whoever opens it, and here that would be the Sentry. The host opens
    // it as the caller (there, fd/N is a plain link to the file's path)
    if crate::fs::fuse::on_fuse(&theirs) {
        return Ok(Reply::Continue);
    }
    // never more access than the fd already gives: the Sentry opens with
    // its own credentials, which must not lend the caller any
    let theirs_flags = OFlag::from_bits_truncate(fcntl(theirs.as_fd(), FcntlArg::F_GETFL)?);
    // an O_PATH fd grants no access at all (F_GETFL calls it O_RDONLY)
    if theirs_flags.contains(OFlag::O_PATH) {
        return Err(Errno::EACCES);
    }
    let had = theirs_flags & OFlag::O_ACCMODE;
    let want = flags & OFlag::O_ACCMODE;
    let allowed = want == had || had == OFlag::O_RDWR;
    // truncating takes write access, whatever the mode asked for
    let truncates = flags.contains(OFlag::O_TRUNC) && had == OFlag::O_RDONLY;
    if !allowed || truncates {
        return Err(Errno::EACCES);
    }
    if flags.contains(OFlag::O_DIRECTORY) {
        return Err(Errno::ENOTDIR);
    }
    let keep = OFlag::O_ACCMODE | OFlag::O_APPEND | OFlag::O_NONBLOCK | OFlag::O_TRUNC | OFlag::O_SYNC;
    let open_flags = (flags & keep) | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    c.fds.reopen_into_caller(theirs, open_flags, flags.contains(OFlag::O_CLOEXEC))
}

#[cfg(test)]
mod tests {
    use super::alias;

    #[test]
    fn names_of_own_fds() {
        assert_eq!(alias(b"/dev/stdin"), Some(0));
        assert_eq!(alias(b"/dev/stderr"), Some(2));
        assert_eq!(alias(b"/dev/fd/63"), Some(63));
        assert_eq!(alias(b"/proc/self/fd/7"), Some(7));
        assert_eq!(alias(b"/proc/thread-self/fd/1"), Some(1));
        assert_eq!(alias(b"/dev/fd/"), None);
        assert_eq!(alias(b"/dev/fd/1/x"), None);
        assert_eq!(alias(b"/dev/fd/-1"), None);
        assert_eq!(alias(b"/proc/1/fd/1"), None);
        assert_eq!(alias(b"/etc/passwd"), None);
        assert_eq!(alias(b"/dev/fd/99999999999"), None);
    }

    #[test]
    fn magic_links_of_the_caller() {
        use super::{magic, Link};
        assert_eq!(magic(b"/proc/self/cwd/a/b", 9), Some((Link::Cwd, &b"a/b"[..])));
        assert_eq!(magic(b"/proc/thread-self/root//etc", 9), Some((Link::Root, &b"etc"[..])));
        assert_eq!(magic(b"/proc/9/fd/12/x", 9), Some((Link::Fd(12), &b"x"[..])));
        assert_eq!(magic(b"/proc/self/cwd", 9), Some((Link::Cwd, &b""[..])));
        assert_eq!(magic(b"/proc/self/fd/3/", 9), Some((Link::Fd(3), &b""[..])));
        assert_eq!(magic(b"/proc/8/cwd/x", 9), None);
        assert_eq!(magic(b"/proc/self/cwdx/y", 9), None);
        assert_eq!(magic(b"/proc/self/fd/", 9), None);
        assert_eq!(magic(b"/proc/self/fd/x1/y", 9), None);
        assert_eq!(magic(b"/proc/self/status", 9), None);
        assert_eq!(magic(b"/etc/passwd", 9), None);
    }

    #[test]
    fn stat_layouts_match_the_kernel() {
        // SAFETY: libc::stat is plain old data; all-zero is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        st.st_ino = 42;
        st.st_mode = libc::S_IFIFO | 0o600;
        st.st_size = 7;
        let b = super::stat_bytes(&st);
        assert_eq!(b.len(), std::mem::size_of::<libc::stat>());
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 42);
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), libc::S_IFIFO | 0o600);
        assert_eq!(i64::from_le_bytes(b[48..56].try_into().unwrap()), 7);
        let x = super::statx_bytes(&st);
        assert_eq!(x.len(), 256);
        assert_eq!(u16::from_le_bytes(x[28..30].try_into().unwrap()) as u32, libc::S_IFIFO | 0o600);
        assert_eq!(u64::from_le_bytes(x[32..40].try_into().unwrap()), 42);
        assert_eq!(u64::from_le_bytes(x[40..48].try_into().unwrap()), 7);
    }
}
