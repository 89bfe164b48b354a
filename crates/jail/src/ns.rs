//! Linux namespaces: which ones a container gets new, which it joins by path,
//! and the order in which to enter them.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::{Error, Result};

/// The namespace plan of one container.
#[derive(Debug, Clone)]
pub struct Plan {
    /// namespaces to create (as clone flags)
    pub new: CloneFlags,
    /// namespaces to join, in the order to join them (user first)
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

/// The clone flag of a namespace type.
pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The name of a namespace under /proc/PID/ns.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Every namespace type, in the order an `exec` joins them: user first, so
/// the others are joined with the container's credentials; mount last but
/// one, because joining it changes how later /proc paths resolve.
pub const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

impl Default for Plan {
    fn default() -> Self {
        Plan { new: CloneFlags::empty(), join: Vec::new() }
    }
}

impl Plan {
    /// Builds the plan from the spec's namespace list. Duplicates are an error.
    pub fn from_spec(list: &[LinuxNamespace]) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut seen = CloneFlags::empty();
        for ns in list {
            let f = flag(ns.typ());
            if seen.contains(f) {
                return Err(Error::Config(format!("duplicate namespace type {:?}", ns.typ())));
            }
            seen |= f;
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => plan.join.push((ns.typ(), p.clone())),
                _ => plan.new |= f,
            }
        }
        plan.join.sort_by_key(|(t, _)| JOIN_ORDER.iter().position(|o| o == t));
        Ok(plan)
    }

    /// Whether the container gets (or joins) a namespace of type `t`.
    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(flag(t)) || self.join.iter().any(|(j, _)| *j == t)
    }

    /// Whether a new user namespace is created.
    pub fn new_user(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWUSER)
    }
}

/// Joins the namespace at `path`, checking it is of type `t`.
pub fn join(t: LinuxNamespaceType, path: &Path) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::path("open namespace", path, e))?;
    setns(f.as_fd(), flag(t)).map_err(|e| Error::path("setns", path, e))
}

/// Joins the namespace open as `f` (checking it is of type `t`).
pub fn join_file(t: LinuxNamespaceType, f: &File) -> Result<()> {
    setns(f.as_fd(), flag(t)).map_err(|e| Error::sys(format!("setns {}", proc_name(t)), e))
}

/// A namespace, named by its filesystem identity (nsfs device and inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id(pub u64, pub u64);

impl Id {
    /// The namespace open as `f`.
    pub fn of(f: BorrowedFd<'_>) -> Result<Id> {
        let st = nix::sys::stat::fstat(f).map_err(|e| Error::sys("fstat a namespace", e))?;
        Ok(Id(st.st_dev, st.st_ino))
    }

    /// The namespace at `path` (/proc/PID/ns/TYPE, a bind of one).
    pub fn at(path: &Path) -> Result<Id> {
        let f = File::open(path).map_err(|e| Error::path("open namespace", path, e))?;
        Id::of(f.as_fd())
    }
}

/// Whether `id`, a namespace of type `t`, is the host's: ours, or that of
/// the host's first process where we may see it.
pub fn is_hosts(t: LinuxNamespaceType, id: Id) -> bool {
    ["self", "1"]
        .iter()
        .any(|pid| Id::at(&Path::new("/proc").join(pid).join("ns").join(proc_name(t))).is_ok_and(|h| h == id))
}

/// The user namespace that owns the namespace open as `f`.
pub fn owner(f: BorrowedFd<'_>) -> Result<Id> {
    let owner = crate::sys::ns_owner(f).map_err(|e| Error::sys("find the owner of a namespace", e))?;
    Id::of(owner.as_fd())
}

/// Creates the namespaces in `flags` for the calling process.
pub fn create(flags: CloneFlags) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    unshare(flags).map_err(|e| Error::sys(format!("unshare {flags:?}"), e))
}

/// struct ifreq, as SIOCGIFFLAGS and SIOCSIFFLAGS use it (40 bytes on x86-64).
#[repr(C)]
struct IfFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Brings the loopback interface of the calling process's (new) network
/// namespace up, as runc does: programs expect 127.0.0.1 in a container.
pub fn loopback_up() -> Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("a socket to set up the loopback", e))?;
    let mut req = IfFlags { name: [0; 16], flags: 0, _pad: [0; 22] };
    req.name[..2].copy_from_slice(b"lo");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: both ioctls read and write one struct ifreq, which `req` is
    // (laid out as the kernel's, with room for its union), alive for the call.
    let got = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req as *mut IfFlags) };
    nix::errno::Errno::result(got).map_err(|e| Error::sys("read the loopback's flags", e))?;
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above.
    let set = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req as *const IfFlags) };
    nix::errno::Errno::result(set).map(drop).map_err(|e| Error::sys("bring the loopback up", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(t: LinuxNamespaceType, p: Option<&str>) -> LinuxNamespace {
        let mut n = LinuxNamespace::default();
        n.set_typ(t);
        n.set_path(p.map(PathBuf::from));
        n
    }

    #[test]
    fn plan_splits_new_and_join_and_orders_user_first() {
        let p = Plan::from_spec(&[
            ns(LinuxNamespaceType::Network, Some("/var/run/netns/x")),
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::User, Some("/proc/1/ns/user")),
        ])
        .unwrap();
        assert_eq!(p.new, CloneFlags::CLONE_NEWPID);
        assert_eq!(p.join[0].0, LinuxNamespaceType::User);
        assert!(p.has(LinuxNamespaceType::Network));
        assert!(!p.has(LinuxNamespaceType::Ipc));
    }

    #[test]
    fn duplicate_namespace_is_rejected() {
        let e = Plan::from_spec(&[ns(LinuxNamespaceType::Pid, None), ns(LinuxNamespaceType::Pid, None)]);
        assert!(e.is_err());
    }
}
