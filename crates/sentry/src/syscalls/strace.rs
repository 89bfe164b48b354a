//! `--strace`: a served call as a line a person reads, the way strace and
//! runsc print them — paths as strings, AT_FDCWD and open flags by name,
//! fds and counts in decimal. Calls this module does not know show their
//! first four arguments in hex.
//!
//! The caller's memory is read when the line is made: a program changing
//! it meanwhile changes only the log.

use super::Memory;

/// How one argument is shown.
#[derive(Clone, Copy)]
enum Arg {
    /// a NUL-terminated path
    Path,
    /// a directory fd (AT_FDCWD by name)
    Dirfd,
    /// an fd or count, decimal
    Int,
    /// open(2) flags
    OpenFlags,
    /// a mode, octal
    Mode,
    /// anything else (a pointer, a request): hex
    Hex,
}

use Arg::{Dirfd, Hex, Int, Mode, OpenFlags, Path};

/// The argument kinds of the calls the log knows.
fn shape(name: &str) -> Option<&'static [Arg]> {
    Some(match name {
        "open" => &[Path, OpenFlags, Mode],
        "openat" => &[Dirfd, Path, OpenFlags, Mode],
        "creat" | "mkdir" | "chmod" => &[Path, Mode],
        "stat" | "lstat" | "statfs" => &[Path, Hex],
        "newfstatat" => &[Dirfd, Path, Hex, Hex],
        "statx" => &[Dirfd, Path, Hex, Hex, Hex],
        "access" => &[Path, Mode],
        "faccessat" | "fchmodat" | "mkdirat" => &[Dirfd, Path, Mode],
        "faccessat2" => &[Dirfd, Path, Mode, Hex],
        "readlink" => &[Path, Hex, Int],
        "readlinkat" => &[Dirfd, Path, Hex, Int],
        "rmdir" | "unlink" | "chdir" | "chroot" => &[Path],
        "unlinkat" => &[Dirfd, Path, Hex],
        "execve" => &[Path, Hex, Hex],
        "execveat" => &[Dirfd, Path, Hex, Hex, Hex],
        "rename" | "link" | "symlink" => &[Path, Path],
        "renameat" => &[Dirfd, Path, Dirfd, Path],
        "renameat2" => &[Dirfd, Path, Dirfd, Path, Hex],
        "linkat" => &[Dirfd, Path, Dirfd, Path, Hex],
        "symlinkat" => &[Path, Dirfd, Path],
        "chown" | "lchown" => &[Path, Int, Int],
        "fchownat" => &[Dirfd, Path, Int, Int, Hex],
        "truncate" => &[Path, Int],
        "utimensat" => &[Dirfd, Path, Hex, Hex],
        "mknod" => &[Path, Mode, Hex],
        "mknodat" => &[Dirfd, Path, Mode, Hex],
        "getxattr" | "lgetxattr" | "setxattr" | "lsetxattr" => &[Path, Path, Hex, Int],
        "socket" | "socketpair" => &[Int, Hex, Int],
        "ioctl" => &[Int, Hex, Hex],
        "prctl" => &[Int, Hex, Hex],
        "uname" | "sysinfo" => &[Hex],
        "sethostname" | "setdomainname" => &[Path, Int],
        "syslog" => &[Int, Hex, Int],
        _ => return None,
    })
}

/// open(2) flag names, access mode first.
fn open_flags(v: u64) -> String {
    let v = v as i32;
    let mut parts = vec![match v & libc::O_ACCMODE {
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    }
    .to_string()];
    let named = [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_NOCTTY, "O_NOCTTY"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
        (libc::O_PATH, "O_PATH"),
        (libc::O_TMPFILE & !libc::O_DIRECTORY, "O_TMPFILE"),
    ];
    let mut rest = v & !libc::O_ACCMODE;
    for (bit, name) in named {
        if rest & bit == bit && bit != 0 {
            parts.push(name.into());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#o}"));
    }
    parts.join("|")
}

/// A C string as strace quotes it (at most 256 bytes shown).
fn quoted(bytes: &[u8], complete: bool) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    if !complete {
        s.push_str("...");
    }
    s
}

fn one(kind: Arg, v: u64, mem: &dyn Memory) -> String {
    match kind {
        Path => match mem.read_cstr(v, 256) {
            Ok(Some(p)) => quoted(&p, true),
            Ok(None) => {
                let mut head = vec![0u8; 256];
                match mem.read(v, &mut head) {
                    Ok(()) => quoted(&head, false),
                    Err(_) => format!("{v:#x}"),
                }
            }
            Err(_) => format!("{v:#x}"),
        },
        Dirfd if v as i32 == libc::AT_FDCWD => "AT_FDCWD".into(),
        Dirfd | Int => (v as i64).to_string(),
        OpenFlags => open_flags(v),
        Mode => format!("{:#o}", v as u32),
        Hex => format!("{v:#x}"),
    }
}

/// `name(args…)` for the log.
pub fn call(name: &str, args: [u64; 6], mem: &dyn Memory) -> String {
    let shown: Vec<String> = match shape(name) {
        Some(kinds) => kinds.iter().zip(args).map(|(k, v)| one(*k, v, mem)).collect(),
        None => args[..4].iter().map(|v| format!("{v:#x}")).collect(),
    };
    format!("{name}({})", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    /// Memory with one string at 0x1000.
    struct Fake(&'static [u8]);

    impl Memory for Fake {
        fn write(&self, _: u64, _: &[u8]) -> Result<(), Errno> {
            Err(Errno::EFAULT)
        }
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
            let off = addr.checked_sub(0x1000).ok_or(Errno::EFAULT)? as usize;
            let src = self.0.get(off..off + buf.len()).ok_or(Errno::EFAULT)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    #[test]
    fn openat_reads_like_strace() {
        let mut page = vec![0u8; 4096];
        page[..12].copy_from_slice(b"/etc/hosts\0\0");
        let mem = Fake(Box::leak(page.into_boxed_slice()));
        let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
        let line = call("openat", [libc::AT_FDCWD as u64, 0x1000, flags, 0, 0, 0], &mem);
        assert_eq!(line, "openat(AT_FDCWD, \"/etc/hosts\", O_RDONLY|O_CLOEXEC, 0o0)");
        let w = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64;
        assert_eq!(open_flags(w), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(call("mount", [1, 2, 3, 4, 5, 6], &mem), "mount(0x1, 0x2, 0x3, 0x4)");
        assert_eq!(call("unlink", [0x9999_0000, 0, 0, 0, 0, 0], &mem), "unlink(0x99990000)");
    }

    #[test]
    fn odd_bytes_are_escaped() {
        assert_eq!(quoted(b"a\"b\n\x01", true), "\"a\\\"b\\n\\x01\"");
        assert_eq!(quoted(b"abc", false), "\"abc\"...");
    }
}
