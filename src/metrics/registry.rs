//! Every metric family the exporter exposes (docs/metrics.md: the original's names, types, labels, buckets
//! and HELP strings, plus the families added here), registered once at start-up, and [`Metrics`], the handles
//! to them that all threads share. The handles of bounded label values are typed tables ([`PerKey`]), one per
//! label value, indexed by the label's variant.

use prometheus::core::Collector;
use prometheus::{Gauge, IntCounter, IntGauge, Opts, Registry};

use crate::config::Buckets;
use crate::decode::labels::{Category, PRECREATED_MODELS};
use crate::decode::{ErrorReason, Issue, MetricKey, OtherKind};
use crate::metrics::expo::ExpoError;
use crate::metrics::family::{Child, Families, Family, Rich, Scratch};
use crate::metrics::hist::Hist;
use crate::metrics::process::{unix_now, ProcessCollector};
use crate::metrics::Format;
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

label_enum! {
    /// The `reason` label of `dashstream_exporter_http_connections_closed_total`: why the server closed a
    /// connection.
    pub enum CloseReason {
        IdleTimeout => "idle_timeout",
        HeaderTimeout => "header_timeout",
        HeaderTooLarge => "header_too_large",
        Evicted => "evicted",
        /// The relay answered 400: a malformed request head.
        BadRequest => "bad_request",
        /// The relay answered 413: a request that announced a body.
        RequestBody => "request_body",
        /// The relay answered 505: an HTTP version other than 1.0 and 1.1.
        HttpVersion => "http_version",
        /// The client did not read an answer within the idle timeout.
        WriteTimeout => "write_timeout",
    }
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
    // Data families (docs/metrics.md: as in the original).
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
    // Self-monitoring (as in the original).
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
    /// Seconds since the oldest record not yet applied was written, per assigned partition (0 when caught up).
    pub partition_time_lag: Family<Gauge>,
    /// The largest `partition_time_lag` of this consumer.
    pub consumer_time_lag: Gauge,
    /// Wall time when an event was applied minus its producer's stamp.
    pub event_delay: Hist,
    /// Events stamped further in the future than the skew tolerance (not observed in `event_delay`).
    pub event_clock_skew: IntCounter,
    pub assigned_partitions: IntGauge,
    pub sessions_tracked: IntGauge,
    pub sessions_evicted: IntCounter,
    pub ready: IntGauge,
    pub offset_commit_errors: IntCounter,
    pub http_rejected: IntCounter,
    pub http_closed: PerKey<CloseReason, IntCounter>,
    /// Issues reported on QualityMonitor evaluations, by issue.
    pub quality_issues: PerKey<Issue, IntCounter>,
    /// QualityMonitor's low-quality alert events.
    pub quality_alerts: IntCounter,
}

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
    fn fam<T: Child>(&self, f: Family<T>) -> Result<Family<T>, prometheus::Error> {
        self.f.register(f.clone()).map_err(|_| prometheus::Error::AlreadyReg)?;
        Ok(f)
    }
    fn counter_vec(&self, name: &str, help: &str, label: &str) -> Result<Family<IntCounter>, prometheus::Error> {
        self.fam(Family::counter(name, help, label)?)
    }
    fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Hist, prometheus::Error> {
        self.rich_histogram(name, help, buckets, Rich::default())
    }
    fn rich_histogram(&self, name: &str, help: &str, b: &[f64], rich: Rich) -> Result<Hist, prometheus::Error> {
        let (f, h) = Family::unlabelled_histogram(name, help, b, rich)?;
        self.fam(f)?;
        Ok(h)
    }
    fn rich_histogram_vec(
        &self,
        name: &str,
        help: &str,
        label: &str,
        b: &[f64],
        rich: Rich,
    ) -> Result<Family<Hist>, prometheus::Error> {
        self.fam(Family::rich_histogram(name, help, label, b, rich)?)
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
        // Exemplars and native buckets: the latency and quality-score histograms (docs/formats.md).
        let rich = Rich { exemplars: b.exemplars, native: b.native };

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

        let issues = m.counter_vec(
            "dashstream_quality_issues_total",
            "Issues found by DashFlow's QualityMonitor (its LLM judge), one per issue tag set to \"true\" on a \
monitor evaluation; names other than its five count as other",
            "issue",
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
            query_latency: m.rich_histogram(
                "dashstream_query_latency_ms",
                "Query latency in milliseconds",
                &b.latency_ms,
                rich,
            )?,
            retry_count: m.histogram_vec(
                "dashstream_quality_retry_count",
                "Number of retries per quality query",
                "status",
                &b.retry,
            )?,
            accuracy: m.gauge("dashstream_quality_accuracy", "Quality accuracy score (0.0-1.0)")?,
            relevance: m.gauge("dashstream_quality_relevance", "Quality relevance score (0.0-1.0)")?,
            completeness: m.gauge("dashstream_quality_completeness", "Quality completeness score (0.0-1.0)")?,
            score_by_model: m.rich_histogram_vec(
                "dashstream_quality_score_by_model",
                "Quality score distribution by model (0.0-1.0)",
                "model",
                &b.quality_score,
                rich,
            )?,
            queries_by_model: by_model,
            latency_by_model: m.rich_histogram_vec(
                "dashstream_latency_by_model_ms",
                "Query latency by model in milliseconds",
                "model",
                &b.latency_ms,
                rich,
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
            partition_time_lag: m.fam(Family::float_gauge(
                "dashstream_exporter_kafka_partition_time_lag_seconds",
                "Seconds since the oldest record of this partition not yet applied was written (Kafka timestamp); \
0 while caught up",
                "partition",
            )?)?,
            consumer_time_lag: m.gauge(
                "dashstream_exporter_kafka_consumer_time_lag_seconds",
                "The largest dashstream_exporter_kafka_partition_time_lag_seconds of this consumer",
            )?,
            event_delay: m.histogram(
                "dashstream_exporter_event_delay_seconds",
                "Seconds from the producer's stamp on a quality event (header timestamp, else the Kafka record \
timestamp) to the event being applied",
                &b.event_delay_seconds,
            )?,
            event_clock_skew: m.counter(
                "dashstream_exporter_event_clock_skew_total",
                "Quality events stamped more than 1 s in the future (a producer clock ahead of this host's); not \
observed in dashstream_exporter_event_delay_seconds",
            )?,
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
            http_closed: handles(&http_closed),
            quality_issues: handles(&issues),
            quality_alerts: m.counter(
                "dashstream_quality_alerts_total",
                "Low-quality alerts from DashFlow's QualityMonitor (events with alert_type LOW_QUALITY: an \
evaluation's average score below the monitor's threshold)",
            )?,
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

/// Encodes every family in the text exposition format into `buf` (cleared first): the registry's (gathered)
/// and the labelled [`Family`]s (written from their storage), merged in name order.
pub fn encode_text(m: &Metrics, buf: &mut Vec<u8>) -> Result<(), ExpoError> {
    buf.clear();
    m.families.encode_with(&m.registry.gather(), buf)
}

/// Encodes every family in `format` into `buf` (cleared first); `scratch` is the scrape thread's. Text is
/// [`encode_text`]'s bytes exactly.
pub fn encode(m: &Metrics, format: Format, scratch: &mut Scratch, buf: &mut Vec<u8>) -> Result<(), ExpoError> {
    buf.clear();
    let created = m.process_start_time.get();
    m.families.encode_as(&m.registry.gather(), format, created, scratch, buf)
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
pub(crate) mod tests {
    use super::*;
    use crate::config::{Config, RawSettings};

    pub(crate) fn buckets() -> Buckets {
        Config::from_raw(&RawSettings::default()).unwrap().buckets
    }

    pub(crate) fn text(m: &Metrics) -> String {
        let mut buf = Vec::new();
        encode_text(m, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// The value of one exposition line, by exact series name (with labels).
    pub(crate) fn value(m: &Metrics, series: &str) -> Option<f64> {
        text(m)
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).map(|v| v.parse().unwrap()))
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
        for i in Issue::ALL {
            assert!(t.contains(&format!("dashstream_quality_issues_total{{issue=\"{i}\"}} 0")), "{i}");
        }
        assert_eq!(t.matches("dashstream_quality_issues_total{").count(), 6);
        assert!(t.contains("\ndashstream_quality_alerts_total 0\n"));
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
