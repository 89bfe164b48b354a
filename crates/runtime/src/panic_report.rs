//! A Sentry's panic, told to its watchdog. The Sentry's stdio is /dev/null
//! (a shim waits for EOF on the caller's), so a panic's message would go
//! nowhere and the log would only say which signal ended it. Its hook
//! writes the message, on one line, into a pipe whose other end the
//! watchdog reads once the Sentry has ended. The hook prints no backtrace:
//! that would ask for the working directory (getcwd), which the Sentry's
//! allowlist refuses, and the Sentry would die of SIGSYS instead.

use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;

/// At most this much of a message is kept.
const MAX: usize = 1024;

/// A pipe: (the watchdog's read end, the Sentry's write end). Neither
/// blocks: a report that does not fit is cut, never waited on.
pub fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
}

/// Has every panic of this process write its message to `to`.
pub fn report_to(to: OwnedFd) {
    std::panic::set_hook(Box::new(move |info| {
        let line = one_line(&info.to_string());
        let _ = nix::unistd::write(to.as_fd(), line.as_bytes());
    }));
}

/// The report in `from`, if a panic wrote one (read once its writer ended).
pub fn read(from: &OwnedFd) -> Option<String> {
    let mut buf = [0u8; MAX];
    let n = nix::unistd::read(from, &mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// `text` on one line, at most [`MAX`] bytes, ending in a newline.
fn one_line(text: &str) -> String {
    let mut line: String = text.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    if line.len() > MAX - 1 {
        let mut end = MAX - 1;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_one_line_read_back() {
        let (r, w) = pipe().unwrap();
        assert_eq!(read(&r), None, "nothing written");
        let line = one_line("panicked at src/x.rs:1:2:\nassertion failed: !dst.is_unspecified()");
        assert_eq!(line, "panicked at src/x.rs:1:2: assertion failed: !dst.is_unspecified()\n");
        nix::unistd::write(w.as_fd(), line.as_bytes()).unwrap();
        drop(w);
        assert_eq!(read(&r).as_deref(), Some("panicked at src/x.rs:1:2: assertion failed: !dst.is_unspecified()"));
        assert!(one_line(&"é".repeat(MAX)).len() <= MAX);
    }
}
