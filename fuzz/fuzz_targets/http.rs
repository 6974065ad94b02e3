//! The pure request handling of src/http/respond.rs: `accepts_gzip` on any `Accept-Encoding` value.
//!
//! Findings: a panic, or a violation of the list semantics the function implements: a result of true needs a
//! `gzip` or `*` coding in the value; adding a non-gzip coding in front changes nothing; a refused
//! `gzip;q=0` at the end never accepts what was refused, changes nothing where no `*` was, and means the same
//! as `gzip;Q=0`; adding a plain `gzip` coding always accepts.
#![no_main]

use dashflow_prometheus_exporter::http::accepts_gzip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // tiny_http hands header values over as text; bytes that are not UTF-8 never reach the function.
    let Ok(value) = std::str::from_utf8(data) else { return };
    let got = accepts_gzip(value);
    if got {
        assert!(value.to_ascii_lowercase().contains("gzip") || value.contains('*'), "{value:?}");
    }
    assert_eq!(accepts_gzip(&format!("identity, {value}")), got, "{value:?}");
    let refused = accepts_gzip(&format!("{value}, gzip;q=0"));
    assert!(!refused || got, "{value:?}");
    if !value.contains('*') {
        assert_eq!(refused, got, "{value:?}");
    }
    assert_eq!(accepts_gzip(&format!("{value}, gzip;Q=0")), refused, "{value:?}");
    assert!(accepts_gzip(&format!("{value}, gzip")), "{value:?}");
});
