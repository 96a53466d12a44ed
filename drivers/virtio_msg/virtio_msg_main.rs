// SPDX-License-Identifier: GPL-2.0

//! virtio-msg transport: virtio devices whose configuration travels as messages over a bus.
//!
//! Bus modules negotiate a revision and maximum message size once per bus instance and hand
//! the transport each device number they find; the transport registers one virtio device per
//! number with the virtio core and turns every config operation into messages. See
//! `Documentation/transport.rst`.

use kernel::prelude::*;

#[path = "../../rust/vmsg.rs"]
pub mod vmsg;

mod device;
mod host;
mod instance;
mod link;
mod stats;

#[cfg(CONFIG_VIRTIO_MSG_KUNIT_TEST)]
mod fake_bus;
#[cfg(CONFIG_VIRTIO_MSG_KUNIT_TEST)]
mod transport_tests;

module! {
    type: VirtioMsg,
    name: "virtio_msg",
    authors: ["virtio-msg-rs developers"],
    description: "virtio-msg transport",
    license: "GPL",
    params: {
        max_config_size: u32 {
            default: 4096,
            description: "Largest device config space accepted, in bytes; larger devices are refused",
        },
        config_read_tries: u32 {
            default: 5,
            description: "Attempts at a chunked config read whose chunks see different generations",
        },
        atomic_kick_wait_ms: u32 {
            default: 5000,
            description: "How long a virtqueue kick made with interrupts disabled waits for room on a full bus, in ms, before its virtqueue fails (other kicks are kept and sent later)",
        },
        max_devices: u32 {
            default: 64,
            description: "Devices one bus instance may have at once; further ones its device side announces are refused (ENOSPC), the first refusal logged",
        },
        reset_timeout_ms: u32 {
            default: 1000,
            description: "How long a device may take to report status 0 after a reset, in ms",
        },
    },
}

struct VirtioMsg;

impl kernel::Module for VirtioMsg {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("virtio-msg transport loaded\n");
        Ok(VirtioMsg)
    }
}
