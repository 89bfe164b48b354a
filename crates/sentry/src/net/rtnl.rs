//! Route netlink messages, framed and unframed (netlink-packet-route):
//! what the host's kernel is asked when the pod's interface is taken over
//! ([`super::pod`]), and what the sandbox's own netlink answers
//! ([`super::netlink`]).

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;

/// A route netlink message.
pub type Message = NetlinkMessage<RouteNetlinkMessage>;

/// `payload` framed as one netlink message with `flags`, `seq` and `port`.
pub fn encode(payload: NetlinkPayload<RouteNetlinkMessage>, flags: u16, seq: u32, port: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    header.port_number = port;
    let mut m = NetlinkMessage::new(header, payload);
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

/// The messages in `buf` (one datagram), in order; Err names what did not parse.
pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return Err(format!("a netlink message of {len} bytes in {}", buf.len()));
        }
        out.push(Message::deserialize(&buf[..len]).map_err(|e| e.to_string())?);
        buf = &buf[((len + 3) & !3usize).min(buf.len())..];
    }
    Ok(out)
}
