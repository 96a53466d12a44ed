// SPDX-License-Identifier: GPL-2.0

//! Wire codec for virtio-msg, shared by the kernel modules and the host tools.
//!
//! One source tree, compiled inside Linux kernel modules and in the `virtio-msg-codec`
//! host crate. It depends only on `core` and `zerocopy`, never allocates, never panics on
//! any input, and encodes into buffers its caller owns.
//!
//! A bus instance keeps one [`Codec`]: the bus kind (which bus-specific ids it knows), the
//! payload [`Layout`] its peer speaks, and the negotiated maximum message size.
//! [`Codec::decode`] turns received bytes into a [`Frame`] that borrows variable-length
//! parts from them; [`Codec::encode`] writes a [`Frame`] into a buffer.
//!
//! Include it from a crate root with
//! `#[path = ".../rust/codec/mod.rs"] pub mod codec;` (`pub` so the parts a crate does not
//! use are neither dead code nor unreachable `pub` items).

pub mod bus;
pub mod chunk;
pub mod compat;
mod error;
pub mod ffa;
mod header;
mod limits;
mod message;
pub mod shm;
pub mod shm_layout;
pub mod transport;
mod wire;

pub use compat::Layout;
pub use error::{DecodeError, EncodeError};
pub use header::{frame, set_token, Header, HEADER_SIZE, TYPE_BUS, TYPE_RESERVED, TYPE_RESPONSE};
pub use limits::{
    min_msg_size, negotiate_max_msg_size, MAX_MSG_SIZE, MIN_MSG_SIZE, RECOMMENDED_MSG_SIZE,
    TRANSPORT_FEATURES_REVISION_1, TRANSPORT_F_STRICT_CONFIG_GENERATION, TRANSPORT_REVISION_1,
};
pub use message::{BusKind, Codec, Frame, Message};
