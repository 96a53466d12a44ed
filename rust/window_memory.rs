// SPDX-License-Identifier: GPL-2.0

//! Memory that can back a window (see `virtio/window.rs`): where a bus instance places the
//! virtqueues and bounce buffers its device side reaches.

use core::ptr::NonNull;
use kernel::{bindings, device::Bound, pci, prelude::*, sync::Arc};

/// The smallest window the transport accepts: the rings of a few devices and one block request
/// of the default maximum size (`max_sectors_kb`, 1280 KiB) must fit at once. Buses check it
/// before they announce an instance whose device side offers a smaller one.
pub const MIN_WINDOW_SIZE: u64 = 2 << 20;

/// Memory that can back a window.
///
/// # Safety
///
/// Implementors guarantee that [`WindowMemory::base`] is a page-aligned kernel mapping of
/// [`WindowMemory::size`] bytes (a multiple of the page size), readable and writable with
/// ordinary loads and stores, that stays mapped for as long as the value lives.
pub unsafe trait WindowMemory: Send + Sync {
    /// Start of the mapping.
    fn base(&self) -> NonNull<u8>;
    /// Size of the mapping in bytes.
    fn size(&self) -> usize;
}

/// A range of a memory BAR that is RAM on the other side (ivshmem's shared memory, say), mapped
/// write-back with `memremap()`, as memory rather than as registers.
///
/// # Invariants
///
/// `base` is the `memremap(MEMREMAP_WB)` mapping of `size` bytes, unmapped on drop.
pub struct BarMemory {
    base: NonNull<u8>,
    size: usize,
}

// SAFETY: A mapping may be used and unmapped from any thread.
unsafe impl Send for BarMemory {}
// SAFETY: The type hands out only the address; accesses are the users' business.
unsafe impl Sync for BarMemory {}

impl BarMemory {
    /// Maps `size` bytes at `offset` of memory BAR `bar` of `pdev`; both page-aligned.
    pub fn new(pdev: &pci::Device<Bound>, bar: u32, offset: u64, size: usize) -> Result<Self> {
        let page = bindings::PAGE_SIZE as u64;
        let size64 = u64::try_from(size).map_err(|_| EINVAL)?;
        let bar_len = pdev.resource_len(bar)?;
        let end = offset.checked_add(size64).ok_or(EINVAL)?;
        if size == 0 || offset % page != 0 || size64 % page != 0 || end > bar_len {
            return Err(EINVAL);
        }
        let phys = pdev.resource_start(bar)? + offset;
        // SAFETY: The range lies inside a BAR of a device this driver is bound to; mapping it
        // write-back aliases no kernel memory, only the BAR's own backing.
        let base = unsafe { bindings::memremap(phys, size, bindings::MEMREMAP_WB as usize) };
        let base = NonNull::new(base.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: `base` is the mapping just made.
        Ok(Self { base, size })
    }
}

// SAFETY: `memremap` mappings are page-aligned, `size` is a multiple of the page size (checked in
// `new`), and the mapping lives until drop.
unsafe impl WindowMemory for BarMemory {
    fn base(&self) -> NonNull<u8> {
        self.base
    }

    fn size(&self) -> usize {
        self.size
    }
}

impl Drop for BarMemory {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `base` is a live `memremap` mapping.
        unsafe { bindings::memunmap(self.base.as_ptr().cast()) }
    }
}

/// Window memory that outlives one registration: each registration of a bus instance (a new one
/// after every recovery) gets a [`SharedWindow::share`] of the same mapping.
pub struct SharedWindow(Arc<dyn WindowMemory>);

impl SharedWindow {
    /// Wraps `memory`.
    pub fn new(memory: impl WindowMemory + 'static) -> Result<Self> {
        let memory: Arc<dyn WindowMemory> = Arc::new(memory, GFP_KERNEL)?;
        Ok(Self(memory))
    }

    /// Wraps memory that is already shared.
    pub fn from_arc(memory: Arc<dyn WindowMemory>) -> Self {
        Self(memory)
    }

    /// Returns a handle on the same memory for one registration.
    pub fn share(&self) -> Result<KBox<dyn WindowMemory>> {
        let handle: KBox<dyn WindowMemory> = KBox::new(SharedWindow(self.0.clone()), GFP_KERNEL)?;
        Ok(handle)
    }
}

// SAFETY: The mapping is the shared one, which lives while any handle on it does.
unsafe impl WindowMemory for SharedWindow {
    fn base(&self) -> NonNull<u8> {
        self.0.base()
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}
