// SPDX-License-Identifier: GPL-2.0

//! A bus instance on the transport side: its devices, and events from its device side.

use crate::{
    device::MsgDevice,
    link::{self, BusLink},
    stats::{DeviceView, WindowView},
    vmsg::{
        codec::{transport::TransportMessage, Message},
        module_dir::InstanceDir,
        sync::IrqSpinLock,
        virtio::{window::Window, Registration},
        window_memory::MIN_WINDOW_SIZE,
    },
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    debugfs::{Dir, File},
    device::Device,
    new_mutex,
    prelude::*,
    str::CString,
    sync::{aref::ARef, Arc, Mutex, SetOnce},
};

/// The window of an instance and its debugfs file.
struct InstanceWindow {
    window: Arc<Window>,
    _file: Pin<KBox<File<WindowView>>>,
}

/// A device of the instance: the transport object, its virtio core registration and its
/// debugfs directory (`<instance>/dev<N>/stats`).
pub(crate) struct Slot<B: BusLink> {
    pub(crate) device: Arc<MsgDevice<B>>,
    pub(crate) registration: Registration,
    _stats: Pin<KBox<File<DeviceView<B>>>>,
    _dir: Dir,
}

/// The devices of one bus instance, reachable from any context by device number.
#[pin_data]
pub(crate) struct Instance<B: BusLink> {
    link: Arc<B>,
    /// The bus device: parent of the virtio devices, and what log lines name.
    parent: Option<ARef<Device>>,
    dir: InstanceDir,
    window: SetOnce<InstanceWindow>,
    #[pin]
    slots: IrqSpinLock<KVec<Arc<Slot<B>>>>,
    /// Serialises adding and removing devices: bring-up and device events run in different
    /// work items, and one number must never get two devices, nor a removal miss a device
    /// that is still being added.
    #[pin]
    changes: Mutex<()>,
    /// Devices the instance may have at once; more are refused with ENOSPC.
    max_devices: usize,
    /// Whether a refusal for `max_devices` was logged: only the first is.
    refusal_logged: AtomicBool,
    /// Set by `remove_all`, which the bus follows with unregistering: no device is added
    /// from then on.
    removing_all: AtomicBool,
}

impl<B: BusLink> Instance<B> {
    /// Creates an instance with no devices, which may have up to `max_devices` at once.
    pub(crate) fn new(
        link: Arc<B>,
        parent: Option<ARef<Device>>,
        dir: InstanceDir,
        max_devices: u32,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            link,
            parent,
            dir,
            window: SetOnce::new(),
            slots <- crate::new_irq_spinlock!(KVec::new(), c"virtio_msg_instance_slots"),
            changes <- new_mutex!(()),
            max_devices: max_devices as usize,
            refusal_logged: AtomicBool::new(false),
            removing_all: AtomicBool::new(false),
        })
    }

    /// Returns the bus link (for the KUnit suites).
    #[cfg(CONFIG_VIRTIO_MSG_KUNIT_TEST)]
    pub(crate) fn link(&self) -> &Arc<B> {
        &self.link
    }

    /// Places the virtqueues and buffers of every device added from now on in `window`.
    pub(crate) fn set_window(&self, window: Window) -> Result {
        if self.window.as_ref().is_some() || !self.slots.lock().is_empty() {
            return Err(EBUSY);
        }
        let size = window.stats().size;
        if size < MIN_WINDOW_SIZE {
            // A block request of the default size could never be mapped: it would be retried
            // for ever. The device side chose the size; refuse it rather than hang later.
            crate::bus_err!(
                self.parent.as_deref(),
                "window of {} KiB refused: at least {} KiB are needed\n",
                size / 1024,
                MIN_WINDOW_SIZE / 1024
            );
            return Err(EINVAL);
        }
        let window = Arc::new(window, GFP_KERNEL)?;
        let file = KBox::pin_init(
            self.dir
                .read_only_file(c"window", WindowView(window.clone())),
            GFP_KERNEL,
        )?;
        let stats = window.stats();
        let bus_base = window.bus_base();
        if !self.window.populate(InstanceWindow {
            window,
            _file: file,
        }) {
            return Err(EBUSY);
        }
        crate::bus_info!(
            self.parent.as_deref(),
            "window of {} KiB at bus address {bus_base:#x}: virtqueues and buffers bounce through it\n",
            stats.size / 1024
        );
        Ok(())
    }

    /// Looks up device `dev_num`. Any context.
    pub(crate) fn slot(&self, dev_num: u16) -> Option<Arc<Slot<B>>> {
        self.slots
            .lock()
            .iter()
            .find(|s| s.device.dev_num() == dev_num)
            .cloned()
    }

    /// Adds device `dev_num`: asks the device side what it is and registers it with the virtio
    /// core, which probes its driver. Does nothing if the device side has no device there.
    pub(crate) fn add_device(&self, dev_num: u16) -> Result {
        let parent = self.parent.as_deref();
        let _changing = self.changes.lock();
        if self.removing_all.load(Ordering::SeqCst) {
            return Err(ENODEV);
        }
        if self.slot(dev_num).is_some() {
            return Err(EEXIST);
        }
        let count = self.slots.lock().len();
        if count >= self.max_devices {
            // Each device costs memory and bring-up time: a device side announcing thousands
            // is refused past the limit rather than trusted.
            if !self.refusal_logged.swap(true, Ordering::Relaxed) {
                crate::bus_warn!(
                    parent,
                    "device {dev_num} refused: the bus instance has {count} devices, the most max_devices allows; further refusals are not logged\n"
                );
            }
            return Err(ENOSPC);
        }
        let Some(device) = MsgDevice::probe(self.link.clone(), parent, dev_num)? else {
            return Ok(());
        };
        let info = *device.info();
        let mut registration =
            Registration::new(parent, info.device_id, info.vendor_id, device.clone())?;
        if let Some(w) = self.window.as_ref() {
            registration.set_window(w.window.clone())?;
        }
        let dir = self
            .dir
            .subdir(&CString::try_from_fmt(fmt!("dev{dev_num}"))?);
        let stats = KBox::pin_init(
            dir.read_only_file(c"stats", DeviceView(device.clone())),
            GFP_KERNEL,
        )?;
        let slot = Arc::new(
            Slot {
                device,
                registration,
                _stats: stats,
                _dir: dir,
            },
            GFP_KERNEL,
        )?;
        // Reachable before registration: the driver's probe may already wait for an event.
        self.slots.lock().push(slot.clone(), GFP_ATOMIC)?;
        // `remove_all` sets the flag, then retires the devices it finds: either it found this
        // one, or this sees the flag.
        if self.removing_all.load(Ordering::SeqCst) {
            self.take(dev_num);
            return Err(ENODEV);
        }
        if let Err(e) = slot.registration.register() {
            self.take(dev_num);
            crate::bus_err!(parent, "device {dev_num}: registration failed: {e:?}\n");
            return Err(e);
        }
        let terms = self.link.terms();
        crate::bus_info!(
            parent,
            "device {dev_num}: virtio id {} registered (revision {}, max message {} bytes, transport features {:#x})\n",
            info.device_id,
            terms.revision,
            terms.max_msg_size,
            terms.features
        );
        Ok(())
    }

    /// Removes device `dev_num` from the lookup table.
    fn take(&self, dev_num: u16) -> Option<Arc<Slot<B>>> {
        let mut slots = self.slots.lock();
        let pos = slots.iter().position(|s| s.device.dev_num() == dev_num)?;
        slots.remove(pos).ok()
    }

    /// Removes device `dev_num`, which the device side removed: its driver is unbound before
    /// this returns, its reset being the last message to the device.
    pub(crate) fn remove_device(&self, dev_num: u16) -> Result {
        let _changing = self.changes.lock();
        let slot = self.slot(dev_num).ok_or(ENOENT)?;
        // The device side keeps serving a removed device until its driver resets it
        // (bus-contract.rst): the driver finishes its I/O, whose used-buffer events must still
        // reach it, and resets the device. A device side that forgot it at once makes each
        // request time out instead, which breaks the device: bounded by one request timeout.
        crate::bus_info!(
            self.parent.as_deref(),
            "device {dev_num}: removed by the device side\n"
        );
        slot.device.set_removing();
        self.unregister(&slot);
        Ok(())
    }

    /// Unregisters `slot`'s device, whose driver is removed meanwhile while events still reach
    /// it, then takes it out of the lookup table.
    fn unregister(&self, slot: &Slot<B>) {
        let dev_num = slot.device.dev_num();
        slot.registration.unregister();
        slot.device.stats.log(self.parent.as_deref(), dev_num);
        self.take(dev_num);
    }

    /// Removes every device, last added first. Each stays reachable by events until its driver
    /// is gone: removing a disk writes back its dirty data, which needs the used-buffer events.
    /// Devices whose driver still probes are retired first (`retire_if_probing`), before
    /// waiting for the change under way: an addition holds `changes` for its driver's
    /// probe, which then fails at its next request instead of running its course.
    pub(crate) fn remove_all(&self) {
        self.removing_all.store(true, Ordering::SeqCst);
        for slot in self.devices().iter() {
            slot.device.retire_if_probing(slot.registration.device());
        }
        let _changing = self.changes.lock();
        loop {
            let last = self.slots.lock().last().cloned();
            let Some(slot) = last else {
                break;
            };
            self.unregister(&slot);
        }
    }

    /// The devices now, to act on outside the table's lock. A device left out (no memory)
    /// breaks at its next request instead.
    fn devices(&self) -> KVec<Arc<Slot<B>>> {
        let mut devices = KVec::new();
        for slot in self.slots.lock().iter() {
            let _ = devices.push(slot.clone(), GFP_ATOMIC);
        }
        devices
    }

    /// Marks every device broken: the bus can no longer reach the device side.
    pub(crate) fn break_all(&self, gone: bool) {
        for slot in self.devices().iter() {
            let vdev = slot.registration.device();
            if gone {
                slot.device.retire(vdev, "the device side went away");
            } else {
                slot.device.fail(Some(vdev), "bus instance stopped");
            }
        }
    }

    /// Sends the kicks every device kept while the bus had no room. Any context.
    pub(crate) fn resume_events(&self) {
        for slot in self.slots.lock().iter() {
            slot.device.resend_kicks(slot.registration.device());
        }
    }

    /// Handles a message from the device side that is not a response. Any context.
    ///
    /// Malformed messages, unknown devices and unknown queues are dropped and counted.
    pub(crate) fn receive(&self, msg: &[u8]) -> Result {
        let codec = link::transport_codec(&self.link.terms());
        let frame = codec.decode(msg).map_err(|_| crate::device::eproto())?;
        // Handled under the lock rather than on a clone: the receive path may run in hard-IRQ
        // context, where dropping the last reference to a removed device must not happen.
        let slots = self.slots.lock();
        let slot = slots
            .iter()
            .find(|s| s.device.dev_num() == frame.dev_num)
            .ok_or(ENODEV)?;
        let device = &slot.device;
        let vdev = slot.registration.device();
        match frame.message {
            Message::Transport(TransportMessage::EventUsed { vq_index }) => {
                if !vdev.queue_interrupt(vq_index) {
                    device.stats.protocol_errors.inc();
                    return Err(EINVAL);
                }
            }
            Message::Transport(TransportMessage::EventConfig {
                generation,
                offset,
                data,
                ..
            }) => {
                device.update_cache(offset, data, generation);
                vdev.config_changed();
            }
            _ => {
                device.stats.protocol_errors.inc();
                return Err(crate::device::eproto());
            }
        }
        device.stats.events_received.inc();
        Ok(())
    }
}
