//! A token bucket rate limiter whose clock is an argument, so tests need no sleeping.

use super::MonoMillis;

/// A rate limit: `burst` events at once after a quiet spell, `per_second` on average.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub burst: u32,
    pub per_second: u32,
}

impl RateLimit {
    pub const fn new(burst: u32, per_second: u32) -> Self {
        RateLimit { burst, per_second }
    }
}

/// Allows bursts of `capacity` events and `per_second` events per second on average.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    capacity: u32,
    per_second: u32,
    /// Thousandths of a token, so that slow refill rates do not round down to nothing.
    milli_tokens: u64,
    refilled_at: MonoMillis,
}

impl TokenBucket {
    pub fn new(limit: RateLimit, now: MonoMillis) -> Self {
        TokenBucket {
            capacity: limit.burst,
            per_second: limit.per_second,
            milli_tokens: u64::from(limit.burst) * 1000,
            refilled_at: now,
        }
    }

    /// Takes one token if there is one. A clock that steps backwards refills nothing.
    pub fn try_take(&mut self, now: MonoMillis) -> bool {
        let elapsed_ms = now.0.saturating_sub(self.refilled_at.0);
        if elapsed_ms > 0 {
            let refill = elapsed_ms.saturating_mul(u64::from(self.per_second));
            self.milli_tokens = self
                .milli_tokens
                .saturating_add(refill)
                .min(u64::from(self.capacity) * 1000);
            self.refilled_at = now;
        } else if now.0 < self.refilled_at.0 {
            self.refilled_at = now;
        }
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_steady_rate() {
        let mut bucket = TokenBucket::new(RateLimit::new(3, 2), MonoMillis(0));
        assert!((0..3).all(|_| bucket.try_take(MonoMillis(0))));
        assert!(!bucket.try_take(MonoMillis(0)));
        // Two per second: one token after 500 ms, not before.
        assert!(!bucket.try_take(MonoMillis(499)));
        assert!(bucket.try_take(MonoMillis(500)));
        assert!(!bucket.try_take(MonoMillis(500)));
    }

    #[test]
    fn idle_time_refills_only_up_to_the_capacity() {
        let mut bucket = TokenBucket::new(RateLimit::new(2, 10), MonoMillis(0));
        assert!(bucket.try_take(MonoMillis(0)));
        assert!(bucket.try_take(MonoMillis(0)));
        let later = MonoMillis(60_000);
        assert!(bucket.try_take(later));
        assert!(bucket.try_take(later));
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn a_clock_stepping_back_does_not_grant_tokens() {
        let mut bucket = TokenBucket::new(RateLimit::new(1, 1), MonoMillis(10_000));
        assert!(bucket.try_take(MonoMillis(10_000)));
        assert!(!bucket.try_take(MonoMillis(5_000)));
        assert!(!bucket.try_take(MonoMillis(5_999)));
        assert!(bucket.try_take(MonoMillis(6_000)));
    }
}
