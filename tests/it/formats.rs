//! The exposition formats over real HTTP from the real binary (docs/formats.md): the `Accept`
//! headers Prometheus 2.42 and 3 send get OpenMetrics or protobuf, everything else today's text; the
//! OpenMetrics and protobuf answers hold the text format's series and values, exemplars with the ids of
//! records that were produced, and native histograms whose buckets add up to what was produced. Records go
//! through librdkafka's mock cluster over TCP; the protobuf answer is decoded with prost.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Cluster, Exporter, Scrape, BIN};
use dashflow_prometheus_exporter::metrics::protobuf::decoded::{self, MetricType};
use dashflow_prometheus_exporter::sim::generator::{Generator, Traffic};

const P2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const P2_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,\
application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,\
text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const P3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
const OM_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PB_TYPE: &str = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
const N: usize = 3000;

/// Produces N generator records (seed 77) on 2 partitions; returns the thread ids they carry.
fn produce(c: &Cluster) -> BTreeSet<String> {
    let mut g = Generator::new(Traffic { seed: 77, ..Traffic::default() });
    let mut threads = BTreeSet::new();
    let recs: Vec<_> = (0..N)
        .map(|i| {
            let gen = g.next_generated();
            threads.insert(gen.record.thread_id.clone().unwrap());
            ((i % 2) as i32, Some(gen.value))
        })
        .collect();
    c.produce(&recs);
    threads
}

fn drained(e: &Exporter) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while e.scrape().get("dashstream_quality_monitor_queries_total") != Some(N as f64) {
        assert!(Instant::now() < deadline, "not drained:\n{}", e.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(e: &Exporter, accept: Option<&str>, gzip: bool) -> crate::common::Response {
    let mut headers = Vec::new();
    if let Some(a) = accept {
        headers.push(("Accept", a));
    }
    if gzip {
        headers.push(("Accept-Encoding", "gzip"));
    }
    let r = e.request("GET", "/metrics", &headers).unwrap();
    assert_eq!(r.status, 200);
    r
}

fn body(r: &crate::common::Response) -> Vec<u8> {
    match r.header("Content-Encoding") {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&r.body[..]).read_to_end(&mut out).unwrap();
            out
        }
        _ => r.body.clone(),
    }
}

/// Series → value, without the lines that move between two scrapes (process_*, the endpoint timing, the
/// HTTP connection counters) and without OpenMetrics' `_created` lines and exemplars.
fn steady(text: &str) -> BTreeMap<String, f64> {
    let cut: String = text
        .lines()
        .filter(|l| !l.starts_with("process_") && !l.contains("metrics_endpoint_duration") && !l.contains("_created"))
        .filter(|l| !l.starts_with("dashstream_exporter_http_") && !l.starts_with("dashstream_exporter_kafka_"))
        .map(|l| format!("{}\n", l.split(" # ").next().unwrap()))
        .collect();
    Scrape::parse(&cut).series
}

#[test]
fn each_accept_header_gets_its_format_with_the_same_series() {
    let c = Cluster::new("formats", 2);
    let threads = produce(&c);
    let e = Exporter::start(&c, "g-formats", &[]);
    drained(&e);

    // Text: no Accept, */*, text/plain and an Accept with nothing served here.
    let text = get(&e, None, false);
    assert_eq!(text.header("Content-Type"), Some("text/plain; version=0.0.4"));
    assert_eq!(text.header("Vary"), Some("Accept, Accept-Encoding"));
    let text_series = steady(&text.text());
    for a in ["*/*", "text/plain", "text/plain;version=0.0.4", "application/json"] {
        let r = get(&e, Some(a), true);
        assert_eq!(r.header("Content-Type"), Some("text/plain; version=0.0.4"), "{a}");
        assert_eq!(steady(&String::from_utf8(body(&r)).unwrap()), text_series, "{a}");
    }

    // OpenMetrics, for Prometheus 2.42's and Prometheus 3's headers, with and without gzip.
    for (a, gzip) in [(P2, false), (P3, true)] {
        let r = get(&e, Some(a), gzip);
        assert_eq!(r.header("Content-Type"), Some(OM_TYPE));
        assert_eq!(r.header("Content-Encoding"), gzip.then_some("gzip"));
        let om = String::from_utf8(body(&r)).unwrap();
        assert!(om.ends_with("# EOF\n"));
        assert_eq!(steady(&om), text_series);
        assert!(om.contains("# TYPE dashstream_quality_monitor_queries counter\n"));
        assert!(om.contains(&format!("dashstream_quality_monitor_queries_total {N}\n")));
        let seen: BTreeSet<&str> =
            om.lines().filter_map(|l| l.split_once(" # {thread_id=\"")?.1.split_once('"').map(|(t, _)| t)).collect();
        assert!(seen.len() >= 10, "exemplars: {seen:?}");
        assert!(seen.iter().all(|t| threads.contains(*t)), "{seen:?} not all produced");
    }

    // Protobuf, as Prometheus asks with native histograms on.
    let r = get(&e, Some(P2_NATIVE), true);
    assert_eq!(r.header("Content-Type"), Some(PB_TYPE));
    let fams = decoded::families(&body(&r)).unwrap();
    let find = |name: &str| fams.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name} missing"));
    let queries = find("dashstream_quality_monitor_queries_total");
    assert_eq!(queries.r#type(), MetricType::Counter);
    assert_eq!(queries.metric[0].counter.as_ref().unwrap().value, N as f64);
    let lat = find("dashstream_query_latency_ms").metric[0].histogram.as_ref().unwrap();
    assert_eq!(lat.sample_count, N as u64, "every generated event has a latency");
    assert_eq!(lat.bucket.last().unwrap().cumulative_count, N as u64);
    assert_eq!(lat.bucket.len(), 13, "12 classic bounds and +Inf");
    assert_eq!(lat.schema, 3);
    let native: i64 = lat
        .positive_delta
        .iter()
        .scan(0, |c, d| {
            *c += d;
            Some(*c)
        })
        .sum();
    assert_eq!(native as u64 + lat.zero_count, N as u64);
    let classic_by_model: u64 =
        find("dashstream_latency_by_model_ms").metric.iter().map(|m| m.histogram.as_ref().unwrap().sample_count).sum();
    assert_eq!(
        classic_by_model,
        text_series
            .iter()
            .filter(|(k, _)| k.starts_with("dashstream_latency_by_model_ms_count"))
            .map(|(_, v)| *v as u64)
            .sum::<u64>()
    );
    assert_eq!(classic_by_model, N as u64, "every generated event has a model");
    for ex in lat.bucket.iter().filter_map(|b| b.exemplar.as_ref()) {
        assert!(threads.contains(&ex.label[0].value), "{:?}", ex.label);
        assert_eq!(ex.label[1].value.len(), 32);
    }
    let mut e = e;
    e.terminate();
}

#[test]
fn exemplars_and_native_histograms_can_be_turned_off() {
    let c = Cluster::new("formats-off", 2);
    produce(&c);
    let e = Exporter::start(
        &c,
        "g-off",
        &[("PROMETHEUS_EXEMPLARS", "false"), ("PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS", "0")],
    );
    drained(&e);
    let om = String::from_utf8(body(&get(&e, Some(P2), false))).unwrap();
    assert!(!om.contains(" # {"), "no exemplars");
    assert!(om.contains("dashstream_query_latency_ms_bucket{le=\"+Inf\"} 3000\n"));
    let fams = decoded::families(&body(&get(&e, Some(P2_NATIVE), false))).unwrap();
    let lat =
        fams.iter().find(|f| f.name == "dashstream_query_latency_ms").unwrap().metric[0].histogram.clone().unwrap();
    assert_eq!(lat.sample_count, N as u64);
    assert!(lat.positive_span.is_empty() && lat.zero_threshold == 0.0 && lat.schema == 0, "classic only");
    assert!(lat.bucket.iter().all(|b| b.exemplar.is_none()));
    let mut e = e;
    e.terminate();
}

#[test]
fn invalid_format_settings_exit_2_naming_the_variable() {
    for (var, value, allowed) in [
        ("PROMETHEUS_NATIVE_HISTOGRAM_SCHEMA", "9", "from -4 to 8"),
        ("PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS", "100", "132..=4096"),
        ("PROMETHEUS_NATIVE_HISTOGRAM_ZERO_THRESHOLD", "-1", "finite number >= 0"),
        ("PROMETHEUS_EXEMPLARS", "maybe", "true or false"),
    ] {
        let out = Command::new(BIN).arg("check-config").env_clear().env(var, value).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(err.contains(var) && err.contains(value) && err.contains(allowed), "{var}={value}: {err}");
    }
}
