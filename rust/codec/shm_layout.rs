// SPDX-License-Identifier: GPL-2.0

//! The shared-memory bus's region: header, rings and window, byte for byte as
//! `Documentation/shm-bus.rst` (*Region layout*, *Window mode*) lays them out.
//!
//! The one definition both sides use: `vmsg-device` writes the header with
//! [`RegionLayout::header`] and the kernel checks it with [`RegionLayout::parse`], so writer
//! and reader cannot drift apart. The memory accesses stay with each side (MMIO in the
//! kernel, volatile atomics on the host); this module computes offsets and checks values
//! only. Every value comes from the other side, so nothing here panics on any input.

use core::fmt;
use core::mem::offset_of;

use zerocopy::little_endian::{U32, U64};

use super::header::{Header as MessageHeader, HEADER_SIZE as MESSAGE_HEADER_SIZE};
use super::wire::wire_struct;

/// `magic`: the bytes `V M S G` read as a little-endian u32.
pub const MAGIC: u32 = 0x4753_4d56;
/// `layout_version` of this layout; window mode did not change it (zero window fields).
pub const LAYOUT_VERSION: u32 = 1;
/// `header_size`: bytes of the region header (not the 8-byte message header).
pub const HEADER_SIZE: u32 = 0x40;

/// The header's bytes, as a side reads or writes them.
pub type HeaderBytes = [u8; HEADER_SIZE as usize];

wire_struct! {
    /// The header at offset 0 of the region (little-endian), in the order of shm-bus.rst's
    /// table; the offsets in [`hdr`] are taken from it.
    RawHeader {
        magic: U32,
        layout_version: U32,
        header_size: U32,
        slot_size: U32,
        slot_count: U32,
        to_device_offset: U32,
        to_driver_offset: U32,
        device_peer_id: U32,
        device_state: U32,
        driver_state: U32,
        window_offset: U64,
        window_size: U64,
        attach_epoch: U32,
        reserved: U32,
    } = HEADER_SIZE as usize
}

/// Header field offsets, for the single 32-bit (or 64-bit) access each field takes.
pub mod hdr {
    use super::{offset_of, RawHeader};

    /// u32 `magic`.
    pub const MAGIC: usize = offset_of!(RawHeader, magic);
    /// u32 `layout_version`.
    pub const LAYOUT_VERSION: usize = offset_of!(RawHeader, layout_version);
    /// u32 `header_size`.
    pub const HEADER_SIZE: usize = offset_of!(RawHeader, header_size);
    /// u32 `slot_size`.
    pub const SLOT_SIZE: usize = offset_of!(RawHeader, slot_size);
    /// u32 `slot_count`.
    pub const SLOT_COUNT: usize = offset_of!(RawHeader, slot_count);
    /// u32 offset of the driver-to-device ring.
    pub const TO_DEVICE_OFFSET: usize = offset_of!(RawHeader, to_device_offset);
    /// u32 offset of the device-to-driver ring.
    pub const TO_DRIVER_OFFSET: usize = offset_of!(RawHeader, to_driver_offset);
    /// u32 ivshmem peer id to ring for the device side.
    pub const DEVICE_PEER_ID: usize = offset_of!(RawHeader, device_peer_id);
    /// u32 `device_state` ([`device_state`](super::device_state)).
    pub const DEVICE_STATE: usize = offset_of!(RawHeader, device_state);
    /// u32 `driver_state` ([`driver_state`](super::driver_state)).
    pub const DRIVER_STATE: usize = offset_of!(RawHeader, driver_state);
    /// u64 `window_offset` (0: no window).
    pub const WINDOW_OFFSET: usize = offset_of!(RawHeader, window_offset);
    /// u64 `window_size` (0: no window).
    pub const WINDOW_SIZE: usize = offset_of!(RawHeader, window_size);
    /// u32 `attach_epoch`: the device side's own count of attachments; the driver ignores it.
    pub const ATTACH_EPOCH: usize = offset_of!(RawHeader, attach_epoch);
}

/// Values of `device_state`, written by the device side.
pub mod device_state {
    /// The rings are not usable (being set up, or reset after a detach).
    pub const NOT_READY: u32 = 0;
    /// The device side serves the rings.
    pub const READY: u32 = 1;
    /// The device side is going away: it announced every device removed.
    pub const GOING_AWAY: u32 = 2;
}

/// Values of `driver_state`, written by the driver side.
pub mod driver_state {
    /// The driver side does not use the rings.
    pub const DETACHED: u32 = 0;
    /// The driver side uses the rings.
    pub const ATTACHED: u32 = 1;
}

/// Ring field offsets, from the ring's start; each index has its own cache line so that
/// the two sides never write the same line.
pub mod ring {
    /// u32 producer index, written by the producer only.
    pub const PRODUCER: usize = 0;
    /// u32 consumer index, written by the consumer only.
    pub const CONSUMER: usize = 64;
    /// u32 `consumer_wants_doorbell`, written by the consumer only.
    pub const WANTS_DOORBELL: usize = 68;
    /// The first slot.
    pub const SLOTS: usize = 128;
}

/// Ring offsets are multiples of this (one cache line).
pub const RING_ALIGN: u32 = 64;
/// Smallest `slot_size`, above revision 1's smallest maximum message size (52).
pub const MIN_SLOT_SIZE: u32 = 64;
/// Largest `slot_size`: the largest `msg_size` (65535) rounded up to [`SLOT_SIZE_ALIGN`].
pub const MAX_SLOT_SIZE: u32 = 65536;
/// `slot_size` is a multiple of this, so that every slot starts 8-byte aligned.
pub const SLOT_SIZE_ALIGN: u32 = 8;
/// Smallest `slot_count`.
pub const MIN_SLOT_COUNT: u32 = 2;
/// Largest `slot_count`.
pub const MAX_SLOT_COUNT: u32 = 65536;
/// The window's offset and size are multiples of this (a page), so it can be mapped.
pub const WINDOW_ALIGN: u64 = 4096;
/// Bus addresses are `area_id << AREA_SHIFT | offset`.
pub const AREA_SHIFT: u32 = 48;
/// The area id of the window; area 0 would be ambiguous with guest-physical addresses.
pub const WINDOW_AREA_ID: u64 = 1;
/// Bus address of the window's first byte.
pub const WINDOW_BUS_BASE: u64 = WINDOW_AREA_ID << AREA_SHIFT;
/// Byte offset of `msg_size` in the message a slot starts with.
pub const MSG_SIZE_OFFSET: usize = offset_of!(MessageHeader, msg_size);
/// Smallest message a slot can hold: the common message header.
pub const MIN_MESSAGE: usize = MESSAGE_HEADER_SIZE;

/// Returns the bytes one ring takes: its index lines and `slot_count` slots.
pub fn ring_size(slot_size: u32, slot_count: u32) -> u64 {
    // `SLOTS` is 128; widening a usize constant has no `From`.
    const SLOTS: u64 = ring::SLOTS as u64;
    SLOTS + u64::from(slot_size) * u64::from(slot_count)
}

/// A header field with a rule of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `magic`.
    Magic,
    /// `layout_version`.
    LayoutVersion,
    /// `header_size`.
    HeaderSize,
    /// `slot_size`.
    SlotSize,
    /// `slot_count`.
    SlotCount,
    /// `to_device_offset`.
    ToDeviceOffset,
    /// `to_driver_offset`.
    ToDriverOffset,
}

impl Field {
    /// Returns the field's name in shm-bus.rst.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Magic => "magic",
            Self::LayoutVersion => "layout_version",
            Self::HeaderSize => "header_size",
            Self::SlotSize => "slot_size",
            Self::SlotCount => "slot_count",
            Self::ToDeviceOffset => "to_device_offset",
            Self::ToDriverOffset => "to_driver_offset",
        }
    }

    /// Returns what the field must hold, for the log.
    const fn rule(self) -> &'static str {
        match self {
            Self::Magic => "not 0x47534d56",
            Self::LayoutVersion => "not 1",
            Self::HeaderSize => "not 0x40",
            Self::SlotSize => "not a multiple of 8 from 64 to 65536",
            Self::SlotCount => "not a power of two from 2 to 65536",
            Self::ToDeviceOffset | Self::ToDriverOffset => {
                "not 64-byte aligned, inside the header, or the ring does not fit the region"
            }
        }
    }
}

/// Why a region header was refused: the field and the value it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// A field holds a value the layout does not allow.
    BadField {
        /// The field.
        field: Field,
        /// Its value.
        value: u32,
    },
    /// The two rings overlap.
    RingsOverlap {
        /// `to_device_offset`.
        to_device_offset: u32,
        /// `to_driver_offset`.
        to_driver_offset: u32,
        /// Bytes each ring takes.
        ring_size: u64,
    },
    /// The window fields name no valid window: one of them 0, not multiples of
    /// [`WINDOW_ALIGN`], past the region's end, or over the header or a ring.
    BadWindow {
        /// `window_offset`.
        offset: u64,
        /// `window_size`.
        size: u64,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadField { field, value } => {
                write!(f, "bad {} {value:#x} ({})", field.name(), field.rule())
            }
            Self::RingsOverlap {
                to_device_offset,
                to_driver_offset,
                ring_size,
            } => write!(
                f,
                "rings overlap: to_device_offset {to_device_offset:#x}, \
                 to_driver_offset {to_driver_offset:#x}, {ring_size:#x} bytes each"
            ),
            Self::BadWindow { offset, size } => write!(
                f,
                "bad window: offset {offset:#x}, size {size:#x} (not multiples of 4096, \
                 empty, past the region's end, or over the header or a ring)"
            ),
        }
    }
}

/// A window: `size` bytes of the region from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Offset in the region.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
}

/// What a region header says: the geometry the device side chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionLayout {
    /// Bytes per slot: the device side's maximum message size.
    pub slot_size: u32,
    /// Slots per ring.
    pub slot_count: u32,
    /// Offset of the driver-to-device ring.
    pub to_device_offset: u32,
    /// Offset of the device-to-driver ring.
    pub to_driver_offset: u32,
    /// The ivshmem peer id to ring for the device side.
    pub device_peer_id: u32,
    /// The window, if the device side set one up.
    pub window: Option<Window>,
}

fn bad(field: Field, value: u32) -> HeaderError {
    HeaderError::BadField { field, value }
}

/// Checks a `slot_size`.
pub fn check_slot_size(slot_size: u32) -> Result<(), HeaderError> {
    if (MIN_SLOT_SIZE..=MAX_SLOT_SIZE).contains(&slot_size) && slot_size % SLOT_SIZE_ALIGN == 0 {
        Ok(())
    } else {
        Err(bad(Field::SlotSize, slot_size))
    }
}

/// Checks a `slot_count`.
pub fn check_slot_count(slot_count: u32) -> Result<(), HeaderError> {
    if (MIN_SLOT_COUNT..=MAX_SLOT_COUNT).contains(&slot_count) && slot_count.is_power_of_two() {
        Ok(())
    } else {
        Err(bad(Field::SlotCount, slot_count))
    }
}

impl RegionLayout {
    /// Reads and checks a header found in a region of `region_size` bytes.
    ///
    /// Every rule of shm-bus.rst is checked, in the order of its table: the constants, the
    /// slot geometry, each ring inside the region and past the header, the rings apart,
    /// and the window inside the region and clear of the header and both rings.
    /// `device_state`, `driver_state`, `attach_epoch` and the reserved word are not part of
    /// the layout and are not looked at.
    pub fn parse(bytes: &HeaderBytes, region_size: usize) -> Result<Self, HeaderError> {
        let len = u64::try_from(region_size).unwrap_or(u64::MAX);
        let h: RawHeader = zerocopy::transmute!(*bytes);
        for (field, value, want) in [
            (Field::Magic, h.magic.get(), MAGIC),
            (Field::LayoutVersion, h.layout_version.get(), LAYOUT_VERSION),
            (Field::HeaderSize, h.header_size.get(), HEADER_SIZE),
        ] {
            if value != want {
                return Err(bad(field, value));
            }
        }
        let slot_size = h.slot_size.get();
        check_slot_size(slot_size)?;
        let slot_count = h.slot_count.get();
        check_slot_count(slot_count)?;
        let ring_len = ring_size(slot_size, slot_count);
        let ring = |field, off: u32| {
            let end = u64::from(off) + ring_len;
            if off % RING_ALIGN != 0 || off < HEADER_SIZE || end > len {
                return Err(bad(field, off));
            }
            Ok(u64::from(off))
        };
        let to_device_offset = h.to_device_offset.get();
        let to_driver_offset = h.to_driver_offset.get();
        let a = ring(Field::ToDeviceOffset, to_device_offset)?;
        let b = ring(Field::ToDriverOffset, to_driver_offset)?;
        if a < b + ring_len && b < a + ring_len {
            return Err(HeaderError::RingsOverlap {
                to_device_offset,
                to_driver_offset,
                ring_size: ring_len,
            });
        }
        let window = match (h.window_offset.get(), h.window_size.get()) {
            (0, 0) => None,
            (offset, size) => {
                let end = offset.saturating_add(size);
                let clear_of = |ring: u64| end <= ring || offset >= ring + ring_len;
                if offset % WINDOW_ALIGN != 0
                    || size == 0
                    || size % WINDOW_ALIGN != 0
                    || end > len
                    || offset < u64::from(HEADER_SIZE)
                    || !clear_of(a)
                    || !clear_of(b)
                {
                    return Err(HeaderError::BadWindow { offset, size });
                }
                Some(Window { offset, size })
            }
        };
        Ok(Self {
            slot_size,
            slot_count,
            to_device_offset,
            to_driver_offset,
            device_peer_id: h.device_peer_id.get(),
            window,
        })
    }

    /// Returns the header that describes this layout, as the device side writes it before
    /// it accepts a client: `device_state` 0 (the device side stores 1 last, by itself, once
    /// the rings are ready), `driver_state` 0, `attach_epoch` as given, reserved 0.
    pub fn header(&self, attach_epoch: u32) -> HeaderBytes {
        let window = self.window.unwrap_or(Window { offset: 0, size: 0 });
        let raw = RawHeader {
            magic: MAGIC.into(),
            layout_version: LAYOUT_VERSION.into(),
            header_size: HEADER_SIZE.into(),
            slot_size: self.slot_size.into(),
            slot_count: self.slot_count.into(),
            to_device_offset: self.to_device_offset.into(),
            to_driver_offset: self.to_driver_offset.into(),
            device_peer_id: self.device_peer_id.into(),
            device_state: device_state::NOT_READY.into(),
            driver_state: driver_state::DETACHED.into(),
            window_offset: window.offset.into(),
            window_size: window.size.into(),
            attach_epoch: attach_epoch.into(),
            reserved: U32::new(0),
        };
        zerocopy::transmute!(raw)
    }

    /// Returns the bytes each ring takes.
    pub fn ring_size(&self) -> u64 {
        ring_size(self.slot_size, self.slot_count)
    }

    /// Returns the driver-to-device ring.
    pub fn to_device(&self) -> RingLayout {
        RingLayout::new(self.to_device_offset, self.slot_size, self.slot_count)
    }

    /// Returns the device-to-driver ring.
    pub fn to_driver(&self) -> RingLayout {
        RingLayout::new(self.to_driver_offset, self.slot_size, self.slot_count)
    }
}

/// A ring's producer and consumer indices that cannot both be right: more messages
/// waiting than the ring has slots (or the consumer ahead of the producer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorruptIndex {
    /// The producer index.
    pub producer: u32,
    /// The consumer index.
    pub consumer: u32,
}

/// A slot whose message states a `msg_size` below the message header or above the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadMessageSize(pub u16);

/// One ring's place in the region and its slot geometry.
///
/// Offsets are computed with wrapping arithmetic, so a geometry [`RegionLayout::parse`] did
/// not check gives wrong offsets, never a panic; every access a side makes with them is
/// bounds-checked by that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    base: usize,
    slot_size: u32,
    slot_count: u32,
}

impl RingLayout {
    /// A ring at offset `base` of the region.
    pub fn new(base: u32, slot_size: u32, slot_count: u32) -> Self {
        Self {
            base: to_usize(base),
            slot_size,
            slot_count,
        }
    }

    /// Returns the ring's offset in the region.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Returns the bytes per slot.
    pub fn slot_size(&self) -> u32 {
        self.slot_size
    }

    /// Returns the slots in the ring.
    pub fn slot_count(&self) -> u32 {
        self.slot_count
    }

    /// Returns the offset of the producer index in the region.
    pub fn producer_offset(&self) -> usize {
        self.base.wrapping_add(ring::PRODUCER)
    }

    /// Returns the offset of the consumer index in the region.
    pub fn consumer_offset(&self) -> usize {
        self.base.wrapping_add(ring::CONSUMER)
    }

    /// Returns the offset of `consumer_wants_doorbell` in the region.
    pub fn wants_doorbell_offset(&self) -> usize {
        self.base.wrapping_add(ring::WANTS_DOORBELL)
    }

    /// Returns the offset in the region of the slot that free-running index `index` uses.
    pub fn slot_offset(&self, index: u32) -> usize {
        let slot = to_usize(index & self.slot_count.wrapping_sub(1));
        self.base
            .wrapping_add(ring::SLOTS)
            .wrapping_add(slot.wrapping_mul(to_usize(self.slot_size)))
    }

    /// Returns the number of messages in the ring, `producer - consumer` (wrapping), or
    /// [`CorruptIndex`] if that exceeds the slot count. Exactly `slot_count` is full.
    pub fn occupancy(&self, producer: u32, consumer: u32) -> Result<u32, CorruptIndex> {
        let n = producer.wrapping_sub(consumer);
        if n > self.slot_count {
            Err(CorruptIndex { producer, consumer })
        } else {
            Ok(n)
        }
    }

    /// Returns whether a message of `len` bytes may be put in a slot.
    pub fn fits(&self, len: usize) -> bool {
        MIN_MESSAGE <= len && len <= to_usize(self.slot_size)
    }

    /// Returns the size of the message in a slot from the `msg_size` its header states,
    /// if the slot can hold such a message.
    pub fn message_size(&self, msg_size: u16) -> Result<usize, BadMessageSize> {
        let size = usize::from(msg_size);
        if self.fits(size) {
            Ok(size)
        } else {
            Err(BadMessageSize(msg_size))
        }
    }
}

/// Returns the `msg_size` a slot's first bytes (its message header) state.
pub fn slot_msg_size(header: &[u8; MIN_MESSAGE]) -> u16 {
    u16::from_le_bytes([header[MSG_SIZE_OFFSET], header[MSG_SIZE_OFFSET + 1]])
}

/// Widens a u32 to usize: both the kernel and the host tools run on 32- or 64-bit targets.
fn to_usize(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}
