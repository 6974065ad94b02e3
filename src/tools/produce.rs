//! `produce`: a traffic generator against any broker, with an exact summary of what it sent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::{json, Value};

pub use crate::config::cli::KeyMode;
use crate::config::cli::ProduceArgs;
use crate::config::KafkaConfig;
use crate::decode::labels::{category_label, is_librarian, model_label};
use crate::decode::Issue;
use crate::proto::{dash_stream_message::Message, DashStreamMessage, TokenChunk};
use crate::runtime::shutdown::Lifecycle;
use crate::sim::encode::{frame, Framing};
use crate::sim::generator::{Encoded, Generator, Rng, Traffic};

#[derive(Clone, Debug)]
pub struct ProduceOptions {
    pub topic: String,
    /// Events per second; 0 = as fast as possible.
    pub rate: u64,
    /// Records to send; 0 = until stopped.
    pub count: u64,
    pub keys: KeyMode,
    pub traffic: Traffic,
    /// Share of records that are malformed or not quality events (every kind in turn, randomly).
    pub bad_ratio: f64,
    /// The exporter's DASHSTREAM_MAX_PAYLOAD_BYTES, to build records just over it.
    pub max_payload: usize,
    /// librdkafka's `linger.ms`: how long records wait to be batched.
    pub linger_ms: u32,
    /// Kafka timestamps spread over the past: (first, span) in milliseconds; record i of `count` is stamped
    /// `first + span * i / count` (for `backfill`). `None`: librdkafka stamps each record when sent.
    pub stamps: Option<(i64, i64)>,
}

/// Kinds of bad record, named as the exporter counts them.
pub const BAD_KINDS: [&str; 9] = [
    "empty",
    "payload_too_large",
    "decompressed_too_large",
    "decompress",
    "invalid_protobuf",
    "payload_missing",
    "wrong_scope",
    "other_type:token_chunk",
    "other_type:empty",
];

/// What was sent, exactly (delivery failures are counted separately and excluded).
#[derive(Debug, Default)]
pub struct Summary {
    pub records: u64,
    pub quality: u64,
    pub passed: u64,
    pub failed_by_category: BTreeMap<&'static str, u64>,
    pub by_model: BTreeMap<&'static str, u64>,
    pub librarian: u64,
    /// QualityMonitor evaluations among the quality events, the issues they report and their alerts.
    pub monitor: u64,
    pub issues: BTreeMap<&'static str, u64>,
    pub alerts: u64,
    pub latency_ms_sum: u64,
    pub framing: BTreeMap<&'static str, u64>,
    pub bad: BTreeMap<&'static str, u64>,
    pub delivery_failures: u64,
    pub elapsed: Duration,
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "records": self.records,
            "quality_events": self.quality,
            "passed": self.passed,
            "failed": self.quality - self.passed,
            "failed_by_category": self.failed_by_category,
            "by_model": self.by_model,
            "librarian": self.librarian,
            "monitor_evaluations": self.monitor,
            "issues": self.issues,
            "alerts": self.alerts,
            "latency_ms_sum": self.latency_ms_sum,
            "framing": self.framing,
            "bad": self.bad,
            "delivery_failures": self.delivery_failures,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "events_per_second": self.records as f64 / self.elapsed.as_secs_f64().max(1e-9),
        })
    }

    pub fn to_text(&self) -> String {
        let mut s = format!(
            "sent {} records in {:.2} s ({:.0}/s)\nquality events: {} (passed {}, failed {})\nlibrarian: {}\n",
            self.records,
            self.elapsed.as_secs_f64(),
            self.records as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.quality,
            self.passed,
            self.quality - self.passed,
            self.librarian
        );
        if self.monitor > 0 {
            s.push_str(&format!(
                "QualityMonitor evaluations: {} (LOW_QUALITY alerts sent after them: {})\n",
                self.monitor, self.alerts
            ));
        }
        let mut section = |title: &str, m: &BTreeMap<&'static str, u64>| {
            if !m.is_empty() {
                s.push_str(title);
                s.push('\n');
                for (k, v) in m {
                    s.push_str(&format!("  {k:<24} {v}\n"));
                }
            }
        };
        section("failed by category:", &self.failed_by_category);
        section("issues (QualityMonitor evaluations):", &self.issues);
        section("by model (normalized label):", &self.by_model);
        section("framing:", &self.framing);
        section("bad records by reason:", &self.bad);
        if self.delivery_failures > 0 {
            s.push_str(&format!("delivery failures (not counted above): {}\n", self.delivery_failures));
        }
        s
    }
}

fn framing_name(f: Framing) -> &'static str {
    match f {
        Framing::Framed => "framed",
        Framing::FramedZstd => "framed_zstd",
        Framing::Legacy => "legacy",
        Framing::LegacyZstd => "legacy_zstd",
    }
}

/// Builds bad records; the expensive ones are made once.
struct BadRecords {
    bomb: Vec<u8>,
    too_large: Option<Vec<u8>>,
}

/// Kafka's default largest record is about 1 MB; larger test records would be refused by the broker.
const KAFKA_MAX_RECORD: usize = 1_000_000;

impl BadRecords {
    fn new(max_payload: usize) -> Self {
        let zeros = vec![0u8; max_payload + 1];
        let mut bomb = vec![crate::decode::FRAME_ZSTD];
        bomb.extend(zstd::bulk::compress(&zeros, 19).expect("zstd"));
        let too_large = (max_payload + 2 <= KAFKA_MAX_RECORD).then(|| {
            let mut v = vec![crate::decode::FRAME_PLAIN];
            v.resize(max_payload + 2, 0x0a);
            v
        });
        BadRecords { bomb, too_large }
    }

    /// The kinds this run can produce (payload_too_large only when the limit is below Kafka's record size).
    fn kinds(&self) -> Vec<&'static str> {
        BAD_KINDS.iter().copied().filter(|k| *k != "payload_too_large" || self.too_large.is_some()).collect()
    }

    fn make(&self, kind: &str, gen: &mut Generator) -> Option<Vec<u8>> {
        Some(match kind {
            "empty" => Vec::new(),
            "payload_too_large" => self.too_large.clone()?,
            "decompressed_too_large" => self.bomb.clone(),
            "decompress" => vec![crate::decode::FRAME_ZSTD, 0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff],
            "invalid_protobuf" => vec![crate::decode::FRAME_PLAIN, 0xff, 0xff, 0xff],
            "payload_missing" => return None,
            "wrong_scope" => {
                let mut r = gen.next_record();
                r.scope = "llm".into();
                r.encode(Framing::Framed)
            }
            "other_type:token_chunk" => {
                frame(&DashStreamMessage { message: Some(Message::TokenChunk(TokenChunk {})) }, Framing::Framed)
            }
            _ => frame(&DashStreamMessage { message: None }, Framing::Framed),
        })
    }
}

/// Producer properties tuned for throughput, records batched for `linger_ms`.
pub fn producer_config(kafka: &KafkaConfig, linger_ms: u32) -> ClientConfig {
    let mut cc = kafka.client_config();
    cc.set("linger.ms", linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.max.bytes", "1048576")
        .set("compression.type", "none");
    cc
}

/// The `produce` subcommand: sends what `args` asks for, then prints the summary.
pub fn main(args: ProduceArgs) -> i32 {
    let (cfg, life) = match super::client_tool_start(&args.settings) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let opts = ProduceOptions {
        topic: cfg.kafka.topic.clone(),
        rate: args.rate,
        count: args.count,
        keys: args.keys,
        traffic: Traffic {
            seed: args.seed,
            pass_rate: args.pass_rate,
            zstd_ratio: args.zstd_ratio,
            legacy_ratio: args.legacy_ratio,
            active_sessions: args.sessions,
            monitor_ratio: args.monitor_ratio,
            // DashFlow-shaped records carry their time in the header too: the same spread as the Kafka stamps.
            stamp_from_us: args.stamps.map(|(first, _)| first * 1000),
            stamp_step_us: args.stamps.map_or(1, |(_, span)| (span * 1000 / args.count.max(1) as i64).max(1)),
            ..Traffic::default()
        },
        bad_ratio: args.bad_ratio,
        max_payload: cfg.max_payload_bytes,
        linger_ms: args.linger_ms,
        stamps: args.stamps,
    };
    if opts.stamps.is_some() && opts.count == 0 {
        eprintln!("--timestamps-from spreads the stamps over --count records: give --count");
        return super::EXIT_CONFIG;
    }
    if opts.traffic.zstd_ratio + opts.traffic.legacy_ratio > 1.0 {
        eprintln!("--zstd-ratio plus --legacy-ratio must not exceed 1");
        return super::EXIT_CONFIG;
    }
    match run(&cfg.kafka, &opts, &life) {
        Ok(summary) => {
            if args.json {
                println!("{}", summary.to_json());
            } else {
                print!("{}", summary.to_text());
            }
            0
        }
        Err(e) => {
            eprintln!("produce failed: {}", crate::config::kafka::printable_error(&e));
            1
        }
    }
}

/// Sends records until `count` is reached or a stop is requested; returns what was sent.
pub fn run(kafka: &KafkaConfig, opts: &ProduceOptions, life: &Lifecycle) -> Result<Summary, KafkaError> {
    let producer: BaseProducer = producer_config(kafka, opts.linger_ms).create()?;
    let mut gen = Generator::new(opts.traffic.clone());
    let mut rng = Rng::new(opts.traffic.seed ^ 0xBAD);
    let bad = BadRecords::new(opts.max_payload);
    let bad_kinds = bad.kinds();
    let mut sum = Summary::default();
    let start = Instant::now();
    let mut key_buf = String::new();
    let mut value_buf: Vec<u8> = Vec::with_capacity(512);
    let mut session_key = String::new();
    while (opts.count == 0 || sum.records < opts.count) && !life.stop_requested() {
        if opts.rate > 0 {
            let due = (start.elapsed().as_secs_f64() * opts.rate as f64) as u64;
            if sum.records >= due {
                producer.poll(Duration::from_millis(1));
                continue;
            }
        }
        let is_bad = opts.bad_ratio > 0.0 && rng.f64() < opts.bad_ratio;
        let (value, note): (Option<&[u8]>, Note) = if is_bad {
            let kind = *rng.pick(&bad_kinds);
            match bad.make(kind, &mut gen) {
                Some(v) => {
                    value_buf = v;
                    (Some(value_buf.as_slice()), Note::Bad(kind))
                }
                None => (None, Note::Bad(kind)),
            }
        } else {
            let d = gen.next_encoded(&mut value_buf, &mut session_key);
            (Some(value_buf.as_slice()), Note::Good(d))
        };
        let key: Option<&str> = match opts.keys {
            KeyMode::Session if !is_bad => Some(session_key.as_str()),
            KeyMode::Session | KeyMode::None => None,
            KeyMode::Random => {
                key_buf.clear();
                let _ = write!(key_buf, "{:016x}", rng.next_u64());
                Some(key_buf.as_str())
            }
        };
        let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(&opts.topic);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        let stamp = opts.stamps.map(|(first, span)| {
            first + (i128::from(span) * i128::from(sum.records) / i128::from(opts.count.max(1))) as i64
        });
        if let Some(ms) = stamp {
            rec = rec.timestamp(ms);
        }
        send(&producer, rec)?;
        sum.records += 1;
        note.count(&mut sum);
        // QualityMonitor's alert after a low evaluation (within --count).
        if let Some(alert) = gen.take_alert().filter(|_| opts.count == 0 || sum.records < opts.count) {
            let mut rec = BaseRecord::to(&opts.topic).key(session_key.as_str()).payload(alert.as_slice());
            if let Some(ms) = stamp {
                rec = rec.timestamp(ms);
            }
            send(&producer, rec)?;
            sum.records += 1;
            sum.alerts += 1;
        }
        if sum.records % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60))?;
    sum.elapsed = start.elapsed();
    Ok(sum)
}

/// Sends one record, waiting while librdkafka's queue is full.
fn send(producer: &BaseProducer, mut rec: BaseRecord<'_, str, [u8]>) -> Result<(), KafkaError> {
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

enum Note<'a> {
    Good(Encoded<'a>),
    Bad(&'static str),
}

impl Note<'_> {
    fn count(self, sum: &mut Summary) {
        match self {
            Note::Bad(kind) => *sum.bad.entry(kind).or_default() += 1,
            Note::Good(Encoded { record: r, framing }) => {
                sum.quality += 1;
                *sum.framing.entry(framing_name(framing)).or_default() += 1;
                if r.quality_average.is_some() {
                    sum.monitor += 1;
                    for issue in &r.issues {
                        *sum.issues.entry(Issue::from_label(issue).unwrap_or(Issue::Other).label()).or_default() += 1;
                    }
                }
                // As the exporter judges by default: by `passed`, or a monitor evaluation by its issues.
                let passed = match r.passed {
                    Some(p) => p,
                    None => r.quality_average.is_some() && r.issues.is_empty(),
                };
                if passed {
                    sum.passed += 1;
                } else {
                    *sum.failed_by_category
                        .entry(category_label(r.category.as_deref().unwrap_or_default()))
                        .or_default() += 1;
                }
                if let Some(model) = r.model.as_deref().filter(|m| !m.is_empty()) {
                    *sum.by_model.entry(model_label(model)).or_default() += 1;
                }
                if is_librarian(r.application_type.as_deref().unwrap_or_default()) {
                    sum.librarian += 1;
                }
                sum.latency_ms_sum += r.latency_ms.unwrap_or(0).max(0) as u64;
            }
        }
    }
}
