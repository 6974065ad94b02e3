//! The poll thread's path for one record, then the worker's: `Decoder::decode` (frame byte, size limit, zstd
//! with its output cap, the in-place protobuf reader, the quality-event mapping), `Normalizer::event` and
//! `Applier::apply` on metric handles, plus session expiry.
//!
//! Findings: any panic (overflow checks are on: debug assertions), any disagreement between the in-place
//! reader and the generated prost types (the reference path, `Decoder::message` + `classify`), and a
//! normalized label that differs from the label of the raw text.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dashflow_prometheus_exporter::config::{Config, RawSettings};
use dashflow_prometheus_exporter::decode::event::Normalizer;
use dashflow_prometheus_exporter::decode::labels::{normalize_category, normalize_model};
use dashflow_prometheus_exporter::decode::{classify, Decoded, Decoder};
use dashflow_prometheus_exporter::metrics::sessions::SessionTracker;
use dashflow_prometheus_exporter::metrics::{encode_text, Applier, Metrics};
use libfuzzer_sys::fuzz_target;

/// Largest payload: smaller than the 10 MiB default so that decompression bombs cost milliseconds, not tens
/// of them, per execution; the limit checks are the same code whatever the value.
const MAX_PAYLOAD: usize = 256 * 1024;

/// One registry for the whole run: building it costs far more than decoding a record. Each input still gets
/// a fresh decoder, normalizer and applier (so no input depends on an earlier one), and the counters the
/// inputs add to are unbounded monotone integers.
fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let cfg = Config::from_raw(&RawSettings::default()).expect("default configuration");
        Metrics::new(&cfg.buckets).expect("metrics registry")
    })
}

/// A comparable rendering of a decode outcome (Debug prints NaN and -0.0 faithfully).
fn describe(d: &Decoded<'_>) -> String {
    format!("{d:?}")
}

fuzz_target!(|data: &[u8]| {
    let m = metrics();
    let mut decoder = Decoder::new(MAX_PAYLOAD);
    let decoded = decoder.decode(data);

    // Differential check against prost on the same bytes.
    let mut reference = Decoder::new(MAX_PAYLOAD);
    match (&decoded, reference.message(data)) {
        (Ok(ours), Ok(msg)) => assert_eq!(describe(ours), describe(&classify(&msg)), "readers disagree"),
        (Err(ours), Err(theirs)) => assert_eq!(ours.reason(), theirs.reason(), "{ours} vs {theirs}"),
        (ours, theirs) => panic!("in-place reader {ours:?} but prost {theirs:?}"),
    }

    match decoded {
        Ok(Decoded::Quality(v)) => {
            let ev = Normalizer::default().event(&v);
            assert_eq!(ev.category, normalize_category(v.category));
            assert_eq!(ev.model, (!v.model.is_empty()).then(|| normalize_model(v.model)));
            let mut applier = Applier::new(m.clone(), SessionTracker::new(Duration::from_secs(300), 2));
            let now = Instant::now();
            // Twice: the first creates the lazily made label handles and the session, the second reuses them.
            applier.apply(&ev, 1_800_000_000.0, now);
            applier.apply(&ev, 1_800_000_000.0, now);
            applier.expire_sessions(now + Duration::from_secs(301));
            assert_eq!(applier.metrics().sessions_tracked.get(), 0);
        }
        Ok(Decoded::WrongScope(_)) => m.wrong_scope.inc(),
        Ok(Decoded::Other(kind)) => m.count_other(kind),
        Ok(Decoded::QualityAlert) => m.quality_alerts.inc(),
        Err(e) => m.messages_failed[e.reason()].inc(),
    }

    // Now and then, the exposition of everything applied so far (the text encoder over every value seen).
    static RUNS: AtomicU64 = AtomicU64::new(0);
    if RUNS.fetch_add(1, Ordering::Relaxed) % 4096 == 0 {
        let mut buf = Vec::new();
        encode_text(m, &mut buf).expect("exposition encodes");
        assert!(std::str::from_utf8(&buf).is_ok());
    }
});
