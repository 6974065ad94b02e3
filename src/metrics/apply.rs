//! The rules that apply a quality event to the metrics (docs/metrics.md, What one quality event does), run by the
//! worker thread.
//!
//! [`Applier`] owns the session tracker and caches the handles of lazily created label values in typed tables,
//! so nothing on the apply path looks a label up in a map or allocates for a label value seen before.
//!
//! An event is passed or failed by its `passed` key when it carries one (DashStreamCallback and the
//! original's producers); one without it that carries QualityMonitor's `quality_average` or
//! `quality_issues_count` is a monitor evaluation, passed when the monitor reports no issue (or, with
//! PROMETHEUS_QUALITY_PASS_THRESHOLD, when its score reaches the threshold), and its issue tags are counted.

use std::time::Instant;

use prometheus::IntCounter;

use crate::decode::event::Event;
use crate::decode::labels::Model;
use crate::decode::{Issue, MetricKey};
use crate::metrics::hist::Hist;
use crate::metrics::registry::{Metrics, Outcome};
use crate::metrics::sessions::{Closed, SessionTracker};
use crate::table::PerKey;

/// How far in the future an event's stamp may lie (clocks of producer and exporter a little apart) and still
/// count as produced now, with a delay of 0.
pub const CLOCK_SKEW_TOLERANCE_SECS: f64 = 1.0;

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
    /// PROMETHEUS_QUALITY_PASS_THRESHOLD: judge monitor evaluations by their score instead of their issues.
    pass_threshold: Option<f64>,
}

impl Applier {
    pub fn new(m: Metrics, sessions: SessionTracker) -> Self {
        Applier {
            m,
            models: PerKey::default(),
            retry: PerKey::default(),
            sessions,
            closed: Closed::default(),
            pass_threshold: None,
        }
    }

    /// Judges monitor evaluations by `score >= threshold` (None: by the issues the monitor reports).
    pub fn with_pass_threshold(mut self, threshold: Option<f64>) -> Self {
        self.pass_threshold = threshold;
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.m
    }

    /// Applies one quality event (the original's rules with the fixes of docs/differences.md). `wall` is Unix seconds, `now` the monotonic time used for session idleness.
    #[inline(never)] // the apply stage keeps its own name in profiles
    pub fn apply(&mut self, ev: &Event, wall: f64, now: Instant) {
        let an = &ev.anomalies;
        // A score key's value is in the event when it or its monitor spelling was sent with its type.
        let given =
            |k: MetricKey| an.present.contains(k) || k.monitor_spelling().is_some_and(|alt| an.present.contains(alt));
        let usable = |k: MetricKey, x: f64| given(k) && x.is_finite();
        let monitor = is_monitor_evaluation(ev);
        let outcome = Outcome::of(match (monitor, self.pass_threshold) {
            (false, _) => ev.passed,
            (true, Some(t)) => usable(MetricKey::QualityScore, ev.quality_score) && ev.quality_score >= t,
            (true, None) => reports_no_issue(ev),
        });
        let m = &self.m;
        m.last_event_timestamp.set(wall);
        self.observe_delay(ev.produced_us, wall);
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

        if monitor {
            for issue in ev.issues.iter() {
                m.quality_issues[issue].inc();
            }
            if ev.other_issues > 0 {
                m.quality_issues[Issue::Other].inc_by(u64::from(ev.other_issues));
            }
        }

        // Gauges: only values that were sent and are finite (absent or NaN never overwrite).
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
        // Exemplars: the record's ids, stamped when applied.
        let (ids, wall_ms) = (&ev.ids, (wall * 1000.0) as i64);
        if latency_present {
            m.query_latency.observe_with(latency, ids, wall_ms);
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
                h.score.observe_with(ev.quality_score, ids, wall_ms);
            }
            if latency_present {
                h.latency.observe_with(latency, ids, wall_ms);
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

    /// The event's delay: `wall` minus its stamp, observed in seconds; a stamp beyond the skew tolerance in
    /// the future is counted instead, and an event without a stamp is neither.
    fn observe_delay(&self, produced_us: i64, wall: f64) {
        if produced_us == 0 {
            return;
        }
        let delay = wall - produced_us as f64 / 1e6;
        if delay < -CLOCK_SKEW_TOLERANCE_SECS {
            self.m.event_clock_skew.inc();
        } else {
            self.m.event_delay.observe(delay.max(0.0));
        }
    }

    /// Closes idle sessions (called from a timer, with or without traffic).
    pub fn expire_sessions(&mut self, now: Instant) {
        self.sessions.expire(now, &mut self.closed);
        flush_closed(&self.m, &mut self.closed, self.sessions.len());
    }
}

/// An event without `passed` (of any type) that carries QualityMonitor's `quality_average` or
/// `quality_issues_count` (of any type).
fn is_monitor_evaluation(ev: &Event) -> bool {
    let an = &ev.anomalies;
    let carried = |k: MetricKey| an.present.contains(k) || an.type_mismatch.contains(k);
    !carried(MetricKey::Passed) && (carried(MetricKey::QualityAverage) || carried(MetricKey::QualityIssuesCount))
}

/// The monitor's own verdict: an issue count sent, valid and 0, and no issue tag set. (QualityMonitor always
/// sends the count; an evaluation without one reports nothing it could pass by.)
fn reports_no_issue(ev: &Event) -> bool {
    let an = &ev.anomalies;
    let count_ok = an.present.contains(MetricKey::QualityIssuesCount)
        && !an.type_mismatch.contains(MetricKey::QualityIssuesCount)
        && !an.out_of_range.contains(MetricKey::QualityIssuesCount);
    count_ok && ev.issues_count == 0 && ev.issues.is_empty() && ev.other_issues == 0
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::decode::event::Normalizer;
    use crate::decode::{Decoded, Decoder, DEFAULT_MAX_PAYLOAD};
    use crate::metrics::registry::tests::{buckets, text, value};
    use crate::sim::encode::{Framing, QualityRecord};

    fn applier() -> Applier {
        Applier::new(Metrics::new(&buckets()).unwrap(), SessionTracker::new(Duration::from_secs(300), 100))
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

    #[test]
    fn delay_from_the_producers_stamp_and_skew_beyond_the_tolerance() {
        let wall = 1_800_000_000.0;
        let mut a = applier();
        let stamped = |secs_before: f64| {
            let stamp = ((wall - secs_before) * 1e6) as i64;
            event(&QualityRecord { timestamp_us: stamp, ..rec(0.9, true, "Simple") })
        };
        assert_eq!(stamped(2.5).produced_us, 1_799_999_997_500_000, "read from header.timestamp_us");
        a.apply(&stamped(2.5), wall, Instant::now());
        a.apply(&stamped(0.02), wall, Instant::now());
        a.apply(&stamped(-0.5), wall, Instant::now()); // 0.5 s ahead: within the tolerance, a delay of 0
        a.apply(&stamped(-5.0), wall, Instant::now()); // 5 s ahead: a clock ahead of ours
        a.apply(&event(&rec(0.9, true, "Simple")), wall, Instant::now()); // no stamp: neither
        let m = a.metrics();
        assert_eq!(m.event_clock_skew.get(), 1);
        assert_eq!(value(m, "dashstream_exporter_event_delay_seconds_count"), Some(3.0));
        assert_eq!(value(m, "dashstream_exporter_event_delay_seconds_bucket{le=\"0.01\"}"), Some(1.0));
        assert_eq!(value(m, "dashstream_exporter_event_delay_seconds_bucket{le=\"0.05\"}"), Some(2.0));
        assert_eq!(value(m, "dashstream_exporter_event_delay_seconds_bucket{le=\"1\"}"), Some(2.0));
        assert_eq!(value(m, "dashstream_exporter_event_delay_seconds_bucket{le=\"5\"}"), Some(3.0));
        let sum = value(m, "dashstream_exporter_event_delay_seconds_sum").unwrap();
        assert!((sum - 2.52).abs() < 1e-3, "{sum}");
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

    fn monitor(acc: f64, rel: f64, comp: f64, issues: &[&str]) -> QualityRecord {
        QualityRecord::monitor("t-m", acc, rel, comp, issues)
    }

    fn issues(m: &Metrics) -> Vec<(&'static str, u64)> {
        Issue::ALL.into_iter().map(|i| (i.label(), m.quality_issues[i].get())).collect()
    }

    #[test]
    fn monitor_evaluations_set_the_gauges_and_are_judged_by_their_issues() {
        let mut a = applier();
        apply(&mut a, &monitor(0.5, 0.75, 0.625, &["low_accuracy", "low_completeness", "incomplete_coverage"]));
        let m = a.metrics();
        assert_eq!((m.queries_total.get(), m.queries_passed.get()), (1, 0));
        assert_eq!(value(m, "dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}"), Some(1.0));
        assert_eq!((m.accuracy.get(), m.relevance.get(), m.completeness.get()), (0.5, 0.75, 0.625));
        assert_eq!(m.quality_score.get(), 0.625);
        apply(&mut a, &QualityRecord { model: Some("gpt-4o".into()), ..monitor(0.875, 1.0, 0.75, &[]) });
        let m = a.metrics();
        assert_eq!((m.queries_total.get(), m.queries_passed.get()), (2, 1));
        assert_eq!(m.quality_score.get(), 0.875);
        assert_eq!(value(m, "dashstream_quality_score_by_model_sum{model=\"gpt-4o\"}"), Some(0.875));
        assert_eq!(
            issues(m),
            [
                ("tool_results_ignored", 0),
                ("incomplete_coverage", 1),
                ("low_accuracy", 1),
                ("low_relevance", 0),
                ("low_completeness", 1),
                ("other", 0)
            ]
        );
        // An issue tag without a count, or a count without a tag, is an issue all the same.
        let mut only_tag = monitor(0.9, 0.9, 0.9, &["made_up", "tool_results_ignored"]);
        only_tag.quality_issues_count = None;
        apply(&mut a, &only_tag);
        apply(&mut a, &QualityRecord { quality_issues_count: Some(1), ..monitor(0.9, 0.9, 0.9, &[]) });
        // An average without the issue count reports no verdict to pass by.
        apply(&mut a, &QualityRecord { quality_issues_count: None, ..monitor(0.9, 0.9, 0.9, &[]) });
        let m = a.metrics();
        assert_eq!((m.queries_total.get(), m.queries_passed.get()), (5, 1));
        assert_eq!(m.quality_issues[Issue::Other].get(), 1);
        assert_eq!(m.quality_issues[Issue::ToolResultsIgnored].get(), 1);
    }

    #[test]
    fn the_pass_threshold_judges_monitor_evaluations_by_score() {
        let mut a = applier().with_pass_threshold(Some(0.75));
        apply(&mut a, &monitor(0.75, 0.75, 0.75, &["low_relevance"])); // average 0.75: passes
        apply(&mut a, &monitor(0.5, 0.5, 0.5, &[])); // 0.5: fails without an issue
        apply(&mut a, &QualityRecord { quality_average: Some(f64::NAN), ..monitor(1.0, 1.0, 1.0, &[]) });
        apply(&mut a, &rec(0.1, true, "Simple")); // `passed` still judges the original's events
        let m = a.metrics();
        assert_eq!((m.queries_total.get(), m.queries_passed.get()), (4, 2));
        assert_eq!(value(m, "dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}"), Some(2.0));
        assert_eq!(m.quality_issues[Issue::LowRelevance].get(), 1, "issues are counted all the same");
        assert_eq!(value(m, "dashstream_exporter_invalid_values_total{key=\"quality_average\"}"), Some(1.0));
    }

    #[test]
    fn passed_wins_over_the_monitor_and_the_originals_keys_are_unchanged() {
        let mut a = applier();
        let both =
            QualityRecord { passed: Some(true), quality_score: Some(0.3), ..monitor(0.5, 0.5, 0.5, &["low_accuracy"]) };
        apply(&mut a, &both);
        let m = a.metrics();
        assert_eq!(m.queries_passed.get(), 1, "judged by passed");
        assert_eq!(m.quality_score.get(), 0.3, "the original's key wins");
        assert_eq!(issues(m).iter().map(|(_, n)| n).sum::<u64>(), 0, "not a monitor evaluation");
        // Neither `passed` nor a monitor key: failed, as today.
        apply(&mut a, &QualityRecord { quality_score: Some(0.9), ..QualityRecord::default() });
        assert_eq!((a.metrics().queries_total.get(), a.metrics().queries_passed.get()), (2, 1));
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
}
