//! Which of the stack's shards each packet from the pod's interface goes
//! to: the shards' packet sockets are one fanout group (PACKET_FANOUT),
//! and a classic BPF program of the group's (PACKET_FANOUT_CBPF) picks the
//! socket of a TCP packet by a hash of the sum of its ports, modulo the
//! number of shards ([`shard_of`]: the same for both directions of a
//! connection; hashed, as a peer's ports often share their parity: Linux
//! picks even ones for connect).
//! Anything else (ARP, neighbor discovery, UDP, ICMP, fragments, IPv6
//! packets with extension headers) goes to shard 0, which serves every
//! datagram socket.
//!
//! The group also has the kernel put IPv4 fragments together before the
//! program sees them (PACKET_FANOUT_FLAG_DEFRAG). With one shard the group
//! is of one socket and is there for that alone. The group's hook replaces
//! the sockets' own, so their PACKET_IGNORE_OUTGOING no longer counts: the
//! group ignores outgoing packets itself where the kernel can (Linux 6.9),
//! or else every packet the stack sends comes back to it as a clone to be
//! read and skipped.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::offload::packet_option;

const PACKET_FANOUT: libc::c_int = 18;
/// PACKET_FANOUT_DATA: the group's program
const PACKET_FANOUT_DATA: libc::c_int = 22;
const FANOUT_CPU: libc::c_int = 2;
const FANOUT_CBPF: libc::c_int = 6;
const FLAG_UNIQUEID: libc::c_int = 0x2000;
const FLAG_IGNORE_OUTGOING: libc::c_int = 0x4000;
const FLAG_DEFRAG: libc::c_int = 0x8000;

/// The shard a TCP connection between local port `ours` and remote port
/// `theirs` is served by, of `n`: as the group's program picks it.
pub fn shard_of(ours: u16, theirs: u16, n: usize) -> usize {
    let sum = u32::from(ours) + u32::from(theirs);
    (sum.wrapping_mul(MIX) >> 16) as usize % n.max(1)
}

/// The multiplier of the ports' hash (Fibonacci hashing: 2^32 / φ).
const MIX: u32 = 0x9E37_79B1;

/// Makes packet sockets `fds` (bound to one interface, in shard order) one
/// fanout group that steers as [`shard_of`] says and defragments IPv4.
/// Err: the kernel refused (the caller keeps one socket); with one socket,
/// Err means no reassembly, which the caller can live with.
pub fn group(fds: &[OwnedFd]) -> Result<(), String> {
    let Some(first) = fds.first() else { return Ok(()) };
    let mode = if fds.len() == 1 { FANOUT_CPU } else { FANOUT_CBPF };
    let flags = FLAG_DEFRAG | mode;
    let ignoring = flags | FLAG_IGNORE_OUTGOING;
    // (the group's id is the kernel's to choose: none a pod's other users took)
    let joined =
        [ignoring, flags].into_iter().find(|f| packet_option(first.as_fd(), PACKET_FANOUT, (f | FLAG_UNIQUEID) << 16));
    let Some(flags) = joined else { return Err("PACKET_FANOUT refused".into()) };
    if fds.len() == 1 {
        return Ok(());
    }
    let id = fanout_id(first).ok_or("the fanout group's id unknown")?;
    for fd in &fds[1..] {
        if !packet_option(fd.as_fd(), PACKET_FANOUT, (flags << 16) | id) {
            return Err("a second socket could not join the fanout group".into());
        }
    }
    set_program(first)
}

/// The id the kernel gave the fanout group of packet socket `fd`.
fn fanout_id(fd: &OwnedFd) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes for the call's duration, `len` is `v`'s size
    let r = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_PACKET, PACKET_FANOUT, (&raw mut v).cast(), &mut len) };
    (r == 0).then_some(v & 0xffff)
}

/// The group's program: a TCP packet's port hash (the kernel takes it
/// modulo the group's size), 0 for anything else. It sees each packet from
/// its network header on.
fn program() -> Vec<libc::sock_filter> {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    const LD_H_ABS: u16 = 0x28;
    const LD_B_ABS: u16 = 0x30;
    const LD_H_IND: u16 = 0x48;
    const LDX_B_MSH: u16 = 0xb1;
    const LDX_IMM: u16 = 0x01;
    const LDX_MEM: u16 = 0x61;
    const ST: u16 = 0x02;
    const JEQ: u16 = 0x15;
    const JSET: u16 = 0x45;
    const JA: u16 = 0x05;
    const ADD_X: u16 = 0x0c;
    const MUL_K: u16 = 0x24;
    const RSH_K: u16 = 0x74;
    const RET_A: u16 = 0x16;
    const RET_K: u16 = 0x06;
    /// SKF_AD_OFF + SKF_AD_PROTOCOL: the packet's ethertype
    const PROTOCOL: u32 = 0xffff_f000;
    vec![
        op(LD_H_ABS, 0, 0, PROTOCOL),
        op(JEQ, 0, 6, 0x0800),   // IPv4, else to 8
        op(LD_B_ABS, 0, 0, 9),   // its protocol
        op(JEQ, 0, 16, 6),       // TCP, else to 20
        op(LD_H_ABS, 0, 0, 6),   // flags and fragment offset
        op(JSET, 14, 0, 0x1fff), // a fragment past the first: to 20
        op(LDX_B_MSH, 0, 0, 0),  // X: the header's length
        op(JA, 0, 0, 4),         // to 12
        op(JEQ, 0, 11, 0x86dd),  // IPv6, else to 20
        op(LD_B_ABS, 0, 0, 6),   // its next header
        op(JEQ, 0, 9, 6),        // TCP right after the header, else to 20
        op(LDX_IMM, 0, 0, 40),   // X: the header's length
        op(LD_H_IND, 0, 0, 0),   // the source port
        op(ST, 0, 0, 0),         // M[0]
        op(LD_H_IND, 0, 0, 2),   // the destination port
        op(LDX_MEM, 0, 0, 0),    // X: M[0]
        op(ADD_X, 0, 0, 0),      // their sum
        op(MUL_K, 0, 0, MIX),    // hashed
        op(RSH_K, 0, 0, 16),
        op(RET_A, 0, 0, 0),
        op(RET_K, 0, 0, 0), // shard 0
    ]
}

/// Gives the fanout group of `fd` its program.
fn set_program(fd: &OwnedFd) -> Result<(), String> {
    let filter = program();
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
    let len = std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t;
    // SAFETY: `prog` points at `filter`, alive and unchanged for the call's
    // duration; the kernel copies the program and keeps no pointer to it
    let r = unsafe {
        libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, PACKET_FANOUT_DATA, (&raw const prog).cast(), len)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(format!("PACKET_FANOUT_DATA: {}", std::io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_of_a_connection_go_to_one_shard() {
        for (a, b) in [(80u16, 40000u16), (65535, 65535), (0, 1), (5001, 33333)] {
            for n in 1..5 {
                assert_eq!(shard_of(a, b, n), shard_of(b, a, n));
                assert!(shard_of(a, b, n) < n);
            }
        }
    }

    /// Runs the program as the kernel does on a packet of ethertype
    /// `proto` (its bytes from the network header on); None where the
    /// kernel would end it for a read past the packet (it returns 0).
    fn run(proto: u16, p: &[u8]) -> Option<u32> {
        let prog = program();
        let (mut a, mut x, mut m, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
        let half = |at: usize| Some(u32::from(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?])));
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                0x28 if i.k == 0xffff_f000 => a = u32::from(proto),
                0x28 => a = half(i.k as usize)?,
                0x30 => a = u32::from(*p.get(i.k as usize)?),
                0x48 => a = half(x as usize + i.k as usize)?,
                0xb1 => x = 4 * u32::from(*p.get(i.k as usize)? & 0xf),
                0x01 => x = i.k,
                0x61 => x = m[i.k as usize],
                0x02 => m[i.k as usize] = a,
                0x0c => a = a.wrapping_add(x),
                0x24 => a = a.wrapping_mul(i.k),
                0x74 => a >>= i.k,
                0x05 => pc += i.k as usize,
                0x15 => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                0x45 => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                0x16 => return Some(a),
                0x06 => return Some(i.k),
                c => panic!("instruction {c:#x} not known here"),
            }
        }
    }

    fn tcp4(ihl: u8, frag: u16, sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(ihl) * 4 + 20];
        p[0] = 0x40 | ihl;
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p[9] = 6;
        let t = usize::from(ihl) * 4;
        p[t..t + 2].copy_from_slice(&sport.to_be_bytes());
        p[t + 2..t + 4].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn the_program_steers_as_shard_of_says() {
        for (sport, dport) in [(5001u16, 40000u16), (40001, 80), (65535, 65535), (0, 0), (33333, 12345)] {
            for n in 1..5 {
                let want = shard_of(sport, dport, n);
                // (IPv4 with and without options; IPv6 without extension headers)
                for ihl in [5u8, 6, 15] {
                    assert_eq!(run(0x0800, &tcp4(ihl, 0x4000, sport, dport)).map(|v| v as usize % n), Some(want));
                }
                let mut v6 = vec![0u8; 60];
                v6[0] = 0x60;
                v6[6] = 6;
                v6[40..42].copy_from_slice(&sport.to_be_bytes());
                v6[42..44].copy_from_slice(&dport.to_be_bytes());
                assert_eq!(run(0x86dd, &v6).map(|v| v as usize % n), Some(want));
            }
        }
        // shard 0: not TCP, a later fragment, an extension header, ARP
        let mut udp = tcp4(5, 0, 1, 2);
        udp[9] = 17;
        assert_eq!(run(0x0800, &udp), Some(0));
        assert_eq!(run(0x0800, &tcp4(5, 0x0010, 1, 2)), Some(0));
        let mut hop = vec![0u8; 60];
        hop[0] = 0x60;
        assert_eq!(run(0x86dd, &hop), Some(0));
        assert_eq!(run(0x0806, &[0u8; 28]), Some(0));
    }

    #[test]
    fn ports_of_one_parity_spread_over_the_shards() {
        // (a peer's connections from even ports to one server port)
        let mut count = [0usize; 2];
        for port in (40000u16..40200).step_by(2) {
            count[shard_of(5001, port, 2)] += 1;
        }
        assert!(count.iter().all(|c| *c > 30), "{count:?}");
    }

    #[test]
    fn the_programs_jumps_land_inside_it() {
        let p = program();
        for (i, ins) in p.iter().enumerate() {
            let next = i + 1;
            if ins.code & 0x07 == 0x05 {
                let targets = if ins.code == 0x05 {
                    vec![next + ins.k as usize]
                } else {
                    vec![next + usize::from(ins.jt), next + usize::from(ins.jf)]
                };
                assert!(targets.iter().all(|t| *t < p.len()), "jump at {i} leaves the program");
            }
        }
        assert_eq!(p.last().map(|i| (i.code, i.k)), Some((0x06, 0)));
    }
}
