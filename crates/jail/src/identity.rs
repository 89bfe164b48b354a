//! Who the container process runs as: uid, gid, supplementary groups, umask.

use nix::sys::stat::{umask, Mode};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

use crate::{Error, Result};

/// Switches to the spec's user. Capabilities survive through PR_SET_KEEPCAPS,
/// which the caller sets before and the kernel clears on execve.
/// `may_setgroups` is false in a user namespace where setgroups is denied.
pub fn switch(user: &User, may_setgroups: bool) -> Result<()> {
    let gid = Gid::from_raw(user.gid());
    let groups: Vec<Gid> = user.additional_gids().iter().flatten().map(|g| Gid::from_raw(*g)).collect();
    if may_setgroups {
        setgroups(&groups).map_err(|e| Error::sys("setgroups", e))?;
    } else if !groups.is_empty() {
        return Err(Error::Config("process.user.additionalGids: setgroups is denied in this user namespace".into()));
    }
    setresgid(gid, gid, gid).map_err(|e| Error::sys(format!("setresgid {gid}"), e))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).map_err(|e| Error::sys(format!("setresuid {uid}"), e))?;
    if let Some(m) = user.umask() {
        umask(Mode::from_bits_truncate(m));
    }
    Ok(())
}
