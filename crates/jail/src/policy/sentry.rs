//! The Sentry's allowlist: the seccomp user-notification ioctls on the
//! stubs' notify fds, reading and writing stub memory, taking a stub's fds
//! and installing new ones, taking new notify fds on its control socket,
//! serving the sandbox's /proc (FUSE requests; reading the procfs fds it
//! holds), and what std needs. It runs in an empty mount namespace; its
//! notify thread alone enters the container's file tree (a chroot of its
//! own fs_struct) and there makes the callers' calls that change the tree,
//! as the caller (moat_sentry::vfs). With a netstack (`--network=sandbox` or `none`),
//! one socketpair per app socket, pumped by its thread. The app's unix
//! sockets it makes, in a network namespace of its own (entered before
//! this list applies); with `--network=host`, its socket maker (confined
//! by this list too) makes the app's internet sockets in the app's. No
//! other sockets of its own, no exec, no namespaces.

use super::{Arg, Policy, Rule, THREAD_FLAGS};

/// Why the interface queries (SIOCGIFNAME, CONF, FLAGS, ADDR, MTU, HWADDR,
/// INDEX) are allowed.
const IFREQ_WHY: &str = "without a netstack: an app's interface query, made on a socket of its network namespace";

/// Why internet sockets are allowed.
const MAKER_WHY: &str =
    "--network=host: the app's internet sockets, made by the socket maker in the app's namespace (the Sentry's is empty)";
/// A socket's type (the low bits of socket(2)'s second argument): stream.
const STREAM: Arg = Arg::MaskedEq(1, 0xf, libc::SOCK_STREAM as u64);
/// A socket's type: datagram (UDP, ICMP echo).
const DGRAM: Arg = Arg::MaskedEq(1, 0xf, libc::SOCK_DGRAM as u64);

/// FUSE_DEV_IOC_BACKING_OPEN: _IOW(229, 1, struct fuse_backing_map)
const FUSE_BACKING_OPEN: u64 = 0x4010_e501;
/// FUSE_DEV_IOC_BACKING_CLOSE: _IOW(229, 2, uint32_t)
const FUSE_BACKING_CLOSE: u64 = 0x4004_e502;
/// SECCOMP_IOCTL_NOTIF_RECV: _IOWR('!', 0, struct seccomp_notif)
pub const NOTIF_RECV: u64 = 0xc050_2100;
/// SECCOMP_IOCTL_NOTIF_SEND: _IOWR('!', 1, struct seccomp_notif_resp)
pub const NOTIF_SEND: u64 = 0xc018_2101;
/// SECCOMP_IOCTL_NOTIF_ID_VALID: _IOW('!', 2, __u64)
pub const NOTIF_ID_VALID: u64 = 0x4008_2102;
/// the same, as Linux 5.0–5.6 numbered it (_IOR); the kernel still accepts it
pub const NOTIF_ID_VALID_OLD: u64 = 0x8008_2102;
/// SECCOMP_IOCTL_NOTIF_ADDFD: _IOW('!', 3, struct seccomp_notif_addfd)
pub const NOTIF_ADDFD: u64 = 0x4018_2103;
/// SECCOMP_IOCTL_NOTIF_SET_FLAGS: _IOW('!', 4, __u64)
pub const NOTIF_SET_FLAGS: u64 = 0x4008_2104;
/// PIDFD_GET_INFO: _IOWR(0xFF, 11, struct pidfd_info) (64 bytes)
pub const PIDFD_GET_INFO: u64 = 0xC040_FF0B;
/// seccomp(2) operation libseccomp uses while receiving
const SECCOMP_GET_NOTIF_SIZES: u64 = 3;

/// The Sentry policy.
pub fn policy() -> Policy {
    let rules = vec![
        Rule::with("ioctl", &[Arg::Eq(1, NOTIF_RECV)], "notify: receive a served call"),
        Rule::with("ioctl", &[Arg::Eq(1, NOTIF_SEND)], "notify: answer it"),
        Rule::with("ioctl", &[Arg::Eq(1, NOTIF_ID_VALID)], "notify: is the caller still the same"),
        Rule::with("ioctl", &[Arg::Eq(1, NOTIF_ID_VALID_OLD)], "notify: same, older numbering"),
        Rule::with("ioctl", &[Arg::Eq(1, NOTIF_ADDFD)], "notify: install an fd in the caller"),
        Rule::with("ioctl", &[Arg::Eq(1, NOTIF_SET_FLAGS)], "notify: synchronous wake-up"),
        Rule::with("ioctl", &[Arg::Eq(1, PIDFD_GET_INFO)], "a caller's process id, from its pidfd (exec forgets it)"),
        Rule::with(
            "ioctl",
            &[Arg::Eq(1, FUSE_BACKING_OPEN)],
            "--directfs=false: a gofer's file backs an open FUSE file",
        ),
        Rule::with("ioctl", &[Arg::Eq(1, FUSE_BACKING_CLOSE)], "--directfs=false: the last open of it ended"),
        Rule::with("ioctl", &[Arg::Eq(1, 0x8910)], IFREQ_WHY),
        Rule::with("ioctl", &[Arg::Eq(1, 0x8912)], IFREQ_WHY),
        Rule::with("ioctl", &[Arg::Eq(1, 0x8913)], IFREQ_WHY),
        Rule::with("ioctl", &[Arg::Eq(1, 0x8915)], IFREQ_WHY),
        Rule::with("ioctl", &[Arg::Eq(1, 0x8921)], IFREQ_WHY),
        Rule::with("ioctl", &[Arg::Eq(1, 0x8927)], IFREQ_WHY),
        Rule::with("ioctl", &[Arg::Eq(1, 0x8933)], IFREQ_WHY),
        Rule::with("seccomp", &[Arg::Eq(0, SECCOMP_GET_NOTIF_SIZES)], "libseccomp: notification sizes"),
        Rule::any("poll", "notify: wait on every notify fd and the control socket"),
        Rule::any("ppoll", "notify: the same, newer libc"),
        Rule::any("openat", "handlers: /proc/TID/mem of the caller, relative to a procfs dir fd (the root is empty)"),
        Rule::any("process_vm_readv", "handlers: read the caller's arguments (checked live after)"),
        Rule::any("pread64", "/proc/meminfo: the container cgroup's memory usage"),
        Rule::any("read", "/proc: FUSE requests, and the sandbox's procfs files"),
        Rule::any("getdents64", "/proc: list the sandbox's procfs"),
        Rule::any("newfstatat", "/proc: attributes from the sandbox's procfs"),
        Rule::any("fstat", "/proc: directory streams"),
        Rule::any("readlinkat", "/proc: links of the sandbox's processes"),
        Rule::any("lseek", "/proc: directory streams"),
        Rule::any("pidfd_open", "reopen /dev/fd/N: pin the caller"),
        Rule::with("unshare", &[Arg::Eq(0, libc::CLONE_FS as u64)], "the notify thread's own root and cwd"),
        Rule::any("chroot", "the notify thread enters the container's tree (the fd create hands over)"),
        Rule::any("fchdir", "into the container's tree, and to a caller's working directory there"),
        Rule::any("capget", "acting as the caller: its own capabilities"),
        Rule::any("capset", "acting as the caller: the caller's file capabilities, on this thread only"),
        Rule::any("setfsuid", "acting as the caller"),
        Rule::any("setfsgid", "acting as the caller"),
        Rule::any("setgroups", "acting as the caller"),
        Rule::any("getgroups", "its own groups, restored after"),
        Rule::any("geteuid", "its own ids"),
        Rule::any("getegid", "its own ids"),
        Rule::any("umask", "acting as the caller: its umask"),
        Rule::any("fstatfs", "a caller's dirfd: is it in the read-only replica"),
        Rule::any("statfs", "the caller's statfs, in the tree"),
        Rule::any("open", "the caller's open, in the tree"),
        Rule::any("openat2", "the caller's openat2, in the tree"),
        Rule::any("mkdir", "the caller's call, in the tree"),
        Rule::any("mkdirat", "the caller's call, in the tree"),
        Rule::any("mknod", "the caller's call, in the tree"),
        Rule::any("mknodat", "the caller's call, in the tree"),
        Rule::any("unlink", "the caller's call, in the tree"),
        Rule::any("unlinkat", "the caller's call, in the tree"),
        Rule::any("rmdir", "the caller's call, in the tree"),
        Rule::any("rename", "the caller's call, in the tree"),
        Rule::any("renameat", "the caller's call, in the tree"),
        Rule::any("renameat2", "the caller's call, in the tree"),
        Rule::any("link", "the caller's call, in the tree"),
        Rule::any("linkat", "the caller's call, in the tree"),
        Rule::any("symlink", "the caller's call, in the tree"),
        Rule::any("symlinkat", "the caller's call, in the tree"),
        Rule::any("chmod", "the caller's call, in the tree"),
        Rule::any("fchmodat", "the caller's call, in the tree"),
        Rule::any("chown", "the caller's call, in the tree"),
        Rule::any("lchown", "the caller's call, in the tree"),
        Rule::any("fchownat", "the caller's call, in the tree"),
        Rule::any("utime", "the caller's call, in the tree"),
        Rule::any("utimes", "the caller's call, in the tree"),
        Rule::any("futimesat", "the caller's call, in the tree"),
        Rule::any("utimensat", "the caller's call, in the tree"),
        Rule::any("truncate", "the caller's call, in the tree"),
        Rule::any("setxattr", "the caller's call, in the tree"),
        Rule::any("lsetxattr", "the caller's call, in the tree"),
        Rule::any("removexattr", "the caller's call, in the tree"),
        Rule::any("lremovexattr", "the caller's call, in the tree"),
        Rule::any("faccessat2", "the caller's access check for writing, in the tree"),
        Rule::any("bind", "the caller's unix socket, bound to a path in the tree"),
        Rule::fail("clone3", libc::ENOSYS, "glibc falls back to clone, whose flags we can check"),
        Rule::with("clone", &[Arg::Eq(0, THREAD_FLAGS)], "workers: a served call that may block"),
        Rule::any("set_robust_list", "glibc thread start"),
        Rule::any("rseq", "glibc thread start"),
        Rule::any("sched_getaffinity", "std thread start"),
        Rule::with(
            "sched_setaffinity",
            &[Arg::Eq(0, 0)],
            "the replayer keeps to the Sentry's CPU (its own affinity only)",
        ),
        Rule::any("pidfd_getfd", "reopen /dev/fd/N: the caller's file"),
        Rule::any("pwrite64", "handlers: write the caller's results"),
        Rule::any("accept4", "control socket: exec brings a new notify fd"),
        Rule::any("accept", "control socket"),
        Rule::any("recvmsg", "control socket: the fd itself; the replayer's jobs and answers"),
        Rule::any(
            "sendmsg",
            "the replayer (a sandbox with a user namespace): jobs and answers, with their fds; netstack: frames out of the pod's interface",
        ),
        Rule::any("getsockname", "--directfs=false: the 9P client asks whether its socket can carry fds"),
        Rule::with(
            "socketpair",
            &[Arg::Eq(0, libc::AF_UNIX as u64)],
            "netstack: an app socket's two ends; the app's unix socket pairs",
        ),
        Rule::with(
            "socket",
            &[Arg::Eq(0, libc::AF_UNIX as u64)],
            "the app's unix sockets, in the Sentry's own network namespace",
        ),
        Rule::with("socket", &[Arg::Eq(0, libc::AF_INET as u64), STREAM], MAKER_WHY),
        Rule::with("socket", &[Arg::Eq(0, libc::AF_INET as u64), DGRAM], MAKER_WHY),
        Rule::with("socket", &[Arg::Eq(0, libc::AF_INET6 as u64), STREAM], MAKER_WHY),
        Rule::with("socket", &[Arg::Eq(0, libc::AF_INET6 as u64), DGRAM], MAKER_WHY),
        Rule::any("epoll_create1", "netstack: its thread waits on every socket's end"),
        Rule::any("epoll_ctl", "netstack: what it waits for"),
        Rule::any("epoll_wait", "netstack: waiting"),
        Rule::any("epoll_pwait", "netstack: waiting, newer libc"),
        Rule::any("eventfd2", "netstack: waking its thread; a worker waiting for a connect"),
        Rule::any("recvfrom", "netstack: the app's bytes; an accept takes its byte"),
        Rule::any("sendto", "netstack: the connection's bytes, to the app"),
        Rule::any("shutdown", "netstack: the peer is done sending"),
        Rule::any("close", "hung-up notify fds"),
        Rule::any("write", "log lines; FUSE replies"),
        Rule::any("fcntl", "std: fd flags"),
        Rule::any("mmap", "allocator"),
        Rule::any("munmap", "allocator"),
        Rule::any("mremap", "allocator"),
        Rule::any("madvise", "allocator"),
        Rule::any("mprotect", "allocator"),
        Rule::any("brk", "allocator"),
        Rule::any("futex", "std sync"),
        Rule::any("sched_yield", "std channels and locks back off under contention (the janitor's channel)"),
        Rule::any("rt_sigprocmask", "std"),
        Rule::any("rt_sigaction", "std"),
        Rule::any("rt_sigreturn", "signal return"),
        Rule::any("sigaltstack", "std stack-overflow guard"),
        Rule::any("restart_syscall", "interrupted poll"),
        Rule::any("getrandom", "std HashSet seeds"),
        Rule::any("clock_gettime", "log timestamps; sandbox uptime (vDSO fallback)"),
        Rule::any("sysinfo", "handlers: sysinfo's memory figures"),
        Rule::any("getpid", "abort"),
        Rule::any("gettid", "abort"),
        Rule::any("tgkill", "abort on panic; interrupting a worker whose caller stopped waiting"),
        Rule::any("exit", "thread end"),
        Rule::any("exit_group", "process end"),
    ];
    Policy { name: "sentry", rules }
}
