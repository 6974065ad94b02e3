//! `tail`: reads the topic without joining any consumer group (partitions are assigned directly, nothing is
//! committed), printing each record's position and what it decodes to.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use crate::config::cli::TailArgs;
use crate::config::KafkaConfig;
use crate::decode::keys::MetricKey;
use crate::decode::labels::{category_label, model_label};
use crate::decode::{Decoded, Decoder, QualityView};
use crate::runtime::shutdown::Lifecycle;

#[derive(Clone, Debug)]
pub struct TailOptions {
    pub topic: String,
    pub from_beginning: bool,
    /// Stop after this many records (0 = never).
    pub limit: u64,
    pub partition: Option<i32>,
    pub json: bool,
    pub max_payload: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("kafka: {}", crate::config::kafka::printable_error(.0))]
    Kafka(#[from] KafkaError),
    #[error("topic {0:?} does not exist or has no partitions")]
    NoTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    NoPartition { topic: String, partition: i32 },
}

/// First bytes of a payload as hex.
pub fn hex_preview(bytes: &[u8], max: usize) -> String {
    let mut s = String::new();
    for (i, b) in bytes.iter().take(max).enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > max {
        s.push_str(" …");
    }
    s
}

fn event_json(ev: &QualityView<'_>) -> Value {
    // The latency is observed only when the record carries it (QualityMonitor's evaluations do not): null
    // otherwise, so what `tail` shows is what the exporter counts.
    let latency_ms = ev.anomalies.present.contains(MetricKey::LatencyMs).then_some(ev.latency_ms);
    json!({
        "query_id": ev.query_id,
        "quality_score": ev.quality_score,
        "passed": ev.passed,
        "category": ev.category,
        "latency_ms": latency_ms,
        "retry_count": ev.retry_count,
        "model": ev.model,
        "session_id": ev.session_id,
        "turn_number": ev.turn_number,
        "accuracy": ev.accuracy,
        "relevance": ev.relevance,
        "completeness": ev.completeness,
        "application_type": ev.application_type,
        "issues_count": ev.issues_count,
        "issues": ev.issues.iter().map(|i| i.label()).collect::<Vec<_>>(),
        "other_issues": ev.other_issues,
    })
}

/// Describes one record, as a JSON object.
pub fn describe(partition: i32, offset: i64, payload: Option<&[u8]>, decoder: &mut Decoder) -> Value {
    let mut v = match payload {
        None => json!({"kind": "payload_missing"}),
        Some(bytes) => match decoder.decode(bytes) {
            Ok(Decoded::Quality(v)) => {
                let (ev, an) = (v, v.anomalies);
                json!({
                "kind": "quality",
                "event": event_json(&ev),
                "model_label": if ev.model.is_empty() { Value::Null } else { model_label(ev.model).into() },
                "category_label": category_label(ev.category),
                "missing_header": an.missing_header,
                "type_mismatch": an.type_mismatch.names().collect::<Vec<_>>(),
                "out_of_range": an.out_of_range.names().collect::<Vec<_>>(),
                })
            }
            Ok(Decoded::WrongScope(scope)) => json!({"kind": "wrong_scope", "scope": scope}),
            Ok(Decoded::Other(kind)) => json!({"kind": "other_type", "message_type": kind.label()}),
            Ok(Decoded::QualityAlert) => json!({"kind": "quality_alert"}),
            Err(e) => json!({
                "kind": "error",
                "reason": e.reason().label(),
                "error": e.to_string(),
                "size": bytes.len(),
                "hex": hex_preview(bytes, 32),
            }),
        },
    };
    v["partition"] = partition.into();
    v["offset"] = offset.into();
    v
}

/// One human-readable line for a described record.
pub fn text_line(v: &Value) -> String {
    let pos = format!("partition={} offset={}", v["partition"], v["offset"]);
    match v["kind"].as_str().unwrap_or("") {
        "quality" => {
            let e = &v["event"];
            format!(
                "{pos} quality query_id={} passed={} score={} category={}({}) model={}({}) latency_ms={} retries={} session={} turn={} app={}{}",
                e["query_id"],
                e["passed"],
                e["quality_score"],
                e["category"],
                v["category_label"].as_str().unwrap_or(""),
                e["model"],
                v["model_label"].as_str().unwrap_or("-"),
                e["latency_ms"],
                e["retry_count"],
                e["session_id"],
                e["turn_number"],
                e["application_type"],
                if v["missing_header"] == true { " [missing header]" } else { "" }
            )
        }
        "error" => format!(
            "{pos} error {}: {} ({} bytes: {})",
            v["reason"].as_str().unwrap_or(""),
            v["error"].as_str().unwrap_or(""),
            v["size"],
            v["hex"].as_str().unwrap_or("")
        ),
        "wrong_scope" => format!("{pos} not a quality event: scope {}", v["scope"]),
        "other_type" => format!("{pos} not a quality event: message type {}", v["message_type"].as_str().unwrap_or("")),
        "quality_alert" => format!("{pos} QualityMonitor alert: LOW_QUALITY"),
        _ => format!("{pos} no payload"),
    }
}

/// The `tail` subcommand: prints what `args` asks for.
pub fn main(args: TailArgs) -> i32 {
    let (cfg, life) = match super::client_tool_start(&args.settings) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let opts = TailOptions {
        topic: cfg.kafka.topic.clone(),
        from_beginning: args.from_beginning,
        limit: args.limit,
        partition: args.partition,
        json: args.json,
        max_payload: cfg.max_payload_bytes,
    };
    match run(&cfg.kafka, &opts, &life) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("tail failed: {e}");
            1
        }
    }
}

/// Prints records until the limit is reached or a stop is requested; returns how many were printed.
pub fn run(kafka: &KafkaConfig, opts: &TailOptions, life: &Lifecycle) -> Result<u64, TailError> {
    let mut cc = kafka.client_config();
    // librdkafka wants a group id even for assign(); this one is never joined (partitions are assigned
    // directly) and never committed to, so no group is created or disturbed.
    let group = format!("dashflow-tail-{}-{}", std::process::id(), crate::metrics::unix_now() as u64);
    cc.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = cc.create()?;
    let md = consumer.fetch_metadata(Some(&opts.topic), Duration::from_secs(10))?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == opts.topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if parts.is_empty() {
        return Err(TailError::NoTopic(opts.topic.clone()));
    }
    let chosen: Vec<i32> = match opts.partition {
        Some(p) if parts.contains(&p) => vec![p],
        Some(p) => return Err(TailError::NoPartition { topic: opts.topic.clone(), partition: p }),
        None => parts,
    };
    let mut tpl = TopicPartitionList::new();
    let start = if opts.from_beginning { Offset::Beginning } else { Offset::End };
    for p in &chosen {
        tpl.add_partition_offset(&opts.topic, *p, start)?;
    }
    consumer.assign(&tpl)?;
    let mut decoder = Decoder::new(opts.max_payload);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut printed = 0u64;
    let mut last_error = Instant::now() - Duration::from_secs(60);
    while !life.stop_requested() && (opts.limit == 0 || printed < opts.limit) {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) if last_error.elapsed() > Duration::from_secs(10) => {
                eprintln!("kafka: {e}");
                last_error = Instant::now();
            }
            Some(Err(_)) => {}
            Some(Ok(m)) => {
                let v = describe(m.partition(), m.offset(), m.payload(), &mut decoder);
                let line = if opts.json { v.to_string() } else { text_line(&v) };
                if writeln!(out, "{line}").is_err() {
                    break; // stdout closed (e.g. piped into head)
                }
                printed += 1;
            }
        }
    }
    let _ = out.flush();
    Ok(printed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::encode::{Framing, QualityRecord};

    #[test]
    fn describes_every_kind() {
        let mut d = Decoder::new(1 << 20);
        let q = describe(2, 9, Some(&QualityRecord::sample(4).encode(Framing::Framed)), &mut d);
        assert_eq!(q["kind"], "quality");
        assert_eq!(q["partition"], 2);
        assert_eq!(q["offset"], 9);
        assert_eq!(q["event"]["model"], "claude-3-5-sonnet-20241022");
        assert_eq!(q["model_label"], "claude-3.5-sonnet");
        assert!(text_line(&q).starts_with("partition=2 offset=9 quality query_id=\"q-4\" passed=true"));
        let e = describe(0, 1, Some(&[0x00, 0xff, 0xff]), &mut d);
        assert_eq!(e["reason"], "invalid_protobuf");
        assert_eq!(e["hex"], "00 ff ff");
        assert!(text_line(&e).contains("error invalid_protobuf: "));
        assert_eq!(describe(0, 2, None, &mut d)["kind"], "payload_missing");
        assert_eq!(describe(0, 3, Some(&[]), &mut d)["reason"], "empty");
    }

    #[test]
    fn hex_preview_is_bounded() {
        assert_eq!(hex_preview(&[1, 2, 255], 2), "01 02 …");
        assert_eq!(hex_preview(&[], 4), "");
    }
}
