//! Property tests: round trips over arbitrary messages, no panic on arbitrary bytes, and
//! the chunk helper covering exactly the requested range.

use proptest::prelude::*;
use virtio_msg_codec::bus::{BusMessage, DeviceState};
use virtio_msg_codec::chunk::{config_chunks, config_data_capacity};
use virtio_msg_codec::ffa::{Area, AreaResult, EventMethod, FfaBusMessage, VersionInfo};
use virtio_msg_codec::shm::{ShmBusMessage, VersionStatus, VersionTerms};
use virtio_msg_codec::transport::{
    DeviceInfo, ShmRegion, TransportMessage as T, VqueueInfo, VqueueSetup,
};
use virtio_msg_codec::{
    frame, BusKind, Codec, DecodeError, EncodeError, Frame, Layout, Message, MAX_MSG_SIZE,
    MIN_MSG_SIZE,
};
use zerocopy::little_endian::U32;

/// Number of message variants [`build`] can produce.
const VARIANTS: u8 = 55;

/// Random raw material for one message; [`build`] turns it into a frame that borrows the
/// variable-length parts.
#[derive(Debug, Clone)]
struct Parts {
    variant: u8,
    dev_num: u16,
    token: u16,
    w: [u32; 6],
    q: [u64; 3],
    h: [u16; 3],
    uuid: [u8; 16],
    data: Vec<u8>,
    blocks: Vec<U32>,
    pick: u8,
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        0..VARIANTS,
        any::<u16>(),
        any::<u16>(),
        any::<[u32; 6]>(),
        any::<[u64; 3]>(),
        any::<[u16; 3]>(),
        any::<[u8; 16]>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(any::<u32>().prop_map(U32::new), 0..40),
        any::<u8>(),
    )
        .prop_map(
            |(variant, dev_num, token, w, q, h, uuid, data, blocks, pick)| Parts {
                variant,
                dev_num,
                token,
                w,
                q,
                h,
                uuid,
                data,
                blocks,
                pick,
            },
        )
}

/// Returns the frame `p` describes, valid for `layout`, and the bus kind it needs.
fn build(p: &Parts, layout: Layout) -> (Frame<'_>, BusKind) {
    let [w0, w1, w2, w3, w4, w5] = p.w;
    let [q0, q1, q2] = p.q;
    let [h0, h1, h2] = p.h;
    let data = p.data.as_slice();
    let blocks = p.blocks.as_slice();
    let late = layout == Layout::Late2025;
    let device_info = DeviceInfo {
        device_id: w0,
        vendor_id: w1,
        // The late-2025 layout has no UUID, 16-bit admin fields and counts feature bits.
        device_uuid: if late { [0; 16] } else { p.uuid },
        num_feature_blocks: if late { w2 / 32 } else { w2 },
        config_size: w3,
        max_virtqueues: w4,
        admin_vq_start: if late { u32::from(h0) } else { w5 },
        admin_vq_count: if late { u32::from(h1) } else { w0 ^ w5 },
    };
    // A GET_DEVICES window: offset and an 8-aligned count that stay within 65536.
    let window_bytes = usize::from(p.pick % 9);
    let window_offset = h2.min(0xffff - 8 * 8) & !7;
    let bitmap = &data[..window_bytes.min(data.len())];
    let transport = |m| (Frame::transport(p.dev_num, m), BusKind::Generic);
    let bus = |m, kind| (Frame::bus(p.token, m), kind);
    let t = |m| {
        (
            Frame {
                token: p.token,
                ..Frame::transport(p.dev_num, m)
            },
            BusKind::Generic,
        )
    };
    let shm = |m| bus(Message::Shm(m), BusKind::SharedMemory);
    let ffa = |m| bus(Message::Ffa(m), BusKind::Ffa);
    let generic = |m| bus(Message::Bus(m), BusKind::Generic);
    let area = Area {
        area_id: h0,
        handle: q0,
        tag: q1,
        page_count: w0,
        attributes: w1,
    };
    let area_result =
        [AreaResult::Ok, AreaResult::Error, AreaResult::Busy][usize::from(p.pick % 3)];
    let method = [
        EventMethod::Poll,
        EventMethod::Notification,
        EventMethod::Indirect,
        EventMethod::Fifo,
    ][usize::from(p.pick % 4)];
    let status = [
        VersionStatus::Accepted,
        VersionStatus::RevisionUnsupported,
        VersionStatus::SizeUnsupported,
        VersionStatus::AlreadyNegotiated,
    ][usize::from(p.pick % 4)];
    let terms = VersionTerms {
        revision: w0,
        max_msg_size: w1,
        features: q0,
    };
    match p.variant {
        0 => transport(T::GetDeviceInfoRequest),
        1 => t(T::GetDeviceInfoResponse(device_info)),
        2 => transport(T::GetDeviceFeaturesRequest {
            block_index: w0,
            num_blocks: w1,
        }),
        3 => t(T::GetDeviceFeaturesResponse {
            block_index: w0,
            features: blocks,
        }),
        4 => transport(T::SetDriverFeaturesRequest {
            block_index: w0,
            features: blocks,
        }),
        5 => t(T::SetDriverFeaturesResponse),
        6 => transport(T::GetConfigRequest {
            offset: w0,
            length: w1,
        }),
        7 => t(T::GetConfigResponse {
            generation: w0,
            offset: w1,
            data,
        }),
        8 => transport(T::SetConfigRequest {
            generation: w0,
            offset: w1,
            data,
        }),
        9 => t(T::SetConfigResponse {
            generation: w0,
            offset: w1,
            length: w2,
        }),
        10 => transport(T::GetDeviceStatusRequest),
        11 => t(T::GetDeviceStatusResponse { status: w0 }),
        12 => transport(T::SetDeviceStatusRequest { status: w0 }),
        13 => t(T::SetDeviceStatusResponse { status: w0 }),
        14 => transport(T::GetVqueueRequest { index: w0 }),
        15 => t(T::GetVqueueResponse(VqueueInfo {
            index: w0,
            max_size: w1,
            cur_size: w2,
            flags: w3,
            desc_addr: q0,
            driver_addr: q1,
            device_addr: q2,
        })),
        16 => transport(T::SetVqueueRequest(VqueueSetup {
            index: w0,
            flags: w1,
            size: w2,
            desc_addr: q0,
            driver_addr: q1,
            device_addr: q2,
        })),
        17 => t(T::SetVqueueResponse),
        18 => transport(T::ResetVqueueRequest { index: w0 }),
        19 => t(T::ResetVqueueResponse),
        20 => transport(T::GetShmRequest { shmid: w0 }),
        21 => t(T::GetShmResponse(ShmRegion {
            shmid: w0,
            length: q0,
            address: q1,
        })),
        22 => transport(T::EventConfig {
            device_status: w0,
            generation: w1,
            offset: w2,
            data,
        }),
        23 => transport(T::EventAvail {
            vq_index: w0,
            next_offset: w1,
        }),
        24 => transport(T::EventUsed { vq_index: w0 }),
        25 => generic(BusMessage::GetDevicesRequest {
            offset: window_offset,
            count: (h1 % 9) * 8,
        }),
        26 => generic(BusMessage::GetDevicesResponse {
            offset: window_offset,
            next_offset: h1,
            bitmap,
        }),
        27 => generic(BusMessage::PingRequest { data: w0 }),
        28 => generic(BusMessage::PingResponse { data: w0 }),
        29 => generic(BusMessage::EventDevice {
            dev_num: h0,
            state: if p.pick % 2 == 0 {
                DeviceState::Added
            } else {
                DeviceState::Removed
            },
        }),
        30 => shm(ShmBusMessage::VersionRequest(terms)),
        31 => shm(ShmBusMessage::VersionResponse { terms, status }),
        32 => shm(ShmBusMessage::ResetRequest),
        33 => shm(ShmBusMessage::ResetResponse { status: w0 }),
        34 => ffa(FfaBusMessage::VersionRequest {
            bus_version: w0,
            transport_revision: w1,
            ffa_version: w2,
        }),
        35 => ffa(FfaBusMessage::VersionResponse(VersionInfo {
            bus_version: w0,
            transport_revision: w1,
            ffa_version: w2,
            transport_features: q0,
            bus_features: q1,
            max_areas: h0,
        })),
        36 => ffa(FfaBusMessage::VersionAlp1Request {
            transport_revision: w0,
        }),
        37 => ffa(FfaBusMessage::VersionAlp1Response {
            transport_revision: w0,
        }),
        38 => ffa(FfaBusMessage::AreaShareRequest(area)),
        39 => ffa(FfaBusMessage::AreaShareResponse {
            area_id: h0,
            result: area_result,
        }),
        40 => ffa(FfaBusMessage::AreaUnshareRequest(area)),
        41 => ffa(FfaBusMessage::AreaUnshareResponse {
            area_id: h0,
            result: area_result,
        }),
        42 => ffa(FfaBusMessage::ResetRequest),
        43 => ffa(FfaBusMessage::ResetResponse { result: h0 }),
        44 => ffa(FfaBusMessage::EventPollRequest),
        45 => ffa(FfaBusMessage::EventPollResponse),
        46 => ffa(FfaBusMessage::EventConfigureRequest {
            method,
            notification_id: h0,
        }),
        47 => ffa(FfaBusMessage::EventConfigureResponse),
        48 => ffa(FfaBusMessage::FifoConfigureRequest {
            handle: q0,
            page_count: h0,
            notification_id: h1,
        }),
        49 => ffa(FfaBusMessage::FifoConfigureResponse),
        50 => ffa(FfaBusMessage::Error { msg_id: h0 }),
        51 => ffa(FfaBusMessage::AreaRelease { area_id: h0 }),
        // The same generic bus messages on the other buses.
        52 => bus(
            Message::Bus(BusMessage::PingRequest { data: w0 }),
            BusKind::SharedMemory,
        ),
        53 => bus(
            Message::Bus(BusMessage::PingResponse { data: w0 }),
            BusKind::Ffa,
        ),
        _ => t(T::EventUsed { vq_index: w5 }),
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::Revision1), Just(Layout::Late2025)]
}

fn codec() -> impl Strategy<Value = Codec> {
    (
        prop_oneof![
            Just(BusKind::Generic),
            Just(BusKind::SharedMemory),
            Just(BusKind::Ffa)
        ],
        layout(),
        prop_oneof![
            Just(MAX_MSG_SIZE),
            Just(264u16),
            MIN_MSG_SIZE..=MAX_MSG_SIZE
        ],
    )
        .prop_map(|(bus, layout, max_msg_size)| Codec {
            bus,
            layout,
            max_msg_size,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// decode(encode(m)) == m for every message, in both layouts.
    #[test]
    fn round_trip(p in parts(), layout in layout()) {
        let (frame, bus) = build(&p, layout);
        let codec = Codec { bus, layout, max_msg_size: MAX_MSG_SIZE };
        let mut out = vec![0u8; 70_000];
        let n = codec.encode(&frame, &mut out).expect("encodes");
        prop_assert_eq!(usize::from(u16::from_le_bytes([out[6], out[7]])), n);
        prop_assert_eq!(codec.decode(&out[..n]), Ok(frame));
        // The header agrees with the message's own description of itself.
        prop_assert_eq!(out[0], frame.message.msg_type());
        prop_assert_eq!(out[1], frame.message.msg_id());
    }

    /// Encoding never writes past the buffer or the maximum size, and fails exactly when
    /// the message does not fit one of them.
    #[test]
    fn encode_respects_both_limits(p in parts(), len in 0usize..400, max in 0u16..400) {
        let (frame, bus) = build(&p, Layout::Revision1);
        let full = Codec::new(bus);
        let size = full.encode(&frame, &mut vec![0u8; 70_000]).expect("encodes");
        let codec = Codec { max_msg_size: max, ..full };
        let mut out = vec![0xa5u8; len + 16];
        let result = codec.encode(&frame, &mut out[..len]);
        if size > usize::from(max) {
            prop_assert_eq!(result, Err(EncodeError::TooLarge { size, max }));
        } else if size > len {
            prop_assert_eq!(result, Err(EncodeError::BufferTooSmall { needed: size, available: len }));
        } else {
            prop_assert_eq!(result, Ok(size));
        }
        let written = if result.is_ok() { size } else { 0 };
        prop_assert!(out[written..].iter().all(|&b| b == 0xa5), "wrote past {} bytes", written);
    }

    /// Arbitrary bytes never panic; whatever decodes re-encodes to the same size and
    /// decodes again to the same frame.
    #[test]
    fn arbitrary_bytes(codec in codec(), bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        check_canonical(&codec, &bytes)?;
    }

    /// Like `arbitrary_bytes`, but with a plausible header so the payload decoders are
    /// reached far more often.
    #[test]
    fn arbitrary_payloads(
        codec in codec(),
        msg_type in 0u8..4,
        msg_id in prop_oneof![0u8..0x0e, 0x40u8..0x43, 0x80u8..0x88, Just(0xc0u8)],
        dev_num in prop_oneof![Just(0u16), any::<u16>()],
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let size = u16::try_from(8 + payload.len()).unwrap();
        let mut bytes = vec![msg_type, msg_id];
        bytes.extend_from_slice(&dev_num.to_le_bytes());
        bytes.extend_from_slice(&[0x34, 0x12]);
        bytes.extend_from_slice(&size.to_le_bytes());
        bytes.extend_from_slice(&payload);
        check_canonical(&codec, &bytes)?;
    }

    /// Any message followed by unused slot bytes is recovered by `frame`.
    #[test]
    fn frame_recovers_the_message(p in parts(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let (frame_in, bus) = build(&p, Layout::Revision1);
        let codec = Codec::new(bus);
        let mut out = vec![0u8; 70_000];
        let n = codec.encode(&frame_in, &mut out).unwrap();
        let mut slot = out[..n].to_vec();
        slot.extend_from_slice(&tail);
        let msg = frame(&slot).unwrap();
        prop_assert_eq!(msg.len(), n);
        prop_assert_eq!(codec.decode(msg), Ok(frame_in));
    }

    /// Chunks cover exactly [offset, offset + length), in order, each fitting one message,
    /// with inner boundaries on multiples of 8.
    #[test]
    fn chunks_cover_the_range(
        offset in prop_oneof![any::<u32>(), 0u32..1024],
        length in 0u32..20_000,
        max in MIN_MSG_SIZE..=2048u16,
    ) {
        let chunks = match config_chunks(offset, length, max) {
            Ok(chunks) => chunks,
            Err(_) => {
                prop_assert!(u64::from(offset) + u64::from(length) > 1 << 32);
                return Ok(());
            }
        };
        let codec = Codec { max_msg_size: max, ..Codec::new(BusKind::Generic) };
        let end = u64::from(offset) + u64::from(length);
        let mut next = u64::from(offset);
        let mut buf_next = 0usize;
        let data = vec![0u8; length as usize];
        for chunk in chunks {
            prop_assert_eq!(u64::from(chunk.offset), next);
            prop_assert!(chunk.length > 0);
            prop_assert!(chunk.length as usize <= config_data_capacity(max));
            prop_assert_eq!(chunk.buf.start, buf_next);
            prop_assert_eq!(chunk.buf.len(), chunk.length as usize);
            next += u64::from(chunk.length);
            buf_next = chunk.buf.end;
            if next != end {
                prop_assert_eq!(next % 8, 0, "inner boundary {} not aligned", next);
            }
            // Both messages that carry a chunk fit the maximum size.
            let mut out = vec![0u8; usize::from(max)];
            let read = Frame::transport(0, T::GetConfigResponse {
                generation: 0,
                offset: chunk.offset,
                data: &data[chunk.buf.clone()],
            });
            prop_assert!(codec.encode(&read, &mut out).is_ok());
            let write = Frame::transport(0, T::SetConfigRequest {
                generation: 0,
                offset: chunk.offset,
                data: &data[chunk.buf.clone()],
            });
            prop_assert!(codec.encode(&write, &mut out).is_ok());
        }
        prop_assert_eq!(next, end);
        prop_assert_eq!(buf_next, length as usize);
    }
}

/// Decodes `bytes`; if that works, checks re-encoding gives the same size and decodes to
/// the same frame.
fn check_canonical(codec: &Codec, bytes: &[u8]) -> Result<(), TestCaseError> {
    match codec.decode(bytes) {
        Ok(decoded) => {
            let mut out = vec![0u8; 70_000];
            let n = codec.encode(&decoded, &mut out);
            prop_assert_eq!(n, Ok(bytes.len()));
            prop_assert_eq!(codec.decode(&out[..bytes.len()]), Ok(decoded));
        }
        Err(DecodeError::TooShort { needed, actual }) => prop_assert!(needed > actual),
        Err(DecodeError::TrailingBytes { expected, actual }) => prop_assert!(expected < actual),
        Err(_) => {}
    }
    Ok(())
}

#[test]
fn every_message_variant_is_generated() {
    // Guards against a variant number silently falling into `build`'s catch-all arm:
    // 25 transport, 5 generic bus, 4 shared-memory bus and 18 FF-A bus messages.
    let zero = Parts {
        variant: 0,
        dev_num: 0,
        token: 0,
        w: [0; 6],
        q: [0; 3],
        h: [0; 3],
        uuid: [0; 16],
        data: vec![],
        blocks: vec![],
        pick: 0,
    };
    let names: std::collections::BTreeSet<String> = (0..VARIANTS)
        .map(|variant| {
            let parts = Parts {
                variant,
                ..zero.clone()
            };
            let (frame, _) = build(&parts, Layout::Revision1);
            // Debug output looks like `Transport(GetConfigRequest { .. })`.
            let debug = format!("{:?}", frame.message);
            let (outer, rest) = debug.split_once('(').unwrap();
            let inner = rest.split(|c: char| !c.is_alphanumeric()).next().unwrap();
            format!("{outer}::{inner}")
        })
        .collect();
    assert_eq!(names.len(), 52, "{names:?}");
}
