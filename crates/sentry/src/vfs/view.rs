//! Telling the stubs' view (the gofer's, `--directfs=false`) what a job
//! changed in the real tree, so that what the kernel keeps of that view
//! (names, missing names, attributes: [`crate::fs::gofer`]) stays true.
//!
//! Before a job runs, each name it may change is found ([`Tree::touching`]):
//! the directory it lies in, as an fd of the tree, and the files it names
//! then (an unlink's or a rename's victim loses a link). After the job
//! ([`Tree::touched`]) the view forgets the name in that directory, the
//! directory's attributes, and the attributes of the files named before and
//! after. Files are known to the view by their qid path
//! ([`moat_gofer::server::path_of`]), which the gofer derives from the same
//! device and inode numbers.
//!
//! The view shows every file on its own device (a FUSE mount's); a file
//! the Sentry opened in the tree for a stub (for writing) is a real file of
//! the real device. An fstat of it is answered with the view's device
//! ([`Tree::as_viewed`]), so that it and a stat of its path agree (GNU tar
//! compares the two).
//!
//! Not followed: a path that a caller in a chroot of its own resolves
//! through an absolute symlink (found from the container's root instead).

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};

use super::{creds, Tree};

/// The stubs' view of the tree, as the Sentry knows it.
#[derive(Debug)]
pub struct View {
    /// where changes are told
    cache: crate::fs::gofer::Cache,
    /// the devices of the files it shows (the root's, the spec's mounts')
    devices: HashSet<u64>,
    /// its own device, once a stub's root showed it
    device: OnceLock<u64>,
}

impl View {
    /// The view served by the session `cache` tells, showing the files of `devices`.
    pub fn new(cache: crate::fs::gofer::Cache, devices: HashSet<u64>) -> View {
        View { cache, devices, device: OnceLock::new() }
    }
}

/// A name a job may change, found before it runs.
#[derive(Debug)]
pub struct Touched {
    /// the directory it lies in, in the tree
    dir: OwnedFd,
    /// its last component; None where the path names a directory by "."
    /// or ".." (its own attributes change)
    name: Option<CString>,
    /// the qid paths of the files it named before the job
    before: Vec<u64>,
}

fn qid(st: &FileStat) -> u64 {
    moat_gofer::server::path_of(st.st_dev, st.st_ino)
}

/// The directory part and the last component of `path` (made relative:
/// an absolute path's start is the caller's to give); None for the last
/// component where it is "." or "..".
fn split(path: &[u8]) -> (&[u8], Option<&[u8]>) {
    let trimmed = {
        let end = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        &path[..end]
    };
    let rel = {
        let start = trimmed.iter().position(|&b| b != b'/').unwrap_or(trimmed.len());
        &trimmed[start..]
    };
    if rel.is_empty() {
        // "/" or "": the start itself
        return (b".", None);
    }
    let (dir, name) = match rel.iter().rposition(|&b| b == b'/') {
        Some(cut) => (&rel[..cut], &rel[cut + 1..]),
        None => (&b"."[..], rel),
    };
    match name {
        b"." | b".." => (rel, None),
        _ => (dir, Some(name)),
    }
}

/// The qid paths of what `name` in `dir` is: the link itself and what it
/// leads to.
fn named(dir: &OwnedFd, name: &CString) -> Vec<u64> {
    let mut qids = Vec::with_capacity(2);
    for flags in [AtFlags::AT_SYMLINK_NOFOLLOW, AtFlags::empty()] {
        if let Ok(st) = fstatat(dir, name.as_c_str(), flags) {
            if !qids.contains(&qid(&st)) {
                qids.push(qid(&st));
            }
        }
    }
    qids
}

impl Tree {
    /// Whether jobs are to be told to a view ([`Tree::touching`]).
    pub fn telling(&self) -> bool {
        self.view.is_some()
    }

    /// Finds the name `path` a job is about to change, relative to `start`
    /// (for an absolute path: the tree's root, or the caller's own). None
    /// without a view, or where the directory does not resolve (then the
    /// job changes nothing there).
    pub fn touching(&self, start: BorrowedFd<'_>, path: &[u8]) -> Option<Touched> {
        self.view.as_ref()?;
        let (dir, name) = split(path);
        let dir: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(dir);
        // whatever directories the caller may search
        let dir = creds::raised(creds::CAP_DAC_READ_SEARCH, || {
            nix::fcntl::openat(start, dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        })
        .ok()?
        .ok()?;
        let name = match name {
            Some(n) => Some(CString::new(n).ok()?),
            None => None,
        };
        let before = name.as_ref().map(|n| named(&dir, n)).unwrap_or_default();
        Some(Touched { dir, name, before })
    }

    /// Tells the view what a job changed at each of `touched`.
    pub fn touched(&self, touched: Vec<Touched>) {
        let Some(view) = self.view.as_ref().map(|v| &v.cache) else { return };
        for t in touched {
            let Ok(dir) = fstat(t.dir.as_fd()) else { continue };
            match &t.name {
                Some(name) => {
                    view.name_changed(qid(&dir), name.as_bytes());
                    for q in named(&t.dir, name).into_iter().chain(t.before) {
                        view.inode_changed(q);
                    }
                }
                None => view.inode_changed(qid(&dir)),
            }
        }
    }

    /// Tells the view a job opened the file whose fstat is `st` for
    /// writing (or made it): a stub may change it through that file, unseen.
    pub fn opened_for_writing(&self, st: &FileStat) {
        if let Some(view) = &self.view {
            view.cache.opened_for_writing(qid(st));
        }
    }

    /// `st`, the fstat of a caller's file, as a stat of its path in the
    /// view would show it: with the view's device, for a file of the tree
    /// (one of the devices it shows) that is not the view's own. `root`: a
    /// caller's root, which lies in the view. False where nothing changed.
    pub fn as_viewed(&self, st: &mut FileStat, root: impl FnOnce() -> Option<OwnedFd>) -> bool {
        let Some(view) = &self.view else { return false };
        if !view.devices.contains(&st.st_dev) {
            return false;
        }
        let device = match view.device.get() {
            Some(d) => *d,
            None => {
                let Some(root) = root().filter(crate::fs::fuse::on_fuse) else { return false };
                let Ok(at) = fstat(root.as_fd()) else { return false };
                *view.device.get_or_init(|| at.st_dev)
            }
        };
        if st.st_dev == device {
            return false;
        }
        st.st_dev = device;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_path_into_its_directory_and_last_name() {
        let s = |p: &[u8]| {
            let (d, n) = split(p);
            (String::from_utf8_lossy(d).into_owned(), n.map(|n| String::from_utf8_lossy(n).into_owned()))
        };
        let want = |d: &str, n: Option<&str>| (d.to_string(), n.map(str::to_string));
        assert_eq!(s(b"a/b/c"), want("a/b", Some("c")));
        assert_eq!(s(b"/etc/passwd"), want("etc", Some("passwd")));
        assert_eq!(s(b"/x"), want(".", Some("x")));
        assert_eq!(s(b"x"), want(".", Some("x")));
        assert_eq!(s(b"dir//"), want(".", Some("dir")));
        assert_eq!(s(b"a//b"), want("a/", Some("b")));
        assert_eq!(s(b"a/.."), want("a/..", None));
        assert_eq!(s(b"/"), want(".", None));
        assert_eq!(s(b"."), want(".", None));
    }
}
