//! Record bytes → [`Decoded`]: framing (reference §1.3), protobuf, and the quality-event mapping (§1.4).
//!
//! Pure: no metrics, no I/O. The protobuf is read in place by [`crate::decode::wire`] (no allocation; the result
//! borrows from the record), accepting exactly what the generated prost types accept (a test compares both on
//! generated and mutated records). What the decoder notices that is not fatal (a missing header, a metric
//! value of the wrong type, a clamped or non-finite number) is reported in [`Anomalies`] for counting.

pub mod event;
pub mod labels;
pub mod wire;

use std::io::Read;

use prost::Message as _;

use crate::decode::wire::{Reader, WireError, FIXED64, LEN, VARINT};
use crate::proto::{dash_stream_message::Message, metric_value::Value, DashStreamMessage, Metrics};

/// Frame byte of an uncompressed framed record.
pub const FRAME_PLAIN: u8 = 0x00;
/// Frame byte of a zstd-compressed framed record.
pub const FRAME_ZSTD: u8 = 0x01;
/// Magic number of a zstd frame (a legacy unframed compressed record starts with it).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Default largest payload, 10 MiB, as in the original.
pub const DEFAULT_MAX_PAYLOAD: usize = 10 * 1024 * 1024;

/// A quality event: the 13 fields of the original exporter's `QualityEvent`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QualityEvent {
    pub query_id: String,
    pub quality_score: f64,
    pub passed: bool,
    pub category: String,
    pub latency_ms: u64,
    pub retry_count: u32,
    pub model: String,
    pub session_id: String,
    pub turn_number: u32,
    pub accuracy: f64,
    pub relevance: f64,
    pub completeness: f64,
    pub application_type: String,
}

/// The metric keys the exporter reads, in a fixed order (bit positions in [`KeySet`]).
pub const METRIC_KEYS: [&str; 8] =
    ["quality_score", "passed", "latency_ms", "retry_count", "turn_number", "accuracy", "relevance", "completeness"];

/// A set of [`METRIC_KEYS`] as a bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeySet(pub u8);

impl KeySet {
    fn insert(&mut self, key: usize) {
        self.0 |= 1 << key;
    }
    pub fn contains(self, key: usize) -> bool {
        self.0 & (1 << key) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The key names in the set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        METRIC_KEYS.iter().enumerate().filter(move |(i, _)| self.contains(*i)).map(|(_, k)| *k)
    }
}

const K_SCORE: usize = 0;
const K_PASSED: usize = 1;
const K_LATENCY: usize = 2;
const K_RETRY: usize = 3;
const K_TURN: usize = 4;
const K_ACCURACY: usize = 5;
const K_RELEVANCE: usize = 6;
const K_COMPLETENESS: usize = 7;

/// What decoding a quality event noticed besides its values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Keys present with the type the exporter reads (absent keys are not recorded: the original recorded 0
    /// for them, which is indistinguishable from a real 0).
    pub present: KeySet,
    /// The `Metrics` message had no header (the event is still processed, with session id "").
    pub missing_header: bool,
    /// Keys present with a value of another type than the one the exporter reads (ignored, default kept).
    pub type_mismatch: KeySet,
    /// Keys whose value was out of range: a negative or > u32::MAX integer (clamped), or a NaN/±inf float
    /// (kept in the event; the metrics layer refuses it).
    pub out_of_range: KeySet,
}

/// The kind of a DashStream message that is not a `Metrics` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtherKind {
    Event = 0,
    StateDiff,
    TokenChunk,
    ToolExecution,
    Checkpoint,
    Error,
    EventBatch,
    ExecutionTrace,
    /// A `DashStreamMessage` with no branch set.
    Empty,
}

/// Label values of [`OtherKind`], indexed by its discriminant.
pub const OTHER_KIND_LABELS: [&str; 9] = [
    "event",
    "state_diff",
    "token_chunk",
    "tool_execution",
    "checkpoint",
    "error",
    "event_batch",
    "execution_trace",
    "empty",
];

impl OtherKind {
    pub fn label(self) -> &'static str {
        OTHER_KIND_LABELS[self as usize]
    }
}

/// A quality event as read from a record: the 13 fields, borrowed from the record, and the anomalies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityView<'a> {
    pub query_id: &'a str,
    pub quality_score: f64,
    pub passed: bool,
    pub category: &'a str,
    pub latency_ms: u64,
    pub retry_count: u32,
    pub model: &'a str,
    pub session_id: &'a str,
    pub turn_number: u32,
    pub accuracy: f64,
    pub relevance: f64,
    pub completeness: f64,
    pub application_type: &'a str,
    pub anomalies: Anomalies,
}

impl QualityView<'_> {
    /// An owned copy of the 13 fields.
    pub fn to_event(&self) -> QualityEvent {
        QualityEvent {
            query_id: self.query_id.into(),
            quality_score: self.quality_score,
            passed: self.passed,
            category: self.category.into(),
            latency_ms: self.latency_ms,
            retry_count: self.retry_count,
            model: self.model.into(),
            session_id: self.session_id.into(),
            turn_number: self.turn_number,
            accuracy: self.accuracy,
            relevance: self.relevance,
            completeness: self.completeness,
            application_type: self.application_type.into(),
        }
    }
}

/// A successfully decoded record.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded<'a> {
    /// A `Metrics` message with scope `quality`.
    Quality(QualityView<'a>),
    /// A `Metrics` message with another scope.
    WrongScope(&'a str),
    /// Another DashStream message type.
    Other(OtherKind),
}

/// Why a record could not be decoded. Each variant has a bounded `reason` label.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty message payload")]
    Empty,
    #[error("payload size {size} bytes exceeds maximum {max} bytes")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("zstd data decompresses to more than the maximum {max} bytes")]
    DecompressedTooLarge { max: usize },
    #[error("zstd decompression failed: {0}")]
    Decompress(String),
    #[error("invalid protobuf DashStreamMessage: {0}")]
    InvalidProtobuf(String),
}

/// Every failure reason label, in a fixed order (`metrics::LEGACY_ERROR_TYPES` holds the original's three).
pub const ERROR_REASONS: [&str; 5] =
    ["empty", "payload_too_large", "decompressed_too_large", "decompress", "invalid_protobuf"];

impl DecodeError {
    /// The bounded label value of this error.
    pub fn reason(&self) -> &'static str {
        ERROR_REASONS[self.reason_index()]
    }

    pub fn reason_index(&self) -> usize {
        match self {
            DecodeError::Empty => 0,
            DecodeError::PayloadTooLarge { .. } => 1,
            DecodeError::DecompressedTooLarge { .. } => 2,
            DecodeError::Decompress(_) => 3,
            DecodeError::InvalidProtobuf(_) => 4,
        }
    }
}

/// Decodes records; keeps a scratch buffer for decompression between calls.
pub struct Decoder {
    max: usize,
    scratch: Vec<u8>,
}

impl Decoder {
    pub fn new(max_payload: usize) -> Self {
        Decoder { max: max_payload, scratch: Vec::new() }
    }

    /// Decodes one record value (reference §1.3 and §1.4), reading the protobuf in place.
    pub fn decode<'a>(&'a mut self, payload: &'a [u8]) -> Result<Decoded<'a>, DecodeError> {
        let body = self.unframe(payload)?;
        scan(body).map_err(|e| DecodeError::InvalidProtobuf(format!("failed to decode Protobuf message: {e}")))
    }

    /// Unframes, decompresses and decodes a record into the generated prost types (the reference
    /// implementation; the exporter itself uses [`Decoder::decode`]).
    pub fn message(&mut self, payload: &[u8]) -> Result<DashStreamMessage, DecodeError> {
        let body = self.unframe(payload)?;
        DashStreamMessage::decode(body).map_err(|e| DecodeError::InvalidProtobuf(e.to_string()))
    }

    /// Checks the size, strips the frame byte and decompresses: the protobuf bytes of a record.
    pub fn unframe<'a>(&'a mut self, payload: &'a [u8]) -> Result<&'a [u8], DecodeError> {
        let max = self.max;
        let Some(&first) = payload.first() else {
            return Err(DecodeError::Empty);
        };
        let framed = first == FRAME_PLAIN || first == FRAME_ZSTD;
        let limit = if framed { max.saturating_add(1) } else { max };
        if payload.len() > limit {
            return Err(DecodeError::PayloadTooLarge { size: payload.len(), max });
        }
        let body = match first {
            FRAME_PLAIN => &payload[1..],
            FRAME_ZSTD => {
                self.decompress(&payload[1..])?;
                &self.scratch[..]
            }
            _ if payload.starts_with(&ZSTD_MAGIC) => {
                self.decompress(payload)?;
                &self.scratch[..]
            }
            _ => payload,
        };
        Ok(body)
    }

    /// Decompresses one zstd stream into `scratch`, refusing output larger than the maximum payload.
    fn decompress(&mut self, src: &[u8]) -> Result<(), DecodeError> {
        let max = self.max;
        if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(src) {
            if declared > max as u64 {
                return Err(DecodeError::DecompressedTooLarge { max });
            }
        }
        self.scratch.clear();
        let reader =
            zstd::stream::read::Decoder::with_buffer(src).map_err(|e| DecodeError::Decompress(e.to_string()))?;
        reader
            .take(max as u64 + 1)
            .read_to_end(&mut self.scratch)
            .map_err(|e| DecodeError::Decompress(e.to_string()))?;
        if self.scratch.len() > max {
            self.scratch = Vec::new(); // do not keep a bomb's worth of memory around
            return Err(DecodeError::DecompressedTooLarge { max });
        }
        Ok(())
    }
}

/// Classifies a message decoded into the generated types (the reference path).
pub fn classify(msg: &DashStreamMessage) -> Decoded<'_> {
    match &msg.message {
        Some(Message::Metrics(m)) => MetricsFields::from_prost(m).finish(),
        Some(Message::Event(_)) => Decoded::Other(OtherKind::Event),
        Some(Message::StateDiff(_)) => Decoded::Other(OtherKind::StateDiff),
        Some(Message::TokenChunk(_)) => Decoded::Other(OtherKind::TokenChunk),
        Some(Message::ToolExecution(_)) => Decoded::Other(OtherKind::ToolExecution),
        Some(Message::Checkpoint(_)) => Decoded::Other(OtherKind::Checkpoint),
        Some(Message::Error(_)) => Decoded::Other(OtherKind::Error),
        Some(Message::EventBatch(_)) => Decoded::Other(OtherKind::EventBatch),
        Some(Message::ExecutionTrace(_)) => Decoded::Other(OtherKind::ExecutionTrace),
        None => Decoded::Other(OtherKind::Empty),
    }
}

/// Tag aliases, highest precedence first (the original picked whichever its hash map yielded last).
pub const CATEGORY_TAGS: [&str; 3] = ["category", "query_category", "complexity"];
pub const APPLICATION_TYPE_TAGS: [&str; 2] = ["application_type", "app_type"];

/// The tags the exporter reads, in slot order.
const TAG_KEYS: [&str; 7] =
    ["query_id", "model", "category", "query_category", "complexity", "application_type", "app_type"];

/// The index of a metric key in [`METRIC_KEYS`] (a `match`: the compiler dispatches on the length first).
#[inline]
fn metric_key(key: &str) -> Option<usize> {
    Some(match key {
        "quality_score" => K_SCORE,
        "passed" => K_PASSED,
        "latency_ms" => K_LATENCY,
        "retry_count" => K_RETRY,
        "turn_number" => K_TURN,
        "accuracy" => K_ACCURACY,
        "relevance" => K_RELEVANCE,
        "completeness" => K_COMPLETENESS,
        _ => return None,
    })
}

/// The index of a tag key in [`TAG_KEYS`].
#[inline]
fn tag_key(key: &str) -> Option<usize> {
    Some(match key {
        "query_id" => 0,
        "model" => 1,
        "category" => 2,
        "query_category" => 3,
        "complexity" => 4,
        "application_type" => 5,
        "app_type" => 6,
        _ => return None,
    })
}

/// A metric value as far as the exporter cares: its oneof variant.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Val {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A string or bytes value, or none at all: never what the exporter reads.
    Other,
}

/// What a `Metrics` message holds for the exporter; later occurrences overwrite earlier ones, as protobuf
/// merging and map insertion do.
#[derive(Default)]
struct MetricsFields<'a> {
    header: bool,
    thread_id: &'a str,
    scope: &'a str,
    metrics: [Option<Val>; METRIC_KEYS.len()],
    tags: [Option<&'a str>; TAG_KEYS.len()],
}

impl<'a> MetricsFields<'a> {
    fn from_prost(m: &'a Metrics) -> Self {
        let mut f = MetricsFields {
            header: m.header.is_some(),
            thread_id: m.header.as_ref().map_or("", |h| h.thread_id.as_str()),
            scope: &m.scope,
            ..Default::default()
        };
        for (k, v) in &m.metrics {
            if let Some(i) = METRIC_KEYS.iter().position(|n| n == k) {
                f.metrics[i] = Some(match v.value {
                    Some(Value::IntValue(x)) => Val::Int(x),
                    Some(Value::FloatValue(x)) => Val::Float(x),
                    Some(Value::BoolValue(x)) => Val::Bool(x),
                    _ => Val::Other,
                });
            }
        }
        for (k, v) in &m.tags {
            if let Some(i) = TAG_KEYS.iter().position(|n| n == k) {
                f.tags[i] = Some(v);
            }
        }
        f
    }

    /// Reads one occurrence of a `Metrics` message (merging into what earlier occurrences set).
    fn merge(&mut self, buf: &'a [u8]) -> Result<(), WireError> {
        let mut r = Reader::new(buf);
        while !r.is_empty() {
            let (field, wire) = r.key()?;
            match field {
                1 => {
                    Reader::expect(wire, LEN)?;
                    self.header = true;
                    self.merge_header(r.bytes()?)?;
                }
                2 => {
                    Reader::expect(wire, LEN)?;
                    self.scope = r.str()?;
                }
                3 => {
                    Reader::expect(wire, LEN)?;
                    r.str()?;
                }
                4 => {
                    Reader::expect(wire, LEN)?;
                    let (key, val) = metric_entry(r.bytes()?)?;
                    if let Some(i) = metric_key(key) {
                        self.metrics[i] = Some(val);
                    }
                }
                5 => {
                    Reader::expect(wire, LEN)?;
                    let (key, val) = tag_entry(r.bytes()?)?;
                    if let Some(i) = tag_key(key) {
                        self.tags[i] = Some(val);
                    }
                }
                _ => r.skip(field, wire, 1)?,
            }
        }
        Ok(())
    }

    fn merge_header(&mut self, buf: &'a [u8]) -> Result<(), WireError> {
        let mut r = Reader::new(buf);
        while !r.is_empty() {
            let (field, wire) = r.key()?;
            match field {
                1 | 7 => {
                    Reader::expect(wire, LEN)?;
                    r.bytes()?;
                }
                3 => {
                    Reader::expect(wire, LEN)?;
                    r.str()?;
                }
                4 => {
                    Reader::expect(wire, LEN)?;
                    self.thread_id = r.str()?;
                }
                2 | 5 | 6 | 8 | 9 => {
                    Reader::expect(wire, VARINT)?;
                    r.varint()?;
                }
                _ => r.skip(field, wire, 2)?,
            }
        }
        Ok(())
    }

    /// The classification and, for quality scope, the event (reference §1.4 with the fixes: fixed alias
    /// precedence, saturating instead of wrapping integer casts, anomalies reported).
    fn finish(self) -> Decoded<'a> {
        if self.scope != "quality" {
            return Decoded::WrongScope(self.scope);
        }
        let tag = |i: usize| self.tags[i];
        let mut v = QualityView {
            query_id: tag(0).unwrap_or(""),
            quality_score: 0.0,
            passed: false,
            category: tag(2).or(tag(3)).or(tag(4)).unwrap_or("Unknown"),
            latency_ms: 0,
            retry_count: 0,
            model: tag(1).unwrap_or(""),
            session_id: self.thread_id,
            turn_number: 0,
            accuracy: 0.0,
            relevance: 0.0,
            completeness: 0.0,
            application_type: tag(5).or(tag(6)).unwrap_or("unknown"),
            anomalies: Anomalies { missing_header: !self.header, ..Anomalies::default() },
        };
        for (k, val) in self.metrics.iter().enumerate() {
            if let Some(val) = val {
                apply_value(&mut v, k, *val);
            }
        }
        Decoded::Quality(v)
    }
}

/// Tags as written on the wire (field number << 3 | wire type) for the fields read most: matching the whole
/// key byte at once is what the loops below do first; anything else goes through [`Reader::split_key`] and
/// the same checks and errors as before.
const fn tag(field: u64, wire: u8) -> u64 {
    field << 3 | wire as u64
}

/// One `metrics` map entry: (key, value); a missing key is "", a missing value has no variant.
#[inline]
fn metric_entry(buf: &[u8]) -> Result<(&str, Val), WireError> {
    const KEY: u64 = tag(1, LEN);
    const VALUE: u64 = tag(2, LEN);
    let mut r = Reader::new(buf);
    let (mut key, mut val) = ("", Val::Other);
    while !r.is_empty() {
        match r.varint()? {
            KEY => key = r.str()?,
            VALUE => metric_value(r.bytes()?, &mut val)?,
            k => match Reader::split_key(k)? {
                (1 | 2, _) => return Err(WireError("invalid wire type")),
                (field, wire) => r.skip(field, wire, 2)?,
            },
        }
    }
    Ok((key, val))
}

/// Merges one occurrence of a `MetricValue` (its last oneof variant wins).
#[inline]
fn metric_value(buf: &[u8], val: &mut Val) -> Result<(), WireError> {
    const INT: u64 = tag(1, VARINT);
    const FLOAT: u64 = tag(2, FIXED64);
    const STRING: u64 = tag(3, LEN);
    const BOOL: u64 = tag(4, VARINT);
    const BYTES: u64 = tag(5, LEN);
    const UNIT: u64 = tag(6, LEN);
    const TYPE: u64 = tag(7, VARINT);
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.varint()? {
            INT => *val = Val::Int(r.varint()? as i64),
            FLOAT => *val = Val::Float(f64::from_bits(r.fixed64()?)),
            STRING => {
                r.str()?;
                *val = Val::Other;
            }
            BOOL => *val = Val::Bool(r.varint()? != 0),
            BYTES => {
                r.bytes()?;
                *val = Val::Other;
            }
            UNIT => {
                r.str()?;
            }
            TYPE => {
                r.varint()?;
            }
            k => match Reader::split_key(k)? {
                (1..=7, _) => return Err(WireError("invalid wire type")),
                (field, wire) => r.skip(field, wire, 3)?,
            },
        }
    }
    Ok(())
}

/// One `tags` map entry: (key, value), both "" when missing.
#[inline]
fn tag_entry(buf: &[u8]) -> Result<(&str, &str), WireError> {
    const KEY: u64 = tag(1, LEN);
    const VALUE: u64 = tag(2, LEN);
    let mut r = Reader::new(buf);
    let (mut key, mut val) = ("", "");
    while !r.is_empty() {
        match r.varint()? {
            KEY => key = r.str()?,
            VALUE => val = r.str()?,
            k => match Reader::split_key(k)? {
                (1 | 2, _) => return Err(WireError("invalid wire type")),
                (field, wire) => r.skip(field, wire, 2)?,
            },
        }
    }
    Ok((key, val))
}

/// Reads a `DashStreamMessage` in place.
fn scan(buf: &[u8]) -> Result<Decoded<'_>, WireError> {
    let mut r = Reader::new(buf);
    let mut branch = 0u32;
    let mut metrics = MetricsFields::default();
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match field {
            1..=9 => {
                Reader::expect(wire, LEN)?;
                let body = r.bytes()?;
                if field == 6 {
                    if branch != 6 {
                        metrics = MetricsFields::default(); // another branch in between replaced it
                    }
                    metrics.merge(body)?;
                } else {
                    Reader::new(body).skip_all(1)?;
                }
                branch = field;
            }
            _ => r.skip(field, wire, 0)?,
        }
    }
    Ok(match branch {
        6 => metrics.finish(),
        0 => Decoded::Other(OtherKind::Empty),
        b => Decoded::Other(
            [
                OtherKind::Event,
                OtherKind::StateDiff,
                OtherKind::TokenChunk,
                OtherKind::ToolExecution,
                OtherKind::Checkpoint,
                OtherKind::Event, // 6 is Metrics, handled above
                OtherKind::Error,
                OtherKind::EventBatch,
                OtherKind::ExecutionTrace,
            ][b as usize - 1],
        ),
    })
}

fn apply_value(ev: &mut QualityView<'_>, k: usize, value: Val) {
    let an = &mut ev.anomalies;
    let float = |an: &mut Anomalies, slot: &mut f64| match value {
        Val::Float(f) => {
            an.present.insert(k);
            if !f.is_finite() {
                an.out_of_range.insert(k);
            }
            *slot = f;
        }
        _ => an.type_mismatch.insert(k),
    };
    let int = |an: &mut Anomalies| match value {
        Val::Int(i) => {
            an.present.insert(k);
            if i < 0 {
                an.out_of_range.insert(k);
            }
            Some(i.max(0) as u64)
        }
        _ => {
            an.type_mismatch.insert(k);
            None
        }
    };
    let u32_of = |an: &mut Anomalies, v: u64| {
        if v > u64::from(u32::MAX) {
            an.out_of_range.insert(k);
        }
        v.min(u64::from(u32::MAX)) as u32
    };
    match k {
        K_SCORE => float(an, &mut ev.quality_score),
        K_ACCURACY => float(an, &mut ev.accuracy),
        K_RELEVANCE => float(an, &mut ev.relevance),
        K_COMPLETENESS => float(an, &mut ev.completeness),
        K_PASSED => match value {
            Val::Bool(b) => {
                an.present.insert(k);
                ev.passed = b;
            }
            _ => an.type_mismatch.insert(k),
        },
        K_LATENCY => {
            if let Some(v) = int(an) {
                ev.latency_ms = v;
            }
        }
        K_RETRY => {
            if let Some(v) = int(an) {
                ev.retry_count = u32_of(an, v);
            }
        }
        K_TURN => {
            if let Some(v) = int(an) {
                ev.turn_number = u32_of(an, v);
            }
        }
        _ => unreachable!("index into METRIC_KEYS"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Header, MetricValue};
    use crate::sim::encode::{frame, Framing, QualityRecord, WORKED_EXAMPLE};

    fn hex(s: &str) -> Vec<u8> {
        crate::sim::encode::from_hex(s)
    }

    fn quality(d: Result<Decoded, DecodeError>) -> (QualityEvent, Anomalies) {
        match d {
            Ok(Decoded::Quality(v)) => (v.to_event(), v.anomalies),
            other => panic!("expected a quality event, got {other:?}"),
        }
    }

    /// The reference mapping over the generated types.
    fn quality_event(m: Metrics) -> (QualityEvent, Anomalies) {
        match MetricsFields::from_prost(&m).finish() {
            Decoded::Quality(v) => (v.to_event(), v.anomalies),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_lookups_match_the_key_tables() {
        for (i, k) in METRIC_KEYS.iter().enumerate() {
            assert_eq!(metric_key(k), Some(i), "{k}");
        }
        for (i, k) in TAG_KEYS.iter().enumerate() {
            assert_eq!(tag_key(k), Some(i), "{k}");
        }
        for k in ["", "quality", "Quality_score", "passed ", "app", "model\0"] {
            assert_eq!((metric_key(k), tag_key(k)), (None, None), "{k:?}");
        }
    }

    #[test]
    fn worked_example_decodes() {
        let bytes = hex(WORKED_EXAMPLE);
        assert_eq!(bytes.len(), 132);
        let (ev, an) = quality(Decoder::new(DEFAULT_MAX_PAYLOAD).decode(&bytes));
        assert_eq!(
            ev,
            QualityEvent {
                quality_score: 0.9,
                passed: true,
                latency_ms: 1500,
                model: "gpt-4o".into(),
                category: "Complex".into(),
                session_id: "sess-1".into(),
                application_type: "unknown".into(),
                ..QualityEvent::default()
            }
        );
        assert_eq!(an.present.names().collect::<Vec<_>>(), vec!["quality_score", "passed", "latency_ms"]);
        assert!(an.type_mismatch.is_empty() && an.out_of_range.is_empty() && !an.missing_header);
        // Dropping the frame byte gives the equally accepted legacy form.
        let (legacy, _) = quality(Decoder::new(DEFAULT_MAX_PAYLOAD).decode(&bytes[1..]));
        assert_eq!(legacy, ev);
    }

    #[test]
    fn our_encoder_agrees_with_the_worked_example() {
        let rec = QualityRecord {
            thread_id: Some("sess-1".into()),
            scope_id: "q-42".into(),
            quality_score: Some(0.9),
            passed: Some(true),
            latency_ms: Some(1500),
            model: Some("gpt-4o".into()),
            category: Some("Complex".into()),
            ..QualityRecord::default()
        };
        // Same event; our encoder also writes units and metric types, and map entries in key order.
        let ours = frame(&rec.message(), Framing::Framed);
        let mut d = Decoder::new(DEFAULT_MAX_PAYLOAD);
        assert_eq!(quality(d.decode(&ours)), quality(d.decode(&hex(WORKED_EXAMPLE))));
    }

    #[test]
    fn every_framing_round_trips() {
        let rec = QualityRecord::sample(7);
        let want = quality(Decoder::new(DEFAULT_MAX_PAYLOAD).decode(&frame(&rec.message(), Framing::Framed))).0;
        for f in [Framing::FramedZstd, Framing::Legacy, Framing::LegacyZstd] {
            let bytes = frame(&rec.message(), f);
            assert_eq!(quality(Decoder::new(DEFAULT_MAX_PAYLOAD).decode(&bytes)).0, want, "{f:?}");
        }
    }

    #[test]
    fn empty_and_oversize_are_distinct_errors() {
        let mut d = Decoder::new(1024);
        assert_eq!(d.decode(&[]), Err(DecodeError::Empty));
        let mut framed = vec![0u8; 1026];
        framed[0] = FRAME_PLAIN;
        assert_eq!(d.decode(&framed), Err(DecodeError::PayloadTooLarge { size: 1026, max: 1024 }));
        // max + 1 framed bytes is allowed through to the protobuf decoder (zeros are an invalid tag).
        assert_eq!(d.decode(&framed[..1025]).unwrap_err().reason(), "invalid_protobuf");
        let legacy = vec![0x0au8; 1025];
        assert_eq!(d.decode(&legacy), Err(DecodeError::PayloadTooLarge { size: 1025, max: 1024 }));
    }

    #[test]
    fn zstd_bomb_is_refused() {
        let huge = vec![0u8; 64 * 1024 * 1024];
        let compressed = zstd::bulk::compress(&huge, 19).unwrap();
        assert!(compressed.len() < 16 * 1024, "bomb is tiny: {}", compressed.len());
        let mut payload = vec![FRAME_ZSTD];
        payload.extend_from_slice(&compressed);
        let mut d = Decoder::new(DEFAULT_MAX_PAYLOAD);
        assert_eq!(d.decode(&payload), Err(DecodeError::DecompressedTooLarge { max: DEFAULT_MAX_PAYLOAD }));
        // Same bomb without a declared content size (streamed): stopped at the cap.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &huge).unwrap();
        let streamed = enc.finish().unwrap();
        assert_eq!(zstd::zstd_safe::get_frame_content_size(&streamed).ok().flatten(), None);
        assert_eq!(d.decode(&streamed), Err(DecodeError::DecompressedTooLarge { max: DEFAULT_MAX_PAYLOAD }));
        // Later good records still decode.
        let ok = frame(&QualityRecord::sample(1).message(), Framing::FramedZstd);
        assert!(matches!(d.decode(&ok), Ok(Decoded::Quality(..))));
    }

    #[test]
    fn corrupt_zstd_and_protobuf_are_distinct_errors() {
        let mut d = Decoder::new(DEFAULT_MAX_PAYLOAD);
        assert_eq!(d.decode(&[FRAME_ZSTD, 1, 2, 3, 4]).unwrap_err().reason(), "decompress");
        assert_eq!(d.decode(b"not a valid protobuf message").unwrap_err().reason(), "invalid_protobuf");
        let good = frame(&QualityRecord::sample(3).message(), Framing::Framed);
        assert_eq!(d.decode(&good[..good.len() / 2]).unwrap_err().reason(), "invalid_protobuf");
    }

    #[test]
    fn scope_is_exact_and_other_types_are_classified() {
        let mut rec = QualityRecord::sample(2);
        rec.scope = "Quality".into();
        let bytes = frame(&rec.message(), Framing::Framed);
        assert_eq!(Decoder::new(1 << 20).decode(&bytes), Ok(Decoded::WrongScope("Quality")));
        let empty = frame(&DashStreamMessage { message: None }, Framing::Framed);
        assert_eq!(Decoder::new(1 << 20).decode(&empty), Ok(Decoded::Other(OtherKind::Empty)));
        let chk = DashStreamMessage { message: Some(Message::Checkpoint(Default::default())) };
        assert_eq!(
            Decoder::new(1 << 20).decode(&frame(&chk, Framing::Framed)),
            Ok(Decoded::Other(OtherKind::Checkpoint))
        );
    }

    #[test]
    fn alias_precedence_is_fixed() {
        let mut m = QualityRecord::sample(1).message_metrics();
        m.tags.clear();
        for (k, v) in [
            ("complexity", "Edge"),
            ("query_category", "Simple"),
            ("category", "Medium"),
            ("app_type", "rag"),
            ("application_type", "librarian"),
        ] {
            m.tags.insert(k.into(), v.into());
        }
        let (ev, _) = quality_event(m.clone());
        assert_eq!((ev.category.as_str(), ev.application_type.as_str()), ("Medium", "librarian"));
        m.tags.remove("category");
        m.tags.remove("application_type");
        let (ev, _) = quality_event(m.clone());
        assert_eq!((ev.category.as_str(), ev.application_type.as_str()), ("Simple", "rag"));
        m.tags.remove("query_category");
        assert_eq!(quality_event(m).0.category, "Edge");
    }

    #[test]
    fn missing_fields_take_defaults_and_header_absence_is_reported() {
        let m = Metrics { scope: "quality".into(), ..Metrics::default() };
        let (ev, an) = quality_event(m);
        assert_eq!(
            ev,
            QualityEvent { category: "Unknown".into(), application_type: "unknown".into(), ..QualityEvent::default() }
        );
        assert!(an.missing_header);
        let m = Metrics { header: Some(Header::default()), scope: "quality".into(), ..Metrics::default() };
        assert!(!quality_event(m).1.missing_header);
    }

    #[test]
    fn wrong_types_are_ignored_and_reported() {
        let mut m = Metrics { scope: "quality".into(), ..Metrics::default() };
        let put = |m: &mut Metrics, k: &str, v: Value| {
            m.metrics.insert(k.into(), MetricValue { value: Some(v), ..MetricValue::default() });
        };
        put(&mut m, "quality_score", Value::IntValue(1));
        put(&mut m, "passed", Value::IntValue(1));
        put(&mut m, "latency_ms", Value::FloatValue(12.5));
        put(&mut m, "retry_count", Value::StringValue("2".into()));
        put(&mut m, "accuracy", Value::BoolValue(true));
        m.metrics.insert("relevance".into(), MetricValue::default()); // no value at all
        put(&mut m, "quality_average", Value::FloatValue(0.3)); // not read: not a mismatch
        let (ev, an) = quality_event(m);
        assert_eq!(ev.quality_score, 0.0);
        assert!(!ev.passed);
        assert_eq!(ev.latency_ms, 0);
        assert_eq!(
            an.type_mismatch.names().collect::<Vec<_>>(),
            vec!["quality_score", "passed", "latency_ms", "retry_count", "accuracy", "relevance"]
        );
        assert!(an.out_of_range.is_empty());
    }

    #[test]
    fn integers_clamp_and_saturate_instead_of_wrapping() {
        let mut m = Metrics { scope: "quality".into(), ..Metrics::default() };
        let put = |m: &mut Metrics, k: &str, v: Value| {
            m.metrics.insert(k.into(), MetricValue { value: Some(v), ..MetricValue::default() });
        };
        put(&mut m, "latency_ms", Value::IntValue(-5));
        put(&mut m, "retry_count", Value::IntValue(i64::from(u32::MAX) + 2));
        put(&mut m, "turn_number", Value::IntValue(7));
        put(&mut m, "quality_score", Value::FloatValue(f64::NAN));
        put(&mut m, "accuracy", Value::FloatValue(f64::INFINITY));
        let (ev, an) = quality_event(m);
        assert_eq!((ev.latency_ms, ev.retry_count, ev.turn_number), (0, u32::MAX, 7));
        assert!(ev.quality_score.is_nan());
        assert_eq!(
            an.out_of_range.names().collect::<Vec<_>>(),
            vec!["quality_score", "latency_ms", "retry_count", "accuracy"]
        );
    }

    /// Outcome of the reference path (prost) in a comparable form.
    fn by_prost(body: &[u8]) -> Result<String, ()> {
        let msg = DashStreamMessage::decode(body).map_err(drop)?;
        Ok(describe(&classify(&msg)))
    }

    fn describe(d: &Decoded<'_>) -> String {
        match d {
            Decoded::Quality(v) => format!("{:?} {:?}", v.to_event(), v.anomalies),
            other => format!("{other:?}"),
        }
    }

    /// The in-place reader accepts, rejects and reads exactly what the generated prost types do, on valid
    /// records of every shape and on a quarter of a million mutations of them.
    #[test]
    fn in_place_reader_agrees_with_prost() {
        use crate::proto::{dash_stream_message::Message as M, TokenChunk};
        use crate::sim::generator::{Generator, Rng, Traffic};
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        let mut g = Generator::new(Traffic { seed: 3, zstd_ratio: 0.0, legacy_ratio: 0.0, ..Traffic::default() });
        for n in 0..40 {
            seeds.push(QualityRecord::sample(n).message().encode_to_vec());
            seeds.push(g.next_record().message().encode_to_vec());
            let (mut v, mut k) = (Vec::new(), String::new());
            g.next_encoded(&mut v, &mut k);
            seeds.push(v[1..].to_vec()); // hand-written encoder, frame byte dropped
        }
        let mut r = QualityRecord::sample(1);
        r.thread_id = None;
        seeds.push(r.message().encode_to_vec());
        r.scope = "llm".into();
        seeds.push(r.message().encode_to_vec());
        seeds.push(DashStreamMessage { message: Some(M::TokenChunk(TokenChunk {})) }.encode_to_vec());
        seeds.push(Vec::new());
        let two =
            [QualityRecord::sample(2).message().encode_to_vec(), QualityRecord::sample(3).message().encode_to_vec()];
        seeds.push(two.concat()); // the metrics branch twice: merged
        let chunk = DashStreamMessage { message: Some(M::TokenChunk(TokenChunk {})) }.encode_to_vec();
        seeds.push([two[0].clone(), chunk.clone(), two[1].clone()].concat()); // replaced, then new
        seeds.push([two[0].clone(), chunk].concat()); // last branch wins
        let mut official = Vec::new();
        for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dashstream")).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "bin") {
                let bytes = std::fs::read(&path).unwrap();
                if let Ok(body) = Decoder::new(DEFAULT_MAX_PAYLOAD).unframe(&bytes) {
                    official.push(body.to_vec());
                }
            }
        }
        let check = |body: &[u8]| {
            let ours = scan(body).map(|d| describe(&d)).map_err(drop);
            assert_eq!(ours, by_prost(body), "disagreement on {body:02x?}");
            ours.is_ok()
        };
        for s in &seeds {
            assert!(check(s), "seed must decode: {s:02x?}");
        }
        let official_ok = official.iter().filter(|b| check(b)).count();
        assert_eq!(
            (official.len(), official_ok),
            (10, 9),
            "12 official records: empty and bad zstd do not unframe, one is truncated"
        );
        seeds.extend(official);
        let mut rng = Rng::new(99);
        let (mut ok, mut err) = (0, 0);
        for i in 0..250_000 {
            let mut b = seeds[i % seeds.len()].clone();
            for _ in 0..1 + rng.below(3) {
                if b.is_empty() {
                    b.push(rng.next_u64() as u8);
                    continue;
                }
                let at = rng.below(b.len());
                match rng.below(6) {
                    0 => b[at] ^= 1 << rng.below(8),
                    1 => b[at] = rng.next_u64() as u8,
                    2 => b.truncate(at),
                    3 => b.insert(at, rng.next_u64() as u8),
                    4 => {
                        b.remove(at);
                    }
                    _ => b[at] = [0x00, 0x7f, 0x80, 0xff, 0x0b, 0x0c][rng.below(6)],
                }
            }
            if check(&b) {
                ok += 1;
            } else {
                err += 1;
            }
        }
        assert!(ok > 20_000 && err > 20_000, "mutations exercise both outcomes: {ok} ok, {err} errors");
    }
}
