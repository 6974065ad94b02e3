//! The decode fast path (`src/decode/fast.rs`) against the generated prost types on the same unframed bytes.
//!
//! Findings: any panic, a record the fast path reads but prost refuses, a record the fast path reads
//! differently from prost (the reference path: `Decoder::message` + `classify`), and any disagreement
//! between the in-place reader (the fast path's fallback) and prost.
#![no_main]

use dashflow_prometheus_exporter::decode::{classify, scan_fast, scan_in_place, Decoded, Decoder, FRAME_PLAIN};
use libfuzzer_sys::fuzz_target;

/// A comparable rendering of a decode outcome (Debug prints NaN and -0.0 faithfully).
fn describe(d: &Decoded<'_>) -> String {
    format!("{d:?}")
}

fuzz_target!(|data: &[u8]| {
    let mut framed = Vec::with_capacity(data.len() + 1);
    framed.push(FRAME_PLAIN);
    framed.extend_from_slice(data);
    let reference = Decoder::new(framed.len()).message(&framed);
    let reference = reference.as_ref().map(|m| describe(&classify(m)));
    if let Some(fast) = scan_fast(data) {
        match &reference {
            Ok(r) => assert_eq!(&describe(&fast), r, "the fast path and prost read the record differently"),
            Err(e) => panic!("the fast path read {fast:?} but prost refuses the record: {e}"),
        }
    }
    match (scan_in_place(data), &reference) {
        (Ok(ours), Ok(r)) => assert_eq!(&describe(&ours), r, "the in-place reader and prost disagree"),
        (Err(ours), Err(theirs)) => assert_eq!(ours.reason(), theirs.reason(), "{ours} vs {theirs}"),
        (ours, theirs) => panic!("in-place reader {ours:?} but prost {theirs:?}"),
    }
});
