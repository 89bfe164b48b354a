import ctypes, errno, os, random, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
rng = random.Random(6006)
fams = [socket.AF_INET, socket.AF_INET6]
def sock():
    f = rng.choice(fams)
    kind = rng.choice([(socket.SOCK_DGRAM, 0), (socket.SOCK_STREAM, 0), (socket.SOCK_DGRAM, socket.IPPROTO_ICMP if f == socket.AF_INET else socket.IPPROTO_ICMPV6)])
    s = socket.socket(f, kind[0], kind[1])
    s.setblocking(False)
    return s
def junk(n):
    return bytes(rng.getrandbits(8) for _ in range(n))
def addr(f):
    # a sockaddr of the right family with random port and address, or random bytes
    if rng.random() < 0.3:
        return junk(rng.choice([0, 1, 2, 8, 16, 28, 110, 200]))
    if f == socket.AF_INET:
        ip = rng.choice([b"\x7f\0\0\x01", b"\0\0\0\0", b"\xff\xff\xff\xff", b"\xe0\0\0\x01", junk(4)])
        return struct.pack("=H", f) + struct.pack("!H", rng.getrandbits(16)) + ip + bytes(8)
    ip = rng.choice([socket.inet_pton(f, "::1"), bytes(16), socket.inet_pton(f, "::ffff:127.0.0.1"), socket.inet_pton(f, "ff02::1"), junk(16)])
    return struct.pack("=H", f) + struct.pack("!H", rng.getrandbits(16)) + bytes(4) + ip + bytes(4)
levels = [socket.SOL_SOCKET, socket.IPPROTO_IP, socket.IPPROTO_IPV6, socket.IPPROTO_TCP, socket.IPPROTO_UDP, 270, 0, -1]
def cmsgs():
    out = b""
    for _ in range(rng.randrange(0, 4)):
        data = junk(rng.choice([0, 1, 3, 4, 8, 12, 16, 20, 24, 40]))
        length = 16 + len(data) if rng.random() < 0.8 else rng.choice([0, 8, 15, 17, 1 << 40, 2 ** 64 - 1])
        out += struct.pack("=QiI", length, rng.choice(levels), rng.randrange(0, 80)) + data
        out += bytes((-len(out)) % 8)
    return out
class Iov(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class Msg(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint), ("iov", ctypes.c_void_p), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int)]
keep = []
def raw_msg(f):
    data = ctypes.create_string_buffer(junk(rng.choice([0, 1, 100, 3000])) or b"\0")
    iov = Iov(ctypes.cast(data, ctypes.c_void_p), rng.choice([0, 1, 100, len(data.raw)]))
    name = ctypes.create_string_buffer(addr(f) or b"\0")
    control = ctypes.create_string_buffer(cmsgs() or b"\0")
    m = Msg(ctypes.cast(name, ctypes.c_void_p) if rng.random() < 0.8 else None, rng.choice([0, len(name.raw), 1, 1 << 31]),
            ctypes.addressof(iov), rng.choice([1, 1, 0, 2000]),
            ctypes.cast(control, ctypes.c_void_p) if rng.random() < 0.9 else rng.choice([None, 8]), rng.choice([len(control.raw), 0, 16, 1 << 20]), 0)
    keep.extend([data, iov, name, control, m])
    return m
seen = {}
def call(what, f, *args):
    r = f(*args)
    e = ctypes.get_errno() if r < 0 else 0
    seen[errno.errorcode.get(e, str(e))] = seen.get(errno.errorcode.get(e, str(e)), 0) + 1
    if e == errno.ENOSYS:
        raise SystemExit("ENOSYS from " + what)
socks = [sock() for _ in range(12)]
for i in range(4000):
    s = rng.choice(socks)
    fd, f = s.fileno(), s.family
    op = rng.randrange(11)
    if op == 0:
        v = ctypes.create_string_buffer(junk(rng.choice([0, 1, 4, 8, 16, 64])) or b"\0")
        call("setsockopt", libc.setsockopt, fd, rng.choice(levels), rng.randrange(0, 80), v, rng.choice([0, 1, 4, 8, len(v.raw), 1 << 20]))
    elif op == 1:
        v = ctypes.create_string_buffer(64)
        n = ctypes.c_uint(rng.choice([0, 1, 4, 8, 64]))
        call("getsockopt", libc.getsockopt, fd, rng.choice(levels), rng.randrange(0, 80), v, ctypes.byref(n))
    elif op == 2:
        m = raw_msg(f)
        call("sendmsg", libc.sendmsg, fd, ctypes.byref(m), rng.choice([0, socket.MSG_DONTWAIT, 0x4000]))
    elif op == 3:
        m = raw_msg(f)
        call("recvmsg", libc.recvmsg, fd, ctypes.byref(m), socket.MSG_DONTWAIT | rng.choice([0, socket.MSG_PEEK, socket.MSG_TRUNC]))
    elif op == 4:
        a = ctypes.create_string_buffer(addr(f) or b"\0")
        call("sendto", libc.sendto, fd, b"x" * rng.choice([0, 1, 1500, 70000]), rng.choice([0, 1, 1500, 70000]), socket.MSG_DONTWAIT, a, rng.choice([len(a.raw), 0, 3, 16, 28]))
    elif op == 5:
        a = ctypes.create_string_buffer(addr(f) or b"\0")
        call("connect", libc.connect, fd, a, rng.choice([len(a.raw), 0, 2, 16, 28]))
    elif op == 6:
        a = ctypes.create_string_buffer(addr(f) or b"\0")
        call("bind", libc.bind, fd, a, rng.choice([len(a.raw), 0, 2, 16, 28]))
    elif op == 7:
        buf = ctypes.create_string_buffer(64)
        n = ctypes.c_uint(rng.choice([0, 2, 16, 64]))
        call("getsockname", rng.choice([libc.getsockname, libc.getpeername]), fd, buf, ctypes.byref(n))
    elif op == 8:
        # route netlink: a random request, or one of a real header with a random body
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        body = junk(rng.choice([0, 4, 16, 64]))
        head = struct.pack("=IHHII", rng.choice([16 + len(body), 0, 15, 1 << 20]), rng.randrange(0, 120), rng.getrandbits(16), 1, 0)
        call("netlink send", libc.send, nl.fileno(), head + body if rng.random() < 0.7 else junk(40), rng.choice([0, 16, 40, 80]), 0)
        call("netlink recv", libc.recv, nl.fileno(), ctypes.create_string_buffer(256), 256, socket.MSG_DONTWAIT)
        nl.close()
    elif op == 9:
        # the interface ioctls, with a random struct ifreq
        req = ctypes.create_string_buffer(junk(40))
        call("ioctl", libc.ioctl, fd, rng.choice([0x8912, 0x8913, 0x8915, 0x8921, 0x8927, 0x8933, 0x8910]), req)
    else:
        socks.remove(s)
        s.close()
        socks.append(sock())
    if len(keep) > 500:
        del keep[:]
# still a working stack: TCP and UDP over the loopback
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname(), timeout=5); a, _ = srv.accept()
c.sendall(b"alive"); print("tcp", a.recv(10).decode())
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); u.settimeout(5)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"alive", u.getsockname())
print("udp", u.recv(10).decode())
# (EIO: an address with no page behind it, told as /proc/PID/mem tells it)
print("errors seen", len(seen) > 3, "ENOSYS" not in seen, "EIO" not in seen)
