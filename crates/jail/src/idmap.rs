//! uid/gid maps of a new user namespace, written by the parent for the child.

use std::fs;
use std::io::ErrorKind;

use nix::unistd::Pid;
use oci_spec::runtime::LinuxIdMapping;

use crate::{Error, Result};

/// Formats mappings the way /proc/PID/uid_map takes them.
pub fn format(maps: &[LinuxIdMapping]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect()
}

/// Writes the uid and gid maps of `pid`'s user namespace.
pub fn write(pid: Pid, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    if !gids.is_empty() {
        let p = format!("/proc/{pid}/gid_map");
        fs::write(&p, format(gids)).map_err(|e| Error::path("write", p, e))?;
    }
    if !uids.is_empty() {
        let p = format!("/proc/{pid}/uid_map");
        fs::write(&p, format(uids)).map_err(|e| Error::path("write", p, e))?;
    }
    Ok(())
}

/// Denies setgroups(2) in `pid`'s user namespace (needed before an
/// unprivileged writer may set a gid map).
pub fn deny_setgroups(pid: Pid) -> Result<()> {
    let p = format!("/proc/{pid}/setgroups");
    match fs::write(&p, "deny") {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::path("write", p, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_one_line_per_mapping() {
        let m = oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(100000u32)
            .size(65536u32)
            .build()
            .unwrap();
        assert_eq!(format(&[m]), "0 100000 65536\n");
    }
}
