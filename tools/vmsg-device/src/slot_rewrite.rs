// SPDX-License-Identifier: GPL-2.0

//! The `slot-rewrite` fault: a thread that changes messages while they wait in the
//! to-driver ring, published, so that the driver side may copy a slot half old and half
//! new. The driver must copy a slot once and judge only its copy (its `msg_size` read
//! once); whatever it then decodes is no worse than a message the device side wrote
//! wrong on purpose.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::region::Ring;

/// How long a flipped byte stays flipped, in spin-loop iterations (a few microseconds):
/// long enough to be seen by a copy under way, short enough that most copies see the
/// message intact.
const HOLD_SPINS: u32 = 2000;
/// Pause when no chosen message waits.
const IDLE: Duration = Duration::from_micros(50);

/// The rewriting thread; stopped and joined by [`SlotRewriter::stop`].
pub struct SlotRewriter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl SlotRewriter {
    /// Starts rewriting the waiting messages of `ring` whose index is a multiple of
    /// `every`, with a PRNG seeded by `seed`.
    pub fn start(ring: Ring, every: u32, seed: u64) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("slot-rewrite".into())
            .spawn(move || rewrite_until(&ring, every.max(1), seed, &stopped))
            .map_err(|e| format!("slot-rewrite thread: {e}"))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread; returns how many bytes it flipped.
    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for SlotRewriter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rewrite_until(ring: &Ring, every: u32, seed: u64, stop: &AtomicBool) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut flips = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut any = false;
        for (index, len) in ring.waiting() {
            if index % every != 0 {
                continue;
            }
            let at = rng.usize(..len);
            if let Some(byte) = ring.xor_byte(index, at, rng.u8(1..)) {
                for _ in 0..HOLD_SPINS {
                    std::hint::spin_loop();
                }
                ring.put_byte(index, at, byte);
                flips += 1;
                any = true;
            }
        }
        if !any {
            thread::sleep(IDLE);
        }
    }
    flips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::{Geometry, Region};

    #[test]
    fn waiting_messages_are_changed_and_restored() {
        let region = Region::create(Geometry::new(64 * 1024, 64, Some(4)).expect("geometry"))
            .expect("region");
        region.initialise(1);
        let ring = region.to_driver();
        let mut msg = vec![0x5au8; 32];
        msg[6..8].copy_from_slice(&32u16.to_le_bytes());
        ring.push(&msg).expect("push");
        let mut rewriter = SlotRewriter::start(ring.clone(), 1, 7).expect("start");
        thread::sleep(Duration::from_millis(50));
        let flips = rewriter.stop();
        assert!(flips > 0, "no byte flipped");
        let mut copy = Vec::new();
        ring.peek_at(0, &mut copy).expect("peek");
        assert_eq!(copy, msg, "a flipped byte was not written back");
    }
}
