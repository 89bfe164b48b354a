//! Unix sockets on the sentry platform. The Sentry makes them (socket,
//! socketpair) in a network namespace of its own, so the abstract names a
//! sandbox binds and reaches are its alone: not the host's (with
//! `--network=host`), nor those of processes that share a pod's namespace.
//! Paths are the container's tree's, as on Linux; everything else on a unix
//! socket (fd passing, credentials, reads and writes) runs natively.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener};

use moat_e2e::{assert_no_leaks, debian, unique_id, Moat};

fn sentry(network: &str) -> Moat {
    let mut m = Moat::new();
    m.global = vec!["--platform".into(), "sentry".into(), format!("--network={network}")];
    m
}

/// Runs `script` with python3 in a Debian sandbox (after `edit`); its stdout.
fn python(moat: &Moat, name: &str, script: &str, args: &[&str], edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let argv: Vec<&str> = ["python3", "-c", script].iter().chain(args).copied().collect();
    let mut b = debian::bundle(&argv);
    b.edit(edit);
    let id = unique_id(name);
    let (code, out, err) = moat_e2e::run_fg(moat, &b, &id);
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    assert_no_leaks(moat, &id, b.path());
    out
}

/// What programs do with unix sockets: abstract and path names, stream,
/// seqpacket and datagram sockets, socketpair, SCM_RIGHTS,
/// SCM_CREDENTIALS and SO_PEERCRED, a non-blocking accept.
const INSIDE: &str = r#"
import array, errno, os, socket, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0moat-abstract"); s.listen(4)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.connect("\0moat-abstract")
a, _ = s.accept()
print("names", s.getsockname(), a.getsockname(), c.getpeername())
r, w = os.pipe()
c.sendmsg([b"fd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]))])
msg, anc, _, _ = a.recvmsg(10, socket.CMSG_SPACE(4))
fd = array.array("i", anc[0][2])[0]
os.write(w, b"through the pipe")
print("rights", msg.decode(), os.read(fd, 100).decode())
a.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
me = [os.getpid(), os.getuid(), os.getgid()]
c.sendmsg([b"cr"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, array.array("i", me))])
msg, anc, _, _ = a.recvmsg(10, socket.CMSG_SPACE(12))
print("credentials", list(array.array("i", anc[0][2])) == me)
print("peercred", list(array.array("i", a.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))) == me)
s.setblocking(False)
try:
    s.accept()
except BlockingIOError:
    print("nothing to accept")
q = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); q.bind("\0moat-seq"); q.listen()
qc = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); qc.connect("\0moat-seq"); qa, _ = q.accept()
qc.send(b"one"); qc.send(b"two")
print("seqpacket", qa.recv(10).decode(), qa.recv(10).decode())
d1 = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d1.bind("\0moat-d1")
d2 = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d2.bind("\0moat-d2")
d2.sendto(b"hi", "\0moat-d1")
data, sender = d1.recvfrom(10)
print("datagram", data.decode(), sender)
p1, p2 = socket.socketpair()
p2.send(b"pair")
print("socketpair", p1.recv(10).decode(), p1.family == socket.AF_UNIX, p1.get_inheritable())
p3, p4 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
try:
    p3.recv(1)
except BlockingIOError:
    print("nonblocking pair")
try:
    socket.socketpair(socket.AF_INET)
except OSError as e:
    print("inet pair", errno.errorcode[e.errno])
f = socket.socket(socket.AF_UNIX); f.bind("/tmp/sock"); f.listen()
print("socket file", os.path.exists("/tmp/sock"))
def serve():
    x, _ = f.accept(); x.sendall(x.recv(10)[::-1]); x.close()
t = threading.Thread(target=serve); t.start()
g = socket.socket(socket.AF_UNIX); g.connect("/tmp/sock"); g.sendall(b"path")
print("path", g.recv(10).decode()); t.join()
table = open("/proc/net/unix").read()
# exactly the 14 sockets above that are open: none of the Sentry's own
print("listed", "@moat-abstract" in table, "/tmp/sock" in table, len(table.splitlines()) - 1)
# glibc's if_nametoindex asks on a unix socket (SIOCGIFINDEX)
print("lo", socket.if_nametoindex("lo"))
"#;

#[test]
fn unix_sockets_work_inside_the_sandbox() {
    let out = python(&sentry("sandbox"), "unix-in", INSIDE, &[], |_| {});
    assert_eq!(
        out,
        "names b'\\x00moat-abstract' b'\\x00moat-abstract' b'\\x00moat-abstract'\nrights fd through the pipe\n\
         credentials True\npeercred True\nnothing to accept\nseqpacket one two\ndatagram hi b'\\x00moat-d2'\n\
         socketpair pair True False\nnonblocking pair\ninet pair ENOTSUP\nsocket file True\npath htap\n\
         listed True True 14\nlo 1\n"
    );
}

/// The sandbox tries the host's abstract names (its stream listener and its
/// datagram socket), then binds the very same names itself; and it reaches
/// a socket file of the host's that the spec mounts in.
const HOST_NAMES: &str = r#"
import errno, socket, sys
stream, dgram = sys.argv[1], sys.argv[2]
c = socket.socket(socket.AF_UNIX)
try:
    c.connect("\0" + stream); print("reached the host's listener")
except OSError as e:
    print("stream", errno.errorcode[e.errno])
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    d.sendto(b"x", "\0" + dgram); print("reached the host's datagram socket")
except OSError as e:
    print("datagram", errno.errorcode[e.errno])
p1, p2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    p1.connect("\0" + dgram); print("a pair reached the host's datagram socket")
except OSError as e:
    print("pair", errno.errorcode[e.errno])
own = socket.socket(socket.AF_UNIX); own.bind("\0" + stream); own.listen()
mine = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); mine.bind("\0" + dgram)
print("bound both")
h = socket.socket(socket.AF_UNIX); h.connect("/host/sock")
print("socket file", h.recv(20).decode())
# the host's interfaces, asked on a unix socket (as glibc's if_nametoindex does)
name, index = sys.argv[3].split(":")
print("interface", socket.if_nametoindex(name) == int(index))
"#;

#[test]
fn abstract_names_are_the_sandboxs_own() {
    let stream = format!("moat-e2e-stream-{}", std::process::id());
    let dgram = format!("moat-e2e-dgram-{}", std::process::id());
    let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(&stream).unwrap()).unwrap();
    listener.set_nonblocking(true).unwrap();
    let datagrams = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&dgram).unwrap()).unwrap();
    datagrams.set_nonblocking(true).unwrap();
    // a socket file of the host's, mounted in (as a runtime's or a sidecar's)
    let dir = tempfile::tempdir().unwrap();
    let file = UnixListener::bind(dir.path().join("sock")).unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = file.accept().unwrap();
        std::io::Write::write_all(&mut c, b"from the host").unwrap();
    });
    let host_dir = dir.path().to_string_lossy().into_owned();
    let mount = move |s: &mut serde_json::Value| {
        s["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/host", "type": "bind", "source": host_dir, "options": ["rbind"]
        }));
        // the host's network namespace
        s["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network");
    };
    // one of the host's interfaces other than lo
    let iface = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n != "lo")
        .expect("an interface besides lo");
    let index = std::fs::read_to_string(format!("/sys/class/net/{iface}/ifindex")).unwrap();
    let iface = format!("{iface}:{}", index.trim());
    let out = python(&sentry("host"), "unix-host", HOST_NAMES, &[&stream, &dgram, &iface], mount);
    server.join().unwrap();
    assert_eq!(
        out,
        "stream ECONNREFUSED\ndatagram ECONNREFUSED\npair ECONNREFUSED\nbound both\nsocket file from the host\n\
         interface True\n"
    );
    // and nothing arrived on the host's side
    assert_eq!(listener.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    assert_eq!(datagrams.recv(&mut [0u8; 8]).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
}
