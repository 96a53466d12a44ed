// SPDX-License-Identifier: GPL-2.0

//! Work queue helpers the kernel crate of Linux 7.2 lacks: flushing work items, and the
//! non-deprecated system queue.
//!
//! A module whose work items may still be queued when it tears an object down (or when it is
//! unloaded) must wait for them; these wrap `flush_work()` and `flush_delayed_work()`.

use kernel::{
    bindings,
    workqueue::{DelayedWork, Queue, Work},
};

/// Waits until the last queueing of `work` has finished running. May sleep.
///
/// Returns whether it had to wait. A work item that queues itself again while running is not
/// waited for a second time: stop it from doing so first, then flush twice.
pub fn flush_work<T: ?Sized, const ID: u64>(work: &Work<T, ID>) -> bool {
    // SAFETY: `work` is a live, initialised `work_struct` for the duration of the call.
    unsafe { bindings::flush_work(Work::raw_get(work)) }
}

/// Runs `work` now if its timer is pending and waits until it has finished. May sleep.
///
/// Returns whether it had to wait; see [`flush_work`] for work that re-arms itself.
pub fn flush_delayed_work<T: ?Sized, const ID: u64>(work: &DelayedWork<T, ID>) -> bool {
    // CAST: `DelayedWork` is a transparent wrapper of `struct delayed_work`.
    let raw = core::ptr::from_ref(work)
        .cast_mut()
        .cast::<bindings::delayed_work>();
    // SAFETY: `raw` is a live, initialised `delayed_work` for the duration of the call.
    unsafe { bindings::flush_delayed_work(raw) }
}

/// Returns the system's unbound work queue (`system_dfl_wq`).
///
/// The kernel crate of Linux 7.2 offers only `system_wq` and `system_unbound_wq` of the general
/// queues, and Linux 7.2 deprecates both (a warning on first use) in favour of
/// `system_percpu_wq` and `system_dfl_wq`.
pub fn system_dfl() -> &'static Queue {
    // SAFETY: `system_dfl_wq` is set up at boot, before any module loads, and never freed.
    unsafe { Queue::from_raw(bindings::system_dfl_wq) }
}
