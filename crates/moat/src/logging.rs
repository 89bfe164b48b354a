//! Log output the way runc writes it, because shims parse it: with
//! `--log-format json`, one JSON object per line with `level`, `msg` and
//! `time` (containerd reports the last `"level":"error"` line to the user);
//! with `text`, logrus-style `time=… level=… msg=…` lines.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::Registry;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// logrus-style key=value lines
    Text,
    /// one JSON object per line
    Json,
}

struct RuncLayer {
    out: Mutex<Box<dyn Write + Send>>,
    format: Format,
    max: Level,
}

#[derive(Default)]
struct Fields {
    msg: String,
    rest: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "message" {
            self.msg = v.to_string();
        } else {
            self.rest.push((f.name().to_string(), v.to_string()));
        }
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            self.msg = format!("{v:?}");
        } else {
            self.rest.push((f.name().to_string(), format!("{v:?}")));
        }
    }
}

impl<S: Subscriber> Layer<S> for RuncLayer {
    fn on_event(&self, ev: &Event<'_>, _: Context<'_, S>) {
        let level = *ev.metadata().level();
        if level > self.max {
            return;
        }
        let mut f = Fields::default();
        ev.record(&mut f);
        let lvl = level.as_str().to_ascii_lowercase();
        let time = moat_runtime::time::now_rfc3339();
        let line = match self.format {
            Format::Json => {
                let mut o = serde_json::Map::new();
                o.insert("level".into(), lvl.into());
                o.insert("msg".into(), f.msg.into());
                o.insert("time".into(), time.into());
                for (k, v) in f.rest {
                    o.insert(k, v.into());
                }
                serde_json::Value::Object(o).to_string()
            }
            Format::Text => {
                let mut s = format!("time=\"{time}\" level={lvl} msg={:?}", f.msg);
                for (k, v) in f.rest {
                    let _ = write!(s, " {k}={v:?}");
                }
                s
            }
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Installs the global logger: to `log` (appending) or stderr.
pub fn init(log: Option<&Path>, format: Format, debug: bool, strace: bool) -> anyhow::Result<()> {
    let out: Box<dyn Write + Send> = match log {
        Some(p) => {
            let f: File = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("--log {}: {e}", p.display()))?;
            Box::new(f)
        }
        None => Box::new(std::io::stderr()),
    };
    let max = if debug {
        Level::DEBUG
    } else if strace {
        Level::INFO
    } else {
        Level::WARN
    };
    let layer = RuncLayer { out: Mutex::new(out), format, max };
    let _ = tracing::subscriber::set_global_default(Registry::default().with(layer));
    Ok(())
}
