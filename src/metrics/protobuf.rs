//! The Prometheus protobuf exposition: a stream of `io.prometheus.client.MetricFamily` messages, each
//! preceded by its length as a varint (`encoding=delimited`), written straight into a byte buffer.
//!
//! Field numbers are those of client_model's `metrics.proto` (proto/metrics.proto holds the messages this
//! writes, for the tests that decode it). A nested message's length is not known before its contents are
//! written, so one byte is reserved for it and the contents are moved up in place when the length needs
//! more (a message over 127 bytes): no scratch buffer per message, nothing allocated once the buffer has
//! grown. The rich histograms add their exemplars (per classic bucket) and native buckets (schema, zero
//! bucket, spans and deltas); the classic buckets stay in the same message, so a Prometheus without native
//! histograms reads exactly the classic series.

use prometheus::proto::{LabelPair, MetricFamily, MetricType};

use crate::decode::ids::push_hex;
use crate::metrics::expo::{self, ExpoError};
use crate::metrics::hist::{Exemplar, Snapshot};
use crate::metrics::native::NativeSnapshot;

/// The messages of proto/metrics.proto, generated: what tests and benches decode answers with.
pub mod decoded {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.client.rs"));

    /// Reads a delimited stream of `MetricFamily` messages.
    pub fn families(mut body: &[u8]) -> Result<Vec<MetricFamily>, prost::DecodeError> {
        let mut out = Vec::new();
        while !body.is_empty() {
            out.push(prost::Message::decode_length_delimited(&mut body)?);
        }
        Ok(out)
    }
}

/// The `Content-Type` of a protobuf answer.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(field: u32, wire: u32, out: &mut Vec<u8>) {
    varint(u64::from(field << 3 | wire), out);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn uint(field: u32, v: u64, out: &mut Vec<u8>) {
    key(field, VARINT, out);
    varint(v, out);
}

fn sint(field: u32, v: i64, out: &mut Vec<u8>) {
    key(field, VARINT, out);
    varint(zigzag(v), out);
}

fn double(field: u32, v: f64, out: &mut Vec<u8>) {
    key(field, FIXED64, out);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(field: u32, b: &[u8], out: &mut Vec<u8>) {
    key(field, LEN, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// Starts a length-delimited part (a field when `field` is given, else a stream item): returns where its
/// one reserved length byte is.
fn begin(field: Option<u32>, out: &mut Vec<u8>) -> usize {
    if let Some(f) = field {
        key(f, LEN, out);
    }
    out.push(0);
    out.len() - 1
}

/// Ends the part started at `mark`: writes its length, moving the contents up when it needs more bytes.
fn end(mark: usize, out: &mut Vec<u8>) {
    let len = out.len() - mark - 1;
    let mut tmp = [0u8; 10];
    let mut n = 0;
    let mut v = len as u64;
    loop {
        tmp[n] = (v as u8 & 0x7f) | if v >= 0x80 { 0x80 } else { 0 };
        n += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    if n > 1 {
        let old = out.len();
        out.resize(old + n - 1, 0);
        out.copy_within(mark + 1..old, mark + n);
    }
    out[mark..mark + n].copy_from_slice(&tmp[..n]);
}

fn label_pair(field: u32, name: &str, value: &[u8], out: &mut Vec<u8>) {
    let m = begin(Some(field), out);
    bytes(1, name.as_bytes(), out);
    bytes(2, value, out);
    end(m, out);
}

/// A `google.protobuf.Timestamp` from Unix seconds.
fn timestamp_secs(field: u32, secs: f64, out: &mut Vec<u8>) {
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round().min(999_999_999.0);
    let m = begin(Some(field), out);
    uint(1, whole as i64 as u64, out);
    uint(2, nanos as u64, out);
    end(m, out);
}

fn timestamp_ms(field: u32, ms: i64, out: &mut Vec<u8>) {
    let m = begin(Some(field), out);
    uint(1, ms.div_euclid(1000) as u64, out);
    uint(2, (ms.rem_euclid(1000) * 1_000_000) as u64, out);
    end(m, out);
}

/// A family's labels, as the metric messages need them.
pub enum Labels<'a> {
    Pairs(&'a [LabelPair]),
    /// A family of one label (the exporter's labelled families); `None` for an unlabelled one.
    One(Option<(&'a str, &'a str)>),
}

fn labels(l: &Labels<'_>, out: &mut Vec<u8>) {
    match l {
        Labels::Pairs(pairs) => {
            for p in pairs.iter() {
                label_pair(1, p.name(), p.value().as_bytes(), out);
            }
        }
        Labels::One(Some((name, value))) => label_pair(1, name, value.as_bytes(), out),
        Labels::One(None) => {}
    }
}

fn kind_number(kind: MetricType) -> u64 {
    match kind {
        MetricType::COUNTER => 0,
        MetricType::GAUGE => 1,
        MetricType::SUMMARY => 2,
        MetricType::UNTYPED => 3,
        MetricType::HISTOGRAM => 4,
    }
}

/// Starts a family (a stream item): returns the mark for [`end_family`].
pub fn begin_family(name: &str, help: &str, kind: MetricType, out: &mut Vec<u8>) -> usize {
    let m = begin(None, out);
    bytes(1, name.as_bytes(), out);
    if !help.is_empty() {
        bytes(2, help.as_bytes(), out);
    }
    uint(3, kind_number(kind), out);
    m
}

pub fn end_family(mark: usize, out: &mut Vec<u8>) {
    end(mark, out);
}

/// A counter metric with its created timestamp.
pub fn counter(l: &Labels<'_>, value: f64, created: f64, out: &mut Vec<u8>) {
    let m = begin(Some(4), out);
    labels(l, out);
    let c = begin(Some(3), out);
    double(1, value, out);
    timestamp_secs(3, created, out);
    end(c, out);
    end(m, out);
}

pub fn gauge(l: &Labels<'_>, value: f64, out: &mut Vec<u8>) {
    let m = begin(Some(4), out);
    labels(l, out);
    let g = begin(Some(2), out);
    double(1, value, out);
    end(g, out);
    end(m, out);
}

fn exemplar(field: u32, e: &Exemplar, hex: &mut Vec<u8>, out: &mut Vec<u8>) {
    let m = begin(Some(field), out);
    let thread = e.ids.thread_id();
    if !thread.is_empty() {
        label_pair(1, "thread_id", thread.as_bytes(), out);
    }
    if !e.ids.message_id().is_empty() {
        hex.clear();
        push_hex(e.ids.message_id(), hex);
        label_pair(1, "message_id", hex, out);
    }
    double(2, e.value, out);
    timestamp_ms(3, e.ts_ms, out);
    end(m, out);
}

/// The native part of a histogram message: schema, zero bucket, spans and deltas of each sign. Gaps of up to
/// two empty buckets stay inside a span (as zero deltas), longer ones start a new span. An empty histogram
/// gets the no-op span that marks it as native.
fn native(n: &NativeSnapshot, out: &mut Vec<u8>) {
    sint(5, i64::from(n.schema), out);
    double(6, n.zero_threshold, out);
    uint(7, n.zero_count, out);
    let populated = |b: &[(i32, u64)]| b.iter().any(|x| x.1 > 0);
    for (buckets, span_field, delta_field) in [(&n.negative, 9, 10), (&n.positive, 12, 13)] {
        if !populated(buckets) {
            continue;
        }
        // Spans: (offset from the previous span's end, or the first index; length).
        let mut prev_end: Option<i32> = None;
        let mut span: Option<(i32, u32)> = None;
        let mut last_nonzero = i32::MIN;
        let flush = |span: (i32, u32), prev_end: &mut Option<i32>, out: &mut Vec<u8>| {
            let m = begin(Some(span_field), out);
            sint(1, i64::from(span.0 - prev_end.unwrap_or(0)), out);
            uint(2, u64::from(span.1), out);
            end(m, out);
            *prev_end = Some(span.0 + span.1 as i32);
        };
        for &(i, _) in buckets.iter().filter(|b| b.1 > 0) {
            span = match span {
                Some((start, len)) if i - last_nonzero <= 3 => Some((start, len + (i - last_nonzero) as u32)),
                Some(s) => {
                    flush(s, &mut prev_end, out);
                    Some((i, 1))
                }
                None => Some((i, 1)),
            };
            last_nonzero = i;
        }
        if let Some(s) = span {
            flush(s, &mut prev_end, out);
        }
        // Deltas of every bucket the spans cover, packed.
        let m = begin(Some(delta_field), out);
        let mut prev = 0i64;
        let mut at = i32::MIN;
        for &(i, c) in buckets.iter().filter(|b| b.1 > 0) {
            if at != i32::MIN && i - at <= 3 {
                for _ in at + 1..i {
                    varint(zigzag(-prev), out);
                    prev = 0;
                }
            }
            let c = c as i64;
            varint(zigzag(c - prev), out);
            prev = c;
            at = i;
        }
        end(m, out);
    }
    if !populated(&n.positive) && !populated(&n.negative) {
        let m = begin(Some(12), out);
        sint(1, 0, out);
        uint(2, 0, out);
        end(m, out);
    }
}

/// A histogram metric: classic buckets (with exemplars), count, sum, created, and the native part when the
/// snapshot has one.
pub fn histogram(l: &Labels<'_>, h: &Snapshot, created: f64, hex: &mut Vec<u8>, out: &mut Vec<u8>) {
    let m = begin(Some(4), out);
    labels(l, out);
    let hm = begin(Some(7), out);
    uint(1, h.count, out);
    double(2, h.sum, out);
    let buckets = h.cumulative.iter().copied().chain(std::iter::once((f64::INFINITY, h.count)));
    for (i, (ub, cumulative)) in buckets.enumerate() {
        let b = begin(Some(3), out);
        uint(1, cumulative, out);
        double(2, ub, out);
        if let Some(Some(e)) = h.exemplars.get(i) {
            exemplar(3, e, hex, out);
        }
        end(b, out);
    }
    timestamp_secs(15, created, out);
    if let Some(n) = &h.native {
        native(n, out);
    }
    end(hm, out);
    end(m, out);
}

/// Appends a family of the prometheus crate's registry; counters and histograms are stamped `created`.
pub fn encode_family(mf: &MetricFamily, created: f64, snap: &mut Snapshot, out: &mut Vec<u8>) -> Result<(), ExpoError> {
    expo::check_family(mf)?;
    let kind = mf.get_field_type();
    let fam = begin_family(mf.name(), mf.help(), kind, out);
    let mut hex = Vec::new();
    for m in mf.get_metric() {
        let l = Labels::Pairs(m.get_label());
        match kind {
            MetricType::COUNTER => counter(&l, m.get_counter().get_value(), created, out),
            MetricType::GAUGE => gauge(&l, m.get_gauge().get_value(), out),
            MetricType::HISTOGRAM => {
                snap.set_from_proto(m.get_histogram());
                histogram(&l, snap, created, &mut hex, out);
            }
            // Neither is registered by the exporter (the process collector has none).
            MetricType::SUMMARY | MetricType::UNTYPED => {}
        }
    }
    end_family(fam, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_that_need_more_bytes_move_the_contents() {
        for n in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let mut out = vec![9u8];
            let m = begin(Some(4), &mut out);
            out.extend(std::iter::repeat_n(7u8, n));
            end(m, &mut out);
            let mut want = vec![9u8, 4 << 3 | 2];
            varint(n as u64, &mut want);
            want.extend(std::iter::repeat_n(7u8, n));
            assert_eq!(out, want, "{n}");
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }
}
