//! Host build of the virtio-msg wire codec.
//!
//! The sources live in `rust/codec/` at the top of the repository and are compiled
//! unchanged into the kernel modules; this crate only wraps them so host tools, tests and
//! the fuzzer use the very same code.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[path = "../../../rust/codec/mod.rs"]
mod codec;

pub use codec::*;

#[doc(hidden)]
pub mod fuzzing;
