//! Facts about host processes read from /proc.

use std::fs;

use nix::unistd::Pid;

/// The start time of `pid` in clock ticks since boot (field 22 of
/// /proc/PID/stat), and its state letter.
pub fn stat(pid: Pid) -> Option<(u64, char)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parens: fields start after the last ')'
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// The parent of `pid` (field 4 of /proc/PID/stat).
pub fn parent(pid: Pid) -> Option<Pid> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ppid = s[s.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()?;
    Some(Pid::from_raw(ppid))
}

/// Whether `pid` is the same live (not zombie) process that started at `start`.
pub fn alive(pid: Pid, start: u64) -> bool {
    match stat(pid) {
        Some((s, state)) => s == start && state != 'Z' && state != 'X',
        None => false,
    }
}

/// Waits until `pid` (started at `start`) is gone or a zombie, up to `ms` milliseconds.
pub fn wait_gone(pid: Pid, start: u64, ms: u64) -> bool {
    for _ in 0..ms {
        if !alive(pid, start) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    !alive(pid, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_reuse_is_detected() {
        let me = Pid::this();
        let (start, _) = stat(me).unwrap();
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
    }
}
