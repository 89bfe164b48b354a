//! `delete`: kill what is left, remove the cgroup and state, run poststop hooks.

use moat_jail::cgroups::Manager;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::create::state_json;
use crate::state::{Container, Status};
use crate::{hooks, procs, Error, Global, Result};

/// Deletes a container. Without `force`, a running or paused one is an error.
pub fn delete(g: &Global, id: &str, force: bool) -> Result<()> {
    let c = match Container::open(&g.root, id) {
        Ok(c) => c,
        Err(Error::NotExist(_)) => {
            // a create that died before writing state leaves a bare dir
            let dir = g.root.join(id);
            if crate::id::validate(id).is_ok() && dir.is_dir() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return if force { Ok(()) } else { Err(Error::NotExist(id.into())) };
        }
        Err(e) => return Err(e),
    };
    let status = c.status();
    if matches!(status, Status::Running | Status::Paused) && !force {
        return Err(Error::BadState(format!("cannot delete container {id} that is not stopped: {status}")));
    }
    destroy(c)
}

/// Tears a container down whatever its status.
pub fn destroy(c: Container) -> Result<()> {
    let s = c.saved()?.clone();
    let spec = c.spec().ok();
    let cg = s.cgroup.clone().map(Manager::from_location);
    if let Some(cg) = &cg {
        if cg.is_frozen() {
            let _ = cg.set_frozen(false);
        }
    }
    let init = Pid::from_raw(s.pid);
    if procs::alive(init, s.pid_start) {
        let _ = kill(init, Signal::SIGKILL);
    }
    // init first: with a pid namespace it finishes dying only once every
    // process in it is reaped, and the Sentry's reaper is its watchdog, in
    // the same cgroup — killed first, it would leave the Sentry's zombie to
    // the host's init, whenever that gets to it
    procs::wait_gone(init, s.pid_start, 5000);
    if let Some(cg) = &cg {
        // without a pid namespace, init's death does not take the rest along
        for _ in 0..100 {
            let pids = cg.pids().unwrap_or_default();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = kill(p, Signal::SIGKILL);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    // the Sentry is gone (it was in the cgroup): the pod's interface is the pod's again
    if let Some(p) = &s.pod {
        if let Err(e) = crate::create::give_back_pod(p) {
            tracing::warn!(error = %e, "delete: the pod's interface not given back");
        }
    }
    let state = state_json(&c, Status::Stopped).unwrap_or_default();
    if let Some(cg) = &cg {
        cg.destroy()?;
    }
    let dir = c.dir().to_path_buf();
    let removed = c.remove();
    crate::idrange::release(std::path::Path::new(crate::idrange::REGISTRY), &dir);
    removed?;
    crate::userns::forget(&s.rootfs);
    if let Some(h) = spec.as_ref().and_then(|s| s.hooks().as_ref()).and_then(|h| h.poststop().clone()) {
        // the spec: a failing poststop hook is logged and delete goes on
        hooks::run_all_warn("poststop", &h, &state);
    }
    Ok(())
}
