// SPDX-License-Identifier: GPL-2.0

//! virtio-msg shared-memory mailbox bus on QEMU's ivshmem-doorbell device.
//!
//! One PCI function is one bus instance: the driver checks the region the device side wrote,
//! attaches, negotiates revision and maximum message size once (VERSION, stepping down),
//! discovers the devices (GET_DEVICES) and hands them to the virtio-msg transport. See
//! `Documentation/shm-bus.rst`.

use kernel::{
    device::Core,
    irq,
    pci,
    prelude::*,
    sync::Arc, //
};

#[path = "../../rust/vmsg_bus.rs"]
pub mod vmsg;
#[path = "../../rust/work.rs"]
pub mod work;

mod debugfs;
mod instance;
mod link;
mod liveness;
mod negotiate;
mod pending;
mod region;

use instance::Instance;
use link::{RxHandler, ShmLink, WorkStopper, REGS_SIZE};
use liveness::Liveness;
use vmsg::window_memory::{BarMemory, SharedWindow, MIN_WINDOW_SIZE};

/// Per-device state, dropped in field order after `unbind`: the interrupt, which queues the
/// link's work items, before the work items are stopped and waited for.
struct ShmBus {
    liveness: Option<Arc<Liveness>>,
    instance: Arc<Instance>,
    _irq: Pin<KBox<irq::ThreadedRegistration<RxHandler>>>,
    _work: WorkStopper,
    _debugfs: debugfs::ShmDebugfs,
    link: Arc<ShmLink>,
}

struct ShmDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    MODULE_PCI_TABLE,
    <ShmDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(pci::Vendor::REDHAT_QUMRANET, 0x1110),
        ()
    )]
);

impl ShmDriver {
    /// Maps the device, checks its region, attaches and brings the bus instance up.
    fn probe_bus(pdev: &pci::Device<Core<'_>>) -> Result<ShmBus> {
        pdev.enable_device_mem()?;
        pdev.set_master();
        let regs = pdev
            .iomap_region_sized::<REGS_SIZE>(0, c"virtio_msg_shm/regs")?
            .into_devres()?;
        let shm = pdev.iomap_region(2, c"virtio_msg_shm/shm")?;
        let len = usize::try_from(pdev.resource_len(2)?).map_err(|_| EINVAL)?;
        let layout = region::Layout::read(pdev.as_ref(), &shm, len)?;
        let shm = shm.into_devres()?;
        let timeout = *module_parameters::request_timeout_ms.value();
        let budget = *module_parameters::rx_budget.value();
        let our_max = (*module_parameters::max_msg_size.value()).min(layout.slot_size);
        let link = ShmLink::new(
            pdev.as_ref().into(),
            regs,
            shm,
            layout,
            timeout,
            budget,
            our_max,
        )?;
        // Declared before the interrupt: on an error return the interrupt is freed first.
        let work = WorkStopper(link.clone());
        let debugfs = debugfs::ShmDebugfs::new(pdev.as_ref(), &link)?;
        let msix = pci::IrqTypes::default().with(pci::IrqType::MsiX);
        let vectors = pdev.alloc_irq_vectors(1, 1, msix)?;
        let irq = KBox::pin_init(
            pdev.request_threaded_irq(
                *vectors.start(),
                irq::Flags::TRIGGER_NONE,
                c"virtio_msg_shm",
                Ok::<_, Error>(RxHandler(link.clone())),
            ),
            GFP_KERNEL,
        )?;
        let window = match layout.window {
            Some((_, size)) if size < MIN_WINDOW_SIZE => {
                // Refused before anything is announced: the transport would refuse it at
                // registration, after the instance was already reported up.
                dev_err!(
                    pdev.as_ref(),
                    "window of {} KiB too small: at least {} KiB are needed\n",
                    size / 1024,
                    MIN_WINDOW_SIZE / 1024
                );
                return Err(EINVAL);
            }
            Some((offset, size)) => {
                let size = usize::try_from(size).map_err(|_| EINVAL)?;
                let memory = BarMemory::new(pdev, 2, offset, size).inspect_err(|e| {
                    dev_err!(pdev.as_ref(), "cannot map the window: {e:?}\n");
                })?;
                Some(SharedWindow::new(memory)?)
            }
            None => None,
        };
        let instance = Arc::new(
            Instance::new(link.clone(), pdev.as_ref().into(), our_max, window),
            GFP_KERNEL,
        )?;
        link.attach()?;
        instance.bring_up().inspect_err(|_| {
            let _ = link.detach();
        })?;
        let interval = *module_parameters::ping_interval_ms.value();
        let liveness = Liveness::start(instance.clone(), interval).inspect_err(|_| {
            instance.tear_down();
            let _ = link.detach();
        })?;
        Ok(ShmBus {
            liveness,
            instance,
            _irq: irq,
            _work: work,
            _debugfs: debugfs,
            link,
        })
    }
}

impl pci::Driver for ShmDriver {
    type IdInfo = ();
    type Data<'bound> = ShmBus;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        Self::probe_bus(pdev)
    }

    fn unbind<'bound>(_pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        if let Some(l) = &this.liveness {
            l.stop();
        }
        this.instance.tear_down();
        let _ = this.link.detach();
        this.link.log_stats();
    }
}

kernel::module_pci_driver! {
    type: ShmDriver,
    name: "virtio_msg_shm",
    authors: ["virtio-msg-rs developers"],
    description: "virtio-msg shared-memory mailbox bus (ivshmem-doorbell)",
    license: "GPL",
    params: {
        max_msg_size: u32 {
            default: 264,
            description: "Largest message this driver proposes, in bytes (52-65535; capped by the region's slot size)",
        },
        ping_interval_ms: u32 {
            default: 2000,
            description: "How often the device side is PINGed to check it is alive, in ms (0: never); a missed PING stops the bus instance, which is then recovered (detach, attach, devices anew) at this pace",
        },
        rx_budget: u32 {
            default: 64,
            description: "Messages taken from the device side per interrupt in hard-IRQ context; the interrupt thread takes the rest (0: all in the thread)",
        },
        request_timeout_ms: u32 {
            default: 5000,
            description: "How long a request waits for its response before the device is marked broken, in ms",
        },
    },
}
