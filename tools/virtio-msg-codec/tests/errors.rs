//! Malformed input and unencodable messages: each is refused with the precise error.

use virtio_msg_codec::bus::BusMessage;
use virtio_msg_codec::ffa::FfaBusMessage;
use virtio_msg_codec::shm::ShmBusMessage;
use virtio_msg_codec::transport::{DeviceInfo, TransportMessage as T};
use virtio_msg_codec::{
    frame, set_token, BusKind, Codec, DecodeError, EncodeError, Frame, Header, Layout, Message,
    MAX_MSG_SIZE,
};

const SHM: Codec = Codec::new(BusKind::SharedMemory);
const FFA: Codec = Codec::new(BusKind::Ffa);
const GENERIC: Codec = Codec::new(BusKind::Generic);
const LATE: Codec = Codec {
    layout: Layout::Late2025,
    ..SHM
};

/// Builds a message: a header with `msg_type`, `msg_id`, dev_num 0, token 0 and a
/// `msg_size` matching the result, followed by `payload`.
fn msg(msg_type: u8, msg_id: u8, payload: &[u8]) -> Vec<u8> {
    let size = u16::try_from(8 + payload.len()).unwrap();
    let mut m = vec![msg_type, msg_id, 0, 0, 0, 0];
    m.extend_from_slice(&size.to_le_bytes());
    m.extend_from_slice(payload);
    m
}

fn field(field: &'static str) -> DecodeError {
    DecodeError::FieldOutOfRange { field }
}

#[test]
fn shorter_than_a_header() {
    let full = msg(0, 0x02, &[]);
    for len in 0..8 {
        assert_eq!(
            SHM.decode(&full[..len]),
            Err(DecodeError::TooShort {
                needed: 8,
                actual: len
            })
        );
        assert_eq!(
            Header::peek(&full[..len]),
            Err(DecodeError::TooShort {
                needed: 8,
                actual: len
            })
        );
    }
}

#[test]
fn msg_size_must_match_the_buffer() {
    let mut m = msg(0, 0x07, &[]);
    m.push(0);
    assert_eq!(
        SHM.decode(&m),
        Err(DecodeError::SizeMismatch {
            msg_size: 8,
            actual: 9
        })
    );
    let mut m = msg(1, 0x07, &[0; 4]);
    m.pop();
    assert_eq!(
        SHM.decode(&m),
        Err(DecodeError::SizeMismatch {
            msg_size: 12,
            actual: 11
        })
    );
}

#[test]
fn frame_cuts_to_msg_size() {
    let mut slot = msg(1, 0x07, &[0x0f, 0, 0, 0]);
    let len = slot.len();
    slot.resize(64, 0xee);
    assert_eq!(frame(&slot), Ok(&slot[..len]));
    assert!(SHM.decode(frame(&slot).unwrap()).is_ok());

    // msg_size below the header size or past the buffer is refused.
    let mut bad = slot.clone();
    bad[6] = 7;
    assert_eq!(
        frame(&bad),
        Err(DecodeError::SizeMismatch {
            msg_size: 7,
            actual: 64
        })
    );
    bad[6] = 65;
    assert_eq!(
        frame(&bad),
        Err(DecodeError::SizeMismatch {
            msg_size: 65,
            actual: 64
        })
    );
    assert_eq!(
        frame(&bad[..3]),
        Err(DecodeError::TooShort {
            needed: 8,
            actual: 3
        })
    );
}

#[test]
fn larger_than_the_negotiated_maximum() {
    let small = Codec {
        max_msg_size: 52,
        ..SHM
    };
    // GET_CONFIG response with 33 data bytes: 53 bytes, one too many.
    let mut payload = vec![0, 0, 0, 0, 0, 0, 0, 0, 33, 0, 0, 0];
    payload.extend_from_slice(&[0xab; 33]);
    let m = msg(1, 0x05, &payload);
    assert_eq!(m.len(), 53);
    assert_eq!(
        small.decode(&m),
        Err(DecodeError::TooLarge {
            msg_size: 53,
            max: 52
        })
    );
    assert!(SHM.decode(&m).is_ok());

    let frame = SHM.decode(&m).unwrap();
    let mut out = [0u8; 128];
    assert_eq!(
        small.encode(&frame, &mut out),
        Err(EncodeError::TooLarge { size: 53, max: 52 })
    );
    assert!(out.iter().all(|&b| b == 0), "nothing may be written");
}

#[test]
fn reserved_type_bits() {
    for bit in 2..8 {
        let msg_type = 1u8 << bit;
        assert_eq!(
            SHM.decode(&msg(msg_type, 0x02, &[])),
            Err(DecodeError::BadType { msg_type })
        );
    }
}

#[test]
fn unknown_ids() {
    let known_transport = [2u8, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x40, 0x41, 0x42];
    for id in (0..=255u8).filter(|id| !known_transport.contains(id)) {
        for msg_type in [0, 1] {
            assert_eq!(
                SHM.decode(&msg(msg_type, id, &[])),
                Err(DecodeError::UnknownId {
                    msg_type,
                    msg_id: id
                }),
                "transport id {id:#x}"
            );
        }
    }
    // Generic bus ids below 0x80 other than GET_DEVICES, PING, EVENT_DEVICE.
    for id in (0..0x80u8).filter(|id| ![2, 3, 0x40].contains(id)) {
        assert_eq!(
            SHM.decode(&msg(2, id, &[])),
            Err(DecodeError::UnknownId {
                msg_type: 2,
                msg_id: id
            })
        );
    }
    // Bus-specific ids depend on the bus: none for a generic codec.
    assert_eq!(
        GENERIC.decode(&msg(2, 0x81, &[])),
        Err(DecodeError::UnknownId {
            msg_type: 2,
            msg_id: 0x81
        })
    );
    for id in 0x82..=0xffu8 {
        assert_eq!(
            SHM.decode(&msg(2, id, &[])),
            Err(DecodeError::UnknownId {
                msg_type: 2,
                msg_id: id
            })
        );
    }
    for id in (0x88..=0xffu8).filter(|&id| id != 0xc0) {
        assert_eq!(
            FFA.decode(&msg(2, id, &[])),
            Err(DecodeError::UnknownId {
                msg_type: 2,
                msg_id: id
            })
        );
    }
}

#[test]
fn events_have_no_response() {
    for id in [0x40u8, 0x41, 0x42] {
        assert_eq!(
            SHM.decode(&msg(1, id, &[0; 16])),
            Err(DecodeError::NoResponseForId {
                msg_type: 1,
                msg_id: id
            })
        );
    }
    assert_eq!(
        SHM.decode(&msg(3, 0x40, &[7, 0, 1, 0])),
        Err(DecodeError::NoResponseForId {
            msg_type: 3,
            msg_id: 0x40
        })
    );
    assert_eq!(
        FFA.decode(&msg(3, 0xc0, &[1, 0])),
        Err(DecodeError::NoResponseForId {
            msg_type: 3,
            msg_id: 0xc0
        })
    );
}

#[test]
fn ffa_error_is_response_only() {
    assert_eq!(
        FFA.decode(&msg(2, 0x87, &[0x85, 0])),
        Err(DecodeError::NoRequestForId {
            msg_type: 2,
            msg_id: 0x87
        })
    );
}

#[test]
fn fixed_payloads_must_be_exact() {
    // GET_DEVICE_STATUS response: status is 4 bytes.
    assert_eq!(
        SHM.decode(&msg(1, 0x07, &[0x0f, 0])),
        Err(DecodeError::TooShort {
            needed: 12,
            actual: 10
        })
    );
    assert_eq!(
        SHM.decode(&msg(1, 0x07, &[0x0f, 0, 0, 0, 0])),
        Err(DecodeError::TrailingBytes {
            expected: 12,
            actual: 13
        })
    );
    // Empty payloads take no bytes.
    assert_eq!(
        SHM.decode(&msg(0, 0x02, &[0])),
        Err(DecodeError::TrailingBytes {
            expected: 8,
            actual: 9
        })
    );
    // GET_DEVICE_INFO response: 44 bytes in revision 1, 24 in the late-2025 layout.
    assert_eq!(
        SHM.decode(&msg(1, 0x02, &[0; 24])),
        Err(DecodeError::TooShort {
            needed: 52,
            actual: 32
        })
    );
    assert_eq!(
        LATE.decode(&msg(1, 0x02, &[0; 44])),
        Err(DecodeError::TrailingBytes {
            expected: 32,
            actual: 52
        })
    );
}

#[test]
fn length_fields_past_the_message() {
    // GET_CONFIG response, SET_CONFIG request: length 5 with 4 data bytes.
    let payload = [0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(SHM.decode(&msg(1, 0x05, &payload)), Err(field("length")));
    assert_eq!(SHM.decode(&msg(0, 0x06, &payload)), Err(field("length")));
    // The same with length 3 leaves a byte over.
    let payload = [0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(
        SHM.decode(&msg(1, 0x05, &payload)),
        Err(DecodeError::TrailingBytes {
            expected: 23,
            actual: 24
        })
    );
    // EVENT_CONFIG: the length is at payload offset 12.
    let payload = [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1,
    ];
    assert_eq!(SHM.decode(&msg(0, 0x40, &payload)), Err(field("length")));
    // Feature blocks: num_blocks 3 with 2 blocks, and a count whose byte size overflows.
    let payload = [0, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0];
    assert_eq!(
        SHM.decode(&msg(1, 0x03, &payload)),
        Err(field("num_blocks"))
    );
    assert_eq!(
        SHM.decode(&msg(0, 0x04, &payload)),
        Err(field("num_blocks"))
    );
    let payload = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(
        SHM.decode(&msg(1, 0x03, &payload)),
        Err(field("num_blocks"))
    );
}

#[test]
fn get_devices_count_rules() {
    // Not a multiple of 8.
    assert_eq!(
        SHM.decode(&msg(2, 0x02, &[0, 0, 12, 0])),
        Err(field("count"))
    );
    // The window runs past device number 65535.
    assert_eq!(
        SHM.decode(&msg(2, 0x02, &[0xf8, 0xff, 16, 0])),
        Err(field("count"))
    );
    assert!(SHM.decode(&msg(2, 0x02, &[0xf8, 0xff, 8, 0])).is_ok());
    // Response: bitmap shorter than count / 8.
    assert_eq!(
        SHM.decode(&msg(3, 0x02, &[0, 0, 0, 0, 16, 0, 0xff])),
        Err(field("count"))
    );
    assert_eq!(
        SHM.decode(&msg(3, 0x02, &[0, 0, 0, 0, 12, 0, 0xff, 0xff])),
        Err(field("count"))
    );
    // Late-2025 order: the second field is the count.
    assert_eq!(
        LATE.decode(&msg(3, 0x02, &[0, 0, 16, 0, 0, 0, 0xff])),
        Err(field("count"))
    );
    assert_eq!(
        LATE.decode(&msg(3, 0x02, &[0, 0, 8, 0, 0, 0, 0xff])),
        Ok(Frame::bus(
            0,
            Message::Bus(BusMessage::GetDevicesResponse {
                offset: 0,
                next_offset: 0,
                bitmap: &[0xff]
            })
        ))
    );
}

#[test]
fn enumerated_values_out_of_range() {
    // EVENT_DEVICE state 0 and 3.
    for state in [0u8, 3] {
        assert_eq!(
            SHM.decode(&msg(2, 0x40, &[1, 0, state, 0])),
            Err(field("state"))
        );
    }
    // Shared-memory VERSION response status 4.
    let mut payload = vec![0; 16];
    payload.extend_from_slice(&[4, 0, 0, 0]);
    assert_eq!(SHM.decode(&msg(3, 0x80, &payload)), Err(field("status")));
    // FF-A AREA_SHARE result 3, EVENT_CONFIGURE method 4.
    assert_eq!(
        FFA.decode(&msg(3, 0x81, &[1, 0, 3, 0])),
        Err(field("result"))
    );
    assert_eq!(
        FFA.decode(&msg(2, 0x85, &[4, 0, 0, 0])),
        Err(field("method"))
    );
    // ALP1 VERSION with a protocol word other than 0x00010000.
    assert_eq!(
        FFA.decode(&msg(2, 0x80, &[0, 0, 2, 0, 1, 0, 0, 0])),
        Err(field("proto_version"))
    );
    // Late-2025 feature bit count that is not a whole number of blocks.
    let mut info = vec![0; 24];
    info[8] = 33;
    assert_eq!(
        LATE.decode(&msg(1, 0x02, &info)),
        Err(field("num_feature_bits"))
    );
}

#[test]
fn reserved_payload_fields_are_ignored() {
    // SET_VQUEUE reserved word, GET_SHM reserved word, EVENT_CONFIGURE reserved byte: a
    // later revision may use them, so receivers must not refuse them.
    let mut setup = vec![0u8; 40];
    setup[12] = 0xff;
    assert!(SHM.decode(&msg(0, 0x0a, &setup)).is_ok());
    let mut shm = vec![0u8; 24];
    shm[4] = 0xff;
    assert!(SHM.decode(&msg(1, 0x0c, &shm)).is_ok());
    assert!(FFA.decode(&msg(2, 0x85, &[0, 0xff, 0, 0])).is_ok());
}

#[test]
fn bus_messages_carry_dev_num_zero() {
    let mut m = msg(2, 0x03, &[1, 2, 3, 4]);
    m[2] = 1;
    assert_eq!(SHM.decode(&m), Err(field("dev_num")));

    let frame = Frame {
        dev_num: 1,
        token: 0,
        message: Message::Bus(BusMessage::PingRequest { data: 0 }),
    };
    assert_eq!(
        SHM.encode(&frame, &mut [0; 64]),
        Err(EncodeError::FieldOutOfRange { field: "dev_num" })
    );
    // Transport messages may use any device number, 0 included.
    let m = msg(0, 0x07, &[]);
    assert!(SHM.decode(&m).is_ok());
}

#[test]
fn encode_refuses_a_short_buffer_without_writing() {
    let frame = Frame::transport(
        1,
        T::GetConfigResponse {
            generation: 0,
            offset: 0,
            data: &[1, 2, 3],
        },
    );
    for len in 0..23 {
        let mut out = vec![0x5a; len];
        assert_eq!(
            SHM.encode(&frame, &mut out),
            Err(EncodeError::BufferTooSmall {
                needed: 23,
                available: len
            })
        );
        assert!(out.iter().all(|&b| b == 0x5a), "buffer of {len} touched");
    }
    let mut out = vec![0x5a; 30];
    assert_eq!(SHM.encode(&frame, &mut out), Ok(23));
    assert!(
        out[23..].iter().all(|&b| b == 0x5a),
        "wrote past the message"
    );
}

#[test]
fn encode_refuses_what_the_layout_cannot_carry() {
    let mut out = [0u8; 512];
    let bitmap = vec![0u8; 8192]; // 65536 devices: count does not fit 16 bits
    let too_long = Frame::bus(
        0,
        Message::Bus(BusMessage::GetDevicesResponse {
            offset: 0,
            next_offset: 0,
            bitmap: &bitmap,
        }),
    );
    assert_eq!(
        SHM.encode(&too_long, &mut out),
        Err(EncodeError::FieldOutOfRange { field: "count" })
    );
    let past_end = Frame::bus(
        0,
        Message::Bus(BusMessage::GetDevicesResponse {
            offset: 0xfff8,
            next_offset: 0,
            bitmap: &[0, 0],
        }),
    );
    assert_eq!(
        SHM.encode(&past_end, &mut out),
        Err(EncodeError::FieldOutOfRange { field: "count" })
    );
    let odd_count = Frame::bus(
        0,
        Message::Bus(BusMessage::GetDevicesRequest {
            offset: 0,
            count: 7,
        }),
    );
    assert_eq!(
        SHM.encode(&odd_count, &mut out),
        Err(EncodeError::FieldOutOfRange { field: "count" })
    );

    // What the late-2025 GET_DEVICE_INFO cannot express.
    let base = DeviceInfo::default();
    for (info, name) in [
        (
            DeviceInfo {
                device_uuid: [1; 16],
                ..base
            },
            "device_uuid",
        ),
        (
            DeviceInfo {
                num_feature_blocks: u32::MAX / 32 + 1,
                ..base
            },
            "num_feature_blocks",
        ),
        (
            DeviceInfo {
                admin_vq_start: 0x1_0000,
                ..base
            },
            "admin_vq_start",
        ),
        (
            DeviceInfo {
                admin_vq_count: 0x1_0000,
                ..base
            },
            "admin_vq_count",
        ),
    ] {
        let frame = Frame::transport(0, T::GetDeviceInfoResponse(info));
        assert_eq!(
            LATE.encode(&frame, &mut out),
            Err(EncodeError::FieldOutOfRange { field: name })
        );
        assert!(SHM.encode(&frame, &mut out).is_ok());
    }
}

#[test]
fn encode_refuses_another_bus_messages() {
    let mut out = [0u8; 64];
    let shm = Frame::bus(0, Message::Shm(ShmBusMessage::ResetRequest));
    let ffa = Frame::bus(0, Message::Ffa(FfaBusMessage::ResetRequest));
    assert_eq!(FFA.encode(&shm, &mut out), Err(EncodeError::WrongBus));
    assert_eq!(GENERIC.encode(&shm, &mut out), Err(EncodeError::WrongBus));
    assert_eq!(SHM.encode(&ffa, &mut out), Err(EncodeError::WrongBus));
    assert_eq!(SHM.encode(&shm, &mut out), Ok(8));
    assert_eq!(FFA.encode(&ffa, &mut out), Ok(8));
}

#[test]
fn the_largest_message_fits_and_one_more_byte_does_not() {
    let mut out = vec![0u8; 70_000];
    let data = vec![0x11u8; usize::from(MAX_MSG_SIZE) - 20];
    let frame = Frame::transport(
        0,
        T::SetConfigRequest {
            generation: 0,
            offset: 0,
            data: &data,
        },
    );
    assert_eq!(SHM.encode(&frame, &mut out), Ok(65535));
    assert_eq!(SHM.decode(&out[..65535]), Ok(frame));

    let data = vec![0x11u8; usize::from(MAX_MSG_SIZE) - 19];
    let frame = Frame::transport(
        0,
        T::SetConfigRequest {
            generation: 0,
            offset: 0,
            data: &data,
        },
    );
    assert_eq!(
        SHM.encode(&frame, &mut out),
        Err(EncodeError::TooLarge {
            size: 65536,
            max: MAX_MSG_SIZE
        })
    );
}

#[test]
fn set_token_patches_in_place() {
    let mut m = msg(0, 0x07, &[]);
    set_token(&mut m, 0xbeef).unwrap();
    assert_eq!(m, [0, 0x07, 0, 0, 0xef, 0xbe, 8, 0]);
    assert_eq!(SHM.decode(&m).unwrap().token, 0xbeef);
    assert_eq!(
        set_token(&mut m[..7], 1),
        Err(DecodeError::TooShort {
            needed: 8,
            actual: 7
        })
    );
}
