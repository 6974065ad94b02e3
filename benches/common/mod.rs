//! Shared set-up of the bench targets: a realistic corpus from the traffic generator, a warmed-up applier,
//! and registries padded to a given number of series.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use dashflow_prometheus_exporter::config::{Config, RawSettings};
use dashflow_prometheus_exporter::decode::event::{Event, Normalizer};
use dashflow_prometheus_exporter::decode::ids::Ids;
use dashflow_prometheus_exporter::decode::{Decoded, Decoder, DEFAULT_MAX_PAYLOAD};
use dashflow_prometheus_exporter::metrics::family::{Family, Rich};
use dashflow_prometheus_exporter::metrics::sessions::SessionTracker;
use dashflow_prometheus_exporter::metrics::{encode_text, unix_now, Applier, Metrics};
use dashflow_prometheus_exporter::sim::generator::{Generator, Traffic};

/// Records in a corpus: large enough to cycle through every model, category and application type and a few
/// hundred sessions, small enough to stay in cache like a poll batch.
pub const CORPUS: usize = 4096;

/// Record framing of a corpus.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `0x00` + protobuf.
    Framed,
    /// `0x01` + zstd(protobuf).
    Zstd,
    /// Protobuf alone.
    Legacy,
}

/// `CORPUS` generator records (the `produce` traffic: 200 active sessions, every model and category), all
/// framed as `kind`.
pub fn corpus(kind: Kind) -> Vec<Vec<u8>> {
    let (zstd_ratio, legacy_ratio) = match kind {
        Kind::Framed => (0.0, 0.0),
        Kind::Zstd => (1.0, 0.0),
        Kind::Legacy => (0.0, 1.0),
    };
    let mut g = Generator::new(Traffic { seed: 7, zstd_ratio, legacy_ratio, ..Traffic::default() });
    let mut key = String::new();
    (0..CORPUS)
        .map(|_| {
            let mut v = Vec::new();
            g.next_encoded(&mut v, &mut key);
            v
        })
        .collect()
}

pub fn decoder() -> Decoder {
    Decoder::new(DEFAULT_MAX_PAYLOAD)
}

/// Decodes and normalizes every record of a corpus into the event the worker applies (what the poll thread
/// sends through the channel).
pub fn events(records: &[Vec<u8>]) -> Vec<Event> {
    let mut d = decoder();
    let mut n = Normalizer::default();
    records
        .iter()
        .map(|r| match d.decode(r) {
            Ok(Decoded::Quality(v)) => n.event(&v),
            other => panic!("not a quality event: {other:?}"),
        })
        .collect()
}

pub fn metrics() -> Metrics {
    let buckets = Config::from_raw(&RawSettings::default()).expect("default config").buckets;
    Metrics::new(&buckets).expect("metrics")
}

/// The default registry, with exemplars and native histograms switched as given (both on by default).
pub fn metrics_with(exemplars: bool, native: bool) -> Metrics {
    let mut buckets = Config::from_raw(&RawSettings::default()).expect("default config").buckets;
    buckets.exemplars = exemplars;
    if !native {
        buckets.native = None;
    }
    Metrics::new(&buckets).expect("metrics")
}

/// An applier with the daemon's defaults (300 s session timeout, 100 000 sessions tracked at most).
pub fn applier(m: Metrics) -> Applier {
    Applier::new(m, SessionTracker::new(Duration::from_secs(300), 100_000))
}

/// Applies the whole corpus once, so that every label value and session of it is known.
pub fn warm_up(a: &mut Applier, evs: &[Event]) {
    let (wall, now) = (unix_now(), Instant::now());
    for ev in evs {
        a.apply(ev, wall, now);
    }
}

/// Samples in an exposition: lines that are neither comments nor empty (each histogram bucket, `_sum` and
/// `_count` is one series, as Prometheus counts them).
pub fn series(m: &Metrics) -> usize {
    let mut buf = Vec::new();
    encode_text(m, &mut buf).expect("encode");
    buf.split(|&b| b == b'\n').filter(|l| !l.is_empty() && l[0] != b'#').count()
}

/// How `registry_with_series` pads.
#[derive(Clone, Copy)]
pub enum Padding {
    /// One gauge series per label value.
    Gauges,
    /// Histograms with the latency buckets (each label value adds one series per bucket, +Inf, _sum, _count).
    Histograms,
    /// The same, with exemplars and native buckets (the defaults of the three rich families), each bucket
    /// holding an exemplar.
    RichHistograms,
}

/// A registry as the daemon has it after the corpus (every model, category, retry status seen), padded
/// with an extra labelled family `bench_padding_series{id="…"}`, registered like the exporter's own labelled
/// families (`family::Family`), until it holds at least `target` series. `target == 0` adds none (the demo's
/// natural count).
pub fn registry_with_series(target: usize, padding: Padding) -> (Applier, usize) {
    let m = metrics();
    let mut a = applier(m.clone());
    warm_up(&mut a, &events(&corpus(Kind::Framed)));
    let base = series(&m);
    if target > base {
        let (name, help) = ("bench_padding_series", "Padding to reach a series count");
        match padding {
            Padding::Gauges => {
                let pad = Family::gauge(name, help, "id").expect("padding family");
                m.families.register(pad.clone()).expect("register padding");
                for i in 0..target - base {
                    pad.get(&format!("series-{i:05}")).set(i as i64);
                }
            }
            Padding::Histograms | Padding::RichHistograms => {
                let b = Config::from_raw(&RawSettings::default()).expect("defaults").buckets;
                let buckets = b.latency_ms;
                let per = buckets.len() + 3;
                let pad = match padding {
                    Padding::RichHistograms => {
                        let rich = Rich { exemplars: true, native: b.native };
                        Family::rich_histogram(name, help, "id", &buckets, rich)
                    }
                    _ => Family::histogram(name, help, "id", &buckets),
                }
                .expect("padding family");
                m.families.register(pad.clone()).expect("register padding");
                let ids = Ids::new("session-00000007-123", &[0x5a; 16]);
                let rich = matches!(padding, Padding::RichHistograms);
                for i in 0..(target - base).div_ceil(per) {
                    let h = pad.get(&format!("series-{i:05}"));
                    if rich {
                        for k in 0..40u64 {
                            h.observe_with((k * 997 % 40_000) as f64, &ids, 1_700_000_000_000);
                        }
                    } else {
                        for k in 0..(i % 7) {
                            h.observe((k * 97 % 5000) as f64);
                        }
                    }
                }
            }
        }
    }
    let n = series(&m);
    (a, n)
}
