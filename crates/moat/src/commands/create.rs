//! `moat create`.

use anyhow::Result;
use moat_runtime::create::{create, CreateOpts};
use moat_runtime::Global;

use crate::cli::CreateArgs;

/// The library's options from the flags.
pub fn opts(a: CreateArgs) -> CreateOpts {
    CreateOpts {
        id: a.id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        console_fd: None,
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
    }
}

pub fn run(g: &Global, a: CreateArgs) -> Result<i32> {
    create(g, opts(a))?;
    Ok(0)
}
