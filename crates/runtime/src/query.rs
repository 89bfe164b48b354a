//! Read-only verbs: `state`, `list`, `ps` and the stats behind `events`.

use moat_jail::cgroups::{Manager, Stats};
use nix::unistd::Pid;
use serde::Serialize;

use crate::state::{list_ids, Container, OciState};
use crate::{Global, Result};

/// The OCI state of one container.
pub fn state(g: &Global, id: &str) -> Result<OciState> {
    Container::open(&g.root, id)?.oci_state()
}

/// Every container under the root (ones that vanish meanwhile are skipped).
pub fn list(g: &Global) -> Vec<OciState> {
    list_ids(&g.root).iter().filter_map(|id| Container::open(&g.root, id).ok()?.oci_state().ok()).collect()
}

/// The host pids of every process in the container's cgroup.
pub fn pids(g: &Global, id: &str) -> Result<Vec<Pid>> {
    let c = Container::open(&g.root, id)?;
    let Some(loc) = c.saved()?.cgroup.clone() else { return Ok(Vec::new()) };
    Ok(Manager::from_location(loc).pids()?)
}

/// One `events` record.
#[derive(Debug, Serialize)]
pub struct Event {
    /// "stats"
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// container id
    pub id: String,
    /// the figures
    pub data: Stats,
}

/// Resource usage of a container.
pub fn stats(g: &Global, id: &str) -> Result<Event> {
    let c = Container::open(&g.root, id)?;
    let data = c.saved()?.cgroup.clone().map(|l| Manager::from_location(l).stats()).unwrap_or_default();
    Ok(Event { kind: "stats", id: id.into(), data })
}

/// Applies new resource limits to a live container (`update`).
pub fn update(g: &Global, id: &str, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let c = Container::open(&g.root, id)?;
    let Some(loc) = c.saved()?.cgroup.clone() else {
        return Err(crate::Error::BadState("container has no cgroup".into()));
    };
    Ok(Manager::from_location(loc).apply(r)?)
}
