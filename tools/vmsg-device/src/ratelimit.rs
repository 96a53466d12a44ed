// SPDX-License-Identifier: GPL-2.0

//! A log rate limiter, so that a peer sending garbage, or guest memory that makes no
//! sense, cannot flood the log: [`RateLimiter::log`], and [`limited!`](crate::limited) for
//! a limiter per call site.

use std::fmt;
use std::time::{Duration, Instant};

pub use log::Level;

/// Logs like `log::warn!` and its siblings (`limited!(Warn, "...", ...)`), at most 10
/// lines per 5 s from this call site, each saying how many were left out before it: for
/// what the driver side (its messages, its memory) can cause at any rate.
#[macro_export]
macro_rules! limited {
    ($level:ident, $($arg:tt)+) => {{
        static LIMIT: std::sync::Mutex<$crate::ratelimit::RateLimiter> =
            std::sync::Mutex::new($crate::ratelimit::RateLimiter::new(
                std::time::Duration::from_secs(5),
                10,
            ));
        LIMIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .log($crate::ratelimit::Level::$level, format_args!($($arg)+));
    }};
}

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

    /// Logs `args` at `level` if [`RateLimiter::check`] allows it, with the number of
    /// lines left out since the last one.
    pub fn log(&mut self, level: Level, args: fmt::Arguments<'_>) {
        match self.check() {
            Some(0) => log::log!(level, "{args}"),
            Some(n) => log::log!(level, "{args} ({n} similar message(s) not logged)"),
            None => {}
        }
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
