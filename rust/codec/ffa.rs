// SPDX-License-Identifier: GPL-2.0

//! Messages specific to the Arm FF-A bus ("Virtio Message Bus over FF-A", DEN0153 alpha).
//!
//! The specification this project follows names the fields of each message but leaves
//! some widths and orders open; where it does, the layout below is this project's choice
//! and the comment on the wire struct says so.

use zerocopy::little_endian::{U16, U32, U64};

use super::error::{DecodeError, EncodeError};
use super::header::TYPE_RESPONSE;
use super::wire::{wire_struct, Reader, Sink};

/// Message ids of FF-A bus messages (type bit 1 set, ids 0x80-0xFF).
pub mod id {
    /// VERSION: negotiate bus version, transport revision and features.
    pub const VERSION: u8 = 0x80;
    /// AREA_SHARE: make an FF-A shared memory area usable for bus addresses.
    pub const AREA_SHARE: u8 = 0x81;
    /// AREA_UNSHARE: stop using a shared memory area.
    pub const AREA_UNSHARE: u8 = 0x82;
    /// RESET: reset the bus instance.
    pub const RESET: u8 = 0x83;
    /// EVENT_POLL: fetch one pending event.
    pub const EVENT_POLL: u8 = 0x84;
    /// EVENT_CONFIGURE: choose how the device side signals events.
    pub const EVENT_CONFIGURE: u8 = 0x85;
    /// FIFO_CONFIGURE: set up the shared-memory FIFO.
    pub const FIFO_CONFIGURE: u8 = 0x86;
    /// ERROR: response to a request the device side could not serve.
    pub const ERROR: u8 = 0x87;
    /// AREA_RELEASE: the device side no longer uses an area (event).
    pub const AREA_RELEASE: u8 = 0xC0;
}

/// The protocol version word an ALP1 VERSION carries.
pub const ALP1_PROTO_VERSION: u32 = 0x0001_0000;

/// Bus feature bit: direct messages from device side to driver side.
pub const BUS_F_DIRECT_RX: u64 = 1 << 0;
/// Bus feature bit: direct messages from driver side to device side.
pub const BUS_F_DIRECT_TX: u64 = 1 << 1;
/// Bus feature bit: indirect messages from device side to driver side.
pub const BUS_F_INDIRECT_RX: u64 = 1 << 2;
/// Bus feature bit: indirect messages from driver side to device side.
pub const BUS_F_INDIRECT_TX: u64 = 1 << 3;
/// Bus feature bit: FF-A notifications from device side to driver side.
pub const BUS_F_NOTIF_RX: u64 = 1 << 4;
/// Bus feature bit: FF-A notifications from driver side to device side.
pub const BUS_F_NOTIF_TX: u64 = 1 << 5;
/// Bus feature bit: shared-memory FIFO.
pub const BUS_F_FIFO: u64 = 1 << 6;

/// UUID of a partition in the device role (c66028b5-2498-4aa1-9de7-77da6122abf0).
pub const DEVICE_ROLE_UUID: [u8; 16] = [
    0xc6, 0x60, 0x28, 0xb5, 0x24, 0x98, 0x4a, 0xa1, 0x9d, 0xe7, 0x77, 0xda, 0x61, 0x22, 0xab, 0xf0,
];

/// UUID of a partition in the driver role (bd7fd089-6795-472b-b47f-db0c5d9a719d).
pub const DRIVER_ROLE_UUID: [u8; 16] = [
    0xbd, 0x7f, 0xd0, 0x89, 0x67, 0x95, 0x47, 0x2b, 0xb4, 0x7f, 0xdb, 0x0c, 0x5d, 0x9a, 0x71, 0x9d,
];

/// Largest message FFA_MSG_SEND_DIRECT_REQ2 carries (registers x4-x17).
pub const DIRECT_MSG_MAX_SIZE: u16 = 112;

/// Bits of a bus address that hold the offset inside an area.
const AREA_OFFSET_BITS: u32 = 48;

/// Returns the bus address of `offset` inside area `area_id`, or `None` if the offset does
/// not fit in 48 bits.
pub fn bus_address(area_id: u16, offset: u64) -> Option<u64> {
    if offset >> AREA_OFFSET_BITS != 0 {
        return None;
    }
    Some((u64::from(area_id) << AREA_OFFSET_BITS) | offset)
}

/// Splits a bus address into its area id and the offset inside the area.
pub fn split_bus_address(address: u64) -> (u16, u64) {
    let [a0, a1, ..] = address.to_be_bytes();
    (
        u16::from_be_bytes([a0, a1]),
        address & ((1 << AREA_OFFSET_BITS) - 1),
    )
}

/// Result of AREA_SHARE and AREA_UNSHARE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AreaResult {
    /// Done.
    Ok,
    /// Refused.
    Error,
    /// Try again later.
    Busy,
}

impl AreaResult {
    /// Returns the wire value.
    pub const fn to_wire(self) -> u16 {
        match self {
            Self::Ok => 0,
            Self::Error => 1,
            Self::Busy => 2,
        }
    }

    /// Parses a wire value.
    pub const fn from_wire(value: u16) -> Option<Self> {
        match value {
            0 => Some(Self::Ok),
            1 => Some(Self::Error),
            2 => Some(Self::Busy),
            _ => None,
        }
    }
}

/// How the device side signals pending events (EVENT_CONFIGURE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventMethod {
    /// The driver side polls with EVENT_POLL.
    Poll,
    /// An FF-A notification.
    Notification,
    /// An indirect message.
    Indirect,
    /// The shared-memory FIFO.
    Fifo,
}

impl EventMethod {
    /// Returns the wire value.
    pub const fn to_wire(self) -> u8 {
        match self {
            Self::Poll => 0,
            Self::Notification => 1,
            Self::Indirect => 2,
            Self::Fifo => 3,
        }
    }

    /// Parses a wire value.
    pub const fn from_wire(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Poll),
            1 => Some(Self::Notification),
            2 => Some(Self::Indirect),
            3 => Some(Self::Fifo),
            _ => None,
        }
    }
}

/// An FF-A memory area, as AREA_SHARE and AREA_UNSHARE name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Area {
    /// Area id, the top 16 bits of bus addresses inside it.
    pub area_id: u16,
    /// FF-A memory handle from FFA_MEM_SHARE.
    pub handle: u64,
    /// FF-A memory tag.
    pub tag: u64,
    /// Size in pages.
    pub page_count: u32,
    /// FF-A memory attributes.
    pub attributes: u32,
}

/// What the device side answers to an ALP2 VERSION request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionInfo {
    /// Bus protocol version.
    pub bus_version: u32,
    /// Transport revision.
    pub transport_revision: u32,
    /// FF-A version.
    pub ffa_version: u32,
    /// Transport feature bits.
    pub transport_features: u64,
    /// Bus feature bits, see the `BUS_F_*` constants.
    pub bus_features: u64,
    /// Number of memory areas the device side accepts.
    pub max_areas: u16,
}

/// An FF-A bus message (type bit 1 set, dev_num 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfaBusMessage {
    /// VERSION request in the ALP2 layout.
    VersionRequest {
        /// Bus protocol version.
        bus_version: u32,
        /// Transport revision.
        transport_revision: u32,
        /// FF-A version.
        ffa_version: u32,
    },
    /// VERSION response in the ALP2 layout.
    VersionResponse(VersionInfo),
    /// VERSION request in the ALP1 layout, for older device partitions; its protocol
    /// version word is always [`ALP1_PROTO_VERSION`].
    VersionAlp1Request {
        /// Transport revision.
        transport_revision: u32,
    },
    /// VERSION response in the ALP1 layout.
    VersionAlp1Response {
        /// Transport revision.
        transport_revision: u32,
    },
    /// AREA_SHARE request.
    AreaShareRequest(Area),
    /// AREA_SHARE response.
    AreaShareResponse {
        /// Area id.
        area_id: u16,
        /// Outcome.
        result: AreaResult,
    },
    /// AREA_UNSHARE request.
    AreaUnshareRequest(Area),
    /// AREA_UNSHARE response.
    AreaUnshareResponse {
        /// Area id.
        area_id: u16,
        /// Outcome.
        result: AreaResult,
    },
    /// RESET request.
    ResetRequest,
    /// RESET response.
    ResetResponse {
        /// 0 on success.
        result: u16,
    },
    /// EVENT_POLL request.
    EventPollRequest,
    /// EVENT_POLL response meaning no event is pending; a pending event is sent instead of
    /// this response, as the event message itself.
    EventPollResponse,
    /// EVENT_CONFIGURE request.
    EventConfigureRequest {
        /// How events are to be signalled.
        method: EventMethod,
        /// FF-A notification id to use.
        notification_id: u16,
    },
    /// EVENT_CONFIGURE response.
    EventConfigureResponse,
    /// FIFO_CONFIGURE request.
    FifoConfigureRequest {
        /// FF-A memory handle of the FIFO.
        handle: u64,
        /// Size of the FIFO in pages.
        page_count: u16,
        /// FF-A notification id the driver side listens on.
        notification_id: u16,
    },
    /// FIFO_CONFIGURE response.
    FifoConfigureResponse,
    /// ERROR response to a request that failed.
    Error {
        /// Id of the request that failed.
        msg_id: u16,
    },
    /// AREA_RELEASE event.
    AreaRelease {
        /// Area id.
        area_id: u16,
    },
}

wire_struct! {
    /// ALP2 VERSION request payload.
    VersionReqWire { bus_version: U32, transport_revision: U32, ffa_version: U32 } = 12
}

wire_struct! {
    /// ALP2 VERSION response payload: the request's fields followed by what the response
    /// adds. The feature words are 64 bits wide and packed without padding; this
    /// project's choice, as the specification gives no widths for them.
    VersionRespWire {
        bus_version: U32,
        transport_revision: U32,
        ffa_version: U32,
        transport_features: U64,
        bus_features: U64,
        max_areas: U16,
    } = 30
}

wire_struct! {
    /// ALP1 VERSION payload, the same in both directions (this project's choice for the
    /// response).
    VersionAlp1Wire { proto_version: U32, transport_revision: U32 } = 8
}

wire_struct! {
    /// AREA_SHARE and AREA_UNSHARE request payload.
    AreaWire { area_id: U16, handle: U64, tag: U64, page_count: U32, attributes: U32 } = 26
}

wire_struct! {
    /// AREA_SHARE and AREA_UNSHARE response payload.
    AreaRespWire { area_id: U16, result: U16 } = 4
}

wire_struct! {
    /// EVENT_CONFIGURE request payload.
    EventConfigureWire { method: u8, reserved: u8, notification_id: U16 } = 4
}

wire_struct! {
    /// FIFO_CONFIGURE request payload.
    FifoConfigureWire { handle: U64, page_count: U16, notification_id: U16 } = 12
}

/// ALP1 and ALP2 VERSION payloads differ in size in both directions, so the payload
/// length tells them apart without looking at any value.
const ALP1_VERSION_SIZE: usize = core::mem::size_of::<VersionAlp1Wire>();

impl AreaWire {
    fn from_area(a: &Area) -> Self {
        Self {
            area_id: a.area_id.into(),
            handle: a.handle.into(),
            tag: a.tag.into(),
            page_count: a.page_count.into(),
            attributes: a.attributes.into(),
        }
    }

    fn area(&self) -> Area {
        Area {
            area_id: self.area_id.get(),
            handle: self.handle.get(),
            tag: self.tag.get(),
            page_count: self.page_count.get(),
            attributes: self.attributes.get(),
        }
    }
}

fn take_area_result(r: &mut Reader<'_>) -> Result<(u16, AreaResult), DecodeError> {
    let w: AreaRespWire = r.take()?;
    let result = AreaResult::from_wire(w.result.get())
        .ok_or(DecodeError::FieldOutOfRange { field: "result" })?;
    Ok((w.area_id.get(), result))
}

fn take_alp1(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let w: VersionAlp1Wire = r.take()?;
    if w.proto_version.get() != ALP1_PROTO_VERSION {
        return Err(DecodeError::FieldOutOfRange {
            field: "proto_version",
        });
    }
    Ok(w.transport_revision.get())
}

/// Decodes the payload of an FF-A bus message whose header has `msg_type` and `msg_id`.
pub(crate) fn decode(
    msg_type: u8,
    msg_id: u8,
    r: &mut Reader<'_>,
) -> Result<FfaBusMessage, DecodeError> {
    use FfaBusMessage as M;

    let response = msg_type & TYPE_RESPONSE != 0;
    let alp1 = r.remaining() == ALP1_VERSION_SIZE;
    let msg = match (msg_id, response) {
        (id::VERSION, false) if alp1 => M::VersionAlp1Request {
            transport_revision: take_alp1(r)?,
        },
        (id::VERSION, true) if alp1 => M::VersionAlp1Response {
            transport_revision: take_alp1(r)?,
        },
        (id::VERSION, false) => {
            let w: VersionReqWire = r.take()?;
            M::VersionRequest {
                bus_version: w.bus_version.get(),
                transport_revision: w.transport_revision.get(),
                ffa_version: w.ffa_version.get(),
            }
        }
        (id::VERSION, true) => {
            let w: VersionRespWire = r.take()?;
            M::VersionResponse(VersionInfo {
                bus_version: w.bus_version.get(),
                transport_revision: w.transport_revision.get(),
                ffa_version: w.ffa_version.get(),
                transport_features: w.transport_features.get(),
                bus_features: w.bus_features.get(),
                max_areas: w.max_areas.get(),
            })
        }
        (id::AREA_SHARE, false) => M::AreaShareRequest(r.take::<AreaWire>()?.area()),
        (id::AREA_SHARE, true) => {
            let (area_id, result) = take_area_result(r)?;
            M::AreaShareResponse { area_id, result }
        }
        (id::AREA_UNSHARE, false) => M::AreaUnshareRequest(r.take::<AreaWire>()?.area()),
        (id::AREA_UNSHARE, true) => {
            let (area_id, result) = take_area_result(r)?;
            M::AreaUnshareResponse { area_id, result }
        }
        (id::RESET, false) => M::ResetRequest,
        (id::RESET, true) => M::ResetResponse {
            result: r.take::<U16>()?.get(),
        },
        (id::EVENT_POLL, false) => M::EventPollRequest,
        (id::EVENT_POLL, true) => M::EventPollResponse,
        (id::EVENT_CONFIGURE, false) => {
            // The reserved byte is ignored on receipt so a later version can use it.
            let w: EventConfigureWire = r.take()?;
            M::EventConfigureRequest {
                method: EventMethod::from_wire(w.method)
                    .ok_or(DecodeError::FieldOutOfRange { field: "method" })?,
                notification_id: w.notification_id.get(),
            }
        }
        (id::EVENT_CONFIGURE, true) => M::EventConfigureResponse,
        (id::FIFO_CONFIGURE, false) => {
            let w: FifoConfigureWire = r.take()?;
            M::FifoConfigureRequest {
                handle: w.handle.get(),
                page_count: w.page_count.get(),
                notification_id: w.notification_id.get(),
            }
        }
        (id::FIFO_CONFIGURE, true) => M::FifoConfigureResponse,
        (id::ERROR, true) => M::Error {
            msg_id: r.take::<U16>()?.get(),
        },
        (id::ERROR, false) => return Err(DecodeError::NoRequestForId { msg_type, msg_id }),
        (id::AREA_RELEASE, false) => M::AreaRelease {
            area_id: r.take::<U16>()?.get(),
        },
        (id::AREA_RELEASE, true) => return Err(DecodeError::NoResponseForId { msg_type, msg_id }),
        _ => return Err(DecodeError::UnknownId { msg_type, msg_id }),
    };
    Ok(msg)
}

impl FfaBusMessage {
    /// Returns the message id.
    pub const fn msg_id(&self) -> u8 {
        use FfaBusMessage as M;
        match self {
            M::VersionRequest { .. }
            | M::VersionResponse(_)
            | M::VersionAlp1Request { .. }
            | M::VersionAlp1Response { .. } => id::VERSION,
            M::AreaShareRequest(_) | M::AreaShareResponse { .. } => id::AREA_SHARE,
            M::AreaUnshareRequest(_) | M::AreaUnshareResponse { .. } => id::AREA_UNSHARE,
            M::ResetRequest | M::ResetResponse { .. } => id::RESET,
            M::EventPollRequest | M::EventPollResponse => id::EVENT_POLL,
            M::EventConfigureRequest { .. } | M::EventConfigureResponse => id::EVENT_CONFIGURE,
            M::FifoConfigureRequest { .. } | M::FifoConfigureResponse => id::FIFO_CONFIGURE,
            M::Error { .. } => id::ERROR,
            M::AreaRelease { .. } => id::AREA_RELEASE,
        }
    }

    /// Returns whether this is a response.
    pub const fn is_response(&self) -> bool {
        use FfaBusMessage as M;
        matches!(
            self,
            M::VersionResponse(_)
                | M::VersionAlp1Response { .. }
                | M::AreaShareResponse { .. }
                | M::AreaUnshareResponse { .. }
                | M::ResetResponse { .. }
                | M::EventPollResponse
                | M::EventConfigureResponse
                | M::FifoConfigureResponse
                | M::Error { .. }
        )
    }

    /// Writes the payload.
    pub(crate) fn write_payload<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        use FfaBusMessage as M;
        match *self {
            M::VersionRequest {
                bus_version,
                transport_revision,
                ffa_version,
            } => s.put_struct(&VersionReqWire {
                bus_version: bus_version.into(),
                transport_revision: transport_revision.into(),
                ffa_version: ffa_version.into(),
            }),
            M::VersionResponse(ref v) => s.put_struct(&VersionRespWire {
                bus_version: v.bus_version.into(),
                transport_revision: v.transport_revision.into(),
                ffa_version: v.ffa_version.into(),
                transport_features: v.transport_features.into(),
                bus_features: v.bus_features.into(),
                max_areas: v.max_areas.into(),
            }),
            M::VersionAlp1Request { transport_revision }
            | M::VersionAlp1Response { transport_revision } => s.put_struct(&VersionAlp1Wire {
                proto_version: ALP1_PROTO_VERSION.into(),
                transport_revision: transport_revision.into(),
            }),
            M::AreaShareRequest(ref a) | M::AreaUnshareRequest(ref a) => {
                s.put_struct(&AreaWire::from_area(a))
            }
            M::AreaShareResponse { area_id, result }
            | M::AreaUnshareResponse { area_id, result } => s.put_struct(&AreaRespWire {
                area_id: area_id.into(),
                result: result.to_wire().into(),
            }),
            M::ResetRequest
            | M::EventPollRequest
            | M::EventPollResponse
            | M::EventConfigureResponse
            | M::FifoConfigureResponse => Ok(()),
            M::ResetResponse { result } => s.put_struct(&U16::new(result)),
            M::EventConfigureRequest {
                method,
                notification_id,
            } => s.put_struct(&EventConfigureWire {
                method: method.to_wire(),
                reserved: 0,
                notification_id: notification_id.into(),
            }),
            M::FifoConfigureRequest {
                handle,
                page_count,
                notification_id,
            } => s.put_struct(&FifoConfigureWire {
                handle: handle.into(),
                page_count: page_count.into(),
                notification_id: notification_id.into(),
            }),
            M::Error { msg_id } => s.put_struct(&U16::new(msg_id)),
            M::AreaRelease { area_id } => s.put_struct(&U16::new(area_id)),
        }
    }
}
