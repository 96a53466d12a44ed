// SPDX-License-Identifier: GPL-2.0

//! Log lines of a bus instance: printed through its bus device (`dev_err!` and kin), so that
//! each line names the instance ("virtio_msg_shm 0000:00:03.0: device 1: ..."); with the
//! module's prefix alone for an instance without one (the KUnit suites' fake buses).

/// Logs at `$dev`/`$pr` level through `$parent`, an `Option<&Device>`.
#[macro_export]
macro_rules! bus_log {
    ($dev:ident, $pr:ident, $parent:expr, $($arg:tt)*) => {
        match $parent {
            Some(parent) => kernel::$dev!(parent, $($arg)*),
            None => kernel::$pr!($($arg)*),
        }
    };
}

/// An error of a bus instance; see the module documentation.
#[macro_export]
macro_rules! bus_err {
    ($parent:expr, $($arg:tt)*) => { $crate::bus_log!(dev_err, pr_err, $parent, $($arg)*) };
}

/// A warning of a bus instance; see the module documentation.
#[macro_export]
macro_rules! bus_warn {
    ($parent:expr, $($arg:tt)*) => { $crate::bus_log!(dev_warn, pr_warn, $parent, $($arg)*) };
}

/// Information of a bus instance; see the module documentation.
#[macro_export]
macro_rules! bus_info {
    ($parent:expr, $($arg:tt)*) => { $crate::bus_log!(dev_info, pr_info, $parent, $($arg)*) };
}
