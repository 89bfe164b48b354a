//! `pause` and `resume`: the cgroup freezer.

use moat_jail::cgroups::Manager;

use crate::state::{Container, Status};
use crate::{Error, Global, Result};

fn manager(c: &Container) -> Result<Manager> {
    let loc = c.saved()?.cgroup.clone().ok_or_else(|| Error::BadState("container has no cgroup".into()))?;
    Ok(Manager::from_location(loc))
}

/// Freezes every process of a running container.
pub fn pause(g: &Global, id: &str) -> Result<()> {
    let c = Container::open(&g.root, id)?;
    match c.status() {
        Status::Running | Status::Created => Ok(manager(&c)?.set_frozen(true)?),
        Status::Paused => Err(Error::BadState("container already paused".into())),
        _ => Err(Error::BadState("container not running".into())),
    }
}

/// Thaws a paused container.
pub fn resume(g: &Global, id: &str) -> Result<()> {
    let c = Container::open(&g.root, id)?;
    match c.status() {
        Status::Paused => Ok(manager(&c)?.set_frozen(false)?),
        _ => Err(Error::BadState("container not paused".into())),
    }
}
