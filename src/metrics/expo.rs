//! The text exposition format (0.0.4), written straight into a byte buffer.
//!
//! Produces exactly the bytes of `prometheus::TextEncoder` 0.14 (a unit test compares the two on a populated
//! registry and on awkward values), without its per-sample costs: every write there goes through a `dyn`
//! writer, every value and bucket bound is formatted into a fresh `String`, and a histogram's label pairs are
//! escaped again for each of its lines. Here a metric's label text is built once into a scratch buffer and
//! reused for all its lines, integral values (counters, bucket counts) take an integer fast path, and nothing
//! is allocated per sample once the buffers have grown.

use std::io::Write as _;

use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

/// Exactly what the Prometheus text format 0.0.4 asks for.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Why a family could not be written (the same checks `TextEncoder` makes).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExpoError {
    #[error("metric family {0:?} has no metrics")]
    Empty(String),
    #[error("a metric family has no name")]
    NoName,
    #[error("metric family {0:?} is untyped, which this exporter never registers")]
    Untyped(String),
}

/// Appends the families to `out` in the text format. `out` is not cleared.
pub fn encode(families: &[MetricFamily], out: &mut Vec<u8>) -> Result<(), ExpoError> {
    let mut labels = Vec::with_capacity(256);
    for mf in families {
        encode_family(mf, &mut labels, out)?;
    }
    Ok(())
}

/// Appends one family; `labels` is a scratch buffer.
pub fn encode_family(mf: &MetricFamily, labels: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<(), ExpoError> {
    check_family(mf)?;
    let (name, kind) = (mf.name(), mf.get_field_type());
    header(name, mf.help(), kind, out);
    for m in mf.get_metric() {
        label_text(m.get_label(), labels);
        metric(name, kind, labels, m, out);
    }
    Ok(())
}

/// The checks `TextEncoder` makes of a family before writing it (every format makes them).
pub fn check_family(mf: &MetricFamily) -> Result<(), ExpoError> {
    let name = mf.name();
    if mf.get_metric().is_empty() {
        return Err(ExpoError::Empty(name.to_string()));
    }
    if name.is_empty() {
        return Err(ExpoError::NoName);
    }
    if mf.get_field_type() == MetricType::UNTYPED {
        return Err(ExpoError::Untyped(name.to_string()));
    }
    Ok(())
}

/// The `# HELP` (when there is a help text) and `# TYPE` lines of a family.
pub fn header(name: &str, help: &str, kind: MetricType, out: &mut Vec<u8>) {
    let kind_text = match kind {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "untyped",
    };
    if !help.is_empty() {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        escape(help.as_bytes(), false, out);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind_text.as_bytes());
    out.push(b'\n');
}

/// The lines of one metric of a family of type `kind`; `labels` is its [`label_text`].
pub fn metric(name: &str, kind: MetricType, labels: &[u8], m: &Metric, out: &mut Vec<u8>) {
    let ts = m.timestamp_ms();
    match kind {
        MetricType::COUNTER => line(out, name, "", labels, None, m.get_counter().get_value(), ts),
        MetricType::GAUGE => line(out, name, "", labels, None, m.get_gauge().get_value(), ts),
        MetricType::HISTOGRAM => {
            let h = m.get_histogram();
            let buckets = h.get_bucket().iter().map(|b| (b.upper_bound(), b.cumulative_count()));
            histogram_lines(name, labels, buckets, h.get_sample_sum(), h.get_sample_count(), ts, out);
        }
        MetricType::SUMMARY => {
            let s = m.get_summary();
            for q in s.get_quantile() {
                line(out, name, "", labels, Some(("quantile", Bound::Value(q.quantile()))), q.value(), ts);
            }
            line(out, name, "_sum", labels, None, s.sample_sum(), ts);
            line(out, name, "_count", labels, None, s.sample_count() as f64, ts);
        }
        // Refused by encode_family; the exporter never creates one.
        MetricType::UNTYPED => {}
    }
}

/// The lines of a histogram without timestamp: `buckets` are (upper bound, cumulative count).
pub fn histogram(name: &str, labels: &[u8], buckets: &[(f64, u64)], sum: f64, count: u64, out: &mut Vec<u8>) {
    histogram_lines(name, labels, buckets.iter().copied(), sum, count, 0, out);
}

fn histogram_lines(
    name: &str,
    labels: &[u8],
    buckets: impl Iterator<Item = (f64, u64)>,
    sum: f64,
    count: u64,
    ts: i64,
    out: &mut Vec<u8>,
) {
    let mut inf_seen = false;
    for (ub, cumulative) in buckets {
        line(out, name, "_bucket", labels, Some(("le", Bound::Value(ub))), cumulative as f64, ts);
        inf_seen |= ub.is_sign_positive() && ub.is_infinite();
    }
    if !inf_seen {
        line(out, name, "_bucket", labels, Some(("le", Bound::PlusInf)), count as f64, ts);
    }
    line(out, name, "_sum", labels, None, sum, ts);
    line(out, name, "_count", labels, None, count as f64, ts);
}

/// One sample line of a counter or gauge without timestamp: `name{labels} value`.
pub fn value_line(name: &str, labels: &[u8], value: f64, out: &mut Vec<u8>) {
    line(out, name, "", labels, None, value, 0);
}

fn line(out: &mut Vec<u8>, name: &str, suffix: &str, labels: &[u8], extra: Option<(&str, Bound)>, value: f64, ts: i64) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    match extra {
        None if labels.is_empty() => {}
        None => {
            out.extend_from_slice(labels);
            out.push(b'}');
        }
        Some((key, bound)) => {
            if labels.is_empty() {
                out.push(b'{');
            } else {
                out.extend_from_slice(labels);
                out.push(b',');
            }
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"=\"");
            match bound {
                Bound::Value(v) => float(v, out),
                Bound::PlusInf => out.extend_from_slice(b"+Inf"),
            }
            out.extend_from_slice(b"\"}");
        }
    }
    out.push(b' ');
    float(value, out);
    if ts != 0 {
        out.push(b' ');
        integer(ts, out);
    }
    out.push(b'\n');
}

#[derive(Clone, Copy)]
enum Bound {
    Value(f64),
    PlusInf,
}

/// `{name="value"` for a metric with one label (see [`label_text`]), into `out` (cleared first).
pub fn one_label_text(name: &str, value: &str, out: &mut Vec<u8>) {
    out.clear();
    out.push(b'{');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    escape(value.as_bytes(), true, out);
    out.push(b'"');
}

/// `{a="x",b="y"` (no closing brace, so a bucket's `le` can follow), or nothing when there are no labels.
pub fn label_text(pairs: &[LabelPair], out: &mut Vec<u8>) {
    out.clear();
    let mut sep = b'{';
    for lp in pairs {
        out.push(sep);
        out.extend_from_slice(lp.name().as_bytes());
        out.extend_from_slice(b"=\"");
        escape(lp.value().as_bytes(), true, out);
        out.push(b'"');
        sep = b',';
    }
}

/// Escapes `\` and newline (and `"` in label values) as the text format asks.
pub(crate) fn escape(s: &[u8], quote: bool, out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &c) in s.iter().enumerate() {
        let esc: &[u8] = match c {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if quote => b"\\\"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

/// Writes `v` exactly as `f64`'s `Display` does (`1`, `0.25`, `NaN`, `inf`, `-0`), with a fast path for
/// integral values, which is what counters and bucket counts are.
pub(crate) fn float(v: f64, out: &mut Vec<u8>) {
    // Below 2^53 every integral f64 is an exact i64, and Display prints it without a fraction or exponent.
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 && !(v == 0.0 && v.is_sign_negative()) {
        integer(v as i64, out);
    } else {
        let _ = write!(out, "{v}");
    }
}

pub(crate) fn integer(v: i64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// The prometheus crate's `TextEncoder` output for `families`: what the tests compare against.
#[cfg(test)]
pub(crate) fn reference(families: &[MetricFamily]) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new().encode(families, &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::core::Collector;
    use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

    fn ours(families: &[MetricFamily]) -> String {
        let mut buf = Vec::new();
        encode(families, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn float_formatting_matches_display() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            0.005,
            1e-7,
            123456789.0,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            1e300,
            -2.5e-300,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            u64::MAX as f64,
            i64::MIN as f64,
        ] {
            let mut out = Vec::new();
            float(v, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string(), "value {v:?}");
        }
        let mut out = Vec::new();
        integer(i64::MIN, &mut out);
        assert_eq!(out, i64::MIN.to_string().as_bytes());
    }

    #[test]
    fn awkward_names_values_and_labels_match_the_reference_encoder() {
        let reg = Registry::new();
        let c =
            IntCounterVec::new(Opts::new("c_total", "help with \\ backslash\nand \"quotes\""), &["a", "b"]).unwrap();
        c.with_label_values(&["x\"y", "line\nbreak\\"]).inc_by(7);
        c.with_label_values(&["", "plain"]).inc();
        reg.register(Box::new(c)).unwrap();
        let g = prometheus::Gauge::new("g", "a gauge").unwrap();
        g.set(f64::NAN);
        reg.register(Box::new(g)).unwrap();
        let g2 = prometheus::GaugeVec::new(Opts::new("g2", "gauges"), &["k"]).unwrap();
        for (k, v) in [("inf", f64::INFINITY), ("ninf", f64::NEG_INFINITY), ("negzero", -0.0), ("small", 1.5e-9)] {
            g2.with_label_values(&[k]).set(v);
        }
        reg.register(Box::new(g2)).unwrap();
        let h = Histogram::with_opts(HistogramOpts::new("h_plain", "no labels").buckets(vec![0.1, 1.0, 10.0])).unwrap();
        for v in [0.05, 0.5, 5.0, 50.0, 0.3] {
            h.observe(v);
        }
        reg.register(Box::new(h)).unwrap();
        let hv = HistogramVec::new(
            HistogramOpts::new("h_vec", "labelled").buckets(vec![1.0, 2.5, 1000.0, f64::INFINITY]),
            &["model"],
        )
        .unwrap();
        hv.with_label_values(&["gpt-4"]).observe(2.0);
        hv.with_label_values(&["other"]).observe(1e6);
        reg.register(Box::new(hv)).unwrap();
        let families = reg.gather();
        assert_eq!(ours(&families), reference(&families));
        let text = ours(&families);
        assert!(text.contains("h_vec_bucket{model=\"gpt-4\",le=\"+Inf\"} 1\n"), "{text}");
        assert!(text.contains("c_total{a=\"x\\\"y\",b=\"line\\nbreak\\\\\"} 7\n"), "{text}");
        assert!(text.contains("g2{k=\"negzero\"} -0\n") && text.contains("g2{k=\"inf\"} inf\n"), "{text}");
    }

    #[test]
    fn empty_and_untyped_families_are_errors() {
        let h = Histogram::with_opts(HistogramOpts::new("x", "y")).unwrap();
        let mut fams = h.collect();
        fams[0].mut_metric().clear();
        assert_eq!(encode(&fams, &mut Vec::new()), Err(ExpoError::Empty("x".into())));
    }
}
