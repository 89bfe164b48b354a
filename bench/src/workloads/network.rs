//! Network throughput and latency over the container's own loopback: the guest `micro net`
//! streams MiBs through one TCP connection to 127.0.0.1 and times 1-byte request/response
//! round trips on another, server and client in the same container.
//!
//! Under runc that is the host kernel's loopback; under runsc and moat's sentry platform with
//! `--network=none` it is their own netstack's (moat: smoltcp in the Sentry, the app holding
//! one end of a socketpair per socket). A moat runtime without `--network=none` measures the
//! kernel's loopback again. Pod-interface (veth) figures come once the netstack drives one.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{parse_values, run_capture, value, Ctx, Metric, Plan, Workload};
use crate::runtime::Runtime;

static METRICS: [Metric; 2] = [
    Metric::higher("network/tcp-stream", "TCP stream over loopback", "MB/s"),
    Metric::lower("network/tcp-rr", "TCP request/response round trip", "µs"),
];

pub struct Network {
    mib: u32,
    trips: u32,
    bundle: Option<PathBuf>,
}

impl Network {
    pub fn new(quick: bool) -> Self {
        Self { mib: if quick { 64 } else { 512 }, trips: if quick { 500 } else { 5000 }, bundle: None }
    }
}

impl Workload for Network {
    fn id(&self) -> &'static str {
        "network"
    }

    fn title(&self) -> &'static str {
        "Network"
    }

    fn metrics(&self) -> &'static [Metric] {
        &METRICS
    }

    fn plan(&self, quick: bool) -> Plan {
        Plan::Run { warmup: 1, reps: if quick { 3 } else { 5 } }
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<()> {
        let (mib, trips) = (self.mib.to_string(), self.trips.to_string());
        self.bundle = Some(ctx.busybox_bundle("network", &["/bench/micro", "net", &mib, &trips])?);
        Ok(())
    }

    fn run_once(&self, ctx: &Ctx, rt: &Runtime) -> Result<Vec<(&'static str, f64)>> {
        let bundle = self.bundle.as_deref().context("network bundle not prepared")?;
        let stdout = run_capture(rt, bundle, &ctx.work)?;
        let values = parse_values(&stdout);
        Ok(vec![
            ("network/tcp-stream", value(&values, "tcp-stream", &stdout)?),
            ("network/tcp-rr", value(&values, "tcp-rr", &stdout)?),
        ])
    }
}
