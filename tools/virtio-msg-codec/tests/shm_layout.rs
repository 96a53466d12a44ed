//! The shm region layout (`rust/codec/shm_layout.rs`) against the golden values of
//! `rust/codec/shm_layout_golden.rs`, which the KUnit suite checks too, plus
//! parse(header(x)) == x for every valid layout.

use proptest::prelude::*;
use virtio_msg_codec as codec;
use virtio_msg_codec::shm_layout::{
    ring_size, Field, HeaderError, RegionLayout, Window, HEADER_SIZE, RING_ALIGN, WINDOW_ALIGN,
};

#[path = "../../../rust/codec/shm_layout_golden.rs"]
mod golden;

/// The checks the KUnit suite `virtio_msg_shm_layout` runs too.
#[test]
fn layout_matches_the_tables() {
    assert_eq!(golden::layout_mismatch(), None);
}

#[test]
fn golden_headers_parse_as_expected() {
    assert_eq!(golden::parse_mismatch(), None);
}

#[test]
fn errors_name_the_field_and_value() {
    let cases = [
        // The example of Documentation/shm-bus.rst, *When the device side breaks the rules*.
        (
            Field::SlotCount,
            3,
            "bad slot_count 0x3 (not a power of two",
        ),
        (
            Field::ToDriverOffset,
            0x60,
            "bad to_driver_offset 0x60 (not 64-byte",
        ),
    ];
    for (field, value, text) in cases {
        let error = HeaderError::BadField { field, value };
        assert!(error.to_string().starts_with(text), "{error}");
    }
    let error = HeaderError::BadWindow {
        offset: 0x1000,
        size: 0x1000,
    };
    let text = "bad window: offset 0x1000, size 0x1000 (";
    assert!(error.to_string().starts_with(text), "{error}");
}

#[test]
fn slot_msg_size_reads_the_message_header() {
    let mut first = [0u8; 8];
    first[6..].copy_from_slice(&264u16.to_le_bytes());
    assert_eq!(codec::shm_layout::slot_msg_size(&first), 264);
}

/// A valid layout: rings packed after the header or spread out, with or without a window
/// past them, in a region just large enough or larger.
fn layouts() -> impl Strategy<Value = (RegionLayout, usize)> {
    (
        (8u32..=8192).prop_map(|n| n * 8),
        1u32..=16,
        0u32..4,
        any::<bool>(),
        0u64..8,
        0usize..3,
        any::<u32>(),
    )
        .prop_filter_map(
            "fits the region",
            |(slot_size, count_log2, gap, swap, window_pages, spare_pages, peer)| {
                let slot_count = 1u32 << count_log2;
                let ring = u32::try_from(ring_size(slot_size, slot_count)).ok()?;
                let ring = ring.next_multiple_of(RING_ALIGN);
                let first = HEADER_SIZE + gap * RING_ALIGN;
                let second = first.checked_add(ring)?.checked_add(gap * RING_ALIGN)?;
                let (to_device_offset, to_driver_offset) = if swap {
                    (second, first)
                } else {
                    (first, second)
                };
                let rings_end = u64::from(second) + u64::from(ring);
                let window = (window_pages > 0).then(|| Window {
                    offset: rings_end.next_multiple_of(WINDOW_ALIGN),
                    size: window_pages * WINDOW_ALIGN,
                });
                let end = window.map_or(rings_end, |w| w.offset + w.size);
                let region = usize::try_from(end).ok()? + spare_pages * 4096;
                let layout = RegionLayout {
                    slot_size,
                    slot_count,
                    to_device_offset,
                    to_driver_offset,
                    device_peer_id: peer,
                    window,
                };
                Some((layout, region))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// parse(header(x)) == x: the writer and the reader agree on every valid layout.
    #[test]
    fn parse_reads_what_header_wrote((layout, region) in layouts(), epoch in any::<u32>()) {
        prop_assert_eq!(RegionLayout::parse(&layout.header(epoch), region), Ok(layout));
    }

    /// A golden header with one word changed parses or fails without panicking, and what
    /// parses is written back to a header of the same layout.
    #[test]
    fn mutated_headers(word in 0usize..16, value in any::<u32>(), region in 0usize..0x4_0000) {
        let mut bytes = golden::HEADER;
    bytes[word * 4..word * 4 + 4].copy_from_slice(&value.to_le_bytes());
        if let Ok(layout) = RegionLayout::parse(&bytes, region) {
            prop_assert_eq!(RegionLayout::parse(&layout.header(0), region), Ok(layout));
        }
    }
}
