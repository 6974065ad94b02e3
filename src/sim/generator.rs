//! Synthetic, reproducible quality traffic (seeded): realistic model names, categories, application types,
//! sessions with growing turn numbers, skewed latency and retry distributions.

use crate::sim::encode::{Framing, QualityRecord};

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
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic { seed: 1, pass_rate: 0.85, zstd_ratio: 0.05, legacy_ratio: 0.05, active_sessions: 200 }
    }
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
    zstd: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
}

/// One event's random draw; turned into a [`QualityRecord`] or written straight to bytes.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    pub n: u64,
    pub session: u64,
    pub turn: i64,
    pub passed: bool,
    pub quality_score: f64,
    pub accuracy: f64,
    pub relevance: f64,
    pub completeness: f64,
    pub latency_ms: i64,
    pub retries: i64,
    pub model: &'static str,
    pub category: &'static str,
    pub application_type: &'static str,
    pub framing: Framing,
}

impl Generator {
    pub fn new(cfg: Traffic) -> Self {
        let rng = Rng::new(cfg.seed);
        Generator { sessions: Vec::new(), next_session: 0, n: 0, rng, cfg, zstd: None, scratch: Vec::new() }
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

    /// The next event's values.
    pub fn draw(&mut self) -> Draw {
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
        Draw {
            n: self.n,
            session,
            turn,
            passed,
            quality_score: ((accuracy + relevance + completeness) / 3.0 * 1000.0).round() / 1000.0,
            accuracy,
            relevance,
            completeness,
            latency_ms,
            retries,
            model,
            category,
            application_type,
            framing,
        }
    }

    /// The session (thread) id of a draw.
    pub fn session_id(&self, d: &Draw, out: &mut String) {
        use std::fmt::Write as _;
        out.clear();
        let _ = write!(out, "session-{:08x}-{}", self.cfg.seed, d.session);
    }

    /// A draw as a [`QualityRecord`].
    pub fn record(&self, d: &Draw) -> QualityRecord {
        let mut session = String::new();
        self.session_id(d, &mut session);
        QualityRecord {
            thread_id: Some(session),
            scope_id: format!("q-{}", d.n),
            query_id: Some(format!("q-{}", d.n)),
            quality_score: Some(d.quality_score),
            passed: Some(d.passed),
            latency_ms: Some(d.latency_ms),
            retry_count: Some(d.retries),
            turn_number: Some(d.turn),
            accuracy: Some(d.accuracy),
            relevance: Some(d.relevance),
            completeness: Some(d.completeness),
            model: Some(d.model.to_string()),
            category: Some(d.category.to_string()),
            application_type: Some(d.application_type.to_string()),
            ..QualityRecord::default()
        }
    }

    pub fn next_record(&mut self) -> QualityRecord {
        let d = self.draw();
        self.record(&d)
    }

    pub fn next_generated(&mut self) -> Generated {
        let d = self.draw();
        let record = self.record(&d);
        Generated {
            key: record.thread_id.clone().unwrap_or_default(),
            value: record.encode(d.framing),
            record,
            framing: d.framing,
        }
    }

    /// The next event written straight into `value` (framed as drawn) with its key in `key`: the same
    /// event as [`Generator::next_generated`] would give, without building a protobuf message (fast path
    /// of `produce`).
    pub fn next_encoded(&mut self, value: &mut Vec<u8>, key: &mut String) -> Draw {
        let d = self.draw();
        self.session_id(&d, key);
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        crate::sim::encode::write_quality_message(&mut body, &d, key);
        value.clear();
        match d.framing {
            Framing::Framed => {
                value.push(crate::decode::FRAME_PLAIN);
                value.extend_from_slice(&body);
            }
            Framing::Legacy => value.extend_from_slice(&body),
            Framing::FramedZstd | Framing::LegacyZstd => {
                if d.framing == Framing::FramedZstd {
                    value.push(crate::decode::FRAME_ZSTD);
                }
                let c = self.zstd.get_or_insert_with(|| zstd::bulk::Compressor::new(3).expect("zstd context"));
                value.extend_from_slice(&c.compress(&body).expect("zstd compress"));
            }
        }
        self.scratch = body;
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_traffic() {
        let mut a = Generator::new(Traffic { seed: 42, ..Traffic::default() });
        let mut b = Generator::new(Traffic { seed: 42, ..Traffic::default() });
        for _ in 0..1000 {
            assert_eq!(a.next_generated().value, b.next_generated().value);
        }
        let mut c = Generator::new(Traffic { seed: 43, ..Traffic::default() });
        assert_ne!(a.next_generated().value, c.next_generated().value);
    }

    #[test]
    fn the_fast_encoder_writes_the_same_events() {
        use crate::decode::{Decoded, Decoder};
        let cfg = Traffic { seed: 9, zstd_ratio: 0.2, legacy_ratio: 0.2, ..Traffic::default() };
        let (mut a, mut b) = (Generator::new(cfg.clone()), Generator::new(cfg));
        let mut d = Decoder::new(1 << 20);
        let mut d2 = Decoder::new(1 << 20);
        let (mut value, mut key) = (Vec::new(), String::new());
        let mut framings = std::collections::HashSet::new();
        for _ in 0..2000 {
            let slow = a.next_generated();
            let draw = b.next_encoded(&mut value, &mut key);
            assert_eq!(draw.framing, slow.framing);
            framings.insert(format!("{:?}", draw.framing));
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
}
