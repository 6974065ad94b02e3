//! The bad-input corpus (issue 7, item 2) end to end: the real binary against librdkafka's mock cluster (real
//! Kafka protocol over TCP), scraped over HTTP. For every kind of bad record: no crash, the bounded reason
//! counted exactly, later good records still counted, and the number of series bounded. The largest volume
//! (1 000 000 distinct session ids) also runs in-process through the same decoder, normalizer and applier.
//!
//! Official records and the basic malformed kinds are in tests/it/daemon.rs; this file adds what that does not
//! cover. RSS is printed for information only (`cargo test --test it bad_input:: -- --nocapture`); set
//! BAD_INPUT_DISTINCT (default 100000) and BAD_INPUT_SESSION_CAP (default 1000) to scale the through-Kafka
//! cardinality case for a one-off measurement.

use std::time::{Duration, Instant};

use crate::common::{Cluster, Exporter, Scrape};
use dashflow_prometheus_exporter::config::{Config, RawSettings};
use dashflow_prometheus_exporter::decode::event::Normalizer;
use dashflow_prometheus_exporter::decode::{DecodeError, Decoded, Decoder, MetricKey, DEFAULT_MAX_PAYLOAD};
use dashflow_prometheus_exporter::metrics::sessions::SessionTracker;
use dashflow_prometheus_exporter::metrics::{encode_text, Applier, Metrics};
use dashflow_prometheus_exporter::proto::dash_stream_message::Message;
use dashflow_prometheus_exporter::proto::metric_value::Value;
use dashflow_prometheus_exporter::proto::{DashStreamMessage, MetricValue};
use dashflow_prometheus_exporter::sim::encode::{frame, from_hex, Framing, QualityRecord, WORKED_EXAMPLE};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const WAIT: Duration = Duration::from_secs(60);

/// A quality record with a header (session id "") and exactly one metric key set to `value` (`None`: a
/// `MetricValue` with no variant), plus the given tags.
fn one_metric(key: &str, value: Option<Value>, tags: &[(&str, &str)]) -> Vec<u8> {
    let mut m = QualityRecord { thread_id: Some(String::new()), ..QualityRecord::default() }.message_metrics();
    m.metrics.insert(key.into(), MetricValue { value, ..MetricValue::default() });
    for (k, v) in tags {
        m.tags.insert((*k).into(), (*v).into());
    }
    frame(&DashStreamMessage { message: Some(Message::Metrics(m)) }, Framing::Framed)
}

/// The value variants of a `MetricValue`, by name; `none` is a `MetricValue` without a value.
fn variants() -> [(&'static str, Option<Value>); 6] {
    [
        ("int", Some(Value::IntValue(1))),
        ("float", Some(Value::FloatValue(0.5))),
        ("string", Some(Value::StringValue("0.5".into()))),
        ("bool", Some(Value::BoolValue(true))),
        ("bytes", Some(Value::BytesValue(vec![1]))),
        ("none", None),
    ]
}

/// The variant each metric key is read as.
fn right_type(key: &str) -> &'static str {
    match key {
        "passed" => "bool",
        "latency_ms" | "retry_count" | "turn_number" | "quality_issues_count" => "int",
        _ => "float",
    }
}

/// Replaces the first occurrence of `marker` in `bytes` with `with` (same length, so lengths stay valid).
fn patch(mut bytes: Vec<u8>, marker: &[u8], with: &[u8]) -> Vec<u8> {
    assert_eq!(marker.len(), with.len());
    let at = bytes.windows(marker.len()).position(|w| w == marker).expect("marker in record");
    bytes[at..at + with.len()].copy_from_slice(with);
    bytes
}

fn series(s: &Scrape, name: &str) -> f64 {
    s.v(name)
}

#[test]
fn every_wrong_type_for_every_key_and_out_of_range_numbers_are_counted_by_key() {
    let c = Cluster::new("values", 1);
    let mut recs: Vec<Vec<u8>> = Vec::new();
    // 13 keys (the original's 8 and QualityMonitor's 5) x 5 wrong variants = 65 records.
    for key in MetricKey::ALL.map(MetricKey::label) {
        for (name, v) in variants() {
            if name != right_type(key) {
                recs.push(one_metric(key, v, &[]));
            }
        }
    }
    assert_eq!(recs.len(), 65);
    // NaN and +-inf for each float key: 12 records.
    for key in ["quality_score", "accuracy", "relevance", "completeness"] {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            recs.push(one_metric(key, Some(Value::FloatValue(f)), &[]));
        }
    }
    // Negative and > 1 scores: finite, recorded as sent (as the original did; documented in docs/metrics.md, What one quality event does).
    recs.push(one_metric("quality_score", Some(Value::FloatValue(-0.5)), &[("model", "gpt-4o")]));
    recs.push(one_metric("quality_score", Some(Value::FloatValue(1.5)), &[("model", "gpt-4o")]));
    // Integers: negative (clamped to 0) and beyond u32 (saturated).
    recs.push(one_metric("latency_ms", Some(Value::IntValue(-5)), &[]));
    recs.push(one_metric("retry_count", Some(Value::IntValue(i64::from(u32::MAX) + 1)), &[]));
    recs.push(one_metric("turn_number", Some(Value::IntValue(i64::MAX)), &[]));
    recs.push(one_metric("turn_number", Some(Value::IntValue(-3)), &[]));
    // A good record afterwards.
    recs.push(from_hex(WORKED_EXAMPLE));
    assert_eq!(recs.len(), 84);
    c.produce(&recs.into_iter().map(|r| (0, Some(r))).collect::<Vec<_>>());

    let e = Exporter::start(&c, "g-values", &[]);
    e.wait_value("dashstream_quality_monitor_queries_total", 84.0, WAIT);
    let s = e.scrape();
    for key in MetricKey::ALL.map(MetricKey::label) {
        assert_eq!(
            series(&s, &format!("dashstream_exporter_metric_type_mismatch_total{{key=\"{key}\"}}")),
            5.0,
            "{key}"
        );
    }
    for (key, n) in [
        ("quality_score", 3.0),
        ("accuracy", 3.0),
        ("relevance", 3.0),
        ("completeness", 3.0),
        ("latency_ms", 1.0),
        ("retry_count", 1.0),
        ("turn_number", 2.0),
    ] {
        assert_eq!(series(&s, &format!("dashstream_exporter_invalid_values_total{{key=\"{key}\"}}")), n, "{key}");
    }
    assert_eq!(s.get("dashstream_exporter_invalid_values_total{key=\"passed\"}"), None, "a bool has no range");
    let expect = [
        ("dashstream_exporter_messages_received_total", 84.0),
        // A monitor key of the wrong type is no verdict: those records fail like the rest.
        ("dashstream_quality_monitor_queries_passed_total", 1.0),
        ("dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}", 83.0),
        // Only finite values reach gauges: the worked example's score last; accuracy & co. never had one.
        ("dashstream_quality_monitor_quality_score", 0.9),
        ("dashstream_quality_accuracy", 0.0),
        ("dashstream_quality_relevance", 0.0),
        ("dashstream_quality_completeness", 0.0),
        // -0.5, 1.5 and the worked example's 0.9: the negative one in the lowest bucket, 1.5 only in +Inf.
        ("dashstream_queries_by_model_total{model=\"gpt-4o\"}", 3.0),
        ("dashstream_quality_score_by_model_count{model=\"gpt-4o\"}", 3.0),
        ("dashstream_quality_score_by_model_sum{model=\"gpt-4o\"}", -0.5 + 1.5 + 0.9),
        ("dashstream_quality_score_by_model_bucket{model=\"gpt-4o\",le=\"0.1\"}", 1.0),
        ("dashstream_quality_score_by_model_bucket{model=\"gpt-4o\",le=\"1\"}", 2.0),
        ("dashstream_quality_score_by_model_bucket{model=\"gpt-4o\",le=\"+Inf\"}", 3.0),
        // -5 ms clamped to 0 and observed, plus the worked example's 1500.
        ("dashstream_query_latency_ms_count", 2.0),
        ("dashstream_query_latency_ms_sum", 1500.0),
        ("dashstream_query_latency_ms_bucket{le=\"10\"}", 1.0),
        // 2^32 retries saturate at u32::MAX (the original wrapped to 0).
        ("dashstream_quality_retry_count_count{status=\"failed\"}", 1.0),
        ("dashstream_quality_retry_count_sum{status=\"failed\"}", 4_294_967_295.0),
        // turn i64::MAX saturates and, with no session id, is observed at once; turn -3 clamps to 0 (not observed).
        ("dashstream_turns_by_session_count", 1.0),
        ("dashstream_turns_by_session_sum", 4_294_967_295.0),
    ];
    for (name, want) in expect {
        assert_eq!(series(&s, name), want, "{name}");
    }
    assert_eq!(s.sum("dashstream_exporter_messages_failed_total"), 0.0);
    assert_eq!(e.get("/-/healthy").unwrap().status, 200);
    assert!(!e.logs().contains("panicked"));
}

/// A producer that can send records up to 16 MiB.
fn big_producer(c: &Cluster) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &c.brokers)
        .set("broker.address.family", "v4")
        .set("message.max.bytes", "16777216")
        .create()
        .expect("producer")
}

#[test]
fn truncated_oversized_bombs_scopes_headers_empty_null_and_bad_utf8() {
    let c = Cluster::new("shapes", 1);
    let good = QualityRecord::sample(1).encode(Framing::Framed);
    let good_zstd = QualityRecord::sample(1).encode(Framing::FramedZstd);
    let mut recs: Vec<(&str, Option<Vec<u8>>)> = vec![
        // Truncated frames: the frame byte alone is an empty DashStreamMessage; any cut inside the message is
        // an invalid protobuf; a cut zstd frame does not decompress.
        ("frame byte only", Some(good[..1].to_vec())),
        ("cut after the tag", Some(good[..2].to_vec())),
        ("cut after the length", Some(good[..3].to_vec())),
        ("cut in the middle", Some(good[..good.len() / 2].to_vec())),
        ("last byte missing", Some(good[..good.len() - 1].to_vec())),
        ("cut zstd frame", Some(good_zstd[..good_zstd.len() / 2].to_vec())),
    ];
    // Over the limit, which is 4 MiB here: librdkafka's mock cluster keeps at most 5 MiB per partition log
    // and drops older records to stay under it, so the 11 MiB case runs in-process below.
    let mut huge = vec![0x00];
    huge.resize((4 << 20) + 2, 0x0a);
    recs.push(("4 MiB + 2 bytes", Some(huge)));
    // zstd bombs: 64 MiB of zeros in a few kB, with and without a declared content size.
    let zeros = vec![0u8; 64 << 20];
    let mut bomb = vec![0x01];
    bomb.extend(zstd::bulk::compress(&zeros, 19).unwrap());
    assert!(bomb.len() < 16 * 1024, "the bomb is tiny: {} bytes", bomb.len());
    recs.push(("zstd bomb", Some(bomb)));
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.include_contentsize(false).unwrap();
    std::io::Write::write_all(&mut enc, &zeros).unwrap();
    let streamed = enc.finish().unwrap(); // legacy framing: starts with the zstd magic
    assert!(streamed.len() < 64 * 1024, "{}", streamed.len());
    recs.push(("streamed zstd bomb", Some(streamed)));
    drop(zeros);
    // Scopes other than exactly "quality".
    for scope in ["llm", "Quality", ""] {
        recs.push((
            "scope",
            Some(QualityRecord { scope: scope.into(), ..QualityRecord::sample(2) }.encode(Framing::Framed)),
        ));
    }
    // No header: still a quality event (session id "").
    let no_header =
        QualityRecord { thread_id: None, passed: Some(true), ..QualityRecord::sample(3) }.encode(Framing::Framed);
    recs.push(("missing header", Some(no_header)));
    // Empty value and null value.
    recs.push(("empty", Some(Vec::new())));
    recs.push(("null", None));
    // Invalid UTF-8 in each kind of string the exporter reads: the message is refused as a whole (as prost does).
    let marked = QualityRecord {
        thread_id: Some("sess-@@".into()),
        scope: "quality".into(),
        model: Some("gpt-@@".into()),
        category: Some("cat-@@".into()),
        ..QualityRecord::sample(4)
    }
    .encode(Framing::Framed);
    for (what, marker) in [("thread id", &b"sess-@@"[..]), ("model", &b"gpt-@@"[..]), ("category", &b"cat-@@"[..])] {
        let mut bad = marker.to_vec();
        let n = bad.len();
        bad[n - 2..].copy_from_slice(&[0xc3, 0x28]); // a two-byte sequence with an invalid continuation
        recs.push((what, Some(patch(marked.clone(), marker, &bad))));
    }
    recs.push(("scope", Some(patch(marked.clone(), b"quality", b"qualit\xff"))));
    recs.push(("metric key", Some(patch(marked.clone(), b"latency_ms", b"latency_\xffs"))));
    // An unknown DashStreamMessage field (number 15): skipped, the message has no known branch.
    recs.push(("unknown field", Some(vec![0x00, 0x7a, 0x02, 0x01, 0x02])));
    // Good records afterwards, in two framings.
    recs.push(("good", Some(from_hex(WORKED_EXAMPLE))));
    recs.push((
        "good zstd",
        Some(QualityRecord { passed: Some(true), ..QualityRecord::sample(5) }.encode(Framing::FramedZstd)),
    ));
    let total = recs.len();
    assert_eq!(total, 23);

    let p = big_producer(&c);
    for (what, v) in &recs {
        let mut r: BaseRecord<'_, (), [u8]> = BaseRecord::to(&c.topic).partition(0);
        if let Some(v) = v {
            r = r.payload(v.as_slice());
        }
        p.send(r).map_err(|(e, _)| e).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    p.flush(Duration::from_secs(30)).expect("flush");

    let e = Exporter::start(&c, "g-shapes", &[("DASHSTREAM_MAX_PAYLOAD_BYTES", "4194304")]);
    e.wait_value("dashstream_exporter_messages_received_total", total as f64, WAIT);
    e.wait_value("dashstream_quality_monitor_queries_total", 3.0, WAIT);
    let s = e.scrape();
    for (reason, n) in [
        ("invalid_protobuf", 4.0 + 5.0),
        ("decompress", 1.0),
        ("payload_too_large", 1.0),
        ("decompressed_too_large", 2.0),
        ("empty", 1.0),
    ] {
        assert_eq!(
            series(&s, &format!("dashstream_exporter_messages_failed_total{{error_type=\"{reason}\"}}")),
            n,
            "{reason}"
        );
    }
    assert_eq!(s.sum("dashstream_exporter_messages_failed_total"), 14.0);
    let expect = [
        ("dashstream_exporter_kafka_payload_missing_total", 1.0),
        ("dashstream_exporter_messages_wrong_scope_total", 3.0),
        ("dashstream_exporter_messages_missing_header_total", 1.0),
        ("dashstream_exporter_messages_other_type_total{message_type=\"empty\"}", 2.0),
        ("dashstream_quality_monitor_queries_total", 3.0),
        ("dashstream_quality_monitor_queries_passed_total", 3.0),
    ];
    for (name, want) in expect {
        assert_eq!(series(&s, name), want, "{name}");
    }
    assert_eq!(e.get("/-/healthy").unwrap().status, 200);
    assert_eq!(e.get("/-/ready").unwrap().status, 200);
    let logs = e.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    // The bombs did not stay in memory (the decoder drops a bomb's buffer); informative figure only.
    eprintln!(
        "RSS after a 4 MiB record and two 64 MiB bombs: {:.1} MiB (informative)",
        series(&s, "process_resident_memory_bytes") / 1048576.0
    );
}

/// An 11 MiB record against the default 10 MiB limit, through the poll thread's decoder and the counter it
/// bumps; the decoder then still decodes good records, and has not kept the payload's size in memory.
#[test]
fn an_11_mib_record_is_refused_by_the_default_limit() {
    let cfg = Config::from_raw(&RawSettings::default()).unwrap();
    assert_eq!(cfg.max_payload_bytes, 10 << 20);
    let metrics = Metrics::new(&cfg.buckets).unwrap();
    let mut decoder = Decoder::new(cfg.max_payload_bytes);
    for (framing, first) in [("framed", 0x00u8), ("framed zstd", 0x01), ("legacy", 0x0a)] {
        let mut huge = vec![first];
        huge.resize(11 << 20, 0x0a);
        let err = decoder.decode(&huge).unwrap_err();
        assert_eq!(err, DecodeError::PayloadTooLarge { size: 11 << 20, max: 10 << 20 }, "{framing}");
        metrics.messages_failed[err.reason()].inc();
    }
    let mut buf = Vec::new();
    encode_text(&metrics, &mut buf).unwrap();
    let s = Scrape::parse(std::str::from_utf8(&buf).unwrap());
    assert_eq!(s.v("dashstream_exporter_messages_failed_total{error_type=\"payload_too_large\"}"), 3.0);
    assert_eq!(s.sum("dashstream_exporter_messages_failed_total"), 3.0);
    let good = from_hex(WORKED_EXAMPLE);
    assert!(matches!(decoder.decode(&good), Ok(Decoded::Quality(v)) if v.model == "gpt-4o"));
}

/// Series in an exposition, without the per-partition lag (it appears whenever librdkafka's statistics do).
/// Series in an exposition, less the per-partition ones (they follow the assignment, not the input).
fn series_count(text: &str) -> usize {
    let per_partition =
        ["dashstream_exporter_kafka_partition_lag{", "dashstream_exporter_kafka_partition_time_lag_seconds{"];
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty() && !per_partition.iter().any(|p| l.starts_with(p)))
        .count()
}

/// A quality record with distinct model, category and session strings.
fn distinct(i: u64) -> Vec<u8> {
    QualityRecord {
        thread_id: Some(format!("session-{i}")),
        quality_score: Some(0.5),
        passed: Some(false),
        latency_ms: Some(10),
        turn_number: Some(1),
        model: Some(format!("model-{i}")),
        category: Some(format!("category-{i}")),
        ..QualityRecord::default()
    }
    .encode(Framing::Framed)
}

/// Series the first event of [`distinct`]'s shape creates: the model label `other` in three families
/// (score: 11 buckets + `+Inf` + sum + count = 14; latency: 12 + 1 + 2 = 15; queries: 1). The category
/// (`Unknown`) and the session histogram exist from the start. Later events must add none.
const FIRST_EVENT_SERIES: usize = 14 + 15 + 1;

#[test]
fn a_hundred_thousand_distinct_models_categories_and_sessions_keep_series_and_sessions_bounded() {
    let n: u64 = std::env::var("BAD_INPUT_DISTINCT").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let cap: u64 = std::env::var("BAD_INPUT_SESSION_CAP").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let c = Cluster::new("distinct", 2);
    let e = Exporter::start(&c, "g-distinct", &[("PROMETHEUS_SESSION_MAX_TRACKED", &cap.to_string())]);
    let start_series = series_count(&e.scrape().text);
    let rss0 = e.scrape().v("process_resident_memory_bytes");

    c.produce(&(0..10).map(|i| ((i % 2) as i32, Some(distinct(i)))).collect::<Vec<_>>());
    e.wait_value("dashstream_quality_monitor_queries_total", 10.0, WAIT);
    let first = series_count(&e.scrape().text);
    assert_eq!(first, start_series + FIRST_EVENT_SERIES, "series created by the first events");

    // In batches, each consumed before the next: librdkafka's mock cluster keeps at most 5 MiB or 100 000
    // records per partition log and drops the oldest beyond that.
    let t = Instant::now();
    let batch = 10_000;
    let mut i = 10;
    while i < n {
        let end = (i + batch).min(n);
        c.produce(&(i..end).map(|i| ((i % 2) as i32, Some(distinct(i)))).collect::<Vec<_>>());
        e.wait_value("dashstream_quality_monitor_queries_total", end as f64, WAIT);
        i = end;
    }
    let s = e.scrape();
    eprintln!(
        "{n} distinct models/categories/sessions in {:.1} s; RSS {:.1} MiB before, {:.1} MiB after (informative)",
        t.elapsed().as_secs_f64(),
        rss0 / 1048576.0,
        s.v("process_resident_memory_bytes") / 1048576.0
    );
    assert_eq!(series_count(&s.text), first, "no series added by {n} distinct strings");
    let nf = n as f64;
    let expect = [
        ("dashstream_queries_by_model_total{model=\"other\"}", nf),
        ("dashstream_quality_score_by_model_count{model=\"other\"}", nf),
        ("dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}", nf),
        ("dashstream_exporter_sessions_tracked", cap as f64),
        ("dashstream_exporter_sessions_evicted_total", (n - cap) as f64),
        // Every evicted session is observed once, with its one turn.
        ("dashstream_turns_by_session_count", (n - cap) as f64),
        ("dashstream_turns_by_session_sum", (n - cap) as f64),
    ];
    for (name, want) in expect {
        assert_eq!(s.v(name), want, "{name}");
    }
    assert_eq!(s.sum("dashstream_exporter_messages_failed_total"), 0.0);
}

/// Process RSS in bytes (from /proc/self/status), for printed figures.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn a_million_distinct_session_ids_in_process_keep_the_tracker_at_its_cap() {
    const N: u64 = 1_000_000;
    const CAP: usize = 100_000; // the default PROMETHEUS_SESSION_MAX_TRACKED
    let cfg = Config::from_raw(&RawSettings::default()).unwrap();
    let metrics = Metrics::new(&cfg.buckets).unwrap();
    let mut applier = Applier::new(metrics.clone(), SessionTracker::new(Duration::from_secs(300), CAP));
    let mut decoder = Decoder::new(DEFAULT_MAX_PAYLOAD);
    let mut normalizer = Normalizer::default();
    let mut buf = Vec::new();
    encode_text(&metrics, &mut buf).unwrap();
    let start_series = series_count(std::str::from_utf8(&buf).unwrap());
    let rss0 = rss();
    let now = Instant::now();
    let mut after_first = 0;
    for i in 0..N {
        let bytes = distinct(i);
        let Ok(Decoded::Quality(v)) = decoder.decode(&bytes) else { panic!("record {i} decodes") };
        applier.apply(&normalizer.event(&v), 1_800_000_000.0, now);
        if i == 0 {
            encode_text(&metrics, &mut buf).unwrap();
            after_first = series_count(std::str::from_utf8(&buf).unwrap());
        }
    }
    let rss1 = rss();
    encode_text(&metrics, &mut buf).unwrap();
    let text = std::str::from_utf8(&buf).unwrap();
    assert_eq!(after_first, start_series + FIRST_EVENT_SERIES);
    assert_eq!(series_count(text), after_first, "no series added by a million distinct strings");
    assert_eq!(metrics.sessions_tracked.get(), CAP as i64);
    assert_eq!(metrics.sessions_evicted.get(), N - CAP as u64);
    assert_eq!(metrics.turns_by_session.get_sample_count(), N - CAP as u64);
    assert_eq!(metrics.queries_total.get(), N);
    // Idle sessions close on the timer: the tracker empties and each is observed once.
    applier.expire_sessions(now + Duration::from_secs(301));
    assert_eq!(metrics.sessions_tracked.get(), 0);
    assert_eq!(metrics.turns_by_session.get_sample_count(), N);
    eprintln!(
        "in-process: {N} distinct sessions, models and categories: RSS {:.1} MiB -> {:.1} MiB (tracker cap {CAP}; informative)",
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0
    );
}
