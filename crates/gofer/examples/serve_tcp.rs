//! Serves a directory over 9P2000.L on a TCP address, for poking at the server with other
//! clients (diodls, diodcat, Linux v9fs `mount -t 9p -o trans=tcp,version=9p2000.L,port=N`).
//!
//!     cargo run -p moat-gofer --example serve_tcp -- /some/dir 127.0.0.1:5640 [--ro]

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(addr)) = (args.get(1), args.get(2)) else {
        return Err("usage: serve_tcp DIR ADDR [--ro]".into());
    };
    let mut cfg = moat_gofer::Config::new(dir);
    cfg.read_only = args.iter().any(|a| a == "--ro");
    let server = moat_gofer::Server::new(cfg)?;
    server.serve_listener(std::net::TcpListener::bind(addr)?)?;
    Ok(())
}
