//! Which range of host ids a sandbox's own user namespace maps
//! (`--userns auto`): one no other sandbox on the machine uses, so no two
//! share a host uid, nor the per-user kernel counters and limits that come
//! with it (RLIMIT_NPROC, inotify and key quotas).
//!
//! Ranges of [`SIZE`] ids from [`BASE`] up to 2^31. A sandbox claims one
//! in a directory of the machine's ([`REGISTRY`], whatever `--root` it
//! has): an entry named after the range's first id, a symlink to the
//! sandbox's state dir. Claims are made under an exclusive lock of that
//! directory; an entry whose state dir is gone (deleted, or removed by a
//! create that failed) is free again. Delete removes its own. A sandbox
//! that joins another one's user namespace (a pod) adds a share of that
//! range, so it stays taken while either lives.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Where the host ids of sandboxes' user namespaces start.
pub const BASE: u32 = 1 << 30;
/// How many ids a namespace maps.
pub const SIZE: u32 = 65536;
/// How many ranges of [`SIZE`] ids there are from [`BASE`] up (to 2^31).
const SLOTS: u32 = (1 << 30) / SIZE;
/// The machine's claims, shared by every `--root`.
pub const REGISTRY: &str = "/run/moat-userns";

/// Runs `f` with the registry at `registry` locked (made if missing).
fn locked<T>(registry: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let io = |what: &str, e: std::io::Error| Error::io(format!("{what} {}", registry.display()), e);
    std::fs::create_dir_all(registry).map_err(|e| io("create", e))?;
    let dir = std::fs::File::open(registry).map_err(|e| io("open", e))?;
    // every claim on the machine, one at a time; released when it drops
    let _lock =
        nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| io("lock", e.into()))?;
    f()
}

/// The state dir as the registry names it: absolute (a relative `--root`
/// would point a link at the registry's own directory).
fn absolute(state_dir: &Path) -> Result<PathBuf> {
    std::path::absolute(state_dir).map_err(|e| Error::io(format!("resolve {}", state_dir.display()), e))
}

/// Whether a live sandbox other than `state_dir` holds the range from `base`
/// (its own claim, or a share of it: a pod's other containers).
fn taken(registry: &Path, base: u32, state_dir: &Path) -> bool {
    let name = base.to_string();
    std::fs::read_dir(registry).into_iter().flatten().flatten().any(|e| {
        let entry = e.file_name().to_string_lossy().into_owned();
        let of_range = entry == name || entry.strip_prefix(&name).is_some_and(|rest| rest.starts_with('+'));
        of_range && std::fs::read_link(e.path()).is_ok_and(|owner| owner != state_dir && owner.is_dir())
    })
}

/// Claims a free range for the sandbox whose state dir is `state_dir`, in
/// the registry at `registry`: the first slot from a hash of its id on
/// that no live claim holds, nor (from before the registry) a container of
/// its own `--root` names in its saved spec. Returns the range's first id.
pub fn claim(registry: &Path, state_dir: &Path) -> Result<u32> {
    let state_dir = &absolute(state_dir)?;
    locked(registry, || {
        let id = state_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let legacy = state_dir.parent().map(|root| saved_ranges(root, &id)).unwrap_or_default();
        // FNV-1a: stable across runs, spread over the slots
        let hash = id.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        let base = (0..SLOTS)
            .map(|i| BASE + hash.wrapping_add(i) % SLOTS * SIZE)
            .find(|b| !legacy.contains(b) && !taken(registry, *b, state_dir))
            .ok_or_else(|| Error::Init("no free range of host ids for a user namespace".into()))?;
        let entry = registry.join(base.to_string());
        let _ = std::fs::remove_file(&entry);
        std::os::unix::fs::symlink(state_dir, &entry)
            .map_err(|e| Error::io(format!("claim a range in {}", registry.display()), e))?;
        Ok(base)
    })
}

/// Notes that the sandbox at `state_dir` uses the range from `base` too (it
/// joined the user namespace of the one that claimed it: a pod), so the
/// range stays taken while either lives.
pub fn share(registry: &Path, state_dir: &Path, base: u32) -> Result<()> {
    let state_dir = &absolute(state_dir)?;
    locked(registry, || {
        let tag = state_dir
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
        let entry = registry.join(format!("{base}+{tag:08x}"));
        let _ = std::fs::remove_file(&entry);
        std::os::unix::fs::symlink(state_dir, &entry)
            .map_err(|e| Error::io(format!("share a range in {}", registry.display()), e))
    })
}

/// Gives back the range (or share) the sandbox at `state_dir` holds, if any.
pub fn release(registry: &Path, state_dir: &Path) {
    let Ok(state_dir) = absolute(state_dir) else { return };
    let _ = locked(registry, || {
        for e in std::fs::read_dir(registry).into_iter().flatten().flatten() {
            if std::fs::read_link(e.path()).is_ok_and(|owner| owner == state_dir) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    });
}

/// The ranges the other containers of `root` name in their saved specs.
fn saved_ranges(root: &Path, id: &str) -> std::collections::HashSet<u32> {
    crate::state::list_ids(root)
        .iter()
        .filter(|other| other.as_str() != id)
        .filter_map(|other| std::fs::read_to_string(root.join(other).join(crate::state::SPEC_FILE)).ok())
        .filter_map(|text| crate::spec::parse(&text).ok())
        .filter_map(|s| s.linux().as_ref()?.uid_mappings().as_ref()?.first().map(|m| m.host_id()))
        .collect()
}

/// The registry entry of a state dir, for tests.
#[cfg(test)]
fn entry_of(registry: &Path, state_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(registry)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read_link(p).is_ok_and(|o| o == state_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_roots_with_the_same_id_get_ranges_of_their_own() {
        let tmp = tempfile::tempdir().unwrap();
        let registry = tmp.path().join("registry");
        let (a, b) = (tmp.path().join("root-a/same"), tmp.path().join("root-b/same"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
        }
        let ra = claim(&registry, &a).unwrap();
        let rb = claim(&registry, &b).unwrap();
        assert_ne!(ra, rb);
        assert!(ra >= BASE && ra.is_multiple_of(SIZE) && rb >= BASE && rb.is_multiple_of(SIZE));
        // claiming again for the same sandbox keeps its range
        assert_eq!(claim(&registry, &a).unwrap(), ra);
        // released, or its state dir gone: free again
        release(&registry, &a);
        assert!(entry_of(&registry, &a).is_none());
        std::fs::remove_dir(&b).unwrap();
        std::fs::create_dir_all(tmp.path().join("root-c/same")).unwrap();
        let rc = claim(&registry, &tmp.path().join("root-c/same")).unwrap();
        assert!(rc == ra || rc == rb, "a free range is taken again: {rc} (had {ra}, {rb})");
        // a share keeps a range taken once its claimer is gone
        let (owner, pod) = (tmp.path().join("root-d/pause"), tmp.path().join("root-d/app"));
        for d in [&owner, &pod] {
            std::fs::create_dir_all(d).unwrap();
        }
        let rd = claim(&registry, &owner).unwrap();
        share(&registry, &pod, rd).unwrap();
        release(&registry, &owner);
        std::fs::remove_dir(&owner).unwrap();
        assert!(taken(&registry, rd, &tmp.path().join("root-e/other")));
        release(&registry, &pod);
        assert!(!taken(&registry, rd, &tmp.path().join("root-e/other")));
    }
}
