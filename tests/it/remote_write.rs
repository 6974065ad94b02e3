//! Prometheus remote write against a receiver written here (a plain TCP server that answers as scripted and
//! keeps every request it got), with the real binary consuming from librdkafka's mock cluster: what a push
//! carries, its headers, and what each kind of answer leads to (retry, back-off, Retry-After, drop), a
//! receiver that is down or stalls, and the last push at shutdown. `tests/e2e/test_remote_write.py` does the
//! same against a real Prometheus.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Cluster, Exporter};
use dashflow_prometheus_exporter::remote_write::wire::WriteRequest;
use dashflow_prometheus_exporter::sim::encode::{Framing, QualityRecord};
use prost::Message;

/// How the receiver answers one request.
#[derive(Clone, Debug)]
enum Reply {
    Status(u16, Option<&'static str>),
    /// Read the request, then answer nothing for this long.
    Stall(Duration),
    /// 400 with an error text holding a line break and a terminal escape sequence.
    Forged,
}

/// One request the receiver got.
struct Got {
    at: Instant,
    head: String,
    req: WriteRequest,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The value of the series with exactly these labels (besides `__name__`, `job`, `instance`, `site`).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: BTreeMap<&str, &str> = labels.iter().copied().collect();
        want.insert("__name__", name);
        self.req.timeseries.iter().find_map(|ts| {
            let got: BTreeMap<&str, &str> = ts
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .filter(|(n, _)| !matches!(*n, "job" | "instance" | "site"))
                .collect();
            (got == want).then(|| ts.samples[0].value)
        })
    }

    fn timestamp(&self) -> i64 {
        self.req.timeseries[0].samples[0].timestamp
    }
}

struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(script: Vec<Reply>) -> Receiver {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    fn start_on(listener: TcpListener, script: Vec<Reply>) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let r =
            Receiver { addr, got: Arc::default(), script: Arc::new(Mutex::new(script.into())), stop: Arc::default() };
        let (got, script, stop) = (r.got.clone(), r.script.clone(), r.stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let reply = script.lock().unwrap().pop_front().unwrap_or(Reply::Status(204, None));
                let got = got.clone();
                std::thread::spawn(move || serve(conn, reply, &got));
            }
        });
        r
    }

    fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    fn wait_for(&self, what: &str, timeout: Duration, cond: impl Fn(&[Got]) -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if cond(&self.got.lock().unwrap()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out after {timeout:?} waiting for {what} ({} requests so far)", self.count());
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut conn: TcpStream, reply: Reply, got: &Mutex<Vec<Got>>) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Content-Length");
    while buf.len() < head_end + len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let raw = snap::raw::Decoder::new().decompress_vec(&buf[head_end..head_end + len]).expect("a snappy block");
    let req = WriteRequest::decode(raw.as_slice()).expect("a WriteRequest");
    got.lock().unwrap().push(Got { at: Instant::now(), head, req });
    let answer = match reply {
        Reply::Stall(d) => {
            std::thread::sleep(d);
            return;
        }
        Reply::Forged => {
            let body = "bad request\n[ERROR] forged line\u{1b}[2J";
            format!("HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        }
        Reply::Status(code, retry_after) => {
            let extra = retry_after.map(|v| format!("Retry-After: {v}\r\n")).unwrap_or_default();
            let body = if code >= 400 { "scripted refusal" } else { "" };
            format!("HTTP/1.1 {code} Scripted\r\n{extra}Content-Length: {}\r\n\r\n{body}", body.len())
        }
    };
    let _ = conn.write_all(answer.as_bytes());
}

fn records(n: u64) -> Vec<(i32, Option<Vec<u8>>)> {
    (0..n).map(|i| ((i % 2) as i32, Some(QualityRecord::sample(i).encode(Framing::Framed)))).collect()
}

fn exporter(c: &Cluster, group: &str, url: &str, extra: &[(&str, &str)]) -> Exporter {
    let mut env = vec![
        ("REMOTE_WRITE_URL", url),
        ("REMOTE_WRITE_INSTANCE", "edge-test"),
        ("REMOTE_WRITE_EXTRA_LABELS", "site=lab"),
    ];
    env.extend_from_slice(extra);
    Exporter::start(c, group, &env)
}

const SENT: &str = "dashstream_exporter_remote_write_samples_sent_total";
const FAILED: &str = "dashstream_exporter_remote_write_samples_failed_total";
const REQ_FAILED: &str = "dashstream_exporter_remote_write_requests_failed_total";

#[test]
fn every_series_is_pushed_with_the_protocol_headers_and_the_configured_labels() {
    let c = Cluster::new("rw-content", 2);
    let rx = Receiver::start(vec![]);
    let mut e = exporter(&c, "rw-content", &rx.url(), &[("REMOTE_WRITE_INTERVAL_SECS", "1")]);
    c.produce(&records(40));
    e.wait_value("dashstream_quality_monitor_queries_total", 40.0, Duration::from_secs(20));
    rx.wait_for("a push carrying all 40 events", Duration::from_secs(10), |g| {
        g.last().and_then(|p| p.value("dashstream_quality_monitor_queries_total", &[])) == Some(40.0)
    });
    let scrape = e.scrape();
    let got = rx.got.lock().unwrap();
    let p = got.last().unwrap();
    assert!(p.head.starts_with("POST /api/v1/write HTTP/1.1\r\n"), "{}", p.head);
    assert_eq!(p.header("Content-Encoding"), Some("snappy"));
    assert_eq!(p.header("Content-Type"), Some("application/x-protobuf"));
    assert_eq!(p.header("X-Prometheus-Remote-Write-Version"), Some("0.1.0"));
    assert_eq!(p.header("User-Agent"), Some(concat!("dashflow-prometheus-exporter/", env!("CARGO_PKG_VERSION"))));
    assert_eq!(p.header("Authorization"), None);
    for ts in &p.req.timeseries {
        let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "labels sorted and unique: {names:?}");
        let label = |n: &str| ts.labels.iter().find(|l| l.name == n).map(|l| l.value.as_str());
        assert_eq!(
            (label("job"), label("instance"), label("site")),
            (Some("dashstream-quality"), Some("edge-test"), Some("lab"))
        );
        assert_eq!(ts.samples.len(), 1);
    }
    // Every series of the scrape is in the push, the histograms as _bucket/_sum/_count.
    let series_in_scrape = scrape.series.keys().filter(|k| !k.starts_with("dashstream_exporter_remote_write_")).count();
    assert!(
        p.req.timeseries.len() >= series_in_scrape,
        "{} pushed, {series_in_scrape} scraped",
        p.req.timeseries.len()
    );
    for (series, labels, scraped) in [
        ("dashstream_query_latency_ms_bucket", vec![("le", "+Inf")], "dashstream_query_latency_ms_bucket{le=\"+Inf\"}"),
        ("dashstream_query_latency_ms_bucket", vec![("le", "500")], "dashstream_query_latency_ms_bucket{le=\"500\"}"),
        ("dashstream_query_latency_ms_count", vec![], "dashstream_query_latency_ms_count"),
        ("dashstream_query_latency_ms_sum", vec![], "dashstream_query_latency_ms_sum"),
        ("dashstream_quality_monitor_queries_passed_total", vec![], "dashstream_quality_monitor_queries_passed_total"),
    ] {
        assert_eq!(p.value(series, &labels), Some(scrape.v(scraped)), "{series} {labels:?}");
    }
    assert_eq!(p.value("dashstream_query_latency_ms_count", &[]), Some(40.0));
    drop(got);
    assert!(scrape.v(SENT) > 0.0);
    assert!(scrape.v("dashstream_exporter_remote_write_last_success_timestamp_seconds") > 1.7e9);
    assert_eq!(scrape.sum(FAILED), 0.0);
    let (st, _) = e.terminate();
    assert_eq!(st.code(), Some(0), "{}", e.logs());
}

#[test]
fn retries_back_off_honour_retry_after_and_refusals_are_dropped_and_counted() {
    let c = Cluster::new("rw-retry", 2);
    let rx = Receiver::start(vec![
        Reply::Status(503, None),
        Reply::Status(429, Some("2")),
        Reply::Status(400, None),
        Reply::Status(204, None),
    ]);
    let e = exporter(&c, "rw-retry", &rx.url(), &[("REMOTE_WRITE_INTERVAL_SECS", "4")]);
    rx.wait_for("four requests", Duration::from_secs(20), |g| g.len() >= 4);
    let got = rx.got.lock().unwrap();
    // The first three carry one batch (a retry resends it); the 503 is retried after 0.5 s, the 429 after its
    // Retry-After of 2 s (longer than the back-off of 1 s); the 400 drops the batch; the next push is new.
    assert_eq!((got[1].timestamp(), got[2].timestamp()), (got[0].timestamp(), got[0].timestamp()));
    assert_eq!(got[1].req, got[0].req, "a retry resends the same batch");
    let gap = |a: usize, b: usize| got[b].at.duration_since(got[a].at);
    assert!(gap(0, 1) >= Duration::from_millis(450) && gap(0, 1) < Duration::from_millis(1500), "{:?}", gap(0, 1));
    assert!(gap(1, 2) >= Duration::from_millis(1950), "Retry-After honoured: {:?}", gap(1, 2));
    assert!(got[3].timestamp() > got[0].timestamp());
    let batch = got[0].req.timeseries.len() as f64;
    drop(got);
    e.wait_until(Duration::from_secs(5), "the delivered push to be counted", |e| e.scrape().v(SENT) > 0.0);
    let s = e.scrape();
    assert_eq!(s.v(&format!("{FAILED}{{reason=\"http_4xx\"}}")), batch, "the refused batch's samples");
    assert_eq!(s.v(&format!("{FAILED}{{reason=\"http_5xx\"}}")), 0.0);
    assert_eq!(s.v(&format!("{FAILED}{{reason=\"http_429\"}}")), 0.0);
    assert_eq!(s.v(&format!("{REQ_FAILED}{{reason=\"http_5xx\"}}")), 1.0);
    assert_eq!(s.v(&format!("{REQ_FAILED}{{reason=\"http_429\"}}")), 1.0);
    assert_eq!(s.v(&format!("{REQ_FAILED}{{reason=\"http_4xx\"}}")), 1.0);
    assert_eq!(s.v(&format!("{REQ_FAILED}{{reason=\"network\"}}")), 0.0);
    let logs = e.logs();
    assert!(logs.contains("failed (http_5xx): HTTP 503: scripted refusal; will retry"), "{logs}");
    assert!(logs.contains("remote write recovered after 3 failed requests"), "{logs}");
}

#[test]
fn a_receiver_down_for_a_while_costs_a_gap_then_the_cumulative_values_arrive() {
    let c = Cluster::new("rw-down", 2);
    // A port nothing listens on, reused when the receiver comes up.
    let port = crate::common::free_port();
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let mut e = exporter(&c, "rw-down", &url, &[("REMOTE_WRITE_INTERVAL_SECS", "1")]);
    c.produce(&records(30));
    e.wait_value("dashstream_quality_monitor_queries_total", 30.0, Duration::from_secs(20));
    e.wait_until(Duration::from_secs(10), "several failed requests", |e| {
        e.scrape().v(&format!("{REQ_FAILED}{{reason=\"network\"}}")) >= 5.0
    });
    // Scrapes are answered promptly while pushes fail.
    let t = Instant::now();
    for _ in 0..10 {
        e.scrape();
    }
    assert!(t.elapsed() < Duration::from_secs(2), "10 scrapes took {:?}", t.elapsed());
    let s = e.scrape();
    assert_eq!(s.v(SENT), 0.0);
    assert!(s.v(&format!("{FAILED}{{reason=\"network\"}}")) > 0.0, "dropped batches are counted");
    let rx = Receiver::start_on(TcpListener::bind(("127.0.0.1", port)).unwrap(), vec![]);
    rx.wait_for("a push after the outage with all 30 events", Duration::from_secs(15), |g| {
        g.last().and_then(|p| p.value("dashstream_quality_monitor_queries_total", &[])) == Some(30.0)
    });
    e.wait_until(Duration::from_secs(5), "samples counted as sent", |e| e.scrape().v(SENT) > 0.0);
    assert!(e.logs().contains("remote write recovered after"), "{}", e.logs());
    let (st, _) = e.terminate();
    assert_eq!(st.code(), Some(0));
    rx.stop();
}

#[test]
fn a_stalled_receiver_times_out_without_holding_up_scrapes() {
    let c = Cluster::new("rw-stall", 1);
    let rx = Receiver::start(vec![Reply::Stall(Duration::from_secs(30)), Reply::Stall(Duration::from_secs(30))]);
    let e = exporter(&c, "rw-stall", &rx.url(), &[("REMOTE_WRITE_INTERVAL_SECS", "2")]);
    rx.wait_for("the first request", Duration::from_secs(10), |g| !g.is_empty());
    let t = Instant::now();
    for _ in 0..10 {
        e.scrape();
    }
    assert!(t.elapsed() < Duration::from_secs(2), "10 scrapes during a stalled push took {:?}", t.elapsed());
    e.wait_until(Duration::from_secs(15), "a timed-out request", |e| {
        e.scrape().v(&format!("{REQ_FAILED}{{reason=\"timeout\"}}")) >= 1.0
    });
    e.wait_until(Duration::from_secs(15), "a delivered push after the stalls", |e| e.scrape().v(SENT) > 0.0);
}

#[test]
fn the_last_push_at_shutdown_carries_the_final_values() {
    let c = Cluster::new("rw-final", 2);
    let rx = Receiver::start(vec![]);
    // One push at start, then not for an hour: only the shutdown push can carry the events.
    let mut e = exporter(&c, "rw-final", &rx.url(), &[("REMOTE_WRITE_INTERVAL_SECS", "3600")]);
    rx.wait_for("the first push", Duration::from_secs(10), |g| g.len() == 1);
    c.produce(&records(25));
    e.wait_value("dashstream_quality_monitor_queries_total", 25.0, Duration::from_secs(20));
    assert_eq!(rx.count(), 1);
    let (st, took) = e.terminate();
    assert_eq!(st.code(), Some(0), "{}", e.logs());
    assert!(took < Duration::from_secs(5), "{took:?}");
    let got = rx.got.lock().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].value("dashstream_quality_monitor_queries_total", &[]), Some(25.0));
}

/// A receiver that answers the TLS ClientHello with a record header announcing 16 KiB, then sends one byte
/// a second (issue 26): every push ends by its deadline (counted as a timeout), and a SIGTERM while one is
/// stuck ends the process cleanly and at once, not after the shutdown budget.
#[test]
fn a_receiver_trickling_its_tls_handshake_stretches_neither_a_push_nor_the_shutdown() {
    let c = Cluster::new("rw-trickle", 1);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = connections.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut hello = [0u8; 4096];
                conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                if conn.read(&mut hello).unwrap_or(0) == 0 {
                    return;
                }
                // A handshake record of 16 KiB, delivered a byte a second (for at most a minute).
                if conn.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]).is_err() {
                    return;
                }
                for _ in 0..60 {
                    std::thread::sleep(Duration::from_secs(1));
                    if conn.write_all(&[0x02]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let url = format!("https://127.0.0.1:{port}/api/v1/write");
    let mut e = exporter(&c, "rw-trickle", &url, &[("REMOTE_WRITE_INTERVAL_SECS", "2")]);
    let timeouts = format!("{REQ_FAILED}{{reason=\"timeout\"}}");
    e.wait_until(Duration::from_secs(15), "a push ended by its deadline", |e| e.scrape().v(&timeouts) >= 2.0);
    // Pushes keep starting (each one ended) while scrapes are answered at once.
    let started = connections.load(Ordering::SeqCst);
    assert!(started >= 2, "{started} connections");
    let t = Instant::now();
    for _ in 0..10 {
        e.scrape();
    }
    assert!(t.elapsed() < Duration::from_secs(2), "10 scrapes took {:?}", t.elapsed());
    // Stop while a push is stuck in its handshake: it is abandoned, the last push gets its own 2 s, and the
    // process exits 0 well inside the 9 s shutdown budget.
    let n = connections.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while connections.load(Ordering::SeqCst) == n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(connections.load(Ordering::SeqCst) > n, "no push under way to interrupt");
    let (status, took) = e.terminate();
    assert!(status.success(), "{status}\n{}", e.logs());
    assert!(took < Duration::from_secs(5), "SIGTERM to exit took {took:?}\n{}", e.logs());
    assert!(!e.logs().contains("shutdown did not finish"), "{}", e.logs());
}

/// A receiver's error text is logged with its control characters escaped: a newline in it cannot forge a
/// log line of its own.
#[test]
fn a_receivers_error_text_cannot_forge_a_log_line() {
    let c = Cluster::new("rw-forge", 1);
    let rx = Receiver::start(vec![Reply::Forged]);
    let e = exporter(&c, "rw-forge", &rx.url(), &[("REMOTE_WRITE_INTERVAL_SECS", "3600")]);
    e.wait_until(Duration::from_secs(15), "the refusal logged", |e| e.logs().contains("forged"));
    let logs = e.logs();
    assert!(logs.contains(r"bad request\n[ERROR] forged line\u{1b}[2J"), "{logs}");
    assert!(!logs.lines().any(|l| l.starts_with("[ERROR] forged")), "{logs}");
    assert!(!logs.contains('\u{1b}'), "a raw escape character reached the log");
    rx.stop();
}
