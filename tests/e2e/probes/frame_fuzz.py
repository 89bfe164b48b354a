# Frames with random IP, TCP, UDP and ICMP headers (options, lengths that
# lie, IPv6 extension headers and fragments, a few sources no host sends
# from), sent from the peer to the pod's MAC address. Arguments: seed,
# count, the peer's interface, the pod's and the peer's IPv4 and IPv6
# addresses. The sandbox's stack must still answer after.
import random, socket, struct, sys
seed, count, dev = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pod, peer, pod6, peer6 = sys.argv[4:8]
rng = random.Random(seed)
mac = next(l.split()[3] for l in open("/proc/net/arp") if l.split()[0] == pod)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
eth = lambda kind: bytes.fromhex(mac.replace(":", "")) + s.getsockname()[4] + kind
rb = lambda n: bytes(rng.getrandbits(8) for _ in range(n))
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b)//2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
def tcp():
    opts = b""
    for _ in range(rng.randrange(0, 4)):
        kind = rng.choice([0, 1, 2, 3, 4, 5, 8, 30, rng.randrange(256)])
        ln = rng.choice([0, 1, 2, 3, 4, 6, 8, 10, 40, rng.randrange(256)])
        opts += bytes([kind, ln]) + rb(max(0, min(ln - 2, 12)))
    opts = opts[:40]
    opts += b"\0" * (-len(opts) % 4)
    off = rng.choice([(20 + len(opts)) // 4, rng.randrange(16)])
    flags = rng.choice([0x02, 0x02, 0x10, 0x18, 0x11, 0x04, 0x12, 0x01, rng.randrange(256)])
    port = rng.choice([8080, 8080, 7000, 80, rng.randrange(65536)])
    return struct.pack("!HHIIBBHHH", rng.randrange(1024, 65535), port, rng.getrandbits(32), rng.getrandbits(32),
                       off << 4, flags, rng.randrange(65536), 0, rng.randrange(65536)) + opts + rb(rng.choice([0, 0, 1, 10, 100, 1400]))
def udp():
    body = rb(rng.choice([0, 1, 8, 100, 1000]))
    ln = rng.choice([8 + len(body), rng.randrange(65536)])
    return struct.pack("!HHHH", rng.randrange(65536), rng.choice([7001, 53, 9, rng.randrange(65536)]), ln, 0) + body
def icmp(v6):
    t = rng.choice([0, 3, 8, 11, 12, rng.randrange(256)] if not v6 else [1, 2, 3, 4, 128, 129, 133, 134, 135, 136, 137, rng.randrange(256)])
    inner = ip4(6, tcp()[:28]) if not v6 else ip6(6, tcp()[:48])
    return struct.pack("!BBHI", t, rng.randrange(16), 0, rng.getrandbits(32)) + rng.choice([inner, rb(rng.randrange(64))])
def ip4(proto, payload):
    ihl = rng.choice([5, 5, 5, 6, 15, rng.randrange(16)])
    opts = rb(max(0, ihl * 4 - 20))
    total = rng.choice([20 + len(opts) + len(payload)] * 4 + [rng.randrange(65536)])
    frag = rng.choice([0, 0, 0, 0x4000, 0x2000, rng.randrange(65536)])
    h = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, rng.randrange(256), total, rng.randrange(65536), frag, rng.randrange(256), proto, 0,
                    socket.inet_aton(rng.choice([peer] * 9 + ["0.0.0.0"])), socket.inet_aton(pod)) + opts
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload
def ip6(nh, payload):
    ext = b""
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        kind = rng.choice([0, 43, 44, 60])
        if kind == 44:
            e = struct.pack("!BBHI", nh, 0, rng.randrange(65536), rng.getrandbits(32))
        else:
            ln = rng.randrange(3)
            e = bytes([nh, ln]) + rb(6 + ln * 8)
        ext, nh = e + ext, kind
    body = ext + payload
    plen = rng.choice([len(body)] * 4 + [rng.randrange(65536)])
    return struct.pack("!IHBB16s16s", (6 << 28) | rng.getrandbits(20), plen, nh, rng.randrange(256),
                       socket.inet_pton(socket.AF_INET6, rng.choice([peer6] * 9 + ["::"])),
                       socket.inet_pton(socket.AF_INET6, pod6)) + body
for i in range(count):
    v6 = rng.random() < 0.4
    proto = rng.choice([6, 6, 17, 58 if v6 else 1, rng.randrange(256)])
    payload = {6: tcp, 17: udp}.get(proto, lambda: icmp(v6) if proto in (1, 58) else rb(rng.randrange(100)))()
    frame = eth(b"\x86\xdd") + ip6(proto, payload) if v6 else eth(b"\x08\x00") + ip4(proto, payload)
    if rng.random() < 0.05:
        frame = frame[:rng.randrange(14, len(frame) + 1)]
    try:
        s.send(frame)
    except OSError:
        pass
print("sent", count)
