//! Which range of host ids a sandbox's own user namespace maps
//! (`--userns auto`): one no other sandbox on the machine uses, so no two
//! share a host uid, nor the per-user kernel counters and limits that come
//! with it (RLIMIT_NPROC, inotify and key quotas).
//!
//! Ranges of [`SIZE`] ids from [`BASE`] up to 2^31. A sandbox claims one
//! in a directory of the machine's ([`REGISTRY`], whatever `--root` it
//! has): an entry named after the range's first id, a symlink to the
//! sandbox's state dir. Claims are made under an exclusive lock of that
//! directory; an entry whose state dir is gone (deleted, or never written
//! by a create that died) is free again. Delete removes its own.

use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use crate::{Error, Result};

/// Where the host ids of sandboxes' user namespaces start.
pub const BASE: u32 = 1 << 30;
/// How many ids a namespace maps.
pub const SIZE: u32 = 65536;
/// How many ranges of [`SIZE`] ids there are from [`BASE`] up (to 2^31).
const SLOTS: u32 = (1 << 30) / SIZE;
/// The machine's claims, shared by every `--root`.
pub const REGISTRY: &str = "/run/moat-userns";

/// Claims a free range for the sandbox whose state dir is `state_dir`, in
/// the registry at `registry`: the first slot from a hash of its id on
/// that no live claim holds, nor (from before the registry) a container of
/// its own `--root` names in its saved spec. Returns the range's first id.
pub fn claim(registry: &Path, state_dir: &Path) -> Result<u32> {
    let io = |what: &str, e: std::io::Error| Error::io(format!("{what} {}", registry.display()), e);
    std::fs::create_dir_all(registry).map_err(|e| io("create", e))?;
    let dir = std::fs::File::open(registry).map_err(|e| io("open", e))?;
    // every claim on the machine, one at a time; released when `dir` closes
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| io("lock", e.into())).and_then(
        |locked| {
            let id = state_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let legacy = state_dir.parent().map(|root| saved_ranges(root, &id)).unwrap_or_default();
            let taken = |base: u32| -> bool {
                match std::fs::read_link(registry.join(base.to_string())) {
                    Ok(owner) => owner != state_dir && owner.is_dir(),
                    Err(_) => false,
                }
            };
            // FNV-1a: stable across runs, spread over the slots
            let hash = id.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
            let base = (0..SLOTS)
                .map(|i| BASE + hash.wrapping_add(i) % SLOTS * SIZE)
                .find(|b| !legacy.contains(b) && !taken(*b))
                .ok_or_else(|| Error::Init("no free range of host ids for a user namespace".into()))?;
            let entry = registry.join(base.to_string());
            let _ = std::fs::remove_file(&entry);
            std::os::unix::fs::symlink(state_dir, &entry).map_err(|e| io("claim a range in", e))?;
            drop(locked);
            Ok(base)
        },
    )
}

/// Gives back the range the sandbox at `state_dir` claimed, if any.
pub fn release(registry: &Path, state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(registry) else { return };
    for e in entries.flatten() {
        if std::fs::read_link(e.path()).is_ok_and(|owner| owner == state_dir) {
            let _ = std::fs::remove_file(e.path());
        }
    }
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
    }
}
