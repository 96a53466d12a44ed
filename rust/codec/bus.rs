// SPDX-License-Identifier: GPL-2.0

//! Generic bus messages that every bus carries: GET_DEVICES, PING and EVENT_DEVICE.

use zerocopy::little_endian::{U16, U32};

use super::compat::{self, Layout};
use super::error::{DecodeError, EncodeError};
use super::header::TYPE_RESPONSE;
use super::wire::{wire_struct, Reader, Sink};

/// Message ids of generic bus messages (type bit 1 set, ids below 0x80).
pub mod id {
    /// GET_DEVICES: which device numbers in a window are present.
    pub const GET_DEVICES: u8 = 0x02;
    /// PING: liveness check; the response echoes the data.
    pub const PING: u8 = 0x03;
    /// EVENT_DEVICE: a device was added or removed (device side to driver side).
    pub const EVENT_DEVICE: u8 = 0x40;
}

/// GET_DEVICES counts device numbers in multiples of this many (one bitmap byte).
pub const DEVICES_PER_BITMAP_BYTE: u16 = 8;

/// State an EVENT_DEVICE reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// The device was added and is ready.
    Added,
    /// The device was removed.
    Removed,
}

impl DeviceState {
    /// Returns the wire value.
    pub const fn to_wire(self) -> u16 {
        match self {
            Self::Added => 1,
            Self::Removed => 2,
        }
    }

    /// Parses a wire value.
    pub const fn from_wire(value: u16) -> Option<Self> {
        match value {
            1 => Some(Self::Added),
            2 => Some(Self::Removed),
            _ => None,
        }
    }
}

/// A generic bus message (type bit 1 set, dev_num 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusMessage<'a> {
    /// GET_DEVICES request.
    GetDevicesRequest {
        /// First device number of the window.
        offset: u16,
        /// Width of the window, a multiple of 8.
        count: u16,
    },
    /// GET_DEVICES response.
    GetDevicesResponse {
        /// First device number the bitmap describes.
        offset: u16,
        /// Where to continue the scan; 0 means there are no more devices.
        next_offset: u16,
        /// Bit n (LSB first) set means device number `offset + n` is present; its length
        /// times 8 is the `count` field.
        bitmap: &'a [u8],
    },
    /// PING request.
    PingRequest {
        /// Value to echo.
        data: u32,
    },
    /// PING response.
    PingResponse {
        /// The echoed value.
        data: u32,
    },
    /// EVENT_DEVICE event.
    EventDevice {
        /// Device number that changed.
        dev_num: u16,
        /// What happened to it.
        state: DeviceState,
    },
}

/// Iterator over the present device numbers of a GET_DEVICES bitmap.
#[derive(Debug, Clone)]
pub struct PresentDevices<'a> {
    offset: u16,
    bitmap: &'a [u8],
    bit: usize,
}

/// Returns the device numbers a GET_DEVICES response with `offset` and `bitmap` marks present.
///
/// Bits whose device number would exceed 65535 are ignored; a decoded response never has
/// them.
pub fn present_devices(offset: u16, bitmap: &[u8]) -> PresentDevices<'_> {
    PresentDevices {
        offset,
        bitmap,
        bit: 0,
    }
}

impl Iterator for PresentDevices<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        loop {
            // Device numbers are 16 bits wide, so no bit past 65535 can name one.
            let n = u16::try_from(self.bit).ok()?;
            let byte = *self.bitmap.get(self.bit / 8)?;
            self.bit += 1;
            if byte & (1 << (n % 8)) != 0 {
                return self.offset.checked_add(n);
            }
        }
    }
}

wire_struct! {
    /// GET_DEVICES request payload.
    GetDevicesReqWire { offset: U16, count: U16 } = 4
}

wire_struct! {
    /// Fixed part of the GET_DEVICES response payload.
    GetDevicesRespWire { offset: U16, next_offset: U16, count: U16 } = 6
}

wire_struct! {
    /// EVENT_DEVICE payload.
    EventDeviceWire { dev_num: U16, state: U16 } = 4
}

/// Checks a GET_DEVICES `count` against the window rules shared by both directions.
fn count_is_valid(offset: u16, count: u16) -> bool {
    count % DEVICES_PER_BITMAP_BYTE == 0 && u32::from(offset) + u32::from(count) <= 1 << 16
}

/// Decodes the payload of a generic bus message whose header has `msg_type` and `msg_id`.
pub(crate) fn decode<'a>(
    msg_type: u8,
    msg_id: u8,
    r: &mut Reader<'a>,
    layout: Layout,
) -> Result<BusMessage<'a>, DecodeError> {
    let count_out_of_range = DecodeError::FieldOutOfRange { field: "count" };
    let response = msg_type & TYPE_RESPONSE != 0;
    let msg = match (msg_id, response) {
        (id::GET_DEVICES, false) => {
            let w: GetDevicesReqWire = r.take()?;
            if !count_is_valid(w.offset.get(), w.count.get()) {
                return Err(count_out_of_range);
            }
            BusMessage::GetDevicesRequest {
                offset: w.offset.get(),
                count: w.count.get(),
            }
        }
        (id::GET_DEVICES, true) => {
            let (offset, next_offset, count) = match layout {
                Layout::Revision1 => {
                    let w: GetDevicesRespWire = r.take()?;
                    (w.offset.get(), w.next_offset.get(), w.count.get())
                }
                Layout::Late2025 => compat::read_get_devices_resp(r)?,
            };
            if !count_is_valid(offset, count) {
                return Err(count_out_of_range);
            }
            BusMessage::GetDevicesResponse {
                offset,
                next_offset,
                bitmap: r.take_bytes(usize::from(count / DEVICES_PER_BITMAP_BYTE), "count")?,
            }
        }
        (id::PING, false) => BusMessage::PingRequest {
            data: r.take::<U32>()?.get(),
        },
        (id::PING, true) => BusMessage::PingResponse {
            data: r.take::<U32>()?.get(),
        },
        (id::EVENT_DEVICE, false) => {
            let w: EventDeviceWire = r.take()?;
            BusMessage::EventDevice {
                dev_num: w.dev_num.get(),
                state: DeviceState::from_wire(w.state.get())
                    .ok_or(DecodeError::FieldOutOfRange { field: "state" })?,
            }
        }
        (id::EVENT_DEVICE, true) => return Err(DecodeError::NoResponseForId { msg_type, msg_id }),
        _ => return Err(DecodeError::UnknownId { msg_type, msg_id }),
    };
    Ok(msg)
}

impl BusMessage<'_> {
    /// Returns the message id.
    pub const fn msg_id(&self) -> u8 {
        match self {
            Self::GetDevicesRequest { .. } | Self::GetDevicesResponse { .. } => id::GET_DEVICES,
            Self::PingRequest { .. } | Self::PingResponse { .. } => id::PING,
            Self::EventDevice { .. } => id::EVENT_DEVICE,
        }
    }

    /// Returns whether this is a response.
    pub const fn is_response(&self) -> bool {
        matches!(
            self,
            Self::GetDevicesResponse { .. } | Self::PingResponse { .. }
        )
    }

    /// Writes the payload in `layout`.
    pub(crate) fn write_payload<S: Sink>(
        &self,
        layout: Layout,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        let count_out_of_range = EncodeError::FieldOutOfRange { field: "count" };
        match *self {
            Self::GetDevicesRequest { offset, count } => {
                if !count_is_valid(offset, count) {
                    return Err(count_out_of_range);
                }
                s.put_struct(&GetDevicesReqWire {
                    offset: offset.into(),
                    count: count.into(),
                })
            }
            Self::GetDevicesResponse {
                offset,
                next_offset,
                bitmap,
            } => {
                let count = u16::try_from(bitmap.len())
                    .ok()
                    .and_then(|n| n.checked_mul(DEVICES_PER_BITMAP_BYTE))
                    .ok_or(count_out_of_range)?;
                if !count_is_valid(offset, count) {
                    return Err(count_out_of_range);
                }
                match layout {
                    Layout::Revision1 => s.put_struct(&GetDevicesRespWire {
                        offset: offset.into(),
                        next_offset: next_offset.into(),
                        count: count.into(),
                    })?,
                    Layout::Late2025 => {
                        compat::write_get_devices_resp(s, offset, next_offset, count)?
                    }
                }
                s.put(bitmap)
            }
            Self::PingRequest { data } | Self::PingResponse { data } => {
                s.put_struct(&U32::new(data))
            }
            Self::EventDevice { dev_num, state } => s.put_struct(&EventDeviceWire {
                dev_num: dev_num.into(),
                state: state.to_wire().into(),
            }),
        }
    }
}
