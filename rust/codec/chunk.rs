// SPDX-License-Identifier: GPL-2.0

//! Splitting config space reads and writes into chunks that fit one message each.
//!
//! Both sides use the same split, so a device can predict the requests a driver sends and
//! tests can check one against the other.

use core::ops::Range;

use super::header::HEADER_SIZE;
use super::limits::MIN_MSG_SIZE;
use super::transport::CONFIG_DATA_OFFSET;

/// Chunk boundaries other than the range's own ends fall on multiples of this, so that a
/// naturally aligned config field of up to 8 bytes is never split between two messages.
const CHUNK_ALIGN: u64 = 8;

/// Bytes of a GET_CONFIG response or SET_CONFIG request that are not config data.
const CONFIG_MSG_OVERHEAD: u16 = 20;

const _: () = assert!(CONFIG_MSG_OVERHEAD as usize == HEADER_SIZE + CONFIG_DATA_OFFSET);

/// Returns how many config bytes one GET_CONFIG response or SET_CONFIG request carries
/// at most, for a maximum message size of `max_msg_size`.
pub fn config_data_capacity(max_msg_size: u16) -> usize {
    usize::from(max_msg_size.saturating_sub(CONFIG_MSG_OVERHEAD))
}

/// Why a config access could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// The maximum message size is below the revision 1 minimum.
    MaxMsgSizeTooSmall {
        /// The maximum message size given.
        max_msg_size: u16,
    },
    /// The range runs past the end of the 32-bit config space.
    RangeOverflow,
}

/// One message's share of a config access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChunk {
    /// Config space offset for the message.
    pub offset: u32,
    /// Byte count for the message.
    pub length: u32,
    /// Where the chunk's bytes sit in the caller's buffer for the whole access.
    pub buf: Range<usize>,
}

/// Iterator over the chunks of one config access, in increasing offset order.
#[derive(Debug, Clone)]
pub struct ConfigChunks {
    start: u64,
    pos: u64,
    end: u64,
    capacity: u64,
}

/// Splits the access of `length` bytes at config offset `offset` into chunks that each fit
/// a message of at most `max_msg_size` bytes.
///
/// The chunks cover the range exactly, in order, without overlap; a zero-length access has
/// no chunks.
pub fn config_chunks(
    offset: u32,
    length: u32,
    max_msg_size: u16,
) -> Result<ConfigChunks, ChunkError> {
    if max_msg_size < MIN_MSG_SIZE {
        return Err(ChunkError::MaxMsgSizeTooSmall { max_msg_size });
    }
    let start = u64::from(offset);
    let end = start + u64::from(length);
    // The last byte must have a 32-bit offset.
    if end > 1 << 32 {
        return Err(ChunkError::RangeOverflow);
    }
    Ok(ConfigChunks {
        start,
        pos: start,
        end,
        // At least 32 bytes, as the maximum is at least the minimum message size, so
        // aligning a chunk's end down to 8 always leaves it non-empty.
        capacity: u64::from(max_msg_size.saturating_sub(CONFIG_MSG_OVERHEAD)),
    })
}

impl Iterator for ConfigChunks {
    type Item = ConfigChunk;

    fn next(&mut self) -> Option<ConfigChunk> {
        if self.pos >= self.end {
            return None;
        }
        let limit = self.pos + self.capacity;
        let chunk_end = if limit >= self.end {
            self.end
        } else {
            limit - limit % CHUNK_ALIGN
        };
        let chunk = ConfigChunk {
            offset: u32::try_from(self.pos).ok()?,
            length: u32::try_from(chunk_end - self.pos).ok()?,
            buf: usize::try_from(self.pos - self.start).ok()?
                ..usize::try_from(chunk_end - self.start).ok()?,
        };
        self.pos = chunk_end;
        Some(chunk)
    }
}
