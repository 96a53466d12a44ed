// SPDX-License-Identifier: GPL-2.0
//! The fuzz harness, shared by the `decode` fuzz target and the regression test that
//! replays the inputs the fuzzer once crashed on.
//!
//! Host only: it panics on purpose when a property fails, which is how libFuzzer learns
//! of a bug.

use crate::chunk::config_chunks;
use crate::{frame, BusKind, Codec, Layout, MAX_MSG_SIZE};

/// Size of the re-encoding buffer: the largest possible message.
const OUT_SIZE: usize = MAX_MSG_SIZE as usize;

/// Runs one fuzz input.
///
/// The first byte picks the codec (bus kind, layout, maximum message size); the rest is the
/// message. Besides not panicking, a message that decodes must re-encode to the same size
/// and decode again to the same frame.
pub fn decode_one(data: &[u8]) {
    let Some((&selector, msg)) = data.split_first() else {
        return;
    };
    let codec = Codec {
        bus: match selector & 0b11 {
            0 => BusKind::Generic,
            1 => BusKind::SharedMemory,
            _ => BusKind::Ffa,
        },
        layout: if selector & 0b100 == 0 {
            Layout::Revision1
        } else {
            Layout::Late2025
        },
        max_msg_size: if selector & 0b1000 == 0 {
            MAX_MSG_SIZE
        } else {
            crate::MIN_MSG_SIZE
        },
    };

    let _ = frame(msg);
    if let Ok(decoded) = codec.decode(msg) {
        let mut out = [0u8; OUT_SIZE];
        let encoded = codec.encode(&decoded, &mut out);
        assert_eq!(encoded, Ok(msg.len()), "re-encoding {decoded:?}");
        let again = out.get(..msg.len()).map(|bytes| codec.decode(bytes));
        assert_eq!(
            again,
            Some(Ok(decoded)),
            "decoding the re-encoding of {decoded:?}"
        );
    }

    // The chunk helper takes untrusted sizes too (a device's config_size).
    if let [a, b, c, d, e, f, g, h, m0, m1, ..] = *msg {
        let offset = u32::from_le_bytes([a, b, c, d]);
        let length = u32::from_le_bytes([e, f, g, h]);
        let max = u16::from_le_bytes([m0, m1]);
        if let Ok(chunks) = config_chunks(offset, length.min(1 << 16), max) {
            let mut next = offset;
            for chunk in chunks {
                assert_eq!(chunk.offset, next, "chunks must be contiguous");
                assert!(chunk.length > 0);
                next = chunk.offset.wrapping_add(chunk.length);
            }
        }
    }
}
