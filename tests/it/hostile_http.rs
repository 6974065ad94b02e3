//! Hostile HTTP clients (issue 7, item 4) against the real binary over real TCP on 127.0.0.1, with the
//! librdkafka mock cluster feeding it records: slow-loris clients, 500 concurrent connections, oversized
//! headers, garbage and non-GET requests. Under each attack a Prometheus-like scrape must be answered 200
//! with the exact count of the records produced, the process must keep its thread count within the bound
//! the configuration implies, and the gate's counters must match what the clients saw.
//!
//! The thread bound: the exporter's threads once it is consuming and idle (`baseline`: main, kafka-poll,
//! worker, http-gate, the METRICS_HTTP_THREADS handlers, tiny_http's accept thread and its pool's 4 resident
//! threads, librdkafka's threads, the signal thread) plus, per admitted connection, one relay thread (the
//! gate joins it before the slot is reused) and one tiny_http pool thread (the pool grows only when all its
//! threads are busy; its 4 resident threads in `baseline` cover tasks finishing while new ones start). So
//! `threads <= baseline + 2 * METRICS_MAX_CONNECTIONS`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Cluster, Exporter, Scrape};
use dashflow_prometheus_exporter::sim::encode::{from_hex, WORKED_EXAMPLE};

const WAIT: Duration = Duration::from_secs(30);
const QUERIES: &str = "dashstream_quality_monitor_queries_total";

fn closed(reason: &str) -> String {
    format!("dashstream_exporter_http_connections_closed_total{{reason=\"{reason}\"}}")
}

/// `Threads:` of /proc/<pid>/status.
fn threads(pid: u32) -> usize {
    proc_status(pid, "Threads:")
}

/// A /proc/<pid>/status field (kB for memory fields).
fn proc_status(pid: u32, field: &str) -> usize {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in status"))
}

/// Samples the thread count every 5 ms until dropped; `peak()` is the highest seen.
struct ThreadWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ThreadWatch {
    fn start(pid: u32) -> ThreadWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(threads(pid)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if let Some(n) =
                        st.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok())
                    {
                        p.fetch_max(n, Ordering::SeqCst);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        ThreadWatch { stop, peak, thread: Some(thread) }
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

impl Drop for ThreadWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cluster with `n` worked-example records and an exporter that has counted them and is ready, with its
/// thread count once idle.
fn setup(name: &str, n: usize, env: &[(&str, &str)]) -> (Cluster, Exporter, usize) {
    let c = Cluster::new(name, 1);
    let rec = from_hex(WORKED_EXAMPLE);
    c.produce(&vec![(0, Some(rec)); n]);
    let e = Exporter::start(&c, &format!("g-{name}"), env);
    e.wait_value(QUERIES, n as f64, WAIT);
    e.wait_until(WAIT, "ready", |e| e.get("/-/ready").map(|r| r.status == 200).unwrap_or(false));
    // librdkafka starts its broker threads while joining the group; tiny_http's extra pool threads (beyond
    // its 4 resident ones) end 5 s after their last task. Wait until the count has settled.
    let pid = e.child.id();
    let mut last = (threads(pid), Instant::now());
    let start = Instant::now();
    while last.1.elapsed() < Duration::from_secs(6) {
        assert!(start.elapsed() < Duration::from_secs(60), "thread count did not settle");
        std::thread::sleep(Duration::from_millis(100));
        let t = threads(pid);
        if t != last.0 {
            last = (t, Instant::now());
        }
    }
    (c, e, last.0)
}

/// A scrape the way Prometheus makes one (gzip, its Accept and headers), on a fresh connection.
fn prometheus_scrape(addr: SocketAddr) -> Scrape {
    let r = crate::common::http_request(
        addr,
        "GET",
        "/metrics",
        &[
            ("User-Agent", "Prometheus/2.53.0"),
            ("Accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"),
            ("Accept-Encoding", "gzip"),
            ("X-Prometheus-Scrape-Timeout-Seconds", "10"),
        ],
    )
    .expect("scrape");
    assert_eq!(r.status, 200, "scrape: {}", r.text());
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(r.body.as_slice()).read_to_string(&mut text).expect("gzip body");
    Scrape::parse(&text)
}

/// A client holding a connection open: it sent `head` and may trickle more bytes later.
struct Hostile {
    s: TcpStream,
    /// What the server sent.
    got: Vec<u8>,
    closed: bool,
}

impl Hostile {
    fn open(addr: SocketAddr, head: &[u8]) -> Hostile {
        let mut s = TcpStream::connect(addr).expect("connect");
        if !head.is_empty() {
            s.write_all(head).expect("send");
        }
        Hostile { s, got: Vec::new(), closed: false }
    }

    /// One more byte of a header that never ends; false once the server has closed the connection.
    fn trickle(&mut self) -> bool {
        !self.closed && self.s.write_all(b"a").is_ok() && !self.server_closed()
    }

    /// Whether the server has closed the connection (reads, without waiting, what it sent before).
    fn server_closed(&mut self) -> bool {
        if self.closed {
            return true;
        }
        self.s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1024];
        loop {
            match (&self.s).read(&mut b) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.got.extend_from_slice(&b[..n]);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => self.closed = true,
            }
            break;
        }
        self.s.set_nonblocking(false).unwrap();
        self.closed
    }

    /// Reads the whole answer until the server closes (bounded by a read timeout).
    fn answer(&mut self) -> Vec<u8> {
        self.s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    }
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line).ok()?.split(' ').nth(1)?.parse().ok()
}

/// Waits until `cond` holds; panics after `timeout` (a wait, not a timing assertion).
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const LORIS_HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

#[test]
fn slow_loris_clients_holding_every_slot_cannot_lock_out_a_scrape() {
    // The header deadline is long here so that only the admission policy frees slots.
    let max = 8;
    let (c, e, baseline) = setup(
        "loris",
        300,
        &[
            ("METRICS_MAX_CONNECTIONS", "8"),
            ("METRICS_HTTP_HEADER_TIMEOUT_SECS", "120"),
            ("METRICS_HTTP_TIMEOUT_SECS", "120"),
        ],
    );
    let pid = e.child.id();
    let bound = baseline + 2 * max;
    let watch = ThreadWatch::start(pid);
    let mut loris: Vec<Hostile> = (0..max).map(|_| Hostile::open(e.addr(), LORIS_HEAD)).collect();
    // Every slot is held once the gate has admitted them: one more byte from each proves they are read.
    for l in loris.iter_mut() {
        assert!(l.trickle());
    }
    // More records arrive during the attack; scrapes (each one a new connection at the cap) see them all.
    c.produce(&vec![(0, Some(from_hex(WORKED_EXAMPLE))); 200]);
    let mut last = 0.0;
    for round in 0..12 {
        let s = prometheus_scrape(e.addr());
        assert!(s.v(QUERIES) >= last && s.v(QUERIES) <= 500.0, "round {round}: {} after {last}", s.v(QUERIES));
        last = s.v(QUERIES);
        // A byte a "second" (faster here) from every slow client still open.
        for l in loris.iter_mut() {
            l.trickle();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if last != 500.0 {
        e.wait_until(WAIT, "the records produced during the attack", |e| {
            prometheus_scrape(e.addr()).v(QUERIES) == 500.0
        });
    }
    let s = prometheus_scrape(e.addr());
    assert_eq!(s.v(QUERIES), 500.0);
    assert_eq!(s.v("dashstream_exporter_http_connections_rejected_total"), 0.0, "no scrape was refused");
    // Each scrape at the cap took the slot of the slow client that began its header first: the clients
    // that saw their connection closed are exactly the evictions counted.
    let gone = loris.iter_mut().map(|l| l.server_closed()).filter(|c| *c).count();
    assert!(gone >= 1, "the first scrape came at the cap");
    assert!(loris.iter().all(|l| l.got.is_empty()), "evicted without an answer");
    assert_eq!(s.v(&closed("evicted")), gone as f64);
    assert_eq!(s.v(&closed("header_timeout")), 0.0);
    assert_eq!(s.v(&closed("idle_timeout")), 0.0);
    // Oldest first: the survivors are the most recently opened.
    let open: Vec<bool> = loris.iter_mut().map(|l| !l.server_closed()).collect();
    assert!(open.windows(2).all(|w| w[0] <= w[1]), "evicted oldest first: {open:?}");
    let peak = watch.peak();
    assert!(peak <= bound, "threads peaked at {peak}, bound {bound} (baseline {baseline})");
    eprintln!("slow-loris: baseline {baseline} threads, peak {peak}, bound {bound}, evicted {gone}");
}

#[test]
fn header_deadline_closes_slow_clients_but_not_kept_alive_fast_ones() {
    let (_c, e, _) =
        setup("deadline", 10, &[("METRICS_HTTP_HEADER_TIMEOUT_SECS", "1"), ("METRICS_HTTP_TIMEOUT_SECS", "60")]);
    let before = e.scrape();
    // Three kinds of slow clients: nothing sent, a trickled header, a header line without its end.
    let mut slow = [
        Hostile::open(e.addr(), b""),
        Hostile::open(e.addr(), LORIS_HEAD),
        Hostile::open(e.addr(), b"GET /metrics HTTP/1.1\r\n"),
    ];
    // A keep-alive client asking every 300 ms for 3 s: each header arrives at once, so the 1 s deadline,
    // which counts from a request's first byte, never ends it.
    let mut ka = TcpStream::connect(e.addr()).unwrap();
    ka.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..10 {
        ka.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"Healthy\n") {
            let n = ka.read(&mut buf).unwrap();
            assert!(n > 0, "request {i}: kept-alive connection closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(status_of(&got), Some(200));
        slow[1].trickle();
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_for("the slow clients to be closed", Duration::from_secs(20), || slow.iter_mut().all(|s| s.server_closed()));
    assert!(slow.iter().all(|s| s.got.is_empty()), "closed without an answer");
    let s = e.scrape();
    let delta = |k: &str| s.v(k) - before.v(k);
    assert_eq!(delta(&closed("header_timeout")), 3.0);
    assert_eq!(delta(&closed("idle_timeout")), 0.0);
    assert_eq!(delta(&closed("evicted")), 0.0);
    assert_eq!(s.v(QUERIES), 10.0);
}

/// Sends `head`, then `body_len` bytes of `fill` from another thread (the server may stop reading), and
/// returns the answer (empty when the server closed without one).
fn send_big(addr: SocketAddr, head: &[u8], fill: u8, body_len: usize, tail: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut w = s.try_clone().unwrap();
    let (head, tail) = (head.to_vec(), tail.to_vec());
    let writer = std::thread::spawn(move || {
        let mut all = head;
        all.extend(std::iter::repeat_n(fill, body_len));
        all.extend(tail);
        for chunk in all.chunks(64 * 1024) {
            if w.write_all(chunk).is_err() {
                break;
            }
        }
    });
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let _ = s.shutdown(Shutdown::Both);
    writer.join().unwrap();
    got
}

#[test]
fn oversized_headers_get_431_without_growing_memory() {
    // 8 clients at once, 16 slots: a client's next connection may arrive while the relay of its previous
    // one is ending, so at most 16 are admitted and none is evicted or refused.
    let max = 16;
    let (_c, e, baseline) = setup("big", 5, &[("METRICS_MAX_CONNECTIONS", "16")]);
    let pid = e.child.id();
    let watch = ThreadWatch::start(pid);
    let before = e.scrape();
    // At the limit (8 KiB for request line and fields) a request is still served.
    let mut ok = b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: ".to_vec();
    let fill = 8 * 1024 - ok.len() - 4;
    ok.extend(std::iter::repeat_n(b'a', fill));
    ok.extend(b"\r\n\r\n");
    assert_eq!(ok.len(), 8 * 1024);
    let a = send_big(e.addr(), &ok, b'a', 0, b"");
    assert_eq!(status_of(&a), Some(200), "{}", String::from_utf8_lossy(&a[..a.len().min(200)]));
    // A byte more is refused.
    let mut over = ok.clone();
    over.insert(40, b'a');
    assert_eq!(status_of(&send_big(e.addr(), &over, b'a', 0, b"")), Some(431));

    // 1 MiB header lines (with and without their end) and a 1 MiB URL, 48 times, 8 at once.
    let hwm_before = proc_status(pid, "VmHWM:");
    let rss_before = proc_status(pid, "VmRSS:");
    let mib = 1 << 20;
    let results: Vec<Vec<u8>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let addr = e.addr();
                sc.spawn(move || {
                    (0..6)
                        .map(|k| match (i + k) % 3 {
                            0 => send_big(addr, b"GET /metrics HTTP/1.1\r\nX-Big: ", b'x', mib, b""),
                            1 => send_big(addr, b"GET /metrics HTTP/1.1\r\nX-Big: ", b'x', mib, b"\r\n\r\n"),
                            _ => send_big(addr, b"GET /", b'u', mib, b" HTTP/1.1\r\n\r\n"),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let hwm_after = proc_status(pid, "VmHWM:");
    let rss_after = proc_status(pid, "VmRSS:");
    let statuses: Vec<Option<u16>> = results.iter().map(|r| status_of(r)).collect();
    assert!(statuses.iter().all(|s| *s == Some(431)), "every one answered 431: {statuses:?}");
    assert_eq!(statuses.len(), 48);
    let s = prometheus_scrape(e.addr());
    let delta = |k: &str| s.v(k) - before.v(k);
    assert_eq!(delta(&closed("header_too_large")), 49.0);
    assert_eq!(delta(&closed("evicted")), 0.0);
    assert_eq!(delta("dashstream_exporter_http_connections_rejected_total"), 0.0);
    assert_eq!(s.v(QUERIES), 5.0);
    // 48 MiB sent: nothing of it is kept (a relay holds 16 KiB; tiny_http at most the 8 KiB limit).
    let grew = hwm_after.saturating_sub(hwm_before);
    assert!(grew < 16 * 1024, "peak RSS grew by {grew} kB (from {hwm_before} kB)");
    let peak = watch.peak();
    let bound = baseline + 2 * max;
    assert!(peak <= bound, "threads peaked at {peak}, bound {bound}");
    eprintln!(
        "oversized: 48 x 1 MiB, all 431; VmHWM {hwm_before} -> {hwm_after} kB, VmRSS {rss_before} \
         -> {rss_after} kB; threads baseline {baseline}, peak {peak}, bound {bound}"
    );
}

#[test]
fn garbage_and_non_get_requests_get_400_405_or_a_close() {
    let (_c, e, baseline) = setup("garbage", 7, &[("METRICS_MAX_CONNECTIONS", "8")]);
    let watch = ThreadWatch::start(e.child.id());
    let before = e.scrape();
    let ask = |req: &[u8]| {
        let mut h = Hostile::open(e.addr(), req);
        let _ = h.s.shutdown(Shutdown::Write);
        h.answer()
    };
    // Invalid request lines: 400 and the connection is closed.
    let mut bad_requests = 0.0;
    for req in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /\r\n\r\n", // HTTP/0.9
        b"GET\r\n\r\n",
        b"GET /metrics HTTP/x.y\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
    ] {
        let a = ask(req);
        assert_eq!(status_of(&a), Some(400), "{:?} -> {:?}", String::from_utf8_lossy(req), String::from_utf8_lossy(&a));
        bad_requests += 1.0;
    }
    // Empty lines before a request line are skipped (RFC 9112, 2.2): alone, they are no request.
    assert_eq!(ask(b"\r\n\r\n"), b"");
    // Bytes that are not ASCII, in the request line or a header value: 400.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 56) as u8 | 0x80
            })
            .collect()
    };
    for n in [1, 100, 4000] {
        let mut req = random(n);
        req.extend(b"\r\n\r\n");
        assert_eq!(status_of(&ask(&req)), Some(400), "random bytes");
        bad_requests += 1.0;
    }
    let mut req = b"GET /metrics HTTP/1.1\r\nX-Bin: ".to_vec();
    req.extend(random(64));
    req.extend(b"\r\n\r\n");
    assert_eq!(status_of(&ask(&req)), Some(400));
    bad_requests += 1.0;
    // Random bytes with no header end, then the client half-closes: closed without an answer.
    assert_eq!(ask(&random(4000)), b"");
    // Every other method on a served path: 405 with Allow; a body is read and ignored.
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "FOO"] {
        let r = e.request(m, "/metrics", &[]).unwrap();
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{m}");
    }
    // A request with a body is refused before any handler sees it (413), and the connection closed.
    let a = ask(b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    assert_eq!(status_of(&a), Some(413));
    // A long URL below the header limit: 404 (only the four paths exist).
    let long = format!("/{}", "u".repeat(8_000));
    assert_eq!(e.get(&long).unwrap().status, 404);
    let s = prometheus_scrape(e.addr());
    assert_eq!(s.v(QUERIES), 7.0);
    for r in ["idle_timeout", "header_timeout", "header_too_large", "evicted", "http_version", "write_timeout"] {
        assert_eq!(s.v(&closed(r)) - before.v(&closed(r)), 0.0, "{r}");
    }
    assert_eq!(s.v(&closed("bad_request")) - before.v(&closed("bad_request")), bad_requests);
    assert_eq!(s.v(&closed("request_body")) - before.v(&closed("request_body")), 1.0);
    let peak = watch.peak();
    assert!(peak <= baseline + 16, "threads peaked at {peak}, bound {}", baseline + 16);
    assert_eq!(e.get("/-/healthy").unwrap().status, 200);
}

#[test]
fn five_hundred_hostile_connections_at_once() {
    // Defaults: 64 connections, 10 s idle, 5 s header deadline.
    let max = 64;
    let (c, e, baseline) = setup("five-hundred", 1000, &[]);
    let pid = e.child.id();
    let bound = baseline + 2 * max;
    let watch = ThreadWatch::start(pid);
    let before = e.scrape();
    // 500 connections from 4 threads: idle ones, slow-loris ones, half a request line.
    let kinds: [&[u8]; 3] = [b"", LORIS_HEAD, b"GET /met"];
    let held: Vec<Hostile> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let addr = e.addr();
                sc.spawn(move || (0..125).map(|i| Hostile::open(addr, kinds[(t + i) % 3])).collect::<Vec<_>>())
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(held.len(), 500);
    // While they are held (within the 5 s header deadline), records keep flowing and scrapes succeed.
    c.produce(&vec![(0, Some(from_hex(WORKED_EXAMPLE))); 500]);
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(prometheus_scrape(e.addr()).v(QUERIES));
    }
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen[0] >= 1000.0 && seen[9] <= 1500.0, "{seen:?}");
    e.wait_until(WAIT, "the records produced during the attack", |e| prometheus_scrape(e.addr()).v(QUERIES) == 1500.0);
    let peak = watch.peak();
    // Each hostile connection was either refused with 503, or admitted and then closed by the gate
    // (evicted for a newcomer or after the header deadline), or is still open.
    let mut held = held;
    wait_for("the gate to close every hostile connection", Duration::from_secs(30), || {
        held.iter_mut().all(|h| h.server_closed())
    });
    // The ones refused got a 503, the others nothing.
    let answered_503 = held.iter().filter(|h| !h.got.is_empty()).count();
    assert!(held.iter().filter(|h| !h.got.is_empty()).all(|h| status_of(&h.got) == Some(503)));
    let s = prometheus_scrape(e.addr());
    let delta = |k: &str| s.v(k) - before.v(k);
    let refused = delta("dashstream_exporter_http_connections_rejected_total");
    let evicted = delta(&closed("evicted"));
    let timed_out = delta(&closed("header_timeout"));
    assert_eq!(refused + evicted + timed_out, 500.0, "refused {refused}, evicted {evicted}, timed out {timed_out}");
    assert_eq!(refused, answered_503 as f64);
    assert_eq!(delta(&closed("idle_timeout")), 0.0);
    assert!(timed_out <= max as f64, "at most the admitted ones time out: {timed_out}");
    assert!(peak <= bound, "threads peaked at {peak}, bound {bound} (baseline {baseline})");
    eprintln!(
        "500 hostile: refused {refused}, evicted {evicted}, header timeouts {timed_out}; threads baseline \
         {baseline}, peak {peak}, bound {bound}"
    );
}
