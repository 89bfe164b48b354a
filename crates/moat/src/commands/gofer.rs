//! `moat gofer`: the confined 9P file server.

use anyhow::{bail, Context, Result};
use moat_gofer::process::{describe_filter, run as serve, Endpoint, GoferOpts};

use crate::cli::GoferArgs;

pub fn run(a: GoferArgs) -> Result<i32> {
    if a.print_filter {
        print!("{}", describe_filter()?);
        return Ok(0);
    }
    let Some(dir) = a.dir else { bail!("--dir is required") };
    let ep = match (a.fd, a.listen) {
        (Some(fd), None) => Endpoint::inherited(fd).with_context(|| format!("--fd {fd}"))?,
        (None, Some(addr)) => {
            Endpoint::Listen(std::net::TcpListener::bind(&addr).with_context(|| format!("--listen {addr}"))?)
        }
        _ => bail!("give one of --fd or --listen"),
    };
    serve(GoferOpts { dir, read_only: a.read_only, no_confine: a.no_confine }, ep)?;
    Ok(0)
}
