// SPDX-License-Identifier: GPL-2.0

//! Per-device message statistics, kept with relaxed atomics and shown in debugfs.

use crate::{device::MsgDevice, link::BusLink, vmsg::virtio::window::Window};
use core::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
};
use kernel::{device::Device, sync::Arc};

/// A counter that any context may bump.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns the current value.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What happened on one device's message stream.
#[derive(Default)]
pub(crate) struct Stats {
    /// Requests sent.
    pub(crate) requests: Counter,
    /// Valid responses received.
    pub(crate) responses: Counter,
    /// Events sent (EVENT_AVAIL).
    pub(crate) events_sent: Counter,
    /// Events received and delivered (EVENT_USED, EVENT_CONFIG).
    pub(crate) events_received: Counter,
    /// Requests that got no response in time.
    pub(crate) timeouts: Counter,
    /// Malformed, mismatched or out-of-range messages from the device side.
    pub(crate) protocol_errors: Counter,
    /// Config reads retried because the generation changed between chunks.
    pub(crate) generation_retries: Counter,
    /// Config reads served from the cache because the caller could not sleep.
    pub(crate) atomic_config_reads: Counter,
    /// Kicks (EVENT_AVAIL) the bus had no room for, kept and sent once it had.
    pub(crate) kicks_deferred: Counter,
}

impl Stats {
    /// Logs every counter, for a device that goes away.
    pub(crate) fn log(&self, parent: Option<&Device>, dev_num: u16) {
        crate::bus_info!(
            parent,
            "device {dev_num}: requests {} responses {} events sent {} received {} timeouts {} protocol errors {} generation retries {} atomic config reads {} kicks deferred {}\n",
            self.requests.get(),
            self.responses.get(),
            self.events_sent.get(),
            self.events_received.get(),
            self.timeouts.get(),
            self.protocol_errors.get(),
            self.generation_retries.get(),
            self.atomic_config_reads.get(),
            self.kicks_deferred.get()
        );
    }
}

/// A device's debugfs `stats` file: its terms, identity and counters, one per line.
pub(crate) struct DeviceView<B: BusLink>(pub(crate) Arc<MsgDevice<B>>);

impl<B: BusLink> fmt::Debug for DeviceView<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        let t = d.terms();
        let s = &d.stats;
        writeln!(f, "dev_num: {}", d.dev_num())?;
        writeln!(f, "device_id: {}", d.info().device_id)?;
        writeln!(f, "revision: {}", t.revision)?;
        writeln!(f, "max_msg_size: {}", t.max_msg_size)?;
        writeln!(f, "broken: {}", d.is_broken())?;
        writeln!(f, "requests: {}", s.requests.get())?;
        writeln!(f, "responses: {}", s.responses.get())?;
        writeln!(f, "events_sent: {}", s.events_sent.get())?;
        writeln!(f, "events_received: {}", s.events_received.get())?;
        writeln!(f, "timeouts: {}", s.timeouts.get())?;
        writeln!(f, "protocol_errors: {}", s.protocol_errors.get())?;
        writeln!(f, "generation_retries: {}", s.generation_retries.get())?;
        writeln!(f, "atomic_config_reads: {}", s.atomic_config_reads.get())?;
        write!(f, "kicks_deferred: {}", s.kicks_deferred.get())
    }
}

/// The debugfs view of an instance's window (`<instance>/window`).
pub(crate) struct WindowView(pub(crate) Arc<Window>);

impl fmt::Debug for WindowView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.stats();
        writeln!(f, "bus_base: {:#x}", self.0.bus_base())?;
        writeln!(f, "size: {}", s.size)?;
        writeln!(f, "in_use: {}", s.in_use)?;
        writeln!(f, "peak: {}", s.peak)?;
        writeln!(f, "full_refusals: {}", s.failed)?;
        writeln!(f, "bounced_to_device: {}", s.bounced_to_device)?;
        write!(f, "bounced_from_device: {}", s.bounced_from_device)
    }
}
