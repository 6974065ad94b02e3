//! The pusher thread. Every interval it gathers the registry into one batch and sends it; what the receiver
//! answers decides what happens next:
//!
//! - 2xx: delivered; the samples are counted as sent.
//! - 5xx, 429 and transport failures (refused, reset, timed out, TLS): retried with exponential back-off
//!   (0.5 s doubling, at most 8 s) or after the receiver's `Retry-After` (at most 5 min, and no request is
//!   sent before it, the next push included), for as long as the next push is not due; then the batch is
//!   dropped and its samples are counted as failed, with the last failure's reason.
//! - other 4xx: the receiver refuses the data itself; retrying cannot help, so it is dropped and counted.
//!
//! Only one batch exists at a time. At shutdown (after the pipeline has drained, with the HTTP threads) one
//! last push, of at most [`FINAL_PUSH_TIMEOUT`], delivers the final values.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, warn};
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts};

use super::client::{Answer, Client, TransportError};
use super::encode;
use crate::config::RemoteWriteConfig;
use crate::metrics::Metrics;
use crate::runtime::shutdown::Lifecycle;
use crate::table::{label_enum, PerKey};

/// First retry delay; doubled per retry.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest back-off between retries.
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Longest `Retry-After` honoured.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);
/// Longest single request.
const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(30);
/// The last push at shutdown gives up after this.
pub const FINAL_PUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a wait looks at the stop request.
const STOP_POLL: Duration = Duration::from_millis(50);

label_enum! {
    /// The `reason` label of the failure counters: why a request or a batch failed.
    pub enum FailReason {
        /// 4xx other than 429: dropped at once.
        ClientError => "http_4xx",
        RateLimited => "http_429",
        ServerError => "http_5xx",
        Network => "network",
        Timeout => "timeout",
        Tls => "tls",
    }
}

/// What to do after one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Drop(FailReason),
    Retry(FailReason, Option<Duration>),
    /// A stop was requested during the push: the final push follows with fresher values.
    Cancelled,
}

/// The verdict on one request's outcome.
pub fn verdict(outcome: &Result<Answer, (TransportError, String)>) -> Verdict {
    match outcome {
        Ok(a) if (200..300).contains(&a.status) => Verdict::Delivered,
        Ok(a) if a.status == 429 => Verdict::Retry(FailReason::RateLimited, a.retry_after),
        Ok(a) if a.status >= 500 => Verdict::Retry(FailReason::ServerError, a.retry_after),
        // 1xx and 3xx (a redirect is not followed: the URL is configured) count with the refusals.
        Ok(_) => Verdict::Drop(FailReason::ClientError),
        Err((TransportError::Network, _)) => Verdict::Retry(FailReason::Network, None),
        Err((TransportError::Timeout, _)) => Verdict::Retry(FailReason::Timeout, None),
        Err((TransportError::Tls, _)) => Verdict::Retry(FailReason::Tls, None),
        Err((TransportError::Cancelled, _)) => Verdict::Cancelled,
    }
}

/// The delay before retry number `retry` (0 for the first): capped exponential back-off, or the receiver's
/// `Retry-After` (capped) when it asks for longer.
pub fn retry_delay(retry: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = BACKOFF_MIN.saturating_mul(1u32 << retry.min(16)).min(BACKOFF_MAX);
    retry_after.map_or(backoff, |ra| ra.min(RETRY_AFTER_MAX).max(backoff))
}

/// The pusher's self-metrics, registered in the exporter's registry (so they are scraped and pushed too).
#[derive(Clone)]
pub struct PushMetrics {
    pub samples_sent: IntCounter,
    pub samples_failed: PerKey<FailReason, IntCounter>,
    pub requests_failed: PerKey<FailReason, IntCounter>,
    pub last_success: Gauge,
    pub duration: Histogram,
}

impl PushMetrics {
    pub fn register(m: &Metrics) -> Result<PushMetrics, prometheus::Error> {
        let reg = |c: Box<dyn prometheus::core::Collector>| m.registry.register(c);
        let samples_sent = IntCounter::new(
            "dashstream_exporter_remote_write_samples_sent_total",
            "Samples delivered to the remote-write receiver (pushes it answered 2xx)",
        )?;
        reg(Box::new(samples_sent.clone()))?;
        let vec = |name: &str, help: &str| -> Result<PerKey<FailReason, IntCounter>, prometheus::Error> {
            let v = IntCounterVec::new(Opts::new(name, help), &["reason"])?;
            reg(Box::new(v.clone()))?;
            Ok(PerKey::from_fn(|r: FailReason| v.with_label_values(&[r.label()])))
        };
        let samples_failed = vec(
            "dashstream_exporter_remote_write_samples_failed_total",
            "Samples of pushes given up, by the last failure's reason: refused (http_4xx) or not delivered before the next push was due",
        )?;
        let requests_failed = vec(
            "dashstream_exporter_remote_write_requests_failed_total",
            "Remote-write requests that failed, retried ones included, by reason",
        )?;
        let last_success = Gauge::new(
            "dashstream_exporter_remote_write_last_success_timestamp_seconds",
            "Unix time of the last push the receiver accepted (0: none yet)",
        )?;
        reg(Box::new(last_success.clone()))?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "dashstream_exporter_remote_write_request_duration_seconds",
                "Time of one remote-write request, from connecting to the answer (failed ones included)",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )?;
        reg(Box::new(duration.clone()))?;
        Ok(PushMetrics { samples_sent, samples_failed, requests_failed, last_success, duration })
    }
}

/// The pusher: its configuration, the metrics it reads and counts into.
pub struct Pusher {
    cfg: RemoteWriteConfig,
    metrics: Metrics,
    counters: PushMetrics,
    user_agent: String,
    /// No request before this (the receiver's `Retry-After`).
    not_before: Instant,
    /// Failed requests since the last delivered push (for one warning per outage, one line at recovery).
    failing: u64,
}

impl Pusher {
    pub fn new(cfg: RemoteWriteConfig, metrics: Metrics) -> Result<Pusher, prometheus::Error> {
        let counters = PushMetrics::register(&metrics)?;
        let user_agent = format!("dashflow-prometheus-exporter/{}", env!("CARGO_PKG_VERSION"));
        Ok(Pusher { cfg, metrics, counters, user_agent, not_before: Instant::now(), failing: 0 })
    }

    /// Pushes every interval until the HTTP threads are told to stop, then once more.
    pub fn run(mut self, life: &Arc<Lifecycle>) {
        info!("{}", self.cfg.summary());
        let interval = self.cfg.interval;
        let mut next = Instant::now();
        loop {
            if sleep_until(next.max(self.not_before), life) {
                break;
            }
            let now = Instant::now();
            next = (next + interval).max(now);
            self.push_once(next, Some(life));
        }
        let last = Instant::now() + FINAL_PUSH_TIMEOUT;
        self.not_before = Instant::now();
        self.push_once(last, None);
    }

    /// Sends one snapshot, retrying until `due` (the next push) at the latest, or until a stop is requested
    /// (`life`; `None` for the final push, bounded by its own short deadline).
    fn push_once(&mut self, due: Instant, life: Option<&Lifecycle>) {
        let stamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let batch = encode::batch(&self.metrics.gather_all(), &self.cfg.labels, stamp.as_millis() as i64);
        let mut retry = 0;
        loop {
            let timeout =
                due.saturating_duration_since(Instant::now()).clamp(Duration::from_millis(100), REQUEST_TIMEOUT_MAX);
            let started = Instant::now();
            let stopping = || life.is_some_and(Lifecycle::http_stop_requested);
            let outcome = self.client().post(&batch.body, timeout, &stopping);
            self.counters.duration.observe(started.elapsed().as_secs_f64());
            let reason = match verdict(&outcome) {
                Verdict::Cancelled => {
                    debug!("remote write: push abandoned for the final one (stopping)");
                    return;
                }
                Verdict::Delivered => {
                    self.counters.samples_sent.inc_by(batch.samples);
                    self.counters.last_success.set(crate::metrics::unix_now());
                    if self.failing > 0 {
                        info!("remote write recovered after {} failed requests", self.failing);
                        self.failing = 0;
                    }
                    debug!("remote write: {} samples, {} bytes", batch.samples, batch.body.len());
                    return;
                }
                Verdict::Drop(reason) => {
                    self.note_failure(reason, &outcome, "dropped");
                    reason
                }
                Verdict::Retry(reason, retry_after) => {
                    self.note_failure(reason, &outcome, "will retry");
                    let delay = retry_delay(retry, retry_after);
                    retry += 1;
                    if retry_after.is_some() {
                        self.not_before = Instant::now() + delay;
                    }
                    let at = Instant::now() + delay;
                    if at < due && !life.is_some_and(|life| sleep_until(at, life)) {
                        continue;
                    }
                    reason
                }
            };
            self.counters.samples_failed[reason].inc_by(batch.samples);
            return;
        }
    }

    fn client(&self) -> Client<'_> {
        Client {
            endpoint: &self.cfg.endpoint,
            tls: self.cfg.tls.as_ref(),
            auth: &self.cfg.auth,
            user_agent: &self.user_agent,
        }
    }

    fn note_failure(&mut self, reason: FailReason, outcome: &Result<Answer, (TransportError, String)>, next: &str) {
        self.counters.requests_failed[reason].inc();
        let what = match outcome {
            Ok(a) if a.body.is_empty() => format!("HTTP {}", a.status),
            Ok(a) => format!("HTTP {}: {}", a.status, a.body),
            Err((_, why)) => why.clone(),
        };
        if self.failing == 0 {
            warn!("remote write to {} failed ({reason}): {what}; {next}", self.cfg.endpoint);
        } else {
            debug!("remote write failed ({reason}): {what}; {next}");
        }
        self.failing += 1;
    }
}

/// Sleeps until `at`; true (at once) when the HTTP threads are told to stop.
fn sleep_until(at: Instant, life: &Lifecycle) -> bool {
    loop {
        if life.http_stop_requested() {
            return true;
        }
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(STOP_POLL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<u64>) -> Result<Answer, (TransportError, String)> {
        Ok(Answer { status, retry_after: retry_after.map(Duration::from_secs), body: String::new() })
    }

    #[test]
    fn what_each_answer_leads_to() {
        assert_eq!(verdict(&answer(204, None)), Verdict::Delivered);
        assert_eq!(verdict(&answer(200, None)), Verdict::Delivered);
        assert_eq!(verdict(&answer(400, None)), Verdict::Drop(FailReason::ClientError));
        assert_eq!(verdict(&answer(401, Some(3))), Verdict::Drop(FailReason::ClientError));
        assert_eq!(verdict(&answer(302, None)), Verdict::Drop(FailReason::ClientError));
        assert_eq!(
            verdict(&answer(429, Some(3))),
            Verdict::Retry(FailReason::RateLimited, Some(Duration::from_secs(3)))
        );
        assert_eq!(verdict(&answer(503, None)), Verdict::Retry(FailReason::ServerError, None));
        assert_eq!(verdict(&Err((TransportError::Timeout, String::new()))), Verdict::Retry(FailReason::Timeout, None));
        assert_eq!(verdict(&Err((TransportError::Tls, String::new()))), Verdict::Retry(FailReason::Tls, None));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_retry_after_wins_when_longer() {
        let ms = |n| Duration::from_millis(n);
        let delays: Vec<Duration> = (0..7).map(|r| retry_delay(r, None)).collect();
        assert_eq!(delays, vec![ms(500), ms(1000), ms(2000), ms(4000), ms(8000), ms(8000), ms(8000)]);
        assert_eq!(retry_delay(40, None), ms(8000));
        assert_eq!(retry_delay(0, Some(Duration::from_secs(3))), ms(3000));
        assert_eq!(retry_delay(3, Some(Duration::from_secs(1))), ms(4000), "never sooner than the back-off");
        assert_eq!(retry_delay(0, Some(Duration::from_secs(86_400))), Duration::from_secs(300));
    }
}
