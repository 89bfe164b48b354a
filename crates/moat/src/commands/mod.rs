//! One file per verb; each turns parsed flags into a library call.

mod create;
mod delete;
mod do_;
mod events;
mod exec;
mod gofer;
mod info;
mod kill;
mod list;
mod pause;
mod ps;
mod run;
mod start;
mod state;
mod update;

use anyhow::Result;
use moat_runtime::{Global, Platform};

use crate::cli::{Cli, Cmd};

/// Runs the verb; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let platform: Platform = cli.platform.parse()?;
    let userns = cli.userns.parse()?;
    let directfs = match cli.directfs.as_str() {
        "true" => true,
        "false" => false,
        other => anyhow::bail!("--directfs: {other:?} is neither true nor false"),
    };
    let shared_root = match cli.file_access.as_str() {
        "exclusive" => false,
        "shared" => true,
        other => anyhow::bail!("--file-access: {other:?} is neither exclusive nor shared"),
    };
    let g = Global {
        root: cli.root,
        systemd_cgroup: cli.systemd_cgroup,
        platform,
        strace: cli.strace,
        userns,
        directfs,
        shared_root,
        network: cli.network.parse()?,
    };
    match cli.cmd {
        Cmd::Create(a) => create::run(&g, a),
        Cmd::Start { id } => start::run(&g, &id),
        Cmd::Run { create, detach, keep } => run::run(&g, create, detach, keep),
        Cmd::State { id } => state::run(&g, &id),
        Cmd::Kill { all, id, signal } => kill::run(&g, &id, &signal, all),
        Cmd::Delete { force, id } => delete::run(&g, &id, force),
        Cmd::List { format, quiet } => list::run(&g, &format, quiet),
        Cmd::Ps { format, id, ps_args } => ps::run(&g, &id, &format, ps_args),
        Cmd::Exec(a) => exec::run(&g, a),
        Cmd::Pause { id } => pause::pause(&g, &id),
        Cmd::Resume { id } => pause::resume(&g, &id),
        Cmd::Events { stats, interval, id } => events::run(&g, &id, stats, &interval),
        Cmd::Update { resources, id } => update::run(&g, &id, resources),
        Cmd::Spec { bundle, rootless } => info::spec(&bundle, rootless),
        Cmd::Features => info::features(),
        Cmd::Syscalls { markdown } => info::syscalls(markdown),
        Cmd::Do(a) => do_::run(&g, a),
        Cmd::Gofer(a) => gofer::run(a),
        Cmd::Boot { print_filter } => info::boot(print_filter),
        Cmd::Checkpoint { .. } | Cmd::Restore { .. } => anyhow::bail!("checkpoint/restore is not supported by moat"),
    }
}
