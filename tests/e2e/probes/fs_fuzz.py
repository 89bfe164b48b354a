# Random arguments to the path calls the Sentry serves, from a seed (the
# first argument): random paths (long, "..", /proc magic links, other
# filesystems), dirfds, flags, modes, ids, times, xattrs. Every error is the
# program's; the Sentry must not die.
import ctypes, errno, os, random, sys
libc = ctypes.CDLL(None, use_errno=True)
rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
os.makedirs("/tmp/f/a/b", exist_ok=True)  # (a tmpfs of the spec's)
open("/tmp/f/file", "w").write("x")
names = ["a", "b", "file", "new", "..", ".", "", "a/b", "../f", "/tmp/f/a", "/proc/self/fd/3", "/proc/self/cwd/a", "/dev/null", "/proc/self/exe", "x" * 300, "a" * 5000, "/tmp/f/a/b/c/d", "/etc/passwd", "/sys/kernel", "/tmp/f/\xff"]
def path():
    p = rng.choice(names)
    if rng.random() < 0.3: p = p + "/" + rng.choice(names)
    return p.encode("utf-8", "surrogateescape")
seen = {}
def call(what, r):
    e = ctypes.get_errno() if r < 0 else 0
    k = errno.errorcode.get(e, str(e)); seen[k] = seen.get(k, 0) + 1
    if e == errno.ENOSYS:
        raise SystemExit("ENOSYS from " + what)
os.chdir("/tmp/f")
fds = [os.open("/tmp/f", os.O_RDONLY), os.open("/tmp/f/a", os.O_PATH), os.open("/tmp/f/file", os.O_RDWR)]
AT = [-100] + fds + [999, -1]
for i in range(5000):
    op = rng.randrange(16)
    d = rng.choice(AT)
    if op == 0: call("openat", libc.openat(d, path(), rng.getrandbits(23), rng.getrandbits(12)))
    elif op == 1: call("mkdirat", libc.mkdirat(d, path(), rng.getrandbits(12)))
    elif op == 2: call("unlinkat", libc.unlinkat(d, path(), rng.choice([0, 0x200, 0x100])))
    elif op == 3: call("renameat2", libc.syscall(316, d, path(), rng.choice(AT), path(), rng.choice([0, 1, 2, 4, 7])))
    elif op == 4: call("linkat", libc.linkat(d, path(), rng.choice(AT), path(), rng.choice([0, 0x400, 0x1000])))
    elif op == 5: call("symlinkat", libc.symlinkat(path(), d, path()))
    elif op == 6: call("fchmodat", libc.fchmodat(d, path(), rng.getrandbits(13), rng.choice([0, 0x100])))
    elif op == 7: call("fchownat", libc.fchownat(d, path(), rng.choice([0, 1000, -1, 65534]), rng.choice([0, 1000, -1]), rng.choice([0, 0x100, 0x1000])))
    elif op == 8:
        ts = (ctypes.c_long * 4)(rng.getrandbits(31), rng.choice([0, (1 << 30) - 1, (1 << 30) - 2, 999999999, 10**9]), 0, rng.choice([0, (1 << 30) - 1]))
        call("utimensat", libc.utimensat(d, path(), ts if rng.random() < 0.8 else None, rng.choice([0, 0x100])))
    elif op == 9:
        v = ctypes.create_string_buffer(bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 4, 100]))) or b"\0")
        call("setxattr", libc.setxattr(path(), rng.choice([b"user.x", b"trusted.x", b"security.capability", b"", b"user." + b"y" * 300, b"system.posix_acl_access"]), v, rng.choice([0, 4, 100, 70000]), rng.choice([0, 1, 2, 3])))
    elif op == 10: call("truncate", libc.truncate(path(), rng.choice([0, 1, -1, 1 << 40])))
    elif op == 11: call("mknodat", libc.mknodat(d, path(), rng.choice([0o10644, 0o20644, 0o60644, 0o140644, 0o644]), rng.getrandbits(16)))
    elif op == 12: call("faccessat2", libc.syscall(439, d, path(), rng.getrandbits(3), rng.choice([0, 0x200, 0x100, 0x1000])))
    elif op == 13:
        how = (ctypes.c_uint64 * 3)(rng.getrandbits(23), rng.getrandbits(12), rng.getrandbits(5))
        call("openat2", libc.syscall(437, d, path(), how, rng.choice([24, 0, 8, 100, 5000])))
    elif op == 14:
        buf = ctypes.create_string_buffer(256)
        call("readlinkat", libc.readlinkat(d, path(), buf, rng.choice([0, 1, 256])))
    else:
        st = ctypes.create_string_buffer(256)
        call("newfstatat", libc.syscall(262, d, path(), st, rng.choice([0, 0x100, 0x1000, 0x800])))
    # close what openat made, now and then
    if i % 50 == 0:
        for fd in range(10, 200):
            try: os.close(fd)
            except OSError: pass
# (ENOSYS: what a caller gets once the Sentry died; EIO: a caller's memory
# out of reach told as /proc/PID/mem tells it, not as EFAULT)
print("done", len(seen) > 5, "ENOSYS" not in seen, "EIO" not in seen)
