//! Specs moat writes itself: the template of `moat spec`, its rootless
//! variant, and the spec behind `moat do`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxDeviceCgroupBuilder, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, LinuxResourcesBuilder, Mount,
    Spec,
};
use serde_json::json;

use crate::{Error, Result};

fn mounts_from_json(v: serde_json::Value) -> Vec<Mount> {
    serde_json::from_value(v).unwrap_or_default()
}

/// The `moat spec` template (runc's, with moat's hostname).
pub fn template() -> Spec {
    let mut s = Spec::default();
    s.set_version(crate::OCI_VERSION.into());
    s.set_hostname(Some("moat".into()));
    if let Some(mut p) = s.process().clone() {
        p.set_terminal(Some(true));
        s.set_process(Some(p));
    }
    if let Some(mut l) = s.linux().clone() {
        let deny_all = LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().ok();
        let r = LinuxResourcesBuilder::default().devices(deny_all.into_iter().collect::<Vec<_>>()).build().ok();
        l.set_resources(r);
        s.set_linux(Some(l));
    }
    s
}

/// The rootless template: a user namespace mapping root to the caller, no
/// network namespace of its own, /sys bound instead of mounted.
pub fn rootless_template() -> Spec {
    let mut s = template();
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    if let Some(mut l) = s.linux().clone() {
        let mut ns: Vec<LinuxNamespace> = l
            .namespaces()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.typ() != LinuxNamespaceType::Network)
            .collect();
        let mut user = LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        ns.push(user);
        l.set_namespaces(Some(ns));
        let map = |host| LinuxIdMappingBuilder::default().container_id(0u32).host_id(host).size(1u32).build().ok();
        l.set_uid_mappings(map(uid).map(|m| vec![m]));
        l.set_gid_mappings(map(gid).map(|m| vec![m]));
        l.set_resources(None);
        s.set_linux(Some(l));
    }
    let mounts = s
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.destination() != Path::new("/sys/fs/cgroup"))
        .map(|mut m| {
            if m.destination() == Path::new("/sys") {
                m.set_typ(Some("none".into()));
                m.set_source(Some("/sys".into()));
                m.set_options(Some(["rbind", "nosuid", "noexec", "nodev", "ro"].map(String::from).to_vec()));
            }
            let opts = m.options().clone().map(|o| o.into_iter().filter(|x| !x.starts_with("gid=")).collect());
            m.set_options(opts);
            m
        })
        .collect();
    s.set_mounts(Some(mounts));
    s
}

/// Writes the template to `<bundle>/config.json`, refusing to overwrite.
pub fn write_template(bundle: &Path, rootless: bool) -> Result<()> {
    let p = bundle.join("config.json");
    if p.exists() {
        return Err(Error::Invalid(format!("{} exists; remove it first", p.display())));
    }
    let s = if rootless { rootless_template() } else { template() };
    let text = serde_json::to_string_pretty(&s).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(&p, text + "\n").map_err(|e| Error::io(format!("write {}", p.display()), e))
}

/// What `moat do` runs.
#[derive(Debug, Clone)]
pub struct DoOpts {
    /// the command
    pub args: Vec<String>,
    /// share the host's network namespace
    pub host_network: bool,
    /// working directory inside (the caller's, by default)
    pub cwd: PathBuf,
    /// environment
    pub env: Vec<String>,
}

/// A spec that runs `args` on the host's own root filesystem, read-only,
/// with fresh /proc, /dev, /sys and a private /tmp.
pub fn do_spec(o: &DoOpts) -> Spec {
    let mut s = template();
    s.set_hostname(Some("moat".into()));
    let mut root = s.root().clone().unwrap_or_default();
    root.set_path(PathBuf::from("/"));
    root.set_readonly(Some(true));
    s.set_root(Some(root));
    if let Some(mut p) = s.process().clone() {
        p.set_terminal(Some(false));
        p.set_args(Some(o.args.clone()));
        // /tmp, /proc, /dev and /sys are fresh inside: a cwd below them does not exist there
        let hidden = ["/tmp", "/proc", "/dev", "/sys"].iter().any(|m| o.cwd.starts_with(m));
        p.set_cwd(if hidden { PathBuf::from("/") } else { o.cwd.clone() });
        p.set_env(Some(o.env.clone()));
        s.set_process(Some(p));
    }
    let mounts = mounts_from_json(json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}
    ]));
    // with the host's network namespace, a new sysfs would be the host's own
    // superblock on top of itself (EBUSY): keep the read-only host /sys instead
    let mounts: Vec<Mount> =
        mounts.into_iter().filter(|m| !(o.host_network && m.destination() == Path::new("/sys"))).collect();
    s.set_mounts(Some(mounts));
    if let Some(mut l) = s.linux().clone() {
        let ns: Vec<LinuxNamespace> = l
            .namespaces()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !(o.host_network && n.typ() == LinuxNamespaceType::Network))
            .collect();
        l.set_namespaces(Some(ns));
        l.set_resources(None);
        s.set_linux(Some(l));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_pass_validation_shape() {
        let t = template();
        assert_eq!(t.hostname().as_deref(), Some("moat"));
        let r = rootless_template();
        let ns = r.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    }

    #[test]
    fn do_spec_is_read_only_host_root() {
        let s = do_spec(&DoOpts { args: vec!["true".into()], host_network: false, cwd: "/".into(), env: vec![] });
        assert_eq!(s.root().as_ref().unwrap().path(), Path::new("/"));
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
    }
}
