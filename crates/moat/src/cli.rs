//! The command line, runc-compatible: global flags first, then one verb.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::Format;

/// moat: a runtime sandbox for containers (an OCI runtime).
#[derive(Debug, Parser)]
#[command(name = "moat", version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.0.2"), disable_version_flag = true)]
pub struct Cli {
    /// where container state lives
    #[arg(long, global = true, default_value = moat_runtime::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// log to this file instead of stderr
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// log format
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: Format,
    /// log debug messages too
    #[arg(long, global = true)]
    pub debug: bool,
    /// manage cgroups through systemd (needs a running systemd)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// how to isolate containers: sentry (the application kernel, the
    /// default) or native (namespaces, cgroups, seccomp: what runc gives)
    #[arg(long, global = true, default_value = "sentry")]
    pub platform: String,
    /// sentry platform: log every served system call
    #[arg(long, global = true)]
    pub strace: bool,
    /// sentry platform, for a spec without a user namespace: auto gives the
    /// sandbox one of its own (container root is an unprivileged host uid,
    /// from 2^30 up, in a range of its own) where its files allow idmapped
    /// mounts; off keeps the host's
    #[arg(long, global = true, default_value = "auto")]
    pub userns: String,
    /// sentry platform: true (the default) lets the host kernel read the
    /// container's files in the stubs' read-only view; false serves them
    /// from the container's gofer over 9P (as runsc's --directfs=false)
    #[arg(long, global = true, default_value = "true")]
    pub directfs: String,
    /// with --directfs=false: exclusive (the default) lets the stubs' kernel
    /// keep what it learnt of the container's root until the Sentry changes
    /// it; shared asks the gofer every time, for a root the host changes too
    /// (as runsc's --file-access; the spec's mounts are always shared)
    #[arg(long, global = true, default_value = "exclusive")]
    pub file_access: String,
    /// sandbox (the default: the spec's network namespace), none (sentry
    /// platform: the Sentry's own TCP/IP stack, loopback only) or host
    /// (`moat do` shares the host's namespace; else as sandbox), as runsc's
    /// --network
    #[arg(long, global = true, default_value = "sandbox")]
    pub network: String,
    /// accepted for runc compatibility (rootless mode is detected)
    #[arg(long = "rootless", hide = true)]
    pub rootless_mode: Option<String>,
    /// accepted for runc compatibility; checkpointing is not supported
    #[arg(long, hide = true)]
    pub criu: Option<String>,
    /// print the version
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    pub version: Option<bool>,
    /// the verb
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Flags shared by `create` and `run`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// bundle directory (holds config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// write the container init's pid here
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// unix socket to send the pty master to (process.terminal)
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// pass N extra fds (3..3+N) into the container
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// use MS_MOVE + chroot instead of pivot_root
    #[arg(long)]
    pub no_pivot: bool,
    /// keep the caller's session keyring
    #[arg(long)]
    pub no_new_keyring: bool,
    /// container id
    pub id: String,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// create a container; its program waits for `start`
    Create(CreateArgs),
    /// start a created container
    Start {
        /// container id
        id: String,
    },
    /// create, start and (unless --detach) wait for a container, then delete it
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// return once started
        #[arg(short, long)]
        detach: bool,
        /// keep the container after it exits
        #[arg(long)]
        keep: bool,
    },
    /// print a container's OCI state
    State {
        /// container id
        id: String,
    },
    /// send a signal to a container's init (default SIGTERM)
    Kill {
        /// signal every process in the container
        #[arg(short, long)]
        all: bool,
        /// container id
        id: String,
        /// signal name or number
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// delete a container
    Delete {
        /// kill it first if it still runs
        #[arg(short, long)]
        force: bool,
        /// container id
        id: String,
    },
    /// list containers
    #[command(alias = "ls")]
    List {
        /// output format
        #[arg(short, long, default_value = "table")]
        format: String,
        /// print only ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// list a container's processes
    Ps {
        /// output format
        #[arg(short, long, default_value = "table")]
        format: String,
        /// container id
        id: String,
        /// options for ps(1) (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// run a new process in a running container
    Exec(ExecArgs),
    /// freeze every process of a container
    Pause {
        /// container id
        id: String,
    },
    /// thaw a paused container
    Resume {
        /// container id
        id: String,
    },
    /// print resource usage
    Events {
        /// print once and exit
        #[arg(long)]
        stats: bool,
        /// seconds between reports
        #[arg(long, default_value = "5s")]
        interval: String,
        /// container id
        id: String,
    },
    /// change a container's resource limits
    Update {
        /// JSON file of linux.resources ("-" for stdin)
        #[arg(short, long)]
        resources: Option<PathBuf>,
        /// container id
        id: String,
    },
    /// write a template config.json
    Spec {
        /// where to write it
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// a template for an unprivileged user
        #[arg(long)]
        rootless: bool,
    },
    /// print what this moat supports (OCI features JSON)
    Features,
    /// list how the sentry platform handles each system call
    Syscalls {
        /// print docs/syscalls.md
        #[arg(long)]
        markdown: bool,
    },
    /// run a command sandboxed on this host's root filesystem, read-only
    Do(DoArgs),
    /// serve a directory over 9P2000.L, confined to it (started by the Sentry)
    Gofer(GoferArgs),
    /// the Sentry process (started by create with --platform sentry)
    Boot {
        /// print the Sentry's seccomp allowlist and exit
        #[arg(long)]
        print_filter: bool,
    },
    /// not supported: moat cannot checkpoint containers
    #[command(hide = true)]
    Checkpoint {
        /// ignored
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// not supported: moat cannot restore containers
    #[command(hide = true)]
    Restore {
        /// ignored
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

/// `exec` flags (runc's).
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// JSON file with the process to run
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// allocate a pty
    #[arg(short, long)]
    pub tty: bool,
    /// unix socket to send the pty master to
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// working directory
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// extra environment (KEY=VALUE)
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    /// supplementary gids
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// return once started
    #[arg(short, long)]
    pub detach: bool,
    /// write the new process's pid here
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// pass N extra fds
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// set no_new_privs
    #[arg(long)]
    pub no_new_privs: bool,
    /// add a capability
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// accepted for runc compatibility; ignored
    #[arg(long, hide = true)]
    pub process_label: Option<String>,
    /// accepted for runc compatibility; ignored
    #[arg(long, hide = true)]
    pub apparmor: Option<String>,
    /// accepted for runc compatibility
    #[arg(long, hide = true)]
    pub ignore_paused: bool,
    /// container id
    pub id: String,
    /// the command (unless --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `do` flags.
#[derive(Debug, Args)]
pub struct DoArgs {
    /// working directory (default: the current one)
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// the command
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `gofer` flags.
#[derive(Debug, Args)]
pub struct GoferArgs {
    /// the directory to serve
    #[arg(long, required_unless_present = "print_filter")]
    pub dir: Option<PathBuf>,
    /// serve it read-only
    #[arg(long)]
    pub read_only: bool,
    /// serve the connected socket inherited as this fd
    #[arg(long, conflicts_with = "listen")]
    pub fd: Option<i32>,
    /// listen on this TCP address instead (tests, debugging)
    #[arg(long)]
    pub listen: Option<String>,
    /// print the seccomp allowlist and exit
    #[arg(long)]
    pub print_filter: bool,
    /// do not confine the process (debugging only)
    #[arg(long, hide = true)]
    pub no_confine: bool,
}
