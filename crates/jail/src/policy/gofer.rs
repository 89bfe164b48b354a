//! The gofer's allowlist: file calls relative to the fds it holds, socket
//! I/O on the one connection it serves, and what std needs for threads and
//! memory. No open by absolute path outside openat2 on its own fds, no new
//! sockets, no exec, no namespaces.

use super::{Arg, Policy, Rule, THREAD_FLAGS};

const FCNTL_CMDS: &[(i32, &str)] = &[
    (libc::F_GETFL, "server: open flags of a fid's fd"),
    (libc::F_SETFL, "server: O_NONBLOCK off on accepted sockets"),
    (libc::F_GETFD, "std: fd flags"),
    (libc::F_SETFD, "std: close-on-exec"),
    (libc::F_DUPFD_CLOEXEC, "server: dup a fid's fd"),
    (libc::F_OFD_SETLK, "server: Tlock"),
    (libc::F_OFD_GETLK, "server: Tgetlock"),
];

/// The gofer policy.
pub fn policy() -> Policy {
    let mut rules = vec![
        // the 9P connection
        Rule::any("read", "transport: read frames"),
        Rule::any("write", "transport: write frames; stderr logs"),
        Rule::any("recvmsg", "transport: frames with fds"),
        Rule::any("sendmsg", "transport: Rlopen with a donated fd"),
        Rule::any("recvfrom", "transport: read frames (std)"),
        Rule::any("sendto", "transport: write frames (std)"),
        Rule::any("shutdown", "transport: end a session"),
        Rule::any("getsockname", "transport: is it a unix socket (donation)"),
        Rule::any("accept4", "serve_listener: more sessions on a listening socket"),
        Rule::any("close", "every fid"),
        // file operations, all relative to fds the server holds
        Rule::any("openat2", "node: every walk, RESOLVE_BENEATH|NO_SYMLINKS|NO_MAGICLINKS"),
        Rule::any("openat", "node: reopen of an O_PATH fd through /proc/self/fd"),
        Rule::any("newfstatat", "getattr"),
        Rule::any("fstat", "getattr"),
        Rule::any("statx", "std metadata"),
        Rule::any("fstatfs", "statfs"),
        Rule::any("statfs", "statfs (std)"),
        Rule::any("getdents64", "readdir"),
        Rule::any("lseek", "readdir offsets"),
        Rule::any("pread64", "read"),
        Rule::any("pwrite64", "write"),
        Rule::any("readlinkat", "readlink"),
        Rule::any("ftruncate", "setattr size"),
        Rule::any("fallocate", "fallocate"),
        Rule::any("fsync", "fsync"),
        Rule::any("fdatasync", "fsync datasync"),
        Rule::any("fchmod", "setattr mode"),
        Rule::any("fchmodat", "setattr mode"),
        Rule::any("fchmodat2", "setattr mode (newer libc)"),
        Rule::any("fchown", "setattr uid/gid"),
        Rule::any("fchownat", "setattr uid/gid"),
        Rule::any("utimensat", "setattr times"),
        Rule::any("mkdirat", "mkdir"),
        Rule::any("mknodat", "mknod (fifos, sockets, regular)"),
        Rule::any("symlinkat", "symlink"),
        Rule::any("linkat", "link"),
        Rule::any("renameat", "rename"),
        Rule::any("renameat2", "renameat"),
        Rule::any("unlinkat", "unlinkat, remove"),
        Rule::any("fgetxattr", "xattrwalk"),
        Rule::any("fsetxattr", "xattrcreate"),
        Rule::any("flistxattr", "xattrwalk with empty name"),
        Rule::any("fremovexattr", "xattrcreate with empty value"),
        Rule::any("getxattr", "xattr through /proc/self/fd"),
        Rule::any("lgetxattr", "xattr on symlinks"),
        Rule::any("llistxattr", "xattr on symlinks"),
        Rule::any("listxattr", "xattr through /proc/self/fd"),
        Rule::any("setxattr", "xattr through /proc/self/fd"),
        Rule::any("removexattr", "xattr through /proc/self/fd"),
        // threads and memory (std, glibc)
        Rule::fail("clone3", libc::ENOSYS, "glibc falls back to clone, whose flags we can check"),
        Rule::with("clone", &[Arg::Eq(0, THREAD_FLAGS)], "server: one thread per request in flight"),
        Rule::any("futex", "std sync"),
        Rule::any("set_robust_list", "glibc thread start"),
        Rule::any("rseq", "glibc thread start"),
        Rule::any("mmap", "allocator, thread stacks"),
        Rule::any("munmap", "allocator"),
        Rule::any("mprotect", "thread stack guard pages"),
        Rule::any("madvise", "allocator"),
        Rule::any("mremap", "allocator"),
        Rule::any("brk", "allocator"),
        Rule::any("rt_sigprocmask", "thread start"),
        Rule::any("rt_sigreturn", "signal return"),
        Rule::any("sigaltstack", "std stack-overflow guard"),
        Rule::any("sched_yield", "spin locks"),
        Rule::any("sched_getaffinity", "std available_parallelism"),
        Rule::any("getrandom", "std HashMap seeds"),
        Rule::any("clock_gettime", "time (vDSO fallback)"),
        Rule::any("clock_nanosleep", "retry back-off"),
        Rule::any("nanosleep", "retry back-off"),
        Rule::any("gettid", "tracing"),
        Rule::any("geteuid", "server: are we root (ownership on create)"),
        Rule::any("getegid", "server: are we root (ownership on create)"),
        Rule::any("getuid", "std"),
        Rule::any("getgid", "std"),
        Rule::any("rt_sigaction", "std: SIGPIPE disposition"),
        Rule::any("getpid", "abort"),
        Rule::any("tgkill", "abort on panic"),
        Rule::any("exit", "thread end"),
        Rule::any("exit_group", "process end"),
        Rule::with("prctl", &[Arg::Eq(0, libc::PR_SET_NAME as u64)], "std thread names"),
        Rule::any("poll", "std stdio sanity check"),
        Rule::any("ppoll", "std"),
    ];
    for (cmd, why) in FCNTL_CMDS {
        rules.push(Rule { name: "fcntl", args: &[], why, errno: None });
        let last = rules.len() - 1;
        rules[last].args = fcntl_arg(*cmd);
    }
    Policy { name: "gofer", rules }
}

/// A static argument list for one fcntl command.
fn fcntl_arg(cmd: i32) -> &'static [Arg] {
    // one static slice per command: the list is small and fixed
    macro_rules! arm {
        ($($c:expr),*) => {{
            $( if cmd == $c { const A: &[Arg] = &[Arg::Eq(1, $c as u64)]; return A; } )*
            &[]
        }};
    }
    arm!(
        libc::F_GETFL,
        libc::F_SETFL,
        libc::F_GETFD,
        libc::F_SETFD,
        libc::F_DUPFD_CLOEXEC,
        libc::F_OFD_SETLK,
        libc::F_OFD_GETLK
    )
}
