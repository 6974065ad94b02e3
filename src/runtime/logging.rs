//! Logging through `log` + `simplelog` to standard error, where systemd's journal and container runtimes
//! collect it: one line per message with an RFC 3339 timestamp and its target (the module, or `librdkafka`
//! for the client library's own lines), without thread names or source locations.
//!
//! [`RateLimit`] keeps a repeating message to one per interval. Each kind of message has its own (the
//! outcome types of `ingest/events.rs` own theirs), so the count of suppressed messages it reports is a count
//! of messages like the one logged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::LevelFilter;
use simplelog::{ColorChoice, ConfigBuilder, TermLogger, TerminalMode};

/// Installs the logger (once; later calls are ignored).
pub fn init(level: LevelFilter) {
    let mut b = ConfigBuilder::new();
    b.set_target_level(LevelFilter::Error)
        .set_thread_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .set_time_format_rfc3339();
    let _ = TermLogger::init(level, b.build(), TerminalMode::Stderr, ColorChoice::Never);
}

/// Logs at most one message per interval for a repeating condition, counting what it suppressed.
pub struct RateLimit {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimit {
    pub const fn new(interval: Duration) -> Self {
        RateLimit { interval, state: Mutex::new((None, 0)) }
    }

    /// Returns `Some(suppressed_since_last)` when a message may be logged now.
    pub fn check(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match s.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                s.1 += 1;
                None
            }
            _ => {
                let suppressed = s.1;
                *s = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_suppresses_and_counts() {
        let r = RateLimit::new(Duration::from_secs(3600));
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), None);
        assert_eq!(r.check(), None);
        let r2 = RateLimit::new(Duration::ZERO);
        assert_eq!(r2.check(), Some(0));
        assert_eq!(r2.check(), Some(0));
    }
}
