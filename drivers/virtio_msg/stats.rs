// SPDX-License-Identifier: GPL-2.0

//! Per-device message statistics, kept with relaxed atomics and shown in debugfs.

use core::sync::atomic::{AtomicU64, Ordering};

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
