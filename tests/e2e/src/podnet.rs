//! A pod's network as a CNI plugin leaves it, made for one test: two
//! network namespaces the test owns, "pod" (the sandbox joins it) and
//! "peer" (the rest of the world), joined by a veth pair. The pod's end is
//! eth0, 10.77.0.2/24 and fd77::2/64, with default routes through the peer
//! (10.77.0.1, fd77::1); or, [`PodNet::routed`], as Calico leaves one.
//! Both namespaces go when it is dropped. No other address is ever used.

use std::process::{Command, Output};

use crate::unique_id;

/// The pod's IPv4 address.
pub const POD_IP: &str = "10.77.0.2";
/// The peer's IPv4 address.
pub const PEER_IP: &str = "10.77.0.1";
/// The pod's IPv6 address.
pub const POD_IP6: &str = "fd77::2";
/// The peer's IPv6 address.
pub const PEER_IP6: &str = "fd77::1";

/// The two namespaces and their veth pair.
pub struct PodNet {
    /// the pod's namespace's name (under /var/run/netns)
    pub pod: String,
    /// the peer's
    pub peer: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The gateway of a [`PodNet::routed`] pod, on no network of its own.
pub const ROUTER_IP: &str = "169.254.1.1";

impl PodNet {
    /// The two namespaces and the veth pair, both ends down and bare.
    fn pair(name: &str) -> PodNet {
        let id = unique_id(name);
        let net = PodNet { pod: format!("{id}-pod"), peer: format!("{id}-peer") };
        let (pod, peer) = (net.pod.as_str(), net.peer.as_str());
        ip(&["netns", "add", pod]);
        ip(&["netns", "add", peer]);
        ip(&["link", "add", "eth0", "netns", pod, "type", "veth", "peer", "name", "veth0", "netns", peer]);
        net
    }

    /// As some CNI plugins (Calico's) leave a pod: eth0 has 10.77.0.2/32,
    /// and the default route goes through 169.254.1.1 "onlink", an address
    /// on no network of the pod's (the peer holds it, and 10.77.0.1/24).
    pub fn routed(name: &str) -> PodNet {
        let net = PodNet::pair(name);
        let (pod, peer) = (net.pod.as_str(), net.peer.as_str());
        for (ns, dev) in [(pod, "eth0"), (peer, "veth0")] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        ip(&["-n", pod, "addr", "add", &format!("{POD_IP}/32"), "dev", "eth0"]);
        ip(&["-n", pod, "route", "add", "default", "via", ROUTER_IP, "dev", "eth0", "onlink"]);
        ip(&["-n", peer, "addr", "add", &format!("{PEER_IP}/24"), "dev", "veth0"]);
        ip(&["-n", peer, "addr", "add", &format!("{ROUTER_IP}/32"), "dev", "veth0"]);
        net
    }

    /// Makes them; `name` makes their names unique.
    pub fn new(name: &str) -> PodNet {
        let net = PodNet::pair(name);
        let (pod, peer) = (net.pod.as_str(), net.peer.as_str());
        for (ns, dev, me, them) in [(pod, "eth0", POD_IP, PEER_IP), (peer, "veth0", PEER_IP, POD_IP)] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", &format!("{me}/24"), "dev", dev]);
            let (me6, them6) = if me == POD_IP { (POD_IP6, PEER_IP6) } else { (PEER_IP6, POD_IP6) };
            // (no duplicate address detection: the address is usable at once)
            ip(&["-n", ns, "addr", "add", &format!("{me6}/64"), "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            if ns == pod {
                ip(&["-n", ns, "route", "add", "default", "via", them]);
                ip(&["-n", ns, "-6", "route", "add", "default", "via", them6]);
            }
        }
        net
    }

    /// The path a spec joins the pod's namespace by.
    pub fn pod_path(&self) -> String {
        format!("/var/run/netns/{}", self.pod)
    }

    /// A command that runs `args` in the peer's namespace.
    pub fn in_peer(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.peer]).args(args);
        c
    }

    /// Starts `args` in the peer's namespace and waits for its first line
    /// (a server saying it is ready); it is killed when the guard goes,
    /// also when a test fails first.
    pub fn serve_in_peer(&self, args: &[&str]) -> PeerProcess {
        let mut child = self.in_peer(args).stdout(std::process::Stdio::piped()).spawn().expect("start in the peer");
        let mut ready = String::new();
        let out = child.stdout.take().expect("its stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut ready).expect("its first line");
        PeerProcess(child)
    }

    /// Runs `args` in the peer's namespace; its output.
    pub fn peer_run(&self, args: &[&str]) -> Output {
        self.in_peer(args).output().expect("run in the peer's namespace")
    }

    /// What the pod's kernel shows of eth0 (`ip addr show eth0`).
    pub fn pod_kernel_addrs(&self) -> String {
        let out = Command::new("ip").args(["-n", &self.pod, "addr", "show", "eth0"]).output().expect("run ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        for ns in [&self.pod, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A process in the peer's namespace, killed (and reaped) when dropped.
pub struct PeerProcess(std::process::Child);

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
