// SPDX-License-Identifier: GPL-2.0

//! The transport's side of the bus contract: bus modules register instances through it.

use crate::{
    instance::Instance,
    vmsg::{
        bus_host::{ForeignLink, Host},
        module_dir::InstanceDir,
        virtio::window::Window,
    },
};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    device::Device,
    prelude::*,
    str::CString,
    sync::{aref::ARef, Arc},
};

/// Instances registered without a parent device so far, for their debugfs names.
static UNNAMED_INSTANCES: AtomicU32 = AtomicU32::new(0);

/// One bus instance that a bus module registered.
#[pin_data]
pub(crate) struct BusHost {
    #[pin]
    instance: Instance<ForeignLink>,
}

impl Host for BusHost {
    fn new(parent: Option<ARef<Device>>, link: Arc<ForeignLink>) -> Result<Pin<KBox<Self>>> {
        let terms = link.terms();
        crate::bus_info!(
            parent.as_deref(),
            "bus instance registered: revision {}, max message {} bytes\n",
            terms.revision,
            terms.max_msg_size
        );
        // One debugfs directory per instance, named after the bus device, or numbered for an
        // instance without one (several may exist at once).
        let dir = match &parent {
            Some(p) => InstanceDir::new(c"virtio_msg", p.name()),
            None => {
                let n = UNNAMED_INSTANCES.fetch_add(1, Ordering::Relaxed);
                InstanceDir::new(c"virtio_msg", &CString::try_from_fmt(fmt!("bus{n}"))?)
            }
        };
        KBox::pin_init(
            try_pin_init!(Self {
                instance <- Instance::new(
                    link,
                    parent,
                    dir,
                    *crate::module_parameters::max_devices.value()
                ),
            }),
            GFP_KERNEL,
        )
    }

    fn add_device(&self, dev_num: u16) -> Result {
        self.instance.add_device(dev_num)
    }

    fn remove_device(&self, dev_num: u16) -> Result {
        self.instance.remove_device(dev_num)
    }

    fn receive(&self, msg: &[u8]) -> Result {
        self.instance.receive(msg)
    }

    fn remove_all(&self) {
        self.instance.remove_all()
    }

    fn break_all(&self, gone: bool) {
        self.instance.break_all(gone)
    }

    fn set_window(&self, window: Window) -> Result {
        self.instance.set_window(window)
    }

    fn resume_events(&self) {
        self.instance.resume_events()
    }
}

crate::export_bus_host!(BusHost);
