// SPDX-License-Identifier: GPL-2.0

//! virtio-msg bus over Arm FF-A ("Virtio Message Bus over FF-A", DEN0153).
//!
//! Binds to the FF-A partitions in the device role (UUID
//! c66028b5-2498-4aa1-9de7-77da6122abf0); each one is a bus instance. The driver resets the
//! instance, negotiates with VERSION (ALP2, then ALP1), chooses how events are signalled
//! (an FF-A notification, or polling), discovers the devices with GET_DEVICES and hands them
//! to the virtio-msg transport. Messages travel by `FFA_MSG_SEND_DIRECT_REQ2`. See
//! `Documentation/ffa-bus.rst`.

use kernel::{prelude::*, sync::Arc};

#[path = "../../rust/vmsg_bus.rs"]
pub mod vmsg;

#[path = "../../rust/ffa/mod.rs"]
pub mod ffa;

#[path = "../../rust/work.rs"]
pub mod work;

mod area;
mod link;
mod negotiate;
mod partition;

#[cfg(CONFIG_VIRTIO_MSG_FFA_KUNIT_TEST)]
mod bus_tests;
#[cfg(CONFIG_VIRTIO_MSG_FFA_KUNIT_TEST)]
mod fake;

use link::{Config, Link};
use partition::{FfaPartition, DIRECT_SIZE};
use vmsg::codec::{ffa::DEVICE_ROLE_UUID, MIN_MSG_SIZE};

module! {
    type: VirtioMsgFfa,
    name: "virtio_msg_ffa",
    authors: ["virtio-msg-rs developers"],
    description: "virtio-msg bus over Arm FF-A",
    license: "GPL",
    // The arm_ffa bus's MODALIAS for a partition in the device role, any VM id, so that udev
    // loads this module (the UUID is DEVICE_ROLE_UUID; a host test of the codec compares them).
    alias: ["arm_ffa:*:c66028b5-2498-4aa1-9de7-77da6122abf0"],
    params: {
        max_msg_size: u32 {
            default: 112,
            description: "Largest message, in bytes (52-112: one FFA_MSG_SEND_DIRECT_REQ2)",
        },
        busy_timeout_ms: u32 {
            default: 2000,
            description: "How long a message keeps being retried while the partition is busy, in ms",
        },
        poll_ms: u32 {
            default: 10,
            description: "Event poll interval when the partition offers no notification, in ms",
        },
        notification_id: u32 {
            default: 0,
            description: "FF-A notification id (0-63) the partition is asked to signal events with",
        },
        window_kib: u32 {
            default: 4096,
            description: "KiB shared with the partition as the window for virtqueues and bounce buffers (0: none, the partition gets DMA addresses; the transport needs at least 2048)",
        },
    },
}

/// The settings the module parameters ask for, checked.
fn config() -> Result<Config> {
    let max = *module_parameters::max_msg_size.value();
    let max_msg_size = u16::try_from(max)
        .ok()
        .filter(|m| (MIN_MSG_SIZE..=DIRECT_SIZE as u16).contains(m))
        .ok_or(EINVAL)?;
    let notification_id = u8::try_from(*module_parameters::notification_id.value())
        .ok()
        .filter(|id| *id <= ffa::MAX_NOTIFICATION_ID)
        .ok_or(EINVAL)?;
    Ok(Config {
        max_msg_size,
        busy_timeout_ms: *module_parameters::busy_timeout_ms.value(),
        poll_ms: (*module_parameters::poll_ms.value()).max(1),
        notification_id,
        window_pages: (*module_parameters::window_kib.value() as usize * 1024)
            .div_ceil(kernel::page::PAGE_SIZE),
    })
}

/// One bound partition.
struct FfaBus {
    link: Arc<Link<FfaPartition>>,
}

struct FfaBusDriver;

impl ffa::Driver for FfaBusDriver {
    type Data = FfaBus;

    const NAME: &'static CStr = c"virtio_msg_ffa";
    const UUID: [u8; 16] = DEVICE_ROLE_UUID;

    fn probe(dev: &ffa::Device) -> Result<Pin<KBox<FfaBus>>> {
        let props = dev.properties();
        dev_info!(
            dev.as_dev(),
            "partition {:#06x}: FF-A version {:#x}, properties {:#x}\n",
            dev.id(),
            dev.api_version(),
            props.0
        );
        if !props.has(ffa::Properties::DIRECT_REQ2_RECV) || dev.mode_32bit() {
            dev_err!(
                dev.as_dev(),
                "partition does not receive FFA_MSG_SEND_DIRECT_REQ2; indirect messaging is not supported (Documentation/ffa-bus.rst)\n"
            );
            return Err(ENODEV);
        }
        let link = Link::new(FfaPartition::new(dev.clone()), config()?)?;
        link.bring_up()
            .inspect_err(|e| dev_err!(dev.as_dev(), "bus instance not brought up: {e:?}\n"))?;
        Ok(
            KBox::pin(FfaBus { link: link.clone() }, GFP_KERNEL)
                .inspect_err(|_| link.shutdown())?,
        )
    }

    fn remove(_dev: &ffa::Device, data: Pin<KBox<FfaBus>>) {
        data.link.shutdown();
        data.link.log_stats();
    }
}

struct VirtioMsgFfa {
    _driver: ffa::Registration<FfaBusDriver>,
}

impl kernel::Module for VirtioMsgFfa {
    fn init(module: &'static ThisModule) -> Result<Self> {
        config()?;
        let driver = ffa::Registration::new(module)?;
        pr_info!("virtio-msg FF-A bus driver registered\n");
        Ok(Self { _driver: driver })
    }
}
