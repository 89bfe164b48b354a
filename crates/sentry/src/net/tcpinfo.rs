//! TCP_INFO: Linux's `struct tcp_info` for one of the stack's TCP sockets,
//! with what smoltcp tells of it (its state, the path's segment size, its
//! buffers); what it keeps to itself (round-trip times, the congestion
//! window, retransmissions) reads 0, as for a connection that has none.

use std::net::IpAddr;

use smoltcp::socket::tcp;

/// The length of Linux 6.x's `struct tcp_info` (a caller's shorter buffer
/// takes its start, as older headers lay it out).
pub const LEN: usize = 280;

/// Linux's TCP states (include/net/tcp_states.h).
const ESTABLISHED: u8 = 1;
const SYN_SENT: u8 = 2;
const SYN_RECV: u8 = 3;
const FIN_WAIT1: u8 = 4;
const FIN_WAIT2: u8 = 5;
const TIME_WAIT: u8 = 6;
/// Linux's TCP_CLOSE, also a socket neither connected nor listening.
pub const CLOSE: u8 = 7;
const CLOSE_WAIT: u8 = 8;
const LAST_ACK: u8 = 9;
/// Linux's TCP_LISTEN.
pub const LISTEN: u8 = 10;
const CLOSING: u8 = 11;

/// Linux's state for smoltcp's `state`.
pub fn state(state: tcp::State) -> u8 {
    match state {
        tcp::State::Closed => CLOSE,
        tcp::State::Listen => LISTEN,
        tcp::State::SynSent => SYN_SENT,
        tcp::State::SynReceived => SYN_RECV,
        tcp::State::Established => ESTABLISHED,
        tcp::State::FinWait1 => FIN_WAIT1,
        tcp::State::FinWait2 => FIN_WAIT2,
        tcp::State::CloseWait => CLOSE_WAIT,
        tcp::State::Closing => CLOSING,
        tcp::State::LastAck => LAST_ACK,
        tcp::State::TimeWait => TIME_WAIT,
    }
}

/// The segment size of a connection to `peer` over a link of `mtu` (its
/// IP and TCP headers off, as Linux's advmss).
pub fn mss(peer: IpAddr, mtu: usize) -> u32 {
    let headers = if peer.is_ipv4() { 40 } else { 60 };
    u32::try_from(mtu.saturating_sub(headers)).unwrap_or(u32::MAX)
}

/// What a socket's TCP_INFO tells.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Linux's state
    pub state: u8,
    /// the path's MTU
    pub pmtu: u32,
    /// the segment size both ways
    pub mss: u32,
    /// the receive buffer's room
    pub rcv_space: u32,
}

impl Info {
    /// `struct tcp_info`, laid out as Linux's.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; LEN];
        let mut put = |at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        // tcpi_snd_mss, tcpi_rcv_mss, tcpi_pmtu, tcpi_advmss, tcpi_rcv_space
        put(16, self.mss);
        put(20, self.mss);
        put(60, self.pmtu);
        put(84, self.mss);
        put(96, self.rcv_space);
        b[0] = self.state;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laid_out_as_linux_lays_it_out() {
        let info = Info { state: ESTABLISHED, pmtu: 1500, mss: mss(IpAddr::from([10, 0, 0, 1]), 1500), rcv_space: 7 };
        let b = info.bytes();
        let word = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!(b.len(), LEN);
        assert_eq!(b[0], 1);
        assert_eq!((word(16), word(20), word(60), word(84), word(96)), (1460, 1460, 1500, 1460, 7));
        // round trips, retransmissions: none known
        assert_eq!((word(68), word(100)), (0, 0));
        assert_eq!(mss(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), 65536), 65476);
        assert_eq!(state(tcp::State::TimeWait), TIME_WAIT);
    }
}
