// SPDX-License-Identifier: GPL-2.0

//! The transport's side of the contract: the functions it exports to bus modules.
//!
//! The transport implements [`Host`] and invokes [`export_bus_host!`](crate::export_bus_host)
//! once; the generated `#[no_mangle]` functions are exported by the module's C file
//! (`EXPORT_SYMBOL_GPL`).

use super::bus::{raw, Terms};
use crate::vmsg::{
    codec::{min_msg_size, Layout, MAX_MSG_SIZE},
    ffi::to_c_int,
    gate::Gate,
    virtio::window::Window,
};
use core::{ffi::c_void, ptr::NonNull};
use kernel::{
    device::Device,
    ffi::{c_int, c_uint},
    prelude::*,
    sync::{aref::ARef, Arc},
    types::ForeignOwnable,
};

/// A bus instance's operations, as the bus module registered them.
///
/// Calls made after [`ForeignLink::revoke`] fail with `ENODEV`; `revoke` waits for the calls in
/// flight, so the bus module's `ops` and `priv` are never used after unregistration.
///
/// # Invariants
///
/// While `calls` is open, and for every call inside it, `ops` and `priv_` are valid, as the
/// bus module promised when it registered.
pub struct ForeignLink {
    ops: *const raw::vmsg_bus_ops,
    priv_: *mut c_void,
    terms: Terms,
    calls: Gate,
}

// SAFETY: The contract requires the bus operations to be callable from any thread.
unsafe impl Send for ForeignLink {}
// SAFETY: The contract requires the bus operations to be callable from any thread, concurrently.
unsafe impl Sync for ForeignLink {}

impl ForeignLink {
    /// Returns the negotiated terms.
    pub fn terms(&self) -> Terms {
        self.terms
    }

    /// Runs `f` with the ops table unless the link is revoked.
    fn with_ops<R>(&self, f: impl FnOnce(&raw::vmsg_bus_ops) -> Result<R>) -> Result<R> {
        let _inside = self.calls.enter().ok_or(ENODEV)?;
        // SAFETY: Inside the open gate, so by the type invariant `ops` is valid until `_inside`
        // is dropped: `revoke` waits for it.
        f(unsafe { &*self.ops })
    }

    /// Sends a request and waits for its response; see `vmsg_bus_ops.request`.
    pub fn request(&self, req: &[u8], resp: &mut [u8]) -> Result<usize> {
        let req_len = c_uint::try_from(req.len()).map_err(|_| EINVAL)?;
        let resp_cap = c_uint::try_from(resp.len()).map_err(|_| EINVAL)?;
        self.with_ops(|ops| {
            let f = ops.request.ok_or(EINVAL)?;
            // SAFETY: `f` and `priv_` are valid (see `with_ops`); the buffers live for the call.
            let n = unsafe {
                f(
                    self.priv_,
                    req.as_ptr().cast(),
                    req_len,
                    resp.as_mut_ptr().cast(),
                    resp_cap,
                )
            };
            if n < 0 {
                return Err(Error::from_errno(n));
            }
            usize::try_from(n)
                .ok()
                .filter(|n| *n <= resp.len())
                .ok_or(EINVAL)
        })
    }

    /// Sends an event; never sleeps.
    pub fn send_event(&self, msg: &[u8]) -> Result {
        let len = c_uint::try_from(msg.len()).map_err(|_| EINVAL)?;
        self.with_ops(|ops| {
            let f = ops.send_event.ok_or(EINVAL)?;
            // SAFETY: `f` and `priv_` are valid (see `with_ops`); `msg` lives for the call.
            let r = unsafe { f(self.priv_, msg.as_ptr().cast(), len) };
            if r < 0 {
                Err(Error::from_errno(r))
            } else {
                Ok(())
            }
        })
    }

    /// Stops all further calls and waits for those in flight.
    fn revoke(&self) {
        self.calls.close();
    }
}

/// Checks terms that come through the C ABI.
fn terms_from_raw(t: &raw::vmsg_bus_terms) -> Result<Terms> {
    let min = min_msg_size(t.revision).ok_or(EINVAL)?;
    let max_msg_size = u16::try_from(t.max_msg_size)
        .ok()
        .filter(|m| (min..=MAX_MSG_SIZE).contains(m))
        .ok_or(EINVAL)?;
    let layout = match t.layout {
        raw::VMSG_LAYOUT_REVISION1 => Layout::Revision1,
        raw::VMSG_LAYOUT_LATE2025 => Layout::Late2025,
        _ => return Err(EINVAL),
    };
    Ok(Terms {
        revision: t.revision,
        max_msg_size,
        features: t.features,
        layout,
    })
}

/// A transport's view of one bus instance.
pub trait Host: Sized + Send + Sync + 'static {
    /// Creates the instance for a bus that registered with `terms`.
    fn new(parent: Option<ARef<Device>>, link: Arc<ForeignLink>) -> Result<Pin<KBox<Self>>>;
    /// Adds device `dev_num`.
    fn add_device(&self, dev_num: u16) -> Result;
    /// Removes device `dev_num`.
    fn remove_device(&self, dev_num: u16) -> Result;
    /// Handles a message from the device side. Any context.
    fn receive(&self, msg: &[u8]) -> Result;
    /// Removes every device.
    fn remove_all(&self);
    /// Marks every device broken: the device side is unreachable (`gone`: it said it is going
    /// away). Process context.
    fn break_all(&self, gone: bool);
    /// Places the virtqueues and buffers of every device added from now on in `window`.
    fn set_window(&self, window: Window) -> Result;
    /// Sends the events kept while the bus had no room. Any context.
    fn resume_events(&self);
}

/// What a `struct vmsg_bus *` points to.
struct Instance<H: Host> {
    host: Pin<KBox<H>>,
    link: Arc<ForeignLink>,
}

/// Implements `vmsg_bus_register`.
///
/// # Safety
///
/// The arguments follow `virtio_msg_bus.h`: `parent` is null or a live device, `terms` and `ops`
/// are valid, and `ops` and `priv_` stay valid until `vmsg_bus_unregister` returns.
pub unsafe fn register<H: Host>(
    parent: *mut kernel::bindings::device,
    terms: *const raw::vmsg_bus_terms,
    ops: *const raw::vmsg_bus_ops,
    priv_: *mut c_void,
) -> *mut raw::vmsg_bus {
    // SAFETY: The caller passes valid terms, or null.
    let Some(terms) = (unsafe { terms.as_ref() }).and_then(|t| terms_from_raw(t).ok()) else {
        pr_err!("virtio-msg: bus registration with invalid terms refused\n");
        return core::ptr::null_mut();
    };
    if ops.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: The caller passes a live device or null; `get_device` takes a reference.
    let parent = (!parent.is_null()).then(|| unsafe { Device::get_device(parent) });
    let link = ForeignLink {
        ops,
        priv_,
        terms,
        calls: Gate::new(),
    };
    let instance = (|| -> Result<KBox<Instance<H>>> {
        let link = Arc::new(link, GFP_KERNEL)?;
        let host = H::new(parent, link.clone())?;
        Ok(KBox::new(Instance { host, link }, GFP_KERNEL)?)
    })();
    match instance {
        Ok(i) => i.into_foreign().cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// Borrows the instance behind a `struct vmsg_bus *`.
///
/// # Safety
///
/// `bus` was returned by [`register::<H>`] and not yet passed to [`unregister::<H>`].
unsafe fn instance<'a, H: Host>(bus: *mut raw::vmsg_bus) -> &'a Instance<H> {
    // SAFETY: Guaranteed by the caller.
    unsafe { <KBox<Instance<H>> as ForeignOwnable>::borrow(bus.cast()) }
}

/// Implements `vmsg_bus_unregister`.
///
/// # Safety
///
/// `bus` was returned by [`register::<H>`] and is not used again.
pub unsafe fn unregister<H: Host>(bus: *mut raw::vmsg_bus) {
    // SAFETY: Guaranteed by the caller: this is the last use of the foreign box.
    let instance = unsafe { <KBox<Instance<H>> as ForeignOwnable>::from_foreign(bus.cast()) };
    instance.host.remove_all();
    instance.link.revoke();
}

/// Implements `vmsg_bus_remove_all`.
///
/// # Safety
///
/// `bus` is a live instance of [`register::<H>`].
pub unsafe fn remove_all<H: Host>(bus: *mut raw::vmsg_bus) {
    // SAFETY: Guaranteed by the caller.
    unsafe { instance::<H>(bus) }.host.remove_all()
}

/// Implements `vmsg_bus_break_all`.
///
/// # Safety
///
/// `bus` is a live instance of [`register::<H>`].
pub unsafe fn break_all<H: Host>(bus: *mut raw::vmsg_bus, gone: bool) {
    // SAFETY: Guaranteed by the caller.
    unsafe { instance::<H>(bus) }.host.break_all(gone)
}

/// Implements `vmsg_bus_set_window`.
///
/// # Safety
///
/// `bus` is a live instance of [`register::<H>`]; `base` is null or a page-aligned kernel mapping
/// of `len` bytes that stays mapped until `vmsg_bus_unregister` returns.
pub unsafe fn set_window<H: Host>(
    bus: *mut raw::vmsg_bus,
    base: *mut c_void,
    bus_base: u64,
    len: u64,
) -> c_int {
    let Some(base) = NonNull::new(base.cast::<u8>()) else {
        return EINVAL.to_errno();
    };
    // SAFETY: The caller keeps the memory mapped until `vmsg_bus_unregister` returns, and that
    // removes every device, and with them their virtqueues and mappings, before it returns.
    let window = match unsafe { Window::new_borrowed(base, len, bus_base) } {
        Ok(w) => w,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: Guaranteed by the caller.
    to_c_int(unsafe { instance::<H>(bus) }.host.set_window(window))
}

/// Implements `vmsg_bus_add_device`.
///
/// # Safety
///
/// `bus` is a live instance of [`register::<H>`].
pub unsafe fn add_device<H: Host>(bus: *mut raw::vmsg_bus, dev_num: u16) -> c_int {
    // SAFETY: Guaranteed by the caller.
    to_c_int(unsafe { instance::<H>(bus) }.host.add_device(dev_num))
}

/// Implements `vmsg_bus_remove_device`.
///
/// # Safety
///
/// `bus` is a live instance of [`register::<H>`].
pub unsafe fn remove_device<H: Host>(bus: *mut raw::vmsg_bus, dev_num: u16) -> c_int {
    // SAFETY: Guaranteed by the caller.
    to_c_int(unsafe { instance::<H>(bus) }.host.remove_device(dev_num))
}

/// Implements `vmsg_bus_receive`.
///
/// # Safety
///
/// `bus` is a live instance of [`register::<H>`]; `msg` is valid for reads of `len` bytes.
pub unsafe fn receive<H: Host>(bus: *mut raw::vmsg_bus, msg: *const c_void, len: c_uint) -> c_int {
    // SAFETY: Guaranteed by the caller.
    let msg = unsafe { core::slice::from_raw_parts(msg.cast::<u8>(), len as usize) };
    // SAFETY: Guaranteed by the caller.
    to_c_int(unsafe { instance::<H>(bus) }.host.receive(msg))
}

/// Implements `vmsg_bus_resume_events`.
///
/// # Safety
///
/// `bus` is a live instance of [`register::<H>`].
pub unsafe fn resume_events<H: Host>(bus: *mut raw::vmsg_bus) {
    // SAFETY: Guaranteed by the caller.
    unsafe { instance::<H>(bus) }.host.resume_events()
}

/// Defines the exported `vmsg_bus_*` functions of `virtio_msg_bus.h` for host type `$host`.
#[macro_export]
macro_rules! export_bus_host {
    ($host:ty) => {
        /// See `vmsg_bus_register` in `virtio_msg_bus.h`.
        ///
        /// # Safety
        ///
        /// As [`register`]($crate::vmsg::bus_host::register) requires.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn vmsg_bus_register(
            parent: *mut kernel::bindings::device,
            terms: *const $crate::vmsg::bus_host::RawTerms,
            ops: *const $crate::vmsg::bus_host::RawOps,
            priv_: *mut core::ffi::c_void,
        ) -> *mut $crate::vmsg::bus_host::RawBus {
            // SAFETY: The caller follows the contract of `virtio_msg_bus.h`.
            unsafe { $crate::vmsg::bus_host::register::<$host>(parent, terms, ops, priv_) }
        }

        /// See `vmsg_bus_unregister` in `virtio_msg_bus.h`.
        ///
        /// # Safety
        ///
        /// As [`unregister`]($crate::vmsg::bus_host::unregister) requires.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn vmsg_bus_unregister(
            bus: *mut $crate::vmsg::bus_host::RawBus,
        ) {
            // SAFETY: The caller follows the contract of `virtio_msg_bus.h`.
            unsafe { $crate::vmsg::bus_host::unregister::<$host>(bus) }
        }

        /// See `vmsg_bus_remove_all` in `virtio_msg_bus.h`.
        ///
        /// # Safety
        ///
        /// As [`remove_all`]($crate::vmsg::bus_host::remove_all) requires.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn vmsg_bus_remove_all(
            bus: *mut $crate::vmsg::bus_host::RawBus,
        ) {
            // SAFETY: The caller follows the contract of `virtio_msg_bus.h`.
            unsafe { $crate::vmsg::bus_host::remove_all::<$host>(bus) }
        }

        /// See `vmsg_bus_break_all` in `virtio_msg_bus.h`.
        ///
        /// # Safety
        ///
        /// As [`break_all`]($crate::vmsg::bus_host::break_all) requires.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn vmsg_bus_break_all(
            bus: *mut $crate::vmsg::bus_host::RawBus,
            gone: bool,
        ) {
            // SAFETY: The caller follows the contract of `virtio_msg_bus.h`.
            unsafe { $crate::vmsg::bus_host::break_all::<$host>(bus, gone) }
        }

        /// See `vmsg_bus_set_window` in `virtio_msg_bus.h`.
        ///
        /// # Safety
        ///
        /// As [`set_window`]($crate::vmsg::bus_host::set_window) requires.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn vmsg_bus_set_window(
            bus: *mut $crate::vmsg::bus_host::RawBus,
            base: *mut core::ffi::c_void,
            bus_base: u64,
            len: u64,
        ) -> kernel::ffi::c_int {
            // SAFETY: The caller follows the contract of `virtio_msg_bus.h`.
            unsafe { $crate::vmsg::bus_host::set_window::<$host>(bus, base, bus_base, len) }
        }

        /// See `vmsg_bus_add_device` in `virtio_msg_bus.h`.
        ///
        /// # Safety
        ///
        /// As [`add_device`]($crate::vmsg::bus_host::add_device) requires.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn vmsg_bus_add_device(
            bus: *mut $crate::vmsg::bus_host::RawBus,
            dev_num: u16,
        ) -> kernel::ffi::c_int {
            // SAFETY: The caller follows the contract of `virtio_msg_bus.h`.
            unsafe { $crate::vmsg::bus_host::add_device::<$host>(bus, dev_num) }
        }

        /// See `vmsg_bus_remove_device` in `virtio_msg_bus.h`.
        ///
        /// # Safety
        ///
        /// As [`remove_device`]($crate::vmsg::bus_host::remove_device) requires.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn vmsg_bus_remove_device(
            bus: *mut $crate::vmsg::bus_host::RawBus,
            dev_num: u16,
        ) -> kernel::ffi::c_int {
            // SAFETY: The caller follows the contract of `virtio_msg_bus.h`.
            unsafe { $crate::vmsg::bus_host::remove_device::<$host>(bus, dev_num) }
        }

        /// See `vmsg_bus_receive` in `virtio_msg_bus.h`.
        ///
        /// # Safety
        ///
        /// As [`receive`]($crate::vmsg::bus_host::receive) requires.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn vmsg_bus_receive(
            bus: *mut $crate::vmsg::bus_host::RawBus,
            msg: *const core::ffi::c_void,
            len: kernel::ffi::c_uint,
        ) -> kernel::ffi::c_int {
            // SAFETY: The caller follows the contract of `virtio_msg_bus.h`.
            unsafe { $crate::vmsg::bus_host::receive::<$host>(bus, msg, len) }
        }

        /// See `vmsg_bus_resume_events` in `virtio_msg_bus.h`.
        ///
        /// # Safety
        ///
        /// As [`resume_events`]($crate::vmsg::bus_host::resume_events) requires.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn vmsg_bus_resume_events(
            bus: *mut $crate::vmsg::bus_host::RawBus,
        ) {
            // SAFETY: The caller follows the contract of `virtio_msg_bus.h`.
            unsafe { $crate::vmsg::bus_host::resume_events::<$host>(bus) }
        }
    };
}

/// C types of the exported functions, for [`export_bus_host!`](crate::export_bus_host).
pub type RawBus = raw::vmsg_bus;
/// See [`RawBus`].
pub type RawTerms = raw::vmsg_bus_terms;
/// See [`RawBus`].
pub type RawOps = raw::vmsg_bus_ops;
