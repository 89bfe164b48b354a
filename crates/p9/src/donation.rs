//! The fd-donation extension: negotiation and the rule that ties a received fd to its frame.
//!
//! See the crate documentation for the protocol text. This module holds the pure logic, so the
//! transport (which owns the socket and the `unsafe` needed to adopt received fds) stays small.

use std::collections::VecDeque;

use crate::MsgType;

/// The base protocol.
pub const VERSION_9P2000_L: &str = "9P2000.L";
/// The version string a client sends to ask for fd donation.
pub const VERSION_9P2000_L_FD: &str = "9P2000.L.moat-fd";
/// The reply of a server that understands neither (version(5)).
pub const VERSION_UNKNOWN: &str = "unknown";

/// What a Tversion settled on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dialect {
    /// Plain 9P2000.L.
    L,
    /// 9P2000.L with fds donated on Rlopen and Rlcreate.
    LWithFdDonation,
}

impl Dialect {
    /// The version string that names this dialect in Rversion.
    pub fn version(self) -> &'static str {
        match self {
            Dialect::L => VERSION_9P2000_L,
            Dialect::LWithFdDonation => VERSION_9P2000_L_FD,
        }
    }
}

/// Server side: the dialect to answer a Tversion `requested` with, or `None` for "unknown".
/// `can_donate` is false when the transport cannot carry fds (TCP) or donation is switched off;
/// the server then answers a donation request with plain "9P2000.L".
pub fn server_dialect(requested: &[u8], can_donate: bool) -> Option<Dialect> {
    if requested == VERSION_9P2000_L_FD.as_bytes() {
        Some(if can_donate { Dialect::LWithFdDonation } else { Dialect::L })
    } else if requested == VERSION_9P2000_L.as_bytes() {
        Some(Dialect::L)
    } else {
        None
    }
}

/// Client side: what an Rversion `reply` to a Tversion of `asked` means. `None` means the server
/// refused (or answered something else, such as "9P2000"): a client that asked for donation
/// retries with plain "9P2000.L"; one that asked for plain 9P2000.L gives up.
pub fn client_dialect(asked: Dialect, reply: &[u8]) -> Option<Dialect> {
    match asked {
        Dialect::LWithFdDonation if reply == VERSION_9P2000_L_FD.as_bytes() => Some(Dialect::LWithFdDonation),
        // A server may answer a request for the extension with the base version it speaks.
        _ if reply == VERSION_9P2000_L.as_bytes() => Some(Dialect::L),
        _ => None,
    }
}

/// Whether a reply of this type may carry a donated fd.
pub fn may_carry_fd(ty: MsgType) -> bool {
    matches!(ty, MsgType::Rlopen | MsgType::Rlcreate)
}

/// Ties fds received on a stream socket to the frames they came with.
///
/// The receiver calls [`FdLedger::received`] after each `recvmsg` with the stream offset of the
/// last byte that call returned; when a frame spanning `[start, end)` is complete,
/// [`FdLedger::take`] hands back the fds that arrived inside it. Fds that arrived before `start`
/// belong to no frame the receiver still wants and are dropped (closed) by the caller.
#[derive(Debug)]
pub struct FdLedger<T> {
    queue: VecDeque<(u64, T)>,
    limit: usize,
}

impl<T> FdLedger<T> {
    /// A ledger that holds at most `limit` fds (a peer that sends more is misbehaving).
    pub fn new(limit: usize) -> Self {
        Self { queue: VecDeque::new(), limit }
    }

    /// Records an fd delivered by a read whose last byte was at stream offset `at`. Returns the
    /// fd back if the ledger is full.
    pub fn received(&mut self, at: u64, fd: T) -> Result<(), T> {
        if self.queue.len() >= self.limit {
            return Err(fd);
        }
        self.queue.push_back((at, fd));
        Ok(())
    }

    /// Removes and returns the fds of the frame at `[start, end)`, plus any stale fds that arrived
    /// before `start` (the second list, for the caller to close).
    pub fn take(&mut self, start: u64, end: u64) -> (Vec<T>, Vec<T>) {
        let mut mine = Vec::new();
        let mut stale = Vec::new();
        while let Some(&(at, _)) = self.queue.front() {
            if at >= end {
                break;
            }
            if let Some((_, fd)) = self.queue.pop_front() {
                if at >= start {
                    mine.push(fd);
                } else {
                    stale.push(fd);
                }
            }
        }
        (mine, stale)
    }

    /// Fds held.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no fds are held.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_table() {
        assert_eq!(server_dialect(b"9P2000.L.moat-fd", true), Some(Dialect::LWithFdDonation));
        assert_eq!(server_dialect(b"9P2000.L.moat-fd", false), Some(Dialect::L));
        assert_eq!(server_dialect(b"9P2000.L", true), Some(Dialect::L));
        assert_eq!(server_dialect(b"9P2000.u", true), None);
        assert_eq!(client_dialect(Dialect::LWithFdDonation, b"9P2000.L.moat-fd"), Some(Dialect::LWithFdDonation));
        assert_eq!(client_dialect(Dialect::LWithFdDonation, b"9P2000.L"), Some(Dialect::L));
        assert_eq!(client_dialect(Dialect::LWithFdDonation, b"unknown"), None);
        assert_eq!(client_dialect(Dialect::LWithFdDonation, b"9P2000"), None);
        assert_eq!(client_dialect(Dialect::L, b"9P2000.L.moat-fd"), None);
    }

    #[test]
    fn ledger_attributes_by_offset() {
        let mut l = FdLedger::new(4);
        l.received(5, 'a').unwrap();
        l.received(30, 'b').unwrap();
        l.received(31, 'c').unwrap();
        l.received(99, 'd').unwrap();
        assert_eq!(l.received(100, 'e'), Err('e'));
        assert_eq!(l.take(24, 48), (vec!['b', 'c'], vec!['a']));
        assert_eq!(l.take(48, 60), (vec![], vec![]));
        assert_eq!(l.len(), 1);
    }
}
