//! `rate_limit`'s token bucket, as Go's `rate.Limiter` that the toolkit uses: it starts full with `burst`
//! tokens, gains one per `interval` up to `burst`, and a request that finds no whole token is answered 429.
//! A burst of 0 therefore refuses every request, as in the toolkit.

use std::sync::Mutex;
use std::time::Instant;

use super::settings::RateLimitConfig;

pub struct TokenBucket {
    limit: RateLimitConfig,
    /// Tokens, in nanoseconds of refill (one token is `interval`), and when they were counted: exact
    /// integer arithmetic.
    state: Mutex<(u128, Instant)>,
}

impl TokenBucket {
    pub fn new(limit: RateLimitConfig) -> TokenBucket {
        TokenBucket { limit, state: Mutex::new((Self::capacity(limit), Instant::now())) }
    }

    fn capacity(limit: RateLimitConfig) -> u128 {
        limit.interval.as_nanos() * u128::from(limit.burst)
    }

    pub fn limit(&self) -> RateLimitConfig {
        self.limit
    }

    /// Takes a token if there is one.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let gained = now.saturating_duration_since(s.1).as_nanos();
        s.0 = (s.0 + gained).min(Self::capacity(self.limit));
        s.1 = now;
        let cost = self.limit.interval.as_nanos();
        if cost > 0 && s.0 >= cost {
            s.0 -= cost;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_one_per_interval() {
        let b = TokenBucket::new(RateLimitConfig { interval: Duration::from_secs(1), burst: 3 });
        let t0 = b.state.lock().unwrap().1;
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
