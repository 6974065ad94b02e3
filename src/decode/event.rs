//! The compact event that crosses the channel from the poll thread to the worker.
//!
//! Normalization (model and category label, librarian routing, the session id's hash) happens on the poll
//! thread, so the worker only does arithmetic on cached metric handles, and the event is a small `Copy`
//! value: no allocation per record anywhere on the path.

use std::collections::HashMap;

use crate::decode::id_key::{id_key, PreHashed};
use crate::decode::ids::Ids;
use crate::decode::keys::IssueSet;
use crate::decode::labels::{self, Category, Model};
use crate::decode::quality::{Anomalies, QualityView};

/// A quality event, normalized: unlike the [`QualityView`] it borrows nothing and its labels are resolved,
/// so it can cross the channel and the worker only applies it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub quality_score: f64,
    pub accuracy: f64,
    pub relevance: f64,
    pub completeness: f64,
    pub latency_ms: u64,
    pub retry_count: u32,
    pub turn_number: u32,
    pub passed: bool,
    /// Routed to the librarian metrics.
    pub librarian: bool,
    /// `None` for an empty model tag.
    pub model: Option<Model>,
    pub category: Category,
    /// QualityMonitor's `quality_issues_count` (0 when absent).
    pub issues_count: u32,
    /// The named issue tags set to `"true"`.
    pub issues: IssueSet,
    /// Other tags set to `"true"`, counted.
    pub other_issues: u8,
    /// 64-bit hash of a non-empty session id.
    pub session: Option<u64>,
    /// When the event was produced, in microseconds since the epoch: the producer's header stamp, or else
    /// the Kafka record's timestamp (set by the poll thread); 0 when neither is known.
    pub produced_us: i64,
    pub anomalies: Anomalies,
    /// The header's thread and message ids, for exemplars (empty when exemplars are off).
    pub ids: Ids,
}

/// Most raw model names remembered; beyond it names are normalized each time (bounded memory whatever
/// producers send).
pub const MODEL_CACHE_CAP: usize = 4096;

/// Normalizes views into [`Event`]s, remembering the label of each raw model name it has seen.
#[derive(Default)]
pub struct Normalizer {
    models: HashMap<u64, (Box<str>, Model), PreHashed>,
    /// Leave [`Event::ids`] empty (PROMETHEUS_EXEMPLARS=false).
    skip_ids: bool,
}

impl Normalizer {
    /// A normalizer that copies the exemplar ids into events, or not.
    pub fn with_exemplars(exemplars: bool) -> Self {
        Normalizer { skip_ids: !exemplars, ..Normalizer::default() }
    }

    fn model(&mut self, raw: &str) -> Model {
        let h = id_key(raw.as_bytes());
        if let Some((name, model)) = self.models.get(&h) {
            if **name == *raw {
                return *model;
            }
        }
        let model = labels::normalize_model(raw);
        if self.models.len() < MODEL_CACHE_CAP {
            self.models.entry(h).or_insert_with(|| (raw.into(), model));
        }
        model
    }

    /// Never inlined, so the normalize stage keeps its own name in profiles.
    #[inline(never)]
    pub fn event(&mut self, v: &QualityView<'_>) -> Event {
        Event {
            quality_score: v.quality_score,
            accuracy: v.accuracy,
            relevance: v.relevance,
            completeness: v.completeness,
            latency_ms: v.latency_ms,
            retry_count: v.retry_count,
            turn_number: v.turn_number,
            passed: v.passed,
            librarian: labels::is_librarian(v.application_type),
            model: (!v.model.is_empty()).then(|| self.model(v.model)),
            category: labels::normalize_category(v.category),
            issues_count: v.issues_count,
            issues: v.issues,
            other_issues: v.other_issues,
            session: (!v.session_id.is_empty()).then(|| id_key(v.session_id.as_bytes())),
            produced_us: v.timestamp_us,
            anomalies: v.anomalies,
            ids: if self.skip_ids { Ids::default() } else { Ids::new(v.session_id, v.message_id) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoded, Decoder};
    use crate::sim::encode::{Framing, QualityRecord};

    #[test]
    fn normalizes_and_caches() {
        let mut n = Normalizer::default();
        let mut d = Decoder::new(1 << 20);
        let bytes = QualityRecord::sample(1).encode(Framing::Framed);
        let Ok(Decoded::Quality(v)) = d.decode(&bytes) else { panic!() };
        let e = n.event(&v);
        assert_eq!(e.model.unwrap().label(), labels::model_label(v.model));
        assert_eq!(e.category.label(), labels::category_label(v.category));
        assert_eq!(e.librarian, labels::is_librarian(v.application_type));
        assert_eq!(e.session, Some(id_key(v.session_id.as_bytes())));
        assert_eq!(n.event(&v), e, "cached path gives the same event");
        assert_eq!(n.models.len(), 1);
        for i in 0..(MODEL_CACHE_CAP + 100) {
            n.model(&format!("model-{i}"));
        }
        assert_eq!(n.models.len(), MODEL_CACHE_CAP, "the cache is bounded");
        assert_eq!(n.model("GPT-4o-2024").label(), "gpt-4o");
    }
}
