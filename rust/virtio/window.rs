// SPDX-License-Identifier: GPL-2.0

//! Windows: memory the device side reaches, where the virtqueues of a device are placed and
//! through which every buffer it is given is bounced (the C half is `glue/window.c`).
//!
//! A device side that must not see the driver's memory (a partition that was shared a few
//! pages, a peer that maps only a shared region) gets bus addresses `bus_base + offset` into
//! the window instead of the DMA API's addresses. The device then must offer
//! `VIRTIO_F_ACCESS_PLATFORM`, or the virtio core would bypass the window.

use super::{glue, Device};
use core::ptr::NonNull;
use kernel::prelude::*;

/// Counters of one window; see `struct vmsg_window_stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WindowStats {
    /// Window size in bytes.
    pub size: u64,
    /// Bytes reserved now.
    pub in_use: u64,
    /// Most bytes ever reserved at once.
    pub peak: u64,
    /// Reservations refused because the window was full.
    pub failed: u64,
    /// Bytes copied into the window for the device side.
    pub bounced_to_device: u64,
    /// Bytes copied out of the window for the driver.
    pub bounced_from_device: u64,
}

/// A window over memory a bus keeps mapped (a `WindowMemory`), seen by the device side at `bus_base + offset`.
///
/// # Invariants
///
/// `raw` was made by `vmsg_window_new` over memory that stays mapped for as long as any device
/// given the window has virtqueues (the contract of [`Window::new_borrowed`]).
pub struct Window {
    raw: NonNull<glue::vmsg_window>,
    bus_base: u64,
}

// SAFETY: The window's C functions lock what they share; any thread may call them.
unsafe impl Send for Window {}
// SAFETY: The window's C functions lock what they share; any thread may call them concurrently.
unsafe impl Sync for Window {}

impl Window {
    /// Creates a window over memory somebody else keeps mapped.
    ///
    /// # Safety
    ///
    /// `base` must be a page-aligned kernel mapping of `len` bytes that stays mapped for as long
    /// as any device given this window has virtqueues.
    pub unsafe fn new_borrowed(base: NonNull<u8>, len: u64, bus_base: u64) -> Result<Self> {
        // SAFETY: Guaranteed by the caller; the window only touches the memory through the
        // virtqueues and mappings of its devices.
        let raw = unsafe { glue::vmsg_window_new(base.as_ptr().cast(), bus_base, len) };
        let raw = NonNull::new(raw).ok_or(EINVAL)?;
        // INVARIANT: The caller keeps the memory mapped as the type requires.
        Ok(Self { raw, bus_base })
    }

    /// The bus address of the window's first byte.
    pub fn bus_base(&self) -> u64 {
        self.bus_base
    }

    /// Returns the window's counters.
    pub fn stats(&self) -> WindowStats {
        let mut s = glue::vmsg_window_stats {
            size: 0,
            in_use: 0,
            peak: 0,
            failed: 0,
            bounced_to_device: 0,
            bounced_from_device: 0,
        };
        // SAFETY: By the type invariant `raw` is a live window; `s` is a valid local.
        unsafe { glue::vmsg_window_get_stats(self.raw.as_ptr(), &mut s) };
        WindowStats {
            size: s.size,
            in_use: s.in_use,
            peak: s.peak,
            failed: s.failed,
            bounced_to_device: s.bounced_to_device,
            bounced_from_device: s.bounced_from_device,
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `raw` is live; whoever gave it to a device keeps the
        // window alive for as long as that device (see `Registration::set_window`).
        unsafe { glue::vmsg_window_free(self.raw.as_ptr()) }
    }
}

impl Device {
    /// Places this device's virtqueues in `window` and bounces its buffers through it.
    ///
    /// # Safety
    ///
    /// The device must not be registered yet, and `window` must outlive its virtqueues.
    pub(super) unsafe fn set_window(&self, window: &Window) {
        // SAFETY: `raw` is live by the type invariant, the window by the caller's guarantee.
        unsafe { glue::vmsg_vdev_set_window(self.raw.as_ptr(), window.raw.as_ptr()) }
    }
}
