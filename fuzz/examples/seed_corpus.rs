//! Writes the generated seeds of `corpus/decode/` (the official records under tests/data/dashstream are copied
//! beside them by README.md's recipe): records of this project's generator and encoder in every framing, and
//! one of each shape the decoder distinguishes (wrong types, out-of-range values, aliases, other message
//! types, a small zstd bomb).
//!
//! Run from `fuzz/`: `cargo run --example seed_corpus -- corpus/decode`.

use std::path::PathBuf;

use dashflow_prometheus_exporter::proto::dash_stream_message::Message;
use dashflow_prometheus_exporter::proto::metric_value::Value;
use dashflow_prometheus_exporter::proto::{DashStreamMessage, MetricValue};
use dashflow_prometheus_exporter::sim::encode::{frame, Framing, QualityRecord, WORKED_EXAMPLE};
use dashflow_prometheus_exporter::sim::generator::{Generator, Traffic};

const FRAMINGS: [(Framing, &str); 4] = [
    (Framing::Framed, "framed"),
    (Framing::FramedZstd, "framed-zstd"),
    (Framing::Legacy, "legacy"),
    (Framing::LegacyZstd, "legacy-zstd"),
];

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: seed_corpus DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    let mut write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(format!("gen-{name}")), bytes).unwrap();
        n += 1;
    };

    write("worked-example", &dashflow_prometheus_exporter::sim::encode::from_hex(WORKED_EXAMPLE));
    for i in 0..4u64 {
        for (f, name) in FRAMINGS {
            write(&format!("sample{i}-{name}"), &QualityRecord::sample(i).encode(f));
        }
    }
    // The generator's traffic: prost-encoded records and its hand-written encoder (the `produce` path).
    let mut g = Generator::new(Traffic { seed: 7, zstd_ratio: 0.25, legacy_ratio: 0.25, ..Traffic::default() });
    for i in 0..12 {
        write(&format!("generator-{i:02}"), &g.next_generated().value);
    }
    let (mut value, mut key) = (Vec::new(), String::new());
    for i in 0..12 {
        g.next_encoded(&mut value, &mut key);
        write(&format!("produce-{i:02}"), &value);
    }

    // One metric value of every protobuf type for every key the exporter reads.
    let keys = [
        "quality_score",
        "passed",
        "latency_ms",
        "retry_count",
        "turn_number",
        "accuracy",
        "relevance",
        "completeness",
    ];
    let values = [
        ("int", Value::IntValue(3)),
        ("float", Value::FloatValue(0.5)),
        ("string", Value::StringValue("0.5".into())),
        ("bool", Value::BoolValue(true)),
        ("bytes", Value::BytesValue(vec![1, 2])),
    ];
    for (ty, v) in &values {
        let mut m = QualityRecord::sample(1).message_metrics();
        for k in keys {
            m.metrics.insert(k.into(), MetricValue { value: Some(v.clone()), ..MetricValue::default() });
        }
        write(
            &format!("all-keys-{ty}"),
            &frame(&DashStreamMessage { message: Some(Message::Metrics(m)) }, Framing::Framed),
        );
    }
    // Out-of-range numbers.
    for (name, f) in
        [("nan", f64::NAN), ("inf", f64::INFINITY), ("neg-inf", f64::NEG_INFINITY), ("neg", -0.5), ("big", 1.5)]
    {
        let r = QualityRecord { quality_score: Some(f), accuracy: Some(f), ..QualityRecord::sample(2) };
        write(&format!("score-{name}"), &r.encode(Framing::Framed));
    }
    for (name, i) in [("neg", -1i64), ("over-u32", i64::from(u32::MAX) + 1), ("min", i64::MIN), ("max", i64::MAX)] {
        let r = QualityRecord {
            latency_ms: Some(i),
            retry_count: Some(i),
            turn_number: Some(i),
            ..QualityRecord::sample(3)
        };
        write(&format!("ints-{name}"), &r.encode(Framing::Framed));
    }
    // Aliases, no header, scopes, empty strings.
    let mut m = QualityRecord::sample(4).message_metrics();
    m.tags.clear();
    for (k, v) in [("complexity", "edge"), ("query_category", "Simple"), ("app_type", "code_assistant")] {
        m.tags.insert(k.into(), v.into());
    }
    write("aliases", &frame(&DashStreamMessage { message: Some(Message::Metrics(m)) }, Framing::Framed));
    write("no-header", &QualityRecord { thread_id: None, ..QualityRecord::sample(5) }.encode(Framing::Framed));
    write("scope-llm", &QualityRecord { scope: "llm".into(), ..QualityRecord::sample(6) }.encode(Framing::Framed));
    write("empty-metrics", &QualityRecord::default().encode(Framing::Framed));
    write(
        "empty-strings",
        &QualityRecord {
            model: Some(String::new()),
            category: Some(String::new()),
            thread_id: Some(String::new()),
            ..QualityRecord::sample(8)
        }
        .encode(Framing::Framed),
    );
    // Every other message type, and none.
    use dashflow_prometheus_exporter::proto as p;
    let others: [(&str, Option<Message>); 9] = [
        ("event", Some(Message::Event(p::Event::default()))),
        ("state-diff", Some(Message::StateDiff(p::StateDiff {}))),
        ("token-chunk", Some(Message::TokenChunk(p::TokenChunk {}))),
        ("tool-execution", Some(Message::ToolExecution(p::ToolExecution {}))),
        ("checkpoint", Some(Message::Checkpoint(p::Checkpoint {}))),
        ("error", Some(Message::Error(p::Error {}))),
        ("event-batch", Some(Message::EventBatch(p::EventBatch {}))),
        ("execution-trace", Some(Message::ExecutionTrace(p::ExecutionTrace {}))),
        ("none", None),
    ];
    for (name, msg) in others {
        write(&format!("other-{name}"), &frame(&DashStreamMessage { message: msg }, Framing::Framed));
    }
    // A zstd bomb just over the fuzz target's 256 KiB limit: 15 bytes of input.
    let mut bomb = vec![0x01];
    bomb.extend(zstd::bulk::compress(&vec![0u8; 300 * 1024], 19).unwrap());
    write("zstd-bomb", &bomb);
    eprintln!("wrote {n} seeds to {}", dir.display());
}
