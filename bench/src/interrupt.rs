//! Ctrl-C and SIGTERM: finish the current step, clean up, and write what was measured,
//! instead of dying with containers and sandboxes left running.
//!
//! The signals are blocked in every thread (so this must run before any thread starts) and a
//! dedicated thread takes them with sigwait, which needs no unsafe handler. Children start
//! with an empty signal mask (std resets it), so a terminal's Ctrl-C still reaches a runtime
//! CLI in the foreground process group; runsc's sandbox, in a session of its own, is left for
//! the cleanup. A second signal exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, Signal};

static STOP: AtomicBool = AtomicBool::new(false);

/// Blocks SIGINT and SIGTERM and starts the thread that waits for them.
pub fn install() -> Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block().context("block SIGINT and SIGTERM")?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(signal) = set.wait() {
                if STOP.swap(true, Ordering::SeqCst) {
                    eprintln!("bench: {signal} again; exiting without cleanup");
                    std::process::exit(130);
                }
                eprintln!("bench: {signal}; stopping after the current step and cleaning up");
            }
        })
        .context("start the signal thread")?;
    Ok(())
}

/// Whether the user asked the bench to stop.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
