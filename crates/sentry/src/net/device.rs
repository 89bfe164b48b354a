//! The stack's interfaces as smoltcp devices. The loopback is a queue of
//! packets the stack sends itself, which the thread drains before it
//! sleeps ([`Loop::pending`]).

use std::collections::VecDeque;

use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The loopback interface's MTU: the largest IP packet (Linux's lo says 65536)
const LOOPBACK_MTU: usize = 65535;

/// The loopback: every packet sent is received next.
#[derive(Debug, Default)]
pub struct Loop {
    queue: VecDeque<Vec<u8>>,
}

impl Loop {
    /// Whether packets wait to be received.
    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }
}

/// A packet received.
pub struct Rx(Vec<u8>);

/// Room for a packet to send.
pub struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0; len];
        let r = f(&mut packet);
        self.0.push_back(packet);
        r
    }
}

impl Device for Loop {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = LOOPBACK_MTU;
        // nothing crosses a wire: no checksums to make or check
        caps.checksum = ChecksumCapabilities::ignored();
        caps
    }

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let packet = self.queue.pop_front()?;
        Some((Rx(packet), Tx(&mut self.queue)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.queue))
    }
}
