//! Micro benchmarks of the per-event path and of `/metrics` encoding (issue 6, part 1).
//!
//! `cargo bench --bench pipeline` (add `-- decode` etc. to filter). Every per-event bench reports
//! throughput in events/s of one thread; the records come from the `produce` traffic generator (seed 7,
//! 200 active sessions, every model/category/application type), 4096 of them cycled:
//!
//! - `decode/{framed,zstd,legacy}`: `Decoder::decode` of one record (0x00 + protobuf, 0x01 + zstd, bare
//!   protobuf) into a borrowed `QualityView`.
//! - `decode_normalize/framed`: decode + `Normalizer::event` (model/category labels, librarian routing,
//!   session hash): the kafka-poll thread's work per record, less librdkafka and the channel.
//! - `apply/known_labels`: `Applier::apply` of one normalized `Event`, after the whole corpus was applied
//!   once (label handles cached, sessions known), as the worker thread does. `wall`/`now` are taken once,
//!   like the worker does per batch.
//! - `decode_apply/framed`: decode + normalize + apply on one thread: the exporter's own CPU cost of an
//!   event (the "decode+apply" target), with the defaults (exemplars and native histograms on);
//!   `framed_exemplars_only` and `framed_classic` (both off) show what each costs.
//! - `encode_metrics/{demo,1k,10k,10k_histograms}`: `metrics::encode_text` of every family (what a scrape
//!   costs before HTTP and gzip); the series count (exposition lines that are not comments) is printed. 1k
//!   and 10k are reached by registering an extra labelled family (`family::Family`, like the exporter's own)
//!   of gauges, or of latency histograms, with as many label values as needed on top of the demo registry
//!   (see `common::registry_with_series`). `*_prometheus_text_encoder` encodes the same families through the
//!   prometheus crate (`gather` + `TextEncoder`), for comparison in the same run; `*_openmetrics` and
//!   `*_protobuf` the same registry in the other two formats a scrape can negotiate.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dashflow_prometheus_exporter::decode::event::Normalizer;
use dashflow_prometheus_exporter::decode::Decoded;
use dashflow_prometheus_exporter::metrics::family::Scratch;
use dashflow_prometheus_exporter::metrics::{encode as encode_as, encode_text, unix_now, Format};

use common::{Kind, Padding};

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    for (name, kind) in [("framed", Kind::Framed), ("zstd", Kind::Zstd), ("legacy", Kind::Legacy)] {
        let records = common::corpus(kind);
        let bytes: usize = records.iter().map(Vec::len).sum();
        eprintln!("decode/{name}: {} records, {:.0} B on average", records.len(), bytes as f64 / records.len() as f64);
        let mut d = common::decoder();
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % records.len();
                let out = d.decode(black_box(&records[i]));
                debug_assert!(matches!(out, Ok(Decoded::Quality(..))));
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn decode_normalize(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_normalize");
    g.throughput(Throughput::Elements(1));
    let records = common::corpus(Kind::Framed);
    let mut d = common::decoder();
    let mut n = Normalizer::default();
    let mut i = 0;
    g.bench_function("framed", |b| {
        b.iter(|| {
            i = (i + 1) % records.len();
            match d.decode(black_box(&records[i])) {
                Ok(Decoded::Quality(v)) => Some(black_box(n.event(&v))),
                _ => None,
            }
        })
    });
    g.finish();
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(1));
    let evs = common::events(&common::corpus(Kind::Framed));
    let mut a = common::applier(common::metrics());
    common::warm_up(&mut a, &evs);
    let (wall, now) = (unix_now(), Instant::now());
    let mut i = 0;
    g.bench_function("known_labels", |b| {
        b.iter(|| {
            i = (i + 1) % evs.len();
            a.apply(black_box(&evs[i]), wall, now);
        })
    });
    g.finish();
}

/// Decode, normalize and apply per record: with the defaults (exemplars and native histograms on), with
/// exemplars alone, and classic only (both off): what exemplars and native buckets cost (issue: at most 10 %).
fn decode_apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_apply");
    g.throughput(Throughput::Elements(1));
    let records = common::corpus(Kind::Framed);
    for (name, exemplars, native) in
        [("framed", true, true), ("framed_exemplars_only", true, false), ("framed_classic", false, false)]
    {
        let mut a = common::applier(common::metrics_with(exemplars, native));
        common::warm_up(&mut a, &common::events(&records));
        let mut d = common::decoder();
        let mut n = Normalizer::with_exemplars(exemplars);
        let (wall, now) = (unix_now(), Instant::now());
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % records.len();
                if let Ok(Decoded::Quality(v)) = d.decode(black_box(&records[i])) {
                    a.apply(&n.event(&v), wall, now);
                }
            })
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_metrics");
    for (name, target, padding) in [
        ("demo", 0, Padding::Gauges),
        ("1k", 1_000, Padding::Gauges),
        ("10k", 10_000, Padding::Gauges),
        ("10k_histograms", 10_000, Padding::Histograms),
        ("10k_rich_histograms", 10_000, Padding::RichHistograms),
    ] {
        let (a, n) = common::registry_with_series(target, padding);
        eprintln!("encode_metrics/{name}: {n} series");
        let m = a.metrics().clone();
        let mut buf = Vec::with_capacity(1 << 20);
        g.bench_function(name, |b| {
            b.iter(|| {
                encode_text(&m, &mut buf).expect("encode");
                black_box(buf.len())
            })
        });
        // The same registry in the other formats a scrape can negotiate.
        let mut scratch = Scratch::default();
        for (format, tag) in [(Format::OpenMetrics, "openmetrics"), (Format::Protobuf, "protobuf")] {
            g.bench_function(format!("{name}_{tag}"), |b| {
                b.iter(|| {
                    encode_as(&m, format, &mut scratch, &mut buf).expect("encode");
                    black_box(buf.len())
                })
            });
        }
        // The same families through the prometheus crate (every family gathered into protobufs, then its
        // TextEncoder): what encode_text cost before the labelled families wrote themselves; identical bytes
        // (unit tests in src/metrics/ and src/metrics/family.rs).
        g.bench_function(format!("{name}_prometheus_text_encoder"), |b| {
            b.iter(|| {
                use prometheus::Encoder;
                buf.clear();
                prometheus::TextEncoder::new().encode(&m.gather_all(), &mut buf).expect("encode");
                black_box(buf.len())
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    // A shared 2-core machine: enough samples for a stable median without taking all afternoon.
    Criterion::default().sample_size(50).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, decode_normalize, apply, decode_apply, encode
}
criterion_main!(benches);
