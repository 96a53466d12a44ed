// SPDX-License-Identifier: GPL-2.0
//! Fuzz target over the codec's decoder; see `virtio_msg_codec::fuzzing::decode_one`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| virtio_msg_codec::fuzzing::decode_one(data));
