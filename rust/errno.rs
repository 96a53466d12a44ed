// SPDX-License-Identifier: GPL-2.0

//! Error codes the kernel crate of Linux 7.2 has no name for.

use kernel::{bindings, error::Error};

/// `EPROTO`: the peer broke the protocol.
pub fn eproto() -> Error {
    Error::from_errno(-(bindings::EPROTO as i32))
}

/// `EBADMSG`: a malformed message.
pub fn ebadmsg() -> Error {
    Error::from_errno(-(bindings::EBADMSG as i32))
}
