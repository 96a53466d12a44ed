// SPDX-License-Identifier: GPL-2.0

//! The shared region: its header and the two rings (Documentation/shm-bus.rst).
//!
//! Everything in the region is writable by the device side, so every value read from it is
//! checked before use, and the indices this side owns are kept locally, never read back.

use crate::vmsg::errno::ebadmsg;
use kernel::{io::Io, pci::Bar, prelude::*, sync::barrier::smp_mb};

/// Bytes `V M S G`.
const MAGIC: u32 = 0x4753_4d56;
const LAYOUT_VERSION: u32 = 1;
const HEADER_SIZE: u32 = 0x40;

/// Header field offsets.
mod hdr {
    pub(super) const MAGIC: usize = 0x00;
    pub(super) const LAYOUT_VERSION: usize = 0x04;
    pub(super) const HEADER_SIZE: usize = 0x08;
    pub(super) const SLOT_SIZE: usize = 0x0c;
    pub(super) const SLOT_COUNT: usize = 0x10;
    pub(super) const TO_DEVICE: usize = 0x14;
    pub(super) const TO_DRIVER: usize = 0x18;
    pub(super) const DEVICE_PEER: usize = 0x1c;
    pub(super) const DEVICE_STATE: usize = 0x20;
    pub(super) const DRIVER_STATE: usize = 0x24;
    pub(super) const WINDOW_OFFSET: usize = 0x28;
    pub(super) const WINDOW_SIZE: usize = 0x30;
}

/// Bus address of a window's first byte: area 1 (`area_id << 48 | offset`); area 0 would be
/// ambiguous with guest-physical addresses.
pub(crate) const WINDOW_BUS_BASE: u64 = 1 << 48;

/// Window alignment and size granularity.
const WINDOW_ALIGN: u64 = 4096;

/// Ring field offsets, from the ring's start.
const RING_PRODUCER: usize = 0;
const RING_CONSUMER: usize = 64;
const RING_WANTS_DOORBELL: usize = 68;
const RING_SLOTS: usize = 128;

/// `device_state` values.
pub(crate) const DEVICE_READY: u32 = 1;
/// The device side is going away: it announced every device removed.
pub(crate) const DEVICE_GOING_AWAY: u32 = 2;

/// One ring's place in the region.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ring {
    base: usize,
    slot_size: usize,
    slot_count: u32,
}

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

/// Why a region was refused, for the log.
fn bad(field: &str, value: u32) -> Error {
    pr_err!("region header: bad {field} {value:#x}\n");
    EINVAL
}

impl Layout {
    /// Reads and checks the header of a region of `len` bytes.
    pub(crate) fn read(io: &Bar<'_>, len: usize) -> Result<Self> {
        let r = |off| io.try_read32(off);
        let magic = r(hdr::MAGIC)?;
        if magic != MAGIC {
            return Err(bad("magic", magic));
        }
        let version = r(hdr::LAYOUT_VERSION)?;
        if version != LAYOUT_VERSION {
            return Err(bad("layout_version", version));
        }
        let header_size = r(hdr::HEADER_SIZE)?;
        if header_size != HEADER_SIZE {
            return Err(bad("header_size", header_size));
        }
        let slot_size = r(hdr::SLOT_SIZE)?;
        if slot_size < 64 || slot_size % 8 != 0 || slot_size > 65536 {
            return Err(bad("slot_size", slot_size));
        }
        let slot_count = r(hdr::SLOT_COUNT)?;
        if slot_count < 2 || !slot_count.is_power_of_two() || slot_count > 65536 {
            return Err(bad("slot_count", slot_count));
        }
        let ring_len = RING_SLOTS as u64 + u64::from(slot_count) * u64::from(slot_size);
        let ring = |field: &str, off: u32| -> Result<Ring> {
            let end = u64::from(off) + ring_len;
            if off % 64 != 0 || off < HEADER_SIZE || end > len as u64 {
                return Err(bad(field, off));
            }
            Ok(Ring {
                base: off as usize,
                slot_size: slot_size as usize,
                slot_count,
            })
        };
        let to_device = ring("to_device_offset", r(hdr::TO_DEVICE)?)?;
        let to_driver = ring("to_driver_offset", r(hdr::TO_DRIVER)?)?;
        let (a, b) = (to_device.base as u64, to_driver.base as u64);
        if a < b + ring_len && b < a + ring_len {
            return Err(bad("ring overlap at", r(hdr::TO_DRIVER)?));
        }
        let r64 = |off| -> Result<u64> { Ok(u64::from(r(off)?) | (u64::from(r(off + 4)?) << 32)) };
        let window = match (r64(hdr::WINDOW_OFFSET)?, r64(hdr::WINDOW_SIZE)?) {
            (0, 0) => None,
            (offset, size) => {
                let end = offset.saturating_add(size);
                let clear_of = |ring: u64| end <= ring || offset >= ring + ring_len;
                if offset % WINDOW_ALIGN != 0
                    || size == 0
                    || size % WINDOW_ALIGN != 0
                    || end > len as u64
                    || offset < u64::from(HEADER_SIZE)
                    || !clear_of(a)
                    || !clear_of(b)
                {
                    pr_err!("region header: bad window: offset {offset:#x}, size {size:#x}\n");
                    return Err(EINVAL);
                }
                Some((offset, size))
            }
        };
        Ok(Self {
            slot_size,
            device_peer: r(hdr::DEVICE_PEER)?,
            to_device,
            to_driver,
            window,
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
        self.base + RING_PRODUCER
    }

    /// Offset of the consumer index in the region.
    pub(crate) fn base_consumer(&self) -> usize {
        self.base + RING_CONSUMER
    }

    fn slot(&self, index: u32) -> usize {
        self.base + RING_SLOTS + (index & (self.slot_count - 1)) as usize * self.slot_size
    }

    /// Appends `msg` as producer whose own index is `*producer`; returns whether the consumer
    /// asked for a doorbell. `EAGAIN` if the ring is full, `EIO` if it is corrupt.
    pub(crate) fn push(&self, io: &Bar<'_>, producer: &mut u32, msg: &[u8]) -> Result<bool> {
        if msg.len() > self.slot_size {
            return Err(EMSGSIZE);
        }
        let consumer = io.try_read32(self.base + RING_CONSUMER)?;
        match producer.wrapping_sub(consumer) {
            used if used > self.slot_count => return Err(EIO),
            used if used == self.slot_count => return Err(EAGAIN),
            _ => {}
        }
        let slot = self.slot(*producer);
        for (i, chunk) in msg.chunks(4).enumerate() {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            io.try_write32(u32::from_le_bytes(word), slot + 4 * i)?;
        }
        *producer = producer.wrapping_add(1);
        // MMIO writes are ordered: the slot is visible before the index.
        io.try_write32(*producer, self.base + RING_PRODUCER)?;
        smp_mb();
        Ok(io.try_read32(self.base + RING_WANTS_DOORBELL)? != 0)
    }

    /// Takes the next message as consumer whose own index is `*consumer`, into `buf`.
    ///
    /// `EIO` if the ring is corrupt; `ebadmsg()` if the message's size is impossible (it is
    /// skipped).
    pub(crate) fn pop(&self, io: &Bar<'_>, consumer: &mut u32, buf: &mut [u8]) -> Result<Popped> {
        let producer = io.try_read32(self.base + RING_PRODUCER)?;
        match producer.wrapping_sub(*consumer) {
            0 => return Ok(Popped::Empty),
            n if n > self.slot_count => return Err(EIO),
            _ => {}
        }
        let slot = self.slot(*consumer);
        let first = io.try_read32(slot + 4)?.to_le_bytes();
        let size = usize::from(u16::from_le_bytes([first[2], first[3]]));
        let result = if size < 8 || size > self.slot_size || size > buf.len() {
            Err(ebadmsg())
        } else {
            for (i, chunk) in buf[..size].chunks_mut(4).enumerate() {
                let word = io.try_read32(slot + 4 * i)?.to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
            Ok(Popped::Message(size))
        };
        *consumer = consumer.wrapping_add(1);
        io.try_write32(*consumer, self.base + RING_CONSUMER)?;
        result
    }

    /// Says whether this side, as consumer, wants a doorbell for new messages.
    pub(crate) fn want_doorbell(&self, io: &Bar<'_>, want: bool) -> Result {
        io.try_write32(u32::from(want), self.base + RING_WANTS_DOORBELL)?;
        smp_mb();
        Ok(())
    }

    /// Returns whether messages are waiting for consumer index `consumer`.
    pub(crate) fn has_messages(&self, io: &Bar<'_>, consumer: u32) -> Result<bool> {
        Ok(io.try_read32(self.base + RING_PRODUCER)? != consumer)
    }
}
