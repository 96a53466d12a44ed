// SPDX-License-Identifier: GPL-2.0

//! The measurement programs of `make bench` (`scripts/bench.sh`).
//!
//! - [`rings`]: message throughput and round trips of the shared-memory rings on the host
//!   alone, through `vmsg-device`'s own ring code ([`vmsg_device::region`]), so that the
//!   numbers describe the code the device side runs, not a stand-in;
//! - [`stats`]: percentiles and a small JSON writer shared by both programs.
//!
//! The binaries: `vmsg-ring-bench` (host) and `vmsg-sysfs-rtt` (guest: times reads of
//! sysfs attributes, e.g. a virtio device's `status`, which costs one GET_DEVICE_STATUS
//! round trip on virtio-msg and one register read on virtio-pci).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod rings;
pub mod stats;
