// SPDX-License-Identifier: GPL-2.0

//! A gate around calls into an object that goes away: calls enter and leave it from any
//! context, and [`Gate::close`] turns new calls away and sleeps until the last one inside has
//! left. It replaces an in-flight counter polled with sleeps: the closer is woken by the last
//! call to leave (`wake_up_var()`), and a wait that never ends is seen by the hung-task
//! detector.

use super::glue;
use kernel::sync::atomic::{Atomic, Full};

/// Set in the state once the gate is closed; the bits below count the calls inside.
const CLOSED: u32 = 1 << 31;

/// See the module documentation.
///
/// # Invariants
///
/// `state` is `CLOSED` (once closed, for ever) or'ed with the number of live [`Pass`]es plus
/// the calls between their increment and decrement in [`Gate::enter`].
pub struct Gate {
    state: Atomic<u32>,
}

/// Proof of having entered a [`Gate`]; leaving is dropping it.
pub struct Pass<'a>(&'a Gate);

impl Gate {
    /// Creates an open gate.
    pub const fn new() -> Self {
        Self {
            state: Atomic::new(0),
        }
    }

    /// Enters the gate, unless it is closed. Any context.
    pub fn enter(&self) -> Option<Pass<'_>> {
        // Fully ordered: a closer that saw no call inside is seen to have closed.
        let before = self.state.fetch_add(1u32, Full);
        let pass = Pass(self);
        if before & CLOSED != 0 {
            // Leaves at once, waking the closer if it waits for this increment.
            return None;
        }
        Some(pass)
    }

    /// Returns whether the gate is closed.
    pub fn is_closed(&self) -> bool {
        self.state.load(kernel::sync::atomic::Relaxed) & CLOSED != 0
    }

    /// Closes the gate and waits until every call that entered it has left. Idempotent;
    /// sleeps, so never from a call inside the gate.
    pub fn close(&self) {
        let mut seen = self.state.load(kernel::sync::atomic::Relaxed);
        while seen & CLOSED == 0 {
            match self.state.cmpxchg(seen, seen | CLOSED, Full) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        // SAFETY: `state` is a live `u32` for the call; the waiter reads it with READ_ONCE and
        // is woken by `Pass::drop` through the same address.
        unsafe { glue::vmsg_wait_while_counted(self.state.as_ptr(), !CLOSED) };
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let gate = self.0;
        // Fully ordered, which orders the store before `wake_up_var()`'s look at the waiters.
        if gate.state.fetch_sub(1u32, Full) == CLOSED | 1 {
            // SAFETY: `state` is live: the gate outlives this pass, which borrows it.
            unsafe { glue::vmsg_wake_var(gate.state.as_ptr().cast()) };
        }
    }
}
