//! The attacks of issue 26, each against the real binary over TCP, with TLS and basic auth off and on, while
//! an honest scraper scrapes every 100 ms: request bodies announced and never sent (a crash and a lock-out
//! before), empty lines trickled as headers, wrong passwords pipelined by the hundred, a client that never
//! reads its answers, and the small ones (`q=0`, absolute-form targets, HTTP/2.0). After them the process
//! is alive, no honest scrape failed, their p99 is under a second, and SIGTERM ends it with 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};

use super::{basic, series, start, tls_setup, TempDir};
use crate::common::Exporter;

/// What the clients of one run need: where, with TLS (the CA to verify with) or not, with which password.
#[derive(Clone)]
struct Target {
    port: u16,
    ca: Option<PathBuf>,
    auth: Option<String>,
}

/// A plain or TLS connection, as a client sees it.
enum Conn {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Conn {
    fn open(t: &Target) -> std::io::Result<Conn> {
        let tcp = TcpStream::connect(("127.0.0.1", t.port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        let Some(ca) = &t.ca else { return Ok(Conn::Plain(tcp)) };
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(std::io::Error::other)?;
        b.set_ca_file(ca).map_err(std::io::Error::other)?;
        b.set_verify(SslVerifyMode::PEER);
        let s = b.build().connect("localhost", tcp).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Conn::Tls(Box::new(s)))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(t) => t,
            Conn::Tls(s) => s.get_ref(),
        }
    }

    /// Everything until the server closes (or the read timeout).
    fn read_all(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.read(&mut buf) {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(t) => t.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(t) => t.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn status(raw: &[u8]) -> Option<u16> {
    std::str::from_utf8(raw.get(9..12)?).ok()?.parse().ok()
}

/// One request on a fresh connection; the raw answer (read until the server closes).
fn ask(t: &Target, req: &str) -> Vec<u8> {
    let mut c = Conn::open(t).expect("connect");
    c.write_all(req.as_bytes()).expect("send");
    c.read_all()
}

fn credentials(t: &Target) -> String {
    t.auth.as_ref().map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default()
}

/// A Prometheus-like scraper: a scrape every 100 ms on a fresh connection, each timed; failures kept.
struct Honest {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<Duration>, Vec<String>)>,
}

impl Honest {
    fn start(t: &Target) -> Honest {
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (t.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let (mut took, mut failed) = (Vec::new(), Vec::new());
            let req =
                format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{}\r\n", credentials(&t));
            while !s.load(Ordering::SeqCst) {
                let t0 = Instant::now();
                let answer = Conn::open(&t).and_then(|mut c| c.write_all(req.as_bytes()).map(|()| c.read_all()));
                took.push(t0.elapsed());
                match answer {
                    Ok(a) if status(&a) == Some(200) && a.ends_with(b"\n") => {}
                    Ok(a) => failed.push(format!("{:?}", String::from_utf8_lossy(&a[..a.len().min(200)]))),
                    Err(e) => failed.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (took, failed)
        });
        Honest { stop, thread }
    }

    /// Stops it; the p99 of its scrapes (and how many), or its failures.
    fn finish(self) -> (Duration, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let (mut took, failed) = self.thread.join().unwrap();
        assert!(failed.is_empty(), "honest scrapes failed: {failed:?}");
        took.sort();
        let p99 = took[(took.len() * 99).div_ceil(100) - 1];
        (p99, took.len())
    }
}

fn scrape(e: &Exporter, t: &Target) -> String {
    let a = ask(t, &format!("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\r\n", credentials(t)));
    assert_eq!(status(&a), Some(200), "{}", String::from_utf8_lossy(&a[..a.len().min(300)]));
    assert!(e.child.id() > 0);
    String::from_utf8_lossy(&a).into_owned()
}

fn closed(text: &str, reason: &str) -> f64 {
    series(text, &format!("dashstream_exporter_http_connections_closed_total{{reason=\"{reason}\"}}")).unwrap()
}

/// Attack 1: Bodies announced and never sent: 413 at once, nothing allocated, and the next request is served.
fn announced_bodies(t: &Target) {
    for req in [
        "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n".to_string(),
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n".to_string(),
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
    ] {
        let t0 = Instant::now();
        let a = ask(t, &req);
        assert_eq!(status(&a), Some(413), "{req:?} -> {:?}", String::from_utf8_lossy(&a));
        assert!(t0.elapsed() < Duration::from_secs(2), "{req:?} answered after {:?}", t0.elapsed());
    }
}

/// Attack 2: Two connections hold a request with an announced body open and trickle empty lines; two more trickle
/// empty lines only. The first two get 413 at once; the others are closed by the header deadline (2 s),
/// whatever they trickle.
fn trickled_empty_lines(t: &Target) {
    let mut held: Vec<(Conn, Instant)> = (0..4)
        .map(|i| {
            let mut c = Conn::open(t).expect("connect");
            if i < 2 {
                c.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n").unwrap();
            }
            (c, Instant::now())
        })
        .collect();
    let mut answers = vec![None; 4];
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until && answers.iter().any(Option::is_none) {
        for (i, (c, since)) in held.iter_mut().enumerate() {
            if answers[i].is_some() {
                continue;
            }
            if c.write_all(b"\r\n").is_err() {
                answers[i] = Some((Vec::new(), since.elapsed()));
                continue;
            }
            let _ = c.tcp().set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 4096];
            match c.read(&mut buf) {
                Ok(0) => answers[i] = Some((Vec::new(), since.elapsed())),
                Ok(n) => answers[i] = Some((buf[..n].to_vec(), since.elapsed())),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => answers[i] = Some((Vec::new(), since.elapsed())),
            }
        }
    }
    for (i, a) in answers.into_iter().enumerate() {
        let (raw, after) = a.unwrap_or_else(|| panic!("connection {i} still open after 6 s"));
        if i < 2 {
            assert_eq!(status(&raw), Some(413), "connection {i}: {:?}", String::from_utf8_lossy(&raw));
            assert!(after < Duration::from_secs(1), "connection {i} answered after {after:?}");
        } else {
            assert_eq!(raw, b"", "connection {i}: empty lines are no request");
            assert!(after < Duration::from_secs(4), "connection {i} closed after {after:?}");
        }
    }
}

/// Attack 3: One connection pipelines 300 requests with a wrong password and closes. The server answers at most
/// the first few: a client gone away costs no further bcrypt check.
fn pipelined_wrong_passwords(t: &Target, e: &Exporter) -> (f64, f64) {
    let wrong = basic("prom", "wrong");
    let one = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\n\r\n");
    let before = scrape(e, t);
    let mut c = Conn::open(t).expect("connect");
    c.write_all(one.repeat(300).as_bytes()).unwrap();
    drop(c);
    // Long enough for 300 checks at bcrypt cost 10 (about 70 ms each here) to have started.
    std::thread::sleep(Duration::from_secs(3));
    let after = scrape(e, t);
    let delta = |name: &str| series(&after, name).unwrap_or(0.0) - series(&before, name).unwrap_or(0.0);
    (
        delta("dashstream_exporter_web_auth_failures_total"),
        delta("dashstream_exporter_web_auth_throttled_total{scope=\"client\"}")
            + delta("dashstream_exporter_web_auth_throttled_total{scope=\"total\"}"),
    )
}

/// Attack 3b: Wrong passwords from one address, one request after another: at most five are checked (fewer when
/// the pipelined ones above used some of the address's budget), then 429 without a check; the honest
/// scraper, from the same address but cached, is never refused.
fn repeated_wrong_passwords(t: &Target) {
    let wrong = basic("prom", "wrong");
    let codes: Vec<_> = (0..8)
        .map(|_| {
            status(&ask(
                t,
                &format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\nConnection: close\r\n\r\n"),
            ))
        })
        .collect();
    let checked = codes.iter().take_while(|c| **c == Some(401)).count();
    assert!((3..=5).contains(&checked), "{codes:?}");
    assert!(codes[checked..].iter().all(|c| *c == Some(429)), "{codes:?}");
}

/// Attack 4: A client with a 4 KiB receive buffer pipelines 100 scrapes and never reads, for 4 s.
fn never_reading(t: &Target) {
    let mut c = Conn::open(t).expect("connect");
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt on our own socket with a pointer to a c_int of the size given.
    unsafe {
        libc::setsockopt(
            c.tcp().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let one = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{}\r\n", credentials(t));
    c.write_all(one.repeat(100).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    drop(c);
}

/// Attack 5: The small ones: `q=0` refuses gzip in any case; an absolute-form target is served; HTTP/2.0 gets 505
/// at once.
fn small_ones(t: &Target) {
    let creds = credentials(t);
    for ae in ["gzip;q=0", "gzip;Q=0", "*, gzip;q=0"] {
        let a = ask(
            t,
            &format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {ae}\r\nConnection: close\r\n{creds}\r\n"),
        );
        let head = String::from_utf8_lossy(&a[..a.windows(4).position(|w| w == b"\r\n\r\n").unwrap()]).to_lowercase();
        assert_eq!(status(&a), Some(200), "{ae}");
        assert!(!head.contains("content-encoding"), "{ae}: {head}");
    }
    let a = ask(
        t,
        &format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n{creds}\r\n"),
    );
    assert!(String::from_utf8_lossy(&a[..a.len().min(400)]).to_lowercase().contains("content-encoding: gzip"));
    let port = t.port;
    let a = ask(
        t,
        &format!("GET http://localhost:{port}/-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{creds}\r\n"),
    );
    assert_eq!(status(&a), Some(200), "{}", String::from_utf8_lossy(&a));
    let t0 = Instant::now();
    let a = ask(t, "GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n");
    assert_eq!(status(&a), Some(505), "{}", String::from_utf8_lossy(&a));
    assert!(t0.elapsed() < Duration::from_secs(1), "505 after {:?}", t0.elapsed());
}

/// Every attack against one exporter; returns the honest scraper's p99 and scrape count.
fn run(tag: &str, tls: bool, auth: bool) -> (Duration, usize) {
    let hash = bcrypt::hash("pw", 10).unwrap();
    let users = if auth { format!("basic_auth_users:\n  prom: {hash}\n") } else { String::new() };
    let (dir, cfg): (TempDir, PathBuf) = if tls {
        let (dir, _ca, cfg) = tls_setup(tag, &users);
        (dir, cfg)
    } else {
        let dir = TempDir::new(tag);
        let cfg = dir.write("web.yml", if auth { users.as_bytes() } else { b"{}\n" });
        (dir, cfg)
    };
    let mut e = start(&cfg, &[("METRICS_HTTP_HEADER_TIMEOUT_SECS", "2"), ("METRICS_HTTP_TIMEOUT_SECS", "5")]);
    let t = Target { port: e.port, ca: tls.then(|| dir.path("ca.crt")), auth: auth.then(|| basic("prom", "pw")) };
    wait_serving(&e, &t);
    let honest = Honest::start(&t);
    let before = scrape(&e, &t);
    announced_bodies(&t);
    trickled_empty_lines(&t);
    if auth {
        let (failures, throttled) = pipelined_wrong_passwords(&t, &e);
        assert!(failures + throttled <= 2.0, "{failures} bcrypt checks, {throttled} throttled for a client gone away");
        repeated_wrong_passwords(&t);
    }
    never_reading(&t);
    small_ones(&t);
    let after = scrape(&e, &t);
    assert_eq!(closed(&after, "request_body") - closed(&before, "request_body"), 5.0);
    assert_eq!(closed(&after, "http_version") - closed(&before, "http_version"), 1.0);
    assert_eq!(closed(&after, "header_timeout") - closed(&before, "header_timeout"), 2.0);
    let (p99, n) = honest.finish();
    assert!(p99 < Duration::from_secs(1), "honest p99 {p99:?} over {n} scrapes");
    assert!(n >= 40, "only {n} honest scrapes");
    let (status, _) = e.terminate();
    assert!(status.success(), "{status}\n{}", e.logs());
    drop(dir);
    (p99, n)
}

/// Waits until the exporter answers over its own protocol (plain, TLS) with a 200.
fn wait_serving(e: &Exporter, t: &Target) {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let ok = Conn::open(t)
            .and_then(|mut c| {
                c.write_all(
                    format!("GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\r\n", credentials(t))
                        .as_bytes(),
                )
                .map(|()| c.read_all())
            })
            .is_ok_and(|a| status(&a) == Some(200));
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not serving after 10 s\n{}", e.logs());
}

#[test]
fn attacks_over_plain_http_without_auth() {
    let (p99, n) = run("atk-plain", false, false);
    eprintln!("honest p99 {p99:?} over {n} scrapes");
}

#[test]
fn attacks_over_plain_http_with_basic_auth() {
    let (p99, n) = run("atk-auth", false, true);
    eprintln!("honest p99 {p99:?} over {n} scrapes");
}

#[test]
fn attacks_over_tls_without_auth() {
    let (p99, n) = run("atk-tls", true, false);
    eprintln!("honest p99 {p99:?} over {n} scrapes");
}

#[test]
fn attacks_over_tls_with_basic_auth() {
    let (p99, n) = run("atk-tls-auth", true, true);
    eprintln!("honest p99 {p99:?} over {n} scrapes");
}
