// SPDX-License-Identifier: GPL-2.0

//! Transport messages of revision 1: requests 0x02-0x0C, their responses, events 0x40-0x42.

use zerocopy::little_endian::{U32, U64};

use super::compat::{self, Layout};
use super::error::{DecodeError, EncodeError};
use super::header::{HEADER_SIZE, TYPE_RESPONSE};
use super::wire::{wire_struct, Reader, Sink};

/// Message ids of transport messages (type bit 1 clear).
pub mod id {
    /// GET_DEVICE_INFO: identity and sizes of a device.
    pub const GET_DEVICE_INFO: u8 = 0x02;
    /// GET_DEVICE_FEATURES: a range of the device's feature blocks.
    pub const GET_DEVICE_FEATURES: u8 = 0x03;
    /// SET_DRIVER_FEATURES: a range of the driver's accepted feature blocks.
    pub const SET_DRIVER_FEATURES: u8 = 0x04;
    /// GET_CONFIG: read part of the device config space.
    pub const GET_CONFIG: u8 = 0x05;
    /// SET_CONFIG: write part of the device config space.
    pub const SET_CONFIG: u8 = 0x06;
    /// GET_DEVICE_STATUS: read the device status.
    pub const GET_DEVICE_STATUS: u8 = 0x07;
    /// SET_DEVICE_STATUS: write the device status (0 resets the device).
    pub const SET_DEVICE_STATUS: u8 = 0x08;
    /// GET_VQUEUE: read a virtqueue's limits and setup.
    pub const GET_VQUEUE: u8 = 0x09;
    /// SET_VQUEUE: set up, enable or disable a virtqueue.
    pub const SET_VQUEUE: u8 = 0x0A;
    /// RESET_VQUEUE: reset one virtqueue (needs VIRTIO_F_RING_RESET).
    pub const RESET_VQUEUE: u8 = 0x0B;
    /// GET_SHM: read a shared memory region's placement.
    pub const GET_SHM: u8 = 0x0C;
    /// EVENT_CONFIG: the device's config or status changed (device to driver).
    pub const EVENT_CONFIG: u8 = 0x40;
    /// EVENT_AVAIL: buffers are available in a virtqueue (driver to device).
    pub const EVENT_AVAIL: u8 = 0x41;
    /// EVENT_USED: buffers are used in a virtqueue (device to driver).
    pub const EVENT_USED: u8 = 0x42;
}

/// GET_VQUEUE response flag: the queue is enabled.
pub const VQUEUE_INFO_ENABLED: u32 = 1 << 0;

/// SET_VQUEUE flags bits 1:0, the enable action.
pub const VQUEUE_SET_ENABLE_MASK: u32 = 0b11;
/// SET_VQUEUE enable action: disable the queue.
pub const VQUEUE_SET_DISABLE: u32 = 0;
/// SET_VQUEUE enable action: enable the queue.
pub const VQUEUE_SET_ENABLE: u32 = 1;
/// SET_VQUEUE enable action: keep the queue's enable state.
pub const VQUEUE_SET_KEEP: u32 = 2;
/// SET_VQUEUE flag: leave the queue size as it is.
pub const VQUEUE_SET_IGNORE_SIZE: u32 = 1 << 2;
/// SET_VQUEUE flag: leave the descriptor area address as it is.
pub const VQUEUE_SET_IGNORE_DESC_ADDR: u32 = 1 << 3;
/// SET_VQUEUE flag: leave the driver area address as it is.
pub const VQUEUE_SET_IGNORE_DRIVER_ADDR: u32 = 1 << 4;
/// SET_VQUEUE flag: leave the device area address as it is.
pub const VQUEUE_SET_IGNORE_DEVICE_ADDR: u32 = 1 << 5;

/// EVENT_AVAIL `next_offset` bit 31: the ring wrap counter.
pub const EVENT_AVAIL_WRAP: u32 = 1 << 31;
/// EVENT_AVAIL `next_offset` bits 30:0: the offset of the next available entry.
pub const EVENT_AVAIL_OFFSET_MASK: u32 = !EVENT_AVAIL_WRAP;

/// Payload bytes in front of the data of GET_CONFIG responses and SET_CONFIG requests.
pub const CONFIG_DATA_OFFSET: usize = 12;

/// Payload bytes in front of the data of EVENT_CONFIG.
pub const EVENT_CONFIG_DATA_OFFSET: usize = 16;

/// Payload bytes in front of the feature blocks of GET_DEVICE_FEATURES responses and
/// SET_DRIVER_FEATURES requests.
pub const FEATURES_DATA_OFFSET: usize = 8;

/// Returns how many feature blocks fit in one message of at most `max_msg_size` bytes.
pub fn max_feature_blocks(max_msg_size: u16) -> u32 {
    // Header plus block_index and num_blocks.
    const FIXED: u16 = 16;
    const _: () = assert!(FIXED as usize == HEADER_SIZE + FEATURES_DATA_OFFSET);
    u32::from(max_msg_size.saturating_sub(FIXED)) / 4
}

/// Splits a 64-bit feature word into the two blocks that carry it (block 0 first).
pub fn feature_blocks_from_u64(features: u64) -> [U32; 2] {
    let [b0, b1, b2, b3, b4, b5, b6, b7] = features.to_le_bytes();
    [
        U32::from_bytes([b0, b1, b2, b3]),
        U32::from_bytes([b4, b5, b6, b7]),
    ]
}

/// Joins up to two feature blocks starting at block 0 into a 64-bit word; missing blocks
/// read as zero.
pub fn feature_blocks_to_u64(blocks: &[U32]) -> u64 {
    let low = blocks.first().map_or(0, |b| b.get());
    let high = blocks.get(1).map_or(0, |b| b.get());
    u64::from(low) | (u64::from(high) << 32)
}

/// Identity and sizes of a device: the GET_DEVICE_INFO response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// Virtio device id; 0 means no device at this device number.
    pub device_id: u32,
    /// Virtio vendor id.
    pub vendor_id: u32,
    /// Device UUID, all zero if the device has none.
    pub device_uuid: [u8; 16],
    /// Number of 32-bit feature blocks the device offers.
    pub num_feature_blocks: u32,
    /// Size of the device config space in bytes.
    pub config_size: u32,
    /// Number of virtqueues the device can have.
    pub max_virtqueues: u32,
    /// Index of the first admin virtqueue.
    pub admin_vq_start: u32,
    /// Number of admin virtqueues.
    pub admin_vq_count: u32,
}

/// Limits and setup of one virtqueue: the GET_VQUEUE response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VqueueInfo {
    /// Queue index.
    pub index: u32,
    /// Largest size the device allows; 0 means there is no such queue.
    pub max_size: u32,
    /// Current size.
    pub cur_size: u32,
    /// Flags, see [`VQUEUE_INFO_ENABLED`].
    pub flags: u32,
    /// Descriptor area address.
    pub desc_addr: u64,
    /// Driver area address.
    pub driver_addr: u64,
    /// Device area address.
    pub device_addr: u64,
}

/// Setup of one virtqueue: the SET_VQUEUE request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VqueueSetup {
    /// Queue index.
    pub index: u32,
    /// Enable action and ignore bits, see the `VQUEUE_SET_*` constants.
    pub flags: u32,
    /// Queue size.
    pub size: u32,
    /// Descriptor area address.
    pub desc_addr: u64,
    /// Driver area address.
    pub driver_addr: u64,
    /// Device area address.
    pub device_addr: u64,
}

/// Placement of a shared memory region: the GET_SHM response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShmRegion {
    /// Shared memory region id.
    pub shmid: u32,
    /// Length in bytes; 0 means the region is absent.
    pub length: u64,
    /// Address of the region.
    pub address: u64,
}

/// A transport message (type bit 1 clear).
///
/// Variable-length parts borrow from the buffer they were decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportMessage<'a> {
    /// GET_DEVICE_INFO request.
    GetDeviceInfoRequest,
    /// GET_DEVICE_INFO response.
    GetDeviceInfoResponse(DeviceInfo),
    /// GET_DEVICE_FEATURES request.
    GetDeviceFeaturesRequest {
        /// First block wanted.
        block_index: u32,
        /// Number of blocks wanted.
        num_blocks: u32,
    },
    /// GET_DEVICE_FEATURES response; blocks past the device's are zero.
    GetDeviceFeaturesResponse {
        /// First block carried.
        block_index: u32,
        /// The blocks; their count is the `num_blocks` field.
        features: &'a [U32],
    },
    /// SET_DRIVER_FEATURES request.
    SetDriverFeaturesRequest {
        /// First block carried.
        block_index: u32,
        /// The blocks; their count is the `num_blocks` field.
        features: &'a [U32],
    },
    /// SET_DRIVER_FEATURES response; acceptance shows later as FEATURES_OK.
    SetDriverFeaturesResponse,
    /// GET_CONFIG request.
    GetConfigRequest {
        /// Config space offset.
        offset: u32,
        /// Bytes wanted.
        length: u32,
    },
    /// GET_CONFIG response.
    GetConfigResponse {
        /// Config generation the data was read under.
        generation: u32,
        /// Config space offset.
        offset: u32,
        /// The bytes read; their count is the `length` field.
        data: &'a [u8],
    },
    /// SET_CONFIG request.
    SetConfigRequest {
        /// Expected config generation (0 in the baseline profile).
        generation: u32,
        /// Config space offset.
        offset: u32,
        /// The bytes to write; their count is the `length` field.
        data: &'a [u8],
    },
    /// SET_CONFIG response.
    SetConfigResponse {
        /// Config generation after the write.
        generation: u32,
        /// Config space offset.
        offset: u32,
        /// Bytes written; 0 means the write was not applied.
        length: u32,
    },
    /// GET_DEVICE_STATUS request.
    GetDeviceStatusRequest,
    /// GET_DEVICE_STATUS response.
    GetDeviceStatusResponse {
        /// Device status.
        status: u32,
    },
    /// SET_DEVICE_STATUS request.
    SetDeviceStatusRequest {
        /// New device status; 0 resets the device.
        status: u32,
    },
    /// SET_DEVICE_STATUS response.
    SetDeviceStatusResponse {
        /// Resulting device status.
        status: u32,
    },
    /// GET_VQUEUE request.
    GetVqueueRequest {
        /// Queue index.
        index: u32,
    },
    /// GET_VQUEUE response.
    GetVqueueResponse(VqueueInfo),
    /// SET_VQUEUE request.
    SetVqueueRequest(VqueueSetup),
    /// SET_VQUEUE response.
    SetVqueueResponse,
    /// RESET_VQUEUE request, sent once the queue is quiesced.
    ResetVqueueRequest {
        /// Queue index.
        index: u32,
    },
    /// RESET_VQUEUE response.
    ResetVqueueResponse,
    /// GET_SHM request.
    GetShmRequest {
        /// Shared memory region id.
        shmid: u32,
    },
    /// GET_SHM response.
    GetShmResponse(ShmRegion),
    /// EVENT_CONFIG event (device to driver).
    EventConfig {
        /// Device status.
        device_status: u32,
        /// Config generation.
        generation: u32,
        /// Config space offset of `data`.
        offset: u32,
        /// Changed config bytes, possibly none; their count is the `length` field.
        data: &'a [u8],
    },
    /// EVENT_AVAIL event (driver to device).
    EventAvail {
        /// Queue index.
        vq_index: u32,
        /// Next available offset and wrap bit; meaningful only with
        /// VIRTIO_F_NOTIFICATION_DATA, 0 otherwise.
        next_offset: u32,
    },
    /// EVENT_USED event (device to driver).
    EventUsed {
        /// Queue index.
        vq_index: u32,
    },
}

/// Returns whether `msg_id` is a transport event (which has no response).
pub const fn is_event_id(msg_id: u8) -> bool {
    matches!(msg_id, id::EVENT_CONFIG | id::EVENT_AVAIL | id::EVENT_USED)
}

wire_struct! {
    /// GET_DEVICE_INFO response payload.
    DeviceInfoWire {
        device_id: U32,
        vendor_id: U32,
        device_uuid: [u8; 16],
        num_feature_blocks: U32,
        config_size: U32,
        max_virtqueues: U32,
        admin_vq_start: U32,
        admin_vq_count: U32,
    } = 44
}

wire_struct! {
    /// Fixed part of GET_DEVICE_FEATURES and SET_DRIVER_FEATURES payloads.
    FeatureRangeWire { block_index: U32, num_blocks: U32 } = FEATURES_DATA_OFFSET
}

wire_struct! {
    /// GET_CONFIG request payload.
    ConfigRangeWire { offset: U32, length: U32 } = 8
}

wire_struct! {
    /// Fixed part of GET_CONFIG responses, SET_CONFIG requests and SET_CONFIG responses.
    ConfigWire { generation: U32, offset: U32, length: U32 } = CONFIG_DATA_OFFSET
}

wire_struct! {
    /// GET_VQUEUE response payload.
    VqueueInfoWire {
        index: U32,
        max_size: U32,
        cur_size: U32,
        flags: U32,
        desc_addr: U64,
        driver_addr: U64,
        device_addr: U64,
    } = 40
}

wire_struct! {
    /// SET_VQUEUE request payload.
    VqueueSetupWire {
        index: U32,
        flags: U32,
        size: U32,
        reserved: U32,
        desc_addr: U64,
        driver_addr: U64,
        device_addr: U64,
    } = 40
}

wire_struct! {
    /// GET_SHM response payload.
    ShmRegionWire { shmid: U32, reserved: U32, length: U64, address: U64 } = 24
}

wire_struct! {
    /// Fixed part of the EVENT_CONFIG payload.
    EventConfigWire { device_status: U32, generation: U32, offset: U32, length: U32 } = EVENT_CONFIG_DATA_OFFSET
}

wire_struct! {
    /// EVENT_AVAIL payload.
    EventAvailWire { vq_index: U32, next_offset: U32 } = 8
}

/// Converts a slice length into a 32-bit length field.
fn len_u32(len: usize, field: &'static str) -> Result<U32, EncodeError> {
    u32::try_from(len)
        .map(U32::new)
        .map_err(|_| EncodeError::FieldOutOfRange { field })
}

/// Reads a 32-bit length field and then that many data bytes.
fn take_data<'a>(r: &mut Reader<'a>, length: U32) -> Result<&'a [u8], DecodeError> {
    let out_of_range = DecodeError::FieldOutOfRange { field: "length" };
    let len = usize::try_from(length.get()).map_err(|_| out_of_range)?;
    r.take_bytes(len, "length")
}

/// Decodes the payload of a transport message whose header has `msg_type` and `msg_id`.
pub(crate) fn decode<'a>(
    msg_type: u8,
    msg_id: u8,
    r: &mut Reader<'a>,
    layout: Layout,
) -> Result<TransportMessage<'a>, DecodeError> {
    use TransportMessage as M;

    let response = msg_type & TYPE_RESPONSE != 0;
    let msg = match (msg_id, response) {
        (id::GET_DEVICE_INFO, false) => M::GetDeviceInfoRequest,
        (id::GET_DEVICE_INFO, true) => M::GetDeviceInfoResponse(match layout {
            Layout::Revision1 => {
                let w: DeviceInfoWire = r.take()?;
                DeviceInfo {
                    device_id: w.device_id.get(),
                    vendor_id: w.vendor_id.get(),
                    device_uuid: w.device_uuid,
                    num_feature_blocks: w.num_feature_blocks.get(),
                    config_size: w.config_size.get(),
                    max_virtqueues: w.max_virtqueues.get(),
                    admin_vq_start: w.admin_vq_start.get(),
                    admin_vq_count: w.admin_vq_count.get(),
                }
            }
            Layout::Late2025 => compat::read_device_info(r)?,
        }),
        (id::GET_DEVICE_FEATURES, false) => {
            let w: FeatureRangeWire = r.take()?;
            M::GetDeviceFeaturesRequest {
                block_index: w.block_index.get(),
                num_blocks: w.num_blocks.get(),
            }
        }
        (id::GET_DEVICE_FEATURES, true) => {
            let w: FeatureRangeWire = r.take()?;
            M::GetDeviceFeaturesResponse {
                block_index: w.block_index.get(),
                features: r.take_words(w.num_blocks.get(), "num_blocks")?,
            }
        }
        (id::SET_DRIVER_FEATURES, false) => {
            let w: FeatureRangeWire = r.take()?;
            M::SetDriverFeaturesRequest {
                block_index: w.block_index.get(),
                features: r.take_words(w.num_blocks.get(), "num_blocks")?,
            }
        }
        (id::SET_DRIVER_FEATURES, true) => M::SetDriverFeaturesResponse,
        (id::GET_CONFIG, false) => {
            let w: ConfigRangeWire = r.take()?;
            M::GetConfigRequest {
                offset: w.offset.get(),
                length: w.length.get(),
            }
        }
        (id::GET_CONFIG, true) => {
            let w: ConfigWire = r.take()?;
            M::GetConfigResponse {
                generation: w.generation.get(),
                offset: w.offset.get(),
                data: take_data(r, w.length)?,
            }
        }
        (id::SET_CONFIG, false) => {
            let w: ConfigWire = r.take()?;
            M::SetConfigRequest {
                generation: w.generation.get(),
                offset: w.offset.get(),
                data: take_data(r, w.length)?,
            }
        }
        (id::SET_CONFIG, true) => {
            let w: ConfigWire = r.take()?;
            M::SetConfigResponse {
                generation: w.generation.get(),
                offset: w.offset.get(),
                length: w.length.get(),
            }
        }
        (id::GET_DEVICE_STATUS, false) => M::GetDeviceStatusRequest,
        (id::GET_DEVICE_STATUS, true) => M::GetDeviceStatusResponse {
            status: r.take::<U32>()?.get(),
        },
        (id::SET_DEVICE_STATUS, false) => M::SetDeviceStatusRequest {
            status: r.take::<U32>()?.get(),
        },
        (id::SET_DEVICE_STATUS, true) => M::SetDeviceStatusResponse {
            status: r.take::<U32>()?.get(),
        },
        (id::GET_VQUEUE, false) => M::GetVqueueRequest {
            index: r.take::<U32>()?.get(),
        },
        (id::GET_VQUEUE, true) => {
            let w: VqueueInfoWire = r.take()?;
            M::GetVqueueResponse(VqueueInfo {
                index: w.index.get(),
                max_size: w.max_size.get(),
                cur_size: w.cur_size.get(),
                flags: w.flags.get(),
                desc_addr: w.desc_addr.get(),
                driver_addr: w.driver_addr.get(),
                device_addr: w.device_addr.get(),
            })
        }
        (id::SET_VQUEUE, false) => {
            // The reserved word is ignored on receipt so a later revision can use it.
            let w: VqueueSetupWire = r.take()?;
            M::SetVqueueRequest(VqueueSetup {
                index: w.index.get(),
                flags: w.flags.get(),
                size: w.size.get(),
                desc_addr: w.desc_addr.get(),
                driver_addr: w.driver_addr.get(),
                device_addr: w.device_addr.get(),
            })
        }
        (id::SET_VQUEUE, true) => M::SetVqueueResponse,
        (id::RESET_VQUEUE, false) => M::ResetVqueueRequest {
            index: r.take::<U32>()?.get(),
        },
        (id::RESET_VQUEUE, true) => M::ResetVqueueResponse,
        (id::GET_SHM, false) => M::GetShmRequest {
            shmid: r.take::<U32>()?.get(),
        },
        (id::GET_SHM, true) => {
            let w: ShmRegionWire = r.take()?;
            M::GetShmResponse(ShmRegion {
                shmid: w.shmid.get(),
                length: w.length.get(),
                address: w.address.get(),
            })
        }
        (id::EVENT_CONFIG, false) => {
            let w: EventConfigWire = r.take()?;
            M::EventConfig {
                device_status: w.device_status.get(),
                generation: w.generation.get(),
                offset: w.offset.get(),
                data: take_data(r, w.length)?,
            }
        }
        (id::EVENT_AVAIL, false) => {
            let w: EventAvailWire = r.take()?;
            M::EventAvail {
                vq_index: w.vq_index.get(),
                next_offset: w.next_offset.get(),
            }
        }
        (id::EVENT_USED, false) => M::EventUsed {
            vq_index: r.take::<U32>()?.get(),
        },
        (id, true) if is_event_id(id) => {
            return Err(DecodeError::NoResponseForId { msg_type, msg_id })
        }
        _ => return Err(DecodeError::UnknownId { msg_type, msg_id }),
    };
    Ok(msg)
}

impl TransportMessage<'_> {
    /// Returns the message id.
    pub const fn msg_id(&self) -> u8 {
        use TransportMessage as M;
        match self {
            M::GetDeviceInfoRequest | M::GetDeviceInfoResponse(_) => id::GET_DEVICE_INFO,
            M::GetDeviceFeaturesRequest { .. } | M::GetDeviceFeaturesResponse { .. } => {
                id::GET_DEVICE_FEATURES
            }
            M::SetDriverFeaturesRequest { .. } | M::SetDriverFeaturesResponse => {
                id::SET_DRIVER_FEATURES
            }
            M::GetConfigRequest { .. } | M::GetConfigResponse { .. } => id::GET_CONFIG,
            M::SetConfigRequest { .. } | M::SetConfigResponse { .. } => id::SET_CONFIG,
            M::GetDeviceStatusRequest | M::GetDeviceStatusResponse { .. } => id::GET_DEVICE_STATUS,
            M::SetDeviceStatusRequest { .. } | M::SetDeviceStatusResponse { .. } => {
                id::SET_DEVICE_STATUS
            }
            M::GetVqueueRequest { .. } | M::GetVqueueResponse(_) => id::GET_VQUEUE,
            M::SetVqueueRequest(_) | M::SetVqueueResponse => id::SET_VQUEUE,
            M::ResetVqueueRequest { .. } | M::ResetVqueueResponse => id::RESET_VQUEUE,
            M::GetShmRequest { .. } | M::GetShmResponse(_) => id::GET_SHM,
            M::EventConfig { .. } => id::EVENT_CONFIG,
            M::EventAvail { .. } => id::EVENT_AVAIL,
            M::EventUsed { .. } => id::EVENT_USED,
        }
    }

    /// Returns whether this is a response.
    pub const fn is_response(&self) -> bool {
        use TransportMessage as M;
        matches!(
            self,
            M::GetDeviceInfoResponse(_)
                | M::GetDeviceFeaturesResponse { .. }
                | M::SetDriverFeaturesResponse
                | M::GetConfigResponse { .. }
                | M::SetConfigResponse { .. }
                | M::GetDeviceStatusResponse { .. }
                | M::SetDeviceStatusResponse { .. }
                | M::GetVqueueResponse(_)
                | M::SetVqueueResponse
                | M::ResetVqueueResponse
                | M::GetShmResponse(_)
        )
    }

    /// Writes the payload in `layout`.
    pub(crate) fn write_payload<S: Sink>(
        &self,
        layout: Layout,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        use TransportMessage as M;
        match *self {
            M::GetDeviceInfoRequest
            | M::SetDriverFeaturesResponse
            | M::GetDeviceStatusRequest
            | M::SetVqueueResponse
            | M::ResetVqueueResponse => Ok(()),
            M::GetDeviceInfoResponse(ref info) => match layout {
                Layout::Revision1 => s.put_struct(&DeviceInfoWire {
                    device_id: info.device_id.into(),
                    vendor_id: info.vendor_id.into(),
                    device_uuid: info.device_uuid,
                    num_feature_blocks: info.num_feature_blocks.into(),
                    config_size: info.config_size.into(),
                    max_virtqueues: info.max_virtqueues.into(),
                    admin_vq_start: info.admin_vq_start.into(),
                    admin_vq_count: info.admin_vq_count.into(),
                }),
                Layout::Late2025 => compat::write_device_info(info, s),
            },
            M::GetDeviceFeaturesRequest {
                block_index,
                num_blocks,
            } => s.put_struct(&FeatureRangeWire {
                block_index: block_index.into(),
                num_blocks: num_blocks.into(),
            }),
            M::GetDeviceFeaturesResponse {
                block_index,
                features,
            }
            | M::SetDriverFeaturesRequest {
                block_index,
                features,
            } => {
                s.put_struct(&FeatureRangeWire {
                    block_index: block_index.into(),
                    num_blocks: len_u32(features.len(), "num_blocks")?,
                })?;
                s.put_struct(features)
            }
            M::GetConfigRequest { offset, length } => s.put_struct(&ConfigRangeWire {
                offset: offset.into(),
                length: length.into(),
            }),
            M::GetConfigResponse {
                generation,
                offset,
                data,
            }
            | M::SetConfigRequest {
                generation,
                offset,
                data,
            } => {
                s.put_struct(&ConfigWire {
                    generation: generation.into(),
                    offset: offset.into(),
                    length: len_u32(data.len(), "length")?,
                })?;
                s.put(data)
            }
            M::SetConfigResponse {
                generation,
                offset,
                length,
            } => s.put_struct(&ConfigWire {
                generation: generation.into(),
                offset: offset.into(),
                length: length.into(),
            }),
            M::GetDeviceStatusResponse { status }
            | M::SetDeviceStatusRequest { status }
            | M::SetDeviceStatusResponse { status } => s.put_struct(&U32::new(status)),
            M::GetVqueueRequest { index } | M::ResetVqueueRequest { index } => {
                s.put_struct(&U32::new(index))
            }
            M::GetVqueueResponse(ref q) => s.put_struct(&VqueueInfoWire {
                index: q.index.into(),
                max_size: q.max_size.into(),
                cur_size: q.cur_size.into(),
                flags: q.flags.into(),
                desc_addr: q.desc_addr.into(),
                driver_addr: q.driver_addr.into(),
                device_addr: q.device_addr.into(),
            }),
            M::SetVqueueRequest(ref q) => s.put_struct(&VqueueSetupWire {
                index: q.index.into(),
                flags: q.flags.into(),
                size: q.size.into(),
                reserved: U32::ZERO,
                desc_addr: q.desc_addr.into(),
                driver_addr: q.driver_addr.into(),
                device_addr: q.device_addr.into(),
            }),
            M::GetShmRequest { shmid } => s.put_struct(&U32::new(shmid)),
            M::GetShmResponse(ref shm) => s.put_struct(&ShmRegionWire {
                shmid: shm.shmid.into(),
                reserved: U32::ZERO,
                length: shm.length.into(),
                address: shm.address.into(),
            }),
            M::EventConfig {
                device_status,
                generation,
                offset,
                data,
            } => {
                s.put_struct(&EventConfigWire {
                    device_status: device_status.into(),
                    generation: generation.into(),
                    offset: offset.into(),
                    length: len_u32(data.len(), "length")?,
                })?;
                s.put(data)
            }
            M::EventAvail {
                vq_index,
                next_offset,
            } => s.put_struct(&EventAvailWire {
                vq_index: vq_index.into(),
                next_offset: next_offset.into(),
            }),
            M::EventUsed { vq_index } => s.put_struct(&U32::new(vq_index)),
        }
    }
}
