//! Scrape latency over real HTTP at the demo's series count and at 10 000 series, idle and while a thread
//! applies events flat out, and what scraping costs that thread (issue 6, part 3, in-process).
//!
//! `cargo bench --bench scrape` (env `SCRAPES`, default 200 per case; 3 under `cargo test --benches`). Each
//! case runs in the three formats a scrape can negotiate (text, OpenMetrics, protobuf: the `Accept` headers
//! of Prometheus 2.42 with and without native histograms); `10000h` is 10 000 series of which the padding
//! is histograms with exemplars and native buckets. The exporter's own HTTP side
//! (`http::bind`, the gate thread and the default 2 request threads) serves a registry built like the
//! daemon's after traffic (see `common::registry_with_series`; 10k is reached with an extra labelled
//! family). A client thread scrapes /metrics 20 times per second on one keep-alive connection with
//! `Accept-Encoding: gzip`, as Prometheus does, timing each scrape from sending the request to having the
//! whole body. "under load" runs a thread applying corpus events in a loop (the worker's job, without Kafka);
//! its rate is measured for the same time without scraping and with it. Percentiles are nearest rank.
//!
//! The end-to-end harness (`benches/e2e`) measures the same at the demo series count against the real
//! daemon during a drain; this bench adds the 10k case, which real traffic cannot produce here.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashflow_prometheus_exporter::config::{Config, Listen, ListenAddr, RawSettings};
use dashflow_prometheus_exporter::http;
use dashflow_prometheus_exporter::metrics::{unix_now, Applier};
use dashflow_prometheus_exporter::runtime::shutdown::Lifecycle;

/// One keep-alive HTTP/1.1 connection to /metrics.
struct Client {
    r: BufReader<TcpStream>,
    body: Vec<u8>,
    request: Vec<u8>,
}

/// The formats a scrape can ask for, with the `Accept` header Prometheus 2.42 sends for each (none: text).
const FORMATS: [(&str, &str); 3] = [
    ("text", ""),
    ("openmetrics", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    ("protobuf", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,*/*;q=0.1"),
];

impl Client {
    fn new(addr: SocketAddr, accept: &str) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let accept = if accept.is_empty() { String::new() } else { format!("Accept: {accept}\r\n") };
        let request = format!("GET /metrics HTTP/1.1\r\nHost: bench\r\n{accept}Accept-Encoding: gzip\r\n\r\n");
        Client { r: BufReader::new(s), body: Vec::new(), request: request.into_bytes() }
    }

    /// Scrapes once; returns the time taken and the body size.
    fn scrape(&mut self) -> (Duration, usize) {
        let t0 = Instant::now();
        self.r.get_mut().write_all(&self.request).expect("send");
        let mut line = String::new();
        let mut len = None;
        let mut status = None;
        loop {
            line.clear();
            self.r.read_line(&mut line).expect("read header");
            let l = line.trim_end();
            if status.is_none() {
                status = l.split(' ').nth(1).map(str::to_owned);
                continue;
            }
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                }
            }
        }
        assert_eq!(status.as_deref(), Some("200"), "/metrics status");
        let len = len.expect("Content-Length");
        self.body.resize(len, 0);
        self.r.read_exact(&mut self.body).expect("read body");
        (t0.elapsed(), len)
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Scrapes `n` times, every 50 ms; returns (p50, p99, max) in ms and the (gzipped) body size.
fn scrape_series(addr: SocketAddr, accept: &str, n: usize) -> (f64, f64, f64, usize) {
    let mut c = Client::new(addr, accept);
    c.scrape(); // connection set up, buffers sized
    let mut ms = Vec::with_capacity(n);
    let mut size = 0;
    let mut next = Instant::now();
    for _ in 0..n {
        next += Duration::from_millis(50);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let (took, len) = c.scrape();
        ms.push(took.as_secs_f64() * 1000.0);
        size = len;
    }
    ms.sort_by(f64::total_cmp);
    (pct(&ms, 50.0), pct(&ms, 99.0), ms[ms.len() - 1], size)
}

/// Applies the corpus in a loop until `stop`, counting events in `count`.
fn load(mut a: Applier, stop: &AtomicBool, count: &AtomicU64) {
    let evs = common::events(&common::corpus(common::Kind::Framed));
    let (wall, now) = (unix_now(), Instant::now());
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..1024 {
            i = (i + 1) % evs.len();
            a.apply(&evs[i], wall, now);
        }
        count.fetch_add(1024, Ordering::Relaxed);
    }
}

fn rate_over(count: &AtomicU64, d: Duration) -> f64 {
    let (c0, t0) = (count.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(d);
    (count.load(Ordering::Relaxed) - c0) as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`: a quick smoke pass then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scrapes: usize =
        std::env::var("SCRAPES").ok().and_then(|s| s.parse().ok()).unwrap_or(if quick { 3 } else { 200 });
    let mut http_cfg = Config::from_raw(&RawSettings::default()).expect("default config").http;
    http_cfg.listen = Listen::Addresses(vec![ListenAddr::Socket(SocketAddr::from(([127, 0, 0, 1], 0)))]);
    println!(
        "scrape latency over HTTP, {scrapes} scrapes at 20/s per case (keep-alive, gzip), {} request threads",
        http_cfg.threads
    );
    println!(
        "{:<8} {:<12} {:>7} {:>10} {:>9} {:>9} {:>9} {:>16} {:>16}",
        "series", "format", "case", "gzip body", "p50 ms", "p99 ms", "max ms", "apply/s alone", "apply/s scraped"
    );
    let cases =
        [(0, common::Padding::Gauges), (10_000, common::Padding::Gauges), (10_000, common::Padding::RichHistograms)];
    for ((target, padding), (format, accept)) in cases.into_iter().flat_map(|c| FORMATS.map(|f| (c, f))) {
        let (applier, series) = common::registry_with_series(target, padding);
        let series =
            if matches!(padding, common::Padding::RichHistograms) { format!("{series}h") } else { series.to_string() };
        let metrics = applier.metrics().clone();
        let server = http::bind(&http_cfg).expect("bind");
        let life = Lifecycle::new();
        let (stop_load, count) = (AtomicBool::new(false), AtomicU64::new(0));
        std::thread::scope(|s| {
            let (server, metrics, life) = (&server, &metrics, &life);
            s.spawn(move || server.run_gate(metrics, life));
            for _ in 0..http_cfg.threads {
                s.spawn(move || http::serve(&server.server, metrics, life));
            }
            let (p50, p99, max, size) = scrape_series(server.addr, accept, scrapes);
            println!(
                "{series:<8} {format:<12} {:>7} {size:>10} {p50:>9.2} {p99:>9.2} {max:>9.2} {:>16} {:>16}",
                "idle", "-", "-"
            );

            let (stop_load, count) = (&stop_load, &count);
            s.spawn(move || load(applier, stop_load, count));
            std::thread::sleep(Duration::from_millis(500));
            let window = Duration::from_millis(50 * scrapes as u64);
            let alone = rate_over(count, window);
            let (c0, t0) = (count.load(Ordering::Relaxed), Instant::now());
            let (p50, p99, max, size) = scrape_series(server.addr, accept, scrapes);
            let scraped = (count.load(Ordering::Relaxed) - c0) as f64 / t0.elapsed().as_secs_f64();
            stop_load.store(true, Ordering::Relaxed);
            println!(
                "{series:<8} {format:<12} {:>7} {size:>10} {p50:>9.2} {p99:>9.2} {max:>9.2} {alone:>16.0} {scraped:>16.0}",
                "loaded"
            );
            life.request_stop();
            life.stop_http();
        });
    }
}
