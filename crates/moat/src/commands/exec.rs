//! `moat exec`: builds the process from `--process` or from the flags on top
//! of the container's own process (as runc does), then runs it.

use anyhow::{bail, Context, Result};
use moat_runtime::exec::{container_spec, exec, ExecOpts};
use moat_runtime::Global;
use oci_spec::runtime::{Capability, Process};

use crate::cli::ExecArgs;

fn process(g: &Global, a: &ExecArgs) -> Result<Process> {
    if let Some(p) = &a.process {
        let text = std::fs::read_to_string(p).with_context(|| format!("read --process {}", p.display()))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        return serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: {}: {}", p.display(), e.path(), e.inner()));
    }
    if a.command.is_empty() {
        bail!("exec: no command given (and no --process)");
    }
    let spec = container_spec(g, &a.id)?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(c) = &a.cwd {
        p.set_cwd(c.clone());
    }
    if let Some(u) = &a.user {
        let mut user = p.user().clone();
        let (uid, gid) = u.split_once(':').map(|(u, g)| (u, Some(g))).unwrap_or((u, None));
        user.set_uid(uid.parse().with_context(|| format!("--user {u:?}: uid must be a number"))?);
        user.set_gid(match gid {
            Some(g) => g.parse().with_context(|| format!("--user {u:?}: gid must be a number"))?,
            None => 0,
        });
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let cap: Capability = c.parse().map_err(|_| anyhow::anyhow!("--cap {c:?}: unknown capability"))?;
            let add = |s: &Option<std::collections::HashSet<Capability>>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub fn run(g: &Global, a: ExecArgs) -> Result<i32> {
    let p = process(g, &a)?;
    let opts = ExecOpts {
        id: a.id.clone(),
        process: p,
        console_socket: a.console_socket.clone(),
        console_fd: None,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
    };
    if a.detach {
        exec(g, opts)?;
        return Ok(0);
    }
    Ok(moat_runtime::run::exec_foreground(g, opts)?)
}
