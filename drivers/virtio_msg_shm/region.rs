// SPDX-License-Identifier: GPL-2.0

//! The shared region: its header and the two rings (Documentation/shm-bus.rst).
//!
//! The layout, its checks and the ring arithmetic come from the codec ([`shm_layout`]), which
//! vmsg-device writes the header with; this file does the MMIO. Everything in the region is
//! writable by the device side, so every value read from it is checked before use, and the
//! indices this side owns are kept locally, never read back.

use crate::vmsg::{
    codec::shm_layout::{
        self, hdr, Field, HeaderBytes, HeaderError, RegionLayout, RingLayout, MIN_MESSAGE,
    },
    errno::ebadmsg,
};
use kernel::{device::Device, io::Io, pci::Bar, prelude::*, sync::barrier::smp_mb};

pub(crate) use shm_layout::WINDOW_BUS_BASE;

/// `device_state` values.
pub(crate) const DEVICE_READY: u32 = shm_layout::device_state::READY;
/// The device side is going away: it announced every device removed.
pub(crate) const DEVICE_GOING_AWAY: u32 = shm_layout::device_state::GOING_AWAY;

/// One ring's place in the region.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ring(RingLayout);

/// The region geometry, checked against the region's size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) slot_size: u32,
    pub(crate) device_peer: u32,
    pub(crate) to_device: Ring,
    pub(crate) to_driver: Ring,
    /// The window (offset, size) in the region, if the device side set one up.
    pub(crate) window: Option<(u64, u64)>,
}

impl Layout {
    /// Reads and checks the header of a region of `len` bytes of PCI device `dev`.
    ///
    /// A region without virtio-msg's magic belongs to another user of ivshmem, which shares
    /// the PCI id: ENODEV, so that the device stays free for its own driver.
    pub(crate) fn read(dev: &Device, io: &Bar<'_>, len: usize) -> Result<Self> {
        // One read of each word: the checks and the values used are of the same header.
        let mut bytes: HeaderBytes = [0; shm_layout::HEADER_SIZE as usize];
        for (i, word) in bytes.chunks_exact_mut(4).enumerate() {
            word.copy_from_slice(&io.try_read32(4 * i)?.to_le_bytes());
        }
        let layout = RegionLayout::parse(&bytes, len).map_err(|e| match e {
            HeaderError::BadField {
                field: Field::Magic,
                value,
            } => {
                dev_info!(dev, "no virtio-msg region (magic {value:#x}): left alone\n");
                ENODEV
            }
            // The codec's message (core's `Display`, which `Arguments` carries to the log).
            e => {
                dev_err!(dev, "region header: {}\n", format_args!("{e}"));
                EINVAL
            }
        })?;
        Ok(Self {
            slot_size: layout.slot_size,
            device_peer: layout.device_peer_id,
            to_device: Ring(layout.to_device()),
            to_driver: Ring(layout.to_driver()),
            window: layout.window.map(|w| (w.offset, w.size)),
        })
    }
}

/// Returns the device side's state.
pub(crate) fn device_state(io: &Bar<'_>) -> Result<u32> {
    io.try_read32(hdr::DEVICE_STATE)
}

/// Returns the driver state as the region holds it.
pub(crate) fn driver_state(io: &Bar<'_>) -> Result<u32> {
    io.try_read32(hdr::DRIVER_STATE)
}

/// Sets the driver state.
pub(crate) fn set_driver_state(io: &Bar<'_>, state: u32) -> Result {
    io.try_write32(state, hdr::DRIVER_STATE)
}

/// Whether the region shows a detach that no device side answered: `driver_state` 0 and
/// `device_state` 1 over rings that carried messages. A device side that answers a detach
/// empties the rings and stores 0; one that just laid the region out has not used them.
pub(crate) fn detach_unanswered(io: &Bar<'_>, layout: &Layout) -> Result<bool> {
    if driver_state(io)? != 0 || device_state(io)? != DEVICE_READY {
        return Ok(false);
    }
    Ok(io.try_read32(layout.to_device.base_producer())? != 0
        || io.try_read32(layout.to_driver.base_producer())? != 0)
}

/// What a consumer found in its ring.
pub(crate) enum Popped {
    /// Nothing.
    Empty,
    /// A message of this many bytes, copied to the caller's buffer.
    Message(usize),
}

impl Ring {
    /// Offset of the producer index in the region.
    pub(crate) fn base_producer(&self) -> usize {
        self.0.producer_offset()
    }

    /// Offset of the consumer index in the region.
    pub(crate) fn base_consumer(&self) -> usize {
        self.0.consumer_offset()
    }

    /// Appends `msg` as producer whose own index is `*producer`; returns whether the consumer
    /// asked for a doorbell. `EAGAIN` if the ring is full, `EIO` if it is corrupt.
    pub(crate) fn push(&self, io: &Bar<'_>, producer: &mut u32, msg: &[u8]) -> Result<bool> {
        if !self.0.fits(msg.len()) {
            return Err(EMSGSIZE);
        }
        let consumer = io.try_read32(self.0.consumer_offset())?;
        match self.0.occupancy(*producer, consumer) {
            Err(_) => return Err(EIO),
            Ok(used) if used == self.0.slot_count() => return Err(EAGAIN),
            Ok(_) => {}
        }
        let slot = self.0.slot_offset(*producer);
        for (i, chunk) in msg.chunks(4).enumerate() {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            io.try_write32(u32::from_le_bytes(word), slot + 4 * i)?;
        }
        *producer = producer.wrapping_add(1);
        // MMIO writes are ordered: the slot is visible before the index.
        io.try_write32(*producer, self.0.producer_offset())?;
        smp_mb();
        Ok(io.try_read32(self.0.wants_doorbell_offset())? != 0)
    }

    /// Takes the next message as consumer whose own index is `*consumer`, into `buf`.
    ///
    /// `EIO` if the ring is corrupt; `ebadmsg()` if the message's size is impossible (it is
    /// skipped).
    pub(crate) fn pop(&self, io: &Bar<'_>, consumer: &mut u32, buf: &mut [u8]) -> Result<Popped> {
        let producer = io.try_read32(self.0.producer_offset())?;
        match self.0.occupancy(producer, *consumer) {
            Ok(0) => return Ok(Popped::Empty),
            Err(_) => return Err(EIO),
            Ok(_) => {}
        }
        let slot = self.0.slot_offset(*consumer);
        // The message header first: its `msg_size` says how much more to copy.
        let mut header = [0u8; MIN_MESSAGE];
        for (i, word) in header.chunks_exact_mut(4).enumerate() {
            word.copy_from_slice(&io.try_read32(slot + 4 * i)?.to_le_bytes());
        }
        let size = self.0.message_size(shm_layout::slot_msg_size(&header));
        let result = match size.ok().and_then(|size| buf.get_mut(..size)) {
            Some(dst) => {
                let (head, rest) = dst.split_at_mut(MIN_MESSAGE.min(dst.len()));
                head.copy_from_slice(&header[..head.len()]);
                for (i, chunk) in rest.chunks_mut(4).enumerate() {
                    let word = io.try_read32(slot + MIN_MESSAGE + 4 * i)?.to_le_bytes();
                    chunk.copy_from_slice(&word[..chunk.len()]);
                }
                Ok(Popped::Message(dst.len()))
            }
            None => Err(ebadmsg()),
        };
        *consumer = consumer.wrapping_add(1);
        io.try_write32(*consumer, self.0.consumer_offset())?;
        result
    }

    /// Says whether this side, as consumer, wants a doorbell for new messages.
    pub(crate) fn want_doorbell(&self, io: &Bar<'_>, want: bool) -> Result {
        io.try_write32(u32::from(want), self.0.wants_doorbell_offset())?;
        smp_mb();
        Ok(())
    }

    /// Returns whether messages are waiting for consumer index `consumer`.
    pub(crate) fn has_messages(&self, io: &Bar<'_>, consumer: u32) -> Result<bool> {
        Ok(io.try_read32(self.0.producer_offset())? != consumer)
    }
}
