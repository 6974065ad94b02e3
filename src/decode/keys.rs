//! The keys the exporter reads from a quality `Metrics` message: metric keys (the `metrics` map) and tag keys
//! (the `tags` map) with their alias precedence, as typed tables (docs/wire-format.md).
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
            | MetricKey::Completeness => true,
        }
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
pub struct KeySet(u8);

const _: () = assert!(MetricKey::COUNT <= u8::BITS as usize, "a KeySet holds one bit per MetricKey");

impl KeySet {
    pub fn insert(&mut self, key: MetricKey) {
        self.0 |= 1 << key as u8;
    }
    pub fn contains(self, key: MetricKey) -> bool {
        self.0 & (1 << key as u8) != 0
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
    }
}
