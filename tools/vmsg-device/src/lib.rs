// SPDX-License-Identifier: GPL-2.0

//! Device side of the virtio-msg shared-memory bus (`Documentation/shm-bus.rst`).
//!
//! One concern per module:
//! - [`ivshmem`]: the ivshmem server protocol (UNIX socket, SCM_RIGHTS, eventfds);
//! - [`ivshmem_peer`]: the client end of it, for split mode;
//! - [`shm_server`]: the long-lived ivshmem server of split mode;
//! - [`state`]: what the device logic persists to resume after a restart;
//! - [`region`]: the shared region's header and rings;
//! - [`bus`]: VERSION, RESET, GET_DEVICES, PING, EVENT_DEVICE and routing to devices;
//! - [`transport`]: the transport messages of one device;
//! - [`devices`]: virtio-rng, virtio-blk, virtio-console and the vhost-user bridge;
//! - [`guest_memory`]: mapping guest RAM, or in window mode the window of the region;
//! - [`fault`]: fault injection;
//! - [`fuzz`]: seeded random mutation of messages to the driver (the `fuzz` fault);
//! - [`slot_rewrite`]: changing messages while they wait in their slots (`slot-rewrite`);
//! - [`control`]: the control socket;
//! - [`cli`]: command line and config file;
//! - [`server`]: the event loop tying them together.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bus;
pub mod cli;
pub mod control;
pub mod devices;
pub mod fault;
pub mod fuzz;
pub mod guest_memory;
pub mod ivshmem;
pub mod ivshmem_peer;
pub mod ratelimit;
pub mod region;
pub mod server;
pub mod shm_server;
pub mod slot_rewrite;
pub mod state;
pub mod transport;
