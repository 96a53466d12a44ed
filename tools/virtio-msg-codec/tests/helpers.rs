//! The small helpers around the codec: size negotiation, chunking, bitmaps, addresses.

use virtio_msg_codec::bus::{present_devices, BusMessage};
use virtio_msg_codec::chunk::{config_chunks, config_data_capacity, ChunkError, ConfigChunk};
use virtio_msg_codec::ffa::{self, bus_address, split_bus_address, FfaBusMessage};
use virtio_msg_codec::transport::{
    feature_blocks_from_u64, feature_blocks_to_u64, max_feature_blocks, TransportMessage as T,
};
use virtio_msg_codec::{
    min_msg_size, negotiate_max_msg_size, BusKind, Codec, Frame, Message, MAX_MSG_SIZE,
    MIN_MSG_SIZE, RECOMMENDED_MSG_SIZE, TRANSPORT_REVISION_1,
};
use zerocopy::little_endian::U32;

#[test]
fn size_limits_of_revision_1() {
    assert_eq!(MIN_MSG_SIZE, 52);
    assert_eq!(MAX_MSG_SIZE, 65535);
    assert_eq!(RECOMMENDED_MSG_SIZE, 264);
    assert_eq!(min_msg_size(TRANSPORT_REVISION_1), Some(52));
    assert_eq!(min_msg_size(2), None);
    assert_eq!(min_msg_size(0), None);
}

#[test]
fn negotiation_takes_the_smaller_limit() {
    assert_eq!(negotiate_max_msg_size(1, 264, 1024), Some(264));
    assert_eq!(negotiate_max_msg_size(1, 4096, 112), Some(112));
    assert_eq!(negotiate_max_msg_size(1, 52, 52), Some(52));
    // Below the minimum is refused, never rounded up.
    assert_eq!(negotiate_max_msg_size(1, 51, 4096), None);
    assert_eq!(negotiate_max_msg_size(1, 0, 0), None);
    // msg_size is 16 bits wide, so larger limits mean 65535.
    assert_eq!(negotiate_max_msg_size(1, u32::MAX, 100_000), Some(65535));
    assert_eq!(negotiate_max_msg_size(2, 264, 264), None);
}

#[test]
fn every_fixed_size_message_fits_the_minimum() {
    // The revision 1 minimum must carry every fixed-size message, or a device could not
    // answer at all. GET_DEVICE_INFO's response (52 bytes) is the largest.
    let codec = Codec {
        max_msg_size: MIN_MSG_SIZE,
        ..Codec::new(BusKind::Ffa)
    };
    let mut out = [0u8; 52];
    let info = T::GetDeviceInfoResponse(Default::default());
    assert_eq!(codec.encode(&Frame::transport(0, info), &mut out), Ok(52));
    let vq = T::GetVqueueResponse(Default::default());
    assert_eq!(codec.encode(&Frame::transport(0, vq), &mut out), Ok(48));
    let version = Message::Ffa(FfaBusMessage::VersionResponse(Default::default()));
    assert_eq!(codec.encode(&Frame::bus(0, version), &mut out), Ok(38));
}

#[test]
fn config_chunk_capacity() {
    assert_eq!(config_data_capacity(52), 32);
    assert_eq!(config_data_capacity(264), 244);
    assert_eq!(config_data_capacity(65535), 65515);
    assert_eq!(config_data_capacity(10), 0);
}

#[test]
fn config_chunks_align_inner_boundaries() {
    let chunks: Vec<_> = config_chunks(4, 300, 264).unwrap().collect();
    assert_eq!(
        chunks,
        [
            ConfigChunk {
                offset: 4,
                length: 244,
                buf: 0..244
            },
            ConfigChunk {
                offset: 248,
                length: 56,
                buf: 244..300
            },
        ]
    );
    // At the minimum size a chunk holds 32 bytes; from offset 3 the first ends at 32.
    let chunks: Vec<_> = config_chunks(3, 70, 52).unwrap().collect();
    let offsets: Vec<_> = chunks.iter().map(|c| (c.offset, c.length)).collect();
    assert_eq!(offsets, [(3, 29), (32, 32), (64, 9)]);
}

#[test]
fn config_chunks_edge_cases() {
    assert_eq!(config_chunks(0, 0, 264).unwrap().count(), 0);
    assert_eq!(config_chunks(u32::MAX, 0, 264).unwrap().count(), 0);
    let last: Vec<_> = config_chunks(u32::MAX, 1, 264).unwrap().collect();
    assert_eq!(
        last,
        [ConfigChunk {
            offset: u32::MAX,
            length: 1,
            buf: 0..1
        }]
    );
    assert_eq!(
        config_chunks(u32::MAX, 2, 264).err(),
        Some(ChunkError::RangeOverflow)
    );
    assert_eq!(
        config_chunks(0, 8, 51).err(),
        Some(ChunkError::MaxMsgSizeTooSmall { max_msg_size: 51 })
    );
}

#[test]
fn present_devices_reads_lsb_first() {
    let devices: Vec<_> = present_devices(8, &[0x05, 0x80]).collect();
    assert_eq!(devices, [8, 10, 23]);
    assert_eq!(present_devices(0, &[]).count(), 0);
    assert_eq!(present_devices(0, &[0; 4]).count(), 0);
    // Numbers past 65535 do not exist; the iterator stops instead of wrapping.
    let top: Vec<_> = present_devices(0xfff8, &[0x81, 0xff]).collect();
    assert_eq!(top, [0xfff8, 0xffff]);
    // A full window.
    let all = vec![0xffu8; 8192];
    assert_eq!(present_devices(0, &all).count(), 65536);
    assert_eq!(present_devices(0, &all).last(), Some(0xffff));
}

#[test]
fn feature_block_helpers() {
    let blocks = feature_blocks_from_u64(0x0000_0001_8000_0002);
    assert_eq!(blocks, [U32::new(0x8000_0002), U32::new(1)]);
    assert_eq!(feature_blocks_to_u64(&blocks), 0x0000_0001_8000_0002);
    assert_eq!(feature_blocks_to_u64(&[]), 0);
    assert_eq!(feature_blocks_to_u64(&[U32::new(7)]), 7);
    assert_eq!(
        feature_blocks_to_u64(&[U32::new(7), U32::new(1), U32::new(9)]),
        (1 << 32) | 7
    );
    assert_eq!(max_feature_blocks(52), 9);
    assert_eq!(max_feature_blocks(264), 62);
    assert_eq!(max_feature_blocks(8), 0);
}

#[test]
fn ffa_bus_addresses() {
    assert_eq!(bus_address(3, 0x1000), Some(0x0003_0000_0000_1000));
    assert_eq!(bus_address(0xffff, (1 << 48) - 1), Some(u64::MAX));
    assert_eq!(bus_address(1, 1 << 48), None);
    assert_eq!(split_bus_address(0x0003_0000_0000_1000), (3, 0x1000));
    assert_eq!(split_bus_address(u64::MAX), (0xffff, (1 << 48) - 1));
}

#[test]
fn ffa_partition_uuids() {
    // c66028b5-2498-4aa1-9de7-77da6122abf0 in the byte order the text spells it.
    assert_eq!(
        ffa::DEVICE_ROLE_UUID,
        [
            0xc6, 0x60, 0x28, 0xb5, 0x24, 0x98, 0x4a, 0xa1, 0x9d, 0xe7, 0x77, 0xda, 0x61, 0x22,
            0xab, 0xf0
        ]
    );
    assert_eq!(
        ffa::DRIVER_ROLE_UUID,
        [
            0xbd, 0x7f, 0xd0, 0x89, 0x67, 0x95, 0x47, 0x2b, 0xb4, 0x7f, 0xdb, 0x0c, 0x5d, 0x9a,
            0x71, 0x9d
        ]
    );
}

#[test]
fn responses_answer_their_requests_only() {
    let req = Message::Transport(T::GetConfigRequest {
        offset: 0,
        length: 4,
    });
    let resp = Message::Transport(T::GetConfigResponse {
        generation: 0,
        offset: 0,
        data: &[0; 4],
    });
    let other = Message::Transport(T::SetConfigResponse {
        generation: 0,
        offset: 0,
        length: 0,
    });
    // PING has id 0x03 like GET_DEVICE_FEATURES: the namespace must match as well.
    let ping = Message::Bus(BusMessage::PingResponse { data: 0 });
    let features_req = Message::Transport(T::GetDeviceFeaturesRequest {
        block_index: 0,
        num_blocks: 1,
    });
    assert!(resp.answers(&req));
    assert!(!req.answers(&req));
    assert!(!req.answers(&resp));
    assert!(!other.answers(&req));
    assert!(!ping.answers(&features_req));
    assert_eq!(resp.msg_type(), 0x01);
    assert_eq!(ping.msg_type(), 0x03);
    assert_eq!(req.msg_type(), 0x00);
    assert_eq!(
        Message::Bus(BusMessage::PingRequest { data: 0 }).msg_type(),
        0x02
    );
}
