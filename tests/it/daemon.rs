//! The real binary against librdkafka's mock cluster (real Kafka protocol over TCP), scraped over HTTP.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{Cluster, Exporter};
use dashflow_prometheus_exporter::decode::labels::{category_label, is_librarian, model_label};
use dashflow_prometheus_exporter::sim::encode::{from_hex, Framing, QualityRecord, WORKED_EXAMPLE};
use dashflow_prometheus_exporter::sim::generator::{Generator, Traffic};

const WAIT: Duration = Duration::from_secs(30);

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/dashstream/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn worked_example_byte_for_byte_and_legacy_form() {
    let c = Cluster::new("worked", 1);
    let bytes = from_hex(WORKED_EXAMPLE);
    assert_eq!(bytes.len(), 132);
    c.produce(&[(0, Some(bytes.clone())), (0, Some(bytes[1..].to_vec()))]);
    let e = Exporter::start(&c, "g-worked", &[]);
    e.wait_value("dashstream_quality_monitor_queries_total", 2.0, WAIT);
    let s = e.scrape();
    assert_eq!(s.v("dashstream_quality_monitor_queries_passed_total"), 2.0);
    assert_eq!(s.sum("dashstream_quality_monitor_queries_failed_total"), 0.0);
    assert_eq!(s.v("dashstream_quality_monitor_quality_score"), 0.9);
    assert_eq!(s.v("dashstream_query_latency_ms_count"), 2.0);
    assert_eq!(s.v("dashstream_query_latency_ms_sum"), 3000.0);
    assert_eq!(s.v("dashstream_query_latency_ms_bucket{le=\"1000\"}"), 0.0);
    assert_eq!(s.v("dashstream_query_latency_ms_bucket{le=\"2000\"}"), 2.0);
    assert_eq!(s.v("dashstream_queries_by_model_total{model=\"gpt-4o\"}"), 2.0);
    assert_eq!(s.v("dashstream_quality_score_by_model_sum{model=\"gpt-4o\"}"), 1.8);
    assert_eq!(s.v("dashstream_quality_score_by_model_bucket{model=\"gpt-4o\",le=\"0.9\"}"), 2.0);
    assert_eq!(s.v("dashstream_latency_by_model_ms_count{model=\"gpt-4o\"}"), 2.0);
    // The event sends no retry_count: this exporter records no retry observation (the original observed 0).
    assert_eq!(s.get("dashstream_quality_retry_count_count{status=\"passed\"}"), None);
    assert_eq!(s.v("dashstream_turns_by_session_count"), 0.0);
    assert_eq!(s.v("dashstream_librarian_requests_total"), 0.0);
    assert_eq!(s.v("dashstream_exporter_messages_received_total"), 2.0);
    assert_eq!(s.sum("dashstream_exporter_messages_failed_total"), 0.0);
    assert!(s.v("dashstream_exporter_last_event_timestamp_seconds") > 1_735_689_600.0);
}

#[test]
fn official_records_every_framing_and_every_outcome() {
    let c = Cluster::new("official", 1);
    let files = [
        "01-framed-plain.bin",
        "02-legacy-unframed.bin",
        "03-framed-zstd.bin",
        "04-legacy-zstd.bin",
        "05-negative-ints-and-aliases.bin",
        "06-missing-header.bin",
        "07-type-mismatch.bin",
        "08-wrong-scope.bin",
        "09-token-chunk.bin",
        "11-truncated.bin",
        "12-bad-zstd.bin",
    ];
    let mut recs: Vec<(i32, Option<Vec<u8>>)> = files.iter().map(|f| (0, Some(testdata(f)))).collect();
    recs.push((0, None)); // null value
    recs.push((0, Some(from_hex(WORKED_EXAMPLE)))); // a good record after the bad ones
    c.produce(&recs);
    let e = Exporter::start(&c, "g-official", &[]);
    e.wait_value("dashstream_exporter_messages_received_total", 13.0, WAIT);
    e.wait_value("dashstream_quality_monitor_queries_total", 8.0, WAIT);
    let s = e.scrape();
    let expect = [
        ("dashstream_quality_monitor_queries_passed_total", 6.0), // 01-04, 06, worked example
        ("dashstream_quality_monitor_queries_failed_total{category=\"Edge\"}", 1.0), // 05 ("edge" via alias)
        ("dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}", 1.0), // 07
        ("dashstream_quality_monitor_queries_failed_total{category=\"Medium\"}", 0.0),
        ("dashstream_queries_by_model_total{model=\"gpt-4-turbo\"}", 4.0),
        ("dashstream_queries_by_model_total{model=\"mixtral\"}", 1.0),
        ("dashstream_queries_by_model_total{model=\"gpt-4o\"}", 1.0),
        ("dashstream_librarian_requests_total", 5.0), // 01-04 librarian + 05 document_search
        ("dashstream_librarian_tests_total{status=\"passed\"}", 4.0),
        ("dashstream_librarian_tests_total{status=\"failed\"}", 1.0),
        ("dashstream_librarian_iterations", 6.0),
        ("dashstream_quality_retry_count_count{status=\"passed\"}", 4.0),
        ("dashstream_quality_retry_count_sum{status=\"passed\"}", 12.0),
        ("dashstream_quality_retry_count_count{status=\"failed\"}", 1.0), // 05: -1 clamped to 0
        ("dashstream_query_latency_ms_count", 6.0),                       // 01-04, 05 (clamped 0), worked example
        ("dashstream_query_latency_ms_sum", 4.0 * 842.0 + 1500.0),
        ("dashstream_exporter_messages_missing_header_total", 1.0),
        ("dashstream_exporter_messages_wrong_scope_total", 1.0),
        ("dashstream_exporter_messages_other_type_total{message_type=\"token_chunk\"}", 1.0),
        ("dashstream_exporter_messages_failed_total{error_type=\"invalid_protobuf\"}", 1.0),
        ("dashstream_exporter_messages_failed_total{error_type=\"decompress\"}", 1.0),
        ("dashstream_exporter_kafka_payload_missing_total", 1.0),
        ("dashstream_exporter_invalid_values_total{key=\"latency_ms\"}", 1.0),
        ("dashstream_exporter_invalid_values_total{key=\"retry_count\"}", 1.0),
        ("dashstream_exporter_invalid_values_total{key=\"turn_number\"}", 1.0),
        ("dashstream_exporter_metric_type_mismatch_total{key=\"quality_score\"}", 1.0),
        ("dashstream_exporter_metric_type_mismatch_total{key=\"passed\"}", 1.0),
        ("dashstream_exporter_metric_type_mismatch_total{key=\"latency_ms\"}", 1.0),
        ("dashstream_quality_monitor_quality_score", 0.9), // the last event's
    ];
    for (series, want) in expect {
        assert_eq!(s.v(series), want, "{series}");
    }
    assert_eq!(s.sum("dashstream_exporter_messages_failed_total"), 2.0);
}

#[test]
fn malformed_records_are_counted_by_reason_and_later_records_still_count() {
    let c = Cluster::new("malformed", 2);
    let good = |n| Some(QualityRecord::sample(n).encode(Framing::Framed));
    let bomb = {
        let mut v = vec![0x01];
        v.extend(zstd::bulk::compress(&vec![0u8; 8 << 20], 19).unwrap());
        v
    };
    let oversize = {
        let mut v = vec![0x00];
        v.extend(std::iter::repeat_n(0x0a, 5000));
        v
    };
    let recs = vec![
        (0, good(1)),
        (0, Some(oversize)),                                 // payload_too_large (max 4096)
        (1, Some(bomb)),                                     // decompressed_too_large
        (0, Some(vec![0x01, 9, 9, 9])),                      // decompress
        (1, Some(b"not a valid protobuf message".to_vec())), // invalid_protobuf
        (0, Some(vec![0x00, 0xff])),                         // invalid_protobuf (truncated varint tag)
        (1, None),                                           // no payload
        (0, good(2)),
        (1, good(3)),
    ];
    c.produce(&recs);
    let e = Exporter::start(&c, "g-malformed", &[("DASHSTREAM_MAX_PAYLOAD_BYTES", "4096")]);
    e.wait_value("dashstream_exporter_messages_received_total", 9.0, WAIT);
    e.wait_value("dashstream_quality_monitor_queries_total", 3.0, WAIT);
    let s = e.scrape();
    for (reason, n) in [
        ("payload_too_large", 1.0),
        ("decompressed_too_large", 1.0),
        ("decompress", 1.0),
        ("invalid_protobuf", 2.0),
        ("empty", 0.0),
        ("decode", 0.0),
        ("process", 0.0),
        ("unknown", 0.0),
    ] {
        assert_eq!(
            s.v(&format!("dashstream_exporter_messages_failed_total{{error_type=\"{reason}\"}}")),
            n,
            "{reason}"
        );
    }
    assert_eq!(s.v("dashstream_exporter_kafka_payload_missing_total"), 1.0);
    assert_eq!(e.get("/-/healthy").unwrap().status, 200);
    let logs = e.logs();
    assert!(logs.contains("rejected"), "a bad record is logged:\n{logs}");
    assert!(!logs.contains("panicked"));
}

/// Expected counters for generated records.
#[derive(Default, Debug, PartialEq)]
struct Totals {
    total: u64,
    passed: u64,
    failed_by_category: BTreeMap<&'static str, u64>,
    by_model: BTreeMap<&'static str, u64>,
    librarian: u64,
}

fn totals(recs: &[QualityRecord]) -> Totals {
    let mut t = Totals::default();
    for r in recs {
        t.total += 1;
        if r.passed == Some(true) {
            t.passed += 1;
        } else {
            *t.failed_by_category.entry(category_label(r.category.as_deref().unwrap_or("Unknown"))).or_default() += 1;
        }
        if let Some(m) = r.model.as_deref().filter(|m| !m.is_empty()) {
            *t.by_model.entry(model_label(m)).or_default() += 1;
        }
        if r.application_type.as_deref().is_some_and(is_librarian) {
            t.librarian += 1;
        }
    }
    t
}

#[test]
fn ten_thousand_mixed_events_across_three_partitions_are_counted_exactly() {
    let c = Cluster::new("mixed", 3);
    let mut g = Generator::new(Traffic { seed: 2026, zstd_ratio: 0.1, legacy_ratio: 0.1, ..Traffic::default() });
    let mut recs = Vec::new();
    let mut records = Vec::new();
    for i in 0..10_000 {
        let gen = g.next_generated();
        records.push(gen.record);
        recs.push((i % 3, Some(gen.value)));
    }
    c.produce(&recs);
    let want = totals(&records);
    let e = Exporter::start(&c, "g-mixed", &[]);
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + WAIT;
    loop {
        let n = e.scrape().v("dashstream_quality_monitor_queries_total");
        if n > 0.0 && first.is_none() {
            first = Some(Instant::now());
        }
        if n == 10_000.0 {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} of 10000 counted\n{}", e.logs());
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = first.unwrap().elapsed();
    eprintln!(
        "10000 events counted in {took:?} after the first ({:.0} events/s, informative)",
        10_000.0 / took.as_secs_f64().max(1e-3)
    );
    let s = e.scrape();
    assert_eq!(s.v("dashstream_quality_monitor_queries_passed_total"), want.passed as f64);
    for cat in ["Simple", "Medium", "Complex", "Edge", "Unknown"] {
        let got = s.v(&format!("dashstream_quality_monitor_queries_failed_total{{category=\"{cat}\"}}"));
        assert_eq!(got, *want.failed_by_category.get(cat).unwrap_or(&0) as f64, "{cat}");
    }
    for (model, n) in &want.by_model {
        assert_eq!(s.v(&format!("dashstream_queries_by_model_total{{model=\"{model}\"}}")), *n as f64, "{model}");
    }
    assert_eq!(s.sum("dashstream_queries_by_model_total"), 10_000.0);
    assert_eq!(s.v("dashstream_librarian_requests_total"), want.librarian as f64);
    assert_eq!(s.v("dashstream_query_latency_ms_count"), 10_000.0);
    assert_eq!(s.v("dashstream_exporter_messages_received_total"), 10_000.0);
    assert_eq!(s.sum("dashstream_exporter_messages_failed_total"), 0.0);
    // Lag is reported per partition once statistics arrive, and sums to the total.
    e.wait_until(Duration::from_secs(5), "per-partition lag series", |e| {
        let s = e.scrape();
        (0..3).all(|p| s.get(&format!("dashstream_exporter_kafka_partition_lag{{partition=\"{p}\"}}")) == Some(0.0))
            && s.get("dashstream_exporter_kafka_consumer_lag") == Some(0.0)
    });
}

#[test]
fn sigterm_commits_exactly_what_was_applied_and_a_restart_counts_nothing_twice() {
    let c = Cluster::new("commit", 3);
    let per_partition = [1000usize, 700, 300];
    let mut recs = Vec::new();
    let mut n = 0;
    for (p, count) in per_partition.iter().enumerate() {
        for _ in 0..*count {
            n += 1;
            recs.push((p as i32, Some(QualityRecord::sample(n).encode(Framing::Framed))));
        }
    }
    c.produce(&recs);
    let mut e = Exporter::start(&c, "g-commit", &[]);
    e.wait_value("dashstream_quality_monitor_queries_total", 2000.0, WAIT);
    let (status, took) = e.terminate();
    assert_eq!(status.code(), Some(0), "{}", e.logs());
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(c.committed("g-commit"), vec![1000, 700, 300]);
    drop(e);

    // More records; a restarted exporter in the same group counts only those.
    let more: Vec<_> =
        (0..150i32).map(|i| (i % 3, Some(QualityRecord::sample(i as u64).encode(Framing::Framed)))).collect();
    c.produce(&more);
    let mut e = Exporter::start(&c, "g-commit", &[]);
    e.wait_value("dashstream_quality_monitor_queries_total", 150.0, WAIT);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(e.scrape().v("dashstream_quality_monitor_queries_total"), 150.0);
    assert_eq!(e.scrape().v("dashstream_exporter_messages_received_total"), 150.0);
    let (status, _) = e.terminate();
    assert_eq!(status.code(), Some(0));
    assert_eq!(c.committed("g-commit"), vec![1050, 750, 350]);
}

/// Without a producer stamp in the header, an event's delay is measured from its Kafka record timestamp; a
/// caught-up partition shows a time lag of 0.
#[test]
fn event_delay_from_the_kafka_timestamp_and_time_lag_zero_once_caught_up() {
    use rdkafka::producer::{BaseRecord, Producer as _};
    let c = Cluster::new("delay", 1);
    let e = Exporter::start(&c, "g-delay", &[]);
    e.wait_value("dashstream_exporter_kafka_assigned_partitions", 1.0, WAIT);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let p = c.producer();
    for i in 0..10u64 {
        // sample records carry no header timestamp; the record says it was written 90 s ago
        let bytes = QualityRecord::sample(i).encode(Framing::Framed);
        p.send(BaseRecord::<(), [u8]>::to("delay").partition(0).payload(&bytes[..]).timestamp(now_ms - 90_000))
            .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
    e.wait_value("dashstream_exporter_event_delay_seconds_count", 10.0, WAIT);
    let s = e.scrape();
    assert_eq!(s.v("dashstream_exporter_event_delay_seconds_bucket{le=\"60\"}"), 0.0, "{}", s.text);
    assert_eq!(s.v("dashstream_exporter_event_delay_seconds_bucket{le=\"120\"}"), 10.0);
    let mean = s.v("dashstream_exporter_event_delay_seconds_sum") / 10.0;
    assert!((90.0..110.0).contains(&mean), "mean delay {mean}");
    assert_eq!(s.v("dashstream_exporter_event_clock_skew_total"), 0.0);
    // all applied, nothing newer on the broker: caught up
    e.wait_value("dashstream_exporter_kafka_partition_time_lag_seconds{partition=\"0\"}", 0.0, WAIT);
    assert_eq!(e.scrape().v("dashstream_exporter_kafka_consumer_time_lag_seconds"), 0.0);
}

/// A member left without a partition (one partition, two members) stays connected and ready, shows
/// `assigned_partitions` 0, and says so in its log once two session timeouts have passed; the owner does not.
#[test]
fn a_member_with_no_partition_shows_it_and_warns_after_two_session_timeouts() {
    const IDLE: &str = "no partition of topic \"idle\" assigned for";
    let c = Cluster::new("idle", 1);
    let timeout = [("KAFKA_SESSION_TIMEOUT_MS", "3500")];
    let a = Exporter::start(&c, "g-idle", &timeout);
    a.wait_value("dashstream_exporter_kafka_assigned_partitions", 1.0, WAIT);
    let b = Exporter::start(&c, "g-idle", &timeout);
    // After the rebalance one member owns partition 0 (the assignor decides which) and the other none. Before
    // it, `a` still owns it and `b` has none: so the split counts only once `b` has had its assignment.
    let owners = |e: &Exporter| e.scrape().get("dashstream_exporter_kafka_assigned_partitions");
    a.wait_until(WAIT, "one owner and one idle member", |a| {
        let (x, y) = (owners(a), owners(&b));
        b.logs().contains("partitions assigned") && matches!((x, y), (Some(1.0), Some(0.0)) | (Some(0.0), Some(1.0)))
    });
    let (owner, idle) = if owners(&a) == Some(1.0) { (&a, &b) } else { (&b, &a) };
    idle.wait_until(WAIT, "the idle member's warning", |e| e.logs().contains(IDLE));
    let line = idle.logs().lines().find(|l| l.contains(IDLE)).unwrap().to_string();
    assert!(line.contains("WARN") && line.contains("group \"g-idle\" consumes nothing. Either the group"), "{line}");
    let secs: u64 = line.split(IDLE).nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!((7..30).contains(&secs), "warned after {secs} s (patience: 2 x 3.5 s): {line}");
    assert_eq!(idle.get("/-/ready").unwrap().status, 200, "a standby is connected, hence ready");
    let s = idle.scrape();
    assert_eq!(s.v("dashstream_exporter_kafka_assigned_partitions"), 0.0);
    assert_eq!(s.v("dashstream_exporter_ready"), 1.0);
    // Once, not every poll: two more seconds add no second line; and the owner never warns.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(idle.logs().matches(IDLE).count(), 1, "{}", idle.logs());
    assert!(!owner.logs().contains(IDLE), "{}", owner.logs());
}

/// Forwards every connection accepted on `listener` to `target` (bytes only, both ways).
fn forward(listener: TcpListener, target: String) {
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(up) = TcpStream::connect(&target) else { continue };
            let (mut a, b) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || {
                std::io::copy(&mut a, &mut b.try_clone().unwrap()).map(|_| b.shutdown(std::net::Shutdown::Write))
            });
            let (mut c, mut d) = (up, conn);
            std::thread::spawn(move || std::io::copy(&mut c, &mut d).map(|_| d.shutdown(std::net::Shutdown::Write)));
        }
    });
}

#[test]
fn readiness_follows_the_broker_and_the_process_survives_without_one() {
    let port = crate::common::free_port();
    let brokers = format!("127.0.0.1:{port}");
    let e = Exporter::start_with(&brokers, "late", "g-late", &[]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(e.get("/-/ready").unwrap().status, 503);
    assert_eq!(e.get("/-/healthy").unwrap().status, 200);
    let s = e.scrape();
    assert_eq!(s.v("dashstream_exporter_ready"), 0.0);
    assert!(s.v("dashstream_exporter_kafka_consumer_errors_total") >= 1.0, "connection failures are counted");

    // The broker appears on the configured address.
    let c = Cluster::new("late", 1);
    let bootstrap = c.brokers.split(',').next().unwrap().to_string();
    forward(TcpListener::bind(("127.0.0.1", port)).unwrap(), bootstrap);
    c.produce(&[(0, Some(from_hex(WORKED_EXAMPLE)))]);
    e.wait_until(Duration::from_secs(20), "/-/ready 200", |e| {
        e.get("/-/ready").map(|r| r.status == 200).unwrap_or(false)
    });
    e.wait_value("dashstream_quality_monitor_queries_total", 1.0, WAIT);
    assert_eq!(e.scrape().v("dashstream_exporter_ready"), 1.0);
}

#[test]
fn http_surface() {
    let c = Cluster::new("http", 1);
    let e = Exporter::start(&c, "g-http", &[]);
    let r = e.get("/metrics").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/plain; version=0.0.4"));
    assert_eq!(r.header("Content-Encoding"), None);
    let plain = r.text();
    assert!(plain.contains("# TYPE dashstream_quality_monitor_queries_total counter"));

    let r = e.request("GET", "/metrics", &[("Accept-Encoding", "gzip")]).unwrap();
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&r.body[..]).read_to_string(&mut unzipped).unwrap();
    assert!(unzipped.contains("# HELP dashstream_quality_monitor_queries_total Total queries processed"));
    assert!(r.body.len() * 3 < unzipped.len(), "gzip compresses: {} vs {}", r.body.len(), unzipped.len());

    let r = e.request("HEAD", "/metrics", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/plain; version=0.0.4"));
    assert!(r.body.is_empty());

    let r = e.get("/").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("href=\"/metrics\"") && r.text().contains(env!("CARGO_PKG_VERSION")));
    assert_eq!(e.get("/-/healthy").unwrap().status, 200);
    assert_eq!(e.get("/nope").unwrap().status, 404);
    let r = e.request("POST", "/metrics", &[("Content-Length", "0")]).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    assert_eq!(e.request("DELETE", "/-/ready", &[]).unwrap().status, 405);

    // The endpoint timing histogram counts earlier scrapes.
    assert!(e.scrape().v("dashstream_exporter_metrics_endpoint_duration_seconds_count") >= 2.0);
}

#[test]
fn connections_beyond_the_cap_get_503_and_idle_ones_are_closed() {
    use std::io::Write as _;
    let c = Cluster::new("conns", 1);
    let e = Exporter::start(&c, "g-conns", &[("METRICS_MAX_CONNECTIONS", "3"), ("METRICS_HTTP_TIMEOUT_SECS", "3")]);
    // Every 503 this test gets, to compare with the counter at the end.
    let refused = std::cell::Cell::new(0);
    // GET on a fresh connection until it is admitted (a 503 is counted and retried).
    let admitted = |path: &str| {
        let t0 = Instant::now();
        loop {
            let r = e.get(path).unwrap();
            if r.status != 503 {
                return r;
            }
            refused.set(refused.get() + 1);
            assert!(t0.elapsed() < Duration::from_secs(10), "still refused after 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // A kept-alive connection whose request was just answered.
    let hold = || {
        let t0 = Instant::now();
        loop {
            let mut s = TcpStream::connect(e.addr()).unwrap();
            s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while !got.ends_with(b"Healthy\n") && !got.ends_with(b"try again\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "answered: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            if got.ends_with(b"Healthy\n") {
                return s;
            }
            refused.set(refused.get() + 1);
            assert!(t0.elapsed() < Duration::from_secs(10), "still refused after 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Until the server closes it (idle timeout or eviction), without an answer.
    let wait_closed = |mut s: TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            other => panic!("expected the server to close the connection, got {other:?}"),
        }
    };
    // Three kept-alive connections just answered hold the cap: one answered less than 1 s ago is not given up
    // for a newcomer (an incomplete or never-sent request would be: see tests/it/hostile_http.rs). On a loaded
    // machine more than 1 s may pass between the first answer and the newcomer; then the gate rightly evicts
    // the quietest connection and the newcomer is answered. Then all three are left to be closed by the
    // server and the test tries again.
    let mut attempts = 0;
    let idle = loop {
        attempts += 1;
        assert!(attempts <= 10, "the cap never held: every newcomer evicted a connection");
        let held: Vec<TcpStream> = (0..3).map(|_| hold()).collect();
        let r = e.get("/metrics").unwrap();
        if r.status == 503 {
            refused.set(refused.get() + 1);
            break held;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        held.into_iter().for_each(wait_closed);
    };
    // The idle connections are closed by the server after the idle timeout, without an answer...
    idle.into_iter().for_each(wait_closed);
    // ...and then scrapes are admitted again (once the gate has joined the closed connections' threads).
    assert_eq!(admitted("/metrics").status, 200);
    let s = e.scrape();
    assert_eq!(s.v("dashstream_exporter_http_connections_rejected_total"), refused.get() as f64);
    // Each held connection was closed by the server exactly once, for one of these two reasons; the last three
    // (held while a newcomer was refused: none evictable) by the idle timeout.
    let idle_closed = s.v("dashstream_exporter_http_connections_closed_total{reason=\"idle_timeout\"}");
    let evicted = s.v("dashstream_exporter_http_connections_closed_total{reason=\"evicted\"}");
    assert_eq!(idle_closed + evicted, 3.0 * attempts as f64, "idle {idle_closed}, evicted {evicted}");
    assert!(idle_closed >= 3.0, "idle {idle_closed}");
}

#[test]
fn systemd_notify_ready_only_once_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = std::env::temp_dir().join(format!("dfe-notify-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let recv_all = |sock: &UnixDatagram| {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    };

    let port = crate::common::free_port();
    let path = sock_path.display().to_string();
    let mut e = Exporter::start_with(
        &format!("127.0.0.1:{port}"),
        "notify",
        "g-notify",
        &[("NOTIFY_SOCKET", path.as_str()), ("WATCHDOG_USEC", "1000000")],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(e.get("/-/ready").unwrap().status, 503);
    let before = recv_all(&sock);
    assert!(!before.iter().any(|m| m.contains("READY=1")), "READY=1 before ready: {before:?}");
    assert!(before.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2, "watchdog pings while healthy: {before:?}");

    let c = Cluster::new("notify", 1);
    forward(TcpListener::bind(("127.0.0.1", port)).unwrap(), c.brokers.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut msgs = Vec::new();
    while !msgs.iter().any(|m: &String| m.starts_with("READY=1")) {
        assert!(Instant::now() < deadline, "no READY=1: {msgs:?}\n{}", e.logs());
        msgs.extend(recv_all(&sock));
    }
    assert_eq!(e.get("/-/ready").unwrap().status, 200, "READY=1 came once /-/ready is 200");
    assert_eq!(msgs.iter().filter(|m| m.starts_with("READY=1")).count(), 1);
    let (status, _) = e.terminate();
    assert_eq!(status.code(), Some(0));
    let after = recv_all(&sock);
    assert!(after.iter().any(|m| m.starts_with("STOPPING=1")), "{after:?}");
    assert!(!after.iter().any(|m| m.starts_with("READY=1")), "READY=1 is sent once: {after:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_stay_scrapable_after_the_final_commit_while_lingering() {
    let c = Cluster::new("linger", 2);
    let recs: Vec<_> =
        (0..500i32).map(|i| (i % 2, Some(QualityRecord::sample(i as u64).encode(Framing::Framed)))).collect();
    c.produce(&recs);
    let mut e = Exporter::start(&c, "g-linger", &[("METRICS_SHUTDOWN_LINGER_SECS", "2")]);
    e.wait_value("dashstream_quality_monitor_queries_total", 500.0, WAIT);
    let start = Instant::now();
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(e.child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(e.get("/-/ready").unwrap().status, 503, "not ready while stopping");
    assert_eq!(e.scrape().v("dashstream_quality_monitor_queries_total"), 500.0, "final counts still served");
    assert_eq!(c.committed("g-linger"), vec![250, 250], "already committed while lingering");
    let status = e.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(7), "linger then exit: {took:?}");
}

/// The nice value in a /proc `stat` line (field 19; the fields after "(comm) " start with field 3).
fn nice_in_stat(stat: &str) -> i32 {
    stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(16).unwrap().parse().unwrap()
}

/// Nice value of each thread of `pid` (name, nice), from /proc.
fn thread_nice(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let (Ok(comm), Ok(stat)) =
            (std::fs::read_to_string(task.path().join("comm")), std::fs::read_to_string(task.path().join("stat")))
        else {
            continue; // the thread ended meanwhile
        };
        out.push((comm.trim().to_string(), nice_in_stat(&stat)));
    }
    out
}

/// The ingest threads (librdkafka's, kafka-poll, worker) run KAFKA_INGEST_NICE (default 5) lower than the
/// HTTP threads and the main thread; 0 keeps them all equal.
#[test]
fn ingest_threads_run_at_a_lower_priority_than_the_http_threads() {
    let c = Cluster::new("nice", 1);
    let base = nice_in_stat(&std::fs::read_to_string("/proc/self/stat").unwrap());
    for (extra, raise) in [(vec![], 5), (vec![("KAFKA_INGEST_NICE", "0")], 0), (vec![("KAFKA_INGEST_NICE", "19")], 19)]
    {
        let e = Exporter::start(&c, &format!("g-nice-{raise}"), &extra);
        let threads = thread_nice(e.child.id());
        let named = |prefix: &str| threads.iter().filter(|(n, _)| n.starts_with(prefix)).collect::<Vec<_>>();
        for prefix in ["kafka-poll", "worker", "rdk:main", "rdk:broker", "http-gate", "http"] {
            assert!(!named(prefix).is_empty(), "no {prefix} thread in {threads:?}");
        }
        let ingest = (base + raise).min(19);
        for (name, nice) in &threads {
            let want = if name == "kafka-poll" || name == "worker" || name.starts_with("rdk:") { ingest } else { base };
            assert_eq!(*nice, want, "{name} with KAFKA_INGEST_NICE={raise}: {threads:?}");
        }
    }
}
