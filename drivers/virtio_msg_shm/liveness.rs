// SPDX-License-Identifier: GPL-2.0

//! Liveness and recovery: the device side is PINGed periodically; a missed PING stops the bus
//! instance, so that its devices fail fast instead of each waiting out its own request
//! timeout. A stopped instance (missed PING, corrupt ring) is then recovered at the same pace:
//! its devices are removed, the driver side detaches and attaches again, and the instance is
//! brought up anew with whatever devices the device side has by then.

use crate::{
    instance::Instance,
    region,
    work::{flush_work, system_dfl},
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    prelude::*,
    sync::Arc,
    time::{delay::fsleep, Delta},
    workqueue::{impl_has_work, new_work, Work, WorkItem},
};

/// Granularity of the wait between PINGs, so that stopping does not wait a whole interval.
const STEP_MS: u32 = 50;

/// The PING and recovery loop of one bus instance, running as a long work item.
#[pin_data]
pub(crate) struct Liveness {
    instance: Arc<Instance>,
    interval_ms: u32,
    stop: AtomicBool,
    #[pin]
    work: Work<Liveness>,
}

impl_has_work! {
    impl HasWork<Self> for Liveness { self.work }
}

impl WorkItem for Liveness {
    type Pointer = Arc<Liveness>;

    fn run(this: Arc<Liveness>) {
        this.run_loop();
    }
}

impl Liveness {
    /// Starts PINGing every `interval_ms`; `None` when the interval is 0 (disabled; then a
    /// stopped instance stays stopped until the driver is unbound).
    pub(crate) fn start(instance: Arc<Instance>, interval_ms: u32) -> Result<Option<Arc<Self>>> {
        if interval_ms == 0 {
            return Ok(None);
        }
        let this = Arc::pin_init(
            pin_init!(Self {
                instance,
                interval_ms,
                stop: AtomicBool::new(false),
                work <- new_work!("virtio_msg_shm::liveness"),
            }),
            GFP_KERNEL,
        )?;
        // Unbound: it resends kept kicks, which must not wait for a CPU that spins with
        // interrupts disabled. Owned, so that `stop` waits for the whole run (the last
        // reference dropped included), not for a signal before the end.
        let _ = system_dfl().enqueue::<Arc<Self>, 0>(this.clone());
        Ok(Some(this))
    }

    /// Sleeps `ms` in steps; false if asked to stop meanwhile. Each step also polls the link
    /// (`ShmLink::poll`: the to-driver ring drained, kept events resent) and ends the pause
    /// early when the device side says it is going away.
    fn pause(&self, instance: &Instance, ms: u32) -> bool {
        let mut waited = 0;
        while waited < ms {
            if self.stop.load(Ordering::Acquire) {
                return false;
            }
            fsleep(Delta::from_millis(i64::from(STEP_MS)));
            let link = instance.link();
            link.poll();
            if !link.is_detached() && link.device_state() == Ok(region::DEVICE_GOING_AWAY) {
                break;
            }
            waited += STEP_MS;
        }
        !self.stop.load(Ordering::Acquire)
    }

    fn run_loop(&self) {
        let (instance, interval_ms) = (&*self.instance, self.interval_ms);
        let link = instance.link();
        let mut count: u32 = 0;
        // Failed recovery attempts in a row; only the first is logged.
        let mut failed: u32 = 0;
        // The device side went away and is not back yet.
        let mut away = false;
        while self.pause(instance, interval_ms) {
            match (away, link.device_state()) {
                (false, Ok(region::DEVICE_GOING_AWAY)) => {
                    instance.go_away();
                    away = true;
                    continue;
                }
                (true, Ok(region::DEVICE_READY)) => {
                    away = instance.come_back().is_err();
                    continue;
                }
                (true, _) => continue,
                _ => {}
            }
            if failed == 0 && !link.is_broken() {
                count = count.wrapping_add(1);
                match crate::negotiate::ping(link, count) {
                    Ok(()) => continue,
                    // A device side going away answers nothing more: the PING sent just
                    // before it said so is not a failure. The next round sees the state.
                    Err(_) if link.device_state() == Ok(region::DEVICE_GOING_AWAY) => continue,
                    Err(e) => link.fail_liveness(e),
                }
            }
            if failed == 0 {
                instance.break_devices(false);
                dev_warn!(
                    instance.device(),
                    "recovering the bus instance: detaching and attaching again\n"
                );
            }
            match instance.recover() {
                Ok(()) => {
                    link.stats.recoveries.fetch_add(1, Ordering::Relaxed);
                    dev_info!(
                        instance.device(),
                        "bus instance recovered after {} attempt(s)\n",
                        failed + 1
                    );
                    failed = 0;
                }
                Err(e) => {
                    // An attempt cut short by stop() is not worth a line.
                    if failed == 0 && !self.stop.load(Ordering::Acquire) {
                        dev_err!(
                            instance.device(),
                            "recovery failed ({e:?}); retrying every {interval_ms} ms\n"
                        );
                    }
                    failed = failed.saturating_add(1);
                }
            }
        }
    }

    /// Stops the loop and waits for it. A recovery attempt under way ends early: its waits
    /// for a device side that may never answer are cut short.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let link = self.instance.link();
        link.cancel_waits(true);
        flush_work(&self.work);
        link.cancel_waits(false);
    }
}
