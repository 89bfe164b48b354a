//! moat's OCI front end: everything between the CLI and the jail.
//!
//! [`spec`] loads and checks config.json, [`id`] validates container ids,
//! [`state`] keeps the state directory (locking, status), [`hooks`] runs OCI
//! hooks, [`console`] handles ptys, and the lifecycle verbs live in
//! [`create`], [`start`], [`signal`], [`delete`], [`exec`], [`query`] and
//! [`freeze`]. [`init`] is what runs inside the container before the user's
//! program; [`channel`] is how it talks to the moat process that made it.
#![warn(missing_docs)]

pub mod boot;
pub mod channel;
pub mod console;
pub mod create;
pub mod defaults;
pub mod delete;
mod error;
pub mod exec;
pub mod fdpass;
pub mod fds;
pub mod features;
pub mod freeze;
pub mod hooks;
pub mod id;
pub mod idrange;
pub mod init;
mod panic_report;
mod process;
mod procs;
pub mod query;
pub mod run;
pub mod signal;
pub mod spec;
pub mod start;
pub mod state;
pub mod time;
pub mod userns;
pub mod wait;

pub use error::{Error, Result};

/// The OCI runtime spec version moat implements.
pub const OCI_VERSION: &str = "1.0.2";

/// Where moat keeps container state unless `--root` says otherwise.
pub const DEFAULT_ROOT: &str = "/run/moat";

/// How moat isolates a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// namespaces, cgroups and seccomp on the shared host kernel (runc's
    /// model); what a state file without a platform was made with
    #[default]
    Native,
    /// the split application kernel, the command line's default (identity,
    /// /proc and /sys served; path and socket calls still run on the host)
    Sentry,
}

impl std::str::FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "native" => Ok(Platform::Native),
            "sentry" => Ok(Platform::Sentry),
            other => Err(Error::Unsupported(format!("unknown platform {other:?} (known: native, sentry)"))),
        }
    }
}

/// Whether a sentry sandbox whose spec brings no user namespace gets one
/// of its own ([`userns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Userns {
    /// one of its own where its files allow (idmapped mounts)
    Auto,
    /// the host's, as with runc
    Off,
}

impl std::str::FromStr for Userns {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Userns::Auto),
            "off" => Ok(Userns::Off),
            other => Err(Error::Unsupported(format!("unknown --userns {other:?} (known: auto, off)"))),
        }
    }
}

/// The sandbox's network (`--network`, runsc's flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// the spec's network namespace; until the netstack takes over the
    /// pod's interface, the host kernel makes the app's sockets there
    Sandbox,
    /// the host's: `moat do` shares the host's network namespace; for
    /// `create` and `run` the spec decides, as with `sandbox`
    Host,
    /// sentry platform: the Sentry's netstack with a loopback interface
    /// only; the app's TCP sockets never reach the host's stack
    None,
}

impl std::str::FromStr for Network {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sandbox" => Ok(Network::Sandbox),
            "host" => Ok(Network::Host),
            "none" => Ok(Network::None),
            other => Err(Error::Unsupported(format!("unknown --network {other:?} (known: sandbox, host, none)"))),
        }
    }
}

/// Options every verb shares (the CLI's global flags).
#[derive(Debug, Clone)]
pub struct Global {
    /// state root (`--root`)
    pub root: std::path::PathBuf,
    /// `--systemd-cgroup`
    pub systemd_cgroup: bool,
    /// `--platform`
    pub platform: Platform,
    /// `--strace`: the Sentry logs every served call
    pub strace: bool,
    /// `--userns`
    pub userns: Userns,
    /// `--directfs`: false serves the container's files to the stubs from the gofer
    pub directfs: bool,
    /// `--file-access=shared`: the container's root may change beside the
    /// Sentry (the gofer's view keeps nothing of it)
    pub shared_root: bool,
    /// `--network`
    pub network: Network,
}
