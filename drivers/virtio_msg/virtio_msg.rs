// SPDX-License-Identifier: GPL-2.0

//! virtio-msg transport: virtio devices whose configuration travels as messages over a bus.

use kernel::prelude::*;

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
