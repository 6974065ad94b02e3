//! The OpenMetrics 1.0.0 text format, written straight into a byte buffer (docs/formats.md).
//!
//! What differs from the text format 0.0.4 ([`expo`]): a counter family is named without its `_total` suffix
//! and its sample carries it; counters and histograms have a `_created` sample (Unix seconds); a family whose
//! name ends in a unit has a `# UNIT` line; infinities are `+Inf`/`-Inf`; the exemplars of the rich histograms
//! follow their bucket samples (`# {thread_id="…",message_id="…"} value timestamp`); the exposition ends with
//! `# EOF`. Series names and label values are the ones the text format writes, so a Prometheus that scrapes
//! either format stores the same series.
//!
//! [`expo`]: crate::metrics::expo

use prometheus::proto::{MetricFamily, MetricType};

use crate::decode::ids::push_hex;
use crate::metrics::expo::{self, ExpoError};
use crate::metrics::hist::{Exemplar, Snapshot};

/// The `Content-Type` of an OpenMetrics answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition's last line.
pub const EOF: &[u8] = b"# EOF\n";

/// Unit suffixes that get a `# UNIT` line (the ones the exporter's names use).
const UNITS: [&str; 3] = ["seconds", "bytes", "ms"];

/// The family name OpenMetrics uses: a counter's without `_total`.
pub fn family_name(name: &str, kind: MetricType) -> &str {
    match kind {
        MetricType::COUNTER => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

/// The unit a family name ends in, if any.
pub fn unit(family: &str) -> Option<&'static str> {
    UNITS.into_iter().find(|u| family.strip_suffix(u).is_some_and(|rest| rest.ends_with('_') && rest.len() > 1))
}

/// The `# TYPE`, `# UNIT` and `# HELP` lines of a family (`name` as registered, with `_total`).
pub fn header(name: &str, help: &str, kind: MetricType, out: &mut Vec<u8>) {
    let family = family_name(name, kind);
    let kind_text = match kind {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "unknown",
    };
    for (what, text) in [("TYPE", Some(kind_text)), ("UNIT", unit(family))] {
        if let Some(text) = text {
            out.extend_from_slice(b"# ");
            out.extend_from_slice(what.as_bytes());
            out.push(b' ');
            out.extend_from_slice(family.as_bytes());
            out.push(b' ');
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
        }
    }
    if !help.is_empty() {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(family.as_bytes());
        out.push(b' ');
        expo::escape(help.as_bytes(), true, out);
        out.push(b'\n');
    }
}

/// A number as OpenMetrics writes it: as the text format, but `+Inf`/`-Inf`.
pub fn float(v: f64, out: &mut Vec<u8>) {
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        expo::float(v, out);
    }
}

/// Unix seconds with millisecond precision, from milliseconds.
fn seconds_ms(ts_ms: i64, out: &mut Vec<u8>) {
    let (s, ms) = (ts_ms.div_euclid(1000), ts_ms.rem_euclid(1000));
    expo::integer(s, out);
    out.push(b'.');
    out.extend_from_slice(&[b'0' + (ms / 100) as u8, b'0' + (ms / 10 % 10) as u8, b'0' + (ms % 10) as u8]);
}

/// `name{labels[,le="bound"]} value`, without the line end.
fn sample(out: &mut Vec<u8>, name: &str, suffix: &str, labels: &[u8], le: Option<f64>, value: f64) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    match (labels.is_empty(), le) {
        (true, None) => {}
        (false, None) => {
            out.extend_from_slice(labels);
            out.push(b'}');
        }
        (empty, Some(b)) => {
            if empty {
                out.push(b'{');
            } else {
                out.extend_from_slice(labels);
                out.push(b',');
            }
            out.extend_from_slice(b"le=\"");
            float(b, out);
            out.extend_from_slice(b"\"}");
        }
    }
    out.push(b' ');
    float(value, out);
}

/// A counter's `_total` and `_created` lines; `family` is without `_total`.
pub fn counter(family: &str, labels: &[u8], value: f64, created: f64, out: &mut Vec<u8>) {
    sample(out, family, "_total", labels, None, value);
    out.push(b'\n');
    sample(out, family, "_created", labels, None, created);
    out.push(b'\n');
}

/// A gauge's line.
pub fn gauge(name: &str, labels: &[u8], value: f64, out: &mut Vec<u8>) {
    sample(out, name, "", labels, None, value);
    out.push(b'\n');
}

/// The exemplar after a bucket sample: ` # {thread_id="…",message_id="…"} value timestamp`.
fn exemplar(e: &Exemplar, out: &mut Vec<u8>) {
    out.extend_from_slice(b" # {");
    let thread = e.ids.thread_id();
    if !thread.is_empty() {
        out.extend_from_slice(b"thread_id=\"");
        expo::escape(thread.as_bytes(), true, out);
        out.push(b'"');
    }
    if !e.ids.message_id().is_empty() {
        if !thread.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(b"message_id=\"");
        push_hex(e.ids.message_id(), out);
        out.push(b'"');
    }
    out.extend_from_slice(b"} ");
    float(e.value, out);
    out.push(b' ');
    seconds_ms(e.ts_ms, out);
}

/// A histogram's bucket (with exemplars), `_count`, `_sum` and `_created` lines.
pub fn histogram(name: &str, labels: &[u8], h: &Snapshot, created: f64, out: &mut Vec<u8>) {
    let buckets = h.cumulative.iter().copied().chain(std::iter::once((f64::INFINITY, h.count)));
    for (i, (ub, cumulative)) in buckets.enumerate() {
        sample(out, name, "_bucket", labels, Some(ub), cumulative as f64);
        if let Some(Some(e)) = h.exemplars.get(i) {
            exemplar(e, out);
        }
        out.push(b'\n');
    }
    sample(out, name, "_count", labels, None, h.count as f64);
    out.push(b'\n');
    sample(out, name, "_sum", labels, None, h.sum);
    out.push(b'\n');
    sample(out, name, "_created", labels, None, created);
    out.push(b'\n');
}

/// Appends a family of the prometheus crate's registry; counters and histograms are stamped `created`.
pub fn encode_family(
    mf: &MetricFamily,
    created: f64,
    labels: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), ExpoError> {
    let name = mf.name();
    expo::check_family(mf)?;
    let kind = mf.get_field_type();
    header(name, mf.help(), kind, out);
    let family = family_name(name, kind);
    let mut snap = Snapshot::default();
    for m in mf.get_metric() {
        expo::label_text(m.get_label(), labels);
        match kind {
            MetricType::COUNTER => counter(family, labels, m.get_counter().get_value(), created, out),
            MetricType::GAUGE => gauge(name, labels, m.get_gauge().get_value(), out),
            MetricType::HISTOGRAM => {
                snap.set_from_proto(m.get_histogram());
                histogram(name, labels, &snap, created, out);
            }
            MetricType::SUMMARY => {
                let s = m.get_summary();
                for q in s.get_quantile() {
                    let mut with_q = labels.clone();
                    with_q.push(if labels.is_empty() { b'{' } else { b',' });
                    with_q.extend_from_slice(b"quantile=\"");
                    float(q.quantile(), &mut with_q);
                    with_q.push(b'"');
                    gauge(name, &with_q, q.value(), out);
                }
                sample(out, name, "_count", labels, None, s.sample_count() as f64);
                out.push(b'\n');
                sample(out, name, "_sum", labels, None, s.sample_sum());
                out.push(b'\n');
                sample(out, name, "_created", labels, None, created);
                out.push(b'\n');
            }
            MetricType::UNTYPED => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ids::Ids;

    #[test]
    fn names_units_and_numbers() {
        assert_eq!(family_name("a_total", MetricType::COUNTER), "a");
        assert_eq!(family_name("a_total", MetricType::GAUGE), "a_total");
        assert_eq!(unit("dashstream_query_latency_ms"), Some("ms"));
        assert_eq!(unit("process_cpu_seconds"), Some("seconds"));
        assert_eq!(unit("process_resident_memory_bytes"), Some("bytes"));
        assert_eq!(unit("dashstream_quality_retry_count"), None);
        assert_eq!(unit("seconds"), None);
        assert_eq!(unit("items"), None);
        let mut out = Vec::new();
        for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.25, 3.0] {
            float(v, &mut out);
            out.push(b' ');
        }
        assert_eq!(out, b"+Inf -Inf NaN 0.25 3 ");
        out.clear();
        seconds_ms(1_700_000_000_007, &mut out);
        assert_eq!(out, b"1700000000.007");
    }

    #[test]
    fn a_histogram_with_exemplars() {
        let h = Snapshot {
            cumulative: vec![(0.5, 1), (1.0, 3)],
            count: 4,
            sum: 7.5,
            exemplars: vec![
                None,
                Some(Exemplar { ids: Ids::new("t\"1", &[0xbe, 0xef]), value: 0.75, ts_ms: 1_700_000_000_123 }),
                Some(Exemplar { ids: Ids::new("", &[1]), value: 5.0, ts_ms: 1_000 }),
            ],
            native: None,
        };
        let mut out = Vec::new();
        header("lat_seconds", "Help \"q\" \\ x\ny", MetricType::HISTOGRAM, &mut out);
        histogram("lat_seconds", b"{model=\"m\"", &h, 1_600_000_000.5, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# TYPE lat_seconds histogram\n# UNIT lat_seconds seconds\n# HELP lat_seconds Help \\\"q\\\" \\\\ x\\ny\n\
lat_seconds_bucket{model=\"m\",le=\"0.5\"} 1\n\
lat_seconds_bucket{model=\"m\",le=\"1\"} 3 # {thread_id=\"t\\\"1\",message_id=\"beef\"} 0.75 1700000000.123\n\
lat_seconds_bucket{model=\"m\",le=\"+Inf\"} 4 # {message_id=\"01\"} 5 1.000\n\
lat_seconds_count{model=\"m\"} 4\nlat_seconds_sum{model=\"m\"} 7.5\nlat_seconds_created{model=\"m\"} 1600000000.5\n"
        );
    }
}
