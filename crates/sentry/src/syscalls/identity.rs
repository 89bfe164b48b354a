//! The sandbox's identity: uname, hostname, domain name, dmesg.

use nix::errno::Errno;

use super::{Call, Reply};
use crate::abi::{syslog as sl, UTSNAME_FIELD};

fn field(s: &str) -> [u8; UTSNAME_FIELD] {
    let mut f = [0u8; UTSNAME_FIELD];
    let b = s.as_bytes();
    let n = b.len().min(UTSNAME_FIELD - 1);
    f[..n].copy_from_slice(&b[..n]);
    f
}

/// Serves uname(2): the sandbox kernel's release and version, the sandbox
/// hostname. Differs from Linux: the release names moat, not the host.
pub fn uname(c: &Call<'_>) -> Reply {
    let mut buf = Vec::with_capacity(UTSNAME_FIELD * 6);
    for s in [
        "Linux",
        &c.kernel.hostname(),
        crate::kernel::RELEASE,
        crate::kernel::VERSION,
        "x86_64",
        &c.kernel.domainname(),
    ] {
        buf.extend_from_slice(&field(s));
    }
    match c.mem.write(c.args[0], &buf) {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Error(e),
    }
}

/// Serves syslog(2) (dmesg): reads the sandbox's own boot log; never the
/// host's, and clearing is a no-op.
pub fn syslog(c: &Call<'_>) -> Reply {
    let log = c.kernel.boot_log().as_bytes();
    let len = i64::try_from(log.len()).unwrap_or(i64::MAX);
    match i32::try_from(c.args[0]).unwrap_or(-1) {
        sl::READ_ALL | sl::READ_CLEAR => {
            let want = usize::try_from(c.args[2]).unwrap_or(0).min(log.len());
            match c.mem.write(c.args[1], &log[..want]) {
                Ok(()) => Reply::Value(i64::try_from(want).unwrap_or(0)),
                Err(e) => Reply::Error(e),
            }
        }
        sl::SIZE_UNREAD | sl::SIZE_BUFFER => Reply::Value(len),
        // open/close/console-level actions: accepted, nothing to do
        0 | 1 | 5..=8 => Reply::Value(0),
        _ => Reply::Error(Errno::EINVAL),
    }
}

fn read_name(c: &Call<'_>) -> Result<String, Errno> {
    let len = usize::try_from(c.args[1]).map_err(|_| Errno::EINVAL)?;
    if len >= UTSNAME_FIELD {
        return Err(Errno::EINVAL);
    }
    let mut buf = vec![0u8; len];
    c.mem.read(c.args[0], &mut buf)?;
    String::from_utf8(buf).map_err(|_| Errno::EINVAL)
}

/// Serves sethostname(2): changes the sandbox's hostname only. As on
/// Linux, the caller needs CAP_SYS_ADMIN.
pub fn sethostname(c: &Call<'_>) -> Reply {
    set_name(c, |k, n| k.set_hostname(n))
}

/// Serves setdomainname(2): changes the sandbox's NIS domain name only.
pub fn setdomainname(c: &Call<'_>) -> Reply {
    set_name(c, |k, n| k.set_domainname(n))
}

fn set_name(c: &Call<'_>, set: impl FnOnce(&crate::kernel::Kernel, String)) -> Reply {
    if !c.task.capable(super::CAP_SYS_ADMIN) {
        return Reply::Error(Errno::EPERM);
    }
    match read_name(c) {
        Ok(n) => {
            set(c.kernel, n);
            Reply::Value(0)
        }
        Err(e) => Reply::Error(e),
    }
}

/// Serves sync(2): a no-op. The host's filesystems are not the sandbox's
/// to flush; files written through held fds are the host's page cache.
pub fn sync(_: &Call<'_>) -> Reply {
    Reply::Value(0)
}

/// Serves sysinfo(2): the sandbox's own uptime, no host load averages or
/// process count; memory within the container's limit (as /proc/meminfo
/// says), the host's where there is none. Differs from Linux: loads are 0,
/// procs is 1.
pub fn sysinfo(c: &Call<'_>) -> Reply {
    let host = nix::sys::sysinfo::sysinfo().ok();
    let mut ram = host.as_ref().map(|h| h.ram_total()).unwrap_or(0);
    let mut free = host.as_ref().map(|h| h.ram_unused()).unwrap_or(0);
    // within the container's memory limit, as /proc/meminfo says
    if let Some(limit) = c.kernel.memory_limit {
        ram = ram.min(limit);
        free = free.min(ram.saturating_sub(c.kernel.memory_used().unwrap_or(0)));
    }
    let swap = host.as_ref().map(|h| h.swap_total()).unwrap_or(0);
    let swap_free = host.as_ref().map(|h| h.swap_free()).unwrap_or(0);
    // struct sysinfo on x86-64: 112 bytes
    let mut b = [0u8; 112];
    let put = |b: &mut [u8; 112], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    put(&mut b, 0, c.kernel.uptime());
    put(&mut b, 32, ram);
    put(&mut b, 40, free);
    put(&mut b, 64, swap);
    put(&mut b, 72, swap_free);
    b[80..82].copy_from_slice(&1u16.to_ne_bytes());
    b[104..108].copy_from_slice(&1u32.to_ne_bytes());
    match c.mem.write(c.args[0], &b) {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Error(e),
    }
}
