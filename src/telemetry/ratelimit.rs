//! A tiny log rate limiter for events that can come in floods (a producer
//! writing garbage, a broker outage): at most `burst` log lines per period
//! for one event type, and the next admitted line tells how many were
//! suppressed. Metrics are never rate limited, only log lines.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// Seconds since the first call in this process (monotonic).
fn monotonic_secs() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

/// Admits at most `burst` log lines per `period_secs` window. Lock-free; under
/// a race a window may admit a line or two more than `burst`, which is fine
/// for logging.
#[derive(Debug)]
pub(super) struct LogLimit {
    burst: u32,
    period_secs: u64,
    window: AtomicU64,
    used: AtomicU32,
    suppressed: AtomicU64,
}

impl LogLimit {
    /// A limit of `burst` lines per `period_secs` (at least 1) seconds.
    pub(super) const fn new(burst: u32, period_secs: u64) -> Self {
        LogLimit {
            burst,
            period_secs: if period_secs == 0 { 1 } else { period_secs },
            window: AtomicU64::new(0),
            used: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed)` if a line may be logged now, with the number of
    /// lines suppressed since the last admitted one; `None` to stay quiet.
    pub(super) fn admit(&self) -> Option<u64> {
        self.admit_at(monotonic_secs())
    }

    fn admit_at(&self, now_secs: u64) -> Option<u64> {
        let window = now_secs / self.period_secs;
        let current = self.window.load(Ordering::Relaxed);
        if window > current
            && self.window.compare_exchange(current, window, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < self.burst {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            // Keep `used` from wrapping around under a long flood.
            self.used.store(self.burst, Ordering::Relaxed);
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogLimit;

    #[test]
    fn admits_a_burst_per_window_and_counts_the_rest() {
        let limit = LogLimit::new(2, 10);
        assert_eq!(limit.admit_at(0), Some(0));
        assert_eq!(limit.admit_at(3), Some(0));
        assert_eq!(limit.admit_at(4), None);
        assert_eq!(limit.admit_at(9), None);
        // Next window: admitted again, reporting the two suppressed lines.
        assert_eq!(limit.admit_at(10), Some(2));
        assert_eq!(limit.admit_at(11), Some(0));
        assert_eq!(limit.admit_at(12), None);
        // A window far later still resets.
        assert_eq!(limit.admit_at(1_000), Some(1));
    }

    #[test]
    fn a_zero_period_does_not_divide_by_zero() {
        let limit = LogLimit::new(1, 0);
        assert_eq!(limit.admit_at(5), Some(0));
        assert_eq!(limit.admit_at(5), None);
        assert_eq!(limit.admit_at(6), Some(1));
    }
}
