//! Loading and checking a bundle's config.json.
//!
//! Every error names the JSON path of the offending field
//! (`config.json: process.args: ...`), so a user can fix it at once.

use std::fs;
use std::path::{Path, PathBuf};

use moat_jail::ns::Plan;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::{Error, Result};

/// Reads and parses `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let text = fs::read_to_string(&path).map_err(|e| Error::Spec(format!("{}: {e}", path.display())))?;
    parse(&text)
}

/// Parses a config.json text, naming the JSON path on error.
pub fn parse(text: &str) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Spec>(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "(top level)".to_string() } else { path };
        Error::Spec(format!("config.json: {path}: {}", e.inner()))
    })
}

fn bad(path: &str, msg: impl std::fmt::Display) -> Error {
    Error::Spec(format!("config.json: {path}: {msg}"))
}

/// The root directory, made absolute against the bundle.
pub fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec.root().as_ref().ok_or_else(|| bad("root", "missing"))?;
    let p = root.path();
    Ok(if p.is_absolute() { p.clone() } else { bundle.join(p) })
}

/// Checks what serde cannot: values that parse but make no sense, or that
/// moat cannot honour on this host. `needs_process` is false for specs only
/// used to join an existing container.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<()> {
    if !spec.version().starts_with("1.") {
        return Err(bad("ociVersion", format!("unsupported version {:?} (want 1.x)", spec.version())));
    }
    let root = rootfs(spec, bundle)?;
    match fs::metadata(&root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad("root.path", format!("{} is not a directory", root.display()))),
        Err(e) => return Err(bad("root.path", format!("{}: {e}", root.display()))),
    }
    let process = spec.process().as_ref().ok_or_else(|| bad("process", "missing"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(bad("process.args", "must name a program to run"));
    }
    if !process.cwd().is_absolute() {
        return Err(bad("process.cwd", format!("{:?} is not an absolute path", process.cwd())));
    }
    if let Some(rl) = process.rlimits() {
        for (i, r) in rl.iter().enumerate() {
            if r.soft() > r.hard() {
                return Err(bad(&format!("process.rlimits[{i}]"), "soft limit is above the hard limit"));
            }
            if rl[..i].iter().any(|o| o.typ() == r.typ()) {
                return Err(bad(&format!("process.rlimits[{i}].type"), format!("{:?} appears twice", r.typ())));
            }
        }
    }
    if let Some(hooks) = spec.hooks() {
        let kinds = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (kind, list) in kinds {
            for (i, h) in list.iter().flatten().enumerate() {
                if !h.path().is_absolute() {
                    return Err(bad(&format!("hooks.{kind}[{i}].path"), "must be an absolute path"));
                }
                if h.timeout().is_some_and(|t| t <= 0) {
                    return Err(bad(&format!("hooks.{kind}[{i}].timeout"), "must be positive"));
                }
            }
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(bad(
                &format!("mounts[{i}].destination"),
                format!("{:?} is not an absolute path", m.destination()),
            ));
        }
    }
    validate_linux(spec)
}

fn validate_linux(spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else { return Err(bad("linux", "missing (moat runs Linux containers)")) };
    let plan = Plan::from_spec(linux.namespaces().as_deref().unwrap_or(&[])).map_err(|e| bad("linux.namespaces", e))?;
    for (t, p) in &plan.join {
        if !p.exists() {
            return Err(bad("linux.namespaces", format!("{:?} namespace path {} does not exist", t, p.display())));
        }
    }
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if plan.new_user() && !has_maps {
        return Err(bad("linux.uidMappings", "a new user namespace needs uid and gid mappings"));
    }
    if has_maps && !plan.has(LinuxNamespaceType::User) {
        return Err(bad("linux.uidMappings", "mappings are given but there is no user namespace"));
    }
    if let Some(sysctl) = linux.sysctl() {
        // a namespace of its own: a new one, or a joined one that is not
        // the host's (a path to the host's own, as runc refuses too)
        let own = |t: LinuxNamespaceType| {
            plan.has(t)
                && !plan.join.iter().any(|(j, path)| {
                    *j == t && moat_jail::ns::Id::at(path).is_ok_and(|id| moat_jail::ns::is_hosts(t, id))
                })
        };
        for k in sysctl.keys() {
            let ok = moat_jail::sysctl::allowed(
                k,
                own(LinuxNamespaceType::Ipc),
                own(LinuxNamespaceType::Network),
                own(LinuxNamespaceType::Uts),
            );
            if !ok {
                return Err(bad(
                    &format!("linux.sysctl.{k}"),
                    "not namespaced for this container: it would change the host",
                ));
            }
        }
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if !plan.has(LinuxNamespaceType::Uts) {
            return Err(bad("hostname", format!("setting hostname {h:?} needs a uts namespace")));
        }
    }
    if let Some(p) = linux.rootfs_propagation().as_deref().filter(|p| !p.is_empty()) {
        if moat_jail::mount::propagation_flag(p).is_none() {
            return Err(bad("linux.rootfsPropagation", format!("unknown value {p:?}")));
        }
    }
    if let Some(s) = linux.seccomp() {
        moat_jail::seccomp::build(s).map_err(|e| Error::Spec(format!("config.json: {e}")))?;
        if moat_jail::seccomp::uses_notify(s) && s.listener_path().is_none() {
            return Err(bad("linux.seccomp.listenerPath", "SCMP_ACT_NOTIFY needs a listener path"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_json_path() {
        let e = parse(r#"{"ociVersion":"1.0.2","process":{"terminal":5}}"#).unwrap_err().to_string();
        assert!(e.starts_with("config.json: process.terminal:"), "{e}");
        let e = parse("{").unwrap_err().to_string();
        assert!(e.starts_with("config.json:"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn semantic_errors_name_the_json_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let mut spec = Spec::default();
        let mut p = spec.process().clone().unwrap();
        p.set_args(Some(vec![]));
        spec.set_process(Some(p));
        let e = validate(&spec, dir.path()).unwrap_err().to_string();
        assert_eq!(e, "config.json: process.args: must name a program to run");
    }
}
