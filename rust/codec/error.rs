// SPDX-License-Identifier: GPL-2.0

//! Errors the codec reports.

/// Why a received message was rejected.
///
/// Sizes are in bytes of the whole message, header included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The message ends before a part that must be present.
    TooShort {
        /// Bytes the message needs to hold that part.
        needed: usize,
        /// Bytes it has.
        actual: usize,
    },
    /// The header's `msg_size` disagrees with the length of the buffer.
    SizeMismatch {
        /// Size the header states.
        msg_size: u16,
        /// Length of the buffer.
        actual: usize,
    },
    /// The message is larger than the negotiated maximum message size.
    TooLarge {
        /// Size the header states.
        msg_size: u16,
        /// The negotiated maximum.
        max: u16,
    },
    /// The type byte has reserved bits set.
    BadType {
        /// The type byte.
        msg_type: u8,
    },
    /// No message has this id in the namespace the type bits and bus kind select.
    UnknownId {
        /// The type byte.
        msg_type: u8,
        /// The message id.
        msg_id: u8,
    },
    /// The response bit is set on a message that has no response, such as an event.
    NoResponseForId {
        /// The type byte.
        msg_type: u8,
        /// The message id.
        msg_id: u8,
    },
    /// The response bit is clear on a message that exists only as a response.
    NoRequestForId {
        /// The type byte.
        msg_type: u8,
        /// The message id.
        msg_id: u8,
    },
    /// The message is longer than the layout of its id.
    TrailingBytes {
        /// Size the layout (and its length fields) accounts for.
        expected: usize,
        /// Size of the message.
        actual: usize,
    },
    /// A field holds a value the layout does not allow, such as a length past the message end.
    FieldOutOfRange {
        /// Name of the field, as in the specification.
        field: &'static str,
    },
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer cannot hold the message; nothing was written.
    BufferTooSmall {
        /// Size of the encoded message.
        needed: usize,
        /// Length of the output buffer.
        available: usize,
    },
    /// The message would exceed the negotiated maximum message size; nothing was written.
    TooLarge {
        /// Size of the encoded message.
        size: usize,
        /// The negotiated maximum.
        max: u16,
    },
    /// A field cannot be represented in the layout, such as a bitmap longer than its count
    /// field can describe; nothing was written.
    FieldOutOfRange {
        /// Name of the field, as in the specification.
        field: &'static str,
    },
    /// The message belongs to another bus than the codec's; nothing was written.
    WrongBus,
}
