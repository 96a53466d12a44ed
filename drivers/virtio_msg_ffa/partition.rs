// SPDX-License-Identifier: GPL-2.0

//! What the bus needs from an FF-A partition, as a trait, so that the bus logic runs against
//! the firmware ([`FfaPartition`]) and against the KUnit fake alike.

use crate::ffa;
use kernel::{new_mutex, page::Page, prelude::*, sync::Arc, sync::Mutex};

/// Bytes one direct message carries each way (`FFA_MSG_SEND_DIRECT_REQ2`, registers x4-x17).
pub(crate) const DIRECT_SIZE: usize = ffa::DIRECT2_SIZE;

/// Where a pending-event notification goes.
pub(crate) trait EventSink: Send + Sync {
    /// The partition has events pending. Any context; must not sleep.
    fn notified(&self);
}

/// One device-role partition, seen from the bus.
pub(crate) trait Partition: Send + Sync + 'static {
    /// One `FFA_MSG_SEND_DIRECT_REQ2` round trip: `regs` holds the request, then the response.
    /// `EBUSY`, `EAGAIN` or `EINTR` ask for a retry. May sleep.
    fn direct(&self, regs: &mut [u8; DIRECT_SIZE]) -> Result;

    /// The FF-A version in use.
    fn ffa_version(&self) -> u32;

    /// The FF-A device, which log lines name; `None` for a fake partition.
    fn device(&self) -> Option<&kernel::device::Device>;

    /// Binds notification `id` from the partition to `sink`. `EOPNOTSUPP` without
    /// notification support.
    fn notify_request(&self, id: u8, sink: Arc<dyn EventSink>) -> Result;

    /// Unbinds the notification bound by [`Partition::notify_request`]; the sink is released.
    fn notify_relinquish(&self);

    /// Shares `pages` with the partition (`FFA_MEM_SHARE`) and returns the memory handle.
    fn share(&self, pages: &[Page], tag: u64) -> Result<u64>;

    /// Takes shared memory back (`FFA_MEM_RECLAIM`).
    fn reclaim(&self, handle: u64) -> Result;
}

/// Forwards an FF-A notification to the bus.
pub(crate) struct Relay(Arc<dyn EventSink>);

impl ffa::NotifyHandler for Relay {
    fn notified(&self, _id: u8) {
        self.0.notified();
    }
}

/// A partition behind Linux's arm_ffa driver.
#[pin_data]
pub(crate) struct FfaPartition {
    dev: ffa::Device,
    #[pin]
    notification: Mutex<Option<ffa::Notification<Relay>>>,
}

impl FfaPartition {
    /// Returns an initialiser for the partition `dev`.
    pub(crate) fn new(dev: ffa::Device) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            dev,
            notification <- new_mutex!(None),
        })
    }
}

impl Partition for FfaPartition {
    fn direct(&self, regs: &mut [u8; DIRECT_SIZE]) -> Result {
        self.dev.direct_req2(regs)
    }

    fn device(&self) -> Option<&kernel::device::Device> {
        Some(self.dev.as_dev())
    }

    fn ffa_version(&self) -> u32 {
        self.dev.api_version()
    }

    fn notify_request(&self, id: u8, sink: Arc<dyn EventSink>) -> Result {
        let mut slot = self.notification.lock();
        if slot.is_some() {
            return Err(EBUSY);
        }
        let relay = Arc::new(Relay(sink), GFP_KERNEL)?;
        *slot = Some(ffa::Notification::request(&self.dev, id, relay)?);
        Ok(())
    }

    fn notify_relinquish(&self) {
        let notification = self.notification.lock().take();
        drop(notification);
    }

    fn share(&self, pages: &[Page], tag: u64) -> Result<u64> {
        self.dev.mem_share(pages, tag)
    }

    fn reclaim(&self, handle: u64) -> Result {
        self.dev.mem_reclaim(handle)
    }
}
