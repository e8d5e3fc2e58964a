//! Token bucket rate limiters whose clock is an argument, so tests need no sleeping: one per
//! member, and one per key (a client address) in a bounded table.

use std::collections::HashMap;
use std::hash::Hash;

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
        self.try_take_many(now, 1)
    }

    /// Takes `count` tokens if there are that many, else none.
    pub fn try_take_many(&mut self, now: MonoMillis, count: u32) -> bool {
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
        let cost = u64::from(count) * 1000;
        if self.milli_tokens >= cost {
            self.milli_tokens -= cost;
            true
        } else {
            false
        }
    }
}

impl TokenBucket {
    /// Whether the bucket has refilled completely by `now`: its owner has been quiet long
    /// enough that forgetting it loses nothing.
    pub fn is_full(&self, now: MonoMillis) -> bool {
        let elapsed_ms = now.0.saturating_sub(self.refilled_at.0);
        let refill = elapsed_ms.saturating_mul(u64::from(self.per_second));
        self.milli_tokens.saturating_add(refill) >= u64::from(self.capacity) * 1000
    }
}

/// A limit for rare, costly events (password guesses): `burst` at once after a quiet spell,
/// then one every `every_secs` seconds, slower than [`RateLimit`] can say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowLimit {
    pub burst: u32,
    pub every_secs: u32,
}

impl SlowLimit {
    pub const fn new(burst: u32, every_secs: u32) -> Self {
        SlowLimit { burst, every_secs }
    }

    /// The same limit as a bucket refilling one token per second, where each event costs
    /// `every_secs` tokens ([`SlowLimit::cost`]).
    pub const fn as_rate(self) -> RateLimit {
        let every = if self.every_secs == 0 {
            1
        } else {
            self.every_secs
        };
        RateLimit::new(self.burst.saturating_mul(every), 1)
    }

    pub const fn cost(self) -> u32 {
        if self.every_secs == 0 {
            1
        } else {
            self.every_secs
        }
    }
}

/// One bucket per key, for limits that follow a client address rather than a member. The
/// table holds at most `max_keys`; when full it forgets the keys whose buckets refilled, and
/// if every key is still busy a new key is refused (the table must not grow without bound
/// under a flood of addresses).
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    limit: RateLimit,
    max_keys: usize,
    buckets: HashMap<K, TokenBucket>,
}

impl<K: Hash + Eq> KeyedBuckets<K> {
    pub fn new(limit: RateLimit, max_keys: usize) -> Self {
        KeyedBuckets {
            limit,
            max_keys,
            buckets: HashMap::new(),
        }
    }

    pub fn try_take(&mut self, key: K, now: MonoMillis) -> bool {
        self.try_take_many(key, now, 1)
    }

    pub fn try_take_many(&mut self, key: K, now: MonoMillis, count: u32) -> bool {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_keys {
            self.buckets.retain(|_, bucket| !bucket.is_full(now));
            if self.buckets.len() >= self.max_keys {
                return false;
            }
        }
        let limit = self.limit;
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(limit, now))
            .try_take_many(now, count)
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
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
    fn a_slow_limit_allows_its_burst_then_one_event_per_period() {
        let limit = SlowLimit::new(2, 30);
        let mut bucket = TokenBucket::new(limit.as_rate(), MonoMillis(0));
        assert!(bucket.try_take_many(MonoMillis(0), limit.cost()));
        assert!(bucket.try_take_many(MonoMillis(0), limit.cost()));
        assert!(!bucket.try_take_many(MonoMillis(29_999), limit.cost()));
        assert!(bucket.try_take_many(MonoMillis(30_000), limit.cost()));
        assert!(!bucket.try_take_many(MonoMillis(30_000), limit.cost()));
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

    #[test]
    fn keyed_buckets_limit_each_key_and_forget_quiet_ones_when_full() {
        let mut keyed = KeyedBuckets::new(RateLimit::new(2, 1), 2);
        let t0 = MonoMillis(0);
        assert!(keyed.try_take("a", t0) && keyed.try_take("a", t0));
        assert!(!keyed.try_take("a", t0));
        assert!(keyed.try_take("b", t0));
        // Full of busy keys: a third is refused rather than growing the table.
        assert!(!keyed.try_take("c", t0));
        assert_eq!(keyed.len(), 2);
        // Two seconds later both refilled and are forgotten to make room.
        assert!(keyed.try_take("c", MonoMillis(2_000)));
        assert_eq!(keyed.len(), 1);
    }
}
