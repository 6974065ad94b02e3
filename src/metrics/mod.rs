//! The metrics stage: the families the exporter exposes, the rules that apply a quality event to them, and
//! the expositions a scrape writes (docs/metrics.md, docs/formats.md).
//!
//! [`registry`] registers every family and holds the shared handles ([`Metrics`]); [`apply`] is the worker's
//! [`Applier`]; [`family`] and [`hist`] are the labelled families and histograms a scrape writes straight from
//! their atomics (the rich histograms with exemplars and the [`native`] buckets); [`expo`] writes the text
//! format 0.0.4, [`openmetrics`] OpenMetrics 1.0.0 and [`protobuf`] the delimited protobuf stream, chosen per
//! scrape as a [`Format`]; [`sessions`] tracks sessions for `dashstream_turns_by_session`; [`process`] reads
//! the `process_*` metrics.

pub mod apply;
pub mod expo;
pub mod family;
pub mod hist;
pub mod native;
pub mod openmetrics;
pub mod process;
pub mod protobuf;
pub mod registry;
pub mod sessions;
pub mod timestamped;

pub use self::apply::Applier;
pub use self::process::unix_now;
pub use self::registry::{encode, encode_text, CloseReason, LegacyErrorType, Metrics, MetricsError, Outcome};

/// An exposition format a scrape can ask for (docs/formats.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The text format 0.0.4, the default.
    Text,
    /// OpenMetrics 1.0.0 text, with exemplars and created timestamps.
    OpenMetrics,
    /// Delimited protobuf `MetricFamily` messages, with exemplars and native histograms.
    Protobuf,
}

impl Format {
    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => expo::CONTENT_TYPE,
            Format::OpenMetrics => openmetrics::CONTENT_TYPE,
            Format::Protobuf => protobuf::CONTENT_TYPE,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::decode::event::Normalizer;
    use crate::decode::{Decoded, Decoder, DEFAULT_MAX_PAYLOAD};
    use crate::metrics::expo::reference;
    use crate::metrics::registry::tests::buckets;
    use crate::metrics::sessions::SessionTracker;
    use crate::sim::generator::{Generator, Traffic};

    #[test]
    fn the_exporters_registry_after_traffic_matches_the_reference_encoder() {
        let applier = populated();
        // What a scrape writes (registry gathered, labelled families from their storage) against the crate's
        // TextEncoder over every family as protobufs; the process_* values (CPU, RSS) move between the two
        // reads, their lines are compared without the value.
        let families = applier.metrics().gather_all();
        let mut buf = Vec::new();
        encode_text(applier.metrics(), &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let steady = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| match l.strip_prefix("process_") {
                    Some(_) => l.rsplit_once(' ').map_or(l, |(series, _)| series).to_string(),
                    None => l.to_string(),
                })
                .collect()
        };
        assert_eq!(steady(&text), steady(&reference(&families)));
        let mut ours = Vec::new();
        expo::encode(&families, &mut ours).unwrap();
        assert_eq!(String::from_utf8(ours).unwrap(), reference(&families));
        assert!(text.lines().filter(|l| !l.starts_with('#')).count() > 500, "a populated registry");
        let mut names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "no family name twice across the registry and the labelled families");
        assert!(applier.metrics().families.contains("dashstream_quality_score_by_model"));
    }

    /// The series and values of a text or OpenMetrics exposition: `name{labels}` → value, without comments,
    /// exemplars and `_created` lines; process_* and the endpoint-duration histogram move between reads and
    /// are left out.
    fn series(text: &str) -> std::collections::BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("process_"))
            .filter(|l| !l.contains("_created") && !l.contains("metrics_endpoint_duration"))
            .map(|l| {
                let l = l.split(" # ").next().unwrap();
                let (s, v) = l.rsplit_once(' ').unwrap();
                (s.to_string(), v.replace("+Inf", "inf").replace("-Inf", "-inf"))
            })
            .collect()
    }

    fn populated() -> Applier {
        let mut applier =
            Applier::new(Metrics::new(&buckets()).unwrap(), SessionTracker::new(Duration::from_secs(300), 1000));
        let mut generator = Generator::new(Traffic { seed: 11, ..Traffic::default() });
        let mut decoder = Decoder::new(DEFAULT_MAX_PAYLOAD);
        let mut normalizer = Normalizer::default();
        let (mut value, mut key) = (Vec::new(), String::new());
        for _ in 0..3000 {
            value.clear();
            generator.next_encoded(&mut value, &mut key);
            if let Ok(Decoded::Quality(v)) = decoder.decode(&value) {
                let ev = normalizer.event(&v);
                applier.apply(&ev, 1_700_000_000.5, Instant::now());
            }
        }
        applier
    }

    /// OpenMetrics writes every series the text format writes, with the same values; counters are typed
    /// without `_total`; counters and histograms have `_created`; the rich histograms carry exemplars whose
    /// ids are the generator's; it ends with `# EOF`.
    #[test]
    fn openmetrics_has_the_text_formats_series_and_more() {
        let applier = populated();
        let m = applier.metrics();
        let (mut text, mut om) = (Vec::new(), Vec::new());
        let mut scratch = family::Scratch::default();
        encode(m, Format::Text, &mut scratch, &mut text).unwrap();
        let mut reference_text = Vec::new();
        encode_text(m, &mut reference_text).unwrap();
        assert_eq!(series(std::str::from_utf8(&text).unwrap()), series(std::str::from_utf8(&reference_text).unwrap()));
        encode(m, Format::OpenMetrics, &mut scratch, &mut om).unwrap();
        let (text, om) = (String::from_utf8(text).unwrap(), String::from_utf8(om).unwrap());
        assert_eq!(series(&om), series(&text));
        assert!(om.ends_with("\n# EOF\n") && om.matches("# EOF").count() == 1);
        for counter in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")) {
            assert!(counter.ends_with("_total"), "a counter named without _total changes its series: {counter}");
            let family = counter.strip_suffix("_total").unwrap();
            assert!(om.contains(&format!("# TYPE {family} counter\n")), "{family}");
            assert!(om.contains(&format!("\n{family}_created")), "{family}_created");
        }
        assert!(om.contains("# UNIT dashstream_query_latency_ms ms\n"));
        assert!(om.contains("# UNIT process_cpu_seconds seconds\n"));
        assert!(om.contains("dashstream_query_latency_ms_created 1"));
        let exemplars: Vec<&str> = om.lines().filter(|l| l.contains(" # {")).collect();
        let with = |f: &str| exemplars.iter().filter(|l| l.starts_with(f)).count();
        assert!(with("dashstream_query_latency_ms_bucket") >= 5, "{exemplars:#?}");
        assert!(with("dashstream_latency_by_model_ms_bucket") >= 20);
        assert!(with("dashstream_quality_score_by_model_bucket") >= 20);
        assert_eq!(with("dashstream_librarian_request_duration_seconds_bucket"), 0, "only the three families");
        for l in &exemplars {
            let ex = l.split(" # ").nth(1).unwrap();
            // {thread_id="session-0000000b-N",message_id="<32 hex>"} value 1700000000.500
            let (labels, rest) = ex.split_once("} ").unwrap();
            let (thread, message) =
                labels.strip_prefix("{thread_id=\"").unwrap().split_once("\",message_id=\"").unwrap();
            assert!(thread.strip_prefix("session-0000000b-").unwrap().parse::<u32>().is_ok(), "{l}");
            let message = message.strip_suffix('"').unwrap();
            assert_eq!(message.len(), 32);
            assert!(message.starts_with("000000000000000b"), "seed then record number: {message}");
            assert!(rest.ends_with(" 1700000000.500"), "{l}");
        }
    }

    /// The protobuf answer, decoded with prost: the same series and values as the text format (classic
    /// buckets included), counters with created timestamps, and native histograms whose buckets add up to
    /// the count.
    #[test]
    fn protobuf_has_the_text_formats_series_and_native_histograms() {
        use crate::metrics::protobuf::decoded::{self, MetricType as T};
        let applier = populated();
        let m = applier.metrics();
        let (mut text, mut pb) = (Vec::new(), Vec::new());
        let mut scratch = family::Scratch::default();
        encode(m, Format::Text, &mut scratch, &mut text).unwrap();
        encode(m, Format::Protobuf, &mut scratch, &mut pb).unwrap();
        let fams = decoded::families(&pb).unwrap();
        let text = String::from_utf8(text).unwrap();
        let mut got = std::collections::BTreeMap::new();
        let fmt = |v: f64| {
            let mut b = Vec::new();
            expo::float(v, &mut b);
            String::from_utf8(b).unwrap()
        };
        let mut native_seen = 0;
        for f in &fams {
            if f.name.starts_with("process_") || f.name.contains("metrics_endpoint_duration") {
                continue;
            }
            for metric in &f.metric {
                let mut labels = Vec::new();
                let pairs: Vec<prometheus::proto::LabelPair> = metric
                    .label
                    .iter()
                    .map(|l| {
                        let mut p = prometheus::proto::LabelPair::default();
                        p.set_name(l.name.clone());
                        p.set_value(l.value.clone());
                        p
                    })
                    .collect();
                expo::label_text(&pairs, &mut labels);
                let l = String::from_utf8(labels).unwrap();
                let close = if l.is_empty() { String::new() } else { format!("{l}}}") };
                let with_le =
                    |le: &str| if l.is_empty() { format!("{{le=\"{le}\"}}") } else { format!("{l},le=\"{le}\"}}") };
                match f.r#type() {
                    T::Counter => {
                        let c = metric.counter.as_ref().unwrap();
                        assert!(c.created_timestamp.as_ref().unwrap().seconds > 1_700_000_000, "{}", f.name);
                        got.insert(format!("{}{close}", f.name), fmt(c.value));
                    }
                    T::Gauge => {
                        got.insert(format!("{}{close}", f.name), fmt(metric.gauge.as_ref().unwrap().value));
                    }
                    T::Histogram => {
                        let h = metric.histogram.as_ref().unwrap();
                        for b in &h.bucket {
                            let le = if b.upper_bound.is_infinite() { "+Inf".to_string() } else { fmt(b.upper_bound) };
                            got.insert(format!("{}_bucket{}", f.name, with_le(&le)), fmt(b.cumulative_count as f64));
                        }
                        got.insert(format!("{}_sum{close}", f.name), fmt(h.sample_sum));
                        got.insert(format!("{}_count{close}", f.name), fmt(h.sample_count as f64));
                        let rich = [
                            "dashstream_query_latency_ms",
                            "dashstream_latency_by_model_ms",
                            "dashstream_quality_score_by_model",
                        ];
                        if rich.contains(&f.name.as_str()) {
                            native_seen += 1;
                            assert_eq!(h.schema, 3);
                            assert_eq!(h.zero_threshold, 2f64.powi(-128));
                            let deltas: i64 = h
                                .positive_delta
                                .iter()
                                .scan(0i64, |c, d| {
                                    *c += d;
                                    Some(*c)
                                })
                                .sum();
                            let spans: u32 = h.positive_span.iter().map(|s| s.length).sum();
                            assert_eq!(spans as usize, h.positive_delta.len(), "{}", f.name);
                            assert_eq!(deltas as u64 + h.zero_count, h.sample_count, "{} native count", f.name);
                            assert!(h.bucket.iter().filter(|b| b.exemplar.is_some()).count() >= 1);
                            for e in h.bucket.iter().filter_map(|b| b.exemplar.as_ref()) {
                                assert_eq!(e.label[0].name, "thread_id");
                                assert!(e.label[0].value.starts_with("session-0000000b-"));
                                assert_eq!((e.label[1].name.as_str(), e.label[1].value.len()), ("message_id", 32));
                                assert_eq!(e.timestamp.as_ref().unwrap().seconds, 1_700_000_000);
                                assert_eq!(e.timestamp.as_ref().unwrap().nanos, 500_000_000);
                            }
                        } else {
                            assert!(h.positive_span.is_empty() && h.schema == 0, "{} is classic only", f.name);
                        }
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert!(native_seen > 10, "{native_seen}");
        assert_eq!(
            got.into_iter().map(|(k, v)| (k, v.replace("+Inf", "inf"))).collect::<std::collections::BTreeMap<_, _>>(),
            series(&text)
        );
    }
}
