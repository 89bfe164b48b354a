//! The sandbox's own user namespace (`--userns auto`, sentry platform):
//! for a spec that brings none, the container's root becomes an
//! unprivileged host uid, as in runsc and Kata, not host root.
//!
//! Container ids [0, [`SIZE`]) map to a range of host ids from
//! [`crate::idrange::BASE`] up that no other sandbox on the machine uses
//! ([`crate::idrange`]). The
//! container's files keep their ids on disk: the rootfs and every bind
//! mount are seen through idmapped copies made with that same namespace
//! ([`moat_jail::idmapped`]), so disk uid k shows as uid k inside, and what
//! the container creates gets disk uid k. `create` makes the namespace and
//! decides; stage 1 makes the copies (in a private mount namespace of its
//! own, so none reaches the host), places them where the spec it hands init
//! says the rootfs and the sources are, and joins the namespace.
//!
//! An overlayfs rootfs (containerd's and podman's) cannot be idmapped
//! itself: the sandbox gets an overlayfs of its own instead, made by stage
//! 1 from idmapped copies of the same layers ([`moat_jail::overlay`]). It
//! works in a work dir of its own next to the upper layer's ([`WORK`]), so
//! the host's mount of the rootfs keeps its own; the two share the upper
//! layer, and what the container changes may show late, or not at all,
//! through the host's mount (the kernel logs that the upper dir is in use
//! twice). Callers read the container's changes from the upper layer
//! itself, as `ctr snapshot diff` and `podman commit` do.
//!
//! The host's own root (`moat do`) is copied mount by mount
//! (`host_root_mounts`), all read-only when the spec's root is.
//!
//! A spec may join a network namespace its caller made (stage 1 does
//! there, as host root, what the namespace's root could not: [`Network`]),
//! and namespaces of another sandbox, whose user namespace it then joins
//! too (a pod): see `joined`.
//!
//! Only where every one of those filesystems allows idmapped mounts
//! (ext4, xfs, btrfs, tmpfs), and the spec shares none of the namespaces
//! only their owner's root may mount in or configure.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use moat_jail::idmapped;
use moat_jail::ns::Plan;
use moat_jail::overlay::{self, Layers};
use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Spec};

use crate::idrange::SIZE;
use crate::{Error, Result};

/// The work dir of a sandbox's own overlayfs, next to the upper layer (it
/// must be on the same mount); delete removes it ([`forget`]).
pub const WORK: &str = "work.moat";
/// Where stage 1 places the copies, in its private mount namespace: on a
/// tmpfs of its own over this directory, which every uid may search (the
/// namespace's root must reach them; a caller's state dir may lie below a
/// directory only host root may search, as containerd's shim makes
/// /run/containerd).
pub const STAGE: &str = "/tmp";

/// A mount the container's tree is built from, seen through an idmapped
/// copy placed at `staged`.
#[derive(Debug, Clone)]
pub struct Staged {
    /// the host path (the rootfs, a bind mount's source)
    pub source: PathBuf,
    /// where stage 1 places the copy (under [`STAGE`], in its private mount namespace)
    pub staged: PathBuf,
    /// with the mounts below it (rbind)
    pub recursive: bool,
    /// a directory (else a file)
    pub dir: bool,
    /// a mount point inside an earlier copy (the host's root's own mounts):
    /// never made there (the copy is the host's tree), left out if missing
    pub inside: bool,
}

/// The namespace, and what stage 1 must place.
#[derive(Debug)]
pub struct Auto {
    /// the user namespace (no process in it yet)
    pub ns: OwnedFd,
    /// the namespace's root, as a host uid and gid
    pub base: u32,
    /// the copies to make (the rootfs, or an overlayfs rootfs's layers, first)
    pub mounts: Vec<Staged>,
    /// an overlayfs rootfs: made again from the copies of its layers
    pub overlay: Option<Remount>,
    /// make the staged rootfs read-only, with every mount below it (the
    /// host's root, whose own mounts come along)
    pub read_only: bool,
    /// a joined network namespace
    pub network: Option<Network>,
    /// the namespaces the spec joins, open (stage 1 joins these, not the
    /// paths again)
    pub joins: Vec<(LinuxNamespaceType, std::fs::File)>,
    /// mount points of the host's root left out (they cannot be idmapped),
    /// staged: covered with something empty, or what the mount hides on the
    /// host would show
    pub cover: Vec<PathBuf>,
}

/// An overlayfs for the sandbox, over idmapped copies of its layers.
#[derive(Debug)]
pub struct Remount {
    /// the layers, at their staged copies
    pub layers: Layers,
    /// where it goes (the staged rootfs)
    pub target: PathBuf,
}

/// Why an overlayfs rootfs cannot be made again over idmapped layers, if
/// it cannot.
fn overlay_unsuited(layers: &Layers) -> Option<String> {
    // mountinfo names these only where they differ from the module's default
    let on = |name: &str| match layers.options.iter().find(|(k, _)| k == name) {
        Some((_, v)) => v.as_deref() == Some("on"),
        None => {
            std::fs::read_to_string(format!("/sys/module/overlay/parameters/{name}")).is_ok_and(|v| v.trim() == "Y")
        }
    };
    if let Some(name) = ["index", "nfs_export"].into_iter().find(|n| on(n)) {
        // (nfs_export needs the index) a second mount with the same upper
        // layer would be refused
        return Some(format!("the overlayfs rootfs has {name}=on"));
    }
    if let (Some(upper), Some(work)) = (&layers.upper, &layers.work) {
        if upper.parent() != work.parent() || upper.parent().is_none() {
            return Some("the overlayfs rootfs has its upper and work dirs in different directories".into());
        }
    }
    // each copied without the mounts below it: those in a layer would be
    // missing (the upper layer's directory may hold others, as podman's
    // holds the rootfs mount itself: only the layer counts)
    for dir in layers.lowers.iter().chain(layers.upper.as_ref()) {
        if !idmapped::supported(dir) {
            return Some(format!("overlayfs layer {} is on a filesystem without idmapped mounts", dir.display()));
        }
        if let Some(sub) = idmapped::submounts(dir).first() {
            return Some(format!("overlayfs layer {} has a mount below it ({})", dir.display(), sub.display()));
        }
    }
    None
}

/// What the spec's joined namespaces ask of the sandbox's user namespace.
#[derive(Debug, Default)]
struct Joined {
    /// each, open: what was checked is what stage 1 joins (a path bound
    /// anew in between is not followed again)
    files: Vec<(LinuxNamespaceType, std::fs::File)>,
    /// a network namespace of the host's user namespace (one a caller
    /// made, as podman for its default network and containerd's CRI for a
    /// pod do; not the host's own): the one checked
    network: Option<moat_jail::ns::Id>,
    /// namespaces of another sandbox's user namespace (a pod's containers
    /// join the first one's ipc, uts, network…): that namespace, to join
    /// too, and the host id of its root
    adopt: Option<(OwnedFd, u32)>,
}

/// What the spec's joined namespaces (`plan.join`) ask; Err, why the
/// sandbox keeps the host's user namespace, if they do not allow one.
/// Another namespace than a network one must belong to the user namespace
/// of a running container of the same `--root` (`states`).
fn joined(plan: &Plan, states: &Path) -> std::result::Result<Joined, String> {
    use moat_jail::ns::{owner, Id};
    use std::os::fd::AsFd;
    let host = |kind: &str| Id::at(&Path::new("/proc/self/ns").join(kind)).map_err(|e| e.to_string());
    let mut j = Joined::default();
    let mut owners = std::collections::HashSet::new();
    for (t, path) in &plan.join {
        if *t == LinuxNamespaceType::Mount {
            return Err("the spec joins a mount namespace".into());
        }
        let f = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
        let by = owner(f.as_fd()).map_err(|e| e.to_string())?;
        if by != host("user")? {
            owners.insert(by);
        } else if *t != LinuxNamespaceType::Network {
            return Err(format!("the spec joins a {t:?} namespace of the host's user namespace"));
        } else {
            let id = Id::of(f.as_fd()).map_err(|e| e.to_string())?;
            if moat_jail::ns::is_hosts(LinuxNamespaceType::Network, id) {
                return Err("the spec joins the host's network namespace".into());
            }
            j.network = Some(id);
        }
        j.files.push((*t, f));
    }
    match owners.len() {
        0 => {}
        1 => {
            let by = owners.into_iter().next().unwrap_or(Id(0, 0));
            j.adopt = Some(
                sandbox_userns(states, by).ok_or("the spec joins namespaces of a user namespace moat did not make")?,
            );
        }
        _ => return Err("the spec joins namespaces of several user namespaces".into()),
    }
    Ok(j)
}

/// The user namespace `id`, if a running container of `states` has it as
/// its own (`--userns auto`: the single range of [`SIZE`] ids from
/// [`crate::idrange::BASE`] up its saved spec names): open, with its
/// root's host id. Its init is checked alive (start time) before and after
/// the namespace and maps are read, so a pid reused meanwhile by another
/// process is never taken for it.
fn sandbox_userns(states: &Path, id: moat_jail::ns::Id) -> Option<(OwnedFd, u32)> {
    use crate::idrange::BASE;
    crate::state::list_ids(states).iter().find_map(|other| {
        // not opened: its lock may be held by its own create (ours among
        // them), or by another create looking at ours
        let (saved, spec) = crate::state::Container::peek(states, other)?;
        let linux = spec.linux().as_ref()?;
        let one = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| -> Option<u32> {
            match maps.as_deref()? {
                [m] if m.container_id() == 0 && m.size() == SIZE => Some(m.host_id()),
                _ => None,
            }
        };
        let base = one(linux.uid_mappings())?;
        if one(linux.gid_mappings())? != base || base < BASE || u64::from(base) + u64::from(SIZE) > 1 << 31 {
            return None;
        }
        let pid = nix::unistd::Pid::from_raw(saved.pid);
        if !crate::procs::alive(pid, saved.pid_start) {
            return None;
        }
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/user")).ok()?;
        let maps: Vec<String> = ["uid_map", "gid_map"]
            .iter()
            .map(|f| std::fs::read_to_string(format!("/proc/{pid}/{f}")))
            .collect::<std::io::Result<_>>()
            .ok()?;
        if !crate::procs::alive(pid, saved.pid_start) {
            return None;
        }
        let ours = |map: &str| {
            map.split_whitespace().map(|v| v.parse::<u64>().ok()).collect::<Option<Vec<_>>>()
                == Some(vec![0, u64::from(base), u64::from(SIZE)])
        };
        (moat_jail::ns::Id::of(std::os::fd::AsFd::as_fd(&ns)).ok()? == id && maps.iter().all(|m| ours(m)))
            .then(|| (OwnedFd::from(ns), base))
    })
}

/// For a joined network namespace, which the sandbox's user namespace does
/// not own: what stage 1 does in it as host root, which the container's
/// root could not.
#[derive(Debug)]
pub struct Network {
    /// the namespace `create` checked: stage 1 makes nothing in another
    /// (a path bound anew in between)
    pub checked: moat_jail::ns::Id,
    /// the spec's net.* sysctls (group ids of ping_group_range already
    /// the host's), and ip_unprivileged_port_start=0 unless it names one:
    /// the container's root has no CAP_NET_BIND_SERVICE there
    pub sysctls: Vec<(String, String)>,
    /// mount a sysfs of it (read-only) at [`STAGE`]/sysfs, which the spec's
    /// sysfs mount binds
    pub sysfs: bool,
}

/// What the joined network namespace `checked` needs of stage 1, and
/// `for_init` without it (its sysfs mounts a bind of stage 1's, no net.*
/// sysctls).
fn network(for_init: &mut Spec, base: u32, checked: moat_jail::ns::Id) -> Network {
    let mut net = Network { checked, sysctls: Vec::new(), sysfs: false };
    let mut linux = for_init.linux().clone().unwrap_or_default();
    let mut sysctls = linux.sysctl().clone().unwrap_or_default();
    let theirs: Vec<String> = sysctls.keys().filter(|k| k.starts_with("net.")).cloned().collect();
    for k in theirs {
        let v = sysctls.remove(&k).unwrap_or_default();
        let v = match k.as_str() {
            // group ids of the writer's user namespace: the container's, as the host numbers them
            "net.ipv4.ping_group_range" => v
                .split_whitespace()
                .map(|g| {
                    g.parse::<u32>().map(|g| (base + g.min(SIZE - 1)).to_string()).unwrap_or_else(|_| g.to_string())
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => v,
        };
        net.sysctls.push((k, v));
    }
    if !net.sysctls.iter().any(|(k, _)| k == "net.ipv4.ip_unprivileged_port_start") {
        net.sysctls.push(("net.ipv4.ip_unprivileged_port_start".into(), "0".into()));
    }
    linux.set_sysctl(Some(sysctls));
    for_init.set_linux(Some(linux));
    let mut mounts = for_init.mounts().clone().unwrap_or_default();
    for m in mounts.iter_mut().filter(|m| m.typ().as_deref() == Some("sysfs")) {
        net.sysfs = true;
        let mut opts = vec!["rbind".to_string()];
        opts.extend(m.options().clone().unwrap_or_default());
        m.set_typ(Some("bind".into()));
        m.set_source(Some(Path::new(STAGE).join("sysfs")));
        m.set_options(Some(opts));
    }
    for_init.set_mounts(Some(mounts));
    net
}

/// The spec's bind mounts: their index, source, and whether recursive.
fn binds(spec: &Spec) -> impl Iterator<Item = (usize, PathBuf, bool)> + '_ {
    spec.mounts().iter().flatten().enumerate().filter_map(|(i, m)| {
        let opts = moat_jail::mount::parse_options(m.options().as_deref().unwrap_or(&[]));
        (opts.is_bind() || m.typ().as_deref() == Some("bind"))
            .then(|| (i, m.source().clone().unwrap_or_default(), opts.flags.contains(nix::mount::MsFlags::MS_REC)))
    })
}

/// Why `spec` keeps the host's user namespace, if it does.
fn unsuited(spec: &Spec, root: &Path, plan: &Plan) -> Option<String> {
    if plan.has(LinuxNamespaceType::User) {
        return Some("the spec brings its own user namespace".into());
    }
    // those the kernel lets only their owner's root mount in (procfs,
    // mqueue, sysfs) or configure must be the sandbox's own
    use LinuxNamespaceType::{Ipc, Mount, Network, Pid, Uts};
    if let Some(t) = [Pid, Ipc, Uts, Mount, Network].into_iter().find(|t| !plan.has(*t)) {
        return Some(format!("the spec shares the host's {t:?} namespace"));
    }
    // inside a user namespace no device node can be made (they would be
    // the host's, with the host's modes and owners), and hooks that run in
    // the container's namespaces expect host root
    if spec.linux().as_ref().and_then(|l| l.devices().as_ref()).is_some_and(|d| !d.is_empty()) {
        return Some("the spec has devices of its own".into());
    }
    let hooks = spec.hooks().clone().unwrap_or_default();
    if hooks.create_container().as_ref().is_some_and(|h| !h.is_empty())
        || hooks.start_container().as_ref().is_some_and(|h| !h.is_empty())
    {
        return Some("the spec has hooks that run in the container's namespaces".into());
    }
    if root == Path::new("/") {
        if !idmapped::supported(root) {
            return Some("the host's root is on a filesystem without idmapped mounts".into());
        }
        // the process starts there: it must be in the copies (`moat do`
        // from a directory on such a mount)
        let cwd = spec.process().as_ref().map(|p| p.cwd().clone()).unwrap_or_default();
        if let Some(out) = host_submounts(spec).1.into_iter().find(|p| cwd.starts_with(p)) {
            return Some(format!("the process's cwd is on {}, which cannot be idmapped", out.display()));
        }
    }
    if !Path::new(STAGE).is_dir() {
        return Some(format!("{STAGE} is not a directory"));
    }
    let mut sources = Vec::new();
    match overlay::at(root) {
        // the host's own: its mounts are copied one by one (host_root_mounts)
        _ if root == Path::new("/") => {}
        Ok(Some(layers)) => {
            if let Some(why) = overlay_unsuited(&layers) {
                return Some(why);
            }
            if let Some(sub) = idmapped::submounts(root).first() {
                return Some(format!("{} has a mount below it ({})", root.display(), sub.display()));
            }
        }
        Ok(None) => sources.push((root.to_path_buf(), false)),
        Err(e) => return Some(e.to_string()),
    }
    sources.extend(binds(spec).map(|(_, source, recursive)| (source, recursive)));
    // an idmapped copy is a mount of its own, in no peer group: mounts made
    // on the host below a source would not show inside
    let propagation = ["shared", "rshared", "slave", "rslave"];
    let asks = |opts: &[String]| opts.iter().any(|o| propagation.contains(&o.as_str()));
    if spec.mounts().iter().flatten().any(|m| asks(m.options().as_deref().unwrap_or(&[]))) {
        return Some("a bind mount asks for mount propagation".into());
    }
    for (source, recursive) in &sources {
        if !idmapped::supported(source) {
            return Some(format!("{} is on a filesystem without idmapped mounts", source.display()));
        }
        let below = idmapped::submounts(source);
        if let Some(sub) = below.iter().find(|s| !*recursive || !idmapped::supported(s)) {
            return Some(format!("{} has a mount below it ({})", source.display(), sub.display()));
        }
    }
    None
}

/// For `--userns auto`: the namespace, the spec to save (with the user
/// namespace and its maps), and the spec init builds from (rootfs and bind
/// sources at their staged copies); None if the sandbox keeps the host's
/// user namespace (logged, with why).
pub fn plan(spec: &Spec, root: &Path, plan: &Plan, state_dir: &Path) -> Result<Option<(Auto, Spec, Spec)>> {
    let states = state_dir.parent().ok_or_else(|| Error::Init(format!("state dir {}", state_dir.display())))?;
    let keep = |why: &str| {
        tracing::info!("no user namespace of the sandbox's own: {why}");
        Ok(None)
    };
    // (and what its joined namespaces allow: [`joined`])
    let joined = match unsuited(spec, root, plan).map_or_else(|| joined(plan, states), Err) {
        Ok(j) => j,
        Err(why) => return keep(&why),
    };
    // the pod's, if it joins namespaces of one (its range shared); else a
    // range of its own
    let registry = Path::new(crate::idrange::REGISTRY);
    let (ns, base) = match joined.adopt {
        Some((ns, base)) => match crate::idrange::share(registry, state_dir, base) {
            Ok(()) => (ns, base),
            Err(e) => return keep(&e.to_string()),
        },
        None => match crate::idrange::claim(registry, state_dir) {
            Ok(base) => (idmapped::new_userns(base, SIZE)?, base),
            Err(e) => return keep(&e.to_string()),
        },
    };
    let mut saved = spec.clone();
    let mut linux = saved.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .map_err(|e| Error::Init(e.to_string()))?,
    );
    linux.set_namespaces(Some(namespaces));
    let map = LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(base)
        .size(SIZE)
        .build()
        .map_err(|e| Error::Init(e.to_string()))?;
    linux.set_uid_mappings(Some(vec![map]));
    linux.set_gid_mappings(Some(vec![map]));
    saved.set_linux(Some(linux));

    let stage = Path::new(STAGE);
    let mut for_init = saved.clone();
    let rootfs = stage.join("rootfs");
    let whole = |source: &Path| Staged {
        source: source.to_path_buf(),
        staged: rootfs.clone(),
        recursive: false,
        dir: true,
        inside: false,
    };
    let host_root = root == Path::new("/");
    let (host_copies, cover) = match host_root {
        true => host_root_mounts(spec, &rootfs),
        false => (Vec::new(), Vec::new()),
    };
    let (mut mounts, overlay) = match overlay::at(root)? {
        _ if host_root => (std::iter::once(whole(root)).chain(host_copies).collect(), None),
        Some(layers) => stage_layers(&layers, stage, &rootfs)?,
        None => (vec![whole(root)], None),
    };
    let mut spec_mounts = for_init.mounts().clone().unwrap_or_default();
    for (i, source, recursive) in binds(spec) {
        let staged = stage.join(format!("mount-{i}"));
        let meta = std::fs::metadata(&source).map_err(|e| Error::io(format!("stage {}", source.display()), e))?;
        mounts.push(Staged { source, staged: staged.clone(), recursive, dir: meta.is_dir(), inside: false });
        spec_mounts[i].set_source(Some(staged));
    }
    for_init.set_mounts(Some(spec_mounts));
    if let Some(r) = for_init.root().clone() {
        let mut r = r;
        r.set_path(rootfs.clone());
        for_init.set_root(Some(r));
    }
    let network = joined.network.map(|id| network(&mut for_init, base, id));
    let read_only = host_root && spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
    let joins = joined.files;
    let auto = Auto { ns, base, mounts, overlay, read_only, network, joins, cover };
    if auto.overlay.is_some() {
        if let Err(why) = trial(&auto) {
            tracing::info!("no user namespace of the sandbox's own: its overlayfs rootfs cannot be made again: {why}");
            crate::idrange::release(Path::new(crate::idrange::REGISTRY), state_dir);
            forget(root);
            return Ok(None);
        }
    }
    Ok(Some((auto, saved, for_init)))
}

/// The host's own mounts below its root (`moat do`), each to be copied on
/// its own into the staged `rootfs`: a recursive copy cannot be idmapped
/// where one of them does not allow it (proc, sysfs, devtmpfs, cgroup…).
/// Those under the spec's own mounts are left out (covered: /proc, /dev,
/// /sys, /tmp), and so, logged, are those on filesystems without idmapped
/// mounts: their mount points, staged, are returned to be covered.
fn host_root_mounts(spec: &Spec, rootfs: &Path) -> (Vec<Staged>, Vec<PathBuf>) {
    let (copied, left_out) = host_submounts(spec);
    let staged = |point: &Path| point.strip_prefix("/").ok().map(|rel| rootfs.join(rel));
    let copies = copied
        .iter()
        .filter_map(|point| {
            let dir = std::fs::metadata(point).map(|m| m.is_dir()).unwrap_or(true);
            Some(Staged { source: point.clone(), staged: staged(point)?, recursive: false, dir, inside: true })
        })
        .collect();
    let cover = left_out
        .iter()
        .inspect(|p| tracing::info!("{} is on a filesystem without idmapped mounts: empty in the sandbox", p.display()))
        .filter_map(|p| staged(p))
        .collect();
    (copies, cover)
}

/// The host's mounts below its root that the spec's own mounts do not
/// cover: those that can be copied idmapped, and those that cannot.
fn host_submounts(spec: &Spec) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let covered: Vec<PathBuf> = spec.mounts().iter().flatten().map(|m| m.destination().clone()).collect();
    let all: Vec<_> = idmapped::mounts_below(Path::new("/"))
        .into_iter()
        .filter(|m| !covered.iter().any(|c| m.point.starts_with(c)))
        .collect();
    // a point mounted on twice shows the later mount
    let last: std::collections::HashMap<PathBuf, usize> =
        all.iter().enumerate().map(|(i, m)| (m.point.clone(), i)).collect();
    let (copied, left_out): (Vec<_>, Vec<_>) = all
        .into_iter()
        .enumerate()
        .filter(|(i, m)| last.get(&m.point) == Some(i))
        .map(|(_, m)| m)
        .partition(|m| m.idmappable);
    (copied.into_iter().map(|m| m.point).collect(), left_out.into_iter().map(|m| m.point).collect())
}

/// The copies an overlayfs rootfs's layers need in `stage` (each lower
/// layer, and the directory of the upper layer and of [`WORK`], made here
/// if missing), and the overlayfs to make of them at `rootfs`.
fn stage_layers(layers: &Layers, stage: &Path, rootfs: &Path) -> Result<(Vec<Staged>, Option<Remount>)> {
    let mut mounts = Vec::new();
    let mut staged = layers.clone();
    for (i, lower) in layers.lowers.iter().enumerate() {
        // short: before Linux 6.8 all of them go in one fsconfig value of 256 bytes
        let at = stage.join(format!("l{i}"));
        mounts.push(Staged { source: lower.clone(), staged: at.clone(), recursive: false, dir: true, inside: false });
        staged.lowers[i] = at;
    }
    // volatile (podman mounts so; mountinfo says fsync=volatile) leaves a
    // mark in the work dir that refuses the next mount until removed: the
    // trial's would refuse stage 1's
    staged.options.retain(|(k, v)| k != "volatile" && !(k == "fsync" && v.as_deref() == Some("volatile")));
    if let Some((upper, parent)) = layers.upper.as_ref().and_then(|u| Some((u, u.parent()?))) {
        let work = parent.join(WORK);
        match std::fs::create_dir(&work) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(Error::io(format!("create {}", work.display()), e));
            }
            // an earlier sandbox's (overlayfs empties it at mount, but not
            // past such a mark): ours alone, so gone
            Err(_) => {
                let _ = std::fs::remove_dir_all(work.join("work"));
            }
            Ok(()) => {}
        }
        let at = stage.join("upper");
        mounts.push(Staged {
            source: parent.to_path_buf(),
            staged: at.clone(),
            recursive: false,
            dir: true,
            inside: false,
        });
        staged.upper = upper.file_name().map(|n| at.join(n));
        staged.work = Some(at.join(WORK));
    }
    Ok((mounts, Some(Remount { layers: staged, target: rootfs.to_path_buf() })))
}

/// Once the sandbox is gone: the work dir its own overlayfs used, next to
/// the upper layer of the overlayfs still mounted at `rootfs`, if any (the
/// snapshot's owner would remove it with the snapshot; a bundle made by
/// hand has none).
pub fn forget(rootfs: &Path) {
    if let Ok(Some(layers)) = overlay::at(rootfs) {
        if let Some(work) = layers.upper.as_ref().and_then(|u| u.parent()).map(|p| p.join(WORK)) {
            if work.is_dir() {
                let _ = std::fs::remove_dir_all(work);
            }
        }
    }
}

/// Stage 1's part (host root still, before it joins the namespace): a
/// private mount namespace, where each idmapped copy is placed on a fresh
/// tmpfs over [`STAGE`]. Nothing of it reaches the host's; the container's
/// own mount namespace, made after, starts as a copy of this one.
pub fn place(auto: &Auto) -> Result<()> {
    use nix::mount::MsFlags;
    place_tree(auto)?;
    if let Some(net) = &auto.network {
        // stage 1 is in the joined network namespace already
        let here = moat_jail::ns::Id::at(Path::new("/proc/self/ns/net"))?;
        if net.checked != here {
            return Err(Error::Init("the network namespace to join changed since create checked it".into()));
        }
        for (k, v) in &net.sysctls {
            moat_jail::sysctl::write(k, v)?;
        }
        if net.sysfs {
            let at = Path::new(STAGE).join("sysfs");
            std::fs::create_dir(&at).map_err(|e| Error::io(format!("create {}", at.display()), e))?;
            let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            nix::mount::mount(Some("sysfs"), &at, Some("sysfs"), flags, None::<&str>)
                .map_err(|e| Error::io("mount a sysfs of the joined network namespace", e))?;
        }
    }
    nix::sched::setns(&auto.ns, nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| Error::io("join the sandbox's user namespace", e))
}

/// The tree part of [`place`]: the private mount namespace, the copies on
/// the staging tmpfs, the covers, read-only, the overlayfs.
fn place_tree(auto: &Auto) -> Result<()> {
    use nix::mount::MsFlags;
    use std::os::fd::AsFd;
    moat_jail::ns::create(nix::sched::CloneFlags::CLONE_NEWNS)?;
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| Error::io("make stage 1's mounts private", e))?;
    // the copies first: a source may lie under STAGE
    let copies = auto
        .mounts
        .iter()
        .map(|m| match idmapped::clone(&m.source, m.recursive, auto.ns.as_fd()) {
            Ok(copy) => Ok(Some(copy)),
            // a mount below the root that went away since create listed it
            Err(moat_jail::Error::Path { source, .. }) if m.inside && source.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!("{} went away: left out of the sandbox's tree", m.source.display());
                Ok(None)
            }
            Err(e) => Err(e),
        })
        .collect::<moat_jail::Result<Vec<_>>>()?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    nix::mount::mount(Some("tmpfs"), STAGE, Some("tmpfs"), flags, Some("mode=0755,size=64k"))
        .map_err(|e| Error::io(format!("mount a tmpfs at {STAGE}"), e))?;
    for (m, copy) in auto.mounts.iter().zip(copies) {
        let Some(copy) = copy else { continue };
        let made = match (m.inside, m.dir) {
            // below a mount left out, or changed since create
            (true, _) if !m.staged.exists() => {
                tracing::info!("{} is missing in the sandbox's tree: left out", m.source.display());
                continue;
            }
            (true, _) => Ok(()),
            (false, true) => std::fs::create_dir(&m.staged),
            (false, false) => std::fs::File::create(&m.staged).map(|_| ()),
        };
        made.map_err(|e| Error::io(format!("create {}", m.staged.display()), e))?;
        moat_jail::sys::move_mount_to(copy.as_fd(), &m.staged)
            .map_err(|e| Error::io(format!("place the idmapped copy of {}", m.source.display()), e))?;
    }
    if !auto.cover.is_empty() {
        let (dir, file) = (Path::new(STAGE).join(".empty"), Path::new(STAGE).join(".empty-file"));
        std::fs::create_dir(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        std::fs::File::create(&file).map_err(|e| Error::io(format!("create {}", file.display()), e))?;
        for point in &auto.cover {
            // below another mount left out: already hidden
            let Ok(meta) = std::fs::symlink_metadata(point) else { continue };
            let empty = if meta.is_dir() { &dir } else { &file };
            nix::mount::mount(Some(empty.as_path()), point, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| Error::io(format!("cover {}", point.display()), e))?;
        }
    }
    if let Some(whole) = auto.mounts.first().filter(|_| auto.read_only) {
        moat_jail::sys::mount_setattr_rdonly(&whole.staged, true)
            .map_err(|e| Error::io(format!("make {} read-only", whole.staged.display()), e))?;
    }
    if let Some(o) = &auto.overlay {
        std::fs::create_dir(&o.target).map_err(|e| Error::io(format!("create {}", o.target.display()), e))?;
        overlay::mount(&o.layers, &o.target, auto.base)?;
    }
    Ok(())
}

/// Makes the tree of [`place`] once in a child of ours, which then ends
/// (its mount namespace with it): whether stage 1 will be able to, before
/// the sandbox is committed to a user namespace. For an overlayfs rootfs,
/// whose options the kernel may take from mountinfo and refuse back.
fn trial(auto: &Auto) -> std::result::Result<(), String> {
    let (r, w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let report = &w;
    let child = moat_jail::sys::fork_with(|| match place_tree(auto) {
        Ok(()) => 0,
        Err(e) => {
            let _ = nix::unistd::write(report, e.to_string().as_bytes());
            1
        }
    })
    .map_err(|e| e.to_string())?;
    drop(w);
    let mut why = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut why);
    match nix::sys::wait::waitpid(child, None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
        _ => Err(String::from_utf8_lossy(&why).into_owned()),
    }
}
