//! Fds a caller passes into a container (fds 3..3+N: `--preserve-fds` and
//! socket activation's LISTEN_FDS). moat must never hand over an fd of its
//! own: if the caller did not open fd 3, the first file moat opens would
//! become fd 3 and leak into the container (a directory fd there reaches the
//! host root). So the caller's fds are checked to be open before moat opens
//! anything.

use crate::{Error, Result};

/// LISTEN_FDS, honoured only when LISTEN_PID names this process (the
/// systemd convention: an inherited environment does not count).
pub fn listen_fds() -> u32 {
    let ours = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<i32>().ok()) == Some(std::process::id() as i32);
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
}

/// Checks that fds 3..3+n are open. Call before opening any fd.
pub fn check_inherited(n: u32) -> Result<()> {
    for fd in 3..3u32.saturating_add(n) {
        let raw = i32::try_from(fd).map_err(|_| Error::Invalid(format!("--preserve-fds: fd {fd} is out of range")))?;
        if !moat_jail::sys::fd_is_open(raw) {
            return Err(Error::Invalid(format!(
                "--preserve-fds/LISTEN_FDS: fd {fd} is not open in the caller; moat passes only fds it was given"
            )));
        }
    }
    Ok(())
}
