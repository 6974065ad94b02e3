//! Producer side: builds quality `Metrics` messages and frames them as DashFlow producers do. Used by the
//! built-in traffic generator (`demo`, `produce`) and by the tests.
//!
//! [`QualityRecord::message`] builds the generated prost types; [`RecordWriter`] writes the same bytes
//! straight into a buffer, without building a message or allocating per record once its buffers have grown.
//! A record as DashFlow's producers write it (`DashStreamCallback::emit_quality_metrics`) has a full header
//! (message id, timestamp, tenant, thread, sequence, type, schema version), a unit and a metric type on every
//! value, and the `thread_id` and `tenant_id` tags; [`QualityRecord::units`] and
//! [`QualityRecord::identity_tags`] leave those out for the leaner shape the generator wrote before issue 29. A record may carry the keys of
//! either DashFlow producer (DashStreamCallback's, which the original reads, or QualityMonitor's);
//! [`low_quality_alert`] builds QualityMonitor's alert event.

use prost::Message as _;

use crate::decode::alert::{ALERT_TYPE_ATTRIBUTE, LOW_QUALITY_ALERT};
use crate::decode::framing::{FRAME_PLAIN, FRAME_ZSTD};
use crate::decode::keys::{MetricKey, TagKey};
use crate::proto::{
    attribute_value, dash_stream_message::Message, metric_value::Value, AttributeValue, CompressionType,
    DashStreamMessage, Event, EventType, Header, MessageType, MetricType, MetricValue, Metrics,
};

/// A 132-byte 0x00-framed quality event as a DashFlow producer writes it (thread "sess-1", scope id "q-42",
/// score 0.9, passed, 1500 ms, model gpt-4o, category Complex): the worked example of the wire format.
pub const WORKED_EXAMPLE: &str = "00 32 80 01 0a 0c 22 06 73 65 73 73 2d 31 30 06 48 01 12 07 71 75 61 6c 69 74 79 1a 04 71 2d 34 32 22 1a 0a 0d \
71 75 61 6c 69 74 79 5f 73 63 6f 72 65 12 09 11 cd cc cc cc cc cc ec 3f 22 0c 0a 06 70 61 73 73 65 64 12 02 20 01 22 11 0a \
0a 6c 61 74 65 6e 63 79 5f 6d 73 12 03 08 dc 0b 2a 0f 0a 05 6d 6f 64 65 6c 12 06 67 70 74 2d 34 6f 2a 13 0a 08 63 61 74 \
65 67 6f 72 79 12 07 43 6f 6d 70 6c 65 78";

/// Parses space-separated hex bytes.
pub fn from_hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|b| u8::from_str_radix(b, 16).expect("hex byte")).collect()
}

/// How a record value is laid out on the wire (docs/wire-format.md).
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

/// A quality event as a producer writes it: the producer's view of the event (any field may be left out, the
/// integers are the wire's i64), so tests and generated traffic can send what the decoder must cope with.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityRecord {
    /// `header.thread_id`; `None` leaves the header out entirely.
    pub thread_id: Option<String>,
    /// `header.message_id` (empty: unset, as protobuf leaves it); only written with a header.
    pub message_id: Vec<u8>,
    /// `header.timestamp_us` (0: unset, as protobuf leaves it); only written with a header.
    pub timestamp_us: i64,
    /// `header.tenant_id` ("": unset); only written with a header.
    pub tenant_id: String,
    /// `header.sequence` (0: unset); only written with a header.
    pub sequence: u64,
    /// A unit and a metric type on every metric value, as DashFlow's producers send them.
    pub units: bool,
    /// The `thread_id` and `tenant_id` tags (the header's values; each written when not empty), as
    /// `DashStreamCallback` sends them.
    pub identity_tags: bool,
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
    /// QualityMonitor's keys: `quality_accuracy`, `quality_relevance`, `quality_completeness`,
    /// `quality_average`, `quality_issues_count`.
    pub quality_accuracy: Option<f64>,
    pub quality_relevance: Option<f64>,
    pub quality_completeness: Option<f64>,
    pub quality_average: Option<f64>,
    pub quality_issues_count: Option<i64>,
    /// Issue tags, each written mapped to `"true"`, in name order (none of them a tag the exporter reads).
    pub issues: Vec<String>,
}

impl Default for QualityRecord {
    fn default() -> Self {
        QualityRecord {
            thread_id: None,
            message_id: Vec::new(),
            timestamp_us: 0,
            tenant_id: String::new(),
            sequence: 0,
            units: true,
            identity_tags: false,
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
            quality_accuracy: None,
            quality_relevance: None,
            quality_completeness: None,
            quality_average: None,
            quality_issues_count: None,
            issues: Vec::new(),
        }
    }
}

/// A metric value as a record holds it: one variant of the `MetricValue` oneof.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The unit and metric type DashFlow producers send with a key's value (`emit_quality_metrics`: "ratio" and
/// "bool" gauges for its five keys).
fn unit_and_type(key: MetricKey) -> (&'static str, MetricType) {
    match key {
        MetricKey::QualityScore => ("ratio", MetricType::Gauge),
        MetricKey::Passed => ("bool", MetricType::Gauge),
        MetricKey::LatencyMs => ("ms", MetricType::Histogram),
        MetricKey::RetryCount | MetricKey::TurnNumber => ("count", MetricType::Counter),
        MetricKey::Accuracy | MetricKey::Relevance | MetricKey::Completeness => ("ratio", MetricType::Gauge),
        MetricKey::QualityAccuracy
        | MetricKey::QualityRelevance
        | MetricKey::QualityCompleteness
        | MetricKey::QualityAverage => ("score", MetricType::Gauge),
        MetricKey::QualityIssuesCount => ("count", MetricType::Counter),
    }
}

/// The metric keys in name order: the order of the encoded `metrics` map entries (the generated types keep
/// maps sorted).
const METRICS_BY_NAME: [MetricKey; MetricKey::COUNT] = [
    MetricKey::Accuracy,
    MetricKey::Completeness,
    MetricKey::LatencyMs,
    MetricKey::Passed,
    MetricKey::QualityAccuracy,
    MetricKey::QualityAverage,
    MetricKey::QualityCompleteness,
    MetricKey::QualityIssuesCount,
    MetricKey::QualityRelevance,
    MetricKey::QualityScore,
    MetricKey::Relevance,
    MetricKey::RetryCount,
    MetricKey::TurnNumber,
];

impl QualityRecord {
    /// A fully populated record, varied by `n`.
    pub fn sample(n: u64) -> Self {
        QualityRecord {
            thread_id: Some(format!("sess-{}", n % 7)),
            message_id: n.to_be_bytes().repeat(2),
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

    /// This record's value of a metric key (`None`: left out).
    fn metric(&self, key: MetricKey) -> Option<Scalar> {
        match key {
            MetricKey::QualityScore => self.quality_score.map(Scalar::Float),
            MetricKey::Passed => self.passed.map(Scalar::Bool),
            MetricKey::LatencyMs => self.latency_ms.map(Scalar::Int),
            MetricKey::RetryCount => self.retry_count.map(Scalar::Int),
            MetricKey::TurnNumber => self.turn_number.map(Scalar::Int),
            MetricKey::Accuracy => self.accuracy.map(Scalar::Float),
            MetricKey::Relevance => self.relevance.map(Scalar::Float),
            MetricKey::Completeness => self.completeness.map(Scalar::Float),
            MetricKey::QualityAccuracy => self.quality_accuracy.map(Scalar::Float),
            MetricKey::QualityRelevance => self.quality_relevance.map(Scalar::Float),
            MetricKey::QualityCompleteness => self.quality_completeness.map(Scalar::Float),
            MetricKey::QualityAverage => self.quality_average.map(Scalar::Float),
            MetricKey::QualityIssuesCount => self.quality_issues_count.map(Scalar::Int),
        }
    }

    /// A QualityMonitor evaluation as `QualityMonitor::emit_quality_metrics` writes it: the three scores,
    /// their average, the issue count and one tag per issue (issues in name order), scope id
    /// `response_evaluation`.
    pub fn monitor(thread_id: &str, accuracy: f64, relevance: f64, completeness: f64, issues: &[&str]) -> Self {
        let mut issues: Vec<String> = issues.iter().map(|s| s.to_string()).collect();
        issues.sort_unstable();
        QualityRecord {
            thread_id: Some(thread_id.into()),
            scope_id: "response_evaluation".into(),
            quality_accuracy: Some(accuracy),
            quality_relevance: Some(relevance),
            quality_completeness: Some(completeness),
            quality_average: Some((accuracy + relevance + completeness) / 3.0),
            quality_issues_count: Some(issues.len() as i64),
            issues,
            ..QualityRecord::default()
        }
    }

    /// The tags this record sets, in name order (the tags the exporter reads and the identity tags).
    fn tags<'a>(&'a self) -> [(&'static str, Option<&'a str>); 6] {
        let on = self.identity_tags;
        let identity = |v: Option<&'a str>| v.filter(|v| on && !v.is_empty());
        [
            (TagKey::ApplicationType.label(), self.application_type.as_deref()),
            (TagKey::Category.label(), self.category.as_deref()),
            (TagKey::Model.label(), self.model.as_deref()),
            (TagKey::QueryId.label(), self.query_id.as_deref()),
            (TENANT_ID_TAG, identity(Some(&self.tenant_id))),
            (THREAD_ID_TAG, identity(self.thread_id.as_deref())),
        ]
    }

    /// The `Metrics` message of this record.
    pub fn message_metrics(&self) -> Metrics {
        let mut m = Metrics {
            header: self.thread_id.as_ref().map(|t| Header {
                thread_id: t.clone(),
                message_id: self.message_id.clone(),
                timestamp_us: self.timestamp_us,
                tenant_id: self.tenant_id.clone(),
                sequence: self.sequence,
                r#type: MessageType::Metrics as i32,
                schema_version: 1,
                ..Header::default()
            }),
            scope: self.scope.clone(),
            scope_id: self.scope_id.clone(),
            ..Metrics::default()
        };
        for key in MetricKey::ALL {
            if let Some(v) = self.metric(key) {
                let value = match v {
                    Scalar::Int(x) => Value::IntValue(x),
                    Scalar::Float(x) => Value::FloatValue(x),
                    Scalar::Bool(x) => Value::BoolValue(x),
                };
                let (unit, kind) = if self.units { unit_and_type(key) } else { ("", MetricType::Unspecified) };
                m.metrics.insert(
                    key.label().into(),
                    MetricValue { value: Some(value), unit: unit.into(), r#type: kind as i32 },
                );
            }
        }
        for (key, v) in self.tags() {
            if let Some(v) = v {
                m.tags.insert(key.into(), v.into());
            }
        }
        for issue in &self.issues {
            m.tags.insert(issue.clone(), ISSUE_TRUE.into());
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

/// A `metrics` map entry: key and a MetricValue holding one oneof value, then its unit and metric type when
/// `units` (as prost writes them: in field order, the unit left out when empty).
fn put_metric(out: &mut Vec<u8>, key: MetricKey, value: Scalar, units: bool) {
    let key = key.label();
    let (unit, kind) =
        if units { unit_and_type(MetricKey::from_label(key).expect("a key")) } else { ("", MetricType::Unspecified) };
    let unit_len = if unit.is_empty() { 0 } else { 1 + varint_len(unit.len() as u64) + unit.len() };
    let kind_len = if kind == MetricType::Unspecified { 0 } else { 1 + varint_len(kind as u64) };
    let value_len = unit_len
        + kind_len
        + match value {
            Scalar::Int(i) => 1 + varint_len(i as u64),
            Scalar::Float(_) => 9,
            Scalar::Bool(_) => 2,
        };
    let entry_len = 1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(value_len as u64) + value_len;
    put_tag(out, 4, 2);
    put_varint(out, entry_len as u64);
    put_bytes(out, 1, key.as_bytes());
    put_tag(out, 2, 2);
    put_varint(out, value_len as u64);
    match value {
        Scalar::Int(i) => {
            put_tag(out, 1, 0);
            put_varint(out, i as u64);
        }
        Scalar::Float(f) => {
            put_tag(out, 2, 1);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Scalar::Bool(b) => {
            put_tag(out, 4, 0);
            out.push(u8::from(b));
        }
    }
    if !unit.is_empty() {
        put_bytes(out, 6, unit.as_bytes());
    }
    if kind != MetricType::Unspecified {
        put_tag(out, 7, 0);
        put_varint(out, kind as u64);
    }
}

fn put_tag_entry(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let entry_len = 1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(value.len() as u64) + value.len();
    put_tag(out, 5, 2);
    put_varint(out, entry_len as u64);
    put_bytes(out, 1, key.as_bytes());
    put_bytes(out, 2, value);
}

/// Writes an unframed `DashStreamMessage` carrying `rec`, directly in the protobuf wire format: the bytes
/// prost writes for [`QualityRecord::message`] (fields in number order, unset fields left out).
fn write_message(rec: &QualityRecord, m: &mut Vec<u8>, out: &mut Vec<u8>) {
    m.clear();
    if let Some(thread) = &rec.thread_id {
        let stamp = rec.timestamp_us as u64; // int64: the two's-complement bit pattern
        let stamp_len = if stamp == 0 { 0 } else { 1 + varint_len(stamp) };
        let id = &rec.message_id;
        let id_len = if id.is_empty() { 0 } else { 1 + varint_len(id.len() as u64) + id.len() };
        let tenant = rec.tenant_id.as_bytes();
        let tenant_len = if tenant.is_empty() { 0 } else { 1 + varint_len(tenant.len() as u64) + tenant.len() };
        let seq_len = if rec.sequence == 0 { 0 } else { 1 + varint_len(rec.sequence) };
        let thread_len = if thread.is_empty() { 0 } else { 1 + varint_len(thread.len() as u64) + thread.len() };
        let header_len = id_len + stamp_len + tenant_len + thread_len + seq_len + 2 + 2;
        put_tag(m, 1, 2);
        put_varint(m, header_len as u64);
        if !id.is_empty() {
            put_bytes(m, 1, id);
        }
        if stamp != 0 {
            put_tag(m, 2, 0);
            put_varint(m, stamp);
        }
        if !tenant.is_empty() {
            put_bytes(m, 3, tenant);
        }
        if !thread.is_empty() {
            put_bytes(m, 4, thread.as_bytes());
        }
        if rec.sequence != 0 {
            put_tag(m, 5, 0);
            put_varint(m, rec.sequence);
        }
        put_tag(m, 6, 0);
        put_varint(m, MessageType::Metrics as u64);
        put_tag(m, 9, 0);
        put_varint(m, 1);
    }
    for (field, s) in [(2, &rec.scope), (3, &rec.scope_id)] {
        if !s.is_empty() {
            put_bytes(m, field, s.as_bytes());
        }
    }
    for key in METRICS_BY_NAME {
        if let Some(v) = rec.metric(key) {
            put_metric(m, key, v, rec.units);
        }
    }
    // The record's tags and the issue tags, merged in name order (both lists are sorted).
    let mut issues = rec.issues.iter().peekable();
    for (key, v) in rec.tags() {
        while let Some(issue) = issues.next_if(|i| i.as_str() < key) {
            put_tag_entry(m, issue, ISSUE_TRUE.as_bytes());
        }
        if let Some(v) = v {
            put_tag_entry(m, key, v.as_bytes());
        }
    }
    for issue in issues {
        put_tag_entry(m, issue, ISSUE_TRUE.as_bytes());
    }
    put_bytes(out, 6, m);
}

/// The value of an issue tag.
const ISSUE_TRUE: &str = crate::decode::keys::ISSUE_TAG_TRUE;
/// The identity tags `DashStreamCallback::emit_quality_metrics` sends beside the header's fields.
pub const THREAD_ID_TAG: &str = "thread_id";
pub const TENANT_ID_TAG: &str = "tenant_id";

/// QualityMonitor's alert for an evaluation whose average fell below its threshold, as
/// `QualityMonitor::emit_quality_alert` writes it: an `EVENT_TYPE_GRAPH_ERROR` event from node
/// `quality_monitor` whose attributes are `alert_type` = `LOW_QUALITY`, `quality_score`, `threshold` and
/// `issues` (the names joined with ", ").
pub fn low_quality_alert(thread_id: &str, score: f64, threshold: f64, issues: &[&str]) -> DashStreamMessage {
    let attr = |v: attribute_value::Value| AttributeValue { value: Some(v) };
    let attributes = [
        (ALERT_TYPE_ATTRIBUTE, attr(attribute_value::Value::StringValue(LOW_QUALITY_ALERT.into()))),
        ("quality_score", attr(attribute_value::Value::FloatValue(score))),
        ("threshold", attr(attribute_value::Value::FloatValue(threshold))),
        ("issues", attr(attribute_value::Value::StringValue(issues.join(", ")))),
    ];
    DashStreamMessage {
        message: Some(Message::Event(Event {
            header: Some(Header {
                thread_id: thread_id.into(),
                r#type: MessageType::Event as i32,
                schema_version: 1,
                ..Header::default()
            }),
            event_type: EventType::GraphError as i32,
            node_id: "quality_monitor".into(),
            attributes: attributes.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Event::default()
        })),
    }
}

/// Writes records framed into a caller's buffer, reusing its own buffers (the fast path of `produce`).
#[derive(Default)]
pub struct RecordWriter {
    body: Vec<u8>,
    metrics: Vec<u8>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl RecordWriter {
    /// `rec` framed as `framing` into `out` (cleared first): what [`QualityRecord::encode`] gives.
    pub fn write(&mut self, rec: &QualityRecord, framing: Framing, out: &mut Vec<u8>) {
        self.body.clear();
        write_message(rec, &mut self.metrics, &mut self.body);
        out.clear();
        match framing {
            Framing::Framed => {
                out.push(FRAME_PLAIN);
                out.extend_from_slice(&self.body);
            }
            Framing::Legacy => out.extend_from_slice(&self.body),
            Framing::FramedZstd | Framing::LegacyZstd => {
                if framing == Framing::FramedZstd {
                    out.push(FRAME_ZSTD);
                }
                let c = self.zstd.get_or_insert_with(|| zstd::bulk::Compressor::new(3).expect("zstd context"));
                out.extend_from_slice(&c.compress(&self.body).expect("zstd compress"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_entries_are_written_in_name_order() {
        let mut names = MetricKey::ALL.map(MetricKey::label);
        names.sort_unstable();
        assert_eq!(METRICS_BY_NAME.map(MetricKey::label), names);
        let rec = QualityRecord::sample(4);
        let tags: Vec<&str> = rec.tags().iter().map(|(k, _)| *k).collect();
        assert!(tags.is_sorted(), "{tags:?}");
    }

    #[test]
    fn the_writer_writes_the_bytes_prost_writes() {
        let mut w = RecordWriter::default();
        let mut out = Vec::new();
        let full = QualityRecord::sample(5);
        w.write(&full, Framing::Legacy, &mut out);
        assert_eq!(out, full.message().encode_to_vec(), "units and types");
        let lean = QualityRecord { units: false, ..full.clone() };
        w.write(&lean, Framing::Legacy, &mut out);
        assert_eq!(out, lean.message().encode_to_vec(), "no units or types");
        // Eight values, each with a unit (2 bytes + "ratio" ×4, "bool", "ms", "count" ×2) and a type (2 bytes).
        assert_eq!(full.message().encoded_len() - lean.message().encoded_len(), 8 * 4 + 5 * 4 + 4 + 2 + 5 * 2);
        let sparse = QualityRecord { passed: Some(false), latency_ms: Some(-3), ..QualityRecord::default() };
        w.write(&sparse, Framing::Framed, &mut out);
        assert_eq!((out[0], &out[1..]), (FRAME_PLAIN, &sparse.message().encode_to_vec()[..]), "absent fields left out");
        let monitor = QualityRecord::monitor("t-1", 0.5, 0.9, 0.6, &["low_completeness", "low_accuracy", "zz"]);
        w.write(&monitor, Framing::Legacy, &mut out);
        assert_eq!(out, monitor.message().encode_to_vec(), "issue tags merged with the read tags in name order");
        let mut both = QualityRecord { issues: vec!["a".into(), "low_accuracy".into()], ..QualityRecord::sample(2) };
        both.quality_average = Some(0.25);
        w.write(&both, Framing::Legacy, &mut out);
        assert_eq!(out, both.message().encode_to_vec());
        for stamp in [1_796_000_000_123_456, -5] {
            let stamped = QualityRecord { timestamp_us: stamp, ..QualityRecord::sample(6) };
            w.write(&stamped, Framing::Legacy, &mut out);
            assert_eq!(out, stamped.message().encode_to_vec(), "a header timestamp of {stamp}");
        }
        // DashFlow's whole shape: tenant, sequence, the identity tags beside the others and the issue tags.
        let dashflow = QualityRecord {
            timestamp_us: 1_796_000_000_123_456,
            tenant_id: "acme".into(),
            sequence: 300,
            identity_tags: true,
            issues: vec!["low_accuracy".into(), "tool_results_ignored".into()],
            ..QualityRecord::sample(7)
        };
        w.write(&dashflow, Framing::Legacy, &mut out);
        assert_eq!(out, dashflow.message().encode_to_vec());
        let m = dashflow.message_metrics();
        let h = m.header.as_ref().unwrap();
        assert_eq!((h.tenant_id.as_str(), h.sequence, h.message_id.len()), ("acme", 300, 16));
        assert_eq!((m.tags["tenant_id"].as_str(), m.tags["thread_id"].as_str()), ("acme", "sess-0"));
        assert_eq!(m.tags.len(), 8);
        assert!(m.metrics.values().all(|v| !v.unit.is_empty() && v.r#type != 0));
        // Identity tags with an empty tenant: only the thread's.
        let no_tenant = QualityRecord { identity_tags: true, ..QualityRecord::sample(8) };
        w.write(&no_tenant, Framing::Legacy, &mut out);
        assert_eq!(out, no_tenant.message().encode_to_vec());
        assert_eq!(no_tenant.message_metrics().tags.get("tenant_id"), None);
    }
}
