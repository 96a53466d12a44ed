// SPDX-License-Identifier: GPL-2.0

//! Device side of the virtio-msg shared-memory bus (`Documentation/shm-bus.rst`).
//!
//! One concern per module:
//! - [`ivshmem`]: the ivshmem server protocol (UNIX socket, SCM_RIGHTS, eventfds);
//! - [`region`]: the shared region's header and rings;
//! - [`bus`]: VERSION, RESET, GET_DEVICES, PING, EVENT_DEVICE and routing to devices;
//! - [`transport`]: the transport messages of one device;
//! - [`devices`]: virtio-rng, virtio-blk, virtio-console and the vhost-user bridge;
//! - [`guest_memory`]: mapping guest RAM;
//! - [`fault`]: fault injection;
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
pub mod guest_memory;
pub mod ivshmem;
pub mod ratelimit;
pub mod region;
pub mod server;
pub mod transport;
