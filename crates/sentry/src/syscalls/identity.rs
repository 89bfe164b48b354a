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

/// Serves sethostname(2): changes the sandbox's hostname only.
pub fn sethostname(c: &Call<'_>) -> Reply {
    match read_name(c) {
        Ok(h) => {
            c.kernel.set_hostname(h);
            Reply::Value(0)
        }
        Err(e) => Reply::Error(e),
    }
}

/// Serves setdomainname(2): accepted and ignored (the sandbox keeps "(none)").
pub fn setdomainname(c: &Call<'_>) -> Reply {
    match read_name(c) {
        Ok(_) => Reply::Value(0),
        Err(e) => Reply::Error(e),
    }
}

/// Serves sync(2): a no-op. The host's filesystems are not the sandbox's
/// to flush; files written through held fds are the host's page cache.
pub fn sync(_: &Call<'_>) -> Reply {
    Reply::Value(0)
}
