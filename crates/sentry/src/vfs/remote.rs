//! The replayer: for a sandbox with a user namespace, the Sentry's changes
//! to the tree are made by a small process of its own inside that
//! namespace, as root there, taking on each caller's credentials.
//!
//! Why: a caller's capabilities are relative to its user namespace. They
//! reach only files whose owners that namespace maps, and its chown and
//! xattr arguments are its own numbers. The Sentry, outside, would lend
//! host capabilities instead (container root could then rewrite a file of
//! the rootfs that host root owns). Inside, the kernel makes every check
//! as it would for the caller. A thread cannot join a user namespace on
//! its own (setns wants a single-threaded process), so it is a process,
//! forked by the Sentry before it starts any thread, and confined as the
//! Sentry is.
//!
//! The Sentry sends it each [`Job`] over a SOCK_SEQPACKET socketpair (the
//! job's bytes in one message, its fds with SCM_RIGHTS) and waits for the
//! answer: the result, the bytes of its output buffers, and for an open
//! the new fd. One job at a time: only the notify thread makes them.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use super::creds::Creds;
use super::job::{Arg, Done, Job, Seat, Special};

/// The largest message: two paths and an xattr value, with room to spare.
const MAX_MSG: usize = 96 << 10;
/// The most fds one job carries (two dirfds or files, here, jail).
const MAX_FDS: usize = 6;

/// The Sentry's end of the replayer's socket.
#[derive(Debug)]
pub struct Remote {
    sock: OwnedFd,
    /// where answers arrive (allocated once: zeroing it per call cost more than the call)
    buf: std::sync::Mutex<Vec<u8>>,
}

impl Remote {
    /// The Sentry's end, `sock`.
    pub fn new(sock: OwnedFd) -> Remote {
        Remote { sock, buf: std::sync::Mutex::new(vec![0u8; MAX_MSG]) }
    }

    /// Hands the replayer the tree's root (it enters it) and waits until it has.
    pub fn enter(&self, root: BorrowedFd<'_>) -> Result<(), Errno> {
        send(self.sock.as_fd(), b"tree", &[root.as_raw_fd()])?;
        let mut buf = self.buf.lock().map_err(|_| Errno::EDEADLK)?;
        let (answer, _) = recv(self.sock.as_fd(), &mut buf)?;
        match answer {
            b"ok" => Ok(()),
            [] => Err(Errno::ECONNRESET),
            _ => Err(Errno::from_raw(i32::from_le_bytes(
                answer.get(..4).and_then(|b| b.try_into().ok()).unwrap_or((libc::EIO).to_le_bytes()),
            ))),
        }
    }

    /// Makes `job` in the replayer.
    pub fn run(&self, job: Job) -> Result<Done, Errno> {
        let (bytes, fds) = encode(&job);
        // (a caller with tens of thousands of groups: never a message the
        // replayer would get cut)
        if bytes.len() > MAX_MSG {
            return Err(Errno::E2BIG);
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        send(self.sock.as_fd(), &bytes, &raw)?;
        drop(job);
        let mut buf = self.buf.lock().map_err(|_| Errno::EDEADLK)?;
        let (answer, mut fds) = recv(self.sock.as_fd(), &mut buf)?;
        if answer.is_empty() {
            // the replayer is gone: nothing more can be changed
            return Err(Errno::EIO);
        }
        decode_done(answer, fds.pop())
    }
}

/// Sends `bytes` with `fds` attached (none: a plain message), never a SIGPIPE.
pub(crate) fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[RawFd]) -> Result<(), Errno> {
    let iov = [IoSlice::new(bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// One message into `buf` (at least [`MAX_MSG`] long): its bytes, and its fds.
fn recv<'b>(sock: BorrowedFd<'_>, buf: &'b mut [u8]) -> Result<(&'b [u8], Vec<OwnedFd>), Errno> {
    spin_until_readable(sock);
    let mut fds = Vec::new();
    let n = {
        let mut iov = [IoSliceMut::new(&mut *buf)];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let msg = loop {
            match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
                Err(Errno::EINTR) => continue,
                r => break r?,
            }
        };
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(v) = c {
                fds.extend(v.into_iter().map(crate::platform::mem::adopt));
            }
        }
        if msg.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC) {
            return Err(Errno::E2BIG);
        }
        msg.bytes
    };
    Ok((&buf[..n], fds))
}

/// How long a side of the socket keeps polling before it sleeps. Jobs come
/// in bursts (a loop of creates, `rm -r`), and each side waits while the
/// other works: asleep, every job costs two wake-ups, which on a 2-vCPU VM
/// land on the other CPU half the time (~50 µs each).
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Polls `sock` (yielding the CPU in between) until a message is there or
/// [`SPIN`] has passed; the blocking receive comes after.
fn spin_until_readable(sock: BorrowedFd<'_>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let start = std::time::Instant::now();
    while start.elapsed() < SPIN {
        let mut p = [PollFd::new(sock, PollFlags::POLLIN)];
        if poll(&mut p, PollTimeout::ZERO).is_ok_and(|n| n > 0) {
            return;
        }
        std::thread::yield_now();
    }
}

/// A reader of the wire format.
struct Cursor<'a> {
    b: &'a [u8],
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Errno> {
        if self.b.len() < n {
            return Err(Errno::EPROTO);
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Errno> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| Errno::EPROTO)?))
    }
    fn u64(&mut self) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| Errno::EPROTO)?))
    }
}

const NONE: u8 = 0xff;

/// A job as bytes, and its fds in the order they are named.
fn encode(job: &Job) -> (Vec<u8>, Vec<BorrowedFd<'_>>) {
    let mut b = Vec::with_capacity(256);
    let mut fds = Vec::new();
    b.extend_from_slice(&job.nr.to_le_bytes());
    b.push(job.args.len() as u8);
    for a in &job.args {
        match a {
            Arg::Raw(v) => {
                b.push(0);
                b.extend_from_slice(&v.to_le_bytes());
            }
            Arg::In(bytes) => {
                b.push(1);
                b.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                b.extend_from_slice(bytes);
            }
            Arg::Out(n) => {
                b.push(2);
                b.extend_from_slice(&(*n as u32).to_le_bytes());
            }
            Arg::Fd(f) => {
                b.push(3);
                fds.push(f.as_fd());
            }
            Arg::Link(f, dir) => {
                b.push(4);
                b.push(*dir as u8);
                fds.push(f.as_fd());
            }
        }
    }
    for f in [&job.here, &job.jail] {
        match f {
            Some(f) => {
                b.push(1);
                fds.push(f.as_fd());
            }
            None => b.push(0),
        }
    }
    match job.special {
        Some(s) => b.extend_from_slice(&[1, s.path as u8, s.dir.map(|d| d as u8).unwrap_or(NONE), s.nofollow as u8]),
        None => b.push(0),
    }
    b.push(job.opens as u8);
    b.push(job.access as u8);
    let w = &job.who;
    for v in [w.fsuid, w.fsgid, w.umask, w.real.0, w.real.1, w.groups.len() as u32] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for g in &w.groups {
        b.extend_from_slice(&g.to_le_bytes());
    }
    b.extend_from_slice(&w.cap_eff.to_le_bytes());
    b.extend_from_slice(&w.cap_prm.to_le_bytes());
    // the CPU the Sentry sends from (see [`follow`])
    // SAFETY: sched_getcpu takes no arguments (glibc reads it from rseq or the vDSO).
    let cpu = unsafe { libc::sched_getcpu() };
    b.extend_from_slice(&(cpu as u32).to_le_bytes());
    (b, fds)
}

fn decode(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<(Job, u32), Errno> {
    let mut c = Cursor { b: bytes };
    let mut fds = fds.into_iter();
    let mut next_fd = || fds.next().ok_or(Errno::EPROTO);
    let nr = c.u64()? as i64;
    let n = c.u8()? as usize;
    if n > 6 {
        return Err(Errno::EPROTO);
    }
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        args.push(match c.u8()? {
            0 => Arg::Raw(c.u64()?),
            1 => {
                let len = c.u32()? as usize;
                Arg::In(c.take(len)?.to_vec())
            }
            2 => Arg::Out((c.u32()? as usize).min(MAX_MSG)),
            3 => Arg::Fd(next_fd()?),
            4 => {
                let dir = c.u8()? as usize;
                Arg::Link(next_fd()?, dir)
            }
            _ => return Err(Errno::EPROTO),
        });
    }
    let here = if c.u8()? == 1 { Some(next_fd()?) } else { None };
    let jail = if c.u8()? == 1 { Some(next_fd()?) } else { None };
    let special = match c.u8()? {
        1 => {
            let path = c.u8()? as usize;
            let dir = match c.u8()? {
                NONE => None,
                d => Some(d as usize),
            };
            Some(Special { path, dir, nofollow: c.u8()? == 1 })
        }
        _ => None,
    };
    let opens = c.u8()? == 1;
    let access = c.u8()? == 1;
    let (fsuid, fsgid, umask, ruid, rgid, ngroups) = (c.u32()?, c.u32()?, c.u32()?, c.u32()?, c.u32()?, c.u32()?);
    if ngroups > 65536 {
        return Err(Errno::EPROTO);
    }
    let groups = (0..ngroups).map(|_| c.u32()).collect::<Result<Vec<_>, _>>()?;
    let (cap_eff, cap_prm) = (c.u64()?, c.u64()?);
    let who = Creds { fsuid, fsgid, groups, cap_eff, umask, real: (ruid, rgid), cap_prm };
    let cpu = c.u32()?;
    Ok((Job { nr, args, here, jail, who, access, special, opens }, cpu))
}

/// Keeps the replayer on the CPU the Sentry sends from. The Sentry runs on
/// its caller's CPU while the caller waits; a replayer woken on the other
/// one costs a cross-CPU wake-up each way (~80 µs a call on a 2-vCPU VM,
/// against ~15 on the same CPU). Pinned after the answer, for the next job,
/// and only when the Sentry moved.
fn follow(cpu: u32, last: &mut Option<u32>) {
    if *last == Some(cpu) {
        return;
    }
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu as usize).is_ok() && nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_ok() {
        *last = Some(cpu);
    }
}

/// The answer as bytes: a kind (0 made, 1 special), the result (an errno
/// as its negative), and the output buffers.
fn encode_done(done: &Done) -> Vec<u8> {
    let mut b = Vec::new();
    match done {
        Done::Special => b.push(1),
        Done::Made(r, outs) => {
            b.push(0);
            let v = match r {
                Ok(v) => *v,
                Err(e) => -(*e as i64),
            };
            b.extend_from_slice(&v.to_le_bytes());
            b.push(outs.len() as u8);
            for (i, o) in outs {
                b.push(*i as u8);
                b.extend_from_slice(&(o.len() as u32).to_le_bytes());
                b.extend_from_slice(o);
            }
        }
    }
    b
}

/// The answer, with the new fd (an open's) if one came.
fn decode_done(bytes: &[u8], fd: Option<OwnedFd>) -> Result<Done, Errno> {
    let mut c = Cursor { b: bytes };
    if c.u8()? == 1 {
        return Ok(Done::Special);
    }
    let v = c.u64()? as i64;
    let n = c.u8()?;
    let mut outs = Vec::new();
    for _ in 0..n {
        let i = c.u8()? as usize;
        let len = c.u32()? as usize;
        outs.push((i, c.take(len)?.to_vec()));
    }
    let result = match (v, fd) {
        (v, _) if v < 0 => Err(Errno::from_raw(i32::try_from(-v).unwrap_or(libc::EIO))),
        // an open's fd is the one that came, now ours
        (_, Some(fd)) => Ok(std::os::fd::IntoRawFd::into_raw_fd(fd) as i64),
        (v, None) => Ok(v),
    };
    Ok(Done::Made(result, outs))
}

/// How a user namespace numbers the host's ids: /proc/PID/uid_map or
/// gid_map as a process inside reads it (inside, outside, count).
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    ranges: Vec<(u32, u32, u32)>,
}

/// The overflow id: what an id the namespace does not map reads as.
const OVERFLOW: u32 = 65534;

impl IdMap {
    /// Parses a uid_map or gid_map text.
    pub fn parse(text: &str) -> IdMap {
        let ranges = text
            .lines()
            .filter_map(|l| {
                let v: Vec<u32> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                (v.len() == 3).then(|| (v[0], v[1], v[2]))
            })
            .collect();
        IdMap { ranges }
    }

    /// The namespace's number for host id `id`.
    pub fn inside(&self, id: u32) -> u32 {
        self.ranges
            .iter()
            .find(|(_, out, n)| id >= *out && id - out < *n)
            .map(|(ins, out, _)| ins + (id - out))
            .unwrap_or(OVERFLOW)
    }
}

/// A caller's credentials as the Sentry read them (host ids), renumbered
/// as the replayer's user namespace numbers them.
fn renumber(c: Creds, uids: &IdMap, gids: &IdMap) -> Creds {
    Creds {
        fsuid: uids.inside(c.fsuid),
        fsgid: gids.inside(c.fsgid),
        groups: c.groups.iter().map(|g| gids.inside(*g)).collect(),
        real: (uids.inside(c.real.0), gids.inside(c.real.1)),
        ..c
    }
}

/// The replayer's loop (in its own process, inside the sandbox's user
/// namespace, confined): first the tree to enter, then jobs, until the
/// Sentry hangs up. `proc`: a procfs where its own pid names it.
pub fn serve(sock: OwnedFd, proc: OwnedFd, uids: IdMap, gids: IdMap) -> Result<(), Errno> {
    let mut buf = vec![0u8; MAX_MSG];
    let (hello, mut fds) = recv(sock.as_fd(), &mut buf)?;
    let root = match (hello, fds.pop()) {
        (b"tree", Some(root)) => root,
        ([], _) => return Ok(()),
        _ => return Err(Errno::EPROTO),
    };
    let seat = match Seat::enter(root, proc) {
        Ok(s) => s,
        Err(e) => {
            let _ = send(sock.as_fd(), &(e as i32).to_le_bytes(), &[]);
            return Err(e);
        }
    };
    send(sock.as_fd(), b"ok", &[])?;
    let mut pinned = None;
    loop {
        let (bytes, fds) = match recv(sock.as_fd(), &mut buf) {
            Ok(m) => m,
            // one job cut short: answered, and the next one comes
            Err(Errno::E2BIG) => {
                send(sock.as_fd(), &encode_done(&Done::Made(Err(Errno::E2BIG), Vec::new())), &[])?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if bytes.is_empty() {
            return Ok(());
        }
        let (mut job, cpu) = match decode(bytes, fds) {
            Ok(j) => j,
            Err(e) => {
                send(sock.as_fd(), &encode_done(&Done::Made(Err(e), Vec::new())), &[])?;
                continue;
            }
        };
        job.who = renumber(job.who, &uids, &gids);
        let opens = job.opens;
        let done = seat.run(job).unwrap_or_else(|e| Done::Made(Err(e), Vec::new()));
        // an open's new fd goes over with the answer, then is closed here
        let fd = match &done {
            Done::Made(Ok(v), _) if opens => {
                // SAFETY: the kernel just returned this new fd of ours, and
                // nothing else owns it.
                Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(*v as RawFd) })
            }
            _ => None,
        };
        let raw: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
        send(sock.as_fd(), &encode_done(&done), &raw)?;
        follow(cpu, &mut pinned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumbers_host_ids() {
        let m = IdMap::parse("         0     100000      65536\n");
        assert_eq!(m.inside(100000), 0);
        assert_eq!(m.inside(101000), 1000);
        assert_eq!(m.inside(0), OVERFLOW);
        assert_eq!(m.inside(165536), OVERFLOW);
        let c = Creds {
            fsuid: 101000,
            fsgid: 100005,
            groups: vec![100010, 7],
            cap_eff: 1,
            umask: 0o22,
            real: (100000, 100000),
            cap_prm: 3,
        };
        let r = renumber(c, &m, &m);
        assert_eq!((r.fsuid, r.fsgid, r.groups, r.real), (1000, 5, vec![10, OVERFLOW], (0, 0)));
    }

    #[test]
    fn a_job_survives_the_wire() {
        let (a, _b) = nix::unistd::pipe().unwrap();
        let job = Job {
            nr: libc::SYS_linkat,
            args: vec![
                Arg::Raw(3),
                Arg::Link(a, 0),
                Arg::Raw(libc::AT_FDCWD as u64),
                Arg::In(b"x\0".to_vec()),
                Arg::Out(16),
            ],
            here: None,
            jail: None,
            who: Creds { fsuid: 1, fsgid: 2, groups: vec![3, 4], cap_eff: 5, umask: 0o77, real: (6, 7), cap_prm: 8 },
            access: true,
            special: Some(Special { path: 3, dir: None, nofollow: true }),
            opens: true,
        };
        let (bytes, fds) = encode(&job);
        let fds = fds.iter().map(|f| f.try_clone_to_owned().unwrap()).collect();
        let (back, _cpu) = decode(&bytes, fds).unwrap();
        assert_eq!(back.nr, libc::SYS_linkat);
        assert!(matches!(back.args[1], Arg::Link(_, 0)));
        assert!(matches!(&back.args[3], Arg::In(b) if b == b"x\0"));
        assert!(matches!(back.args[4], Arg::Out(16)));
        assert_eq!(back.who, job.who);
        assert!(back.special.is_some_and(|s| s.path == 3 && s.dir.is_none() && s.nofollow));
        assert!(back.opens);
        let done = Done::Made(Err(Errno::EACCES), vec![]);
        assert!(matches!(decode_done(&encode_done(&done), None), Ok(Done::Made(Err(Errno::EACCES), _))));
        let done = Done::Made(Ok(0), vec![(1, vec![9, 9])]);
        assert!(
            matches!(decode_done(&encode_done(&done), None), Ok(Done::Made(Ok(0), o)) if o == vec![(1, vec![9, 9])])
        );
        assert!(decode(&bytes[..bytes.len() - 3], Vec::new()).is_err());
    }
}
