//! Network over a pod's interface, as a CNI plugin leaves one: the container joins a network
//! namespace holding one end of a veth pair (eth0, 10.78.0.2/24), whose other end is in a peer
//! namespace (10.78.0.1) where the clients run: the bench itself for TCP streams (1 and 8
//! connections, reading what the container's `micro serve` sends), and wrk for HTTP requests
//! to its small HTTP server: one keep-alive connection (the latency of a request alone), then 8
//! from 2 threads (the latency under load, where it is the throughput's inverse). Both namespaces are the
//! bench's, made in `prepare` and removed when it ends.
//!
//! The runtimes' network flags are adjusted for this workload: a moat runtime with
//! `--network=none` runs with the default (`sandbox`: its netstack takes the pod's interface
//! over); runsc runs with `--network=sandbox` too (its own netstack on the pod's interface).
//! Debian's 2022 runsc refuses that here as it stands: it takes any namespace for the host's
//! because /proc/sys/net/core/rmem_default exists in every namespace on Linux 6.x (gVisor's
//! later releases changed the test). So its commands run in a mount namespace of their own,
//! with an empty tmpfs over /proc/sys/net ([`RUNSC_NETNS`]), which hides that file from the
//! test and nothing a run of this workload needs. runsc does not give the pod's address and
//! route back when its sandbox ends, so the bench puts them back before every run.

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{Ctx, Metric, Plan, Workload};
use crate::reaper::Reaper;
use crate::runtime::{Container, Runtime};

static METRICS: [Metric; 7] = [
    Metric::higher("pod/tcp-1", "TCP stream out of the pod, 1 connection", "MB/s"),
    Metric::higher("pod/tcp-8", "TCP streams out of the pod, 8 connections", "MB/s"),
    Metric::lower("pod/http-p50-1", "HTTP request latency p50 (wrk, 1 connection)", "µs"),
    Metric::lower("pod/http-p50", "HTTP request latency p50 (wrk, 8 connections)", "µs"),
    Metric::higher("pod/http-rps", "HTTP requests/s (wrk, 8 connections)", "req/s").table_only(),
    Metric::lower("pod/relay-p50", "HTTP p50 through a relay in the pod (wrk, 8 connections)", "µs").table_only(),
    Metric::higher("pod/relay-rps", "HTTP requests/s through a relay in the pod (wrk, 8 connections)", "req/s")
        .table_only(),
];

const POD_IP: &str = "10.78.0.2";
const PEER_IP: &str = "10.78.0.1";
/// The relay's port ([`super::relay`]).
const RELAY_PORT: u16 = 5003;

/// The pod's and the peer's network namespaces.
struct PodNet {
    pod: String,
    peer: String,
    reaper: Reaper,
}

impl PodNet {
    fn new(reaper: &Reaper) -> Result<PodNet> {
        let id = std::process::id();
        let net = PodNet { pod: format!("mbpod{id}"), peer: format!("mbpeer{id}"), reaper: reaper.clone() };
        let (pod, peer) = (net.pod.as_str(), net.peer.as_str());
        net.ip(&["netns", "add", pod])?;
        net.ip(&["netns", "add", peer])?;
        net.ip(&["link", "add", "eth0", "netns", pod, "type", "veth", "peer", "name", "veth0", "netns", peer])?;
        for (ns, dev, me) in [(pod, "eth0", POD_IP), (peer, "veth0", PEER_IP)] {
            net.ip(&["-n", ns, "link", "set", "lo", "up"])?;
            net.ip(&["-n", ns, "addr", "add", &format!("{me}/24"), "dev", dev])?;
            net.ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        net.ip(&["-n", pod, "route", "add", "default", "via", PEER_IP])?;
        Ok(net)
    }

    /// Puts the pod's address and default route back where a runtime took them (runsc's
    /// netstack keeps them when its sandbox ends; moat's gives them back itself).
    fn give_back(&self) -> Result<()> {
        self.ip(&["-n", &self.pod, "addr", "replace", &format!("{POD_IP}/24"), "dev", "eth0"])?;
        self.ip(&["-n", &self.pod, "route", "replace", "default", "via", PEER_IP])
    }

    /// Runs `ip args` (through the reaper: the bench reaps its children itself).
    fn ip(&self, args: &[&str]) -> Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args(args);
        let out =
            self.reaper.capture(&mut cmd, Duration::from_secs(30)).context("run ip (apt-get install iproute2)")?;
        if out.code != 0 {
            bail!("ip {}: {}", args.join(" "), out.stderr.trim());
        }
        Ok(())
    }

    fn path(ns: &str) -> PathBuf {
        Path::new("/var/run/netns").join(ns)
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        for ns in [&self.pod, &self.peer] {
            let _ = self.ip(&["netns", "del", ns]);
        }
    }
}

pub struct Pod {
    secs: u64,
    net: Option<PodNet>,
    bundle: Option<PathBuf>,
}

impl Pod {
    pub fn new(quick: bool) -> Self {
        Self { secs: if quick { 2 } else { 5 }, net: None, bundle: None }
    }
}

/// The command that runs runsc's own ones (`sh -c SCRIPT runsc ARGS…`) in a mount namespace
/// whose /proc/sys/net is an empty tmpfs (see the module's comment).
const RUNSC_NETNS: &str = "mount -t tmpfs hide-net-sysctls /proc/sys/net && exec \"$0\" \"$@\"";

/// `rt` as this workload runs it (see the module's comment).
fn on_pod(rt: &Runtime) -> Runtime {
    let runsc = rt.argv[0].ends_with("runsc");
    let mut argv: Vec<String> = rt.argv.iter().filter(|a| !a.starts_with("--network")).cloned().collect();
    if runsc {
        let wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", RUNSC_NETNS];
        argv.splice(0..0, wrap.map(str::to_owned));
        argv.push("--network=sandbox".into());
    }
    rt.variant(argv)
}

impl Workload for Pod {
    fn id(&self) -> &'static str {
        "pod"
    }

    fn title(&self) -> &'static str {
        "Network over a pod's veth"
    }

    fn metrics(&self) -> &'static [Metric] {
        &METRICS
    }

    fn plan(&self, quick: bool) -> Plan {
        // (looked for, not run: the bench reaps its children itself)
        match crate::discover::resolve("wrk") {
            Ok(_) => Plan::Run { warmup: 0, reps: if quick { 2 } else { 3 } },
            Err(_) => Plan::Skip("wrk is not installed (apt-get install wrk)".into()),
        }
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<()> {
        let net = PodNet::new(&ctx.reaper)?;
        let dir = ctx.busybox_bundle("pod", &["/bench/micro", "serve"])?;
        let path = dir.join("config.json");
        let mut spec: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path)?)?;
        for ns in spec["linux"]["namespaces"].as_array_mut().context("namespaces")? {
            if ns["type"] == "network" {
                ns["path"] = PodNet::path(&net.pod).to_string_lossy().into_owned().into();
            }
        }
        fs::write(&path, serde_json::to_string_pretty(&spec)?)?;
        self.net = Some(net);
        self.bundle = Some(dir);
        Ok(())
    }

    fn run_once(&self, ctx: &Ctx, rt: &Runtime) -> Result<Vec<(&'static str, f64)>> {
        let (Some(net), Some(bundle)) = (&self.net, &self.bundle) else { bail!("pod workload not prepared") };
        let rt = on_pod(rt);
        net.give_back()?;
        let container = Container::new(&rt);
        rt.create(bundle, &container.id)?;
        rt.start(&container.id)?;
        let peer = fs::File::open(PodNet::path(&net.peer)).context("open the peer's namespace")?;
        let duration = Duration::from_secs(self.secs);
        wait_serving(&peer)?;
        let one = stream(&peer, 1, duration)?;
        let eight = stream(&peer, 8, duration)?;
        let (alone, _) = wrk(ctx, &net.peer, 1, self.secs, 5002)?;
        let (p50, rps) = wrk(ctx, &net.peer, 8, self.secs, 5002)?;
        let mut got = vec![
            ("pod/tcp-1", one),
            ("pod/tcp-8", eight),
            ("pod/http-p50-1", alone),
            ("pod/http-p50", p50),
            ("pod/http-rps", rps),
        ];
        // the floor of a sandbox's stack: the same requests through a relay of the pod's
        // kernel, where the pod's kernel serves the container (runc; a sandbox took the address)
        let pod = fs::File::open(PodNet::path(&net.pod)).context("open the pod's namespace")?;
        let (at, to) = (format!("{POD_IP}:{RELAY_PORT}").parse()?, format!("{POD_IP}:5002").parse()?);
        if let Some(relay) = super::relay::Relay::start(&pod, at, to)? {
            let (p50, rps) = wrk(ctx, &net.peer, 8, self.secs, RELAY_PORT)?;
            drop(relay);
            got.extend([("pod/relay-p50", p50), ("pod/relay-rps", rps)]);
        }
        container.delete()?;
        Ok(got)
    }
}

/// Runs `f` on a thread in the namespace `ns`.
fn in_ns<T: Send>(ns: &fs::File, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).context("join the peer's namespace")?;
            f()
        })
        .join()
        .unwrap_or_else(|_| bail!("a client thread panicked"))
    })
}

/// Waits until the container's HTTP server answers connections (up to 20 s).
fn wait_serving(peer: &fs::File) -> Result<()> {
    let to: SocketAddr = format!("{POD_IP}:5002").parse()?;
    in_ns(peer, || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_err() {
            if Instant::now() > deadline {
                bail!("the container's server did not answer on {to} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    })
}

/// MB/s read from `streams` connections to port 5001 at once, for `duration`.
fn stream(peer: &fs::File, streams: usize, duration: Duration) -> Result<f64> {
    let to: SocketAddr = format!("{POD_IP}:5001").parse()?;
    let started = Instant::now();
    let bytes: Result<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..streams)
            .map(|_| {
                s.spawn(move || {
                    in_ns(peer, || {
                        let mut c = TcpStream::connect(to).with_context(|| format!("connect to {to}"))?;
                        c.set_read_timeout(Some(Duration::from_secs(10)))?;
                        let mut buf = vec![0u8; 256 * 1024];
                        let mut total = 0u64;
                        while started.elapsed() < duration {
                            let n = c.read(&mut buf).context("read the stream")?;
                            if n == 0 {
                                bail!("the stream ended early");
                            }
                            total += n as u64;
                        }
                        Ok(total)
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| bail!("a stream thread panicked"))).collect()
    });
    let total: u64 = bytes?.iter().sum();
    Ok(total as f64 / 1e6 / started.elapsed().as_secs_f64())
}

/// wrk's p50 latency (µs) and requests/s against `port` of the pod (the
/// container's HTTP server, or the relay in front of it), over
/// `connections` keep-alive connections (one thread per 4).
fn wrk(ctx: &Ctx, peer: &str, connections: usize, secs: u64, port: u16) -> Result<(f64, f64)> {
    let url = format!("http://{POD_IP}:{port}/");
    let threads = format!("-t{}", connections.div_ceil(4));
    let conns = format!("-c{connections}");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", peer, "wrk", &threads, &conns, &format!("-d{secs}s"), "--latency", &url]);
    let out = ctx.reaper.capture(&mut cmd, Duration::from_secs(secs + 30)).context("run wrk")?;
    let text = out.stdout;
    if out.code != 0 {
        bail!("wrk failed: {}", out.stderr.trim());
    }
    let field = |prefix: &str| {
        text.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix)).map(str::trim).map(str::to_owned)
    };
    let p50 = field("50%").and_then(|v| micros(&v)).with_context(|| format!("no 50% line in wrk's output {text:?}"))?;
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk's output {text:?}"))?;
    Ok((p50, rps))
}

/// A wrk duration ("51.00us", "1.20ms", "2.00s") in µs.
fn micros(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|n| n * scale)
}

#[cfg(test)]
mod tests {
    use super::micros;

    #[test]
    fn reads_wrk_durations() {
        assert_eq!(micros("51.00us"), Some(51.0));
        assert_eq!(micros("1.50ms"), Some(1500.0));
        assert_eq!(micros("2.00s"), Some(2e6));
        assert_eq!(micros("12"), None);
    }
}
