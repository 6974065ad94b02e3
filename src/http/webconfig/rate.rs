//! `rate_limit`'s token bucket, as Go's `rate.Limiter` that the toolkit uses: it starts full with `burst`
//! tokens, gains one per `interval` up to `burst`, and a request that finds no whole token is answered 429.
//! A burst of 0 therefore refuses every request, as in the toolkit.

use std::sync::Mutex;
use std::time::Instant;

use crate::config::webconfig::RateLimitConfig;

pub struct TokenBucket {
    limit: RateLimitConfig,
    state: Mutex<Tokens>,
}

impl TokenBucket {
    pub fn new(limit: RateLimitConfig) -> TokenBucket {
        TokenBucket { limit, state: Mutex::new(Tokens::full(limit, Instant::now())) }
    }

    pub fn limit(&self) -> RateLimitConfig {
        self.limit
    }

    /// Takes a token if there is one.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).take(self.limit, now)
    }
}

/// The state of one bucket under `limit`, for a caller that holds its own lock (one bucket per client):
/// tokens in nanoseconds of refill (one token is `interval`), and when they were counted: exact integer
/// arithmetic.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tokens {
    nanos: u128,
    at: Instant,
}

impl Tokens {
    pub fn full(limit: RateLimitConfig, now: Instant) -> Tokens {
        Tokens { nanos: capacity(limit), at: now }
    }

    fn refill(&mut self, limit: RateLimitConfig, now: Instant) {
        let gained = now.saturating_duration_since(self.at).as_nanos();
        self.nanos = (self.nanos + gained).min(capacity(limit));
        self.at = self.at.max(now);
    }

    /// Takes a token if there is a whole one.
    pub fn take(&mut self, limit: RateLimitConfig, now: Instant) -> bool {
        self.refill(limit, now);
        let cost = limit.interval.as_nanos();
        if cost > 0 && self.nanos >= cost {
            self.nanos -= cost;
            true
        } else {
            false
        }
    }

    /// Returns a token taken for work that turned out not to count against the limit.
    pub fn put_back(&mut self, limit: RateLimitConfig) {
        self.nanos = (self.nanos + limit.interval.as_nanos()).min(capacity(limit));
    }

    /// Whether the bucket would be full at `now` (then it holds nothing worth keeping).
    pub fn is_full(&self, limit: RateLimitConfig, now: Instant) -> bool {
        self.nanos + now.saturating_duration_since(self.at).as_nanos() >= capacity(limit)
    }
}

fn capacity(limit: RateLimitConfig) -> u128 {
    limit.interval.as_nanos() * u128::from(limit.burst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_one_per_interval() {
        let b = TokenBucket::new(RateLimitConfig { interval: Duration::from_secs(1), burst: 3 });
        let t0 = b.state.lock().unwrap().at;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(
            [b.allow_at(at(0)), b.allow_at(at(0)), b.allow_at(at(0)), b.allow_at(at(0))],
            [true, true, true, false]
        );
        assert!(!b.allow_at(at(999)));
        assert!(b.allow_at(at(1000)));
        assert!(!b.allow_at(at(1001)));
        // Ten idle seconds refill up to the burst, not beyond.
        assert_eq!((0..4).map(|_| b.allow_at(at(11_000))).collect::<Vec<_>>(), [true, true, true, false]);
        let none = TokenBucket::new(RateLimitConfig { interval: Duration::from_secs(1), burst: 0 });
        assert!(!none.allow_at(at(0)) && !none.allow_at(at(60_000)), "burst 0 refuses everything");
    }
}
