//! The stack's shards, as the handlers see them: one stack.
//!
//! Each shard is a whole [`Stack`] (a smoltcp interface, its sockets, its
//! own packet socket on the pod's interface and its own thread), so that
//! TCP connections are served on as many CPUs as there are shards. A
//! packet from the wire reaches the shard its ports say ([`super::steer`]);
//! a connection is made in that shard, with a port chosen to spread them.
//! Datagram and netlink sockets all live in shard 0, which every packet
//! that is not TCP reaches; a TCP socket lives there too until it connects.
//! A listening socket listens in every shard: its own holds it,
//! the others a mirror of it ([`Stack::mirror`]), and accept takes the
//! connections of any.
//!
//! [`Stacks`] holds every shard locked, in order (the shards' threads lock
//! only their own): what spans shards (a port's use, a connection's move,
//! accept) is decided under one view.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::epoll::EpollEvent;
use smoltcp::wire::{IpAddress, Ipv4Address, Ipv6Address};

use super::addr::{Addr, Family};
use super::stack::{next_ephemeral, Opts, Sock, Stack, State};
use super::steer::shard_of;
use super::table::{Row, Table};

/// Every shard, locked.
pub struct Stacks<'a>(pub(super) Vec<std::sync::MutexGuard<'a, Stack>>);

impl Stacks<'_> {
    /// The shard that holds socket `key` (not a mirror of it).
    fn home(&self, key: u64) -> Result<usize, Errno> {
        self.0.iter().position(|s| s.socks.get(&key).is_some_and(|k| !k.mirror)).ok_or(Errno::EBADF)
    }

    /// The shard that holds socket `key`.
    fn at(&mut self, key: u64) -> Result<&mut Stack, Errno> {
        let i = self.home(key)?;
        Ok(&mut self.0[i])
    }

    /// The pod's interface, if the stack took it over.
    pub fn pod(&self) -> Option<&super::pod::Pod> {
        self.0.first().and_then(|s| s.pod.as_deref())
    }

    /// Makes a TCP socket of `family` (with `datagram`, a UDP one, or an
    /// ICMP echo one if it says so): the app's end of its socketpair, to
    /// install (O_NONBLOCK if `nonblock`). It lives in shard 0.
    pub fn socket(&mut self, family: Family, datagram: Option<bool>, nonblock: bool) -> Result<OwnedFd, Errno> {
        self.0[0].socket(family, datagram, nonblock)
    }

    /// Makes a route netlink socket ([`Stack::netlink_socket`]).
    pub fn netlink_socket(&mut self, nonblock: bool) -> Result<OwnedFd, Errno> {
        self.0[0].netlink_socket(nonblock)
    }

    /// [`Stack::netlink_port`].
    pub fn netlink_port(&mut self, key: u64, want: u32) -> Result<u32, Errno> {
        self.at(key)?.netlink_port(key, want)
    }

    /// [`Stack::netlink_request`].
    pub fn netlink_request(&mut self, key: u64, data: &[u8]) -> Result<(), Errno> {
        self.at(key)?.netlink_request(key, data)
    }

    /// The inodes of both ends of every socketpair of the stack's.
    pub fn own_inodes(&self) -> std::collections::HashSet<u64> {
        self.0.iter().flat_map(|s| s.own_inodes()).collect()
    }

    /// The key of the socket whose app end is `theirs` (a caller's fd, as
    /// the Sentry holds it), if it is one of the stack's.
    pub fn find(&self, theirs: &OwnedFd) -> Option<u64> {
        let st = nix::sys::stat::fstat(theirs.as_fd()).ok()?;
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return None;
        }
        self.home(st.st_ino).is_ok().then_some(st.st_ino)
    }

    /// The socket `key`.
    pub fn sock(&mut self, key: u64) -> Result<&mut Sock, Errno> {
        self.at(key)?.sock(key)
    }

    /// Whether `port` is taken on `ip` by another socket than `key`, of its
    /// protocol, in any shard.
    fn taken(&self, key: u64, ip: Option<IpAddress>, port: u16, reuse: bool) -> bool {
        let Ok(home) = self.home(key) else { return false };
        let Some(kind) = self.0[home].socks.get(&key).map(Sock::kind) else { return false };
        self.0.iter().any(|s| s.taken_as(key, kind, ip, port, reuse))
    }

    /// A free ephemeral port for `key` on `ip`, one that `fits` (shard 0
    /// keeps where the next search starts).
    fn ephemeral(&mut self, key: u64, ip: Option<IpAddress>, fits: impl Fn(u16) -> bool) -> Result<u16, Errno> {
        let mut next = self.0[0].next_port;
        let port = next_ephemeral(&mut next, |p| fits(p) && !self.taken(key, ip, p, false));
        self.0[0].next_port = next;
        port
    }

    /// bind(2).
    pub fn bind(&mut self, key: u64, a: Addr) -> Result<(), Errno> {
        let home = self.home(key)?;
        let own = a.ip.is_none_or(|ip| self.0[home].device.is_own(ip.into()));
        let s = self.0[home].sock(key)?;
        let fresh = match s.state {
            State::Fresh => true,
            State::Datagram { handle, .. } => handle.is_none(),
            _ => false,
        };
        if !fresh {
            return Err(Errno::EINVAL);
        }
        if let Some(ip) = a.ip {
            if !own {
                return Err(Errno::EADDRNOTAVAIL);
            }
            if s.family == Family::V4 && matches!(ip, IpAddress::Ipv6(_)) {
                return Err(Errno::EAFNOSUPPORT);
            }
        }
        let reuse = s.opts.reuse_addr || s.opts.reuse_port;
        let port = match a.port {
            0 => self.ephemeral(key, a.ip, |_| true)?,
            p if self.taken(key, a.ip, p, reuse) => return Err(Errno::EADDRINUSE),
            p => p,
        };
        let stack = &mut self.0[home];
        let s = stack.sock(key)?;
        s.local = Addr { ip: a.ip, port };
        if s.is_udp() {
            return stack.udp_open(key);
        }
        s.state = State::Bound;
        Ok(())
    }

    /// listen(2): in the socket's shard, and a mirror in every other.
    pub fn listen(&mut self, key: u64, backlog: i32) -> Result<(), Errno> {
        let backlog = usize::try_from(backlog).unwrap_or(0).clamp(1, 4096);
        if matches!(self.sock(key)?.state, State::Fresh) {
            self.bind(key, Addr::ANY)?;
        }
        let home = self.home(key)?;
        let again = matches!(self.0[home].sock(key)?.state, State::Listening { .. });
        self.0[home].listen(key, backlog)?;
        if again {
            return Ok(());
        }
        for i in (0..self.0.len()).filter(|i| *i != home) {
            let (left, right) = self.0.split_at_mut(home.max(i));
            let (from, to) = if home < i { (&left[home], &mut right[0]) } else { (&right[0], &mut left[i]) };
            let s = from.socks.get(&key).ok_or(Errno::EBADF)?;
            let ours = s.ours.try_clone().map_err(|_| Errno::EMFILE)?;
            to.mirror(key, s, ours)?;
        }
        Ok(())
    }

    /// Moves socket `key` from shard `from` to shard `to`.
    fn migrate(&mut self, key: u64, from: usize, to: usize) -> Result<(), Errno> {
        let s = self.0[from].socks.remove(&key).ok_or(Errno::EBADF)?;
        let _ = self.0[from].epoll.delete(s.ours.as_fd());
        let added = self.0[to].epoll.add(s.ours.as_fd(), EpollEvent::new(s.interest, key));
        let back = if added.is_ok() { to } else { from };
        if added.is_err() {
            let _ = self.0[from].epoll.add(s.ours.as_fd(), EpollEvent::new(s.interest, key));
        }
        self.0[back].socks.insert(key, s);
        added.map_err(|_| Errno::ENOMEM)
    }

    /// connect(2): a TCP connection goes to the shard its ports are
    /// steered to (a port chosen for it spreads them); a UDP socket takes
    /// `to` as its peer (None: AF_UNSPEC, no peer).
    pub fn connect(&mut self, key: u64, to: Option<Addr>) -> Result<(), Errno> {
        let home = self.home(key)?;
        let s = self.0[home].sock(key)?;
        if s.is_udp() {
            return self.0[home].udp_connect(key, to);
        }
        let (Some(to), State::Fresh | State::Bound) = (to, &s.state) else {
            // (the shard's connect says what is wrong)
            return self.0[home].connect(key, to);
        };
        if to.port == 0 {
            return Err(Errno::ECONNREFUSED);
        }
        let (family, local) = (s.family, s.local);
        // "any" is this host, as on Linux
        let ip = to.ip.unwrap_or(match family {
            Family::V6 => IpAddress::Ipv6(Ipv6Address::LOCALHOST),
            Family::V4 => IpAddress::Ipv4(Ipv4Address::new(127, 0, 0, 1)),
        });
        let n = self.0.len();
        // over the loopback both ends are one shard's: any will do
        let wire = !self.0[home].device.is_own(ip.into());
        let spread = self.0[0].next_shard % n;
        let (port, shard) = match local.port {
            0 => {
                let fits = |p: u16| !wire || shard_of(p, to.port, n) == spread;
                (self.ephemeral(key, None, fits)?, spread)
            }
            p if wire => (p, shard_of(p, to.port, n)),
            p => (p, home),
        };
        self.0[0].next_shard = spread + 1;
        if shard != home {
            self.migrate(key, home, shard)?;
        }
        let stack = &mut self.0[shard];
        stack.sock(key)?.local.port = port;
        let r = stack.connect(key, Some(to));
        if r.is_err() {
            // (a port chosen for a connection that was not made is free again)
            if let Ok(s) = stack.sock(key) {
                s.local.port = local.port;
            }
        }
        r
    }

    /// accept(2) of the next connection, in whichever shard has the most
    /// waiting ([`Stack::accept`]).
    pub fn accept(&mut self, key: u64, theirs: &OwnedFd, nonblock: bool) -> Result<Option<(OwnedFd, Addr)>, Errno> {
        let home = self.home(key)?;
        let opts: Opts = self.0[home].sock(key)?.opts;
        let waiting = |s: &Stack| match s.socks.get(&key).map(|s| &s.state) {
            Some(State::Listening { ready, .. }) => ready.len(),
            _ => 0,
        };
        let best = (0..self.0.len()).max_by_key(|i| (waiting(&self.0[*i]), *i == home)).unwrap_or(home);
        let best = if waiting(&self.0[best]) == 0 { home } else { best };
        self.0[best].accept(key, theirs, nonblock, opts)
    }

    /// [`Stack::hold_writes`].
    pub fn hold_writes(&mut self, key: u64, theirs: &OwnedFd) -> Result<(), Errno> {
        self.at(key)?.hold_writes(key, theirs)
    }

    /// getsockname(2).
    pub fn name(&mut self, key: u64) -> Result<Addr, Errno> {
        self.at(key)?.name(key)
    }

    /// getpeername(2).
    pub fn peer(&mut self, key: u64) -> Result<Addr, Errno> {
        self.at(key)?.peer(key)
    }

    /// [`Stack::apply_opts`].
    pub fn apply_opts(&mut self, key: u64) -> Result<(), Errno> {
        self.at(key)?.apply_opts(key)
    }

    /// [`Stack::tcp_info`].
    pub fn tcp_info(&mut self, key: u64) -> Result<super::tcpinfo::Info, Errno> {
        self.at(key)?.tcp_info(key)
    }

    /// [`Stack::udp_send`].
    pub fn udp_send(&mut self, key: u64, data: &[u8], to: Option<Addr>, control: &[u8]) -> Result<usize, Errno> {
        self.at(key)?.udp_send(key, data, to, control)
    }

    /// [`Stack::udp_recv`].
    pub fn udp_recv(
        &mut self,
        key: u64,
        theirs: &OwnedFd,
        buf: &mut [u8],
        flags: nix::sys::socket::MsgFlags,
    ) -> Result<(usize, Addr, Vec<u8>), Errno> {
        self.at(key)?.udp_recv(key, theirs, buf, flags)
    }

    /// The text of /proc/net table `table`, of every shard.
    pub fn table(&self, table: Table) -> String {
        let mut rows: Vec<Row> = self.0.iter().flat_map(|s| s.rows(table)).collect();
        rows.sort_by_key(|r| (r.0.port, r.5));
        super::table::text(table, rows)
    }
}
