//! Start-up: `run` of `true` (create, start, wait and delete in one call), and the
//! create → start → delete verbs timed one by one, as a shim drives them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Ctx, Metric, Plan, Workload};
use crate::runtime::{Container, Output, Runtime};

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

static METRICS: [Metric; 5] = [
    Metric::lower("startup/run", "run `true` (create+start+wait+delete)", "ms"),
    Metric::lower("startup/create+start", "create + start", "ms"),
    Metric::lower("startup/create", "create", "ms").table_only(),
    Metric::lower("startup/start", "start", "ms").table_only(),
    Metric::lower("startup/delete", "delete of a stopped container", "ms"),
];

#[derive(Default)]
pub struct Startup {
    bundle: Option<PathBuf>,
}

impl Workload for Startup {
    fn id(&self) -> &'static str {
        "startup"
    }

    fn title(&self) -> &'static str {
        "Start-up"
    }

    fn metrics(&self) -> &'static [Metric] {
        &METRICS
    }

    fn plan(&self, quick: bool) -> Plan {
        if quick {
            Plan::Run { warmup: 1, reps: 5 }
        } else {
            Plan::Run { warmup: 2, reps: 20 }
        }
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<()> {
        self.bundle = Some(ctx.busybox_bundle("startup", &["/bin/true"])?);
        Ok(())
    }

    fn run_once(&self, _ctx: &Ctx, rt: &Runtime) -> Result<Vec<(&'static str, f64)>> {
        let bundle = self.bundle.as_deref().context("startup bundle not prepared")?;

        let container = Container::new(rt);
        let run = rt.run(bundle, &container.id, Output::Null, RUN_TIMEOUT)?;
        drop(container);

        let container = Container::new(rt);
        let create = rt.create(bundle, &container.id)?;
        let start = rt.start(&container.id)?;
        rt.wait_stopped(&container.id, RUN_TIMEOUT)?;
        let delete = container.delete()?;

        Ok(vec![
            ("startup/run", ms(run)),
            ("startup/create+start", ms(create + start)),
            ("startup/create", ms(create)),
            ("startup/start", ms(start)),
            ("startup/delete", ms(delete)),
        ])
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
