// SPDX-License-Identifier: GPL-2.0

//! The module's debugfs directory, `/sys/kernel/debug/<module>/`, with one directory per bus
//! instance under it, as kernel subsystems lay debugfs out.
//!
//! Each module crate that includes this file has a directory of its own. It exists while one of
//! its instance directories does: the first [`InstanceDir::new`] creates it and the last one
//! dropped removes it, so that nothing is left once the module's instances are gone (and a
//! module loaded again finds the name free).

use core::sync::atomic::{AtomicU8, Ordering};
use kernel::{debugfs::Dir, prelude::*};

kernel::sync::global_lock! {
    // SAFETY: `root` calls `init` once, before any other use of the lock.
    unsafe(uninit) static ROOT: Mutex<Root> = Root { dir: None, users: 0 };
}

/// The module's directory and how many instance directories it holds.
struct Root {
    dir: Option<Dir>,
    users: usize,
}

/// Whether [`ROOT`] is initialised: one of the states below.
static ROOT_STATE: AtomicU8 = AtomicU8::new(UNINITIALISED);
const UNINITIALISED: u8 = 0;
const INITIALISING: u8 = 1;
const READY: u8 = 2;

/// Returns [`ROOT`], initialised by the first caller.
fn root() -> &'static kernel::sync::GlobalLock<ROOT> {
    if ROOT_STATE
        .compare_exchange(
            UNINITIALISED,
            INITIALISING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        // SAFETY: Only the caller that moved the state away from UNINITIALISED gets here, so
        // `init` runs once; every other caller waits below for READY, which is stored after
        // `init` returns, before it touches the lock.
        unsafe { ROOT.init() };
        ROOT_STATE.store(READY, Ordering::Release);
    } else {
        // A concurrent first caller is initialising: a few instructions.
        while ROOT_STATE.load(Ordering::Acquire) != READY {
            core::hint::spin_loop();
        }
    }
    &ROOT
}

/// One instance's directory, `/sys/kernel/debug/<module>/<name>/`; removed when dropped, with
/// the module's directory if it was the last.
pub struct InstanceDir {
    // Declared first, dropped first: the module's directory goes after its last child.
    dir: Dir,
    _user: RootUser,
}

impl InstanceDir {
    /// Creates `name` under the directory `module` (created if need be). `module` names the
    /// module's directory: every caller in one module passes the same name.
    pub fn new(module: &CStr, name: &CStr) -> Self {
        let mut root = root().lock();
        let dir = root
            .dir
            .get_or_insert_with(|| Dir::new(module))
            .subdir(name);
        root.users += 1;
        Self {
            dir,
            _user: RootUser,
        }
    }
}

impl core::ops::Deref for InstanceDir {
    type Target = Dir;

    fn deref(&self) -> &Dir {
        &self.dir
    }
}

/// One instance directory counted in [`Root::users`]; the last one dropped removes the module's
/// directory (under the lock, so that an instance created meanwhile finds it or makes it anew).
struct RootUser;

impl Drop for RootUser {
    fn drop(&mut self) {
        let mut root = root().lock();
        root.users = root.users.saturating_sub(1);
        if root.users == 0 {
            root.dir = None;
        }
    }
}
