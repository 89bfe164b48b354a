//! The five capability sets of the container process.

use std::collections::HashSet;

use caps::{CapSet, Capability};
use oci_spec::runtime::LinuxCapabilities;

use crate::{Error, Result};

fn convert(set: &Option<HashSet<oci_spec::runtime::Capability>>) -> HashSet<Capability> {
    set.iter()
        .flatten()
        .filter_map(|c| {
            // oci-spec prints CAP_FOO; the caps crate parses the same names.
            let name = c.to_string();
            let name = if name.starts_with("CAP_") { name } else { format!("CAP_{name}") };
            match name.parse::<Capability>() {
                Ok(c) if caps::all().contains(&c) => Some(c),
                _ => {
                    tracing::warn!(capability = %name, "capability not known to this kernel; ignored");
                    None
                }
            }
        })
        .collect()
}

/// Drops every capability not in the spec's bounding set. Run while still
/// holding CAP_SETPCAP, before switching user.
pub fn drop_bounding(c: &LinuxCapabilities) -> Result<()> {
    let keep = convert(c.bounding());
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                Error::sys(format!("drop {cap} from bounding set"), std::io::Error::other(e.to_string()))
            })?;
        }
    }
    Ok(())
}

/// Sets the effective, permitted, inheritable and ambient sets. Run after
/// switching user (with PR_SET_KEEPCAPS held so permitted survives).
pub fn apply(c: &LinuxCapabilities) -> Result<()> {
    let err = |what: &str, e: caps::errors::CapsError| {
        Error::sys(format!("set {what} capabilities"), std::io::Error::other(e.to_string()))
    };
    // The kernel wants effective ⊆ permitted at every step: shrink
    // effective first, then permitted (keeping effective in it).
    let perm = convert(c.permitted());
    let eff = convert(c.effective());
    let inh = convert(c.inheritable());
    caps::set(None, CapSet::Inheritable, &inh).map_err(|e| err("inheritable", e))?;
    caps::set(None, CapSet::Effective, &eff).map_err(|e| err("effective", e))?;
    caps::set(None, CapSet::Permitted, &perm.union(&eff).copied().collect()).map_err(|e| err("permitted", e))?;
    let amb = convert(c.ambient());
    caps::clear(None, CapSet::Ambient).map_err(|e| err("ambient", e))?;
    for a in amb {
        // ambient needs the cap in permitted and inheritable; runc ignores the rest
        if let Err(e) = caps::raise(None, CapSet::Ambient, a) {
            tracing::warn!(capability = %a, error = %e, "cannot raise ambient capability");
        }
    }
    Ok(())
}
