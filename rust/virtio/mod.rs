// SPDX-License-Identifier: GPL-2.0

//! Virtio transports written in Rust.
//!
//! A transport implements [`Transport`] (the Rust side of `struct virtio_config_ops`) and
//! registers one device per virtio device it finds with [`Registration`]. The virtio core
//! then binds the matching virtio driver, which calls back into the transport. The C half
//! (`glue.c`) embeds `struct virtio_device`, whose layout depends on the kernel configuration,
//! and owns the virtqueues; this file is the only place that touches it.
//!
//! C header: [`include/linux/virtio_config.h`](srctree/include/linux/virtio_config.h)

use core::{
    ffi::c_void,
    marker::PhantomData,
    ptr::NonNull,
    sync::atomic::{AtomicU8, Ordering}, //
};
use kernel::{
    error::to_result,
    ffi::{c_int, c_uint},
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::ForeignOwnable, //
};

use super::{
    ffi::{raw_device, to_c_int},
    glue,
};

pub mod window;
use window::Window;

/// Number of 64-bit words in a feature set (128 feature bits in Linux 7.2).
pub const FEATURE_WORDS: usize = glue::VMSG_FEATURE_WORDS as usize;

/// A feature set as the virtio core passes it: bit `n` is bit `n % 64` of word `n / 64`.
pub type Features = [u64; FEATURE_WORDS];

/// Where the three parts of a split virtqueue live, as addresses the device side uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueAddrs {
    /// Descriptor table.
    pub desc: u64,
    /// Driver (available) ring.
    pub driver: u64,
    /// Device (used) ring.
    pub device: u64,
}

/// The config operations of one virtio device, as a transport implements them.
///
/// Every method may sleep except [`Transport::notify`], which the virtio core calls in atomic
/// context. Methods the virtio core cannot see fail (it has no error path for `get_config`, for
/// example) must leave the device broken rather than return invented data.
pub trait Transport: Send + Sync + Sized + 'static {
    /// Reads `buf.len()` bytes of device config space at `offset`.
    fn get_config(&self, dev: &Device, offset: u32, buf: &mut [u8]);
    /// Writes `buf` to device config space at `offset`.
    fn set_config(&self, dev: &Device, offset: u32, buf: &[u8]);
    /// Returns the config generation counter.
    fn generation(&self, dev: &Device) -> u32;
    /// Returns the device status byte.
    fn get_status(&self, dev: &Device) -> u8;
    /// Sets the device status byte (never 0: that is [`Transport::reset`]).
    fn set_status(&self, dev: &Device, status: u8);
    /// Resets the device and waits until it reports status 0.
    fn reset(&self, dev: &Device);
    /// Returns the device's feature bits.
    fn features(&self, dev: &Device) -> Features;
    /// Tells the device which features the driver accepted.
    fn finalize_features(&self, dev: &Device, features: &Features) -> Result;
    /// Returns the maximum size of queue `index`; an error if there is no such queue.
    fn queue_max_size(&self, dev: &Device, index: u32) -> Result<u32>;
    /// Tells the device where queue `index` (of `size` entries) lives and enables it.
    fn queue_enable(&self, dev: &Device, index: u32, size: u32, addrs: QueueAddrs) -> Result;
    /// Disables queue `index` on the device side.
    fn queue_disable(&self, dev: &Device, index: u32);
    /// Tells the device that queue `index` has new buffers. Atomic context.
    fn notify(&self, dev: &Device, index: u32, data: u32) -> bool;
    /// Returns `(address, length)` of shared-memory region `id`, if the device has it.
    fn shm_region(&self, dev: &Device, id: u8) -> Option<(u64, u64)>;
}

/// The callback table for transport `T`, one per type, in static memory.
struct Ops<T>(PhantomData<T>);

/// Pointers the glue passes to every callback.
type Owner = *mut c_void;
type RawDev = *mut glue::vmsg_vdev;

impl<T: Transport> Ops<T> {
    const TABLE: glue::vmsg_vdev_ops = glue::vmsg_vdev_ops {
        get_config: Some(Self::get_config),
        set_config: Some(Self::set_config),
        generation: Some(Self::generation),
        get_status: Some(Self::get_status),
        set_status: Some(Self::set_status),
        reset: Some(Self::reset),
        get_features: Some(Self::get_features),
        finalize_features: Some(Self::finalize_features),
        queue_max_size: Some(Self::queue_max_size),
        queue_enable: Some(Self::queue_enable),
        queue_disable: Some(Self::queue_disable),
        notify: Some(Self::notify),
        get_shm_region: Some(Self::get_shm_region),
        release: Some(Self::release),
    };

    /// Borrows the transport and the device a callback is for.
    ///
    /// # Safety
    ///
    /// `owner` must come from `Arc::<T>::into_foreign` in [`Registration::new`], `vdev` must be
    /// the live device it was registered with, and the device must not have been released yet.
    /// The glue guarantees all three for every callback but `release`.
    unsafe fn args<'a>(owner: Owner, vdev: RawDev) -> (ArcBorrow<'a, T>, Device) {
        // SAFETY: Guaranteed by the caller: the foreign reference is alive until `release`.
        let transport = unsafe { <Arc<T> as ForeignOwnable>::borrow(owner.cast()) };
        // SAFETY: The glue never passes a null device.
        let raw = unsafe { NonNull::new_unchecked(vdev) };
        // INVARIANT: Guaranteed by the caller; the `Device` does not outlive the callback.
        let dev = Device { raw };
        (transport, dev)
    }

    /// The `get_config` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn get_config(
        o: Owner,
        d: RawDev,
        offset: c_uint,
        buf: *mut c_void,
        len: c_uint,
    ) {
        // SAFETY: The glue passes a buffer of `len` bytes, owned by the virtio driver, for the
        // duration of the call.
        let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len as usize) };
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        t.get_config(&dev, offset, buf)
    }

    /// The `set_config` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn set_config(
        o: Owner,
        d: RawDev,
        offset: c_uint,
        buf: *const c_void,
        len: c_uint,
    ) {
        // SAFETY: The glue passes a buffer of `len` bytes for the duration of the call.
        let buf = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        t.set_config(&dev, offset, buf)
    }

    /// The `generation` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn generation(o: Owner, d: RawDev) -> u32 {
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        t.generation(&dev)
    }

    /// The `get_status` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn get_status(o: Owner, d: RawDev) -> u8 {
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        t.get_status(&dev)
    }

    /// The `set_status` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn set_status(o: Owner, d: RawDev, status: u8) {
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        t.set_status(&dev, status)
    }

    /// The `reset` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn reset(o: Owner, d: RawDev) {
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        t.reset(&dev)
    }

    /// The `get_features` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn get_features(o: Owner, d: RawDev, features: *mut u64) {
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        let value = t.features(&dev);
        // SAFETY: The virtio core passes an array of `VIRTIO_FEATURES_U64S` words, which the glue
        // checks at build time to be `FEATURE_WORDS`.
        unsafe { features.cast::<Features>().write(value) };
    }

    /// The `finalize_features` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn finalize_features(o: Owner, d: RawDev, features: *const u64) -> c_int {
        // SAFETY: `features` is `vdev->features_array`, `FEATURE_WORDS` words long.
        let value = unsafe { features.cast::<Features>().read() };
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        to_c_int(t.finalize_features(&dev, &value))
    }

    /// The `queue_max_size` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn queue_max_size(o: Owner, d: RawDev, index: c_uint) -> c_int {
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        match t.queue_max_size(&dev, index) {
            Ok(size) => c_int::try_from(size).unwrap_or(c_int::MAX),
            Err(e) => e.to_errno(),
        }
    }

    /// The `queue_enable` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn queue_enable(
        o: Owner,
        d: RawDev,
        index: c_uint,
        size: c_uint,
        desc: u64,
        driver: u64,
        device: u64,
    ) -> c_int {
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        let addrs = QueueAddrs {
            desc,
            driver,
            device,
        };
        to_c_int(t.queue_enable(&dev, index, size, addrs))
    }

    /// The `queue_disable` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn queue_disable(o: Owner, d: RawDev, index: c_uint) {
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        t.queue_disable(&dev, index)
    }

    /// The `notify` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn notify(o: Owner, d: RawDev, index: c_uint, data: u32) -> bool {
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        t.notify(&dev, index, data)
    }

    /// The `get_shm_region` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, with the arguments [`Self::args`] requires.
    unsafe extern "C" fn get_shm_region(
        o: Owner,
        d: RawDev,
        id: u8,
        addr: *mut u64,
        len: *mut u64,
    ) -> bool {
        // SAFETY: Called by the glue for a live, registered device.
        let (t, dev) = unsafe { Self::args(o, d) };
        let Some((a, l)) = t.shm_region(&dev, id) else {
            return false;
        };
        // SAFETY: The glue passes the two fields of a `struct virtio_shm_region`.
        unsafe {
            addr.write(a);
            len.write(l);
        }
        true
    }

    /// The `release` callback.
    ///
    /// # Safety
    ///
    /// Only the glue calls it, once, when the device's last reference is gone.
    unsafe extern "C" fn release(o: Owner) {
        // SAFETY: The glue calls this once, when the device is released; it is the last use of the
        // foreign reference made in `Registration::new`.
        drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(o.cast()) });
    }
}

/// A virtio device of this transport, for calls into the virtio core.
///
/// Callbacks receive one for the duration of the call; a [`Registration`] lends one for as long
/// as it lives. It is neither `Clone` nor `Copy`, so nobody keeps one past that.
///
/// # Invariants
///
/// `raw` points to a `struct vmsg_vdev` made by `vmsg_vdev_new` that has not been freed.
pub struct Device {
    raw: NonNull<glue::vmsg_vdev>,
}

// SAFETY: The glue functions a `Device` calls are safe from any thread.
unsafe impl Send for Device {}
// SAFETY: The glue functions a `Device` calls are safe from any thread, concurrently.
unsafe impl Sync for Device {}

impl Device {
    /// Marks the device broken: the driver's virtqueue operations fail from now on, including
    /// during its probe and on virtqueues it creates later. Any context.
    pub fn mark_broken(&self) {
        // SAFETY: By the type invariant `raw` is a live device.
        unsafe { glue::vmsg_vdev_break(self.raw.as_ptr()) }
    }

    /// Tells the driver that the device config changed; the virtio core holds the news back
    /// until the driver's probe is done. Does nothing before registration or after it.
    pub fn config_changed(&self) {
        // SAFETY: By the type invariant `raw` is a live device.
        unsafe { glue::vmsg_vdev_config_changed(self.raw.as_ptr()) }
    }

    /// Runs the used-buffer callback of queue `index`; false if there is no such queue.
    ///
    /// Any context.
    pub fn queue_interrupt(&self, index: u32) -> bool {
        // SAFETY: By the type invariant `raw` is a live device.
        unsafe { glue::vmsg_vdev_vq_interrupt(self.raw.as_ptr(), index) }
    }

    /// Runs the used-buffer callbacks of every queue. Any context.
    pub fn interrupt_all_queues(&self) {
        // SAFETY: By the type invariant `raw` is a live device.
        unsafe { glue::vmsg_vdev_vq_interrupt_all(self.raw.as_ptr()) }
    }

    /// Returns whether feature `bit` was negotiated.
    pub fn has_feature(&self, bit: u32) -> bool {
        // SAFETY: By the type invariant `raw` is a live device.
        unsafe { glue::vmsg_vdev_has_feature(self.raw.as_ptr(), bit) }
    }

    /// Returns the device as a generic `struct device`, for logging.
    pub fn as_dev(&self) -> &kernel::device::Device {
        // SAFETY: By the type invariant `raw` is a live device, and its `struct device` lives as
        // long as it; `kernel::device::Device` is a transparent wrapper of `struct device`.
        unsafe { kernel::device::Device::from_raw(glue::vmsg_vdev_device(self.raw.as_ptr())) }
    }
}

/// [`Registration`] states.
const NEW: u8 = 0;
const REGISTERED: u8 = 1;
const INITIALISED: u8 = 2;

/// A virtio device of transport `T`, from creation until it is unregistered and released.
///
/// It is created first and registered with [`Registration::register`] after, so that its owner
/// can make it reachable (by the bus receive path, say) before the virtio core probes a driver,
/// which may already wait for an interrupt.
///
/// # Invariants
///
/// `dev` stays allocated while this exists: in state `NEW` it was never registered and only this
/// value refers to it; in the other states this value holds one reference to its `struct device`.
pub struct Registration {
    dev: Device,
    state: AtomicU8,
    /// Kept until the device's virtqueues are gone (they are by the end of `unregister`).
    window: Option<Arc<Window>>,
}

impl Registration {
    /// Creates a virtio device of type `device_id`, served by `transport`, not yet registered.
    pub fn new<T: Transport>(
        parent: Option<&kernel::device::Device>,
        device_id: u32,
        vendor_id: u32,
        transport: Arc<T>,
    ) -> Result<Self> {
        let parent = raw_device(parent);
        let owner = transport.into_foreign();
        // SAFETY: `Ops::<T>::TABLE` is a promoted constant, so it lives in static memory;
        // `owner` is the foreign form of an `Arc<T>`, which the `release` callback takes back.
        let raw = unsafe {
            glue::vmsg_vdev_new(parent, device_id, vendor_id, &Ops::<T>::TABLE, owner.cast())
        };
        let Some(raw) = NonNull::new(raw) else {
            // SAFETY: `vmsg_vdev_new` failed, so nothing else holds the foreign reference.
            drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(owner) });
            return Err(ENOMEM);
        };
        // INVARIANT: `raw` was just made by `vmsg_vdev_new` and is in state `NEW`.
        Ok(Self {
            dev: Device { raw },
            state: AtomicU8::new(NEW),
            window: None,
        })
    }

    /// Places the device's virtqueues in `window` and bounces its buffers through it.
    ///
    /// Before [`Registration::register`] only (`EBUSY` after).
    pub fn set_window(&mut self, window: Arc<Window>) -> Result {
        if self.state.load(Ordering::Acquire) != NEW {
            return Err(EBUSY);
        }
        // SAFETY: The device is not registered (state `NEW`, and `&mut self` keeps `register`
        // from running concurrently); the registration keeps the window until it is dropped,
        // after `unregister` removed the driver and with it every virtqueue.
        unsafe { self.dev.set_window(&window) };
        self.window = Some(window);
        Ok(())
    }

    /// Registers the device with the virtio core, which probes the matching driver before this
    /// returns. A device is registered once: a second call fails with `EBUSY`.
    pub fn register(&self) -> Result {
        if self
            .state
            .compare_exchange(NEW, INITIALISED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(EBUSY);
        }
        // SAFETY: The device was in state `NEW`, so it was never registered. Success or not, we
        // now hold one reference to it (state `INITIALISED` or `REGISTERED`).
        to_result(unsafe { glue::vmsg_vdev_register(self.dev.raw.as_ptr()) })?;
        self.state.store(REGISTERED, Ordering::Release);
        Ok(())
    }

    /// Unregisters the device if it is registered: the driver is removed before this returns.
    ///
    /// The device stays allocated (and [`Registration::device`] usable) until this is dropped.
    pub fn unregister(&self) {
        if self
            .state
            .compare_exchange(REGISTERED, INITIALISED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // SAFETY: The device was registered; `vmsg_vdev_unregister` keeps our reference.
            unsafe { glue::vmsg_vdev_unregister(self.dev.raw.as_ptr()) };
        }
    }

    /// Returns the device.
    pub fn device(&self) -> &Device {
        &self.dev
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.unregister();
        let raw = self.dev.raw.as_ptr();
        if self.state.load(Ordering::Acquire) == NEW {
            // SAFETY: By the type invariant a `NEW` device was never registered and is only ours.
            unsafe { glue::vmsg_vdev_free_unregistered(raw) };
        } else {
            // SAFETY: By the type invariant we hold one reference to the device.
            unsafe { glue::vmsg_vdev_put(raw) };
        }
    }
}

/// Returns whether the caller may sleep, i.e. is not in atomic context.
///
/// Exact with `CONFIG_PREEMPT_COUNT` (which `CONFIG_DEBUG_ATOMIC_SLEEP` selects); without it a
/// spinlock held by the caller is not seen, but interrupt context and disabled interrupts are.
pub fn may_sleep() -> bool {
    // SAFETY: `vmsg_may_sleep` only reads the preemption state of the current CPU.
    unsafe { glue::vmsg_may_sleep() }
}

/// Returns whether local interrupts are disabled: nothing else runs on this CPU until the
/// caller enables them again.
pub fn irqs_disabled() -> bool {
    // SAFETY: `vmsg_irqs_disabled` only reads the interrupt state of the current CPU.
    unsafe { glue::vmsg_irqs_disabled() }
}
