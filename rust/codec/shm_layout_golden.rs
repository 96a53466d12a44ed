// SPDX-License-Identifier: GPL-2.0

//! Golden values of the shm region layout and the checks against them, shared by the host
//! tests (`tools/virtio-msg-codec/tests/shm_layout.rs`) and the KUnit suite (`kunit.rs`), so
//! both check the same bytes the same way: each wants [`layout_mismatch`] and
//! [`parse_mismatch`] to find nothing.
//!
//! Written by hand from the tables of `Documentation/shm-bus.rst`, never produced by the
//! code under test. Not part of the codec: include it next to a name `codec` that is the
//! codec module (or crate).

use super::codec::shm_layout::{
    hdr, BadMessageSize, CorruptIndex, Field, HeaderBytes, HeaderError, RegionLayout, Window,
};

/// [`LAYOUT`] with another window (or none).
const fn with_layout_window(window: Option<Window>) -> RegionLayout {
    RegionLayout { window, ..LAYOUT }
}

/// The region the golden header describes: 128 KiB, the window in its upper half.
const REGION_SIZE: usize = 0x2_0000;

/// The `attach_epoch` of [`HEADER`].
const ATTACH_EPOCH: u32 = 3;

/// 264-byte slots, 16 per ring (each ring 128 + 16 * 264 = 0x1100 bytes), the rings packed
/// after the header, device peer 7, a 64 KiB window at 64 KiB.
pub(crate) const HEADER: HeaderBytes = [
    0x56, 0x4d, 0x53, 0x47, // 0x00 magic "VMSG"
    0x01, 0x00, 0x00, 0x00, // 0x04 layout_version 1
    0x40, 0x00, 0x00, 0x00, // 0x08 header_size 0x40
    0x08, 0x01, 0x00, 0x00, // 0x0c slot_size 264
    0x10, 0x00, 0x00, 0x00, // 0x10 slot_count 16
    0x40, 0x00, 0x00, 0x00, // 0x14 to_device_offset 0x40
    0x40, 0x11, 0x00, 0x00, // 0x18 to_driver_offset 0x1140
    0x07, 0x00, 0x00, 0x00, // 0x1c device_peer_id 7
    0x00, 0x00, 0x00, 0x00, // 0x20 device_state 0 (not ready yet)
    0x00, 0x00, 0x00, 0x00, // 0x24 driver_state 0 (detached)
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x28 window_offset 0x10000
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x30 window_size 0x10000
    0x03, 0x00, 0x00, 0x00, // 0x38 attach_epoch 3
    0x00, 0x00, 0x00, 0x00, // 0x3c reserved
];

/// What [`HEADER`] says.
const LAYOUT: RegionLayout = RegionLayout {
    slot_size: 264,
    slot_count: 16,
    to_device_offset: 0x40,
    to_driver_offset: 0x1140,
    device_peer_id: 7,
    window: Some(Window {
        offset: 0x1_0000,
        size: 0x1_0000,
    }),
};

/// Each header field's offset, from the table.
const OFFSETS: [(usize, usize); 13] = [
    (hdr::MAGIC, 0x00),
    (hdr::LAYOUT_VERSION, 0x04),
    (hdr::HEADER_SIZE, 0x08),
    (hdr::SLOT_SIZE, 0x0c),
    (hdr::SLOT_COUNT, 0x10),
    (hdr::TO_DEVICE_OFFSET, 0x14),
    (hdr::TO_DRIVER_OFFSET, 0x18),
    (hdr::DEVICE_PEER_ID, 0x1c),
    (hdr::DEVICE_STATE, 0x20),
    (hdr::DRIVER_STATE, 0x24),
    (hdr::WINDOW_OFFSET, 0x28),
    (hdr::WINDOW_SIZE, 0x30),
    (hdr::ATTACH_EPOCH, 0x38),
];

const fn field(field: Field, value: u32) -> HeaderError {
    HeaderError::BadField { field, value }
}

const fn overlap(to_driver_offset: u32, ring_size: u64) -> HeaderError {
    HeaderError::RingsOverlap {
        to_device_offset: 0x40,
        to_driver_offset,
        ring_size,
    }
}

/// A 32-bit field (offset, value) of [`HEADER`] changed, and the error that header gets.
const BAD_FIELDS: [(usize, u32, HeaderError); 17] = [
    (hdr::MAGIC, 0x4753_4d57, field(Field::Magic, 0x4753_4d57)),
    (hdr::MAGIC, 0, field(Field::Magic, 0)),
    (hdr::LAYOUT_VERSION, 2, field(Field::LayoutVersion, 2)),
    (hdr::HEADER_SIZE, 0x80, field(Field::HeaderSize, 0x80)),
    // Below the minimum, not a multiple of 8, above the maximum.
    (hdr::SLOT_SIZE, 56, field(Field::SlotSize, 56)),
    (hdr::SLOT_SIZE, 268, field(Field::SlotSize, 268)),
    (hdr::SLOT_SIZE, 65544, field(Field::SlotSize, 65544)),
    // Below the minimum, not a power of two, above the maximum.
    (hdr::SLOT_COUNT, 1, field(Field::SlotCount, 1)),
    (hdr::SLOT_COUNT, 24, field(Field::SlotCount, 24)),
    (hdr::SLOT_COUNT, 131_072, field(Field::SlotCount, 131_072)),
    // 1024 slots make rings longer than the region: the first ring checked is named.
    (hdr::SLOT_COUNT, 1024, field(Field::ToDeviceOffset, 0x40)),
    // 32 slots make the packed rings overlap.
    (hdr::SLOT_COUNT, 32, overlap(0x1140, 0x2180)),
    // Not 64-byte aligned, over the header, running past the region's end.
    (
        hdr::TO_DEVICE_OFFSET,
        0x60,
        field(Field::ToDeviceOffset, 0x60),
    ),
    (hdr::TO_DEVICE_OFFSET, 0, field(Field::ToDeviceOffset, 0)),
    (
        hdr::TO_DEVICE_OFFSET,
        0x1_f000,
        field(Field::ToDeviceOffset, 0x1_f000),
    ),
    (
        hdr::TO_DRIVER_OFFSET,
        0x1_f000,
        field(Field::ToDriverOffset, 0x1_f000),
    ),
    (hdr::TO_DRIVER_OFFSET, 0x1100, overlap(0x1100, 0x1100)),
];

/// Window fields (offset, size) that [`HEADER`] must not carry.
const BAD_WINDOWS: [(u64, u64); 8] = [
    (0x1_0000, 0),              // one field 0, the other not
    (0, 0x1_0000),              // over the header
    (0x1_0800, 0x8000),         // offset not a multiple of 4096
    (0x1_0000, 0x8800),         // size not a multiple of 4096
    (0x1_8000, 0x1_0000),       // past the region's end
    (0x1000, 0x1000),           // over the to-device ring (0x40..0x1140)
    (0x2000, 0x1000),           // over the to-driver ring (0x1140..0x2240)
    (u64::MAX - 0xfff, 0x2000), // the end wraps around
];

/// A region too small for [`HEADER`]: its size and the error.
const SMALL_REGIONS: [(usize, HeaderError); 2] = [
    (
        0x1_8000,
        HeaderError::BadWindow {
            offset: 0x1_0000,
            size: 0x1_0000,
        },
    ),
    (0x2000, field(Field::ToDriverOffset, 0x1140)),
];

/// Region offsets of the producer, consumer and `consumer_wants_doorbell` fields of
/// [`LAYOUT`]'s to-driver ring.
const TO_DRIVER_FIELDS: [usize; 3] = [0x1140, 0x1180, 0x1184];

/// Free-running indices and the region offset of their slot in [`LAYOUT`]'s to-driver ring
/// (slots from 0x11c0).
const TO_DRIVER_SLOTS: [(u32, usize); 5] = [
    (0, 0x11c0),
    (1, 0x11c0 + 264),
    (16, 0x11c0), // slot index & (16 - 1)
    (17, 0x11c0 + 264),
    (u32::MAX, 0x11c0 + 15 * 264),
];

/// (producer, consumer) and the occupancy of a 16-slot ring.
const OCCUPANCY: [(u32, u32, Result<u32, CorruptIndex>); 6] = [
    (0, 0, Ok(0)),
    (16, 0, Ok(16)),
    (3, u32::MAX - 1, Ok(5)),
    (
        17,
        0,
        Err(CorruptIndex {
            producer: 17,
            consumer: 0,
        }),
    ),
    (
        0,
        1,
        Err(CorruptIndex {
            producer: 0,
            consumer: 1,
        }),
    ),
    (
        u32::MAX,
        15,
        Err(CorruptIndex {
            producer: u32::MAX,
            consumer: 15,
        }),
    ),
];

/// `msg_size` values in a 264-byte slot and what the slot holds.
const MESSAGE_SIZES: [(u16, Result<usize, BadMessageSize>); 5] = [
    (0, Err(BadMessageSize(0))),
    (7, Err(BadMessageSize(7))),
    (8, Ok(8)),
    (264, Ok(264)),
    (265, Err(BadMessageSize(265))),
];

/// What parsing a header gives.
type Parsed = Result<RegionLayout, HeaderError>;

/// Returns the first part of the layout that differs from shm-bus.rst's tables, by name.
pub(crate) fn layout_mismatch() -> Option<&'static str> {
    let ring = LAYOUT.to_driver();
    let fields = [
        ring.producer_offset(),
        ring.consumer_offset(),
        ring.wants_doorbell_offset(),
    ];
    let checks = [
        ("header bytes", LAYOUT.header(ATTACH_EPOCH) == HEADER),
        (
            "header field offsets",
            OFFSETS.iter().all(|&(o, want)| o == want),
        ),
        ("ring field offsets", fields == TO_DRIVER_FIELDS),
        (
            "slot offsets",
            TO_DRIVER_SLOTS
                .iter()
                .all(|&(index, want)| ring.slot_offset(index) == want),
        ),
        (
            "occupancy",
            OCCUPANCY
                .iter()
                .all(|&(p, c, want)| ring.occupancy(p, c) == want),
        ),
        (
            "message sizes",
            MESSAGE_SIZES
                .iter()
                .all(|&(size, want)| ring.message_size(size) == want),
        ),
    ];
    checks
        .into_iter()
        .find(|&(_, ok)| !ok)
        .map(|(what, _)| what)
}

/// Returns the first golden header whose parse is not the expected one: the header, the
/// region size, what it parsed to and what it should have.
pub(crate) fn parse_mismatch() -> Option<(HeaderBytes, usize, Parsed, Parsed)> {
    let accepted = accepted()
        .into_iter()
        .map(|(bytes, layout)| (bytes, REGION_SIZE, Ok(layout)));
    let refused = refused().map(|(bytes, region_size, error)| (bytes, region_size, Err(error)));
    accepted
        .chain(refused)
        .map(|(bytes, region_size, want)| {
            let got = RegionLayout::parse(&bytes, region_size);
            (bytes, region_size, got, want)
        })
        .find(|(_, _, got, want)| got != want)
}

/// Headers and the layout each describes in a region of [`REGION_SIZE`] bytes.
fn accepted() -> [(HeaderBytes, RegionLayout); 7] {
    let window = Some(Window {
        offset: 0x3000,
        size: 0x1000,
    });
    [
        (HEADER, LAYOUT),
        (with_window(HEADER, 0, 0), with_layout_window(None)),
        (
            with_window(HEADER, 0x3000, 0x1000),
            with_layout_window(window),
        ),
        // Neither the states nor the epoch nor the reserved word are part of the layout.
        (with_u32(hdr::DEVICE_STATE, u32::MAX), LAYOUT),
        (with_u32(hdr::DRIVER_STATE, u32::MAX), LAYOUT),
        (with_u32(hdr::ATTACH_EPOCH, u32::MAX), LAYOUT),
        (with_u32(0x3c, u32::MAX), LAYOUT),
    ]
}

/// Headers, the size of the region they are found in, and the error each gets.
fn refused() -> impl Iterator<Item = (HeaderBytes, usize, HeaderError)> {
    let fields = BAD_FIELDS
        .into_iter()
        .map(|(offset, value, error)| (with_u32(offset, value), REGION_SIZE, error));
    let windows = BAD_WINDOWS.into_iter().map(|(offset, size)| {
        let error = HeaderError::BadWindow { offset, size };
        (with_window(HEADER, offset, size), REGION_SIZE, error)
    });
    // Over the header only: the to-device ring moved to 0x3000, clear of the first page.
    let rings_moved = with_u32(hdr::TO_DEVICE_OFFSET, 0x3000);
    let over_header = (
        with_window(rings_moved, 0, 0x1000),
        REGION_SIZE,
        HeaderError::BadWindow {
            offset: 0,
            size: 0x1000,
        },
    );
    let small = SMALL_REGIONS
        .into_iter()
        .map(|(region_size, error)| (HEADER, region_size, error));
    fields.chain(windows).chain([over_header]).chain(small)
}

/// [`HEADER`] with the 32-bit field at `offset` set to `value`.
fn with_u32(offset: usize, value: u32) -> HeaderBytes {
    let mut bytes = HEADER;
    if let Some(dst) = bytes.get_mut(offset..offset.saturating_add(4)) {
        dst.copy_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// `bytes` with the window fields set.
fn with_window(mut bytes: HeaderBytes, offset: u64, size: u64) -> HeaderBytes {
    for (at, value) in [(hdr::WINDOW_OFFSET, offset), (hdr::WINDOW_SIZE, size)] {
        if let Some(dst) = bytes.get_mut(at..at + 8) {
            dst.copy_from_slice(&value.to_le_bytes());
        }
    }
    bytes
}
