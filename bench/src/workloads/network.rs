//! Network throughput and latency: a slot, not yet a workload.
//!
//! It needs the sentry platform's netstack (design.md §2, "Network"); until then comparing
//! runc with runsc alone would say nothing about moat. The metrics are declared so the report
//! shows the gap.

use anyhow::{bail, Result};

use super::{Ctx, Metric, Plan, Workload};
use crate::runtime::Runtime;

static METRICS: [Metric; 2] = [
    Metric::higher("network/tcp-stream", "TCP stream over loopback", "MB/s"),
    Metric::lower("network/tcp-rr", "TCP request/response round trip", "µs"),
];

pub struct Network;

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

    fn plan(&self, _quick: bool) -> Plan {
        Plan::Skip("not yet: needs the sentry netstack".into())
    }

    fn prepare(&mut self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }

    fn run_once(&self, _ctx: &Ctx, _rt: &Runtime) -> Result<Vec<(&'static str, f64)>> {
        bail!("not yet: needs the sentry netstack")
    }
}
