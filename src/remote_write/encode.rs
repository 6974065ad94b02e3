//! From the registry to the bytes of one push: every family the exporter has (what a scrape would show) as
//! remote-write series with `__name__`, their own labels, `job`, `instance` and the configured extra labels
//! (labels sorted by name, as receivers require), one sample each at the time of the gather. Histograms
//! become their classic `_bucket{le}` (with `+Inf`), `_sum` and `_count` series, as a scrape would store
//! them; `le` values are written as the text exposition writes them, so pushed and scraped series match.
//! The encoded `WriteRequest` is snappy-compressed in the block format protocol 1.0 asks for.

use prometheus::proto::{LabelPair, MetricFamily, MetricType};
use prost::Message;

use super::wire::{Label, Sample, TimeSeries, WriteRequest};

/// One push, ready to send.
pub struct Batch {
    /// The snappy-compressed `WriteRequest`.
    pub body: Vec<u8>,
    pub samples: u64,
}

/// Builds the batch of `families` at `timestamp_ms`; `common` are the labels every series gets unless it has
/// a label of that name already (`job`, `instance`, extra labels).
pub fn batch(families: &[MetricFamily], common: &[(String, String)], timestamp_ms: i64) -> Batch {
    let req = write_request(families, common, timestamp_ms);
    let samples = req.timeseries.len() as u64;
    let raw = req.encode_to_vec();
    let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy accepts any input below 4 GiB");
    Batch { body, samples }
}

/// The uncompressed request.
pub fn write_request(families: &[MetricFamily], common: &[(String, String)], timestamp_ms: i64) -> WriteRequest {
    let mut timeseries = Vec::new();
    let mut push = |name: String, own: &[LabelPair], extra: Option<(&str, String)>, value: f64| {
        let mut labels = Vec::with_capacity(own.len() + common.len() + 2);
        labels.push(Label { name: "__name__".into(), value: name });
        labels.extend(own.iter().map(|lp| Label { name: lp.name().into(), value: lp.value().into() }));
        if let Some((n, v)) = extra {
            labels.push(Label { name: n.into(), value: v });
        }
        for (n, v) in common {
            if !labels.iter().any(|l| l.name == *n) {
                labels.push(Label { name: n.clone(), value: v.clone() });
            }
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        timeseries.push(TimeSeries { labels, samples: vec![Sample { value, timestamp: timestamp_ms }] });
    };
    for mf in families {
        let name = mf.name();
        for m in mf.get_metric() {
            let own = m.get_label();
            match mf.get_field_type() {
                MetricType::COUNTER => push(name.into(), own, None, m.get_counter().get_value()),
                MetricType::GAUGE => push(name.into(), own, None, m.get_gauge().get_value()),
                // The exporter registers no untyped family (its exposition refuses one too).
                MetricType::UNTYPED => {}
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut inf_seen = false;
                    for b in h.get_bucket() {
                        let ub = b.upper_bound();
                        inf_seen |= ub == f64::INFINITY;
                        let le = if ub == f64::INFINITY { "+Inf".to_string() } else { ub.to_string() };
                        push(format!("{name}_bucket"), own, Some(("le", le)), b.cumulative_count() as f64);
                    }
                    if !inf_seen {
                        push(format!("{name}_bucket"), own, Some(("le", "+Inf".into())), h.get_sample_count() as f64);
                    }
                    push(format!("{name}_sum"), own, None, h.get_sample_sum());
                    push(format!("{name}_count"), own, None, h.get_sample_count() as f64);
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        push(name.into(), own, Some(("quantile", q.quantile().to_string())), q.value());
                    }
                    push(format!("{name}_sum"), own, None, s.sample_sum());
                    push(format!("{name}_count"), own, None, s.sample_count() as f64);
                }
            }
        }
    }
    WriteRequest { timeseries }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

    fn labels(ts: &TimeSeries) -> Vec<(String, String)> {
        ts.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn counters_and_histograms_become_sorted_series_with_the_common_labels() {
        let reg = Registry::new();
        let c = IntCounterVec::new(Opts::new("c_total", "c"), &["zone", "instance"]).unwrap();
        c.with_label_values(&["eu", "own"]).inc_by(7);
        reg.register(Box::new(c)).unwrap();
        let h = HistogramVec::new(HistogramOpts::new("h_ms", "h").buckets(vec![0.5, 10.0]), &["model"]).unwrap();
        h.with_label_values(&["gpt-4"]).observe(3.0);
        h.with_label_values(&["gpt-4"]).observe(30.0);
        reg.register(Box::new(h)).unwrap();
        let common = pairs(&[("job", "edge"), ("instance", "box-7"), ("site", "north")]);
        let req = write_request(&reg.gather(), &common, 1_700_000_000_123);
        let got: Vec<(Vec<(String, String)>, f64)> =
            req.timeseries.iter().map(|t| (labels(t), t.samples[0].value)).collect();
        let expect = |name: &str, extra: &[(&str, &str)], v: f64| {
            let mut l = pairs(extra);
            l.push(("__name__".into(), name.into()));
            l.extend(pairs(&[("job", "edge"), ("instance", "box-7"), ("site", "north")]));
            let mut seen = std::collections::BTreeMap::new();
            for (k, v) in l {
                seen.entry(k).or_insert(v);
            }
            (seen.into_iter().collect::<Vec<_>>(), v)
        };
        assert_eq!(
            got,
            vec![
                expect("c_total", &[("instance", "own"), ("zone", "eu")], 7.0),
                expect("h_ms_bucket", &[("model", "gpt-4"), ("le", "0.5")], 0.0),
                expect("h_ms_bucket", &[("model", "gpt-4"), ("le", "10")], 1.0),
                expect("h_ms_bucket", &[("model", "gpt-4"), ("le", "+Inf")], 2.0),
                expect("h_ms_sum", &[("model", "gpt-4")], 33.0),
                expect("h_ms_count", &[("model", "gpt-4")], 2.0),
            ]
        );
        assert_eq!(got[0].0[1], ("instance".to_string(), "own".to_string()), "a metric's own label wins");
        for t in &req.timeseries {
            assert!(t.labels.windows(2).all(|w| w[0].name < w[1].name), "sorted, no duplicates: {:?}", labels(t));
            assert_eq!(t.samples, vec![Sample { value: t.samples[0].value, timestamp: 1_700_000_000_123 }]);
        }
    }

    #[test]
    fn the_body_is_a_snappy_block_of_the_protobuf() {
        let reg = Registry::new();
        let g = prometheus::Gauge::new("g", "g").unwrap();
        g.set(0.25);
        reg.register(Box::new(g)).unwrap();
        let b = batch(&reg.gather(), &pairs(&[("job", "j")]), 5);
        assert_eq!(b.samples, 1);
        let raw = snap::raw::Decoder::new().decompress_vec(&b.body).unwrap();
        let req = WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req, write_request(&reg.gather(), &pairs(&[("job", "j")]), 5));
        assert_eq!(labels(&req.timeseries[0]), pairs(&[("__name__", "g"), ("job", "j")]));
        assert_eq!(req.timeseries[0].samples[0].value, 0.25);
    }
}
