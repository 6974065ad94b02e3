//! The metric families (reference §2–§3, same names, types, labels, buckets and HELP strings) and the rules
//! that apply a quality event to them.
//!
//! [`Metrics`] holds the registry and every handle; it is shared by all threads (handles are atomic).
//! [`Applier`] is owned by the worker thread: it applies events, caches the handles of lazily created label
//! values and owns the session tracker. Nothing on the apply path looks a label up in a map or allocates for
//! a label value that has been seen before.

pub mod expo;
pub mod family;
pub mod hist;
pub mod sessions;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounter, IntGauge, Opts, Registry};

use crate::config::Buckets;
use crate::decode::event::Event;
use crate::decode::labels::{Category, Model, PRECREATED_MODELS};
use crate::decode::{ErrorReason, MetricKey, OtherKind};
use crate::metrics::family::{Families, Family};
use crate::metrics::hist::Hist;
use crate::metrics::sessions::{Closed, SessionTracker};
use crate::table::{label_enum, Label, PerKey};

label_enum! {
    /// The `status` label of the retry-count and librarian-test families: the event's `passed`.
    pub enum Outcome {
        Passed => "passed",
        Failed => "failed",
    }
}

impl Outcome {
    pub fn of(passed: bool) -> Outcome {
        if passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        }
    }
}

label_enum! {
    /// The original's `error_type` values, pre-created (at 0) so queries that name them keep working.
    pub enum LegacyErrorType {
        Decode => "decode",
        Process => "process",
        Unknown => "unknown",
    }
}

/// Seconds since the Unix epoch, as a float.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Every handle. Cloning is cheap (handles are reference counted).
///
/// The unlabelled families (and `dashflow_build_info`, the process metrics and the web-config counters) are
/// in `registry`; the labelled ones are [`Family`]s in `families`, which a scrape writes without
/// `Registry::gather` (see [`encode_text`]).
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub families: Families,
    // Data families (reference §2.1).
    pub quality_score: Gauge,
    pub queries_total: IntCounter,
    pub queries_passed: IntCounter,
    pub queries_failed: PerKey<Category, IntCounter>,
    pub query_latency: Hist,
    pub retry_count: Family<Hist>,
    pub accuracy: Gauge,
    pub relevance: Gauge,
    pub completeness: Gauge,
    pub score_by_model: Family<Hist>,
    pub queries_by_model: Family<IntCounter>,
    pub latency_by_model: Family<Hist>,
    pub turns_by_session: Hist,
    pub librarian_requests: IntCounter,
    pub librarian_iterations: IntGauge,
    pub librarian_tests: PerKey<Outcome, IntCounter>,
    pub librarian_duration: Hist,
    // Self-monitoring (reference §3).
    pub process_start_time: Gauge,
    pub endpoint_duration: Hist,
    pub messages_failed: PerKey<ErrorReason, IntCounter>,
    pub consumer_errors: IntCounter,
    pub offset_store_errors: IntCounter,
    pub messages_received: IntCounter,
    pub last_event_timestamp: Gauge,
    pub wrong_scope: IntCounter,
    pub missing_header: IntCounter,
    pub gauges_last_update: Gauge,
    pub consumer_lag: IntGauge,
    pub payload_missing: IntCounter,
    // Added by this exporter.
    pub other_type: PerKey<OtherKind, IntCounter>,
    /// `None` for a key that cannot be out of range (`passed`, a bool): it has no series.
    pub invalid_values: PerKey<MetricKey, Option<IntCounter>>,
    pub type_mismatch: PerKey<MetricKey, IntCounter>,
    pub partition_lag: Family<IntGauge>,
    pub assigned_partitions: IntGauge,
    pub sessions_tracked: IntGauge,
    pub sessions_evicted: IntCounter,
    pub ready: IntGauge,
    pub offset_commit_errors: IntCounter,
    pub http_rejected: IntCounter,
    /// Indexed like HTTP_CLOSE_REASONS.
    pub http_closed: [IntCounter; HTTP_CLOSE_REASONS.len()],
}

/// Why the HTTP gate closed an admitted connection itself (label `reason` of
/// `dashstream_exporter_http_connections_closed_total`).
pub const HTTP_CLOSE_REASONS: [&str; 4] = ["idle_timeout", "header_timeout", "header_too_large", "evicted"];

/// Building the registry failed (a bucket list the Prometheus client refuses, or a name clash).
#[derive(Debug, thiserror::Error)]
#[error("cannot create metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

struct Builder<'a> {
    r: &'a Registry,
    f: &'a Families,
}

impl Builder<'_> {
    fn reg<C: Collector + Clone + 'static>(&self, c: C) -> Result<C, prometheus::Error> {
        self.r.register(Box::new(c.clone()))?;
        Ok(c)
    }
    fn gauge(&self, name: &str, help: &str) -> Result<Gauge, prometheus::Error> {
        self.reg(Gauge::new(name, help)?)
    }
    fn int_gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.reg(IntGauge::new(name, help)?)
    }
    fn counter(&self, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
        self.reg(IntCounter::new(name, help)?)
    }
    fn fam<T: crate::metrics::family::Child>(&self, f: Family<T>) -> Result<Family<T>, prometheus::Error> {
        self.f.register(f.clone()).map_err(|_| prometheus::Error::AlreadyReg)?;
        Ok(f)
    }
    fn counter_vec(&self, name: &str, help: &str, label: &str) -> Result<Family<IntCounter>, prometheus::Error> {
        self.fam(Family::counter(name, help, label)?)
    }
    fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Hist, prometheus::Error> {
        let (f, h) = Family::unlabelled_histogram(name, help, buckets)?;
        self.fam(f)?;
        Ok(h)
    }
    fn histogram_vec(&self, name: &str, help: &str, label: &str, b: &[f64]) -> Result<Family<Hist>, prometheus::Error> {
        self.fam(Family::histogram(name, help, label, b)?)
    }
}

/// The child of each label value of `K` (created at 0).
fn handles<K: Label>(v: &Family<IntCounter>) -> PerKey<K, IntCounter> {
    PerKey::from_fn(|k: K| v.get(k.label()))
}

impl Metrics {
    pub fn new(b: &Buckets) -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let families = Families::default();
        let m = Builder { r: &registry, f: &families };

        let build_info = m.reg(prometheus::IntGaugeVec::new(
            Opts::new("dashflow_build_info", "Build and version information (always 1)"),
            &["version", "commit", "build_date", "rust_version"],
        )?)?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("DFE_GIT_COMMIT"),
                env!("DFE_BUILD_DATE"),
                env!("DFE_RUST_VERSION"),
            ])
            .set(1);

        let failed = m.counter_vec(
            "dashstream_quality_monitor_queries_failed_total",
            "Queries that failed quality threshold",
            "category",
        )?;
        let by_model = m.counter_vec("dashstream_queries_by_model_total", "Total queries by model", "model")?;
        for model in PRECREATED_MODELS {
            by_model.get(model.label());
        }
        let tests =
            m.counter_vec("dashstream_librarian_tests_total", "Librarian test results derived from Kafka", "status")?;
        let msgs_failed = m.counter_vec(
            "dashstream_exporter_messages_failed_total",
            "Total message processing failures by error type",
            "error_type",
        )?;
        for t in LegacyErrorType::ALL {
            msgs_failed.get(t.label());
        }
        let other_type = m.counter_vec(
            "dashstream_exporter_messages_other_type_total",
            "DashStream messages that are not Metrics messages, by message type (skipped, not quality events)",
            "message_type",
        )?;
        let invalid = m.counter_vec(
            "dashstream_exporter_invalid_values_total",
            "Quality-event values out of range by field: NaN/Inf floats (not recorded) and negative or over-u32 integers (clamped)",
            "key",
        )?;
        let mismatch = m.counter_vec(
            "dashstream_exporter_metric_type_mismatch_total",
            "Quality-event metric values of the wrong protobuf type by key (ignored, as if absent)",
            "key",
        )?;

        let http_closed = m.counter_vec(
            "dashstream_exporter_http_connections_closed_total",
            "HTTP connections the server closed: idle too long, request header too slow or too large, \
or evicted to admit a new connection at METRICS_MAX_CONNECTIONS",
            "reason",
        )?;

        let start = m.gauge(
            "dashstream_exporter_process_start_time_seconds",
            "Unix timestamp of when the process started (for detecting restarts)",
        )?;
        start.set(unix_now());

        let metrics = Metrics {
            quality_score: m.gauge("dashstream_quality_monitor_quality_score", "Current quality score (0.0-1.0)")?,
            queries_total: m.counter("dashstream_quality_monitor_queries_total", "Total queries processed")?,
            queries_passed: m
                .counter("dashstream_quality_monitor_queries_passed_total", "Queries that passed quality threshold")?,
            queries_failed: handles(&failed),
            query_latency: m.histogram("dashstream_query_latency_ms", "Query latency in milliseconds", &b.latency_ms)?,
            retry_count: m.histogram_vec(
                "dashstream_quality_retry_count",
                "Number of retries per quality query",
                "status",
                &b.retry,
            )?,
            accuracy: m.gauge("dashstream_quality_accuracy", "Quality accuracy score (0.0-1.0)")?,
            relevance: m.gauge("dashstream_quality_relevance", "Quality relevance score (0.0-1.0)")?,
            completeness: m.gauge("dashstream_quality_completeness", "Quality completeness score (0.0-1.0)")?,
            score_by_model: m.histogram_vec(
                "dashstream_quality_score_by_model",
                "Quality score distribution by model (0.0-1.0)",
                "model",
                &b.quality_score,
            )?,
            queries_by_model: by_model,
            latency_by_model: m.histogram_vec(
                "dashstream_latency_by_model_ms",
                "Query latency by model in milliseconds",
                "model",
                &b.latency_ms,
            )?,
            turns_by_session: m.histogram(
                "dashstream_turns_by_session",
                "Number of turns per session",
                &b.session_turns,
            )?,
            librarian_requests: m.counter(
                "dashstream_librarian_requests_total",
                "Total librarian requests derived from Kafka (includes legacy code_assistant and document_search events)",
            )?,
            librarian_iterations: m.int_gauge(
                "dashstream_librarian_iterations",
                "Last observed librarian iterations (turn_number) from most recent request",
            )?,
            librarian_tests: handles(&tests),
            librarian_duration: m.histogram(
                "dashstream_librarian_request_duration_seconds",
                "Librarian request duration in seconds derived from Kafka",
                &b.duration_seconds,
            )?,
            process_start_time: start,
            endpoint_duration: m.histogram(
                "dashstream_exporter_metrics_endpoint_duration_seconds",
                "Time spent encoding /metrics response (detects high-cardinality slowdowns)",
                &b.endpoint_seconds,
            )?,
            messages_failed: handles(&msgs_failed),
            consumer_errors: m.counter(
                "dashstream_exporter_kafka_consumer_errors_total",
                "Total Kafka consumer errors (connectivity, protocol, etc.)",
            )?,
            offset_store_errors: m.counter(
                "dashstream_exporter_offset_store_errors_total",
                "Total offset storage failures (may indicate duplicate message processing)",
            )?,
            messages_received: m.counter(
                "dashstream_exporter_messages_received_total",
                "Total messages received from Kafka (for throughput calculation)",
            )?,
            last_event_timestamp: m.gauge(
                "dashstream_exporter_last_event_timestamp_seconds",
                "Unix timestamp of last processed event (for detecting data staleness)",
            )?,
            wrong_scope: m.counter(
                "dashstream_exporter_messages_wrong_scope_total",
                "Total messages with non-quality scope (indicates misconfiguration if high)",
            )?,
            missing_header: m.counter(
                "dashstream_exporter_messages_missing_header_total",
                "Total quality messages missing header field (protocol errors)",
            )?,
            gauges_last_update: m.gauge(
                "dashstream_exporter_gauges_last_update_timestamp_seconds",
                "Unix timestamp of last gauge metric update (for staleness detection)",
            )?,
            consumer_lag: m.int_gauge(
                "dashstream_exporter_kafka_consumer_lag",
                "Sum of consumer lag across all assigned partitions (high watermark - position)",
            )?,
            payload_missing: m.counter(
                "dashstream_exporter_kafka_payload_missing_total",
                "Total Kafka messages received with payload=None (data loss / corruption signal)",
            )?,
            other_type: handles(&other_type),
            invalid_values: PerKey::from_fn(|k: MetricKey| k.has_range().then(|| invalid.get(k.label()))),
            type_mismatch: handles(&mismatch),
            partition_lag: m.fam(Family::gauge(
                "dashstream_exporter_kafka_partition_lag",
                "Consumer lag of one assigned partition (high watermark - next offset to apply)",
                "partition",
            )?)?,
            assigned_partitions: m
                .int_gauge("dashstream_exporter_kafka_assigned_partitions", "Partitions currently assigned to this consumer")?,
            sessions_tracked: m.int_gauge(
                "dashstream_exporter_sessions_tracked",
                "Sessions currently tracked for dashstream_turns_by_session",
            )?,
            sessions_evicted: m.counter(
                "dashstream_exporter_sessions_evicted_total",
                "Sessions closed before their timeout because PROMETHEUS_SESSION_MAX_TRACKED was reached",
            )?,
            ready: m.int_gauge(
                "dashstream_exporter_ready",
                "1 while the consumer is connected to the Kafka cluster (as /-/ready reports), else 0",
            )?,
            offset_commit_errors: m.counter(
                "dashstream_exporter_offset_commit_errors_total",
                "Failed offset commits (stored offsets are committed again on the next attempt)",
            )?,
            http_rejected: m.counter(
                "dashstream_exporter_http_connections_rejected_total",
                "HTTP connections refused because METRICS_MAX_CONNECTIONS were open and none could be evicted (answered 503, or closed unanswered when TLS is on)",
            )?,
            http_closed: HTTP_CLOSE_REASONS.map(|reason| http_closed.get(reason)),
            registry,
            families,
        };
        metrics.registry.register(Box::new(ProcessCollector::new()))?;
        Ok(metrics)
    }

    /// Counts a record that was not a quality event.
    pub fn count_other(&self, kind: OtherKind) {
        self.other_type[kind].inc();
    }
}

/// Handles of one model label value, created on first use.
struct ModelHandles {
    score: Hist,
    queries: IntCounter,
    latency: Hist,
}

/// Applies events; owned by the worker thread.
pub struct Applier {
    m: Metrics,
    models: PerKey<Model, Option<ModelHandles>>,
    retry: PerKey<Outcome, Option<Hist>>,
    sessions: SessionTracker,
    closed: Closed,
}

impl Applier {
    pub fn new(m: Metrics, sessions: SessionTracker) -> Self {
        Applier { m, models: PerKey::default(), retry: PerKey::default(), sessions, closed: Closed::default() }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.m
    }

    /// Applies one quality event (the original's rules with the fixes of README, Differences from the
    /// original exporter). `wall` is Unix seconds, `now` the monotonic time used for session idleness.
    pub fn apply(&mut self, ev: &Event, wall: f64, now: Instant) {
        let m = &self.m;
        let an = &ev.anomalies;
        let outcome = Outcome::of(ev.passed);
        m.last_event_timestamp.set(wall);
        m.queries_total.inc();
        match outcome {
            Outcome::Passed => m.queries_passed.inc(),
            Outcome::Failed => m.queries_failed[ev.category].inc(),
        }
        if an.missing_header {
            m.missing_header.inc();
        }
        for k in an.out_of_range.iter() {
            if let Some(c) = &m.invalid_values[k] {
                c.inc();
            }
        }
        for k in an.type_mismatch.iter() {
            m.type_mismatch[k].inc();
        }

        // Gauges: only values that were sent and are finite (absent or NaN never overwrite).
        let usable = |k: MetricKey, x: f64| an.present.contains(k) && x.is_finite();
        let score_ok = usable(MetricKey::QualityScore, ev.quality_score);
        let mut gauge_updated = false;
        for (k, x, g) in [
            (MetricKey::QualityScore, ev.quality_score, &m.quality_score),
            (MetricKey::Accuracy, ev.accuracy, &m.accuracy),
            (MetricKey::Relevance, ev.relevance, &m.relevance),
            (MetricKey::Completeness, ev.completeness, &m.completeness),
        ] {
            if usable(k, x) {
                g.set(x);
                gauge_updated = true;
            }
        }
        if gauge_updated {
            m.gauges_last_update.set(wall);
        }

        let latency_present = an.present.contains(MetricKey::LatencyMs);
        let latency = ev.latency_ms as f64;
        if latency_present {
            m.query_latency.observe(latency);
        }
        if an.present.contains(MetricKey::RetryCount) {
            let retry = &m.retry_count;
            self.retry[outcome].get_or_insert_with(|| retry.get(outcome.label())).observe(f64::from(ev.retry_count));
        }

        if let Some(model) = ev.model {
            let h = self.models[model].get_or_insert_with(|| {
                let l = model.label();
                ModelHandles {
                    score: m.score_by_model.get(l),
                    queries: m.queries_by_model.get(l),
                    latency: m.latency_by_model.get(l),
                }
            });
            h.queries.inc();
            if score_ok {
                h.score.observe(ev.quality_score);
            }
            if latency_present {
                h.latency.observe(latency);
            }
        }

        if ev.turn_number > 0 {
            match ev.session {
                None => m.turns_by_session.observe(f64::from(ev.turn_number)),
                Some(key) => {
                    self.sessions.touch(key, ev.turn_number, now, &mut self.closed);
                    flush_closed(m, &mut self.closed, self.sessions.len());
                }
            }
        }

        if ev.librarian {
            m.librarian_requests.inc();
            if ev.turn_number > 0 {
                m.librarian_iterations.set(i64::from(ev.turn_number));
            }
            m.librarian_tests[outcome].inc();
            if latency_present {
                m.librarian_duration.observe(latency / 1000.0);
            }
        }
    }

    /// Closes idle sessions (called from a timer, with or without traffic).
    pub fn expire_sessions(&mut self, now: Instant) {
        self.sessions.expire(now, &mut self.closed);
        flush_closed(&self.m, &mut self.closed, self.sessions.len());
    }
}

/// Observes the turn counts of closed sessions and updates the tracker's own gauges.
fn flush_closed(m: &Metrics, closed: &mut Closed, tracked: usize) {
    for t in closed.turns.drain(..) {
        m.turns_by_session.observe(f64::from(t));
    }
    if closed.evicted > 0 {
        m.sessions_evicted.inc_by(closed.evicted);
        closed.evicted = 0;
    }
    m.sessions_tracked.set(tracked as i64);
}

/// Standard `process_*` metrics from /proc (the original exported none).
struct ProcessCollector {
    descs: Vec<Desc>,
    cpu: prometheus::Counter,
    rss: Gauge,
    vsize: Gauge,
    fds: Gauge,
    max_fds: Gauge,
    threads: Gauge,
    start: Gauge,
}

impl ProcessCollector {
    fn new() -> Self {
        let cpu =
            prometheus::Counter::new("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
                .expect("valid metric");
        let g = |n: &str, h: &str| Gauge::new(n, h).expect("valid metric");
        let rss = g("process_resident_memory_bytes", "Resident memory size in bytes.");
        let vsize = g("process_virtual_memory_bytes", "Virtual memory size in bytes.");
        let fds = g("process_open_fds", "Number of open file descriptors.");
        let max_fds = g("process_max_fds", "Maximum number of open file descriptors.");
        let threads = g("process_threads", "Number of OS threads in the process.");
        // Set once from the clock (the /proc/stat boot time is hidden under systemd's ProcSubset=pid).
        let start = g("process_start_time_seconds", "Start time of the process since unix epoch in seconds.");
        start.set(unix_now());
        let mut descs = Vec::new();
        for c in [&rss, &vsize, &fds, &max_fds, &threads, &start] {
            descs.extend(c.desc().into_iter().cloned());
        }
        descs.extend(cpu.desc().into_iter().cloned());
        ProcessCollector { descs, cpu, rss, vsize, fds, max_fds, threads, start }
    }
}

/// Fields of /proc/self/stat after the command name: (utime, stime, num_threads, vsize, rss pages).
fn proc_stat() -> Option<(f64, f64, f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): index = field number - 3.
    let num = |field: usize| f.get(field - 3).and_then(|s| s.parse::<f64>().ok());
    Some((num(14)?, num(15)?, num(20)?, num(23)?, num(24)?))
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
        if let Some((utime, stime, threads, vsize, rss)) = proc_stat() {
            let cpu = (utime + stime) / ticks;
            let prev = self.cpu.get();
            if cpu > prev {
                self.cpu.inc_by(cpu - prev);
            }
            self.threads.set(threads);
            self.vsize.set(vsize);
            self.rss.set(rss * page);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.fds.set(dir.count() as f64);
        }
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            self.max_fds.set(lim.rlim_cur as f64);
        }
        let mut out = Vec::new();
        out.extend(self.cpu.collect());
        for g in [&self.rss, &self.vsize, &self.fds, &self.max_fds, &self.threads, &self.start] {
            out.extend(g.collect());
        }
        out
    }
}

/// Encodes every family in the text exposition format into `buf` (cleared first): the registry's (gathered)
/// and the labelled [`Family`]s (written from their storage), merged in name order.
pub fn encode_text(m: &Metrics, buf: &mut Vec<u8>) -> Result<(), crate::metrics::expo::ExpoError> {
    buf.clear();
    m.families.encode_with(&m.registry.gather(), buf)
}

impl Metrics {
    /// Every family as the prometheus crate's protobuf, in name order: what `Registry::gather` would return if
    /// the labelled families were `MetricVec`s in the registry. The slow path, for comparing [`encode_text`]
    /// with the crate's `TextEncoder` (tests and the encode benchmark).
    pub fn gather_all(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.families.collect_with(self.registry.gather())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RawSettings};
    use crate::decode::event::Normalizer;
    use crate::decode::{Decoded, Decoder, DEFAULT_MAX_PAYLOAD};
    use crate::sim::encode::{Framing, QualityRecord};
    use std::time::Duration;

    fn buckets() -> Buckets {
        Config::from_raw(&RawSettings::default()).unwrap().buckets
    }

    fn applier() -> Applier {
        Applier::new(Metrics::new(&buckets()).unwrap(), SessionTracker::new(Duration::from_secs(300), 100))
    }

    fn text(m: &Metrics) -> String {
        let mut buf = Vec::new();
        encode_text(m, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// The value of one exposition line, by exact series name (with labels).
    fn value(m: &Metrics, series: &str) -> Option<f64> {
        text(m)
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).map(|v| v.parse().unwrap()))
    }

    fn event(rec: &QualityRecord) -> Event {
        let bytes = rec.encode(Framing::Framed);
        match Decoder::new(DEFAULT_MAX_PAYLOAD).decode(&bytes).unwrap() {
            Decoded::Quality(v) => Normalizer::default().event(&v),
            other => panic!("{other:?}"),
        }
    }

    fn apply(a: &mut Applier, rec: &QualityRecord) {
        a.apply(&event(rec), 1_800_000_000.0, Instant::now());
    }

    fn rec(score: f64, passed: bool, category: &str) -> QualityRecord {
        QualityRecord {
            thread_id: Some("t".into()),
            quality_score: Some(score),
            passed: Some(passed),
            category: Some(category.into()),
            accuracy: Some(0.92),
            relevance: Some(0.88),
            completeness: Some(0.95),
            ..QualityRecord::default()
        }
    }

    /// Everything but the start-time value and process_* lines must equal the original's initial answer.
    #[test]
    fn initial_exposition_matches_the_original() {
        let m = Metrics::new(&buckets()).unwrap();
        let ours = text(&m);
        let original = include_str!("../../tests/data/original-initial-metrics.txt");
        let ours_set: std::collections::BTreeSet<&str> = ours.lines().collect();
        for line in original.lines() {
            if line.starts_with("dashstream_exporter_process_start_time_seconds ")
                || line.starts_with("dashstream_exporter_kafka_consumer_errors_total ")
                || line.starts_with("dashflow_build_info{")
            {
                continue;
            }
            assert!(ours_set.contains(line), "missing line of the original: {line}");
        }
        assert!(ours
            .contains(&format!("dashflow_build_info{{build_date=\"unknown\",commit=\"{}\"", env!("DFE_GIT_COMMIT"))));
        for absent in
            ["dashstream_quality_retry_count", "dashstream_quality_score_by_model", "dashstream_latency_by_model_ms"]
        {
            assert!(!ours.contains(&format!("# TYPE {absent} ")), "{absent} must not exist before its first event");
        }
        assert!(!ours.contains("queries_total_total"));
    }

    #[test]
    fn passed_event_updates_counters_and_gauges() {
        let mut a = applier();
        apply(&mut a, &rec(0.904, true, "Simple"));
        let m = a.metrics();
        assert_eq!(m.queries_total.get(), 1);
        assert_eq!(m.queries_passed.get(), 1);
        assert_eq!(m.queries_failed.values().map(|c| c.get()).sum::<u64>(), 0);
        assert_eq!(m.quality_score.get(), 0.904, "stored unscaled");
        assert_eq!((m.accuracy.get(), m.relevance.get(), m.completeness.get()), (0.92, 0.88, 0.95));
        assert_eq!(m.last_event_timestamp.get(), 1_800_000_000.0);
        assert_eq!(m.gauges_last_update.get(), 1_800_000_000.0);
    }

    #[test]
    fn failed_events_count_by_normalized_category() {
        let mut a = applier();
        apply(&mut a, &rec(0.3, false, "medium"));
        apply(&mut a, &rec(0.9, true, "Complex"));
        apply(&mut a, &rec(0.2, false, "COMPLEX"));
        apply(&mut a, &rec(0.1, false, "weird"));
        let m = a.metrics();
        assert_eq!(value(m, "dashstream_quality_monitor_queries_failed_total{category=\"Medium\"}"), Some(1.0));
        assert_eq!(value(m, "dashstream_quality_monitor_queries_failed_total{category=\"Complex\"}"), Some(1.0));
        assert_eq!(value(m, "dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}"), Some(1.0));
        assert_eq!(m.queries_total.get(), 4);
        assert_eq!(m.queries_passed.get(), 1);
        assert_eq!(m.quality_score.get(), 0.1, "gauges hold the last event's values");
    }

    #[test]
    fn non_finite_scores_never_reach_gauges_or_sums() {
        let mut a = applier();
        apply(&mut a, &QualityRecord { model: Some("gpt-4".into()), ..rec(0.5, true, "Simple") });
        apply(&mut a, &QualityRecord { model: Some("gpt-4".into()), ..rec(f64::NAN, true, "Simple") });
        apply(&mut a, &QualityRecord { accuracy: Some(f64::NEG_INFINITY), ..rec(f64::INFINITY, true, "Simple") });
        let m = a.metrics();
        assert_eq!(m.quality_score.get(), 0.5);
        assert_eq!(m.accuracy.get(), 0.92);
        assert_eq!(m.queries_total.get(), 3, "the event itself still counts");
        assert_eq!(value(m, "dashstream_exporter_invalid_values_total{key=\"quality_score\"}"), Some(2.0));
        assert_eq!(value(m, "dashstream_exporter_invalid_values_total{key=\"accuracy\"}"), Some(1.0));
        assert_eq!(value(m, "dashstream_quality_score_by_model_sum{model=\"gpt-4\"}"), Some(0.5));
        assert_eq!(value(m, "dashstream_quality_score_by_model_count{model=\"gpt-4\"}"), Some(1.0));
        assert_eq!(value(m, "dashstream_queries_by_model_total{model=\"gpt-4\"}"), Some(2.0));
    }

    #[test]
    fn absent_values_are_not_recorded_as_zero() {
        let mut a = applier();
        apply(&mut a, &QualityRecord { latency_ms: Some(1500), retry_count: Some(2), ..rec(0.7, true, "Edge") });
        apply(&mut a, &QualityRecord { thread_id: Some("t".into()), passed: Some(true), ..QualityRecord::default() });
        let m = a.metrics();
        assert_eq!(m.quality_score.get(), 0.7);
        assert_eq!(m.accuracy.get(), 0.92);
        assert_eq!(m.query_latency.get_sample_count(), 1);
        assert_eq!(m.query_latency.get_sample_sum(), 1500.0);
        assert_eq!(value(m, "dashstream_quality_retry_count_count{status=\"passed\"}"), Some(1.0));
        assert_eq!(m.queries_total.get(), 2);
    }

    #[test]
    fn per_model_series_use_normalized_labels() {
        let mut a = applier();
        for model in ["gpt-4", "GPT-4", "gpt-4-0613", "gpt-4-0314", " gpt4 "] {
            apply(
                &mut a,
                &QualityRecord { model: Some(model.into()), latency_ms: Some(200), ..rec(0.8, true, "Simple") },
            );
        }
        apply(
            &mut a,
            &QualityRecord {
                model: Some("claude-3-5-sonnet-20241022".into()),
                latency_ms: Some(50),
                ..rec(0.8, true, "Simple")
            },
        );
        apply(&mut a, &QualityRecord { model: Some("gemini-1.5-pro".into()), ..rec(0.6, false, "Simple") });
        apply(&mut a, &QualityRecord { model: Some(String::new()), ..rec(0.6, false, "Simple") });
        let m = a.metrics();
        assert_eq!(value(m, "dashstream_queries_by_model_total{model=\"gpt-4\"}"), Some(5.0));
        assert_eq!(value(m, "dashstream_latency_by_model_ms_count{model=\"claude-3.5-sonnet\"}"), Some(1.0));
        assert_eq!(value(m, "dashstream_quality_score_by_model_count{model=\"gemini-1.5-pro\"}"), Some(1.0));
        assert_eq!(
            value(m, "dashstream_quality_score_by_model_bucket{model=\"gemini-1.5-pro\",le=\"0.6\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(m, "dashstream_quality_score_by_model_bucket{model=\"gemini-1.5-pro\",le=\"0.5\"}"),
            Some(0.0)
        );
        assert!(!text(m).contains("model=\"other\""), "empty model records no per-model series");
    }

    #[test]
    fn librarian_routing() {
        let mut a = applier();
        let lib = |app: &str, turn: i64, passed: bool| QualityRecord {
            application_type: Some(app.into()),
            turn_number: Some(turn),
            latency_ms: Some(2500),
            ..rec(0.9, passed, "Simple")
        };
        apply(&mut a, &lib("librarian", 3, true));
        apply(&mut a, &lib("code_assistant", 7, false));
        apply(&mut a, &lib("document_search", 0, true));
        apply(&mut a, &lib("document_search_streaming", 0, true));
        apply(&mut a, &lib("rag", 9, true));
        let m = a.metrics();
        assert_eq!(m.librarian_requests.get(), 4);
        assert_eq!(m.librarian_iterations.get(), 7, "last observed, turn 0 does not overwrite");
        assert_eq!((m.librarian_tests[Outcome::Passed].get(), m.librarian_tests[Outcome::Failed].get()), (3, 1));
        assert_eq!(m.librarian_duration.get_sample_count(), 4);
        assert_eq!(m.librarian_duration.get_sample_sum(), 10.0);
        assert_eq!(m.queries_total.get(), 5);
    }

    #[test]
    fn sessions_are_observed_when_they_close() {
        let mut a = applier();
        let start = Instant::now();
        for (sid, turn) in [("a", 1), ("a", 2), ("a", 5), ("b", 3)] {
            let e = event(&QualityRecord {
                thread_id: Some(sid.into()),
                turn_number: Some(turn),
                ..QualityRecord::default()
            });
            a.apply(&e, 0.0, start);
        }
        // No header → session id "" → observed at once.
        let e = event(&QualityRecord { turn_number: Some(4), ..QualityRecord::default() });
        a.apply(&e, 0.0, start);
        assert_eq!(a.metrics().turns_by_session.get_sample_count(), 1);
        assert_eq!(a.metrics().sessions_tracked.get(), 2);
        a.expire_sessions(start + Duration::from_secs(301));
        let h = &a.metrics().turns_by_session;
        assert_eq!(h.get_sample_count(), 3);
        assert_eq!(h.get_sample_sum(), 4.0 + 5.0 + 3.0);
        assert_eq!(a.metrics().sessions_tracked.get(), 0);
        assert_eq!(a.metrics().missing_header.get(), 1);
    }

    #[test]
    fn session_cap_is_counted() {
        let mut a = Applier::new(Metrics::new(&buckets()).unwrap(), SessionTracker::new(Duration::from_secs(300), 2));
        for sid in ["a", "b", "c", "d"] {
            let e =
                event(&QualityRecord { thread_id: Some(sid.into()), turn_number: Some(1), ..QualityRecord::default() });
            a.apply(&e, 0.0, Instant::now());
        }
        assert_eq!(a.metrics().sessions_evicted.get(), 2);
        assert_eq!(a.metrics().turns_by_session.get_sample_count(), 2);
        assert_eq!(a.metrics().sessions_tracked.get(), 2);
    }

    #[test]
    fn type_mismatches_are_counted_by_key() {
        let mut a = applier();
        let mut r = rec(0.5, true, "Simple");
        r.latency_ms = None;
        let mut e = event(&r);
        e.anomalies.type_mismatch = [MetricKey::LatencyMs].into_iter().collect();
        a.apply(&e, 0.0, Instant::now());
        assert_eq!(value(a.metrics(), "dashstream_exporter_metric_type_mismatch_total{key=\"latency_ms\"}"), Some(1.0));
    }

    #[test]
    fn failure_reasons_and_other_types_are_precreated() {
        let m = Metrics::new(&buckets()).unwrap();
        let t = text(&m);
        for r in
            ErrorReason::ALL.map(ErrorReason::label).into_iter().chain(LegacyErrorType::ALL.map(LegacyErrorType::label))
        {
            assert!(t.contains(&format!("dashstream_exporter_messages_failed_total{{error_type=\"{r}\"}} 0")), "{r}");
        }
        for k in OtherKind::ALL {
            assert!(t.contains(&format!("dashstream_exporter_messages_other_type_total{{message_type=\"{k}\"}} 0")));
        }
        assert!(t.contains("# TYPE process_resident_memory_bytes gauge"));
        assert!(value(&m, "process_resident_memory_bytes").unwrap() > 1_000_000.0);
        assert!(value(&m, "dashstream_exporter_process_start_time_seconds").unwrap() > 1_735_689_600.0);
    }

    #[test]
    fn custom_buckets_are_used() {
        let mut b = buckets();
        b.latency_ms = vec![1.0, 2.0];
        let m = Metrics::new(&b).unwrap();
        let t = text(&m);
        assert!(t.contains("dashstream_query_latency_ms_bucket{le=\"2\"} 0"));
        assert!(!t.contains("dashstream_query_latency_ms_bucket{le=\"10\"}"));
    }
}
