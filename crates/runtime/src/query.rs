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

/// The host pids of the container's processes: everything in its cgroup
/// but moat's own helpers (a sentry sandbox's Sentry and watchdog, which
/// live in its cgroup so their memory counts and `delete` ends them).
pub fn pids(g: &Global, id: &str) -> Result<Vec<Pid>> {
    let c = Container::open(&g.root, id)?;
    let Some(loc) = c.saved()?.cgroup.clone() else { return Ok(Vec::new()) };
    let all = Manager::from_location(loc).pids()?;
    let helpers = helpers(&c, &all);
    Ok(all.into_iter().filter(|p| !helpers.contains(p)).collect())
}

/// Which of `pids` are moat's helpers: on the sentry platform, with a pid
/// namespace of the container's own, the watchdog and the Sentry's
/// replayer (still in ours), and the watchdog's child the Sentry (in the
/// container's, but not the container's).
fn helpers(c: &Container, pids: &[Pid]) -> Vec<Pid> {
    let sentry = c.saved().is_ok_and(|s| s.platform == crate::Platform::Sentry);
    let own_pidns = c.spec().is_ok_and(|s| {
        s.linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none())
    });
    if !sentry || !own_pidns {
        return Vec::new();
    }
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let ours = ns("self");
    let watchdogs: Vec<Pid> = pids.iter().copied().filter(|p| ours.is_some() && ns(&p.to_string()) == ours).collect();
    // the watchdog's children: the Sentry, and the replayer (already among those in ours)
    let sentries = pids
        .iter()
        .copied()
        .filter(|p| !watchdogs.contains(p) && crate::procs::parent(*p).is_some_and(|pp| watchdogs.contains(&pp)));
    let mut all: Vec<Pid> = sentries.collect();
    all.extend(watchdogs);
    all
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
    let Some(loc) = c.saved()?.cgroup.clone() else {
        return Ok(Event { kind: "stats", id: id.into(), data: Stats::default() });
    };
    let m = Manager::from_location(loc);
    let mut data = m.stats();
    // the container's tasks; memory and CPU include the helpers' share (the
    // pids controller counts threads: the Sentry has a few)
    let helpers: u64 = helpers(&c, &m.pids().unwrap_or_default())
        .iter()
        .map(|p| std::fs::read_dir(format!("/proc/{p}/task")).map(|d| d.count() as u64).unwrap_or(1))
        .sum();
    data.pids.current = data.pids.current.saturating_sub(helpers);
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
