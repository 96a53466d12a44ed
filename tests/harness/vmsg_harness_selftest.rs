// SPDX-License-Identifier: GPL-2.0

//! Misbehaves on purpose so the test harness can prove that it notices.
//!
//! `make check` boots extra guests that load this module with one `mode` each
//! and expects the harness to fail each run with the matching reason. It is
//! never loaded in the main test run.

use kernel::prelude::*;

module! {
    type: HarnessSelftest,
    name: "vmsg_harness_selftest",
    authors: ["virtio-msg-rs developers"],
    description: "Deliberate failures for testing the virtio-msg-rs test harness",
    license: "GPL",
    params: {
        mode: u32 {
            default: 0,
            description: "0: pass a KUnit test, 1: fail a KUnit test, 2: WARN, 3: hang the loading task",
        },
    },
}

struct HarnessSelftest;

impl kernel::Module for HarnessSelftest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mode = *module_parameters::mode.value();
        pr_info!("harness selftest mode {mode}\n");
        match mode {
            2 => {
                kernel::warn_on!(true);
            }
            3 => loop {
                kernel::time::delay::fsleep(kernel::time::Delta::from_millis(1000));
            },
            _ => {}
        }
        Ok(HarnessSelftest)
    }
}

#[kunit_tests(vmsg_harness_selftest)]
mod tests {
    /// Fails only when the module was loaded with `mode=1`.
    #[test]
    fn mode_is_not_fail() {
        assert!(*super::module_parameters::mode.value() != 1);
    }
}
