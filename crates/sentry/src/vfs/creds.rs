//! Acting as the caller: the Sentry performs a stub's file calls on the
//! notify thread with the caller's file-system credentials — fsuid, fsgid,
//! supplementary groups, the file capabilities it holds, its umask — so the
//! host kernel makes every permission decision exactly as it would for the
//! caller (ownership of new files, setgid directories, sticky bits, ACLs).
//!
//! Credentials are per thread in Linux; the raw system calls used here
//! change only the calling thread's (glibc's setgroups would change every
//! thread's). The umask belongs to the thread's fs_struct, which the notify
//! thread unshared when it entered the container's tree (see [`super`]).

use nix::errno::Errno;

/// Capabilities that bear on file calls, the only ones the Sentry lends:
/// CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID, MKNOD,
/// LINUX_IMMUTABLE, SETFCAP (security.capability xattrs: setcap).
pub const FILE_CAPS: u64 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 27) | (1 << 9) | (1 << 31);

/// A caller's credentials for file calls, read from /proc/TID/status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    /// file-system uid (as the Sentry's user namespace numbers it)
    pub fsuid: u32,
    /// file-system gid
    pub fsgid: u32,
    /// supplementary groups
    pub groups: Vec<u32>,
    /// effective capabilities
    pub cap_eff: u64,
    /// the file mode creation mask
    pub umask: u32,
    /// real uid and gid (access(2) checks with them)
    pub real: (u32, u32),
    /// permitted capabilities (access(2) by root checks with them)
    pub cap_prm: u64,
}

impl Creds {
    /// Parses a /proc/TID/status text.
    pub fn parse(status: &str) -> Option<Creds> {
        let field = |key: &str| crate::fs::proxy::field(status, key).map(str::trim);
        let nth = |key: &str, n: usize| field(key)?.split_whitespace().nth(n)?.parse::<u32>().ok();
        let fourth = |key: &str| nth(key, 3);
        let first = |key: &str| nth(key, 0);
        let groups = field("Groups:")?.split_whitespace().map(|g| g.parse::<u32>().ok()).collect::<Option<Vec<_>>>()?;
        Some(Creds {
            fsuid: fourth("Uid:")?,
            fsgid: fourth("Gid:")?,
            groups,
            cap_eff: u64::from_str_radix(field("CapEff:")?, 16).ok()?,
            umask: u32::from_str_radix(field("Umask:")?, 8).ok()?,
            real: (first("Uid:")?, first("Gid:")?),
            cap_prm: u64::from_str_radix(field("CapPrm:")?, 16).ok()?,
        })
    }

    /// The credentials access(2) checks with: the real ids as file ids,
    /// and capabilities only for a real root (its permitted set), as Linux does.
    pub fn for_access(self) -> Creds {
        let cap_eff = if self.real.0 == 0 { self.cap_prm } else { 0 };
        Creds { fsuid: self.real.0, fsgid: self.real.1, cap_eff, ..self }
    }
}

/// _LINUX_CAPABILITY_VERSION_3
const CAP_V3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The notify thread's own capability sets (effective, permitted, inheritable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

fn check(r: libc::c_long) -> Result<libc::c_long, Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// capget(2) of the calling thread.
pub fn caps() -> Result<Caps, Errno> {
    let mut h = CapHeader { version: CAP_V3, pid: 0 };
    let mut d = [CapData::default(); 2];
    // SAFETY: the header and the two data structs are live, correctly laid
    // out (repr(C)) and writable for the duration of the call.
    check(unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) })?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(Caps {
        effective: join(d[0].effective, d[1].effective),
        permitted: join(d[0].permitted, d[1].permitted),
        inheritable: join(d[0].inheritable, d[1].inheritable),
    })
}

/// capset(2) of the calling thread only.
fn set_caps(c: Caps) -> Result<(), Errno> {
    let mut h = CapHeader { version: CAP_V3, pid: 0 };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e0, e1) = split(c.effective);
    let (p0, p1) = split(c.permitted);
    let (i0, i1) = split(c.inheritable);
    let d = [
        CapData { effective: e0, permitted: p0, inheritable: i0 },
        CapData { effective: e1, permitted: p1, inheritable: i1 },
    ];
    // SAFETY: header and data are live and repr(C); the kernel only reads
    // the data and may write the header's version.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) }).map(|_| ())
}

/// setgroups(2) of the calling thread only (the raw call, not glibc's).
fn set_groups(groups: &[u32]) -> Result<(), Errno> {
    // SAFETY: the slice is live for the call; the kernel reads len gids.
    check(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }).map(|_| ())
}

/// setfsuid/setfsgid of the calling thread, checked (they report the old id,
/// never an error: asking for an invalid id after reads the current one).
/// Switches the calling thread's file-system gid, then uid (checked).
pub(crate) fn set_fs_ids(fsuid: u32, fsgid: u32) -> Result<(), Errno> {
    set_fs_id(libc::SYS_setfsgid, fsgid)?;
    set_fs_id(libc::SYS_setfsuid, fsuid)
}

fn set_fs_id(nr: libc::c_long, id: u32) -> Result<(), Errno> {
    // SAFETY: setfsuid/setfsgid take an id by value, no memory.
    unsafe { libc::syscall(nr, id) };
    // SAFETY: as above; u32::MAX is never a valid id, so nothing changes.
    let now = unsafe { libc::syscall(nr, u32::MAX) };
    if now == libc::c_long::from(id) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// umask(2): sets the mask of the calling thread's fs_struct, returns the old one.
fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask takes a mode by value and cannot fail.
    unsafe { libc::syscall(libc::SYS_umask, mask) as u32 }
}

/// CAP_SETGID and CAP_SETUID: raised only while switching ids.
const ID_CAPS: u64 = (1 << 6) | (1 << 7);

/// CAP_SYS_CHROOT
pub const CAP_SYS_CHROOT: u64 = 1 << 18;
/// CAP_DAC_READ_SEARCH, as a bit
pub const CAP_DAC_READ_SEARCH: u64 = 1 << 2;

/// Runs `f` with `extra` capabilities (of the permitted set) raised in the
/// calling thread's effective set, then lowers them again.
pub fn raised<T>(extra: u64, f: impl FnOnce() -> T) -> Result<T, Errno> {
    let before = caps()?;
    set_caps(Caps { effective: before.effective | (extra & before.permitted), ..before })?;
    let r = f();
    set_caps(before)?;
    Ok(r)
}

/// The notify thread as it is between calls: restored by [`AsCaller`]'s drop.
#[derive(Debug, Clone)]
pub struct Home {
    caps: Caps,
    groups: Vec<u32>,
    fsuid: u32,
    fsgid: u32,
}

impl Home {
    /// Its capabilities with `extra` (of the permitted set) effective too.
    fn with(&self, extra: u64) -> Caps {
        Caps { effective: self.caps.effective | (extra & self.caps.permitted), ..self.caps }
    }

    /// The calling thread's current credentials.
    pub fn current() -> Result<Home, Errno> {
        let n = nix::unistd::getgroups().map_err(|_| Errno::EPERM)?;
        Ok(Home {
            caps: caps()?,
            groups: n.into_iter().map(|g| g.as_raw()).collect(),
            fsuid: nix::unistd::geteuid().as_raw(),
            fsgid: nix::unistd::getegid().as_raw(),
        })
    }
}

/// While alive, the calling thread acts with a caller's credentials.
pub struct AsCaller<'a> {
    home: &'a Home,
    umask: u32,
    /// whether the ids changed (not when the caller's equal the thread's own)
    ids: bool,
}

impl<'a> AsCaller<'a> {
    /// Switches the calling thread to `c` (its file capabilities limited to
    /// what the thread itself holds). On failure the thread is restored.
    pub fn switch(home: &'a Home, c: &Creds) -> Result<AsCaller<'a>, Errno> {
        let ids = (c.fsuid, c.fsgid, &c.groups) != (home.fsuid, home.fsgid, &home.groups);
        let guard = AsCaller { home, umask: set_umask(c.umask & 0o777), ids };
        if ids {
            set_caps(home.with(ID_CAPS))?;
            set_groups(&c.groups)?;
            set_fs_ids(c.fsuid, c.fsgid)?;
        }
        let effective = c.cap_eff & FILE_CAPS & home.caps.permitted;
        set_caps(Caps { effective, ..home.caps })?;
        Ok(guard)
    }
}

impl Drop for AsCaller<'_> {
    fn drop(&mut self) {
        // the thread's own capabilities first (changing ids takes
        // CAP_SETUID/CAP_SETGID), and again last: going back to fsuid 0
        // raises the file capabilities the kernel dropped
        let restored = if self.ids {
            set_caps(self.home.with(ID_CAPS))
                .and_then(|_| set_fs_id(libc::SYS_setfsuid, self.home.fsuid))
                .and_then(|_| set_fs_id(libc::SYS_setfsgid, self.home.fsgid))
                .and_then(|_| set_groups(&self.home.groups))
                .and_then(|_| set_caps(self.home.caps))
        } else {
            set_caps(self.home.caps)
        };
        set_umask(self.umask);
        if let Err(e) = restored {
            // the thread would go on serving with a caller's identity
            tracing::error!("sentry: cannot restore its own credentials ({e}); ending");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status() {
        let s = "Name:\tsh\nUmask:\t0027\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\n\
                 Groups:\t4 24 27 \nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n";
        let c = Creds::parse(s).unwrap();
        assert_eq!((c.fsuid, c.fsgid, c.umask), (1003, 8, 0o027));
        assert_eq!(c.groups, vec![4, 24, 27]);
        assert_eq!(c.cap_eff, 0xa80425fb);
        assert_eq!(c.real, (1000, 5));
        let a = c.for_access();
        assert_eq!((a.fsuid, a.fsgid, a.cap_eff), (1000, 5, 0));
        let none = "Umask:\t0022\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nCapPrm:\t0\nCapEff:\t0\n";
        assert_eq!(Creds::parse(none).unwrap().groups, Vec::<u32>::new());
        assert!(Creds::parse("Uid:\t0\n").is_none());
    }

    #[test]
    fn switches_one_thread_only_and_back() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        // on a thread of its own: the test harness's threads are not ours to change
        std::thread::spawn(|| {
            let home = Home::current().unwrap();
            let before = caps().unwrap();
            {
                let c = Creds {
                    fsuid: 1234,
                    fsgid: 4321,
                    groups: vec![7],
                    cap_eff: 0,
                    umask: 0o077,
                    real: (1234, 4321),
                    cap_prm: 0,
                };
                let _g = AsCaller::switch(&home, &c).unwrap();
                // SAFETY: reads the current fsuid; u32::MAX changes nothing.
                assert_eq!(unsafe { libc::syscall(libc::SYS_setfsuid, u32::MAX) }, 1234);
                assert_eq!(caps().unwrap().effective, 0);
            }
            assert_eq!(caps().unwrap(), before);
            // SAFETY: as above.
            assert_eq!(unsafe { libc::syscall(libc::SYS_setfsuid, u32::MAX) }, 0);
        })
        .join()
        .unwrap();
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    #[test]
    #[ignore]
    fn cost_of_a_switch() {
        std::thread::spawn(|| {
            let home = Home::current().unwrap();
            let c = Creds {
                fsuid: 0,
                fsgid: 0,
                groups: vec![],
                cap_eff: FILE_CAPS,
                umask: 0o022,
                real: (0, 0),
                cap_prm: 0,
            };
            let n = 20000;
            let t = std::time::Instant::now();
            for _ in 0..n {
                let _g = AsCaller::switch(&home, &c).unwrap();
            }
            eprintln!("switch+restore: {:?}", t.elapsed() / n);
            let t = std::time::Instant::now();
            for _ in 0..n {
                let _ = std::fs::read_to_string("/proc/self/status").unwrap();
            }
            eprintln!("status read: {:?}", t.elapsed() / n);
            let t = std::time::Instant::now();
            for _ in 0..n {
                let _ = std::fs::read_link("/proc/self/cwd").unwrap();
            }
            eprintln!("readlink cwd: {:?}", t.elapsed() / n);
        })
        .join()
        .unwrap();
    }
}
