//! Test harness: librdkafka's mock cluster (real Kafka protocol over TCP on loopback), a real rdkafka
//! producer, the real exporter binary as a child process, and plain HTTP over TCP.
#![allow(dead_code)]

pub mod pki;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashflow_prometheus_exporter::sim::mock::MockBroker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

pub const BIN: &str = env!("CARGO_BIN_EXE_dashflow-prometheus-exporter");

/// An in-process mock Kafka cluster with one topic.
pub struct Cluster {
    pub mock: MockBroker,
    pub brokers: String,
    pub topic: String,
    pub partitions: i32,
}

impl Cluster {
    pub fn new(topic: &str, partitions: i32) -> Cluster {
        let mock = MockBroker::start(1).expect("mock cluster");
        mock.create_topic(topic, partitions).expect("create topic");
        let brokers = mock.bootstrap_servers().to_string();
        Cluster { mock, brokers, topic: topic.into(), partitions }
    }

    pub fn producer(&self) -> BaseProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("broker.address.family", "v4")
            .set("linger.ms", "2")
            .create()
            .expect("producer")
    }

    /// Produces `(partition, value)` records in order (`None` value = null payload) and waits for delivery.
    pub fn produce(&self, records: &[(i32, Option<Vec<u8>>)]) {
        let p = self.producer();
        for (part, value) in records {
            let mut rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(&self.topic).partition(*part);
            if let Some(v) = value {
                rec = rec.payload(v.as_slice());
            }
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((e, r)) => {
                        assert!(
                            matches!(
                                e,
                                rdkafka::error::KafkaError::MessageProduction(
                                    rdkafka::types::RDKafkaErrorCode::QueueFull
                                )
                            ),
                            "{e}"
                        );
                        rec = r;
                        p.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        p.flush(Duration::from_secs(30)).expect("flush");
    }

    /// The group's committed offsets per partition, read by a fresh consumer (-1 when none).
    pub fn committed(&self, group: &str) -> Vec<i64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("broker.address.family", "v4")
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions {
            tpl.add_partition(&self.topic, p);
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
        (0..self.partitions)
            .map(|p| match got.find_partition(&self.topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            })
            .collect()
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The exporter binary running as a child process.
pub struct Exporter {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

/// Environment of a test exporter: fast group settings for the mock cluster, loopback HTTP on a free port.
pub fn base_env(brokers: &str, topic: &str, group: &str, port: u16) -> Vec<(String, String)> {
    [
        ("KAFKA_BROKERS", brokers),
        ("KAFKA_TOPIC", topic),
        ("KAFKA_GROUP_ID", group),
        ("METRICS_BIND_IP", "127.0.0.1"),
        ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
        ("KAFKA_CONSUMER_PROPERTIES", "heartbeat.interval.ms=500"),
        ("RUST_LOG", "info"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("METRICS_PORT".to_string(), port.to_string())])
    .collect()
}

impl Exporter {
    pub fn start(cluster: &Cluster, group: &str, extra: &[(&str, &str)]) -> Exporter {
        Self::start_with(&cluster.brokers, &cluster.topic, group, extra)
    }

    pub fn start_with(brokers: &str, topic: &str, group: &str, extra: &[(&str, &str)]) -> Exporter {
        let e = Self::spawn(brokers, topic, group, extra);
        e.wait_until(Duration::from_secs(10), "HTTP listening", |e| e.get("/-/healthy").is_ok());
        e
    }

    /// Starts the exporter and returns once it has logged its HTTP port, before any request is made (with TLS
    /// on, the plain-HTTP probe of `start_with` cannot be used).
    pub fn spawn(brokers: &str, topic: &str, group: &str, extra: &[(&str, &str)]) -> Exporter {
        // Port 0: the exporter binds a free port and logs it (no race between tests picking "free" ports).
        let port = 0;
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let log = std::env::temp_dir().join(format!("dfe-test-{}-{n}.log", std::process::id()));
        let mut cmd = Command::new(BIN);
        cmd.env_clear();
        for (k, v) in base_env(brokers, topic, group, port) {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(std::fs::OpenOptions::new().append(true).open(&log).unwrap()));
        let child = cmd.spawn().expect("spawn exporter");
        let mut e = Exporter { child, port, log };
        let start = Instant::now();
        e.port = loop {
            let logs = e.logs();
            if let Some(p) = logs
                .split("serving metrics on http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|p| p.parse().ok())
            {
                break p;
            }
            if let Some(st) = e.child.try_wait().unwrap() {
                panic!("exporter exited with {st}:\n{logs}");
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("exporter did not log its HTTP port:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        e
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One request; returns (status, headers lower-cased, body).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
        http_request(self.addr(), method, path, headers)
    }

    pub fn get(&self, path: &str) -> std::io::Result<Response> {
        self.request("GET", path, &[])
    }

    pub fn scrape(&self) -> Scrape {
        let r = self.get("/metrics").expect("scrape");
        assert_eq!(r.status, 200);
        Scrape::parse(&String::from_utf8(r.body).expect("utf-8 exposition"))
    }

    /// Polls until `cond` holds; panics with the logs after `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, cond: impl Fn(&Exporter) -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out after {timeout:?} waiting for {what}\n--- exporter log ---\n{}", self.logs());
    }

    /// Waits until a series has exactly `value`.
    pub fn wait_value(&self, series: &str, value: f64, timeout: Duration) {
        self.wait_until(timeout, &format!("{series} == {value}"), |e| e.scrape().get(series) == Some(value));
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long it took.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let start = Instant::now();
        // SAFETY: plain kill(2) on our child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("exporter did not exit within 20 s of SIGTERM\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal HTTP/1.1 client (Connection: close; bodies by Content-Length or until close).
pub fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Splits a raw HTTP/1.1 response (as read until close) into status, headers and body.
pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {:?}", String::from_utf8_lossy(raw))))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(Response { status, headers, body: raw[split + 4..].to_vec() })
}

/// A parsed exposition: series (name with labels, as printed) → value.
#[derive(Debug, Default)]
pub struct Scrape {
    pub series: BTreeMap<String, f64>,
    pub text: String,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut series = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (name, value) = line.rsplit_once(' ').expect("series line");
            let v = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value of {line:?}")),
            };
            series.insert(name.to_string(), v);
        }
        Scrape { series, text: text.to_string() }
    }

    pub fn get(&self, series: &str) -> Option<f64> {
        self.series.get(series).copied()
    }

    /// The value of a series that must exist.
    pub fn v(&self, series: &str) -> f64 {
        self.get(series).unwrap_or_else(|| panic!("series {series} missing from scrape:\n{}", self.text))
    }

    /// Sum over all series of a family with the given name prefix `name{`.
    pub fn sum(&self, name: &str) -> f64 {
        self.series.iter().filter(|(k, _)| k.starts_with(&format!("{name}{{")) || *k == name).map(|(_, v)| v).sum()
    }
}
