//! The keys the exporter reads from a quality `Metrics` message: metric keys (the `metrics` map) and tag keys
//! (the `tags` map) with their alias precedence, and the issue tags of DashFlow's QualityMonitor, as typed
//! tables (docs/wire-format.md).
//!
//! Two producers write quality events: `DashStreamCallback` with the keys the original exporter reads
//! (`accuracy` … `quality_score`, `passed`), and QualityMonitor (dashflow-streaming) with its own spellings
//! (`quality_accuracy` … `quality_average`, `quality_issues_count`) and one tag per issue its judge found,
//! mapped to `"true"`. Both spellings are read; the original's wins when an event carries both.
//!
//! A metric key's label is also the `key` label value of the invalid-value and type-mismatch families.

use crate::table::label_enum;

label_enum! {
    /// A key of the `metrics` map that the exporter reads.
    pub enum MetricKey {
        QualityScore => "quality_score",
        Passed => "passed",
        LatencyMs => "latency_ms",
        RetryCount => "retry_count",
        TurnNumber => "turn_number",
        Accuracy => "accuracy",
        Relevance => "relevance",
        Completeness => "completeness",
        QualityAccuracy => "quality_accuracy",
        QualityRelevance => "quality_relevance",
        QualityCompleteness => "quality_completeness",
        QualityAverage => "quality_average",
        QualityIssuesCount => "quality_issues_count",
    }
}

impl MetricKey {
    /// Whether decoding can find this key's value out of range (a NaN/±inf float, a negative or over-u32
    /// integer); a bool cannot be.
    pub const fn has_range(self) -> bool {
        match self {
            MetricKey::Passed => false,
            MetricKey::QualityScore
            | MetricKey::LatencyMs
            | MetricKey::RetryCount
            | MetricKey::TurnNumber
            | MetricKey::Accuracy
            | MetricKey::Relevance
            | MetricKey::Completeness
            | MetricKey::QualityAccuracy
            | MetricKey::QualityRelevance
            | MetricKey::QualityCompleteness
            | MetricKey::QualityAverage
            | MetricKey::QualityIssuesCount => true,
        }
    }

    /// QualityMonitor's spelling of an original key, whose value stands in for it when the original key is
    /// not present (`quality_average` for `quality_score`, `quality_accuracy` for `accuracy`, …).
    pub const fn monitor_spelling(self) -> Option<MetricKey> {
        match self {
            MetricKey::QualityScore => Some(MetricKey::QualityAverage),
            MetricKey::Accuracy => Some(MetricKey::QualityAccuracy),
            MetricKey::Relevance => Some(MetricKey::QualityRelevance),
            MetricKey::Completeness => Some(MetricKey::QualityCompleteness),
            _ => None,
        }
    }
}

label_enum! {
    /// The `issue` label of `dashstream_quality_issues_total`: the issue names QualityMonitor's judge reports
    /// (`QualityIssue::as_str` in dashflow-streaming), each sent as a tag mapped to `"true"`; any other tag
    /// set to `"true"` on a monitor evaluation is `Other`, so the label set stays bounded.
    pub enum Issue {
        ToolResultsIgnored => "tool_results_ignored",
        IncompleteCoverage => "incomplete_coverage",
        LowAccuracy => "low_accuracy",
        LowRelevance => "low_relevance",
        LowCompleteness => "low_completeness",
        Other => "other",
    }
}

/// The value of an issue tag that reports the issue (QualityMonitor writes exactly this).
pub const ISSUE_TAG_TRUE: &str = "true";

/// Most distinct `other` issue tags counted on one evaluation (they are tracked in a fixed array, so decoding
/// stays allocation-free; QualityMonitor itself sends none).
pub const MAX_OTHER_ISSUES: usize = 8;

/// A set of [`Issue`]s (a bit per issue).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IssueSet(u8);

const _: () = assert!(Issue::COUNT <= u8::BITS as usize, "an IssueSet holds one bit per Issue");

impl IssueSet {
    pub fn insert(&mut self, issue: Issue) {
        self.0 |= 1 << issue as u8;
    }
    pub fn contains(self, issue: Issue) -> bool {
        self.0 & (1 << issue as u8) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The issues in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Issue> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            let next = Issue::ALL.get(bits.trailing_zeros() as usize).copied()?;
            bits &= bits - 1;
            Some(next)
        })
    }
}

impl FromIterator<Issue> for IssueSet {
    fn from_iter<I: IntoIterator<Item = Issue>>(issues: I) -> Self {
        let mut set = IssueSet::default();
        issues.into_iter().for_each(|i| set.insert(i));
        set
    }
}

label_enum! {
    /// A key of the `tags` map that the exporter reads.
    pub enum TagKey {
        QueryId => "query_id",
        Model => "model",
        Category => "category",
        QueryCategory => "query_category",
        Complexity => "complexity",
        ApplicationType => "application_type",
        AppType => "app_type",
    }
}

/// The tags of each tag-valued field of an event, highest precedence first (the original picked whichever
/// alias its hash map yielded last). Every [`TagKey`] is in exactly one list (a test checks).
pub const QUERY_ID_TAGS: [TagKey; 1] = [TagKey::QueryId];
pub const MODEL_TAGS: [TagKey; 1] = [TagKey::Model];
pub const CATEGORY_TAGS: [TagKey; 3] = [TagKey::Category, TagKey::QueryCategory, TagKey::Complexity];
pub const APPLICATION_TYPE_TAGS: [TagKey; 2] = [TagKey::ApplicationType, TagKey::AppType];

/// A set of [`MetricKey`]s (a bit per key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeySet(u16);

const _: () = assert!(MetricKey::COUNT <= u16::BITS as usize, "a KeySet holds one bit per MetricKey");

impl KeySet {
    pub fn insert(&mut self, key: MetricKey) {
        self.0 |= 1 << key as u16;
    }
    pub fn contains(self, key: MetricKey) -> bool {
        self.0 & (1 << key as u16) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The keys in the set, in declaration order (nothing to do for an empty set, the common case).
    pub fn iter(self) -> impl Iterator<Item = MetricKey> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            let next = MetricKey::ALL.get(bits.trailing_zeros() as usize).copied()?;
            bits &= bits - 1;
            Some(next)
        })
    }
    /// The labels of the keys in the set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.iter().map(MetricKey::label)
    }
}

impl FromIterator<MetricKey> for KeySet {
    fn from_iter<I: IntoIterator<Item = MetricKey>>(keys: I) -> Self {
        let mut set = KeySet::default();
        keys.into_iter().for_each(|k| set.insert(k));
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lookups_match_the_key_tables() {
        for k in MetricKey::ALL {
            assert_eq!(MetricKey::from_label(k.label()), Some(k), "{k}");
        }
        for k in TagKey::ALL {
            assert_eq!(TagKey::from_label(k.label()), Some(k), "{k}");
        }
        for k in ["", "quality", "Quality_score", "passed ", "app", "model\0"] {
            assert_eq!((MetricKey::from_label(k), TagKey::from_label(k)), (None, None), "{k:?}");
        }
    }

    #[test]
    fn every_tag_key_feeds_exactly_one_field() {
        let lists: [&[TagKey]; 4] = [&QUERY_ID_TAGS, &MODEL_TAGS, &CATEGORY_TAGS, &APPLICATION_TYPE_TAGS];
        for k in TagKey::ALL {
            assert_eq!(lists.iter().flat_map(|l| l.iter()).filter(|t| **t == k).count(), 1, "{k}");
        }
    }

    #[test]
    fn key_sets() {
        let s: KeySet = [MetricKey::Completeness, MetricKey::QualityScore].into_iter().collect();
        assert!(s.contains(MetricKey::QualityScore) && !s.contains(MetricKey::Passed));
        assert_eq!(s.names().collect::<Vec<_>>(), ["quality_score", "completeness"], "declaration order");
        assert!(KeySet::default().is_empty() && !s.is_empty());
        let all: KeySet = MetricKey::ALL.into_iter().collect();
        assert_eq!(all.iter().collect::<Vec<_>>(), MetricKey::ALL, "one bit per key, the last included");
    }

    #[test]
    fn monitor_spellings_stand_in_for_the_four_scores_only() {
        let pairs: Vec<_> =
            MetricKey::ALL.into_iter().filter_map(|k| Some((k.label(), k.monitor_spelling()?.label()))).collect();
        assert_eq!(
            pairs,
            [
                ("quality_score", "quality_average"),
                ("accuracy", "quality_accuracy"),
                ("relevance", "quality_relevance"),
                ("completeness", "quality_completeness"),
            ]
        );
    }

    #[test]
    fn issue_sets_and_names() {
        assert_eq!(
            Issue::ALL.map(Issue::label),
            [
                "tool_results_ignored",
                "incomplete_coverage",
                "low_accuracy",
                "low_relevance",
                "low_completeness",
                "other"
            ]
        );
        let s: IssueSet = [Issue::Other, Issue::LowAccuracy].into_iter().collect();
        assert_eq!(s.iter().collect::<Vec<_>>(), [Issue::LowAccuracy, Issue::Other]);
        assert!(s.contains(Issue::Other) && !s.contains(Issue::LowRelevance));
        assert!(IssueSet::default().is_empty() && !s.is_empty());
        for k in TagKey::ALL {
            assert_eq!(Issue::from_label(k.label()), None, "a read tag is never an issue: {k}");
        }
    }
}
