//! Producer side: builds quality `Metrics` messages and frames them as DashFlow producers do. Used by the
//! built-in traffic generator (`demo`) and by the tests.

use prost::Message as _;

use crate::decode::{FRAME_PLAIN, FRAME_ZSTD};
use crate::proto::{
    dash_stream_message::Message, metric_value::Value, CompressionType, DashStreamMessage, Header, MessageType,
    MetricType, MetricValue, Metrics,
};

/// Reference §1.5: a 132-byte 0x00-framed quality event (thread "sess-1", score 0.9, passed, 1500 ms,
/// model gpt-4o, category Complex).
pub const WORKED_EXAMPLE: &str = "00 32 80 01 0a 0c 22 06 73 65 73 73 2d 31 30 06 48 01 12 07 71 75 61 6c 69 74 79 1a 04 71 2d 34 32 22 1a 0a 0d \
71 75 61 6c 69 74 79 5f 73 63 6f 72 65 12 09 11 cd cc cc cc cc cc ec 3f 22 0c 0a 06 70 61 73 73 65 64 12 02 20 01 22 11 0a \
0a 6c 61 74 65 6e 63 79 5f 6d 73 12 03 08 dc 0b 2a 0f 0a 05 6d 6f 64 65 6c 12 06 67 70 74 2d 34 6f 2a 13 0a 08 63 61 74 \
65 67 6f 72 79 12 07 43 6f 6d 70 6c 65 78";

/// Parses space-separated hex bytes.
pub fn from_hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|b| u8::from_str_radix(b, 16).expect("hex byte")).collect()
}

/// How a record value is laid out on the wire (reference §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `0x00` + protobuf (what producers send for small messages).
    Framed,
    /// `0x01` + zstd(protobuf), with `header.compression = ZSTD`.
    FramedZstd,
    /// Protobuf alone (legacy producers).
    Legacy,
    /// A bare zstd frame (legacy producers).
    LegacyZstd,
}

/// Frames a message.
pub fn frame(msg: &DashStreamMessage, framing: Framing) -> Vec<u8> {
    let mut msg = msg.clone();
    if matches!(framing, Framing::FramedZstd | Framing::LegacyZstd) {
        if let Some(Message::Metrics(Metrics { header: Some(h), .. })) = &mut msg.message {
            h.compression = CompressionType::CompressionZstd as i32;
        }
    }
    let body = msg.encode_to_vec();
    match framing {
        Framing::Framed => {
            let mut out = Vec::with_capacity(body.len() + 1);
            out.push(FRAME_PLAIN);
            out.extend_from_slice(&body);
            out
        }
        Framing::Legacy => body,
        Framing::FramedZstd => {
            let mut out = vec![FRAME_ZSTD];
            out.extend_from_slice(&zstd::bulk::compress(&body, 3).expect("zstd compress"));
            out
        }
        Framing::LegacyZstd => zstd::bulk::compress(&body, 3).expect("zstd compress"),
    }
}

/// A quality event as a producer writes it; `None` fields are left out of the message.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityRecord {
    /// `header.thread_id`; `None` leaves the header out entirely.
    pub thread_id: Option<String>,
    pub scope: String,
    pub scope_id: String,
    pub query_id: Option<String>,
    pub quality_score: Option<f64>,
    pub passed: Option<bool>,
    pub latency_ms: Option<i64>,
    pub retry_count: Option<i64>,
    pub turn_number: Option<i64>,
    pub accuracy: Option<f64>,
    pub relevance: Option<f64>,
    pub completeness: Option<f64>,
    pub model: Option<String>,
    pub category: Option<String>,
    pub application_type: Option<String>,
}

impl Default for QualityRecord {
    fn default() -> Self {
        QualityRecord {
            thread_id: None,
            scope: "quality".into(),
            scope_id: String::new(),
            query_id: None,
            quality_score: None,
            passed: None,
            latency_ms: None,
            retry_count: None,
            turn_number: None,
            accuracy: None,
            relevance: None,
            completeness: None,
            model: None,
            category: None,
            application_type: None,
        }
    }
}

fn value(v: Value, unit: &str, kind: MetricType) -> MetricValue {
    MetricValue { value: Some(v), unit: unit.into(), r#type: kind as i32 }
}

impl QualityRecord {
    /// A fully populated record, varied by `n`.
    pub fn sample(n: u64) -> Self {
        QualityRecord {
            thread_id: Some(format!("sess-{}", n % 7)),
            scope_id: format!("q-{n}"),
            query_id: Some(format!("q-{n}")),
            quality_score: Some(0.5 + (n % 5) as f64 / 10.0),
            passed: Some(n % 3 != 0),
            latency_ms: Some(100 + (n as i64 % 10) * 250),
            retry_count: Some((n % 4) as i64),
            turn_number: Some(1 + (n % 6) as i64),
            accuracy: Some(0.9),
            relevance: Some(0.8),
            completeness: Some(0.7),
            model: Some(["gpt-4o", "claude-3-5-sonnet-20241022", "llama3:8b"][(n % 3) as usize].into()),
            category: Some(["Simple", "Medium", "Complex", "Edge", "other"][(n % 5) as usize].into()),
            application_type: Some(["librarian", "rag"][(n % 2) as usize].into()),
            ..QualityRecord::default()
        }
    }

    /// The `Metrics` message of this record.
    pub fn message_metrics(&self) -> Metrics {
        let mut m = Metrics {
            header: self.thread_id.as_ref().map(|t| Header {
                thread_id: t.clone(),
                r#type: MessageType::Metrics as i32,
                schema_version: 1,
                ..Header::default()
            }),
            scope: self.scope.clone(),
            scope_id: self.scope_id.clone(),
            ..Metrics::default()
        };
        let mut put = |k: &str, v: Option<MetricValue>| {
            if let Some(v) = v {
                m.metrics.insert(k.into(), v);
            }
        };
        put("quality_score", self.quality_score.map(|x| value(Value::FloatValue(x), "score", MetricType::Gauge)));
        put("passed", self.passed.map(|x| value(Value::BoolValue(x), "bool", MetricType::Gauge)));
        put("latency_ms", self.latency_ms.map(|x| value(Value::IntValue(x), "ms", MetricType::Histogram)));
        put("retry_count", self.retry_count.map(|x| value(Value::IntValue(x), "count", MetricType::Counter)));
        put("turn_number", self.turn_number.map(|x| value(Value::IntValue(x), "count", MetricType::Counter)));
        put("accuracy", self.accuracy.map(|x| value(Value::FloatValue(x), "ratio", MetricType::Gauge)));
        put("relevance", self.relevance.map(|x| value(Value::FloatValue(x), "ratio", MetricType::Gauge)));
        put("completeness", self.completeness.map(|x| value(Value::FloatValue(x), "ratio", MetricType::Gauge)));
        for (k, v) in [
            ("query_id", &self.query_id),
            ("model", &self.model),
            ("category", &self.category),
            ("application_type", &self.application_type),
        ] {
            if let Some(v) = v {
                m.tags.insert(k.into(), v.clone());
            }
        }
        m
    }

    /// The whole `DashStreamMessage`.
    pub fn message(&self) -> DashStreamMessage {
        DashStreamMessage { message: Some(Message::Metrics(self.message_metrics())) }
    }

    /// Encoded and framed.
    pub fn encode(&self, framing: Framing) -> Vec<u8> {
        frame(&self.message(), framing)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// A `metrics` map entry: key and a MetricValue holding one oneof value.
fn put_metric(out: &mut Vec<u8>, key: &str, value: MetricOneof) {
    let value_len = match value {
        MetricOneof::Int(i) => 1 + varint_len(i as u64),
        MetricOneof::Float(_) => 9,
        MetricOneof::Bool(_) => 2,
    };
    let entry_len = 1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(value_len as u64) + value_len;
    put_tag(out, 4, 2);
    put_varint(out, entry_len as u64);
    put_bytes(out, 1, key.as_bytes());
    put_tag(out, 2, 2);
    put_varint(out, value_len as u64);
    match value {
        MetricOneof::Int(i) => {
            put_tag(out, 1, 0);
            put_varint(out, i as u64);
        }
        MetricOneof::Float(f) => {
            put_tag(out, 2, 1);
            out.extend_from_slice(&f.to_le_bytes());
        }
        MetricOneof::Bool(b) => {
            put_tag(out, 4, 0);
            out.push(u8::from(b));
        }
    }
}

#[derive(Clone, Copy)]
enum MetricOneof {
    Int(i64),
    Float(f64),
    Bool(bool),
}

fn put_tag_entry(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let entry_len = 1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(value.len() as u64) + value.len();
    put_tag(out, 5, 2);
    put_varint(out, entry_len as u64);
    put_bytes(out, 1, key.as_bytes());
    put_bytes(out, 2, value);
}

/// Writes an unframed `DashStreamMessage` carrying a generated quality event, directly in the protobuf wire
/// format (the same message [`QualityRecord::message`] builds, minus units and metric types).
pub fn write_quality_message(out: &mut Vec<u8>, d: &crate::sim::generator::Draw, session: &str) {
    use std::io::Write as _;
    let mut q = [0u8; 24];
    let q_len = {
        let mut c = std::io::Cursor::new(&mut q[..]);
        let _ = write!(c, "q-{}", d.n);
        c.position() as usize
    };
    let query = &q[..q_len];
    let header_len = 1 + varint_len(session.len() as u64) + session.len() + 2 + 2;
    let mut m: Vec<u8> = Vec::with_capacity(320);
    put_tag(&mut m, 1, 2);
    put_varint(&mut m, header_len as u64);
    put_bytes(&mut m, 4, session.as_bytes());
    put_tag(&mut m, 6, 0);
    put_varint(&mut m, MessageType::Metrics as u64);
    put_tag(&mut m, 9, 0);
    put_varint(&mut m, 1);
    put_bytes(&mut m, 2, b"quality");
    put_bytes(&mut m, 3, query);
    put_metric(&mut m, "accuracy", MetricOneof::Float(d.accuracy));
    put_metric(&mut m, "completeness", MetricOneof::Float(d.completeness));
    put_metric(&mut m, "latency_ms", MetricOneof::Int(d.latency_ms));
    put_metric(&mut m, "passed", MetricOneof::Bool(d.passed));
    put_metric(&mut m, "quality_score", MetricOneof::Float(d.quality_score));
    put_metric(&mut m, "relevance", MetricOneof::Float(d.relevance));
    put_metric(&mut m, "retry_count", MetricOneof::Int(d.retries));
    put_metric(&mut m, "turn_number", MetricOneof::Int(d.turn));
    put_tag_entry(&mut m, "application_type", d.application_type.as_bytes());
    put_tag_entry(&mut m, "category", d.category.as_bytes());
    put_tag_entry(&mut m, "model", d.model.as_bytes());
    put_tag_entry(&mut m, "query_id", query);
    put_bytes(out, 6, &m);
}
