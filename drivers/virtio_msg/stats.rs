// SPDX-License-Identifier: GPL-2.0

//! Per-device message statistics, kept with relaxed atomics and shown in debugfs.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

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
}

impl Stats {
    /// Logs every counter, for a device that goes away.
    pub(crate) fn log(&self, dev_num: u16) {
        pr_info!(
            "virtio-msg: device {dev_num}: requests {} responses {} events sent {} received {} timeouts {} protocol errors {} generation retries {} atomic config reads {}\n",
            self.requests.get(),
            self.responses.get(),
            self.events_sent.get(),
            self.events_received.get(),
            self.timeouts.get(),
            self.protocol_errors.get(),
            self.generation_retries.get(),
            self.atomic_config_reads.get()
        );
    }
}
