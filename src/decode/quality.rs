//! The quality-event mapping: what a `Metrics` message with scope `quality` means (docs/wire-format.md).
//!
//! The values are read by key and type from the metrics map, the text fields from the tags (with fixed alias
//! precedence) and the session id from the header. Absent values keep their defaults and are not marked
//! present; integers clamp or saturate instead of wrapping; whatever is off (a missing header, a value of the
//! wrong type or out of range) is reported in [`Anomalies`] for counting.
//!
//! QualityMonitor's spellings of the scores (`quality_average` …) fill a score whose original key is not
//! present; its issue count and issue tags are read into the view too, and judged by the metrics layer.

use crate::decode::keys::{
    Issue, IssueSet, KeySet, MetricKey, TagKey, APPLICATION_TYPE_TAGS, CATEGORY_TAGS, ISSUE_TAG_TRUE, MAX_OTHER_ISSUES,
    MODEL_TAGS, QUERY_ID_TAGS,
};
use crate::proto::{metric_value::Value, Metrics};
use crate::table::PerKey;

/// The scope of a quality event's `Metrics` message (matched exactly).
pub const QUALITY_SCOPE: &str = "quality";

/// A quality event as read from a record, borrowed from it so that decoding allocates nothing (the poll
/// thread normalizes it into the `Copy` event it sends the worker).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QualityView<'a> {
    pub query_id: &'a str,
    pub quality_score: f64,
    pub passed: bool,
    pub category: &'a str,
    pub latency_ms: u64,
    pub retry_count: u32,
    pub model: &'a str,
    pub session_id: &'a str,
    /// `header.message_id` (empty without a header): an exemplar label.
    pub message_id: &'a [u8],
    pub turn_number: u32,
    pub accuracy: f64,
    pub relevance: f64,
    pub completeness: f64,
    pub application_type: &'a str,
    /// `quality_issues_count`: how many issues QualityMonitor's judge found (0 when absent).
    pub issues_count: u32,
    /// The named issue tags set to `"true"` (never [`Issue::Other`]: those are counted in `other_issues`).
    pub issues: IssueSet,
    /// How many distinct other tags were set to `"true"` (at most [`MAX_OTHER_ISSUES`]).
    pub other_issues: u8,
    /// When the producer stamped the message (`header.timestamp_us`, microseconds since the epoch); 0 when
    /// there is no header or the producer left it unset.
    pub timestamp_us: i64,
    pub anomalies: Anomalies,
}

/// What decoding a quality event noticed besides its values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Keys present with the type the exporter reads (absent keys are not recorded: the original recorded 0
    /// for them, which is indistinguishable from a real 0).
    pub present: KeySet,
    /// The `Metrics` message had no header (the event is still processed, with session id "").
    pub missing_header: bool,
    /// Keys present with a value of another type than the one the exporter reads (ignored, default kept).
    pub type_mismatch: KeySet,
    /// Keys whose value was out of range: a negative or > u32::MAX integer (clamped), or a NaN/±inf float
    /// (kept in the event; the metrics layer refuses it).
    pub out_of_range: KeySet,
}

/// A metric value as far as the exporter cares: its oneof variant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Val {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A string or bytes value, or none at all: never what the exporter reads.
    Other,
}

/// What a `Metrics` message holds for the exporter, filled by a reader; later occurrences overwrite earlier
/// ones, as protobuf merging and map insertion do.
#[derive(Default)]
pub(super) struct Fields<'a> {
    pub(super) header: bool,
    pub(super) thread_id: &'a str,
    pub(super) message_id: &'a [u8],
    pub(super) timestamp_us: i64,
    pub(super) scope: &'a str,
    pub(super) metrics: PerKey<MetricKey, Option<Val>>,
    pub(super) tags: PerKey<TagKey, Option<&'a str>>,
    /// Whether each named issue tag is `"true"` (the `Other` slot is unused).
    pub(super) issues: PerKey<Issue, Option<bool>>,
    pub(super) other_issues: OtherIssues<'a>,
}

/// The names of the other tags that are `"true"`, as far as [`MAX_OTHER_ISSUES`] of them; a later entry of
/// the same name replaces an earlier one (map semantics), so a name set back to anything else drops out.
#[derive(Default)]
pub(super) struct OtherIssues<'a> {
    names: [&'a str; MAX_OTHER_ISSUES],
    len: usize,
}

impl<'a> OtherIssues<'a> {
    fn set(&mut self, name: &'a str, on: bool) {
        let at = self.names[..self.len].iter().position(|n| *n == name);
        match (at, on) {
            (None, true) if self.len < MAX_OTHER_ISSUES => {
                self.names[self.len] = name;
                self.len += 1;
            }
            (Some(i), false) => {
                self.names.swap(i, self.len - 1);
                self.len -= 1;
            }
            _ => {}
        }
    }
}

impl<'a> Fields<'a> {
    /// The fields of a message decoded into the generated types (the reference path).
    pub(super) fn from_prost(m: &'a Metrics) -> Self {
        let mut f = Fields {
            header: m.header.is_some(),
            thread_id: m.header.as_ref().map_or("", |h| h.thread_id.as_str()),
            message_id: m.header.as_ref().map_or(&[][..], |h| h.message_id.as_slice()),
            timestamp_us: m.header.as_ref().map_or(0, |h| h.timestamp_us),
            scope: &m.scope,
            ..Default::default()
        };
        for (k, v) in &m.metrics {
            if let Some(key) = MetricKey::from_label(k) {
                f.metrics[key] = Some(match v.value {
                    Some(Value::IntValue(x)) => Val::Int(x),
                    Some(Value::FloatValue(x)) => Val::Float(x),
                    Some(Value::BoolValue(x)) => Val::Bool(x),
                    _ => Val::Other,
                });
            }
        }
        for (k, v) in &m.tags {
            f.tag(k, v);
        }
        f
    }

    /// Reads one `tags` entry: a tag the exporter reads, a named issue, or possibly another issue.
    #[inline]
    pub(super) fn tag(&mut self, key: &'a str, value: &'a str) {
        if let Some(k) = TagKey::from_label(key) {
            self.tags[k] = Some(value);
        } else {
            self.other_tag(key, value);
        }
    }

    /// Reads one `tags` entry whose key is known not to be a [`TagKey`]: a named issue, or possibly another.
    #[inline]
    pub(super) fn other_tag(&mut self, key: &'a str, value: &'a str) {
        match Issue::from_label(key) {
            Some(issue) if issue != Issue::Other => self.issues[issue] = Some(value == ISSUE_TAG_TRUE),
            _ => self.other_issues.set(key, value == ISSUE_TAG_TRUE),
        }
    }

    /// The event, or `Err(scope)` when the scope is not [`QUALITY_SCOPE`] (by reference: the fields are a
    /// few hundred bytes, not worth moving).
    pub(super) fn view(&self) -> Result<QualityView<'a>, &'a str> {
        if self.scope != QUALITY_SCOPE {
            return Err(self.scope);
        }
        let tag = |aliases: &[TagKey]| aliases.iter().find_map(|k| self.tags[*k]);
        let mut v = QualityView {
            query_id: tag(&QUERY_ID_TAGS).unwrap_or(""),
            category: tag(&CATEGORY_TAGS).unwrap_or("Unknown"),
            model: tag(&MODEL_TAGS).unwrap_or(""),
            session_id: self.thread_id,
            message_id: self.message_id,
            timestamp_us: self.timestamp_us,
            application_type: tag(&APPLICATION_TYPE_TAGS).unwrap_or("unknown"),
            issues: self.issues.iter().filter(|(_, on)| **on == Some(true)).map(|(i, _)| i).collect(),
            other_issues: self.other_issues.len as u8,
            anomalies: Anomalies { missing_header: !self.header, ..Anomalies::default() },
            ..QualityView::default()
        };
        for (k, val) in self.metrics.iter() {
            if let Some(val) = val {
                read_value(&mut v, k, *val);
            }
        }
        Ok(v)
    }
}

/// Sets the field of key `k` from a value of the expected type, and notes what was off. Keys are read in
/// declaration order, so an original score key is known present or not when its monitor spelling comes.
fn read_value(ev: &mut QualityView<'_>, k: MetricKey, value: Val) {
    let an = &mut ev.anomalies;
    // `write`: whether the value goes into the field (a monitor spelling only stands in for an absent key).
    let float = |an: &mut Anomalies, slot: &mut f64, write: bool| match value {
        Val::Float(f) => {
            an.present.insert(k);
            if !f.is_finite() {
                an.out_of_range.insert(k);
            }
            if write {
                *slot = f;
            }
        }
        _ => an.type_mismatch.insert(k),
    };
    let absent = |an: &Anomalies, original: MetricKey| !an.present.contains(original);
    let int = |an: &mut Anomalies| match value {
        Val::Int(i) => {
            an.present.insert(k);
            if i < 0 {
                an.out_of_range.insert(k);
            }
            Some(i.max(0) as u64)
        }
        _ => {
            an.type_mismatch.insert(k);
            None
        }
    };
    let u32_of = |an: &mut Anomalies, v: u64| {
        if v > u64::from(u32::MAX) {
            an.out_of_range.insert(k);
        }
        v.min(u64::from(u32::MAX)) as u32
    };
    match k {
        MetricKey::QualityScore => float(an, &mut ev.quality_score, true),
        MetricKey::Accuracy => float(an, &mut ev.accuracy, true),
        MetricKey::Relevance => float(an, &mut ev.relevance, true),
        MetricKey::Completeness => float(an, &mut ev.completeness, true),
        MetricKey::QualityAverage => {
            let write = absent(an, MetricKey::QualityScore);
            float(an, &mut ev.quality_score, write)
        }
        MetricKey::QualityAccuracy => {
            let write = absent(an, MetricKey::Accuracy);
            float(an, &mut ev.accuracy, write)
        }
        MetricKey::QualityRelevance => {
            let write = absent(an, MetricKey::Relevance);
            float(an, &mut ev.relevance, write)
        }
        MetricKey::QualityCompleteness => {
            let write = absent(an, MetricKey::Completeness);
            float(an, &mut ev.completeness, write)
        }
        MetricKey::QualityIssuesCount => {
            if let Some(v) = int(an) {
                ev.issues_count = u32_of(an, v);
            }
        }
        MetricKey::Passed => match value {
            Val::Bool(b) => {
                an.present.insert(k);
                ev.passed = b;
            }
            _ => an.type_mismatch.insert(k),
        },
        MetricKey::LatencyMs => {
            if let Some(v) = int(an) {
                ev.latency_ms = v;
            }
        }
        MetricKey::RetryCount => {
            if let Some(v) = int(an) {
                ev.retry_count = u32_of(an, v);
            }
        }
        MetricKey::TurnNumber => {
            if let Some(v) = int(an) {
                ev.turn_number = u32_of(an, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Header, MetricValue};
    use crate::sim::encode::QualityRecord;

    /// The mapping over the generated types.
    fn view(m: &Metrics) -> QualityView<'_> {
        Fields::from_prost(m).view().expect("quality scope")
    }

    #[test]
    fn alias_precedence_is_fixed() {
        let mut m = QualityRecord::sample(1).message_metrics();
        m.tags.clear();
        for (k, v) in [
            ("complexity", "Edge"),
            ("query_category", "Simple"),
            ("category", "Medium"),
            ("app_type", "rag"),
            ("application_type", "librarian"),
        ] {
            m.tags.insert(k.into(), v.into());
        }
        let ev = view(&m);
        assert_eq!((ev.category, ev.application_type), ("Medium", "librarian"));
        m.tags.remove("category");
        m.tags.remove("application_type");
        let ev = view(&m);
        assert_eq!((ev.category, ev.application_type), ("Simple", "rag"));
        m.tags.remove("query_category");
        assert_eq!(view(&m).category, "Edge");
    }

    #[test]
    fn missing_fields_take_defaults_and_header_absence_is_reported() {
        let m = Metrics { scope: "quality".into(), ..Metrics::default() };
        let ev = view(&m);
        assert_eq!(
            QualityView { anomalies: Anomalies::default(), ..ev },
            QualityView { category: "Unknown", application_type: "unknown", ..QualityView::default() }
        );
        assert!(ev.anomalies.missing_header);
        let m = Metrics { header: Some(Header::default()), scope: "quality".into(), ..Metrics::default() };
        assert!(!view(&m).anomalies.missing_header);
    }

    #[test]
    fn wrong_types_are_ignored_and_reported() {
        let mut m = Metrics { scope: "quality".into(), ..Metrics::default() };
        let put = |m: &mut Metrics, k: &str, v: Value| {
            m.metrics.insert(k.into(), MetricValue { value: Some(v), ..MetricValue::default() });
        };
        put(&mut m, "quality_score", Value::IntValue(1));
        put(&mut m, "passed", Value::IntValue(1));
        put(&mut m, "latency_ms", Value::FloatValue(12.5));
        put(&mut m, "retry_count", Value::StringValue("2".into()));
        put(&mut m, "accuracy", Value::BoolValue(true));
        m.metrics.insert("relevance".into(), MetricValue::default()); // no value at all
        put(&mut m, "quality_avg", Value::FloatValue(0.3)); // not read: not a mismatch
        put(&mut m, "quality_issues_count", Value::FloatValue(2.0));
        let ev = view(&m);
        let an = ev.anomalies;
        assert_eq!(ev.quality_score, 0.0);
        assert!(!ev.passed);
        assert_eq!(ev.latency_ms, 0);
        assert_eq!(
            an.type_mismatch.names().collect::<Vec<_>>(),
            vec![
                "quality_score",
                "passed",
                "latency_ms",
                "retry_count",
                "accuracy",
                "relevance",
                "quality_issues_count"
            ]
        );
        assert!(an.out_of_range.is_empty());
    }

    #[test]
    fn monitor_spellings_fill_absent_scores_and_the_originals_win() {
        let monitor = QualityRecord::monitor("t-9", 0.5, 0.75, 0.625, &["low_accuracy", "low_completeness"]);
        let m = monitor.message_metrics();
        let ev = view(&m);
        assert_eq!((ev.accuracy, ev.relevance, ev.completeness, ev.quality_score), (0.5, 0.75, 0.625, 0.625));
        assert_eq!((ev.issues_count, ev.other_issues), (2, 0));
        assert_eq!(ev.issues.iter().collect::<Vec<_>>(), [Issue::LowAccuracy, Issue::LowCompleteness]);
        assert_eq!(
            ev.anomalies.present.names().collect::<Vec<_>>(),
            [
                "quality_accuracy",
                "quality_relevance",
                "quality_completeness",
                "quality_average",
                "quality_issues_count"
            ]
        );
        assert!(!ev.passed);
        // Both spellings: the original's key wins, even when its value is not finite.
        let both = QualityRecord { accuracy: Some(0.25), quality_score: Some(f64::NAN), ..monitor.clone() };
        let m = both.message_metrics();
        let ev = view(&m);
        assert_eq!((ev.accuracy, ev.relevance), (0.25, 0.75));
        assert!(ev.quality_score.is_nan());
        // An original of the wrong type is as if absent: the monitor's spelling stands in.
        let mut m = monitor.message_metrics();
        m.metrics.insert(
            "accuracy".into(),
            MetricValue { value: Some(Value::StringValue("x".into())), ..MetricValue::default() },
        );
        let ev = view(&m);
        assert_eq!(ev.accuracy, 0.5);
        assert_eq!(ev.anomalies.type_mismatch.names().collect::<Vec<_>>(), ["accuracy"]);
    }

    #[test]
    fn issue_tags_named_other_and_not_true() {
        let mut m = QualityRecord::monitor("t", 0.9, 0.9, 0.9, &[]).message_metrics();
        for (k, v) in [
            ("tool_results_ignored", "true"),
            ("low_relevance", "false"),
            ("incomplete_coverage", "TRUE"),
            ("hallucination", "true"),
            ("other", "true"),
            ("tenant_id", "acme"),
            ("model", "true"), // a read tag, never an issue
        ] {
            m.tags.insert(k.into(), v.into());
        }
        let ev = view(&m);
        assert_eq!(ev.issues.iter().collect::<Vec<_>>(), [Issue::ToolResultsIgnored]);
        assert_eq!(ev.other_issues, 2, "hallucination and other");
        assert_eq!(ev.model, "true");
        for i in 0..20 {
            m.tags.insert(format!("made-up-{i:02}"), "true".into());
        }
        assert_eq!(view(&m).other_issues as usize, MAX_OTHER_ISSUES, "bounded");
    }

    #[test]
    fn a_later_entry_of_an_other_issue_replaces_the_earlier() {
        let mut f = Fields { scope: QUALITY_SCOPE, ..Fields::default() };
        f.tag("x", "true");
        f.tag("y", "true");
        f.tag("x", "true");
        f.tag("x", "no");
        f.tag("z", "true");
        let v = f.view().unwrap();
        assert_eq!(v.other_issues, 2, "y and z");
    }

    #[test]
    fn integers_clamp_and_saturate_instead_of_wrapping() {
        let mut m = Metrics { scope: "quality".into(), ..Metrics::default() };
        let put = |m: &mut Metrics, k: &str, v: Value| {
            m.metrics.insert(k.into(), MetricValue { value: Some(v), ..MetricValue::default() });
        };
        put(&mut m, "latency_ms", Value::IntValue(-5));
        put(&mut m, "retry_count", Value::IntValue(i64::from(u32::MAX) + 2));
        put(&mut m, "turn_number", Value::IntValue(7));
        put(&mut m, "quality_score", Value::FloatValue(f64::NAN));
        put(&mut m, "accuracy", Value::FloatValue(f64::INFINITY));
        let ev = view(&m);
        assert_eq!((ev.latency_ms, ev.retry_count, ev.turn_number), (0, u32::MAX, 7));
        assert!(ev.quality_score.is_nan());
        assert_eq!(
            ev.anomalies.out_of_range.names().collect::<Vec<_>>(),
            vec!["quality_score", "latency_ms", "retry_count", "accuracy"]
        );
    }
}
