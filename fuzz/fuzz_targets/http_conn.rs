//! Whole requests through the HTTP stage as a client sends them: the input's bytes go over a real TCP
//! connection to the exporter's own server (gate, relay, tiny_http and the handlers, started once in this
//! process on 127.0.0.1), the client half-closes, and the answer is read to its end.
//!
//! Findings: a panic in any server thread (the process aborts), an abort (a body length allocated, as
//! tiny_http did before the relay refused bodies), runaway memory (libFuzzer's -rss_limit_mb), a connection
//! the server keeps open past the read deadline (a hang), or an answer that is not HTTP: every answer is
//! empty (no complete request) or a sequence of HTTP/1.x responses. And after any input the server still
//! answers a scrape.
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use dashflow_prometheus_exporter::config::{Config, Listen, ListenAddr, RawSettings};
use dashflow_prometheus_exporter::http;
use dashflow_prometheus_exporter::metrics::Metrics;
use dashflow_prometheus_exporter::runtime::shutdown::Lifecycle;
use libfuzzer_sys::fuzz_target;

/// The server, started on the first input and kept for the process's life.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let config = Config::from_raw(&RawSettings::default()).expect("default config");
        let mut cfg = config.http;
        cfg.listen = Listen::Addresses(vec![ListenAddr::Socket(SocketAddr::from(([127, 0, 0, 1], 0)))]);
        cfg.timeout = Duration::from_secs(2);
        cfg.header_timeout = Duration::from_secs(1);
        let metrics: &'static Metrics = Box::leak(Box::new(Metrics::new(&config.buckets).expect("metrics")));
        let server: &'static http::HttpServer = Box::leak(Box::new(http::bind(&cfg).expect("bind")));
        let life: &'static Lifecycle = Box::leak(Box::new(Lifecycle::new()));
        std::thread::spawn(move || server.run_gate(metrics, life));
        for _ in 0..cfg.threads {
            std::thread::spawn(move || http::serve(&server.server, metrics, life));
        }
        server.addr
    })
}

/// Sends `bytes`, half-closes, and reads until the server closes; `None` if it did not within 5 s.
fn exchange(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(server()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may close early (a refused request): what it answered is still read.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => Some(answer),
        // Reset after a refusal with unread bytes: the answer may be cut, never the server's life.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(answer),
        Err(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let answer = exchange(data).expect("the server kept a half-closed connection open for 5 s");
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1."), "{:?}", String::from_utf8_lossy(&answer));
    let scrape = exchange(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n").expect("a scrape after the input");
    assert!(scrape.starts_with(b"HTTP/1.1 "), "{:?}", String::from_utf8_lossy(&scrape));
});
