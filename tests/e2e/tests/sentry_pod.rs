//! `--network=sandbox` (the default) on the sentry platform: the netstack
//! takes over the pod's interface, as a CNI plugin leaves it (a veth pair
//! into network namespaces the test makes, [`PodNet`]). Servers in the
//! sandbox are reached from the pod's network, clients in it reach that
//! network (TCP over IPv4 and IPv6, UDP, ICMP echo, DNS through a resolver
//! the test runs), and nothing in the sandbox reaches the host's kernel:
//! no raw or packet socket, no netlink change, no host port.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use moat_e2e::podnet::{PodNet, PEER_IP, PEER_IP6, POD_IP, POD_IP6, ROUTER_IP};
use moat_e2e::{assert_no_leaks, debian, unique_id, Moat};

fn sentry() -> Moat {
    let mut m = Moat::new();
    m.global = vec!["--platform".into(), "sentry".into()];
    m
}

/// A Debian bundle running `args` in the pod's network namespace.
fn pod_bundle(net: &PodNet, args: &[&str]) -> moat_e2e::Bundle {
    let mut b = debian::bundle(args);
    let path = net.pod_path();
    b.edit(|s| {
        for ns in s["linux"]["namespaces"].as_array_mut().expect("namespaces") {
            if ns["type"] == "network" {
                ns["path"] = path.clone().into();
            }
        }
    });
    b
}

/// Runs `f` until it is true, for up to 20 s; whether it became true.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A dual-stack HTTP server (Http) whose handler (Hello) answers every GET
/// with what the script's `answer(request)` makes, and a UDP echo
/// (`udp_echo`, upper case back); scripts follow it.
const HTTP: &str = r#"
import socket, socketserver, threading, http.server
class Http(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        # (not HTTPServer's, which looks its own name up in the DNS)
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "moat", self.server_address[1]
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = answer(self)
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
def udp_echo(family, address):
    u = socket.socket(family, socket.SOCK_DGRAM)
    u.bind(address)
    def serve():
        while True:
            d, a = u.recvfrom(65536)
            u.sendto(d.upper(), a)
    threading.Thread(target=serve, daemon=True).start()
"#;

/// The sandbox's servers: HTTP on 8080 (both families), a TCP echo on 7000
/// that takes many connections at once, a UDP echo on 7001.
const SERVERS: &str = r#"
import selectors
answer = lambda request: b"hello from the sandbox"
threading.Thread(target=Http(("::", 8080), Hello).serve_forever, daemon=True).start()
udp_echo(socket.AF_INET, ("0.0.0.0", 7001))
sel = selectors.DefaultSelector()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 7000))
srv.listen(1024)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is srv:
            c, _ = srv.accept()
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
        else:
            c = key.fileobj
            d = c.recv(4096)
            if d:
                c.send(d)
            else:
                sel.unregister(c)
                c.close()
"#;

/// Runs [`FROM_PEER`] in the peer against the pod's address.
fn from_peer(net: &PodNet) {
    let out = net.peer_run(&["python3", "-c", FROM_PEER, POD_IP]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("echoed 500\nudp PING\nicmp reply {POD_IP} moat!!\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// From the peer: 500 connections to the sandbox's echo at once, UDP echo,
/// ICMP echo (a raw socket: the peer is the host's, root there).
const FROM_PEER: &str = r#"
import socket, struct, sys
host = sys.argv[1]
conns = [socket.create_connection((host, 7000), timeout=20) for _ in range(500)]
for i, c in enumerate(conns):
    c.sendall(b"c%d" % i)
print("echoed", sum(c.recv(100) == b"c%d" % i for i, c in enumerate(conns)))
for c in conns:
    c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
u.sendto(b"ping", (host, 7001))
print("udp", u.recvfrom(100)[0].decode())
def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
r.settimeout(5)
req = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"moat!!"
r.sendto(req[:2] + struct.pack("!H", checksum(req)) + req[4:], (host, 0))
while True:
    d, a = r.recvfrom(200)
    icmp = d[(d[0] & 15) * 4:]
    if icmp[0] == 0 and icmp[4:6] == b"\x42\x42":
        print("icmp reply", a[0], icmp[8:].decode())
        break
"#;

/// From the peer, frames a host must never send, to the pod's MAC address
/// (its kernel learnt it for the curl before): TCP SYNs, a UDP datagram and
/// an echo request from sources no host sends from (unspecified, this
/// network, loopback, multicast, broadcast, the pod's own address, IPv6's
/// unspecified and IPv4-mapped), and headers that do not hold together.
/// smoltcp 0.12 answered a SYN from 0.0.0.0 with a SYN-ACK to 0.0.0.0 and
/// asserted on it: the one frame ended the Sentry.
const MARTIANS: &str = r#"
import socket, struct, sys
pod, pod6 = sys.argv[1], sys.argv[2]
mac = next(l.split()[3] for l in open("/proc/net/arp") if l.split()[0] == pod)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("veth0", 0))
eth = lambda kind: bytes.fromhex(mac.replace(":", "")) + s.getsockname()[4] + kind
def v4(src, proto, payload, vihl=0x45):
    return eth(b"\x08\x00") + struct.pack("!BBHHHBBH4s4s", vihl, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                                         socket.inet_aton(src), socket.inet_aton(pod)) + payload
def v6(src, payload):
    return eth(b"\x86\xdd") + struct.pack("!IHBB16s16s", 6 << 28, len(payload), 6, 64,
                                         socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, pod6)) + payload
syn = struct.pack("!HHIIBBHHH", 40000, 8080, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
for src in ["0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.1", "255.255.255.255", "10.77.0.255", pod]:
    s.send(v4(src, 6, syn))
s.send(v4("0.0.0.0", 17, struct.pack("!HHHH", 40000, 9, 12, 0) + b"udp!"))
s.send(v4("0.0.0.0", 1, struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"))
s.send(v4("10.77.0.1", 6, syn, vihl=0x44))
s.send(v4("10.77.0.1", 6, syn)[:14 + 20 + 4])
for src in ["::", "::ffff:10.77.0.1", "::1", "ff02::1"]:
    s.send(v6(src, syn))
print("sent")
"#;

/// Random frames to the pod's MAC address (a fixed sequence from a seed).
const FRAME_FUZZ: &str = include_str!("../probes/frame_fuzz.py");

#[test]
fn servers_in_the_sandbox_are_reached_from_the_pod_network() {
    let net = PodNet::new("pod-srv");
    let moat = sentry();
    let b = pod_bundle(&net, &["python3", "-c", &format!("{HTTP}{SERVERS}")]);
    let id = unique_id("pod-srv");
    moat.ok(&["create".as_ref(), "--bundle".as_ref(), b.path().as_os_str(), id.as_ref()]);
    moat.ok(&["start", &id]);
    // the pod's kernel keeps the interface, without its addresses: they are the netstack's
    let kernel = net.pod_kernel_addrs();
    assert!(kernel.contains("UP") && !kernel.contains("inet "), "{kernel}");
    let curl = |url: &str| {
        let out = net.peer_run(&["curl", "-sS", "-m", "5", "-g", url]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let v4 = format!("http://{POD_IP}:8080/");
    assert!(eventually(|| curl(&v4) == "hello from the sandbox"), "curl {v4}: {}", curl(&v4));
    assert_eq!(curl(&format!("http://[{POD_IP6}]:8080/")), "hello from the sandbox");
    from_peer(&net);
    // martian frames from the pod's network are dropped: the server still answers
    let sent = net.peer_run(&["python3", "-c", MARTIANS, POD_IP, POD_IP6]);
    assert_eq!(String::from_utf8_lossy(&sent.stdout), "sent\n", "{}", String::from_utf8_lossy(&sent.stderr));
    assert_eq!(curl(&v4), "hello from the sandbox");
    // and random ones: IP, TCP, UDP and ICMP headers, options and lengths
    // that lie, IPv6 extension headers and fragments, a few martian sources
    let args = ["python3", "-c", FRAME_FUZZ, "11", "4000", "veth0", POD_IP, PEER_IP, POD_IP6, PEER_IP6];
    let sent = net.peer_run(&args);
    assert_eq!(String::from_utf8_lossy(&sent.stdout), "sent 4000\n", "{}", String::from_utf8_lossy(&sent.stderr));
    assert_eq!(curl(&v4), "hello from the sandbox");
    assert_eq!(curl(&format!("http://[{POD_IP6}]:8080/")), "hello from the sandbox");
    // the 500 connections are gone in the sandbox too: its listeners remain
    let sockets = "print(sum(1 for f in ('/proc/net/tcp', '/proc/net/tcp6') for _ in open(f).readlines()[1:]))";
    assert!(
        eventually(|| moat.ok(&["exec", &id, "python3", "-c", sockets]).trim() == "2"),
        "{}",
        moat.ok(&["exec", &id, "cat", "/proc/net/tcp", "/proc/net/tcp6"])
    );
    moat.ok(&["kill", &id, "KILL"]);
    moat.wait_status(&id, "stopped");
    moat.ok(&["delete", &id]);
    assert_no_leaks(&moat, &id, b.path());
    // the pod's kernel has its addresses back, for the next sandbox in the pod
    let kernel = net.pod_kernel_addrs();
    assert!(
        kernel.contains(&format!("inet {POD_IP}/24")) && kernel.contains(&format!("inet6 {POD_IP6}/64")),
        "{kernel}"
    );
}

/// The peer's services: HTTP on 8082 (both families), a resolver on 53
/// that knows svc.pod.test, a UDP echo on 7001.
const PEER_SERVICES: &str = r#"
import struct, sys
answer = lambda request: b"hello from the peer " + request.client_address[0].encode()
h = Http(("::", 8082), Hello)
threading.Thread(target=h.serve_forever, daemon=True).start()
udp_echo(socket.AF_INET, (sys.argv[1], 7001))
udp_echo(socket.AF_INET6, ("::", 7002))
IP_RECVTTL = 12  # (not in this Python)
# tells each datagram's TTL and TOS, in a datagram of TTL 33 and TOS 0x48
marks = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
marks.bind((sys.argv[1], 7003))
marks.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
marks.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
marks.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 33)
marks.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x48)
def tell():
    while True:
        d, anc, _, a = marks.recvmsg(100, 64)
        got = {t: (v[0] if len(v) == 1 else struct.unpack("i", v)[0]) for _, t, v in anc}
        marks.sendto(b"%d %#x" % (got.get(socket.IP_TTL, -1), got.get(socket.IP_TOS, -1)), a)
threading.Thread(target=tell, daemon=True).start()
# a TCP server on 7004 that answers each message with the traffic class of
# the packet that brought it, as a packet socket saw it on the wire
import time
seen = {}
cap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3))
def capture():
    while True:
        p = cap.recv(65536)
        if p[0] >> 4 == 4 and p[9] == 6:
            t, tclass, end = (p[0] & 15) * 4, p[1], struct.unpack("!H", p[2:4])[0]
        elif p[0] >> 4 == 6 and p[6] == 6:
            t, tclass, end = 40, ((p[0] & 15) << 4) | (p[1] >> 4), 40 + struct.unpack("!H", p[4:6])[0]
        else:
            continue
        data = t + (p[t + 12] >> 4) * 4
        if struct.unpack("!H", p[t + 2:t + 4])[0] == 7004 and end > data:
            seen[p[data:end]] = tclass
threading.Thread(target=capture, daemon=True).start()
def tell_class(c):
    try:
        while True:
            d = c.recv(100)
            if not d:
                return
            for _ in range(200):
                if d in seen:
                    break
                time.sleep(0.01)
            c.sendall(b"%#x" % seen.get(d, -1))
    except OSError:
        pass
classes = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
classes.bind(("::", 7004))
classes.listen(8)
def tell_classes():
    while True:
        threading.Thread(target=tell_class, args=(classes.accept()[0],), daemon=True).start()
threading.Thread(target=tell_classes, daemon=True).start()
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    q, a = dns.recvfrom(512)
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode()); i += 1 + q[i]
    qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    known = ".".join(labels) == "svc.pod.test" and qtype == 1
    flags = 0x8180 if known or ".".join(labels) == "svc.pod.test" else 0x8183
    record = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(sys.argv[1])) if known else b""
    dns.sendto(q[:2] + struct.pack("!HHHHH", flags, 1, 1 if known else 0, 0, 0) + question + record, a)
"#;

/// In the sandbox: the peer over HTTP (IPv4, IPv6, and by name through the
/// resolver resolv.conf names), UDP, ICMP echo, the interfaces, a host on
/// the link that is not there, a unix socket.
const CLIENT: &str = r#"
import os, socket, struct, threading, urllib.request
peer, peer6 = os.environ["PEER"], os.environ["PEER6"]
get = lambda url: urllib.request.urlopen(url, timeout=10).read().decode()
print("v4", get("http://%s:8082/" % peer))
print("v6", get("http://[%s]:8082/" % peer6))
print("dns", socket.getaddrinfo("svc.pod.test", 8082, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
print("by name", get("http://svc.pod.test:8082/"))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
u.sendto(b"udp", (peer, 7001))
print("udp", u.recvfrom(100)[0].decode())
u.setsockopt(socket.IPPROTO_IP, 8, 1)
u.sendto(b"again", (peer, 7001))
d, anc, _, _ = u.recvmsg(100, 64)
index, _, to = struct.unpack("=I4s4s", anc[0][2])
print("pktinfo", index == socket.if_nametoindex("eth0"), socket.inet_ntoa(to))
u.setsockopt(socket.IPPROTO_IP, 8, 0)
# a datagram's own TTL and TOS, on the wire (the peer tells them), and the
# peer's, told here with the time each came
IP_RECVTTL, SO_TIMESTAMP = 12, 29  # (not in this Python)
u.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
u.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
u.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
import time
started = time.time()
u.sendmsg([b"m"], [(socket.IPPROTO_IP, socket.IP_TTL, struct.pack("i", 5)), (socket.IPPROTO_IP, socket.IP_TOS, b"\x20")], 0, (peer, 7003))
d, anc, _, _ = u.recvmsg(100, 128)
sec, usec = struct.unpack("qq", anc[0][2])
print("marks", d.decode(), [t for _, t, _ in anc] == [SO_TIMESTAMP, socket.IP_TTL, socket.IP_TOS],
      struct.unpack("i", anc[1][2])[0], hex(anc[2][2][0]), started <= sec + usec / 1e6 <= time.time())
# a loopback source does not leave by the wire
import errno
try:
    u.sendmsg([b"l"], [(socket.IPPROTO_IP, 8, struct.pack("=I4s4s", 0, socket.inet_aton("127.0.0.1"), bytes(4)))], 0, (peer, 7003))
    print("sent!")
except OSError as e:
    print("loopback source", errno.errorcode[e.errno])
u.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 9)
u.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x10)
u.sendto(b"s", (peer, 7003))
print("socket marks", u.recvfrom(100)[0].decode())
# a TCP connection's traffic class, set once connected: in each of its
# packets on the wire (the ECN bits stay the stack's, as on Linux)
t = socket.create_connection((peer, 7004), timeout=10)
t.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x29)
tos = t.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)
t.sendall(b"tos-a")
a = t.recv(100).decode()
t.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0)
t.sendall(b"tos-b")
b = t.recv(100).decode()
t6 = socket.create_connection((peer6, 7004), timeout=10)
t6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x30)
t6.sendall(b"tos-c")
print("tcp class", hex(tos), a, b, t6.recv(100).decode())
for o in (IP_RECVTTL, socket.IP_RECVTOS, socket.IP_TTL, socket.IP_TOS):
    u.setsockopt(socket.IPPROTO_IP, o, 0 if o != socket.IP_TTL else 64)
u.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 0)
# longer than the link's MTU: fragments out and in
u.sendto(b"x" * 4000, (peer, 7001))
print("fragments", u.recvfrom(65536)[0] == b"X" * 4000)
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u6.settimeout(5)
u6.sendto(b"y" * 3000, (peer6, 7002))
print("fragments v6", u6.recvfrom(65536)[0] == b"Y" * 3000)
def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
for fam, proto, typ, host in [(socket.AF_INET, socket.IPPROTO_ICMP, 8, peer), (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, peer6)]:
    p = socket.socket(fam, socket.SOCK_DGRAM, proto)
    p.settimeout(5)
    req = struct.pack("!BBHHH", typ, 0, 0, 0, 3) + b"hello!"
    p.sendto(req[:2] + struct.pack("!H", checksum(req)) + req[4:], (host, 0))
    d, a = p.recvfrom(100)
    print("ping", a[0], d[8:].decode())
    # longer than the link's MTU: cut here, put together coming back
    req = struct.pack("!BBHHH", typ, 0, 0, 0, 4) + b"z" * 3000
    p.sendto(req[:2] + struct.pack("!H", checksum(req)) + req[4:], (host, 0))
    d, a = p.recvfrom(65536)
    print("long ping", a[0], d[8:] == b"z" * 3000)
print("interfaces", [n for _, n in socket.if_nameindex()])
# a host on the link that does not answer ARP: "No route to host", in seconds
import errno, time
started = time.time()
try:
    socket.create_connection(("10.77.0.99", 80), timeout=20)
except OSError as e:
    print("dead host", errno.errorcode.get(e.errno), time.time() - started < 10)
srv = socket.socket(socket.AF_UNIX)
srv.bind("/tmp/sock")
srv.listen(1)
def serve():
    c, _ = srv.accept(); c.sendall(c.recv(10)[::-1]); c.close()
t = threading.Thread(target=serve); t.start()
c = socket.socket(socket.AF_UNIX); c.connect("/tmp/sock"); c.sendall(b"unix")
print("unix", c.recv(10).decode())
t.join()
"#;

#[test]
fn clients_in_the_sandbox_reach_the_pod_network_and_its_resolver() {
    let net = PodNet::new("pod-cli");
    let services = format!("{HTTP}{PEER_SERVICES}");
    let peer = net.serve_in_peer(&["python3", "-c", &services, PEER_IP]);
    let resolv = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(resolv.path(), format!("nameserver {PEER_IP}\noptions timeout:2 attempts:2\n")).unwrap();
    let mut b = pod_bundle(&net, &["python3", "-c", CLIENT]);
    let resolv_path = resolv.path().to_string_lossy().into_owned();
    b.edit(|s| {
        s["process"]["env"]
            .as_array_mut()
            .unwrap()
            .extend([format!("PEER={PEER_IP}").into(), format!("PEER6={PEER_IP6}").into()]);
        s["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/etc/resolv.conf", "type": "bind", "source": resolv_path, "options": ["rbind", "ro"]
        }));
    });
    let moat = sentry();
    let id = unique_id("pod-cli");
    let (code, out, err) = moat_e2e::run_fg(&moat, &b, &id);
    drop(peer);
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    assert_eq!(
        out,
        format!(
            "v4 hello from the peer ::ffff:{POD_IP}\nv6 hello from the peer {POD_IP6}\ndns {PEER_IP}\n\
             by name hello from the peer ::ffff:{POD_IP}\nudp UDP\npktinfo True {POD_IP}\nmarks 5 0x20 True 33 0x48 True\nloopback source EINVAL\n\
             socket marks 9 0x10\ntcp class 0x28 0x28 0x0 0x30\nfragments True\n\
             fragments v6 True\nping {PEER_IP} hello!\nlong ping {PEER_IP} True\nping {PEER_IP6} hello!\nlong ping {PEER_IP6} True\n\
             interfaces ['lo', 'eth0']\ndead host EHOSTUNREACH True\nunix xinu\n"
        )
    );
    assert_no_leaks(&moat, &id, b.path());
}

/// The peer: a TCP server on 7006 that, once a connection came, takes its
/// own interface down: the peer goes silent, as a host that died.
const SILENT_PEER: &str = r#"
import os, socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], 7006))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
time.sleep(0.5)
os.system("ip link set veth0 down")
time.sleep(60)
"#;

/// In the sandbox: keep-alive's options, then a connection whose peer went
/// silent, given up after the probes' time (never, with the defaults' 2 h).
const KEEPALIVE: &str = r#"
import os, socket, time
keep = (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT)
s = socket.create_connection((os.environ["PEER"], 7006), timeout=5)
print("defaults", [s.getsockopt(socket.IPPROTO_TCP, o) for o in keep])
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
for o in keep:
    s.setsockopt(socket.IPPROTO_TCP, o, 1 if o != socket.TCP_KEEPCNT else 2)
print("set", [s.getsockopt(socket.IPPROTO_TCP, o) for o in keep])
try:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 200)
except OSError as e:
    print("count 200", e.errno == 22)
s.settimeout(20)
started = time.time()
try:
    got = s.recv(10)
    print("gave up", got, 1.5 < time.time() - started < 10)
except socket.timeout:
    print("still waiting after 20 s")
except OSError as e:
    print("gave up", e.errno, 1.5 < time.time() - started < 10)
"#;

#[test]
fn keep_alive_gives_up_a_connection_whose_peer_went_silent() {
    let net = PodNet::new("pod-ka");
    let peer = net.serve_in_peer(&["python3", "-c", SILENT_PEER, PEER_IP]);
    let mut b = pod_bundle(&net, &["python3", "-c", KEEPALIVE]);
    b.edit(|s| s["process"]["env"].as_array_mut().unwrap().push(format!("PEER={PEER_IP}").into()));
    let moat = sentry();
    let id = unique_id("pod-ka");
    let (code, out, err) = moat_e2e::run_fg(&moat, &b, &id);
    drop(peer);
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    assert_eq!(out, "defaults [7200, 75, 9]\nset [1, 1, 2]\ncount 200 True\ngave up b'' True\n");
    assert_no_leaks(&moat, &id, b.path());
}

/// The peer: an echo on 7010, IPv4 and IPv6 (each connection served in a
/// thread), and on 7011 a server that resets each connection (SO_LINGER 0)
/// once it has read a byte.
const ECHO_AND_RESET: &str = r#"
import socket, struct, sys, threading
def serve(port, handle, host=sys.argv[1]):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
def echo(c):
    while d := c.recv(65536):
        c.sendall(d)
def reset(c):
    c.recv(1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
serve(7010, echo)
serve(7010, echo, sys.argv[2])
serve(7011, reset)
print("ready", flush=True)
threading.Event().wait()
"#;

/// In the sandbox: 64 connections to the peer's echo at once, over IPv4
/// and over IPv6 (they are spread over the stack's threads: each must be
/// steered back to the one that made it), then one the peer resets while
/// the app writes on.
const SPREAD_AND_RESET: &str = r#"
import os, socket, time
peer = os.environ["PEER"]
for host in (peer, os.environ["PEER6"]):
    conns = [socket.create_connection((host, 7010), timeout=10) for _ in range(64)]
    for i, c in enumerate(conns):
        c.sendall(b"%d" % i * 1000)
    ok = 0
    for i, c in enumerate(conns):
        want, got = b"%d" % i * 1000, b""
        while len(got) < len(want):
            got += c.recv(len(want) - len(got))
        ok += got == want
        c.close()
    print("echoed", ok)
s = socket.create_connection((peer, 7011), timeout=10)
s.sendall(b"x")
started = time.time()
try:
    while time.time() - started < 10:
        s.sendall(b"y" * 65536)
    print("still writing after 10 s")
except (BrokenPipeError, ConnectionResetError):
    print("reset seen", time.time() - started < 5)
except socket.timeout:
    print("writes blocked")
s.close()
"#;

/// The CPU time (user and system, in clock ticks) of container `id`'s
/// processes, the Sentry's threads among them.
fn cpu_ticks(id: &str) -> u64 {
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/moat/{id}/cgroup.procs")).expect("its cgroup");
    let stats: Vec<String> =
        procs.lines().filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok()).collect();
    // (init, the Sentry and its watchdog at least: none of them may go uncounted)
    assert!(stats.len() >= 3, "the container's processes: {procs:?}");
    stats
        .iter()
        .map(|stat| {
            // (after the command's parenthesis: fields 14 and 15 are utime, stime)
            let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
            let f: Vec<u64> = rest.split(' ').map(|v| v.parse().unwrap_or(0)).collect();
            f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
        })
        .sum()
}

#[test]
fn connections_spread_over_the_stacks_threads_and_a_reset_one_ends() {
    let net = PodNet::new("pod-spread");
    let peer = net.serve_in_peer(&["python3", "-c", ECHO_AND_RESET, PEER_IP, PEER_IP6]);
    let mut b = pod_bundle(&net, &["sleep", "1000"]);
    b.edit(|s| {
        s["process"]["env"]
            .as_array_mut()
            .unwrap()
            .extend([format!("PEER={PEER_IP}").into(), format!("PEER6={PEER_IP6}").into()]);
    });
    let moat = sentry();
    let id = unique_id("pod-spread");
    moat.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let out = moat.ok(&["exec", &id, "python3", "-c", SPREAD_AND_RESET]);
    assert_eq!(out, "echoed 64\nechoed 64\nreset seen True\n", "IPv4, IPv6");
    // nothing is left for the stack's threads to do: they sleep (a
    // connection reset under its app once kept one spinning on the app's
    // hang-up)
    let before = cpu_ticks(&id);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(&id) - before;
    assert!(spent < 40, "the idle sandbox used {spent} ticks of CPU in 2 s");
    drop(peer);
    moat.ok(&["kill", &id, "KILL"]);
    moat.wait_status(&id, "stopped");
    moat.ok(&["delete", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

/// From inside: no raw or packet socket, no change through netlink, the
/// host's ports out of reach.
const BREAK_OUT: &str = r#"
import errno, os, socket, struct
for fam, kind, proto in [(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), (socket.AF_PACKET, socket.SOCK_RAW, 0), (socket.AF_PACKET, socket.SOCK_DGRAM, 0x0300)]:
    try:
        socket.socket(fam, kind, proto)
        print("made", fam, kind)
    except OSError as e:
        print("refused", errno.errorcode[e.errno])
eth0 = socket.if_nametoindex("eth0")
def change(typ, body):
    n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    n.bind((0, 0))
    n.send(struct.pack("=LHHLL", 16 + len(body), typ, 0x1 | 0x4 | 0x400 | 0x200, 1, 0) + body)
    d = n.recv(4096)
    return errno.errorcode.get(-struct.unpack("=i", d[16:20])[0], "0")
addr = struct.pack("=BBBBi", socket.AF_INET, 32, 0, 0, eth0) + struct.pack("=HH", 8, 2) + socket.inet_aton("10.77.0.9")
print("add address", change(20, addr))
down = struct.pack("=BxHiII", 0, 0, eth0, 0, 1)
print("link down", change(16 + 3, down))
route = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 4, 0, 1, 0)
print("add route", change(24, route))
try:
    socket.create_connection(("127.0.0.1", int(os.environ["HOST_PORT"])), timeout=5)
    print("reached the host")
except ConnectionRefusedError:
    print("host port refused")
# the interfaces any socket is told of (SIOCGIFCONF): the sandbox's, on a
# TCP socket (one end of the Sentry's socketpair) and on a unix socket
import array, fcntl
for s in (socket.socket(), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)):
    buf = array.array("B", bytes(40 * 32))
    n = struct.unpack("iL", fcntl.ioctl(s.fileno(), 0x8912, struct.pack("iL", len(buf), buf.buffer_info()[0])))[0]
    print("interfaces", [bytes(buf[i:i + 16]).rstrip(b"\0").decode() for i in range(0, n, 40)])
"#;

#[test]
fn nothing_in_the_sandbox_reaches_the_hosts_network() {
    let net = PodNet::new("pod-iso");
    // a port of the host's own loopback (the test's network namespace)
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let mut b = pod_bundle(&net, &["python3", "-c", BREAK_OUT]);
    b.edit(|s| s["process"]["env"].as_array_mut().unwrap().push(format!("HOST_PORT={port}").into()));
    let moat = sentry();
    let id = unique_id("pod-iso");
    let (code, out, err) = moat_e2e::run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    assert_eq!(
        out,
        "refused EPERM\nrefused EPERM\nrefused EPERM\nadd address EPERM\nlink down EPERM\nadd route EPERM\n\
         host port refused\ninterfaces ['lo', 'eth0']\ninterfaces ['lo', 'eth0']\n"
    );
    // the pod's kernel saw none of it: its interface has what it had (given
    // back when the sandbox was deleted), and nothing more
    let kernel = net.pod_kernel_addrs();
    assert!(kernel.contains("UP") && kernel.contains(&format!("inet {POD_IP}/24")), "{kernel}");
    assert!(!kernel.contains("10.77.0.9"), "{kernel}");
    let routes = std::process::Command::new("ip").args(["-n", &net.pod, "route"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&routes.stdout),
        format!("default via {PEER_IP} dev eth0 \n10.77.0.0/24 dev eth0 proto kernel scope link src {POD_IP} \n")
    );
    host.set_nonblocking(true).unwrap();
    assert!(host.accept().is_err(), "the host's listener got a connection");
    assert_no_leaks(&moat, &id, b.path());
}

/// A pod as Calico leaves it: a /32 address and a default route "onlink"
/// through a router on no network of the pod's. The sandbox reaches the
/// peer through it, and the route comes back with its flag at delete.
#[test]
fn a_pod_routed_through_an_onlink_gateway() {
    let net = PodNet::routed("pod-onlink");
    let services = format!("{HTTP}{PEER_SERVICES}");
    let peer = net.serve_in_peer(&["python3", "-c", &services, PEER_IP]);
    let get = format!(
        "import urllib.request; print(urllib.request.urlopen('http://{PEER_IP}:8082/', timeout=10).read().decode())"
    );
    let b = pod_bundle(&net, &["python3", "-c", &get]);
    let moat = sentry();
    let id = unique_id("pod-onlink");
    let (code, out, err) = moat_e2e::run_fg(&moat, &b, &id);
    drop(peer);
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    assert_eq!(out, format!("hello from the peer ::ffff:{POD_IP}\n"));
    assert_no_leaks(&moat, &id, b.path());
    let routes = std::process::Command::new("ip").args(["-n", &net.pod, "route"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&routes.stdout), format!("default via {ROUTER_IP} dev eth0 onlink \n"));
}

/// In a pod's other containers: a client of a server of the pod's first
/// app container over the loopback, and of the peer; the pod's address.
const SIDECAR: &str = r#"
import socket, sys
c = socket.create_connection(("127.0.0.1", 9000), timeout=5)
print("loopback", c.recv(100).decode())
p = socket.create_connection((sys.argv[1], 8082), timeout=5)
p.sendall(b"GET / HTTP/1.0\r\n\r\n")
print("peer", p.makefile("rb").read().decode().split("\r\n\r\n")[-1])
print("interface", socket.if_nametoindex("eth0") > 1)
# the pod's sockets, the app's listener among them (127.0.0.1:9000)
print("listed", any(l.split()[1:4:2] == ["0100007F:2328", "0A"] for l in open("/proc/net/tcp")))
# the pod's abstract unix names are one namespace, as on Linux
a = socket.socket(socket.AF_UNIX)
a.connect("\0pod-abstract")
print("abstract", a.recv(100).decode(), "@pod-abstract" in open("/proc/net/unix").read())
# a port of the host's loopback: this loopback is the pod's
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5)
    print("reached the host")
except ConnectionRefusedError:
    print("host refused")
"#;

/// A Kubernetes pod as containerd's CRI plugin makes one: its "pause"
/// container first, then the app's containers in the same network
/// namespace. The first takes the pod's interface; the others are its
/// netstack's guests, so they share the pod's address and its loopback.
/// An app container's restart (delete, create again) changes nothing for
/// the others.
#[test]
fn a_pods_containers_share_one_netstack() {
    let net = PodNet::new("pod-cri");
    let moat = sentry();
    let mark = |b: &mut moat_e2e::Bundle, kind: &str| {
        b.edit(|s| {
            s["annotations"] = serde_json::json!({
                "io.kubernetes.cri.container-type": kind,
                "io.kubernetes.cri.sandbox-id": "pod-cri",
            });
        });
    };
    let mut pause = pod_bundle(&net, &["sleep", "1000"]);
    mark(&mut pause, "sandbox");
    let pause_id = unique_id("pod-pause");
    moat.ok(&["create".as_ref(), "--bundle".as_ref(), pause.path().as_os_str(), pause_id.as_ref()]);
    moat.ok(&["start", &pause_id]);
    assert!(!net.pod_kernel_addrs().contains("inet "), "the pause container's netstack has the addresses");
    // the app: HTTP on the pod's address, a server on its loopback only, one on an
    // abstract unix name
    let local = "\nl = socket.socket(); l.bind(('127.0.0.1', 9000)); l.listen(8)\nthreading.Thread(target=lambda: [l.accept()[0].sendall(b'from the app') for _ in iter(int, 1)], daemon=True).start()\nu = socket.socket(socket.AF_UNIX); u.bind('\\0pod-abstract'); u.listen(8)\nthreading.Thread(target=lambda: [u.accept()[0].sendall(b'from the app, unix') for _ in iter(int, 1)], daemon=True).start()\n";
    let mut app = pod_bundle(&net, &["python3", "-c", &format!("{HTTP}{local}{SERVERS}")]);
    mark(&mut app, "container");
    let curl = || {
        let out = net.peer_run(&["curl", "-sS", "-m", "5", &format!("http://{POD_IP}:8080/")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let peer = net.serve_in_peer(&["python3", "-c", &format!("{HTTP}{PEER_SERVICES}"), PEER_IP]);
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host.local_addr().unwrap().port().to_string();
    let mut sidecar = pod_bundle(&net, &["python3", "-c", SIDECAR, PEER_IP, &host_port]);
    mark(&mut sidecar, "container");
    for round in 0..2 {
        let app_id = unique_id(&format!("pod-app{round}"));
        moat.ok(&["create".as_ref(), "--bundle".as_ref(), app.path().as_os_str(), app_id.as_ref()]);
        moat.ok(&["start", &app_id]);
        if !eventually(|| curl() == "hello from the sandbox") {
            let state = moat.run(&["state", &app_id]);
            let tables = moat.run(&["exec", &pause_id, "cat", "/proc/net/tcp6", "/proc/net/udp"]);
            panic!(
                "round {round}: {:?}\napp: {}\nthe pod's sockets: {}",
                curl(),
                String::from_utf8_lossy(&state.stdout),
                String::from_utf8_lossy(&tables.stdout)
            );
        }
        if round == 0 {
            // a guest's server under 500 connections at once, UDP and ICMP
            from_peer(&net);
        }
        let side_id = unique_id(&format!("pod-side{round}"));
        let (code, out, err) = moat_e2e::run_fg(&moat, &sidecar, &side_id);
        assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
        assert_eq!(
            out,
            format!(
                "loopback from the app\npeer hello from the peer ::ffff:{POD_IP}\ninterface True\n\
             listed True\nabstract from the app, unix True\nhost refused\n"
            )
        );
        assert_no_leaks(&moat, &side_id, sidecar.path());
        moat.ok(&["kill", &app_id, "KILL"]);
        moat.wait_status(&app_id, "stopped");
        moat.ok(&["delete", &app_id]);
        assert_no_leaks(&moat, &app_id, app.path());
        // the pause container's netstack keeps the addresses
        assert!(!net.pod_kernel_addrs().contains("inet "));
    }
    drop(peer);
    // the pause container goes first: a guest's waiting accept ends with
    // ENETDOWN, it gets no new socket, its unix sockets work on
    let mut lasting = pod_bundle(&net, &["python3", "-c", ORPHAN]);
    mark(&mut lasting, "container");
    let lasting_id = unique_id("pod-orphan");
    let mut run = moat
        .cmd(&["run".as_ref(), "--bundle".as_ref(), lasting.path().as_os_str(), lasting_id.as_ref()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    run.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
    moat.ok(&["kill", &pause_id, "KILL"]);
    moat.wait_status(&pause_id, "stopped");
    // (a caller left waiting would wait for good)
    let ended = eventually(|| run.try_wait().unwrap().is_some());
    if !ended {
        let _ = run.kill();
    }
    let out = run.wait_with_output().unwrap();
    assert!(ended, "the guest's accept still waits: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "accept ENETDOWN\nsocket ENETDOWN\nunix x\n");
    assert_no_leaks(&moat, &lasting_id, lasting.path());
    moat.ok(&["delete", &pause_id]);
    assert_no_leaks(&moat, &pause_id, pause.path());
    assert!(net.pod_kernel_addrs().contains(&format!("inet {POD_IP}/24")));
}

/// A guest of the pod's netstack that outlives it.
const ORPHAN: &str = r#"
import errno, socket
u1, u2 = socket.socketpair()
l = socket.socket()
l.bind(("0.0.0.0", 9100))
l.listen()
print("ready", flush=True)
try:
    l.accept()
    print("accepted")
except OSError as e:
    print("accept", errno.errorcode[e.errno])
try:
    socket.socket()
    print("made")
except OSError as e:
    print("socket", errno.errorcode[e.errno])
u1.send(b"x")
print("unix", u2.recv(1).decode())
"#;

/// The netstack's calls with random arguments ([`net_fuzz.py`]) from a
/// guest of the pod: forwarded to the owner, whose handlers read and write
/// the guest's memory through its procfs. Neither Sentry dies, and both
/// keep working.
#[test]
fn random_arguments_from_a_guest_leave_the_pods_stack_working() {
    let net = PodNet::new("pod-fuzz");
    let moat = sentry();
    let owner = pod_bundle(&net, &["sleep", "1000"]);
    let owner_id = unique_id("pod-fuzz-owner");
    moat.ok(&["create".as_ref(), "--bundle".as_ref(), owner.path().as_os_str(), owner_id.as_ref()]);
    moat.ok(&["start", &owner_id]);
    let guest = pod_bundle(&net, &["python3", "-c", include_str!("../probes/net_fuzz.py")]);
    let guest_id = unique_id("pod-fuzz-guest");
    let (code, out, err) = moat_e2e::run_fg(&moat, &guest, &guest_id);
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    assert_eq!(out, "tcp alive\nudp alive\nerrors seen True True True\n");
    assert_no_leaks(&moat, &guest_id, guest.path());
    // the owner serves its own sandbox still
    let check = "import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n\
                 c = socket.create_connection(s.getsockname(), timeout=5); c.sendall(b'ok'); print(s.accept()[0].recv(2).decode())";
    assert_eq!(moat.ok(&["exec", &owner_id, "python3", "-c", check]), "ok\n");
    moat.ok(&["kill", &owner_id, "KILL"]);
    moat.wait_status(&owner_id, "stopped");
    moat.ok(&["delete", &owner_id]);
    assert_no_leaks(&moat, &owner_id, owner.path());
}
