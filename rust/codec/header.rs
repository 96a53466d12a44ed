// SPDX-License-Identifier: GPL-2.0

//! The 8-byte header that starts every virtio-msg message.

use zerocopy::little_endian::U16;
use zerocopy::{FromBytes, IntoBytes};

use super::error::DecodeError;

/// Size in bytes of the common header.
pub const HEADER_SIZE: usize = 8;

/// Type bit 0: the message is a response (clear for requests and events).
pub const TYPE_RESPONSE: u8 = 1 << 0;

/// Type bit 1: the message is a bus message (clear for transport messages).
pub const TYPE_BUS: u8 = 1 << 1;

/// Type bits that revision 1 reserves; a message with any of them set is malformed.
pub const TYPE_RESERVED: u8 = !(TYPE_RESPONSE | TYPE_BUS);

/// The common header, as laid out on the wire (all fields little-endian).
#[repr(C)]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    zerocopy_derive::FromBytes,
    zerocopy_derive::IntoBytes,
    zerocopy_derive::KnownLayout,
    zerocopy_derive::Immutable,
    zerocopy_derive::Unaligned,
)]
pub struct Header {
    /// Type bits: [`TYPE_RESPONSE`] and [`TYPE_BUS`].
    pub msg_type: u8,
    /// Message id within the namespace the type bits select.
    pub msg_id: u8,
    /// Device number on the bus instance; 0 in bus messages.
    pub dev_num: U16,
    /// Correlation value owned by the bus; a response copies the request's token.
    pub token: U16,
    /// Size of the whole message, header included.
    pub msg_size: U16,
}

const _: () = assert!(core::mem::size_of::<Header>() == HEADER_SIZE);

/// Byte offset of the `token` field, for patching it in an encoded message.
const TOKEN_OFFSET: usize = 4;

impl Header {
    /// Reads the header at the start of `buf` without checking anything past it.
    ///
    /// Buses use this to learn a message's size and token before decoding it.
    pub fn peek(buf: &[u8]) -> Result<Self, DecodeError> {
        match Self::read_from_prefix(buf) {
            Ok((header, _)) => Ok(header),
            Err(_) => Err(DecodeError::TooShort {
                needed: HEADER_SIZE,
                actual: buf.len(),
            }),
        }
    }

    /// Returns whether the response bit is set.
    pub const fn is_response(&self) -> bool {
        self.msg_type & TYPE_RESPONSE != 0
    }

    /// Returns whether the bus bit is set.
    pub const fn is_bus(&self) -> bool {
        self.msg_type & TYPE_BUS != 0
    }
}

/// Returns the message at the start of `buf`, cut to the size its header states.
///
/// Buses that receive into fixed-size slots or registers use this to drop the unused tail
/// before [`Codec::decode`](super::Codec::decode), which insists on an exact size.
pub fn frame(buf: &[u8]) -> Result<&[u8], DecodeError> {
    let header = Header::peek(buf)?;
    let size = usize::from(header.msg_size.get());
    if size < HEADER_SIZE {
        return Err(DecodeError::SizeMismatch {
            msg_size: header.msg_size.get(),
            actual: buf.len(),
        });
    }
    buf.get(..size).ok_or(DecodeError::SizeMismatch {
        msg_size: header.msg_size.get(),
        actual: buf.len(),
    })
}

/// Overwrites the token of an encoded message in place.
///
/// The transport encodes with token 0 and the bus stamps its own correlation value.
pub fn set_token(msg: &mut [u8], token: u16) -> Result<(), DecodeError> {
    let actual = msg.len();
    let too_short = DecodeError::TooShort {
        needed: HEADER_SIZE,
        actual,
    };
    if actual < HEADER_SIZE {
        return Err(too_short);
    }
    let field = msg
        .get_mut(TOKEN_OFFSET..TOKEN_OFFSET + 2)
        .ok_or(too_short)?;
    field.copy_from_slice(U16::new(token).as_bytes());
    Ok(())
}
