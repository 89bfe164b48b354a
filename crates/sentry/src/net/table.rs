//! /proc/net/tcp, tcp6, udp and udp6 as the stack knows its sockets, in
//! Linux's layout, so netstat (and ss, which falls back to them when
//! socket diagnostics over netlink are refused) lists the sandbox's
//! sockets. A socket's inode is that of the app's end: the same number
//! `/proc/PID/fd` shows (`socket:[N]`), so `-p` finds its process.
//! /proc/net/unix is the kernel's, of the namespace the Sentry makes the
//! app's unix sockets in, less the netstack's own socketpairs.

use std::fmt::Write;

use smoltcp::socket::{tcp, udp};
use smoltcp::wire::IpAddress;

use super::addr::{Addr, Family};
use super::stack::{Stack, State};

/// Which table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// /proc/net/tcp (IPv4 sockets) or tcp6
    Tcp(Family),
    /// /proc/net/udp or udp6
    Udp(Family),
}

impl Table {
    /// The table a /proc/net file name shows.
    pub fn named(name: &str) -> Option<Table> {
        match name {
            "tcp" => Some(Table::Tcp(Family::V4)),
            "tcp6" => Some(Table::Tcp(Family::V6)),
            "udp" => Some(Table::Udp(Family::V4)),
            "udp6" => Some(Table::Udp(Family::V6)),
            _ => None,
        }
    }
}

/// The kernel's /proc/net/unix `text` without the sockets whose inode is
/// in `hidden`.
pub fn unix(text: &str, hidden: &std::collections::HashSet<u64>) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        // Num RefCount Protocol Flags Type St Inode Path
        let inode = line.split_whitespace().nth(6).and_then(|n| n.parse::<u64>().ok());
        if i == 0 || !inode.is_some_and(|n| hidden.contains(&n)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Where the Sentry's own network namespace's /proc/net/unix is in its
/// procfs: the app's unix sockets are there.
pub fn unix_path() -> String {
    format!("{}/net/unix", std::process::id())
}

/// The sandbox's /proc/net/unix: [`unix_path`]'s (read through the
/// Sentry's procfs `proc`), less the socketpairs of its stack `net`.
pub fn unix_of(proc: &std::os::fd::OwnedFd, net: Option<&super::Netstack>) -> Result<String, nix::errno::Errno> {
    let text = crate::fs::proxy::read(proc, &unix_path())?;
    let hidden = net.map(|n| n.lock().own_inodes()).unwrap_or_default();
    Ok(unix(&String::from_utf8_lossy(&text), &hidden))
}

/// Linux's TCP state numbers (include/net/tcp_states.h).
fn tcp_state(s: tcp::State) -> u8 {
    match s {
        tcp::State::Established => 1,
        tcp::State::SynSent => 2,
        tcp::State::SynReceived => 3,
        tcp::State::FinWait1 => 4,
        tcp::State::FinWait2 => 5,
        tcp::State::TimeWait => 6,
        tcp::State::Closed => 7,
        tcp::State::CloseWait => 8,
        tcp::State::LastAck => 9,
        tcp::State::Listen => 10,
        tcp::State::Closing => 11,
    }
}

/// An address as the table prints it: each 32-bit word of it in the
/// host's order, as Linux does (127.0.0.1 is 0100007F).
fn hex(family: Family, a: Addr) -> String {
    let words = |octets: &[u8]| -> String {
        octets.chunks(4).map(|c| format!("{:08X}", u32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
    };
    let ip = match (family, a.ip) {
        (Family::V4, Some(IpAddress::Ipv4(v4))) => words(&v4.octets()),
        (Family::V4, _) => words(&[0; 4]),
        (Family::V6, Some(IpAddress::Ipv6(v6))) => words(&v6.octets()),
        (Family::V6, Some(IpAddress::Ipv4(v4))) => words(&v4.to_ipv6_mapped().octets()),
        (Family::V6, None) => words(&[0; 16]),
    };
    format!("{ip}:{:04X}", a.port)
}

/// One socket's line: local, remote, state, tx queue, rx queue, inode.
pub(super) type Row = (Addr, Addr, u8, usize, usize, u64);

impl Stack {
    /// The lines of `table` for this shard's sockets.
    pub(super) fn rows(&self, table: Table) -> Vec<Row> {
        let family = match table {
            Table::Tcp(f) | Table::Udp(f) => f,
        };
        let mut rows: Vec<Row> = Vec::new();
        for (key, s) in &self.socks {
            if s.family != family {
                continue;
            }
            let tcp_row = |h, inode| {
                let t = self.sockets.get::<tcp::Socket>(h);
                let local = t.local_endpoint().map_or(s.local, Addr::from);
                let remote = t.remote_endpoint().map_or(Addr::ANY, Addr::from);
                (local, remote, tcp_state(t.state()), t.send_queue(), t.recv_queue(), inode)
            };
            match (&s.state, table) {
                (State::Listening { ready, queued, .. }, Table::Tcp(_)) => {
                    // (a mirror's connections are its socket's: [`super::shards`])
                    if !s.mirror {
                        let queued = queued.load(std::sync::atomic::Ordering::Relaxed);
                        rows.push((s.local, Addr::ANY, 10, 0, queued, *key));
                    }
                    // connected, not accepted yet: no file of the app's
                    rows.extend(ready.iter().map(|h| tcp_row(*h, 0)));
                }
                (State::Connecting(h) | State::Connected(h), Table::Tcp(_)) => rows.push(tcp_row(*h, *key)),
                (State::Bound, Table::Tcp(_)) => rows.push((s.local, Addr::ANY, 7, 0, 0, *key)),
                (State::Datagram { ping: false, handle, peer }, Table::Udp(_)) => {
                    let queued = handle.map_or(0, |h| {
                        let u = self.sockets.get::<udp::Socket>(h);
                        u.recv_queue()
                    });
                    let state = if peer.is_some() { 1 } else { 7 };
                    rows.push((s.local, peer.unwrap_or(Addr::ANY), state, 0, queued, *key));
                }
                _ => {}
            }
        }
        rows
    }
}

/// The text of `table` with lines `rows`.
pub(super) fn text(table: Table, rows: Vec<Row>) -> String {
    let (family, header) = match table {
        Table::Tcp(f) => (f, "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"),
        Table::Udp(f) => (f, "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops"),
    };
    let mut out = format!("{header}\n");
    for (i, (local, remote, st, tx, rx, inode)) in rows.into_iter().enumerate() {
        let _ = write!(
            out,
            "{i:4}: {} {} {st:02X} {tx:08X}:{rx:08X} 00:00000000 00000000     0        0 {inode}",
            hex(family, local),
            hex(family, remote),
        );
        out.push_str(match table {
            Table::Tcp(_) => " 1 0000000000000000 100 0 0 10 0\n",
            Table::Udp(_) => " 2 0000000000000000 0\n",
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unix_table_hides_the_stacks_own_sockets() {
        let text = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                    0000000000000000: 00000002 00000000 00010000 0001 01 41 @moat-abstract\n\
                    0000000000000000: 00000003 00000000 00000000 0001 03 42\n\
                    0000000000000000: 00000003 00000000 00000000 0001 03 43\n";
        let hidden = [42, 43].into_iter().collect();
        assert_eq!(
            unix(text, &hidden),
            "Num       RefCount Protocol Flags    Type St Inode Path\n\
             0000000000000000: 00000002 00000000 00010000 0001 01 41 @moat-abstract\n"
        );
    }

    #[test]
    fn addresses_print_as_linux_prints_them() {
        let lo = Addr { ip: Some(IpAddress::v4(127, 0, 0, 1)), port: 8080 };
        assert_eq!(hex(Family::V4, lo), "0100007F:1F90");
        assert_eq!(hex(Family::V4, Addr::ANY), "00000000:0000");
        assert_eq!(hex(Family::V6, lo), "0000000000000000FFFF00000100007F:1F90");
        let six = Addr { ip: Some(IpAddress::Ipv6(smoltcp::wire::Ipv6Address::LOCALHOST)), port: 1 };
        assert_eq!(hex(Family::V6, six), "00000000000000000000000001000000:0001");
    }
}
