// SPDX-License-Identifier: GPL-2.0

//! Conversions at the C boundary, shared by the project's abstractions.

use kernel::{bindings, device::Device, ffi::c_int, prelude::*};

/// Converts a result to the C convention: 0 or a negative errno.
pub fn to_c_int(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Returns the `struct device` behind `dev`, or null.
pub fn raw_device(dev: Option<&Device>) -> *mut bindings::device {
    // `kernel::device::Device` is a transparent wrapper of `struct device`.
    dev.map_or(core::ptr::null_mut(), |d| {
        core::ptr::from_ref(d).cast_mut().cast()
    })
}
