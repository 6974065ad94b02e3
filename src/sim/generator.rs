//! Synthetic, reproducible quality traffic (seeded): realistic model names, categories, application types,
//! sessions with growing turn numbers, skewed latency and retry distributions.
//!
//! Each event is drawn into a [`QualityRecord`] that the generator rewrites in place, so the fast path
//! ([`Generator::next_encoded`], used by `produce`) allocates nothing per event once its buffers have grown.

use std::fmt::Write as _;

use crate::sim::encode::{frame, low_quality_alert, Framing, QualityRecord, RecordWriter};

/// A small, fast, seedable PRNG (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(f64::MIN_POSITIVE);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Raw model names producers send: every normalization rule is hit, plus names that fall to `other`.
pub const MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini",
    "gpt-4-turbo",
    "gpt-4",
    "GPT-4-0613",
    "gpt-3.5-turbo-0125",
    "o1-preview",
    "o1-mini",
    "o3-mini",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-20241022",
    "claude-3-opus-20240229",
    "claude-sonnet-4",
    "gemini-1.5-pro",
    "gemini-1.5-flash",
    "gemini-2.0-flash",
    "llama3:8b",
    "mixtral:8x7b",
    "mistral-large",
    "acme-finetune-v2",
];

pub const CATEGORIES: &[&str] = &["Simple", "Medium", "Complex", "Edge", "simple", "COMPLEX", "Unknown"];

pub const APPLICATION_TYPES: &[&str] =
    &["librarian", "librarian", "code_assistant", "document_search", "document_search_streaming", "rag", "chat"];

/// Tenants of the simulated producers (`header.tenant_id` and the `tenant_id` tag); "default" is
/// DashStreamCallback's own default.
pub const TENANTS: &[&str] = &["default", "acme-corp", "globex", "initech"];

/// How generated records are laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordShape {
    /// As DashFlow's producers write them (`DashStreamCallback::emit_quality_metrics`): a full header (16-byte
    /// message id, timestamp, tenant, thread, sequence, type, schema version), a unit and a metric type on
    /// every value, and the `thread_id` and `tenant_id` tags beside the others.
    #[default]
    DashFlow,
    /// As this generator wrote them before issue 29, for comparing with earlier figures: a header of message
    /// id, thread, type and schema version; values without unit or type; no identity tags.
    Lean,
}

/// Generator settings.
#[derive(Clone, Debug)]
pub struct Traffic {
    pub seed: u64,
    /// Share of events with `passed = true`.
    pub pass_rate: f64,
    /// Share of records sent zstd-framed (0x01).
    pub zstd_ratio: f64,
    /// Share of records sent legacy-unframed.
    pub legacy_ratio: f64,
    /// Sessions open at once.
    pub active_sessions: usize,
    /// Share of events written as DashFlow QualityMonitor evaluations (its keys and issue tags); each one whose
    /// average is below [`MONITOR_THRESHOLD`] is followed by its LOW_QUALITY alert.
    pub monitor_ratio: f64,
    pub shape: RecordShape,
    /// `None`: each record is stamped (`header.timestamp_us`) with the wall clock when drawn, as DashFlow's
    /// producers do; `Some(t)`: the n-th record is stamped `t + n * stamp_step_us` µs, so traffic is
    /// reproducible (or spread over the past: `produce --timestamps-from`).
    pub stamp_from_us: Option<i64>,
    /// Microseconds between the stamps of consecutive records with `stamp_from_us` (default 1).
    pub stamp_step_us: i64,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            seed: 1,
            pass_rate: 0.85,
            zstd_ratio: 0.05,
            legacy_ratio: 0.05,
            active_sessions: 200,
            monitor_ratio: 0.0,
            shape: RecordShape::DashFlow,
            stamp_from_us: None,
            stamp_step_us: 1,
        }
    }
}

/// The threshold of the simulated QualityMonitor: an evaluation averaging below it is followed by an alert.
pub const MONITOR_THRESHOLD: f64 = 0.8;

/// The simulated judge's issues (QualityJudge::detect_issues): a score below 0.7 is an issue; a low
/// completeness is also incomplete coverage; `tool_results_ignored` is drawn for some responses.
fn judge_issues(accuracy: f64, relevance: f64, completeness: f64, ignored_tools: bool, out: &mut Vec<String>) {
    out.clear();
    let mut add = |on: bool, name: &str| {
        if on {
            out.push(name.to_string());
        }
    };
    add(ignored_tools, "tool_results_ignored");
    add(accuracy < 0.7, "low_accuracy");
    add(relevance < 0.7, "low_relevance");
    add(completeness < 0.7, "low_completeness");
    add(completeness < 0.7, "incomplete_coverage");
    out.sort_unstable();
}

/// One generated record: key (the session id, as DashFlow producers use the thread id), value, and the
/// record it encodes.
pub struct Generated {
    pub key: String,
    pub value: Vec<u8>,
    pub record: QualityRecord,
    pub framing: Framing,
}

pub struct Generator {
    cfg: Traffic,
    rng: Rng,
    sessions: Vec<(u64, i64)>,
    next_session: u64,
    n: u64,
    /// The latest event, rewritten by each draw.
    record: QualityRecord,
    writer: RecordWriter,
    /// The latest event was a monitor evaluation below [`MONITOR_THRESHOLD`]: its alert is due.
    alert_due: bool,
}

/// What [`Generator::next_encoded`] wrote: the event's record and the framing drawn for it.
#[derive(Clone, Copy, Debug)]
pub struct Encoded<'a> {
    pub record: &'a QualityRecord,
    pub framing: Framing,
}

/// Sets an optional text field in place, keeping its buffer.
fn set_text(slot: &mut Option<String>, text: std::fmt::Arguments<'_>) {
    let s = slot.get_or_insert_with(String::new);
    s.clear();
    let _ = s.write_fmt(text);
}

/// Microseconds since the epoch (0 for a clock before it), as DashFlow's `create_header` stamps.
fn wall_clock_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Generator {
    pub fn new(cfg: Traffic) -> Self {
        let rng = Rng::new(cfg.seed);
        Generator {
            sessions: Vec::new(),
            next_session: 0,
            n: 0,
            rng,
            cfg,
            record: QualityRecord::default(),
            writer: RecordWriter::default(),
            alert_due: false,
        }
    }

    /// QualityMonitor's LOW_QUALITY alert for the latest event, once, when it was a monitor evaluation
    /// averaging below [`MONITOR_THRESHOLD`] (0x00-framed).
    pub fn take_alert(&mut self) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.alert_due) {
            return None;
        }
        let r = &self.record;
        let issues: Vec<&str> = r.issues.iter().map(String::as_str).collect();
        let msg = low_quality_alert(
            r.thread_id.as_deref().unwrap_or_default(),
            r.quality_average.unwrap_or_default(),
            MONITOR_THRESHOLD,
            &issues,
        );
        Some(frame(&msg, Framing::Framed))
    }

    /// Rewrites the latest event as a QualityMonitor evaluation of the same response: its scores, their
    /// average, the judge's issues, and nothing of the other producer's keys.
    fn as_monitor_evaluation(&mut self, ignored_tools: bool) {
        let r = &mut self.record;
        let (acc, rel, comp) = (r.accuracy.unwrap_or(0.0), r.relevance.unwrap_or(0.0), r.completeness.unwrap_or(0.0));
        let average = (acc + rel + comp) / 3.0;
        judge_issues(acc, rel, comp, ignored_tools, &mut r.issues);
        r.quality_accuracy = Some(acc);
        r.quality_relevance = Some(rel);
        r.quality_completeness = Some(comp);
        r.quality_average = Some(average);
        r.quality_issues_count = Some(r.issues.len() as i64);
        r.scope_id.clear();
        r.scope_id.push_str("response_evaluation");
        r.identity_tags = false; // QualityMonitor sends only the issue tags
        for slot in [&mut r.query_id, &mut r.model, &mut r.category, &mut r.application_type] {
            *slot = None;
        }
        (r.quality_score, r.passed, r.accuracy, r.relevance, r.completeness) = (None, None, None, None, None);
        (r.latency_ms, r.retry_count, r.turn_number) = (None, None, None);
        self.alert_due = average < MONITOR_THRESHOLD;
    }

    fn session(&mut self) -> (u64, i64) {
        let r = &mut self.rng;
        if self.sessions.len() < self.cfg.active_sessions.max(1) || r.f64() < 0.1 {
            let id = self.next_session;
            self.next_session += 1;
            if self.sessions.len() >= self.cfg.active_sessions.max(1) {
                let i = r.below(self.sessions.len());
                self.sessions.swap_remove(i);
            }
            self.sessions.push((id, 0));
        }
        let i = self.rng.below(self.sessions.len());
        let s = &mut self.sessions[i];
        s.1 += 1;
        (s.0, s.1)
    }

    /// Draws the next event into `self.record`; returns the framing drawn for it.
    fn draw(&mut self) -> Framing {
        self.n += 1;
        let (session, turn) = self.session();
        let r = &mut self.rng;
        let passed = r.f64() < self.cfg.pass_rate;
        let base = if passed { 0.8 + 0.2 * r.f64() } else { 0.3 + 0.5 * r.f64() };
        let jitter = |r: &mut Rng| (base + 0.1 * (r.f64() - 0.5)).clamp(0.0, 1.0);
        let (accuracy, relevance, completeness) = (jitter(r), jitter(r), jitter(r));
        let latency_ms = (6.3 + 0.9 * r.normal()).exp().min(120_000.0) as i64;
        let mut retries = 0;
        while retries < 12 && r.f64() < if passed { 0.25 } else { 0.55 } {
            retries += 1;
        }
        let model = *r.pick(MODELS);
        let category = *r.pick(CATEGORIES);
        let application_type = *r.pick(APPLICATION_TYPES);
        let x = r.f64();
        let framing = if x < self.cfg.zstd_ratio {
            Framing::FramedZstd
        } else if x < self.cfg.zstd_ratio + self.cfg.legacy_ratio {
            Framing::Legacy
        } else {
            Framing::Framed
        };
        let rec = &mut self.record;
        // The session (thread) id, as DashFlow producers also use it for the record key.
        set_text(&mut rec.thread_id, format_args!("session-{:08x}-{session}", self.cfg.seed));
        // A 16-byte message id, unique per seed and record (a UUID's size), reusing the buffer.
        rec.message_id.clear();
        rec.message_id.extend_from_slice(&self.cfg.seed.to_be_bytes());
        rec.message_id.extend_from_slice(&self.n.to_be_bytes());
        let dashflow = self.cfg.shape == RecordShape::DashFlow;
        rec.units = dashflow;
        rec.identity_tags = dashflow;
        rec.tenant_id.clear();
        (rec.timestamp_us, rec.sequence) = (0, 0);
        if dashflow {
            rec.tenant_id.push_str(TENANTS[(session % TENANTS.len() as u64) as usize]);
            rec.sequence = self.n;
            rec.timestamp_us = match self.cfg.stamp_from_us {
                Some(t) => t.saturating_add((self.n as i64).saturating_mul(self.cfg.stamp_step_us)),
                None => wall_clock_us(),
            };
        }
        rec.scope_id.clear();
        let _ = write!(rec.scope_id, "q-{}", self.n);
        set_text(&mut rec.query_id, format_args!("q-{}", self.n));
        rec.quality_score = Some(((accuracy + relevance + completeness) / 3.0 * 1000.0).round() / 1000.0);
        rec.passed = Some(passed);
        rec.latency_ms = Some(latency_ms);
        rec.retry_count = Some(retries);
        rec.turn_number = Some(turn);
        rec.accuracy = Some(accuracy);
        rec.relevance = Some(relevance);
        rec.completeness = Some(completeness);
        set_text(&mut rec.model, format_args!("{model}"));
        set_text(&mut rec.category, format_args!("{category}"));
        set_text(&mut rec.application_type, format_args!("{application_type}"));
        (rec.quality_accuracy, rec.quality_relevance, rec.quality_completeness) = (None, None, None);
        (rec.quality_average, rec.quality_issues_count) = (None, None);
        rec.issues.clear();
        self.alert_due = false;
        // Drawn only when monitor evaluations are asked for, so other traffic stays as it was for a seed.
        if self.cfg.monitor_ratio > 0.0 && self.rng.f64() < self.cfg.monitor_ratio {
            let ignored_tools = self.rng.f64() < 0.05;
            self.as_monitor_evaluation(ignored_tools);
        }
        framing
    }

    pub fn next_record(&mut self) -> QualityRecord {
        self.draw();
        self.record.clone()
    }

    pub fn next_generated(&mut self) -> Generated {
        let framing = self.draw();
        let record = self.record.clone();
        Generated { key: record.thread_id.clone().unwrap_or_default(), value: record.encode(framing), record, framing }
    }

    /// The next event written straight into `value` (framed as drawn) with its key in `key`: the same
    /// event as [`Generator::next_generated`] would give, without building a protobuf message (fast path
    /// of `produce`).
    pub fn next_encoded(&mut self, value: &mut Vec<u8>, key: &mut String) -> Encoded<'_> {
        let framing = self.draw();
        key.clear();
        key.push_str(self.record.thread_id.as_deref().unwrap_or_default());
        self.writer.write(&self.record, framing, value);
        Encoded { record: &self.record, framing }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_traffic() {
        let fixed = Traffic { seed: 42, stamp_from_us: Some(1_796_000_000_000_000), ..Traffic::default() };
        let mut a = Generator::new(fixed.clone());
        let mut b = Generator::new(fixed);
        for _ in 0..1000 {
            assert_eq!(a.next_generated().value, b.next_generated().value);
        }
        let mut c =
            Generator::new(Traffic { seed: 43, stamp_from_us: Some(1_796_000_000_000_000), ..Traffic::default() });
        assert_ne!(a.next_generated().value, c.next_generated().value);
    }

    #[test]
    fn the_fast_encoder_writes_the_same_events() {
        use crate::decode::{Decoded, Decoder};
        let cfg = Traffic { seed: 9, zstd_ratio: 0.2, legacy_ratio: 0.2, stamp_from_us: Some(5), ..Traffic::default() };
        let (mut a, mut b) = (Generator::new(cfg.clone()), Generator::new(cfg));
        let mut d = Decoder::new(1 << 20);
        let mut d2 = Decoder::new(1 << 20);
        let (mut value, mut key) = (Vec::new(), String::new());
        let mut framings = std::collections::HashSet::new();
        for _ in 0..2000 {
            let slow = a.next_generated();
            let fast = b.next_encoded(&mut value, &mut key);
            assert_eq!((fast.framing, fast.record), (slow.framing, &slow.record));
            framings.insert(format!("{:?}", fast.framing));
            assert_eq!(key, slow.key);
            let (Ok(Decoded::Quality(v1)), Ok(Decoded::Quality(v2))) = (d.decode(&slow.value), d2.decode(&value))
            else {
                panic!("both decode")
            };
            assert_eq!(v1, v2);
        }
        assert_eq!(framings.len(), 3);
    }

    #[test]
    fn a_share_of_monitor_evaluations_with_their_alerts() {
        use crate::decode::{Decoded, Decoder};
        let mut g = Generator::new(Traffic { seed: 5, monitor_ratio: 0.3, ..Traffic::default() });
        let mut d = Decoder::new(1 << 20);
        let (mut monitor, mut alerts, mut with_issues) = (0, 0, 0);
        for _ in 0..2000 {
            let gen = g.next_generated();
            let r = &gen.record;
            if let Some(avg) = r.quality_average {
                monitor += 1;
                assert_eq!((r.passed, r.quality_score, r.model.as_deref()), (None, None, None));
                assert_eq!(r.quality_issues_count, Some(r.issues.len() as i64));
                with_issues += usize::from(!r.issues.is_empty());
                let Ok(Decoded::Quality(v)) = d.decode(&gen.value) else { panic!() };
                assert_eq!((v.quality_score, v.issues_count as usize), (avg, r.issues.len()));
                let alert = g.take_alert();
                assert_eq!(alert.is_some(), avg < MONITOR_THRESHOLD);
                if let Some(a) = alert {
                    alerts += 1;
                    assert_eq!(d.decode(&a), Ok(Decoded::QualityAlert));
                }
                assert_eq!(g.take_alert(), None, "once");
            } else {
                assert!(r.issues.is_empty() && r.passed.is_some());
                assert_eq!(g.take_alert(), None);
            }
        }
        assert!((500..700).contains(&monitor), "{monitor}");
        assert!(alerts > 50 && with_issues > 50, "{alerts} alerts, {with_issues} with issues");
        // Without monitor evaluations, a seed sends what it sent before they existed.
        let mut plain = Generator::new(Traffic { seed: 5, ..Traffic::default() });
        assert!((0..500).all(|_| plain.next_record().quality_average.is_none()));
    }

    #[test]
    fn traffic_is_varied_and_turns_grow() {
        let mut g = Generator::new(Traffic { seed: 7, active_sessions: 5, ..Traffic::default() });
        let recs: Vec<_> = (0..2000).map(|_| g.next_record()).collect();
        let passed = recs.iter().filter(|r| r.passed == Some(true)).count();
        assert!((1500..1900).contains(&passed), "pass rate ~0.85: {passed}");
        let models: std::collections::HashSet<_> = recs.iter().map(|r| r.model.clone()).collect();
        assert_eq!(models.len(), MODELS.len());
        assert!(recs.iter().any(|r| r.turn_number.unwrap() > 5));
        let lat: Vec<i64> = recs.iter().map(|r| r.latency_ms.unwrap()).collect();
        let mut sorted = lat.clone();
        sorted.sort();
        assert!(sorted[1000] > 300 && sorted[1000] < 1000, "median latency {}", sorted[1000]);
    }

    /// A 64-bit FNV-1a hash of 3 000 records (values, keys and alerts) and their total size.
    fn digest(cfg: Traffic) -> (u64, usize) {
        let mut g = Generator::new(cfg);
        let (mut v, mut k) = (Vec::new(), String::new());
        let (mut h, mut total) = (0xcbf2_9ce4_8422_2325u64, 0);
        for _ in 0..3000 {
            g.next_encoded(&mut v, &mut k);
            let alert = g.take_alert().unwrap_or_default();
            for b in v.iter().chain(k.as_bytes()).chain(&alert) {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
            total += v.len() + alert.len();
        }
        (h, total)
    }

    #[test]
    fn the_lean_shape_is_what_the_generator_wrote_before_issue_29() {
        // Taken from the generator of 6476b3f (seed 29, 20 % monitor evaluations, default framings).
        let lean = Traffic { seed: 29, monitor_ratio: 0.2, shape: RecordShape::Lean, ..Traffic::default() };
        assert_eq!(digest(lean), (0x1d8f_5c69_67fa_33c9, 970_600));
    }

    #[test]
    fn the_dashflow_shape_has_the_whole_header_units_and_identity_tags() {
        use crate::proto::dash_stream_message::Message;
        use prost::Message as _;
        let mut g = Generator::new(Traffic { seed: 4, zstd_ratio: 0.0, legacy_ratio: 0.0, ..Traffic::default() });
        let (mut v, mut k) = (Vec::new(), String::new());
        let before = wall_clock_us();
        for n in 1..=200u64 {
            g.next_encoded(&mut v, &mut k);
            let msg = crate::proto::DashStreamMessage::decode(&v[1..]).unwrap();
            let Some(Message::Metrics(m)) = msg.message else { panic!() };
            let h = m.header.unwrap();
            assert_eq!((h.message_id.len(), h.sequence, h.r#type, h.schema_version), (16, n, 6, 1));
            assert!(h.timestamp_us >= before && h.timestamp_us <= wall_clock_us());
            assert!(TENANTS.contains(&h.tenant_id.as_str()));
            assert_eq!(
                (m.tags["thread_id"].as_str(), m.tags["tenant_id"].as_str()),
                (h.thread_id.as_str(), h.tenant_id.as_str())
            );
            assert_eq!(m.tags.len(), 6, "model, category, application type, query id, thread and tenant");
            assert_eq!(m.metrics.len(), 8);
            for (key, val) in &m.metrics {
                let want = if key == "passed" {
                    "bool"
                } else if key == "latency_ms" {
                    "ms"
                } else if key.ends_with("count") || key == "turn_number" {
                    "count"
                } else {
                    "ratio"
                };
                assert_eq!(val.unit, want, "{key}");
                assert_ne!(val.r#type, 0, "{key}");
            }
        }
        // Reproducible stamps when asked for.
        let mut g = Generator::new(Traffic { seed: 4, stamp_from_us: Some(1000), ..Traffic::default() });
        assert_eq!((g.next_record().timestamp_us, g.next_record().timestamp_us), (1001, 1002));
    }
}
