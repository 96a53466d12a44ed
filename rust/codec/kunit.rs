// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the shared virtio-msg codec, run inside the kernel.
//!
//! Not part of the codec module itself (the host build has no KUnit). Include it from the
//! file that includes the codec, as a sibling of it named `codec`:
//!
//! ```ignore
//! #[path = "../../rust/codec/mod.rs"]
//! pub mod codec;
//! #[path = "../../rust/codec/kunit.rs"]
//! mod codec_kunit;
//! ```
//!
//! `#[kunit_tests]` accepts only inline modules, so the attribute sits on the inline
//! `tests` module below rather than on the `mod codec_kunit;` line, and it already gates
//! that module on `CONFIG_KUNIT`; the `mod` line is gated on `CONFIG_VIRTIO_MSG_KUNIT_TEST`
//! (drivers/Kconfig), so that a production module has no suite. The golden bytes are written by hand from the
//! specification tables, never produced by the encoder; those of the shm region layout
//! live in `shm_layout_golden.rs`, which the host tests check too.

use super::codec;

#[path = "shm_layout_golden.rs"]
mod shm_layout_golden;

#[kernel::prelude::kunit_tests(virtio_msg_codec)]
mod tests {
    use super::super::codec::{
        bus::BusMessage,
        chunk::config_chunks,
        shm::{ShmBusMessage, VersionStatus, VersionTerms},
        transport::{DeviceInfo, TransportMessage, VqueueSetup},
        BusKind, Codec, DecodeError, EncodeError, Frame, Header, Layout, Message,
    };

    /// Returns whether encoding `frame` gives exactly `golden`.
    fn encode_matches(codec: &Codec, frame: &Frame<'_>, golden: &[u8]) -> bool {
        let mut buf = [0u8; 128];
        match codec.encode(frame, &mut buf) {
            Ok(n) => buf.get(..n) == Some(golden),
            Err(_) => false,
        }
    }

    /// Returns whether decoding `golden` gives exactly `frame`.
    fn decode_matches(codec: &Codec, frame: &Frame<'_>, golden: &[u8]) -> bool {
        codec.decode(golden) == Ok(*frame)
    }

    /// A shared-memory bus codec speaking revision 1 with the largest message size.
    const SHM: Codec = Codec::new(BusKind::SharedMemory);

    #[test]
    fn header_layout() {
        // type 0 (transport request), GET_DEVICE_INFO, dev_num 5, token 0x1234, size 8.
        let golden = [0x00, 0x02, 0x05, 0x00, 0x34, 0x12, 0x08, 0x00];
        let header = Header::peek(&golden);
        assert!(header.is_ok());
        if let Ok(h) = header {
            assert_eq!(h.msg_id, 0x02);
            assert_eq!(h.dev_num.get(), 5);
            assert_eq!(h.token.get(), 0x1234);
            assert_eq!(h.msg_size.get(), 8);
        }
        let frame = Frame {
            dev_num: 5,
            token: 0x1234,
            message: Message::Transport(TransportMessage::GetDeviceInfoRequest),
        };
        assert!(encode_matches(&SHM, &frame, &golden));
        assert!(decode_matches(&SHM, &frame, &golden));
    }

    #[test]
    fn get_device_info_response() {
        let golden = [
            0x01, 0x02, 0x05, 0x00, 0x00, 0x00, 52, 0x00, // header: response, size 52
            0x02, 0x00, 0x00, 0x00, // device_id 2 (block)
            0x51, 0x45, 0x4d, 0x55, // vendor_id 0x554d4551
            0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, // device_uuid
            0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, //
            0x02, 0x00, 0x00, 0x00, // num_feature_blocks 2
            0x3c, 0x00, 0x00, 0x00, // config_size 60
            0x01, 0x00, 0x00, 0x00, // max_virtqueues 1
            0x00, 0x00, 0x00, 0x00, // admin_vq_start 0
            0x00, 0x00, 0x00, 0x00, // admin_vq_count 0
        ];
        let frame = Frame::transport(
            5,
            TransportMessage::GetDeviceInfoResponse(DeviceInfo {
                device_id: 2,
                vendor_id: 0x554d_4551,
                device_uuid: [
                    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c,
                    0x1d, 0x1e, 0x1f,
                ],
                num_feature_blocks: 2,
                config_size: 60,
                max_virtqueues: 1,
                admin_vq_start: 0,
                admin_vq_count: 0,
            }),
        );
        assert!(encode_matches(&SHM, &frame, &golden));
        assert!(decode_matches(&SHM, &frame, &golden));
    }

    #[test]
    fn get_config_response() {
        let golden = [
            0x01, 0x05, 0x01, 0x00, 0x00, 0x00, 23, 0x00, // header: response, size 23
            0x07, 0x00, 0x00, 0x00, // generation 7
            0x04, 0x00, 0x00, 0x00, // offset 4
            0x03, 0x00, 0x00, 0x00, // length 3
            0xaa, 0xbb, 0xcc, // data
        ];
        let frame = Frame::transport(
            1,
            TransportMessage::GetConfigResponse {
                generation: 7,
                offset: 4,
                data: &[0xaa, 0xbb, 0xcc],
            },
        );
        assert!(encode_matches(&SHM, &frame, &golden));
        assert!(decode_matches(&SHM, &frame, &golden));

        // A length field that runs past the message is refused, not truncated.
        let mut bad = golden;
        bad[16] = 4;
        assert_eq!(
            SHM.decode(&bad),
            Err(DecodeError::FieldOutOfRange { field: "length" })
        );
    }

    #[test]
    fn set_vqueue_request() {
        let golden = [
            0x00, 0x0a, 0x02, 0x00, 0x00, 0x00, 48, 0x00, // header: request, size 48
            0x01, 0x00, 0x00, 0x00, // index 1
            0x01, 0x00, 0x00, 0x00, // flags: enable
            0x00, 0x01, 0x00, 0x00, // size 256
            0x00, 0x00, 0x00, 0x00, // reserved
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // desc_addr 1 << 32
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // driver_addr 0x1000
            0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // device_addr 0x2000
        ];
        let frame = Frame::transport(
            2,
            TransportMessage::SetVqueueRequest(VqueueSetup {
                index: 1,
                flags: 1,
                size: 256,
                desc_addr: 1 << 32,
                driver_addr: 0x1000,
                device_addr: 0x2000,
            }),
        );
        assert!(encode_matches(&SHM, &frame, &golden));
        assert!(decode_matches(&SHM, &frame, &golden));
    }

    #[test]
    fn get_devices_both_layouts() {
        let request = [
            0x02, 0x02, 0x00, 0x00, 0x09, 0x00, 12, 0x00, // header: bus request, token 9
            0x00, 0x00, // offset 0
            0x10, 0x00, // count 16
        ];
        let frame = Frame::bus(
            9,
            Message::Bus(BusMessage::GetDevicesRequest {
                offset: 0,
                count: 16,
            }),
        );
        assert!(encode_matches(&SHM, &frame, &request));
        assert!(decode_matches(&SHM, &frame, &request));

        let revision1 = [
            0x03, 0x02, 0x00, 0x00, 0x09, 0x00, 16, 0x00, // header: bus response
            0x00, 0x00, // offset 0
            0x20, 0x00, // next_offset 32
            0x10, 0x00, // count 16
            0x05, 0x80, // devices 0, 2 and 15
        ];
        let late2025 = [
            0x03, 0x02, 0x00, 0x00, 0x09, 0x00, 16, 0x00, // header: bus response
            0x00, 0x00, // offset 0
            0x10, 0x00, // count 16
            0x20, 0x00, // next_offset 32
            0x05, 0x80, // devices 0, 2 and 15
        ];
        let frame = Frame::bus(
            9,
            Message::Bus(BusMessage::GetDevicesResponse {
                offset: 0,
                next_offset: 32,
                bitmap: &[0x05, 0x80],
            }),
        );
        let late = Codec {
            layout: Layout::Late2025,
            ..SHM
        };
        assert!(encode_matches(&SHM, &frame, &revision1));
        assert!(decode_matches(&SHM, &frame, &revision1));
        assert!(encode_matches(&late, &frame, &late2025));
        assert!(decode_matches(&late, &frame, &late2025));
    }

    #[test]
    fn shm_version() {
        let terms = VersionTerms {
            revision: 1,
            max_msg_size: 264,
            features: 1,
        };
        let request = [
            0x02, 0x80, 0x00, 0x00, 0x00, 0x00, 24, 0x00, // header: bus request
            0x01, 0x00, 0x00, 0x00, // revision 1
            0x08, 0x01, 0x00, 0x00, // max_msg_size 264
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // features
        ];
        let frame = Frame::bus(0, Message::Shm(ShmBusMessage::VersionRequest(terms)));
        assert!(encode_matches(&SHM, &frame, &request));
        assert!(decode_matches(&SHM, &frame, &request));

        let response = [
            0x03, 0x80, 0x00, 0x00, 0x00, 0x00, 28, 0x00, // header: bus response
            0x01, 0x00, 0x00, 0x00, // revision 1
            0x08, 0x01, 0x00, 0x00, // max_msg_size 264
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // features
            0x03, 0x00, 0x00, 0x00, // status: already negotiated
        ];
        let frame = Frame::bus(
            0,
            Message::Shm(ShmBusMessage::VersionResponse {
                terms,
                status: VersionStatus::AlreadyNegotiated,
            }),
        );
        assert!(encode_matches(&SHM, &frame, &response));
        assert!(decode_matches(&SHM, &frame, &response));
    }

    #[test]
    fn malformed_messages_are_rejected() {
        assert_eq!(
            SHM.decode(&[0x00, 0x02, 0x00]),
            Err(DecodeError::TooShort {
                needed: 8,
                actual: 3
            })
        );
        assert_eq!(
            SHM.decode(&[0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00]),
            Err(DecodeError::SizeMismatch {
                msg_size: 9,
                actual: 8
            })
        );
        assert_eq!(
            SHM.decode(&[0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00]),
            Err(DecodeError::BadType { msg_type: 0x04 })
        );
        assert_eq!(
            SHM.decode(&[0x00, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00]),
            Err(DecodeError::UnknownId {
                msg_type: 0,
                msg_id: 0x0d
            })
        );
        // EVENT_USED with the response bit: events have no response.
        assert_eq!(
            SHM.decode(&[0x01, 0x42, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00]),
            Err(DecodeError::NoResponseForId {
                msg_type: 1,
                msg_id: 0x42
            })
        );
        // GET_DEVICE_STATUS response with a 4-byte status and one stray byte.
        assert_eq!(
            SHM.decode(&[0x01, 0x07, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x0f, 0, 0, 0, 0xff]),
            Err(DecodeError::TrailingBytes {
                expected: 12,
                actual: 13
            })
        );
        let small = Codec {
            max_msg_size: 52,
            ..SHM
        };
        let mut big = [0u8; 60];
        big[0] = 0x01; // GET_CONFIG response
        big[1] = 0x05;
        big[6] = 60;
        assert_eq!(
            small.decode(&big),
            Err(DecodeError::TooLarge {
                msg_size: 60,
                max: 52
            })
        );
    }

    #[test]
    fn encode_never_overruns() {
        let frame = Frame::transport(0, TransportMessage::GetVqueueRequest { index: 3 });
        let mut out = [0xeeu8; 16];
        let (head, tail) = out.split_at_mut(11);
        assert_eq!(
            SHM.encode(&frame, head),
            Err(EncodeError::BufferTooSmall {
                needed: 12,
                available: 11
            })
        );
        assert!(head.iter().all(|&b| b == 0xee));
        assert!(tail.iter().all(|&b| b == 0xee));
    }

    #[test]
    fn config_chunks_cover_the_range() {
        // 300 bytes at offset 4 with 264-byte messages: 244 bytes fit, and inner chunk
        // boundaries fall on multiples of 8.
        let chunks = config_chunks(4, 300, 264);
        assert!(chunks.is_ok());
        if let Ok(mut chunks) = chunks {
            let first = chunks.next();
            assert!(first.is_some());
            if let Some(c) = first {
                assert_eq!(
                    (c.offset, c.length, c.buf.start, c.buf.end),
                    (4, 244, 0, 244)
                );
            }
            let second = chunks.next();
            assert!(second.is_some());
            if let Some(c) = second {
                assert_eq!(
                    (c.offset, c.length, c.buf.start, c.buf.end),
                    (248, 56, 244, 300)
                );
            }
            assert!(chunks.next().is_none());
        }
    }
}

/// The shm region layout against the golden values, with the checks the host tests run.
#[kernel::prelude::kunit_tests(virtio_msg_shm_layout)]
mod shm_layout_tests {
    use super::shm_layout_golden as golden;

    #[test]
    fn layout_matches_the_tables() {
        assert!(golden::layout_mismatch().is_none());
    }

    #[test]
    fn golden_headers_parse_as_expected() {
        assert!(golden::parse_mismatch().is_none());
    }
}
