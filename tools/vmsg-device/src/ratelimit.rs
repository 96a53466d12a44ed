// SPDX-License-Identifier: GPL-2.0

//! A log rate limiter, so that a peer sending garbage cannot flood the log.

use std::time::{Duration, Instant};

/// Allows `burst` events per `period`, then counts the suppressed ones.
pub struct RateLimiter {
    period: Duration,
    burst: u32,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u32,
}

impl RateLimiter {
    /// A limiter of `burst` events per `period`.
    pub const fn new(period: Duration, burst: u32) -> Self {
        Self {
            period,
            burst,
            window_start: None,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Returns whether an event happening `now` may be logged, and how many were
    /// suppressed since the last one logged.
    pub fn check_at(&mut self, now: Instant) -> Option<u32> {
        let fresh = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= self.period);
        if fresh {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window < self.burst {
            self.in_window += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// [`RateLimiter::check_at`] now.
    pub fn check(&mut self) -> Option<u32> {
        self.check_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_a_burst_and_reports_suppressed() {
        let mut rl = RateLimiter::new(Duration::from_secs(1), 2);
        let t0 = Instant::now();
        assert_eq!(rl.check_at(t0), Some(0));
        assert_eq!(rl.check_at(t0), Some(0));
        assert_eq!(rl.check_at(t0), None);
        assert_eq!(rl.check_at(t0 + Duration::from_millis(500)), None);
        assert_eq!(rl.check_at(t0 + Duration::from_secs(1)), Some(2));
    }
}
