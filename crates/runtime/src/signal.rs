//! `kill`: signal names and numbers, and delivery to a container.

use nix::sys::signal::{kill as send, Signal};
use nix::unistd::Pid;

use crate::state::{Container, Status};
use crate::{Error, Global, Result};

/// Parses "TERM", "SIGTERM", "sigterm" or "15".
pub fn parse(s: &str) -> Result<Signal> {
    let bad = || Error::Invalid(format!("unknown signal {s:?}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    name.parse::<Signal>().map_err(|_| bad())
}

/// Sends `sig` to the container's init, or with `all` to every process in its cgroup.
pub fn kill(g: &Global, id: &str, sig: Signal, all: bool) -> Result<()> {
    let c = Container::open(&g.root, id)?;
    let s = c.saved()?;
    if c.status() == Status::Stopped && !all {
        return Err(Error::BadState("container not running".into()));
    }
    if all {
        let cg = s.cgroup.clone().map(moat_jail::cgroups::Manager::from_location);
        for p in cg.map(|m| m.pids().unwrap_or_default()).unwrap_or_default() {
            let _ = send(p, sig);
        }
        return Ok(());
    }
    send(Pid::from_raw(s.pid), sig).map_err(|e| Error::io(format!("kill {}", s.pid), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse("SIGKILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("usr1").unwrap(), Signal::SIGUSR1);
        assert!(parse("NOPE").is_err());
        assert!(parse("99").is_err());
    }
}
