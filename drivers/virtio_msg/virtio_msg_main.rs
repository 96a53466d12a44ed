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

#[cfg(CONFIG_KUNIT)]
mod fake_bus;
#[cfg(CONFIG_KUNIT)]
mod transport_tests;

module! {
    type: VirtioMsg,
    name: "virtio_msg",
    authors: ["virtio-msg-rs developers"],
    description: "virtio-msg transport",
    license: "GPL",
}

struct VirtioMsg;

impl kernel::Module for VirtioMsg {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("virtio-msg transport loaded\n");
        Ok(VirtioMsg)
    }
}
