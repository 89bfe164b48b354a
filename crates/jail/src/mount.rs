//! One OCI mount: its options parsed into flags, and the mount done inside
//! the container's root.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use crate::{securejoin, sys, Error, Result};

/// A mount's options, split the way mount(2) wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// flags for the first mount call
    pub flags: MsFlags,
    /// flags that clear defaults (e.g. `rw`, `suid`): kept for remounts
    pub clear: MsFlags,
    /// propagation changes, applied after the mount
    pub propagation: Vec<MsFlags>,
    /// filesystem-specific data (`size=65536k,mode=755`)
    pub data: String,
    /// `rro`: make the mount and everything below it read-only
    pub recursive_ro: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
            recursive_ro: false,
        }
    }
}

impl Options {
    /// Whether this is a bind mount.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Parses OCI/fstab-style mount options. Unknown words go to the data string.
pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in opts {
        let (set, clear): (MsFlags, MsFlags) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "rro" => {
                o.recursive_ro = true;
                (MsFlags::empty(), MsFlags::empty())
            }
            // runc and crun accept these and do nothing with them here
            "tmpcopyup" | "rrw" => (MsFlags::empty(), MsFlags::empty()),
            p => {
                if let Some(f) = propagation_flag(p) {
                    o.propagation.push(f);
                } else {
                    data.push(p);
                }
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.clear |= clear;
    }
    o.data = data.join(",");
    o
}

/// The propagation flags for a word like `rslave`, if it is one.
pub fn propagation_flag(word: &str) -> Option<MsFlags> {
    Some(match word {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// A mount target held open: `path` is `/proc/self/fd/N`, which names the
/// directory that was checked to lie inside the rootfs, whatever happens to
/// the path meanwhile (a container sharing a volume could swap a symlink in:
/// the CVE-2021-30465 class).
pub(crate) struct Pinned {
    _fd: std::os::fd::OwnedFd,
    /// `/proc/self/fd/N`
    pub(crate) path: PathBuf,
    /// where it lies on the host (checked to be inside the rootfs)
    pub(crate) real: PathBuf,
}

pub(crate) fn pin(rootfs: &Path, dest: &Path) -> Result<Pinned> {
    use nix::fcntl::{open, OFlag};
    let fd = open(dest, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .map_err(|e| Error::path("open mount target", dest, e))?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)));
    let real = fs::read_link(&path).map_err(|e| Error::path("resolve mount target", dest, e))?;
    let root = fs::canonicalize(rootfs).map_err(|e| Error::path("resolve rootfs", rootfs, e))?;
    if !real.starts_with(&root) {
        return Err(Error::Config(format!(
            "mount target {} escapes the rootfs (now {})",
            dest.display(),
            real.display()
        )));
    }
    Ok(Pinned { _fd: fd, path, real })
}

/// Mounts one spec mount under `rootfs` (not yet pivoted into). Returns
/// the host path it was mounted on.
pub fn mount_into(rootfs: &Path, m: &Mount) -> Result<PathBuf> {
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = securejoin::join(rootfs, m.destination())?;
    let bind = opts.is_bind() || typ == "bind";
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    if bind {
        let meta = fs::metadata(&source).map_err(|e| Error::path("stat mount source", &source, e))?;
        make_target(&dest, meta.is_dir())?;
        let target = pin(rootfs, &dest)?;
        let rec = opts.flags & MsFlags::MS_REC;
        mount(Some(&source), &target.path, None::<&str>, MsFlags::MS_BIND | rec, None::<&str>)
            .map_err(|e| Error::path("bind mount", &dest, e))?;
    } else if typ == "cgroup" {
        make_target(&dest, true)?;
        crate::cgroups::mount::mount_cgroupfs(rootfs, &dest, &opts)?;
    } else {
        make_target(&dest, true)?;
        let target = pin(rootfs, &dest)?;
        let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
        let r = mount(Some(&source), &target.path, Some(typ), opts.flags, data);
        if let Err(e) = r {
            // In a user namespace without its own network namespace the
            // kernel refuses a new sysfs; runc falls back to a bind of /sys.
            if typ == "sysfs" && e == nix::errno::Errno::EPERM {
                mount(Some("/sys"), &target.path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                    .map_err(|e| Error::path("bind mount /sys", &dest, e))?;
                let top = pin(rootfs, &dest)?;
                remount_bind(&top.path, opts.flags)?;
            } else {
                return Err(Error::path("mount", &dest, e));
            }
        }
    }
    // re-pin: the new mount now sits on the path; flags and propagation go to it
    let top = pin(rootfs, &dest)?;
    if bind {
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            remount_bind(&top.path, extra)?;
        }
    }
    for p in &opts.propagation {
        mount(None::<&str>, &top.path, None::<&str>, *p, None::<&str>)
            .map_err(|e| Error::path("set propagation", &dest, e))?;
    }
    if opts.recursive_ro {
        sys::mount_setattr_rdonly(&top.path, true).map_err(|e| Error::path("make read-only", &dest, e))?;
    }
    Ok(dest)
}

/// Remounts a bind mount with `flags`, keeping the locked flags (nosuid,
/// nodev, noexec, atime) it already has, which a user namespace may not clear.
pub fn remount_bind(dest: &Path, flags: MsFlags) -> Result<()> {
    let locked = locked_flags(dest);
    let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked;
    match mount(None::<&str>, dest, None::<&str>, f, None::<&str>) {
        // inside a user namespace, a mount that came from the host's keeps
        // its atime mode locked: the rest of the flags still apply (crun
        // does the same)
        Err(nix::errno::Errno::EPERM) if flags.intersects(ATIME) => {
            let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | (flags - ATIME) | locked;
            mount(None::<&str>, dest, None::<&str>, f, None::<&str>).map_err(|e| Error::path("remount", dest, e))
        }
        r => r.map_err(|e| Error::path("remount", dest, e)),
    }
}

/// The flags that choose how access times are kept.
const ATIME: MsFlags =
    MsFlags::MS_STRICTATIME.union(MsFlags::MS_NOATIME).union(MsFlags::MS_RELATIME).union(MsFlags::MS_NODIRATIME);

/// The mount flags of the mount at `path` that a remount must keep.
pub fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(path) else { return MsFlags::empty() };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(s) {
            out |= m;
        }
    }
    out
}

/// Creates a mount point: a directory, or an empty file for a file bind.
pub fn make_target(dest: &Path, dir: bool) -> Result<()> {
    if dir {
        return fs::create_dir_all(dest).map_err(|e| Error::path("mkdir", dest, e));
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::path("mkdir", parent, e))?;
    }
    if !dest.exists() {
        fs::File::create(dest).map_err(|e| Error::path("create mount point", dest, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o = parse_options(&s(&["rbind", "ro", "nosuid", "rslave", "mode=755", "size=65536k"]));
        assert!(o.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, "mode=755,size=65536k");
    }

    #[test]
    fn later_option_wins() {
        let o = parse_options(&s(&["ro", "rw"]));
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
    }
}

/// One line of /proc/PID/mountinfo (see proc_pid_mountinfo(5)).
#[derive(Debug, Clone)]
pub struct MountInfo {
    /// the mount's id
    pub id: u32,
    /// its parent's id
    pub parent: u32,
    /// its mount point, escapes undone
    pub point: String,
    /// its per-mount options (rw, nosuid, idmapped…)
    pub options: String,
    /// the filesystem's type
    pub fstype: String,
    /// the filesystem's own options
    pub super_options: String,
}

/// Every mount in `text` (mountinfo's format), in its order: a mount
/// stacked on another comes after it.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            // the optional fields end at " - "
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountInfo {
                id: f.first()?.parse().ok()?,
                parent: f.get(1)?.parse().ok()?,
                point: unescape(f.get(4)?),
                options: f.get(5)?.to_string(),
                fstype: r.first()?.to_string(),
                super_options: r.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// This process's mounts.
pub fn mountinfo() -> Result<Vec<MountInfo>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::path("read", "/proc/self/mountinfo", e))?;
    Ok(parse_mountinfo(&text))
}

/// A mount point as /proc/PID/mountinfo writes it, with its octal escapes
/// (`\040` for a space, and tab, newline, backslash) undone.
pub fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod unescape_tests {
    #[test]
    fn undoes_mountinfo_escapes() {
        assert_eq!(super::unescape(r"/tmp/a\040b\134c"), r"/tmp/a b\c");
        assert_eq!(super::unescape("/plain"), "/plain");
        assert_eq!(super::unescape(r"/odd\04"), r"/odd\04");
    }
}
