//! The sandbox's own network: a TCP/IP stack in the Sentry (smoltcp), so
//! that an app's internet sockets never reach the host's.
//!
//! Every TCP socket the app holds is a real host fd, one end of a socketpair
//! whose other end the stack holds ([`Sock`]): reads, writes, poll and
//! epoll on a connected socket run natively on the app's end, and the
//! stack's thread ([`pump`]) moves the bytes between its end and the TCP
//! connection. What interprets an address or a socket's state (bind,
//! listen, accept, connect, get/setsockopt, getsockname, getpeername) is
//! served by the Sentry, which finds its socket again by the inode number of
//! the app's end (sockfs numbers never come back soon: they count up).
//!
//! A listening socket's app end is readable while a connection waits to
//! be accepted: the stack writes one byte on its end when the first one
//! comes, and accept takes it with the last. A blocking accept or connect waits on a worker thread.
//!
//! UDP, ICMP echo and route netlink sockets work the same way over
//! datagram-keeping socketpairs ([`udp`], [`netlink`]). The stack has a
//! loopback (127.0.0.1, ::1) and, with `--network=sandbox`, the pod's
//! interface, taken over from the host's kernel ([`pod`], [`device`],
//! [`offload`]). The interface ioctls are answered from the same view
//! ([`ifreq`]).
//!
//! Unix sockets are the host kernel's, made by the Sentry in a network
//! namespace of its own ([`crate::syscalls::net`]), so that the abstract
//! names a sandbox binds and reaches are its alone.

pub mod addr;
pub mod cmsg;
mod device;
pub mod ifreq;
mod ipmeta;
pub mod maker;
pub mod netlink;
mod offload;
mod packet;
pub mod pod;
mod pump;
mod reassembly;
pub mod rtnl;
pub mod shards;
pub mod stack;
mod steer;
pub mod table;
pub mod tcpinfo;
pub mod udp;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::sys::eventfd::{EfdFlags, EventFd};

pub use shards::Stacks;
pub use stack::{Sock, Stack};

/// The loopback's interface index, as in every network namespace.
pub(crate) const LO_INDEX: u32 = 1;

/// One sandbox's network stack, shared by the handlers (which lock it) and
/// its threads: its shards ([`shards`]), each with its thread.
pub struct Netstack {
    shards: Vec<Shard>,
}

struct Shard {
    stack: Mutex<Stack>,
    /// written to wake the shard's thread after a handler changed the stack
    wake: Arc<EventFd>,
}

impl std::fmt::Debug for Netstack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netstack")
    }
}

impl Netstack {
    /// A stack with a loopback interface only, its thread started.
    pub fn loopback() -> std::io::Result<Arc<Netstack>> {
        Netstack::new(None)
    }

    /// A stack with a loopback interface and, if given, the pod's
    /// interface ([`pod::take`]), its threads started: a shard for each of
    /// the pod's packet sockets, or one per CPU ([`pod::shards`]).
    pub fn new(pod: Option<pod::Pod>) -> std::io::Result<Arc<Netstack>> {
        buffers_mapped();
        let n = pod.as_ref().map_or_else(pod::shards, |p| p.packets.len()).max(1);
        let wakes = (0..n)
            .map(|_| EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let known = device::Neighbors::new(wakes.clone());
        let pod = pod.map(Arc::new);
        let mut shards = Vec::with_capacity(n);
        for (i, wake) in wakes.into_iter().enumerate() {
            let stack = Stack::new(wake.as_fd(), pod.clone(), i, known.clone())?;
            shards.push(Shard { stack: Mutex::new(stack), wake });
        }
        let net = Arc::new(Netstack { shards });
        for i in 0..n {
            let net = net.clone();
            std::thread::Builder::new().spawn(move || pump::run(&net, i))?;
        }
        Ok(net)
    }

    /// Every shard, locked in order (the handlers' view: [`Stacks`]).
    pub fn lock(&self) -> Stacks<'_> {
        Stacks(self.shards.iter().map(|s| s.stack.lock().unwrap_or_else(|e| e.into_inner())).collect())
    }

    /// Shard `i`, locked (its thread's view).
    fn shard(&self, i: usize) -> MutexGuard<'_, Stack> {
        self.shards[i].stack.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the shards' threads (after a change they must act on).
    pub fn wake(&self) {
        for s in &self.shards {
            let _ = s.wake.write(1);
        }
    }
}

/// Has the allocator map every block of 128 KiB or more by itself and unmap
/// it when freed: a connection's buffers (smoltcp's, zeroed) then cost only
/// the pages it fills, and nothing once it is gone. glibc's default raises
/// that threshold to the size of the largest such block freed, after which
/// each new connection's buffers come zeroed from the heap, written over in
/// full (a memset of every buffer, each connection's pages resident).
fn buffers_mapped() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets the allocator's tunables; it touches no
    // memory of ours and may be called at any time, from any thread.
    let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) };
}

/// Sets `fd`'s O_NONBLOCK.
fn nonblocking(fd: &OwnedFd, on: bool) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fl = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    let fl = if on { fl | OFlag::O_NONBLOCK } else { fl & !OFlag::O_NONBLOCK };
    fcntl(fd, FcntlArg::F_SETFL(fl)).map(|_| ())
}
