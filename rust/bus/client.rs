// SPDX-License-Identifier: GPL-2.0

//! The bus module's side of the contract: register an instance, announce devices, pass on
//! events.

use super::{raw, Terms};
use crate::vmsg::{
    codec::{
        bus::{present_devices, BusMessage},
        Message,
    },
    errno::eproto,
    ffi::{raw_device, to_c_int},
    gate::Gate,
    window_memory::WindowMemory,
};
use core::{
    ffi::c_void,
    marker::PhantomData,
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};
use kernel::{
    error::to_result,
    ffi::{c_int, c_uint},
    prelude::*,
    sync::{Arc, SetOnce},
};

/// What the transport asks of a bus instance.
pub trait BusOps: Send + Sync + 'static {
    /// Sends request `req`, waits (bounded) for its response, copies it to `resp` and returns
    /// its length; `ETIMEDOUT` when none came. May sleep.
    fn request(&self, req: &[u8], resp: &mut [u8]) -> Result<usize>;

    /// Sends event `msg`. Never sleeps: called in atomic context. `EAGAIN` when there is no
    /// room now: the transport keeps the event until [`BusRegistration::resume_events`], which
    /// the bus then calls once it has room.
    fn send_event(&self, msg: &[u8]) -> Result;
}

/// The C callback table for bus type `T`.
struct Table<T>(PhantomData<T>);

impl<T: BusOps> Table<T> {
    const OPS: raw::vmsg_bus_ops = raw::vmsg_bus_ops {
        request: Some(Self::request),
        send_event: Some(Self::send_event),
    };

    /// The `request` callback.
    ///
    /// # Safety
    ///
    /// `p` is the `priv` of a live [`BusRegistration<T>`]; `req` is valid for reads of `req_len`
    /// bytes and `resp` for writes of `resp_cap` bytes, for the duration of the call.
    unsafe extern "C" fn request(
        p: *mut c_void,
        req: *const c_void,
        req_len: c_uint,
        resp: *mut c_void,
        resp_cap: c_uint,
    ) -> c_int {
        // SAFETY: `p` is `Arc::as_ptr` of the `Arc<T>` the registration holds.
        let ops = unsafe { &*p.cast::<T>() };
        // SAFETY: The transport passes buffers of these sizes for the duration of the call.
        let (req, resp) = unsafe {
            (
                core::slice::from_raw_parts(req.cast::<u8>(), req_len as usize),
                core::slice::from_raw_parts_mut(resp.cast::<u8>(), resp_cap as usize),
            )
        };
        match ops.request(req, resp) {
            Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
            Err(e) => e.to_errno(),
        }
    }

    /// The `send_event` callback.
    ///
    /// # Safety
    ///
    /// `p` is the `priv` of a live [`BusRegistration<T>`]; `msg` is valid for reads of `len`
    /// bytes for the duration of the call.
    unsafe extern "C" fn send_event(p: *mut c_void, msg: *const c_void, len: c_uint) -> c_int {
        // SAFETY: `p` is `Arc::as_ptr` of the `Arc<T>` the registration holds.
        let ops = unsafe { &*p.cast::<T>() };
        // SAFETY: The transport passes a buffer of `len` bytes for the duration of the call.
        let msg = unsafe { core::slice::from_raw_parts(msg.cast::<u8>(), len as usize) };
        to_c_int(ops.send_event(msg))
    }
}

/// A bus instance registered with the transport.
///
/// It can be shared (by the bus's receive path and its probe/remove path, say): calls made after
/// [`BusRegistration::unregister`] fail with `ENODEV`, and `unregister` waits for those in flight
/// before the transport frees the instance.
///
/// # Invariants
///
/// `raw` is a live instance returned by `vmsg_bus_register` for `ops` while `calls` is open and
/// for every call inside it; it is unregistered only after `calls` closed.
pub struct BusRegistration<T: BusOps> {
    raw: NonNull<raw::vmsg_bus>,
    ops: Arc<T>,
    /// Dropped after the instance is unregistered, as the contract requires.
    window: SetOnce<KBox<dyn WindowMemory>>,
    calls: Gate,
    unregistered: AtomicBool,
}

// SAFETY: The transport's exported functions may be called from any thread.
unsafe impl<T: BusOps> Send for BusRegistration<T> {}
// SAFETY: The transport's exported functions may be called from any thread, concurrently.
unsafe impl<T: BusOps> Sync for BusRegistration<T> {}

impl<T: BusOps> BusRegistration<T> {
    /// Registers a bus instance that negotiated `terms` and is served by `ops`.
    pub fn new(parent: Option<&kernel::device::Device>, terms: Terms, ops: Arc<T>) -> Result<Self> {
        let parent = raw_device(parent);
        let raw_terms = terms.to_raw();
        // SAFETY: `Table::<T>::OPS` is a promoted constant; `ops` is kept alive by the returned
        // registration until after `vmsg_bus_unregister`, as the contract requires.
        let raw = unsafe {
            raw::vmsg_bus_register(
                parent,
                &raw_terms,
                &Table::<T>::OPS,
                Arc::as_ptr(&ops).cast_mut().cast(),
            )
        };
        let raw = NonNull::new(raw).ok_or(EINVAL)?;
        // INVARIANT: `raw` was just registered.
        Ok(Self {
            raw,
            ops,
            window: SetOnce::new(),
            calls: Gate::new(),
            unregistered: AtomicBool::new(false),
        })
    }

    /// Returns the bus operations.
    pub fn ops(&self) -> &Arc<T> {
        &self.ops
    }

    /// Runs `f` on the live instance, unless [`BusRegistration::unregister`] closed it.
    fn with_raw(&self, f: impl FnOnce(*mut raw::vmsg_bus) -> c_int) -> Result {
        let _inside = self.calls.enter().ok_or(ENODEV)?;
        to_result(f(self.raw.as_ptr()))
    }

    /// Gives the instance a window over `memory`, which the device side reaches at
    /// `bus_base + offset`: every device added afterwards has its virtqueues there and its
    /// buffers bounced through it. Once, before the first device (`EBUSY` after).
    pub fn set_window(&self, memory: KBox<dyn WindowMemory>, bus_base: u64) -> Result {
        let base = memory.base();
        let len = u64::try_from(memory.size()).map_err(|_| EINVAL)?;
        if !self.window.populate(memory) {
            return Err(EBUSY);
        }
        // SAFETY: `with_raw` passes the live instance; the memory now belongs to this
        // registration, which drops it only after `vmsg_bus_unregister` returned.
        self.with_raw(|raw| unsafe {
            raw::vmsg_bus_set_window(raw, base.as_ptr().cast(), bus_base, len)
        })
    }

    /// Announces device `dev_num`; its driver is probed before this returns. May sleep.
    pub fn add_device(&self, dev_num: u16) -> Result {
        // SAFETY: `with_raw` passes the live instance.
        self.with_raw(|raw| unsafe { raw::vmsg_bus_add_device(raw, dev_num) })
    }

    /// Withdraws device `dev_num`; its driver is removed before this returns. May sleep.
    pub fn remove_device(&self, dev_num: u16) -> Result {
        // SAFETY: `with_raw` passes the live instance.
        self.with_raw(|raw| unsafe { raw::vmsg_bus_remove_device(raw, dev_num) })
    }

    /// Marks every device broken: the device side can no longer be reached (`gone`: it said it
    /// is going away, which is logged as information rather than as an error). Process context.
    pub fn break_all(&self, gone: bool) -> Result {
        self.with_raw(|raw| {
            // SAFETY: `with_raw` passes the live instance.
            unsafe { raw::vmsg_bus_break_all(raw, gone) };
            0
        })
    }

    /// Hands over a message from the device side that is not a response. Any context.
    pub fn receive(&self, msg: &[u8]) -> Result {
        let len = c_uint::try_from(msg.len()).map_err(|_| EINVAL)?;
        // SAFETY: `with_raw` passes the live instance; `msg` is valid for the call.
        self.with_raw(|raw| unsafe { raw::vmsg_bus_receive(raw, msg.as_ptr().cast(), len) })
    }

    /// Says the bus has room for events again: the transport sends the ones it kept after
    /// [`BusOps::send_event`] returned `EAGAIN`. Any context.
    pub fn resume_events(&self) {
        let _ = self.with_raw(|raw| {
            // SAFETY: `with_raw` passes the live instance.
            unsafe { raw::vmsg_bus_resume_events(raw) };
            0
        });
    }

    /// Removes every device, then unregisters the instance. Events keep flowing while the
    /// devices' drivers are removed; calls made afterwards fail. Idempotent; may sleep.
    pub fn unregister(&self) {
        if self.unregistered.swap(true, Ordering::SeqCst) {
            return;
        }
        // SAFETY: By the type invariant `raw` is live; `receive` may run concurrently.
        unsafe { raw::vmsg_bus_remove_all(self.raw.as_ptr()) };
        self.calls.close();
        // SAFETY: No call uses `raw` any more (the gate is closed and empty); `ops` outlives
        // this call.
        unsafe { raw::vmsg_bus_unregister(self.raw.as_ptr()) };
    }
}

impl<T: BusOps> Drop for BusRegistration<T> {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// Device numbers asked for per GET_DEVICES request.
const DEVICES_WINDOW: u16 = 256;

/// The GET_DEVICES request for the window starting at `offset`.
pub fn devices_window_request(offset: u16) -> Message<'static> {
    Message::Bus(BusMessage::GetDevicesRequest {
        offset,
        count: DEVICES_WINDOW,
    })
}

/// Reads the answer to [`devices_window_request`]`(offset)`: where the next window starts (0:
/// none) and the devices present in this one. `None` if `m` does not answer that request: it
/// must describe exactly the window asked for (same offset, same count), or devices past a
/// shorter bitmap would be taken as absent.
pub fn devices_window_answer(offset: u16, m: Message<'_>) -> Option<(u16, KVec<u16>)> {
    match m {
        Message::Bus(BusMessage::GetDevicesResponse {
            offset: o,
            next_offset,
            bitmap,
        }) if o == offset && bitmap.len() * 8 == usize::from(DEVICES_WINDOW) => {
            let mut numbers = KVec::new();
            for n in present_devices(o, bitmap) {
                numbers.push(n, GFP_KERNEL).ok()?;
            }
            Some((next_offset, numbers))
        }
        _ => None,
    }
}

/// Discovers the device numbers present on a bus instance with GET_DEVICES, window by window:
/// `window(offset)` sends [`devices_window_request`] and returns [`devices_window_answer`]'s
/// reading of the response.
pub fn discover_devices(
    mut window: impl FnMut(u16) -> Result<(u16, KVec<u16>)>,
) -> Result<KVec<u16>> {
    let mut found = KVec::new();
    let mut offset: u16 = 0;
    // Each window moves `offset` forward, so at most 256 windows cover all device numbers.
    for _ in 0..=u16::MAX / DEVICES_WINDOW {
        let (next_offset, numbers) = window(offset)?;
        found.extend_from_slice(&numbers, GFP_KERNEL)?;
        if next_offset == 0 {
            return Ok(found);
        }
        if next_offset <= offset {
            pr_err!("GET_DEVICES went backwards ({offset} -> {next_offset})\n");
            return Err(eproto());
        }
        offset = next_offset;
    }
    Err(eproto())
}
