// SPDX-License-Identifier: GPL-2.0

//! A bus instance's life on an attached link: bring-up (negotiate, discover, register the
//! devices with the transport), tear-down, and recovery by detaching and attaching again once
//! the rings became unusable (Documentation/shm-bus.rst, "Attaching, detaching and recovery").

use crate::{
    link::ShmLink,
    negotiate,
    region::WINDOW_BUS_BASE,
    vmsg::{bus::client::BusRegistration, window_memory::SharedWindow},
};
use kernel::{device::Device, prelude::*, sync::aref::ARef, sync::Arc};

/// One bus instance: its link and what bring-up needs again at recovery.
pub(crate) struct Instance {
    link: Arc<ShmLink>,
    /// The PCI device, parent of the transport's devices.
    parent: ARef<Device>,
    /// The largest message this driver proposes.
    our_max: u32,
    /// The window in the region, if the device side set one up: every registration gets it.
    window: Option<SharedWindow>,
}

impl Instance {
    /// Describes the instance of `link`, whose devices hang off `parent`.
    pub(crate) fn new(
        link: Arc<ShmLink>,
        parent: ARef<Device>,
        our_max: u32,
        window: Option<SharedWindow>,
    ) -> Self {
        Self {
            link,
            parent,
            our_max,
            window,
        }
    }

    /// Returns the link.
    pub(crate) fn link(&self) -> &Arc<ShmLink> {
        &self.link
    }

    /// Returns the parent device, for log lines.
    pub(crate) fn device(&self) -> &Device {
        &self.parent
    }

    /// Negotiates, discovers, registers the instance with the transport and has the devices
    /// added. The link must be attached. On failure nothing stays registered.
    pub(crate) fn bring_up(&self) -> Result {
        let link = &self.link;
        let terms = negotiate::negotiate(link, self.our_max)?;
        let devices = negotiate::discover(link).inspect_err(|e| {
            dev_err!(
                self.parent,
                "device discovery (GET_DEVICES) failed: {e:?}\n"
            );
        })?;
        dev_info!(
            self.parent,
            "bus instance up: revision {}, max message {} bytes, {} device(s)\n",
            terms.revision,
            terms.max_msg_size,
            devices.len()
        );
        let registration = Arc::new(
            BusRegistration::new(Some(&self.parent), terms, link.clone())?,
            GFP_KERNEL,
        )?;
        if let Some(w) = &self.window {
            // Before the first device; a failure leaves nothing registered.
            if let Err(e) = registration.set_window(w.share()?, WINDOW_BUS_BASE) {
                dev_err!(self.parent, "window refused by the transport: {e:?}\n");
                registration.unregister();
                return Err(e);
            }
        }
        link.set_registration(registration);
        // In a work item: a device side that lists many devices, or devices that never
        // answer, keep neither the probe of the bus device nor its removal waiting.
        link.add_devices_later(devices);
        Ok(())
    }

    /// Removes every device and unregisters the instance from the transport. The registration
    /// stays reachable from the receive path until then: removing a disk waits for its requests
    /// in flight, whose used-buffer events must still reach the transport (bus-contract.rst).
    /// Device work meanwhile finds the registration closed, and is waited for; devices listed
    /// and not added yet are dropped.
    pub(crate) fn tear_down(&self) {
        if let Some(registration) = self.link.registration() {
            registration.unregister();
        }
        drop(self.link.take_registration());
        self.link.wait_for_device_work();
    }

    /// Marks every device broken, so that their drivers fail fast rather than queue requests
    /// no one will see (`gone`: the device side said it is going away, not an error).
    pub(crate) fn break_devices(&self, gone: bool) {
        if let Some(registration) = self.link.registration() {
            let _ = registration.break_all(gone);
        }
    }

    /// The device side is going away (`device_state == 2`, every device announced removed):
    /// removes the devices without messages to it, and detaches, so that the rings are not
    /// used until it is back.
    pub(crate) fn go_away(&self) {
        dev_info!(
            self.parent,
            "device side going away: devices removed, rings unused until it is back\n"
        );
        // Broken first: their drivers' removal then sends nothing to a side that left.
        self.break_devices(true);
        self.tear_down();
        let _ = self.link.detach();
    }

    /// The device side is back (`device_state == 1` after it went away): attaches and brings
    /// the instance up again.
    pub(crate) fn come_back(&self) -> Result {
        self.link.restart();
        self.link.attach()?;
        self.bring_up().inspect_err(|_| {
            self.tear_down();
            let _ = self.link.detach();
        })?;
        dev_info!(self.parent, "device side back: bus instance up again\n");
        Ok(())
    }

    /// Starts over on a link that stopped: detaches (the device side, if it answers, resets
    /// the instance and empties the rings), removes the devices, attaches and brings the
    /// instance up again. While the device side does not answer, the devices stay (broken):
    /// removing a disk waits for its requests in flight, which only a device side can finish.
    pub(crate) fn recover(&self) -> Result {
        self.link.detach()?;
        self.tear_down();
        self.link.restart();
        self.link.attach()?;
        self.bring_up().inspect_err(|_| self.tear_down())
    }
}
