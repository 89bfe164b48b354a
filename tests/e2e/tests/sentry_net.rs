//! `--network=none` on the sentry platform: the sandbox's TCP and UDP
//! sockets are its own netstack's (loopback only). Programs talk to each other over
//! 127.0.0.1 and ::1 as on Linux, and the host's stack never holds one of
//! their sockets: the sandbox's network namespace shows none, and a host
//! process in it cannot reach the sandbox's listener.

use moat_e2e::{assert_no_leaks, debian, unique_id, Moat};

fn net_moat() -> Moat {
    let mut m = Moat::new();
    m.global = vec!["--platform".into(), "sentry".into(), "--network=none".into()];
    m
}

/// Python that exercises the stack the way servers and clients do.
const TCP: &str = r#"
import errno, select, socket, threading

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(128)
port = srv.getsockname()[1]
print("bound", port >= 32768, srv.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))

def echo_all():
    while True:
        c, a = srv.accept()
        data = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            data += d
        c.sendall(b"%d" % len(data))
        c.close()
        if data == b"stop":
            return
t = threading.Thread(target=echo_all)
t.start()

# a blocking connect, 3 MiB one way, a half close, the answer the other way
cl = socket.create_connection(("127.0.0.1", port))
print("names", cl.getpeername() == ("127.0.0.1", port), cl.getsockname()[0])
cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print("nodelay", cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
# TCP_INFO: Linux's layout, as long as the caller's buffer takes; the state,
# the path's segment size (TCP_MAXSEG too; Linux's 536 before a connection)
info = cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
short = cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
mss = int.from_bytes(info[16:20], "little")
print("tcp_info", len(info), len(short), info[0], srv.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0],
      mss == cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) > 60000, socket.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
# the congestion control there is (smoltcp's Reno); another is not there
cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno")
try:
    cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"bbr")
except OSError as e:
    print("congestion", cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode(), errno.errorcode[e.errno])
cl.sendall(b"x" * (3 << 20))
cl.shutdown(socket.SHUT_WR)
print("echo", cl.recv(100).decode())
cl.close()

# a non-blocking connect: EINPROGRESS, then writable with SO_ERROR 0
nb = socket.socket()
nb.setblocking(False)
print("nonblocking", nb.connect_ex(("127.0.0.1", port)) == errno.EINPROGRESS)
select.select([], [nb], [], 5)
print("so_error", nb.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
nb.setblocking(True)
nb.sendall(b"abc")
nb.shutdown(socket.SHUT_WR)
print("nb echo", nb.recv(10).decode())
nb.close()

# nobody listens there
try:
    socket.create_connection(("127.0.0.1", 1))
except ConnectionRefusedError:
    print("refused")

# IPv6 loopback, and an IPv4 peer of a dual-stack listener
six = socket.socket(socket.AF_INET6)
six.bind(("::", 0))
six.listen(4)
p6 = six.getsockname()[1]
for host in ("::1", "127.0.0.1"):
    c = socket.create_connection((host, p6))
    s, a = six.accept()
    s.sendall(b"hi"); s.close()
    print("v6", host, a[0], c.recv(2).decode())
    c.close()

# many connections at once
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(500)]
for c in conns:
    c.sendall(b"yz"); c.shutdown(socket.SHUT_WR)
print("many", sum(c.recv(10) == b"2" for c in conns))
for c in conns:
    c.close()
last = socket.create_connection(("127.0.0.1", port))
last.sendall(b"stop"); last.shutdown(socket.SHUT_WR); last.recv(10); last.close()
t.join()

# a restarted server binds its port again with SO_REUSEADDR; without, it is in use
kept = socket.create_connection(("127.0.0.1", port))
held, _ = srv.accept()
srv.close()
again = socket.socket()
again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
again.bind(("127.0.0.1", port))
again.listen(1)
try:
    socket.socket().bind(("127.0.0.1", port))
except OSError as e:
    print("rebound, else", errno.errorcode[e.errno])
print("done")
"#;

/// Runs `script` with python3 in a Debian sandbox with a netstack; its stdout.
fn python(name: &str, script: &str) -> String {
    let moat = net_moat();
    let b = debian::bundle(&["python3", "-c", script]);
    let id = unique_id(name);
    let (code, out, err) = moat_e2e::run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    assert_no_leaks(&moat, &id, b.path());
    out
}

/// iperf3, what one tries first to measure a network: a server and a client
/// in the sandbox, over its loopback, and the report the client writes
/// from the socket's TCP_INFO and TCP_CONGESTION.
#[test]
fn iperf3_runs_over_the_sandbox_loopback() {
    let moat = net_moat();
    let script = "iperf3 -s -1 >/tmp/server.log 2>&1 & sleep 0.5; iperf3 -c 127.0.0.1 -t 1 -J";
    let b = debian::bundle(&["sh", "-c", script]);
    let id = unique_id("net-iperf3");
    let (code, out, err) = moat_e2e::run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let sent = &report["end"]["sum_sent"];
    assert!(sent["bytes"].as_u64().is_some_and(|b| b > 1 << 20), "{out}");
    // (from TCP_INFO: none that smoltcp would tell; its buffer's garbage before)
    assert_eq!(sent["retransmits"], 0, "{out}");
    assert_eq!(report["end"]["sender_tcp_congestion"], "reno", "{out}");
    assert_no_leaks(&moat, &id, b.path());
}

#[test]
fn tcp_over_the_sandbox_loopback_is_served_by_its_netstack() {
    assert_eq!(
        python("net-tcp", TCP),
        "bound True 1\nnames True 127.0.0.1\nnodelay True\ntcp_info 280 104 1 10 True 536\ncongestion reno ENOENT\necho 3145728\nnonblocking True\nso_error 0\n\
         nb echo 3\nrefused\nv6 ::1 ::1 hi\nv6 127.0.0.1 ::ffff:127.0.0.1 hi\nmany 500\nrebound, else EADDRINUSE\ndone\n"
    );
}

/// UDP the way programs use it: an echo server with recvfrom and sendto, an
/// unconnected and a connected client, many datagrams in order, a timeout,
/// IPv6; ICMP echo over IPv4 and IPv6; sendmsg and recvmsg.
const UDP: &str = r#"
import socket, threading
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
srv.bind(("127.0.0.1", 0))
port = srv.getsockname()[1]
print("type", srv.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_DGRAM)
def echo():
    while True:
        d, a = srv.recvfrom(2048)
        srv.sendto(d.upper(), a)
        if d == b"stop":
            return
t = threading.Thread(target=echo)
t.start()
cl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
cl.sendto(b"hello", ("127.0.0.1", port))
d, a = cl.recvfrom(100)
print("unconnected", d.decode(), a == ("127.0.0.1", port), cl.getsockname()[1] > 0)
c2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c2.connect(("127.0.0.1", port))
c2.send(b"again")
print("connected", c2.recv(100).decode(), c2.getpeername()[1] == port)
for i in range(50):
    c2.send(b"m%d" % i)
got = [c2.recv(100) for _ in range(50)]
print("in order", got == [b"M%d" % i for i in range(50)])
c2.settimeout(0.3)
try:
    c2.recv(10)
except socket.timeout:
    print("timeout")
cl.sendto(b"stop", ("127.0.0.1", port))
t.join()
six = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
six.bind(("::1", 0))
x = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
x.sendto(b"v6", six.getsockname()[:2])
d, a = six.recvfrom(10)
print("v6", d.decode(), a[0])
# ICMP echo ("ping" sockets): the stack answers, the reply comes back
import struct
def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
for fam, proto, typ, host in [(socket.AF_INET, socket.IPPROTO_ICMP, 8, "127.0.0.1"), (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, "::1")]:
    p = socket.socket(fam, socket.SOCK_DGRAM, proto)
    p.settimeout(5)
    req = struct.pack("!BBHHH", typ, 0, 0, 0x1234, 7) + b"moat-ping!"
    req = req[:2] + struct.pack("!H", checksum(req)) + req[4:]
    p.sendto(req, (host, 0))
    d, a = p.recvfrom(100)
    print("ping", a[0], d[0], struct.unpack("!H", d[6:8])[0], d[8:].decode())
    if fam == socket.AF_INET:
        # the reply's TTL (IP_RECVTTL, 12), as ping shows it
        p.setsockopt(socket.IPPROTO_IP, 12, 1)
        p.sendto(req, (host, 0))
        d, anc, _, a = p.recvmsg(100, 64)
        print("ping ttl", [(l, t, struct.unpack("i", v)[0]) for l, t, v in anc] == [(socket.IPPROTO_IP, socket.IP_TTL, 64)])
    else:
        # an ICMPv6 request to an IPv4 host, by a mapped address: EINVAL, as Linux
        import errno
        try:
            p.sendto(req, ("::ffff:127.0.0.1", 0))
            print("ping6 mapped sent")
        except OSError as e:
            print("ping6 mapped", errno.errorcode[e.errno])
# sendmsg and recvmsg: gathered and scattered, the sender, truncation
x.sendmsg([b"ga", b"ther"], [], 0, six.getsockname()[:2])
d, anc, flags, a = six.recvmsg(4)
print("msg", d.decode(), anc, flags & socket.MSG_TRUNC != 0, a[1] == x.getsockname()[1])
# the address a datagram was sent to, and the interface (IP_PKTINFO, 8: not
# in this Python, IPV6_PKTINFO)
srv4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
srv4.bind(("0.0.0.0", 0))
srv4.setsockopt(socket.IPPROTO_IP, 8, 1)
cl.sendto(b"where", ("127.0.0.1", srv4.getsockname()[1]))
d, anc, flags, a = srv4.recvmsg(10, 64)
(level, kind, data), = anc
index, spec, to = struct.unpack("=I4s4s", data)
print("pktinfo", level == socket.IPPROTO_IP, kind == 8, index, socket.inet_ntoa(to), srv4.getsockopt(socket.IPPROTO_IP, 8))
six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
x.sendto(b"where", six.getsockname()[:2])
d, anc, flags, a = six.recvmsg(10, 64)
(level, kind, data), = anc
print("pktinfo6", kind == socket.IPV6_PKTINFO, socket.inet_ntop(socket.AF_INET6, data[:16]), struct.unpack("=I", data[16:])[0])
x.sendto(b"short", six.getsockname()[:2])
d, anc, flags, a = six.recvmsg(10, 8)
print("no room", anc, flags & socket.MSG_CTRUNC != 0)
six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 0)
# control messages sent: a hop limit and traffic class of the datagram's
# own, a source address of the stack's; told on receipt, with the time
IP_RECVTTL, SO_TIMESTAMP, SO_TIMESTAMPNS, SO_MARK = 12, 29, 35, 36  # (not all in this Python)
import errno, time
r4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r4.bind(("127.0.0.1", 0))
r4.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
r4.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
r4.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
started = time.time()
cl.sendmsg([b"marked"], [(socket.IPPROTO_IP, socket.IP_TTL, struct.pack("i", 7)), (socket.IPPROTO_IP, socket.IP_TOS, struct.pack("i", 0x28)),
                         (socket.IPPROTO_IP, 8, struct.pack("=I4s4s", 0, socket.inet_aton("127.0.0.5"), bytes(4)))], 0, r4.getsockname())
d, anc, flags, a = r4.recvmsg(10, 256)
sec, nsec = struct.unpack("qq", anc[0][2])
print("marks", d.decode(), a[0], [(l, t) for l, t, _ in anc] == [(socket.SOL_SOCKET, SO_TIMESTAMPNS), (socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IP, socket.IP_TOS)],
      struct.unpack("i", anc[1][2])[0], anc[2][2], started <= sec + nsec / 1e9 <= time.time(), r4.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS))
for bad in [[(socket.IPPROTO_IP, 8, struct.pack("=I4s4s", 0, socket.inet_aton("10.1.2.3"), bytes(4)))],
            [(socket.IPPROTO_IP, socket.IP_TTL, struct.pack("i", 0))], [(socket.IPPROTO_IP, 99, struct.pack("i", 0))],
            [(socket.SOL_SOCKET, SO_MARK, struct.pack("i", 1))]]:
    try:
        cl.sendmsg([b"bad"], bad, 0, r4.getsockname())
        print("sent!")
    except OSError as e:
        print("refused", errno.errorcode[e.errno])
# a source of the other family (a mapped IPv4 one to ::1): refused, and
# the stack lives on
try:
    x.sendmsg([b"mixed"], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1") + bytes(4))], 0, ("::1", 9))
    print("sent!")
except OSError as e:
    print("mixed", errno.errorcode[e.errno])
# an IPv6 socket to a mapped IPv4 address: IPv4's messages count
x.sendmsg([b"mapped"], [(socket.IPPROTO_IP, socket.IP_TTL, struct.pack("i", 5))], 0, ("::ffff:127.0.0.1", r4.getsockname()[1]))
d, anc, flags, a = r4.recvmsg(10, 256)
print("mapped", d.decode(), [struct.unpack("i", v)[0] for l, t, v in anc if t == socket.IP_TTL])
r6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
r6.bind(("::1", 0))
r6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
r6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
x.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x30)
x.sendmsg([b"six"], [(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("i", 3))], 0, r6.getsockname()[:2])
d, anc, flags, a = r6.recvmsg(10, 256)
print("marks6", d.decode(), [(t, struct.unpack("i", v)[0]) for _, t, v in anc] == [(socket.IPV6_HOPLIMIT, 3), (socket.IPV6_TCLASS, 0x30)])
"#;

#[test]
fn udp_over_the_sandbox_loopback_is_served_by_its_netstack() {
    assert_eq!(
        python("net-udp", UDP),
        "type True\nunconnected HELLO True True\nconnected AGAIN True\nin order True\ntimeout\nv6 v6 ::1\n\
         ping 127.0.0.1 0 7 moat-ping!\nping ttl True\nping ::1 129 7 moat-ping!\nping6 mapped EINVAL\nmsg gath [] True True\n\
         pktinfo True True 1 127.0.0.1 1\npktinfo6 True ::1 1\nno room [] True\n\
         marks marked 127.0.0.5 True 7 b'(' True 1\nrefused EINVAL\nrefused EINVAL\nrefused EINVAL\nrefused EPERM\nmixed EINVAL\nmapped mapped [5]\n\
         marks6 six True\n"
    );
}

/// Listens on 127.0.0.1:7777 and answers each connection with "sandbox".
const SERVER: &str = r#"
import socket
s = socket.socket()
s.bind(("127.0.0.1", 7777))
s.listen(8)
open("/tmp/ready", "w").close()
while True:
    c, _ = s.accept()
    c.sendall(b"sandbox")
    c.close()
"#;

#[test]
fn the_host_holds_no_socket_of_the_sandbox() {
    let moat = net_moat();
    let b = debian::bundle(&["python3", "-c", SERVER]);
    let id = unique_id("net-iso");
    moat.ok(&["create".as_ref(), "--bundle".as_ref(), b.path().as_os_str(), id.as_ref()]);
    moat.ok(&["start", &id]);
    let state: serde_json::Value = serde_json::from_str(&moat.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let ready = "for i in $(seq 100); do [ -e /tmp/ready ] && exit 0; sleep 0.1; done; exit 1";
    moat.ok(&["exec", &id, "sh", "-c", ready]);
    // inside, another process reaches the listener (the same netstack)
    let client = "import socket; print(socket.create_connection(('127.0.0.1', 7777)).recv(10).decode())";
    assert_eq!(moat.ok(&["exec", &id, "python3", "-c", client]), "sandbox\n");
    // the sandbox's /proc/net/tcp is the netstack's: the listener, with the
    // inode its process holds (what netstat -p and ss -p look up)
    let listed = r#"
import os
rows = [l.split() for l in open("/proc/net/tcp").read().splitlines()[1:]]
inode = [r[9] for r in rows if r[1] == "0100007F:1E61" and r[3] == "0A"][0]
links = [os.readlink("/proc/1/fd/" + fd) for fd in os.listdir("/proc/1/fd")]
print("listed", "socket:[%s]" % inode in links)
"#;
    assert_eq!(moat.ok(&["exec", &id, "python3", "-c", listed]), "listed True\n");
    // the kernel's own view of the sandbox's network namespace: no listener,
    // and a host process there is refused
    let ns = format!("--net=/proc/{pid}/ns/net");
    let listening = std::process::Command::new("nsenter").args([&ns, "ss", "-Htln"]).output().unwrap();
    assert!(listening.status.success(), "{listening:?}");
    assert_eq!(String::from_utf8_lossy(&listening.stdout).trim(), "", "the host's stack holds a listener");
    // (its loopback is up: the refusal is the kernel's answer)
    let reach = std::process::Command::new("nsenter")
        .args([&ns, "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 7777))"])
        .output()
        .unwrap();
    assert!(!reach.status.success(), "a host process reached the sandbox's listener");
    assert!(String::from_utf8_lossy(&reach.stderr).contains("Connection refused"), "{reach:?}");
    moat.ok(&["kill", &id, "KILL"]);
    moat.wait_status(&id, "stopped");
    moat.ok(&["delete", &id]);
    assert_no_leaks(&moat, &id, b.path());
}

/// A new network namespace has its loopback up, as runc leaves it (native
/// and sentry alike; with a netstack the app's sockets are the Sentry's, but
/// the kernel's lo is there too).
#[test]
fn a_new_network_namespace_has_its_loopback_up() {
    for platform in ["native", "sentry"] {
        let mut moat = Moat::new();
        moat.global = vec!["--platform".into(), platform.into()];
        let b = moat_e2e::Bundle::busybox(&["ip", "link", "show", "lo"]);
        let id = unique_id("net-lo");
        let (code, out, err) = moat_e2e::run_fg(&moat, &b, &id);
        assert_eq!(code, 0, "{platform}: {err}");
        assert!(out.contains("<LOOPBACK,UP"), "{platform}: {out}");
        assert_no_leaks(&moat, &id, b.path());
    }
}

/// `--network=host`: the app's internet sockets are the host's, made by the
/// Sentry's socket maker in the app's network namespace as the caller's
/// ids (a socket's owner uid is its maker's).
const HOST: &str = r#"
import errno, os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
port = s.getsockname()[1]
c = socket.create_connection(("127.0.0.1", port))
a, _ = s.accept()
c.sendall(b"hi")
print("tcp", a.recv(2).decode())
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.bind(("::1", 0))
u.sendto(b"udp", u.getsockname()[:2])
print("udp", u.recvfrom(10)[0].decode())
# the listener's and the accepted connection's owner, as /proc/net/tcp shows it
owner = {l.split()[7] for l in open("/proc/net/tcp") if l.split()[1] == "0100007F:%04X" % port}
print("owner", owner == {str(os.getuid())}, os.getuid())
# a kind the maker does not make (SCTP) is refused, and it makes the next
try:
    socket.socket(socket.AF_INET, socket.SOCK_SEQPACKET, 132)
except OSError as e:
    print("sctp", e.errno == errno.ESOCKTNOSUPPORT)
# the host's loopback: a port the test listens on
h = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("host", h.recv(20).decode())
"#;

#[test]
fn host_network_sockets_are_made_as_the_caller() {
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut c, _) = host.accept().unwrap();
        std::io::Write::write_all(&mut c, b"from the host").unwrap();
    });
    let mut moat = Moat::new();
    moat.global = vec!["--platform".into(), "sentry".into(), "--network=host".into()];
    let mut b = debian::bundle(&["python3", "-c", HOST, &port]);
    b.edit(|s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network");
        s["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    });
    let id = unique_id("net-host");
    let (code, out, err) = moat_e2e::run_fg(&moat, &b, &id);
    server.join().unwrap();
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    assert_eq!(out, "tcp hi\nudp udp\nowner True 1000\nsctp True\nhost from the host\n");
    assert_no_leaks(&moat, &id, b.path());
}

/// Throws random arguments at the calls the netstack serves (options,
/// control messages, addresses, message headers with lengths that lie,
/// route netlink requests, interface ioctls), a fixed sequence from a seed;
/// then the stack must still carry TCP and UDP. Every error is the
/// program's to see: the Sentry must neither die nor answer with ENOSYS
/// (what a caller gets once it has), nor with EIO where Linux says EFAULT.
const FUZZ: &str = include_str!("../probes/net_fuzz.py");

#[test]
fn random_arguments_to_the_netstacks_calls_leave_it_working() {
    assert_eq!(python("net-fuzz", FUZZ), "tcp alive\nudp alive\nerrors seen True True True\n");
}
