// SPDX-License-Identifier: GPL-2.0

//! Liveness: the device side is PINGed periodically; a missed PING stops the bus instance, so
//! that its devices fail fast instead of each waiting out its own request timeout.

use crate::{link::ShmLink, negotiate};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    prelude::*,
    sync::{Arc, Completion},
    time::{delay::fsleep, Delta},
    workqueue,
};

/// Granularity of the wait between PINGs, so that stopping does not wait a whole interval.
const STEP_MS: u32 = 50;

/// The PING loop of one bus instance, running as a long work item.
#[pin_data]
pub(crate) struct Liveness {
    stop: AtomicBool,
    #[pin]
    stopped: Completion,
}

impl Liveness {
    /// Starts PINGing every `interval_ms`; `None` when the interval is 0 (disabled).
    pub(crate) fn start(link: Arc<ShmLink>, interval_ms: u32) -> Result<Option<Arc<Self>>> {
        if interval_ms == 0 {
            return Ok(None);
        }
        let this = Arc::pin_init(
            pin_init!(Self {
                stop: AtomicBool::new(false),
                stopped <- Completion::new(),
            }),
            GFP_KERNEL,
        )?;
        let worker = this.clone();
        workqueue::system_long()
            .try_spawn(GFP_KERNEL, move || {
                worker.run(&link, interval_ms);
                worker.stopped.complete_all();
            })
            .map_err(|_| ENOMEM)?;
        Ok(Some(this))
    }

    fn run(&self, link: &ShmLink, interval_ms: u32) {
        let mut count: u32 = 0;
        loop {
            let mut waited = 0;
            while waited < interval_ms {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                fsleep(Delta::from_millis(i64::from(STEP_MS)));
                waited += STEP_MS;
            }
            count = count.wrapping_add(1);
            if let Err(e) = negotiate::ping(link, count) {
                link.fail_liveness(e);
                return;
            }
        }
    }

    /// Stops the loop and waits for it.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.stopped.wait_for_completion();
    }
}
