//! `start`: release a created container's init to exec the user program.

use std::io::Read;
use std::os::unix::net::UnixStream;

use crate::create::state_json;
use crate::state::{Container, Status, START_SOCKET};
use crate::{hooks, Error, Global, Result};

/// Starts a created container and runs its poststart hooks.
pub fn start(g: &Global, id: &str) -> Result<()> {
    let mut c = Container::open(&g.root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => return Err(Error::BadState("cannot start a container that has stopped".into())),
        Status::Running => return Err(Error::BadState("cannot start an already running container".into())),
        s => return Err(Error::BadState(format!("cannot start a container in the {s} state"))),
    }
    let (_dirfd, path) = c.short_path(START_SOCKET)?;
    let mut conn = UnixStream::connect(&path).map_err(|e| Error::io("connect to the container's start socket", e))?;
    // init closes the connection by exec (close-on-exec) or writes why it failed
    let mut reply = String::new();
    conn.read_to_string(&mut reply).map_err(|e| Error::io("wait for the container to start", e))?;
    let _ = std::fs::remove_file(c.dir().join(START_SOCKET));
    let mut saved = c.saved()?.clone();
    saved.started = true;
    c.save(saved)?;
    if !reply.is_empty() {
        return Err(Error::Init(reply));
    }
    let spec = c.spec()?;
    if let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststart().clone()) {
        let state = state_json(&c, Status::Running)?;
        // the spec: a failing poststart hook is logged and the lifecycle goes on
        hooks::run_all_warn("poststart", &h, &state);
    }
    Ok(())
}
