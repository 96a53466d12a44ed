// SPDX-License-Identifier: GPL-2.0

//! The shared region: its header, the two message rings and, in window mode, the window
//! at its end, byte for byte as `Documentation/shm-bus.rst` lays them out.
//!
//! Every access goes through `vm-memory` volatile slices, so the region is mapped and used
//! without `unsafe` code here; index loads and stores are atomic with the orderings the
//! contract names.

use std::fs::File;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use virtio_msg_codec::shm_layout::{self, HeaderBytes, RegionLayout, RingLayout, Window};
use vm_memory::{Bytes, FileOffset, MmapRegion, VolatileMemory, VolatileSlice};

/// The mapping type of the region (no dirty bitmap).
pub type Mem = MmapRegion<()>;

/// The layout's definitions (`rust/codec/shm_layout.rs`, shared with the kernel driver).
pub use virtio_msg_codec::shm_layout::{
    driver_state, hdr, ring as ring_off, MAGIC, WINDOW_BUS_BASE,
};

/// `header_size`, as a length.
pub const HEADER_SIZE: usize = shm_layout::HEADER_SIZE as usize;
/// Rings start on multiples of this (one cache line).
const RING_ALIGN: usize = shm_layout::RING_ALIGN as usize;
/// Default upper limit for the slot count picked from the region size.
pub const DEFAULT_MAX_SLOTS: u32 = 1024;
/// The window's offset and size are multiples of this.
pub const WINDOW_ALIGN: usize = shm_layout::WINDOW_ALIGN as usize;

/// Values of `device_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum DeviceState {
    /// The rings are not usable (being set up, or reset after a detach).
    NotReady = shm_layout::device_state::NOT_READY,
    /// The device side serves the rings.
    Ready = shm_layout::device_state::READY,
    /// The device side is shutting down.
    GoingAway = shm_layout::device_state::GOING_AWAY,
}

/// Why a region could not be laid out or a ring could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionError {
    /// `slot_size` is not a multiple of 8 from 64 to 65536.
    BadSlotSize(u32),
    /// `slot_count` is not a power of two from 2 to 65536.
    BadSlotCount(u32),
    /// The rings do not fit in the region.
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Region size.
        size: usize,
    },
    /// The region is larger than 32-bit offsets can describe.
    TooLarge(usize),
    /// The window size is zero or not a multiple of [`WINDOW_ALIGN`].
    BadWindowSize(usize),
    /// The window leaves too little of the region for the header and the rings, or does
    /// not start on a multiple of [`WINDOW_ALIGN`].
    WindowDoesNotFit {
        /// Window size.
        window: usize,
        /// Region size.
        size: usize,
        /// Bytes the header and rings need in front of the window.
        needed: usize,
    },
    /// Creating, sizing or mapping the shared-memory file failed.
    Io(String),
}

impl std::fmt::Display for RegionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadSlotSize(s) => {
                write!(f, "slot size {s} is not a multiple of 8 from 64 to 65536")
            }
            Self::BadSlotCount(c) => {
                write!(f, "slot count {c} is not a power of two from 2 to 65536")
            }
            Self::TooSmall { needed, size } => {
                write!(f, "shared memory of {size} bytes is too small: the header and two rings need {needed}")
            }
            Self::TooLarge(size) => write!(f, "shared memory of {size} bytes exceeds 4 GiB"),
            Self::BadWindowSize(w) => {
                write!(f, "window size {w} is not a positive multiple of {WINDOW_ALIGN}")
            }
            Self::WindowDoesNotFit {
                window,
                size,
                needed,
            } => write!(
                f,
                "a window of {window} bytes does not fit at the end of shared memory of {size} bytes: \
                 the header and two rings need {needed} bytes in front of it, and it must start \
                 on a multiple of {WINDOW_ALIGN} (give a larger --shm-size or a smaller --window)"
            ),
            Self::Io(e) => write!(f, "shared memory: {e}"),
        }
    }
}

impl std::error::Error for RegionError {}

/// Where the header and rings sit in a region of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Size of the whole region.
    pub region_size: usize,
    /// Bytes per slot.
    pub slot_size: u32,
    /// Slots per ring.
    pub slot_count: u32,
    /// Offset of the driver-to-device ring.
    pub to_device_offset: u32,
    /// Offset of the device-to-driver ring.
    pub to_driver_offset: u32,
    /// Offset of the window in the region (0: no window).
    pub window_offset: usize,
    /// Size of the window (0: no window).
    pub window_size: usize,
}

fn align_up(value: usize, align: usize) -> Option<usize> {
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

impl Geometry {
    /// Bytes one ring occupies.
    pub fn ring_bytes(slot_size: u32, slot_count: u32) -> Option<usize> {
        usize::try_from(shm_layout::ring_size(slot_size, slot_count)).ok()
    }

    /// The header's view of this geometry, with the device side's peer id.
    pub fn header_layout(&self, device_peer_id: u32) -> RegionLayout {
        RegionLayout {
            slot_size: self.slot_size,
            slot_count: self.slot_count,
            to_device_offset: self.to_device_offset,
            to_driver_offset: self.to_driver_offset,
            device_peer_id,
            window: self.has_window().then_some(Window {
                offset: self.window_offset as u64,
                size: self.window_size as u64,
            }),
        }
    }

    /// Lays out a region of `region_size` bytes with `slot_size`-byte slots; with no
    /// `slot_count`, picks the largest power of two (at most [`DEFAULT_MAX_SLOTS`]) that fits.
    pub fn new(
        region_size: usize,
        slot_size: u32,
        slot_count: Option<u32>,
    ) -> Result<Self, RegionError> {
        Self::with_window(region_size, slot_size, slot_count, 0)
    }

    /// As [`Geometry::new`], with a window of `window_size` bytes (0: none) at the end of
    /// the region; the rings are laid out in front of it.
    pub fn with_window(
        region_size: usize,
        slot_size: u32,
        slot_count: Option<u32>,
        window_size: usize,
    ) -> Result<Self, RegionError> {
        if window_size == 0 {
            return Self::front(region_size, slot_size, slot_count, 0);
        }
        if window_size % WINDOW_ALIGN != 0 {
            return Err(RegionError::BadWindowSize(window_size));
        }
        let geometry = Self::front(region_size, slot_size, slot_count, window_size);
        let misfit = |needed| RegionError::WindowDoesNotFit {
            window: window_size,
            size: region_size,
            needed,
        };
        let mut g = match geometry {
            Err(RegionError::TooSmall { needed, .. }) => return Err(misfit(needed)),
            other => other?,
        };
        let rings_end = g.to_driver_offset as usize
            + Self::ring_bytes(g.slot_size, g.slot_count)
                .ok_or(RegionError::TooLarge(usize::MAX))?;
        let offset = region_size
            .checked_sub(window_size)
            .filter(|o| o % WINDOW_ALIGN == 0 && *o >= rings_end)
            .ok_or(misfit(rings_end))?;
        g.window_offset = offset;
        g.window_size = window_size;
        Ok(g)
    }

    /// Whether the region has a window.
    pub fn has_window(&self) -> bool {
        self.window_size != 0
    }

    /// Lays out the header and rings in the first `region_size - window_size` bytes.
    fn front(
        region_size: usize,
        slot_size: u32,
        slot_count: Option<u32>,
        window_size: usize,
    ) -> Result<Self, RegionError> {
        // The driver side's rules: a geometry it would refuse is refused here, at start.
        if shm_layout::check_slot_size(slot_size).is_err() {
            return Err(RegionError::BadSlotSize(slot_size));
        }
        if u32::try_from(region_size).is_err() {
            return Err(RegionError::TooLarge(region_size));
        }
        let limit = region_size.saturating_sub(window_size);
        let count = match slot_count {
            Some(c) => {
                if shm_layout::check_slot_count(c).is_err() {
                    return Err(RegionError::BadSlotCount(c));
                }
                c
            }
            None => {
                let mut c = DEFAULT_MAX_SLOTS;
                while c > 2 && Self::layout(region_size, limit, slot_size, c).is_err() {
                    c /= 2;
                }
                c
            }
        };
        Self::layout(region_size, limit, slot_size, count)
    }

    /// The header and rings of a `region_size`-byte region, ending at most at `limit`.
    fn layout(
        region_size: usize,
        limit: usize,
        slot_size: u32,
        slot_count: u32,
    ) -> Result<Self, RegionError> {
        let ring =
            Self::ring_bytes(slot_size, slot_count).ok_or(RegionError::TooLarge(usize::MAX))?;
        let to_device = HEADER_SIZE;
        let to_driver =
            align_up(to_device + ring, RING_ALIGN).ok_or(RegionError::TooLarge(usize::MAX))?;
        let end = to_driver
            .checked_add(ring)
            .ok_or(RegionError::TooLarge(usize::MAX))?;
        if end > limit {
            return Err(RegionError::TooSmall {
                needed: end,
                size: region_size,
            });
        }
        let to_device_offset = u32::try_from(to_device).map_err(|_| RegionError::TooLarge(end))?;
        let to_driver_offset = u32::try_from(to_driver).map_err(|_| RegionError::TooLarge(end))?;
        Ok(Self {
            region_size,
            slot_size,
            slot_count,
            to_device_offset,
            to_driver_offset,
            window_offset: 0,
            window_size: 0,
        })
    }
}

/// The mapped region, owner of the shared-memory file handed to every client.
pub struct Region {
    mem: Arc<Mem>,
    file: File,
    geometry: Geometry,
}

impl Region {
    /// Creates an anonymous shared-memory file (memfd) of the geometry's size and maps it.
    pub fn create(geometry: Geometry) -> Result<Self, RegionError> {
        let fd = nix::sys::memfd::memfd_create(c"vmsg-shm", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| RegionError::Io(format!("memfd_create: {e}")))?;
        let file = File::from(fd);
        Self::from_file(file, geometry)
    }

    /// Maps `file` (resized to the geometry's size) as the region.
    pub fn from_file(file: File, geometry: Geometry) -> Result<Self, RegionError> {
        let size = u64::try_from(geometry.region_size)
            .map_err(|_| RegionError::TooLarge(geometry.region_size))?;
        file.set_len(size)
            .map_err(|e| RegionError::Io(format!("resizing to {size} bytes: {e}")))?;
        let map_file = file
            .try_clone()
            .map_err(|e| RegionError::Io(format!("dup: {e}")))?;
        let mem = Mem::from_file(FileOffset::new(map_file, 0), geometry.region_size)
            .map_err(|e| RegionError::Io(format!("mmap: {e}")))?;
        Ok(Self {
            mem: Arc::new(mem),
            file,
            geometry,
        })
    }

    /// Returns the shared-memory file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Returns the layout.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn slice(&self) -> VolatileSlice<'_> {
        self.mem.as_volatile_slice()
    }

    fn store(&self, offset: usize, value: u32, order: Ordering) {
        // Offsets are constants inside the header, which every geometry leaves in bounds.
        if let Err(e) = self.slice().store(value, offset, order) {
            log::error!("region store at {offset:#x}: {e}");
        }
    }

    fn load(&self, offset: usize, order: Ordering) -> u32 {
        self.slice().load(offset, order).unwrap_or_else(|e| {
            log::error!("region load at {offset:#x}: {e}");
            0
        })
    }

    /// Writes the whole region: zeroes, the header, empty rings, and last `device_state`
    /// = ready (release), as the contract requires before a client is accepted.
    /// The attach epoch survives, so that a state saved for an earlier driver side never
    /// matches a later one's attachment.
    pub fn initialise(&self, device_peer_id: u32) {
        self.store(
            hdr::DEVICE_STATE,
            DeviceState::NotReady as u32,
            Ordering::SeqCst,
        );
        let epoch = self.attach_epoch();
        let header = self.geometry.header_layout(device_peer_id).header(epoch);
        let mut image = vec![0u8; self.geometry.region_size];
        if let Some(start) = image.get_mut(..header.len()) {
            start.copy_from_slice(&header);
        }
        if let Err(e) = self.slice().write_slice(&image, 0) {
            log::error!("writing the region: {e}");
        }
        self.reset_rings();
        self.set_device_state(DeviceState::Ready);
    }

    /// Whether the region carries a header at all (of any layout).
    pub fn has_magic(&self) -> bool {
        self.load(hdr::MAGIC, Ordering::Acquire) == MAGIC
    }

    /// Whether the region already carries this geometry's header (window included) for
    /// `device_peer_id`: a previous process of the device side laid it out, and a driver
    /// side may be using it (resume instead of initialising).
    pub fn has_header(&self, device_peer_id: u32) -> bool {
        let mut bytes: HeaderBytes = [0; HEADER_SIZE];
        for (i, word) in bytes.chunks_exact_mut(4).enumerate() {
            word.copy_from_slice(&self.load(4 * i, Ordering::Acquire).to_le_bytes());
        }
        let expected = self.geometry.header_layout(device_peer_id);
        RegionLayout::parse(&bytes, self.geometry.region_size) == Ok(expected)
    }

    /// Empties both rings: indices 0 and `consumer_wants_doorbell` 1.
    pub fn reset_rings(&self) {
        self.to_device().reset();
        self.to_driver().reset();
        fence(Ordering::SeqCst);
    }

    /// Stores `device_state` (release, followed by a full barrier).
    pub fn set_device_state(&self, state: DeviceState) {
        self.store(hdr::DEVICE_STATE, state as u32, Ordering::Release);
        fence(Ordering::SeqCst);
    }

    /// Loads `device_state`.
    pub fn device_state(&self) -> u32 {
        self.load(hdr::DEVICE_STATE, Ordering::Acquire)
    }

    /// Loads `attach_epoch`.
    pub fn attach_epoch(&self) -> u32 {
        self.load(hdr::ATTACH_EPOCH, Ordering::Acquire)
    }

    /// A driver side attached: counts it in `attach_epoch` and returns the new value.
    pub fn next_attach_epoch(&self) -> u32 {
        let epoch = self.attach_epoch().wrapping_add(1);
        self.store(hdr::ATTACH_EPOCH, epoch, Ordering::Release);
        epoch
    }

    /// Loads `driver_state` (acquire).
    pub fn driver_state(&self) -> u32 {
        self.load(hdr::DRIVER_STATE, Ordering::Acquire)
    }

    /// Returns the driver-to-device ring (the device side consumes it).
    pub fn to_device(&self) -> Ring {
        let g = self.geometry;
        let layout = RingLayout::new(g.to_device_offset, g.slot_size, g.slot_count);
        Ring::new(Arc::clone(&self.mem), layout)
    }

    /// Returns the device-to-driver ring (the device side produces into it).
    pub fn to_driver(&self) -> Ring {
        let g = self.geometry;
        let layout = RingLayout::new(g.to_driver_offset, g.slot_size, g.slot_count);
        Ring::new(Arc::clone(&self.mem), layout)
    }
}

/// Why a ring operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// `producer - consumer` exceeds `slot_count`: someone wrote a bad index.
    Corrupt {
        /// Producer index loaded.
        producer: u32,
        /// Consumer index loaded.
        consumer: u32,
    },
    /// Every slot is taken; retry once the consumer has caught up.
    Full,
    /// The message does not fit a slot or is shorter than a header.
    BadLength(usize),
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Corrupt { producer, consumer } => {
                write!(f, "ring corrupt: producer {producer} consumer {consumer}")
            }
            Self::Full => write!(f, "ring full"),
            Self::BadLength(n) => write!(f, "message of {n} bytes does not fit a slot"),
        }
    }
}

impl std::error::Error for RingError {}

impl From<shm_layout::CorruptIndex> for RingError {
    fn from(e: shm_layout::CorruptIndex) -> Self {
        Self::Corrupt {
            producer: e.producer,
            consumer: e.consumer,
        }
    }
}

/// What [`Ring::pop`] took out of the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popped {
    /// A message of valid size, now in the caller's buffer.
    Message,
    /// A slot whose `msg_size` is outside 8..=slot_size; it was skipped.
    BadSize(u16),
}

/// One ring of the region, usable in either role.
#[derive(Clone)]
pub struct Ring {
    mem: Arc<Mem>,
    layout: RingLayout,
}

impl Ring {
    /// The ring `layout` of `mem`. The geometry has been checked against the mapping.
    pub fn new(mem: Arc<Mem>, layout: RingLayout) -> Self {
        Self { mem, layout }
    }

    /// Slots in the ring.
    pub fn slot_count(&self) -> u32 {
        self.layout.slot_count()
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> u32 {
        self.layout.slot_size()
    }

    fn slice(&self) -> VolatileSlice<'_> {
        self.mem.as_volatile_slice()
    }

    fn load(&self, field: usize, order: Ordering) -> u32 {
        let at = self.layout.base() + field;
        self.slice().load(at, order).unwrap_or_else(|e| {
            log::error!("ring load at {at:#x}: {e}");
            0
        })
    }

    fn store(&self, field: usize, value: u32, order: Ordering) {
        let at = self.layout.base() + field;
        if let Err(e) = self.slice().store(value, at, order) {
            log::error!("ring store at {at:#x}: {e}");
        }
    }

    fn slot_offset(&self, index: u32) -> usize {
        self.layout.slot_offset(index)
    }

    /// Loads the producer index (acquire).
    pub fn producer(&self) -> u32 {
        self.load(ring_off::PRODUCER, Ordering::Acquire)
    }

    /// Loads the consumer index (acquire).
    pub fn consumer(&self) -> u32 {
        self.load(ring_off::CONSUMER, Ordering::Acquire)
    }

    /// Loads `consumer_wants_doorbell`.
    pub fn wants_doorbell(&self) -> bool {
        self.load(ring_off::WANTS_DOORBELL, Ordering::Relaxed) == 1
    }

    /// Empties the ring: both indices 0, `consumer_wants_doorbell` 1.
    pub fn reset(&self) {
        self.store(ring_off::PRODUCER, 0, Ordering::Relaxed);
        self.store(ring_off::CONSUMER, 0, Ordering::Relaxed);
        self.store(ring_off::WANTS_DOORBELL, 1, Ordering::Relaxed);
    }

    fn count(&self, producer: u32, consumer: u32) -> Result<u32, RingError> {
        Ok(self.layout.occupancy(producer, consumer)?)
    }

    /// Consumer: the number of messages waiting, checked against the ring size.
    pub fn pending(&self) -> Result<u32, RingError> {
        let producer = self.producer();
        let consumer = self.load(ring_off::CONSUMER, Ordering::Relaxed);
        self.count(producer, consumer)
    }

    /// Consumer: the number of messages waiting past index `from` (the consumer's own
    /// read position, which may run ahead of the published consumer index).
    pub fn pending_from(&self, from: u32) -> Result<u32, RingError> {
        let producer = self.producer();
        let consumer = self.load(ring_off::CONSUMER, Ordering::Relaxed);
        // `from` lies between the published consumer and the producer, or the ring is corrupt.
        self.count(producer, consumer)?;
        let n = self.count(producer, from)?;
        if from.wrapping_sub(consumer) > self.slot_count() {
            return Err(RingError::Corrupt { producer, consumer });
        }
        Ok(n)
    }

    /// Consumer: copies the message at index `index` into `buf` without releasing its
    /// slot (see [`Ring::release_to`]). `Ok(None)` if nothing is there yet.
    pub fn peek_at(&self, index: u32, buf: &mut Vec<u8>) -> Result<Option<Popped>, RingError> {
        buf.clear();
        if self.pending_from(index)? == 0 {
            return Ok(None);
        }
        Ok(Some(self.read_slot(index, buf)))
    }

    /// Copies the message in the slot of `index` into `buf` (left empty if its `msg_size`
    /// is out of range or the slot cannot be read).
    fn read_slot(&self, index: u32, buf: &mut Vec<u8>) -> Popped {
        let slot = self.slot_offset(index);
        let mut header = [0u8; shm_layout::MIN_MESSAGE];
        let read = self.slice().read_slice(&mut header, slot);
        let msg_size = shm_layout::slot_msg_size(&header);
        let size = match (read, self.layout.message_size(msg_size)) {
            (Ok(()), Ok(size)) => size,
            _ => return Popped::BadSize(msg_size),
        };
        buf.resize(size, 0);
        match self.slice().read_slice(buf, slot) {
            Ok(()) => Popped::Message,
            Err(e) => {
                log::error!("reading slot at {slot:#x}: {e}");
                buf.clear();
                Popped::BadSize(msg_size)
            }
        }
    }

    /// Consumer: publishes the consumer index `index` (release), freeing every slot
    /// before it.
    pub fn release_to(&self, index: u32) {
        self.store(ring_off::CONSUMER, index, Ordering::Release);
    }

    /// Consumer, before sleeping, with its own read position `from`: asks for a doorbell,
    /// full barrier, and returns the number of messages past `from` (0: safe to sleep).
    pub fn prepare_sleep_from(&self, from: u32) -> Result<u32, RingError> {
        self.set_wants_doorbell(true);
        fence(Ordering::SeqCst);
        self.pending_from(from)
    }

    /// Consumer: copies the next message into `buf` and releases its slot.
    ///
    /// Returns `Ok(None)` on an empty ring. A slot whose `msg_size` is out of range is
    /// consumed and reported as [`Popped::BadSize`] with `buf` empty.
    pub fn pop(&self, buf: &mut Vec<u8>) -> Result<Option<Popped>, RingError> {
        buf.clear();
        let producer = self.producer();
        let consumer = self.load(ring_off::CONSUMER, Ordering::Relaxed);
        if self.count(producer, consumer)? == 0 {
            return Ok(None);
        }
        let popped = self.read_slot(consumer, buf);
        self.store(
            ring_off::CONSUMER,
            consumer.wrapping_add(1),
            Ordering::Release,
        );
        Ok(Some(popped))
    }

    /// Consumer: stores `consumer_wants_doorbell`.
    pub fn set_wants_doorbell(&self, wants: bool) {
        self.store(ring_off::WANTS_DOORBELL, u32::from(wants), Ordering::SeqCst);
    }

    /// Consumer, before sleeping: asks for a doorbell, full barrier, and reloads the
    /// producer. Returns the number of messages that arrived meanwhile (0: safe to sleep).
    pub fn prepare_sleep(&self) -> Result<u32, RingError> {
        self.set_wants_doorbell(true);
        fence(Ordering::SeqCst);
        self.pending()
    }

    /// Producer: free slots, checked against the ring size.
    pub fn free(&self) -> Result<u32, RingError> {
        let producer = self.load(ring_off::PRODUCER, Ordering::Relaxed);
        let consumer = self.consumer();
        Ok(self.slot_count() - self.count(producer, consumer)?)
    }

    /// Producer: writes `msg` into the next slot and publishes it (release).
    ///
    /// Does not ring anything: call [`Ring::should_ring`] after a batch of pushes.
    pub fn push(&self, msg: &[u8]) -> Result<(), RingError> {
        if !self.layout.fits(msg.len()) {
            return Err(RingError::BadLength(msg.len()));
        }
        let producer = self.load(ring_off::PRODUCER, Ordering::Relaxed);
        let consumer = self.consumer();
        if self.count(producer, consumer)? == self.slot_count() {
            return Err(RingError::Full);
        }
        let slot = self.slot_offset(producer);
        if let Err(e) = self.slice().write_slice(msg, slot) {
            log::error!("writing slot at {slot:#x}: {e}");
        }
        self.store(
            ring_off::PRODUCER,
            producer.wrapping_add(1),
            Ordering::Release,
        );
        Ok(())
    }

    /// Producer, after publishing: full barrier, then whether the consumer asked for a
    /// doorbell.
    pub fn should_ring(&self) -> bool {
        fence(Ordering::SeqCst);
        self.wants_doorbell()
    }

    /// Producer, for the `slot-rewrite` fault: the ring index and length (its `msg_size`,
    /// kept within the slot) of each message waiting for the consumer.
    pub fn waiting(&self) -> Vec<(u32, usize)> {
        let producer = self.load(ring_off::PRODUCER, Ordering::Relaxed);
        let consumer = self.consumer();
        let Ok(n) = self.count(producer, consumer) else {
            return Vec::new();
        };
        (0..n)
            .map(|i| consumer.wrapping_add(i))
            .map(|index| {
                let mut header = [0u8; shm_layout::MIN_MESSAGE];
                let size = match self
                    .slice()
                    .read_slice(&mut header, self.slot_offset(index))
                {
                    Ok(()) => usize::from(shm_layout::slot_msg_size(&header)),
                    Err(_) => 0,
                };
                let slot = self.slot_size() as usize;
                (index, size.clamp(shm_layout::MIN_MESSAGE, slot))
            })
            .collect()
    }

    /// Fault injection: stores byte `at` of the slot of `index` XOR `mask` and returns
    /// what it held.
    pub fn xor_byte(&self, index: u32, at: usize, mask: u8) -> Option<u8> {
        let at = self.slot_offset(index) + at;
        let byte: u8 = self.slice().load(at, Ordering::Relaxed).ok()?;
        self.slice()
            .store(byte ^ mask, at, Ordering::Relaxed)
            .ok()?;
        Some(byte)
    }

    /// Fault injection: stores `byte` at byte `at` of the slot of `index`.
    pub fn put_byte(&self, index: u32, at: usize, byte: u8) {
        let at = self.slot_offset(index) + at;
        if let Err(e) = self.slice().store(byte, at, Ordering::Relaxed) {
            log::error!("slot byte at {at:#x}: {e}");
        }
    }

    /// Fault injection: stores a producer index `slot_count + 5` ahead of the consumer, a
    /// value every correct consumer must detect as corrupt.
    pub fn corrupt_producer(&self) {
        let consumer = self.consumer();
        let bad = consumer.wrapping_add(self.slot_count()).wrapping_add(5);
        self.store(ring_off::PRODUCER, bad, Ordering::Release);
        fence(Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_msg_codec::shm_layout::MSG_SIZE_OFFSET;

    fn msg(tag: u8, size: u16) -> Vec<u8> {
        let mut m = vec![tag; usize::from(size)];
        m[MSG_SIZE_OFFSET..MSG_SIZE_OFFSET + 2].copy_from_slice(&size.to_le_bytes());
        m
    }

    fn region(slot_size: u32, slot_count: u32) -> Region {
        let g = Geometry::new(64 * 1024, slot_size, Some(slot_count)).unwrap();
        let r = Region::create(g).unwrap();
        r.initialise(7);
        r
    }

    fn raw_u32(r: &Region, off: usize) -> u32 {
        let mut b = [0u8; 4];
        r.slice().read_slice(&mut b, off).unwrap();
        u32::from_le_bytes(b)
    }

    #[test]
    fn the_attach_epoch_counts_attachments_and_survives_initialising() {
        let r = region(64, 4);
        assert_eq!(r.attach_epoch(), 0);
        assert_eq!(r.next_attach_epoch(), 1);
        assert_eq!(r.next_attach_epoch(), 2);
        r.initialise(7);
        assert_eq!(raw_u32(&r, hdr::ATTACH_EPOCH), 2);
        assert!(r.has_header(7));
    }

    #[test]
    fn geometry_default_fits_and_is_aligned() {
        let g = Geometry::new(1 << 20, 264, None).unwrap();
        assert_eq!(g.slot_count, 1024);
        assert_eq!(g.to_device_offset, 64);
        assert_eq!(g.to_driver_offset % 64, 0);
        assert_eq!(
            g.to_driver_offset as usize,
            align_up(64 + 128 + 1024 * 264, 64).unwrap()
        );
        assert!(g.to_driver_offset as usize + 128 + 1024 * 264 <= 1 << 20);
    }

    #[test]
    fn geometry_shrinks_slot_count_to_fit() {
        // 4 KiB: header 64 + two rings of 128 + n*64: n = 16 needs 64+1152+1152 = 2368.
        let g = Geometry::new(4096, 64, None).unwrap();
        assert_eq!(g.slot_count, 16);
    }

    #[test]
    fn geometry_rejects_bad_values() {
        assert_eq!(
            Geometry::new(1 << 20, 60, None),
            Err(RegionError::BadSlotSize(60))
        );
        assert_eq!(
            Geometry::new(1 << 20, 68, None),
            Err(RegionError::BadSlotSize(68))
        );
        assert_eq!(
            Geometry::new(1 << 20, 64, Some(3)),
            Err(RegionError::BadSlotCount(3))
        );
        assert_eq!(
            Geometry::new(1 << 20, 64, Some(1)),
            Err(RegionError::BadSlotCount(1))
        );
        // Above what the driver side accepts (shm_layout::MAX_SLOT_COUNT).
        assert_eq!(
            Geometry::new(1 << 30, 64, Some(1 << 17)),
            Err(RegionError::BadSlotCount(1 << 17))
        );
        assert!(matches!(
            Geometry::new(512, 64, Some(2)),
            Err(RegionError::TooSmall { .. })
        ));
    }

    #[test]
    fn header_bytes_match_the_contract() {
        let r = region(64, 4);
        let mut magic = [0u8; 4];
        r.slice().read_slice(&mut magic, 0).unwrap();
        assert_eq!(&magic, b"VMSG");
        assert_eq!(raw_u32(&r, hdr::LAYOUT_VERSION), 1);
        assert_eq!(raw_u32(&r, hdr::HEADER_SIZE), 0x40);
        assert_eq!(raw_u32(&r, hdr::SLOT_SIZE), 64);
        assert_eq!(raw_u32(&r, hdr::SLOT_COUNT), 4);
        assert_eq!(raw_u32(&r, hdr::TO_DEVICE_OFFSET), 64);
        assert_eq!(raw_u32(&r, hdr::TO_DRIVER_OFFSET), 64 + 128 + 256);
        assert_eq!(raw_u32(&r, hdr::DEVICE_PEER_ID), 7);
        assert_eq!(raw_u32(&r, hdr::DEVICE_STATE), 1);
        assert_eq!(raw_u32(&r, hdr::DRIVER_STATE), 0);
        for off in (0x28..0x40).step_by(4) {
            assert_eq!(raw_u32(&r, off), 0, "reserved word at {off:#x}");
        }
        // Both rings start empty with the consumer asking for doorbells.
        for base in [64usize, 448] {
            assert_eq!(raw_u32(&r, base + ring_off::PRODUCER), 0);
            assert_eq!(raw_u32(&r, base + ring_off::CONSUMER), 0);
            assert_eq!(raw_u32(&r, base + ring_off::WANTS_DOORBELL), 1);
        }
    }

    #[test]
    fn the_header_is_the_codecs_and_parses_back() {
        let g = Geometry::with_window(64 * 1024, 64, Some(4), 32 * 1024).unwrap();
        let r = Region::create(g).unwrap();
        r.next_attach_epoch();
        r.initialise(7);
        let mut bytes = [0u8; HEADER_SIZE];
        r.slice().read_slice(&mut bytes, 0).unwrap();
        // The builder's device_state is 0: initialise stores 1 last, once the rings are ready.
        let mut expected = g.header_layout(7).header(1);
        expected[hdr::DEVICE_STATE] = 1;
        assert_eq!(bytes, expected);
        let parsed = RegionLayout::parse(&bytes, g.region_size);
        assert_eq!(parsed, Ok(g.header_layout(7)));
    }

    fn raw_u64(r: &Region, off: usize) -> u64 {
        let mut b = [0u8; 8];
        r.slice().read_slice(&mut b, off).unwrap();
        u64::from_le_bytes(b)
    }

    #[test]
    fn geometry_with_a_window_at_the_end() {
        let g = Geometry::with_window(8 << 20, 264, None, 4 << 20).unwrap();
        assert_eq!((g.window_offset, g.window_size), (4 << 20, 4 << 20));
        assert!(g.has_window());
        assert_eq!(g.slot_count, 1024);
        let rings_end = g.to_driver_offset as usize + 128 + 1024 * 264;
        assert!(rings_end <= g.window_offset, "rings overlap the window");
        // The slot count shrinks so that the rings fit in front of the window.
        let g = Geometry::with_window(64 * 1024, 64, None, 60 * 1024).unwrap();
        assert_eq!(g.window_offset, 4096);
        assert_eq!(g.slot_count, 16);
        assert!(g.to_driver_offset as usize + 128 + 16 * 64 <= 4096);
        // No window: the same layout as before.
        let g = Geometry::with_window(1 << 20, 264, None, 0).unwrap();
        assert_eq!(g, Geometry::new(1 << 20, 264, None).unwrap());
        assert_eq!((g.window_offset, g.window_size), (0, 0));
        assert!(!g.has_window());
    }

    #[test]
    fn geometry_rejects_bad_windows() {
        assert_eq!(
            Geometry::with_window(1 << 20, 264, None, 1000),
            Err(RegionError::BadWindowSize(1000))
        );
        // The whole region, or more: nothing left for the header and rings.
        for window in [1 << 20, 2 << 20] {
            let e = Geometry::with_window(1 << 20, 264, None, window).unwrap_err();
            assert!(
                matches!(
                    e,
                    RegionError::WindowDoesNotFit {
                        size: 0x10_0000,
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(e.to_string().contains("larger --shm-size"), "{e}");
        }
        // A fixed slot count that leaves no room for the window.
        assert!(matches!(
            Geometry::with_window(1 << 20, 264, Some(1024), 512 * 1024),
            Err(RegionError::WindowDoesNotFit { .. })
        ));
        // A region that is not a multiple of 4096: the window cannot start on a page.
        assert!(matches!(
            Geometry::with_window(64 * 1024 + 64, 64, Some(4), 4096),
            Err(RegionError::WindowDoesNotFit { .. })
        ));
    }

    #[test]
    fn header_carries_the_window() {
        let g = Geometry::with_window(64 * 1024, 64, Some(4), 32 * 1024).unwrap();
        let r = Region::create(g).unwrap();
        r.initialise(7);
        assert_eq!(raw_u64(&r, hdr::WINDOW_OFFSET), 32 * 1024);
        assert_eq!(raw_u64(&r, hdr::WINDOW_SIZE), 32 * 1024);
        // The raw little-endian bytes at 0x28 and 0x30.
        let mut b = [0u8; 16];
        r.slice().read_slice(&mut b, 0x28).unwrap();
        assert_eq!(b, [0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0]);
        assert_eq!(raw_u32(&r, hdr::LAYOUT_VERSION), 1);
        assert_eq!(raw_u32(&r, 0x38), 0);
        assert_eq!(raw_u32(&r, 0x3c), 0);
        assert!(r.has_header(7));
        // Initialising again (after a client left) writes them again.
        r.slice().write_slice(&[0; 8], hdr::WINDOW_SIZE).unwrap();
        assert!(!r.has_header(7));
        r.initialise(7);
        assert_eq!(raw_u64(&r, hdr::WINDOW_SIZE), 32 * 1024);
        assert!(r.has_header(7));
        // The same rings without the window are another layout: no resuming across it.
        let plain = Region::from_file(
            r.file().try_clone().unwrap(),
            Geometry::new(64 * 1024, 64, Some(4)).unwrap(),
        )
        .unwrap();
        assert!(!plain.has_header(7));
        plain.initialise(7);
        assert_eq!(raw_u64(&plain, hdr::WINDOW_OFFSET), 0);
        assert_eq!(raw_u64(&plain, hdr::WINDOW_SIZE), 0);
        assert!(!r.has_header(7));
    }

    #[test]
    fn push_pop_round_trip_in_order() {
        let r = region(64, 4);
        let ring = r.to_device();
        ring.push(&msg(1, 8)).unwrap();
        ring.push(&msg(2, 64)).unwrap();
        let mut buf = Vec::new();
        assert_eq!(ring.pop(&mut buf).unwrap(), Some(Popped::Message));
        assert_eq!(buf, msg(1, 8));
        assert_eq!(ring.pop(&mut buf).unwrap(), Some(Popped::Message));
        assert_eq!(buf, msg(2, 64));
        assert_eq!(ring.pop(&mut buf).unwrap(), None);
        assert_eq!(ring.producer(), 2);
        assert_eq!(ring.consumer(), 2);
    }

    #[test]
    fn full_ring_refuses_then_accepts_after_pop() {
        let r = region(64, 4);
        let ring = r.to_driver();
        for i in 0..4 {
            ring.push(&msg(i, 16)).unwrap();
        }
        assert_eq!(ring.free().unwrap(), 0);
        assert_eq!(ring.push(&msg(9, 16)), Err(RingError::Full));
        // The refused message did not touch the oldest slot.
        let mut buf = Vec::new();
        ring.pop(&mut buf).unwrap();
        assert_eq!(buf, msg(0, 16));
        ring.push(&msg(9, 16)).unwrap();
        let mut seen = Vec::new();
        while let Some(Popped::Message) = ring.pop(&mut buf).unwrap() {
            seen.push(buf[0]);
        }
        assert_eq!(seen, vec![1, 2, 3, 9]);
    }

    #[test]
    fn indices_wrap_around_u32() {
        let r = region(64, 4);
        let ring = r.to_device();
        // Start both indices just below the 32-bit wrap.
        let start = u32::MAX - 2;
        ring.store(ring_off::PRODUCER, start, Ordering::Relaxed);
        ring.store(ring_off::CONSUMER, start, Ordering::Relaxed);
        let mut buf = Vec::new();
        for round in 0..10u8 {
            ring.push(&msg(round, 8 + u16::from(round))).unwrap();
            ring.push(&msg(round + 100, 24)).unwrap();
            assert_eq!(ring.pending().unwrap(), 2);
            assert_eq!(ring.pop(&mut buf).unwrap(), Some(Popped::Message));
            assert_eq!(buf, msg(round, 8 + u16::from(round)));
            assert_eq!(ring.pop(&mut buf).unwrap(), Some(Popped::Message));
            assert_eq!(buf, msg(round + 100, 24));
        }
        assert_eq!(ring.producer(), start.wrapping_add(20));
        assert!(ring.producer() < start, "the index wrapped");
        // Slot positions follow index & (count - 1): index 0 lands in slot 0.
        assert_eq!(ring.slot_offset(0), 64 + 128);
        assert_eq!(ring.slot_offset(u32::MAX), 64 + 128 + 3 * 64);
    }

    #[test]
    fn full_ring_across_the_wrap() {
        let r = region(64, 4);
        let ring = r.to_device();
        ring.store(ring_off::PRODUCER, u32::MAX - 1, Ordering::Relaxed);
        ring.store(ring_off::CONSUMER, u32::MAX - 1, Ordering::Relaxed);
        for i in 0..4 {
            ring.push(&msg(i, 8)).unwrap();
        }
        assert_eq!(ring.producer(), 2);
        assert_eq!(ring.pending().unwrap(), 4);
        assert_eq!(ring.push(&msg(5, 8)), Err(RingError::Full));
    }

    #[test]
    fn corrupt_indices_are_detected_both_ways() {
        let r = region(64, 4);
        let ring = r.to_device();
        ring.store(ring_off::PRODUCER, 5, Ordering::Relaxed);
        ring.store(ring_off::CONSUMER, 0, Ordering::Relaxed);
        let mut buf = Vec::new();
        assert_eq!(
            ring.pop(&mut buf),
            Err(RingError::Corrupt {
                producer: 5,
                consumer: 0
            })
        );
        assert_eq!(
            ring.pending(),
            Err(RingError::Corrupt {
                producer: 5,
                consumer: 0
            })
        );
        // Consumer ahead of producer is a huge wrapped count, also corrupt.
        ring.store(ring_off::PRODUCER, 0, Ordering::Relaxed);
        ring.store(ring_off::CONSUMER, 1, Ordering::Relaxed);
        assert!(matches!(
            ring.push(&msg(0, 8)),
            Err(RingError::Corrupt { .. })
        ));
        assert!(matches!(ring.free(), Err(RingError::Corrupt { .. })));
        // Exactly slot_count is full, not corrupt.
        ring.store(ring_off::PRODUCER, 4, Ordering::Relaxed);
        ring.store(ring_off::CONSUMER, 0, Ordering::Relaxed);
        assert_eq!(ring.pending(), Ok(4));
        // The fault injector's value is caught.
        ring.reset();
        ring.corrupt_producer();
        assert!(matches!(ring.pending(), Err(RingError::Corrupt { .. })));
    }

    #[test]
    fn bad_msg_size_is_skipped_not_returned() {
        let r = region(64, 4);
        let ring = r.to_device();
        let mut too_big = msg(1, 8);
        too_big[MSG_SIZE_OFFSET..MSG_SIZE_OFFSET + 2].copy_from_slice(&65u16.to_le_bytes());
        ring.push(&too_big).unwrap();
        let mut too_small = msg(2, 8);
        too_small[MSG_SIZE_OFFSET..MSG_SIZE_OFFSET + 2].copy_from_slice(&7u16.to_le_bytes());
        ring.push(&too_small).unwrap();
        ring.push(&msg(3, 8)).unwrap();
        let mut buf = Vec::new();
        assert_eq!(ring.pop(&mut buf).unwrap(), Some(Popped::BadSize(65)));
        assert!(buf.is_empty());
        assert_eq!(ring.pop(&mut buf).unwrap(), Some(Popped::BadSize(7)));
        assert_eq!(ring.pop(&mut buf).unwrap(), Some(Popped::Message));
        assert_eq!(buf, msg(3, 8));
        assert_eq!(ring.consumer(), 3);
    }

    #[test]
    fn push_refuses_bad_lengths() {
        let r = region(64, 4);
        let ring = r.to_driver();
        assert_eq!(ring.push(&[0; 7]), Err(RingError::BadLength(7)));
        assert_eq!(ring.push(&[0; 65]), Err(RingError::BadLength(65)));
        assert_eq!(ring.producer(), 0);
    }

    #[test]
    fn doorbell_suppression() {
        let r = region(64, 4);
        let ring = r.to_driver();
        // Fresh ring: the consumer wants a doorbell.
        ring.push(&msg(1, 8)).unwrap();
        assert!(ring.should_ring());
        // A busy consumer clears the flag: the producer must stay quiet.
        ring.set_wants_doorbell(false);
        ring.push(&msg(2, 8)).unwrap();
        assert!(!ring.should_ring());
        // The busy consumer drains, then prepares to sleep: it sees nothing left.
        let mut buf = Vec::new();
        while ring.pop(&mut buf).unwrap().is_some() {}
        assert_eq!(ring.prepare_sleep().unwrap(), 0);
        assert!(ring.wants_doorbell());
        // A message published while the consumer was busy is caught by the recheck.
        ring.set_wants_doorbell(false);
        ring.push(&msg(3, 8)).unwrap();
        assert!(!ring.should_ring());
        assert_eq!(ring.prepare_sleep().unwrap(), 1);
        // And once asleep the producer rings again.
        ring.pop(&mut buf).unwrap();
        ring.push(&msg(4, 8)).unwrap();
        assert!(ring.should_ring());
    }

    #[test]
    fn peek_reads_ahead_and_release_frees_slots_later() {
        let r = region(64, 4);
        let ring = r.to_device();
        for i in 0..3 {
            ring.push(&msg(i, 8)).unwrap();
        }
        let mut buf = Vec::new();
        assert_eq!(ring.peek_at(0, &mut buf).unwrap(), Some(Popped::Message));
        assert_eq!(buf, msg(0, 8));
        assert_eq!(ring.peek_at(2, &mut buf).unwrap(), Some(Popped::Message));
        assert_eq!(buf, msg(2, 8));
        assert_eq!(ring.peek_at(3, &mut buf).unwrap(), None);
        // Nothing is released until the consumer says so: a successor reads from 0 again.
        assert_eq!(ring.consumer(), 0);
        assert_eq!(ring.pending_from(3).unwrap(), 0);
        assert_eq!(ring.prepare_sleep_from(2).unwrap(), 1);
        ring.push(&msg(3, 8)).unwrap();
        assert_eq!(ring.push(&msg(4, 8)), Err(RingError::Full));
        ring.release_to(3);
        assert_eq!(ring.free().unwrap(), 3);
        // A read position outside producer..consumer is corrupt.
        assert!(matches!(
            ring.pending_from(9),
            Err(RingError::Corrupt { .. })
        ));
    }

    #[test]
    fn has_header_only_for_the_same_layout_and_peer() {
        let r = region(64, 4);
        assert!(r.has_header(7));
        assert!(!r.has_header(0));
        let other = Region::from_file(
            r.file().try_clone().unwrap(),
            Geometry::new(64 * 1024, 64, Some(8)).unwrap(),
        )
        .unwrap();
        assert!(!other.has_header(7));
        r.store(hdr::MAGIC, 0, Ordering::SeqCst);
        assert!(!r.has_header(7));
    }

    #[test]
    fn reset_rings_keeps_header() {
        let r = region(64, 4);
        r.to_device().push(&msg(1, 8)).unwrap();
        r.to_driver().set_wants_doorbell(false);
        r.reset_rings();
        assert_eq!(r.to_device().pending().unwrap(), 0);
        assert_eq!(r.to_device().producer(), 0);
        assert!(r.to_driver().wants_doorbell());
        assert_eq!(raw_u32(&r, hdr::MAGIC), MAGIC);
    }
}
