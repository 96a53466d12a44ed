// SPDX-License-Identifier: GPL-2.0

//! A spinlock that disables local interrupts while held.
//!
//! The kernel crate's `SpinLock` of Linux 7.2 uses plain `spin_lock()`: data shared with code
//! that runs in interrupt or softirq context (a virtqueue `notify`, a bus receive path) needs
//! `spin_lock_irqsave()` instead, or an interrupt on the CPU that holds the lock deadlocks.

use super::glue;
use kernel::{
    bindings,
    ffi::{c_char, c_ulong},
    sync::lock::{Backend, Lock},
};

/// A spinlock held with local interrupts disabled; see the module documentation.
pub type IrqSpinLock<T> = Lock<T, IrqSpinLockBackend>;

/// Creates an [`IrqSpinLock`] initialiser with a lock class of its own.
#[macro_export]
macro_rules! new_irq_spinlock {
    ($inner:expr, $name:literal $(,)?) => {
        $crate::vmsg::sync::IrqSpinLock::new($inner, $name, kernel::static_lock_class!())
    };
}

/// The [`Backend`] of [`IrqSpinLock`]: a `spinlock_t` taken with `spin_lock_irqsave()`.
pub struct IrqSpinLockBackend;

// SAFETY: `spin_lock_irqsave` gives mutual exclusion until `spin_unlock_irqrestore`, and the
// saved interrupt state travels in the guard so that it is restored by the unlocking owner.
unsafe impl Backend for IrqSpinLockBackend {
    type State = bindings::spinlock_t;
    type GuardState = c_ulong;

    unsafe fn init(ptr: *mut Self::State, name: *const c_char, key: *mut bindings::lock_class_key) {
        // SAFETY: The caller guarantees `ptr` is valid for writes and `name` and `key` live
        // forever.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: The caller guarantees the lock was initialised.
        unsafe { glue::vmsg_spin_lock_irqsave(ptr.cast()) }
    }

    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let mut flags: c_ulong = 0;
        // SAFETY: The caller guarantees the lock was initialised; `flags` is a valid local.
        unsafe { glue::vmsg_spin_trylock_irqsave(ptr.cast(), &mut flags) }.then_some(flags)
    }

    unsafe fn unlock(ptr: *mut Self::State, guard_state: &Self::GuardState) {
        // SAFETY: The caller owns the lock; `guard_state` is what `lock` saved.
        unsafe { glue::vmsg_spin_unlock_irqrestore(ptr.cast(), *guard_state) }
    }

    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: The caller guarantees the lock was initialised.
        unsafe { bindings::spin_assert_is_held(ptr) }
    }
}
