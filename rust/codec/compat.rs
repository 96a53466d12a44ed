// SPDX-License-Identifier: GPL-2.0

//! The late-2025 layouts, accepted only behind an explicit per-bus-instance switch.
//!
//! Peers written against the late-2025 drafts differ from revision 1 in two payloads:
//! the GET_DEVICE_INFO response is 24 bytes with no UUID, a feature *bit* count instead
//! of a block count and 16-bit admin queue fields; the GET_DEVICES response orders its
//! fields offset, count, next_offset. Both decode to the same types as revision 1 so the
//! rest of the stack does not care which layout a peer speaks. The layout is chosen by
//! whoever configures the bus instance, never guessed from a message.

use zerocopy::little_endian::{U16, U32};

use super::error::{DecodeError, EncodeError};
use super::transport::DeviceInfo;
use super::wire::{wire_struct, Reader, Sink};

/// Which payload layouts a bus instance speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Transport revision 1, as this project's specification states it.
    #[default]
    Revision1,
    /// The late-2025 drafts: 24-byte GET_DEVICE_INFO response and GET_DEVICES response
    /// ordered offset, count, next_offset.
    Late2025,
}

/// Feature bits per feature block.
const BITS_PER_BLOCK: u32 = 32;

wire_struct! {
    /// GET_DEVICE_INFO response payload of the late-2025 drafts.
    DeviceInfoLate2025 {
        device_id: U32,
        vendor_id: U32,
        num_feature_bits: U32,
        config_size: U32,
        max_virtqueues: U32,
        admin_vq_start: U16,
        admin_vq_count: U16,
    } = 24
}

/// Reads a late-2025 GET_DEVICE_INFO response payload.
pub(crate) fn read_device_info(r: &mut Reader<'_>) -> Result<DeviceInfo, DecodeError> {
    let w: DeviceInfoLate2025 = r.take()?;
    let bits = w.num_feature_bits.get();
    // Revision 1 counts 32-bit blocks; a bit count that is not a whole number of blocks
    // has no revision 1 equivalent.
    if bits % BITS_PER_BLOCK != 0 {
        return Err(DecodeError::FieldOutOfRange {
            field: "num_feature_bits",
        });
    }
    Ok(DeviceInfo {
        device_id: w.device_id.get(),
        vendor_id: w.vendor_id.get(),
        device_uuid: [0; 16],
        num_feature_blocks: bits / BITS_PER_BLOCK,
        config_size: w.config_size.get(),
        max_virtqueues: w.max_virtqueues.get(),
        admin_vq_start: u32::from(w.admin_vq_start.get()),
        admin_vq_count: u32::from(w.admin_vq_count.get()),
    })
}

/// Writes a late-2025 GET_DEVICE_INFO response payload, refusing what it cannot carry.
pub(crate) fn write_device_info<S: Sink>(info: &DeviceInfo, s: &mut S) -> Result<(), EncodeError> {
    if info.device_uuid != [0; 16] {
        return Err(EncodeError::FieldOutOfRange {
            field: "device_uuid",
        });
    }
    let bits = info.num_feature_blocks.checked_mul(BITS_PER_BLOCK).ok_or(
        EncodeError::FieldOutOfRange {
            field: "num_feature_blocks",
        },
    )?;
    let admin_vq_start =
        u16::try_from(info.admin_vq_start).map_err(|_| EncodeError::FieldOutOfRange {
            field: "admin_vq_start",
        })?;
    let admin_vq_count =
        u16::try_from(info.admin_vq_count).map_err(|_| EncodeError::FieldOutOfRange {
            field: "admin_vq_count",
        })?;
    s.put_struct(&DeviceInfoLate2025 {
        device_id: info.device_id.into(),
        vendor_id: info.vendor_id.into(),
        num_feature_bits: bits.into(),
        config_size: info.config_size.into(),
        max_virtqueues: info.max_virtqueues.into(),
        admin_vq_start: admin_vq_start.into(),
        admin_vq_count: admin_vq_count.into(),
    })
}

wire_struct! {
    /// Fixed part of the GET_DEVICES response of the late-2025 drafts.
    GetDevicesRespLate2025 { offset: U16, count: U16, next_offset: U16 } = 6
}

/// Reads the fixed part of a late-2025 GET_DEVICES response as (offset, next_offset, count).
pub(crate) fn read_get_devices_resp(r: &mut Reader<'_>) -> Result<(u16, u16, u16), DecodeError> {
    let w: GetDevicesRespLate2025 = r.take()?;
    Ok((w.offset.get(), w.next_offset.get(), w.count.get()))
}

/// Writes the fixed part of a late-2025 GET_DEVICES response.
pub(crate) fn write_get_devices_resp<S: Sink>(
    s: &mut S,
    offset: u16,
    next_offset: u16,
    count: u16,
) -> Result<(), EncodeError> {
    s.put_struct(&GetDevicesRespLate2025 {
        offset: offset.into(),
        count: count.into(),
        next_offset: next_offset.into(),
    })
}
