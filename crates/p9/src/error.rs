//! Errors of decoding and encoding 9P frames.

/// Why a frame could not be decoded. Every malformed input maps to one of these; none panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A field ran past the end of the frame.
    #[error("frame truncated: wanted {wanted} bytes, {left} left")]
    Truncated {
        /// Bytes the field needed.
        wanted: usize,
        /// Bytes that were left in the frame.
        left: usize,
    },
    /// Bytes were left after the last field of the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The size field is smaller than a header or does not match the bytes given.
    #[error("bad frame size {size} for {len} bytes")]
    BadSize {
        /// The frame's size field.
        size: u32,
        /// The bytes actually given.
        len: usize,
    },
    /// The frame is larger than the negotiated msize.
    #[error("frame of {size} bytes exceeds msize {max}")]
    TooLarge {
        /// The frame's size field.
        size: u32,
        /// The limit in force.
        max: u32,
    },
    /// The type byte names no 9P2000.L message.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// Twalk or Rwalk with more than [`crate::MAX_WELEM`] elements.
    #[error("walk with {0} elements exceeds the limit of 16")]
    TooManyWalkElements(u16),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A string, data block or the whole frame does not fit its length field.
    #[error("{what} of {len} bytes does not fit its length field")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// More walk names or qids than [`crate::MAX_WELEM`].
    #[error("walk with {0} elements exceeds the limit of 16")]
    TooManyWalkElements(usize),
}
