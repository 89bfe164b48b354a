//! The `moat` binary: parses the command line and dispatches to the
//! libraries. No container mechanics live here.

mod cli;
mod commands;
mod logging;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Rust starts with SIGPIPE ignored; an ignored signal survives execve, so
    // every container program would inherit it. Restore the default (which
    // also makes `moat … | head` end quietly instead of failing on EPIPE).
    let _ = moat_jail::sys::default_signals(&[nix::sys::signal::Signal::SIGPIPE]);
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // before moat opens anything: the fds it is asked to pass on must be the caller's
    let passed = match &cli.cmd {
        cli::Cmd::Create(a) => a.preserve_fds.saturating_add(moat_runtime::fds::listen_fds()),
        cli::Cmd::Run { create, .. } => create.preserve_fds.saturating_add(moat_runtime::fds::listen_fds()),
        cli::Cmd::Exec(a) => a.preserve_fds,
        _ => 0,
    };
    if let Err(e) = moat_runtime::fds::check_inherited(passed) {
        eprintln!("moat: {e}");
        return ExitCode::from(1);
    }
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format, cli.debug, cli.strace) {
        eprintln!("moat: {e:#}");
        return ExitCode::from(1);
    }
    let logged = cli.log.is_some();
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            if logged {
                tracing::error!("{msg}");
            }
            eprintln!("moat: {msg}");
            ExitCode::from(1)
        }
    }
}
