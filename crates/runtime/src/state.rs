//! The state directory: one directory per container under the root
//! (`/run/moat/<id>`), holding `state.json`, a copy of the spec and the
//! start socket. Every verb takes an exclusive flock on the directory, so
//! concurrent moat invocations on one container serialize.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use moat_jail::cgroups::Location;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::{id, procs, Error, Platform, Result};

/// What moat remembers about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    /// OCI version of the spec
    pub oci_version: String,
    /// container id
    pub id: String,
    /// host pid of the container's init
    pub pid: i32,
    /// its start time (clock ticks since boot) — guards against pid reuse
    pub pid_start: u64,
    /// bundle directory
    pub bundle: PathBuf,
    /// root directory on the host
    pub rootfs: PathBuf,
    /// RFC 3339 creation time
    pub created: String,
    /// user who created it
    pub owner: String,
    /// spec annotations
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// the container's cgroup
    pub cgroup: Option<Location>,
    /// whether `start` has run
    pub started: bool,
    /// isolation platform
    pub platform: Platform,
    /// sentry: the sandbox has a netstack (`--network=sandbox` or `none`)
    #[serde(default)]
    pub netstack: bool,
    /// sentry: the pod's interface its netstack took over, to give back
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<TakenPod>,
}

/// A pod's interface a sandbox's netstack took over: what `delete` gives
/// back to the pod's network namespace once the sandbox is gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TakenPod {
    /// the network namespace (the spec's path to it)
    pub netns: PathBuf,
    /// the interface's index
    pub index: u32,
    /// its addresses ("10.0.0.2/24")
    pub addrs: Vec<String>,
    /// its routes ("0.0.0.0/0 via 10.0.0.1")
    pub routes: Vec<String>,
}

/// A container's lifecycle status, as the OCI runtime spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// being created
    Creating,
    /// created, waiting for start
    Created,
    /// user program running
    Running,
    /// frozen
    Paused,
    /// init has exited
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.pad(s)
    }
}

/// The OCI state document (`moat state` prints it; hooks read it on stdin).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    /// OCI version
    pub oci_version: String,
    /// id
    pub id: String,
    /// status
    pub status: Status,
    /// init pid (0 once stopped)
    pub pid: i32,
    /// bundle path
    pub bundle: PathBuf,
    /// spec annotations
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// root directory (runc prints it too)
    pub rootfs: PathBuf,
    /// creation time (runc prints it too)
    pub created: String,
    /// creator (runc prints it too)
    pub owner: String,
}

/// A locked container directory.
pub struct Container {
    dir: PathBuf,
    _lock: Flock<fs::File>,
    /// saved state (None while being created)
    pub saved: Option<Saved>,
}

/// File names in the container directory.
pub const STATE_FILE: &str = "state.json";
/// The spec as it was at create time.
pub const SPEC_FILE: &str = "config.json";
/// The socket on which the waiting init accepts `start`.
pub const START_SOCKET: &str = "start.sock";

fn lock_dir(dir: &Path) -> Result<Flock<fs::File>> {
    let f = fs::File::open(dir).map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| Error::io(format!("lock {}", dir.display()), e))
}

impl Container {
    /// Makes a new container directory (failing if the id is taken) and locks it.
    pub fn create(root: &Path, cid: &str) -> Result<Container> {
        id::validate(cid)?;
        fs::create_dir_all(root).map_err(|e| Error::io(format!("create state root {}", root.display()), e))?;
        let dir = root.join(cid);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(Error::Exists(cid.into())),
            Err(e) => return Err(Error::io(format!("create {}", dir.display()), e)),
        }
        let lock = lock_dir(&dir)?;
        Ok(Container { dir, _lock: lock, saved: None })
    }

    /// Opens and locks an existing container.
    pub fn open(root: &Path, cid: &str) -> Result<Container> {
        id::validate(cid)?;
        let dir = root.join(cid);
        let lock = match lock_dir(&dir) {
            Ok(l) => l,
            Err(_) if !dir.exists() => return Err(Error::NotExist(cid.into())),
            Err(e) => return Err(e),
        };
        // the dir may have been deleted while we waited for the lock
        let text = match fs::read_to_string(dir.join(STATE_FILE)) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Error::NotExist(cid.into())),
            Err(e) => return Err(Error::io(format!("read {}", dir.join(STATE_FILE).display()), e)),
        };
        let saved: Saved = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", dir.join(STATE_FILE).display())))?;
        Ok(Container { dir, _lock: lock, saved: Some(saved) })
    }

    /// The saved state and spec of an existing container, read without its
    /// lock (which its own create or delete may hold for long): a snapshot,
    /// for a caller that checks what it relies on (the state file is
    /// replaced whole, never written in place). None if either is missing.
    pub fn peek(root: &Path, cid: &str) -> Option<(Saved, Spec)> {
        id::validate(cid).ok()?;
        let dir = root.join(cid);
        let saved = serde_json::from_str(&fs::read_to_string(dir.join(STATE_FILE)).ok()?).ok()?;
        let spec = crate::spec::parse(&fs::read_to_string(dir.join(SPEC_FILE)).ok()?).ok()?;
        Some((saved, spec))
    }

    /// The fd holding the container's lock. A forked child that outlives
    /// this command closes its copy, so a killed moat never leaves the
    /// container locked forever.
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&*self._lock)
    }

    /// The container directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The saved state; errors if the container is still being created.
    pub fn saved(&self) -> Result<&Saved> {
        self.saved.as_ref().ok_or_else(|| Error::BadState("container is still being created".into()))
    }

    /// Writes the state file atomically.
    pub fn save(&mut self, s: Saved) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let text = serde_json::to_vec_pretty(&s).map_err(|e| Error::Invalid(e.to_string()))?;
        fs::write(&tmp, text).map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
        fs::rename(&tmp, self.dir.join(STATE_FILE)).map_err(|e| Error::io("save state", e))?;
        self.saved = Some(s);
        Ok(())
    }

    /// Saves the spec as created.
    pub fn save_spec(&self, spec: &Spec) -> Result<()> {
        let p = self.dir.join(SPEC_FILE);
        let text = serde_json::to_vec(spec).map_err(|e| Error::Invalid(e.to_string()))?;
        fs::write(&p, text).map_err(|e| Error::io(format!("write {}", p.display()), e))
    }

    /// The spec as created.
    pub fn spec(&self) -> Result<Spec> {
        let p = self.dir.join(SPEC_FILE);
        let text = fs::read_to_string(&p).map_err(|e| Error::io(format!("read {}", p.display()), e))?;
        crate::spec::parse(&text)
    }

    /// The current status, worked out from the live process and cgroup.
    pub fn status(&self) -> Status {
        let Some(s) = &self.saved else { return Status::Creating };
        if s.pid <= 0 || !procs::alive(Pid::from_raw(s.pid), s.pid_start) {
            return Status::Stopped;
        }
        if let Some(loc) = &s.cgroup {
            if moat_jail::cgroups::Manager::from_location(loc.clone()).is_frozen() {
                return Status::Paused;
            }
        }
        if s.started {
            Status::Running
        } else {
            Status::Created
        }
    }

    /// The OCI state document.
    pub fn oci_state(&self) -> Result<OciState> {
        let s = self.saved()?;
        let status = self.status();
        let mut annotations = s.annotations.clone();
        // a Sentry that ended abnormally says why, where `moat state` shows it
        if let Ok(why) = fs::read_to_string(self.dir.join(crate::boot::EXIT_FILE)) {
            annotations.insert("run.moat.sentry.exit".into(), why.trim().to_string());
        }
        Ok(OciState {
            oci_version: s.oci_version.clone(),
            id: s.id.clone(),
            status,
            pid: if status == Status::Stopped { 0 } else { s.pid },
            bundle: s.bundle.clone(),
            annotations,
            rootfs: s.rootfs.clone(),
            created: s.created.clone(),
            owner: s.owner.clone(),
        })
    }

    /// Removes the container directory (the lock goes with it).
    pub fn remove(self) -> Result<()> {
        fs::remove_dir_all(&self.dir).map_err(|e| Error::io(format!("remove {}", self.dir.display()), e))
    }

    /// A path to a file in the container directory that is short enough for
    /// a unix socket address whatever the root's length (via /proc/self/fd).
    pub fn short_path(&self, name: &str) -> Result<(fs::File, PathBuf)> {
        let d = fs::File::open(&self.dir).map_err(|e| Error::io(format!("open {}", self.dir.display()), e))?;
        let p = PathBuf::from(format!("/proc/self/fd/{}/{name}", std::os::fd::AsRawFd::as_raw_fd(&d.as_fd())));
        Ok((d, p))
    }
}

/// The ids of every container under `root`.
pub fn list_ids(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    ids
}
