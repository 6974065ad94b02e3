//! Reads a `DashStreamMessage` in place and classifies it: a quality event, a `Metrics` message of another
//! scope, a low-quality alert (an `Event` from DashFlow's QualityMonitor), or another kind of message.
//!
//! The reader borrows from the record and allocates nothing; it accepts exactly what the generated prost types
//! accept (a test compares both on generated and mutated records), and [`classify`] is the same
//! classification over the prost types (the reference path).

use crate::decode::alert::{read_event, AlertType, ALERT_TYPE_ATTRIBUTE, LOW_QUALITY_ALERT};
use crate::decode::header::read_header;
use crate::decode::keys::MetricKey;
use crate::decode::quality::{Fields, QualityView, Val};
use crate::decode::wire::{Reader, WireError, FIXED64, LEN, VARINT};
use crate::proto::{attribute_value, dash_stream_message::Message, DashStreamMessage};
use crate::table::label_enum;

/// A successfully decoded record.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded<'a> {
    /// A `Metrics` message with scope `quality`.
    Quality(QualityView<'a>),
    /// A `Metrics` message with another scope.
    WrongScope(&'a str),
    /// An `Event` whose `alert_type` attribute is the string [`LOW_QUALITY_ALERT`]: QualityMonitor's alert
    /// that an evaluation's average fell below its threshold (whatever the event type and node id).
    QualityAlert,
    /// Another DashStream message type.
    Other(OtherKind),
}

label_enum! {
    /// The kind of a DashStream message that is not a `Metrics` message (the `message_type` label).
    pub enum OtherKind {
        Event => "event",
        StateDiff => "state_diff",
        TokenChunk => "token_chunk",
        ToolExecution => "tool_execution",
        Checkpoint => "checkpoint",
        Error => "error",
        EventBatch => "event_batch",
        ExecutionTrace => "execution_trace",
        /// A `DashStreamMessage` with no branch set.
        Empty => "empty",
    }
}

/// A branch of the `DashStreamMessage` oneof.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Branch {
    Metrics,
    Event,
    Other(OtherKind),
}

impl Branch {
    /// The branch a `DashStreamMessage` field number carries (`None` outside the oneof).
    fn of_field(field: u32) -> Option<Branch> {
        Some(match field {
            1 => Branch::Event,
            2 => Branch::Other(OtherKind::StateDiff),
            3 => Branch::Other(OtherKind::TokenChunk),
            4 => Branch::Other(OtherKind::ToolExecution),
            5 => Branch::Other(OtherKind::Checkpoint),
            6 => Branch::Metrics,
            7 => Branch::Other(OtherKind::Error),
            8 => Branch::Other(OtherKind::EventBatch),
            9 => Branch::Other(OtherKind::ExecutionTrace),
            _ => return None,
        })
    }
}

/// Classifies a message decoded into the generated types (the reference path).
pub fn classify(msg: &DashStreamMessage) -> Decoded<'_> {
    match &msg.message {
        Some(Message::Metrics(m)) => decoded(Fields::from_prost(m)),
        Some(Message::Event(e)) => {
            let alert = e.attributes.get(ALERT_TYPE_ATTRIBUTE).and_then(|a| a.value.as_ref());
            match alert {
                Some(attribute_value::Value::StringValue(t)) if t == LOW_QUALITY_ALERT => Decoded::QualityAlert,
                _ => Decoded::Other(OtherKind::Event),
            }
        }
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

fn decoded(fields: Fields<'_>) -> Decoded<'_> {
    match fields.view() {
        Ok(v) => Decoded::Quality(v),
        Err(scope) => Decoded::WrongScope(scope),
    }
}

/// Reads a `DashStreamMessage` in place.
pub(super) fn scan(buf: &[u8]) -> Result<Decoded<'_>, WireError> {
    let mut r = Reader::new(buf);
    let mut last = None;
    let mut metrics = Fields::default();
    let mut alert = AlertType::Absent;
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match Branch::of_field(field) {
            Some(branch) => {
                Reader::expect(wire, LEN)?;
                let body = r.bytes()?;
                // Another branch in between replaced an earlier occurrence; the same branch again merges.
                let fresh = last != Some(branch);
                match branch {
                    Branch::Metrics => {
                        if fresh {
                            metrics = Fields::default();
                        }
                        read_metrics(&mut metrics, body)?;
                    }
                    Branch::Event => {
                        if fresh {
                            alert = AlertType::Absent;
                        }
                        read_event(&mut alert, body)?;
                    }
                    Branch::Other(_) => Reader::new(body).skip_all(1)?,
                }
                last = Some(branch);
            }
            None => r.skip(field, wire, 0)?,
        }
    }
    Ok(match last {
        Some(Branch::Metrics) => decoded(metrics),
        Some(Branch::Event) if alert == AlertType::LowQuality => Decoded::QualityAlert,
        Some(Branch::Event) => Decoded::Other(OtherKind::Event),
        Some(Branch::Other(kind)) => Decoded::Other(kind),
        None => Decoded::Other(OtherKind::Empty),
    })
}

/// Reads one occurrence of a `Metrics` message (merging into what earlier occurrences set).
fn read_metrics<'a>(f: &mut Fields<'a>, buf: &'a [u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                Reader::expect(wire, LEN)?;
                f.header = true;
                read_header(f, r.bytes()?)?;
            }
            2 => {
                Reader::expect(wire, LEN)?;
                f.scope = r.str()?;
            }
            3 => {
                Reader::expect(wire, LEN)?;
                r.str()?;
            }
            4 => {
                Reader::expect(wire, LEN)?;
                let (key, val) = metric_entry(r.bytes()?)?;
                if let Some(k) = MetricKey::from_label(key) {
                    f.metrics[k] = Some(val);
                }
            }
            5 => {
                Reader::expect(wire, LEN)?;
                let (key, val) = tag_entry(r.bytes()?)?;
                f.tag(key, val);
            }
            _ => r.skip(field, wire, 1)?,
        }
    }
    Ok(())
}

/// Keys as written on the wire (field number << 3 | wire type) for the fields read most: matching the whole
/// key byte at once is what the loops below do first; anything else goes through [`Reader::split_key`] and
/// the same checks and errors as before.
const fn wire_key(field: u64, wire: u8) -> u64 {
    field << 3 | wire as u64
}

/// One `metrics` map entry: (key, value); a missing key is "", a missing value has no variant.
#[inline]
fn metric_entry(buf: &[u8]) -> Result<(&str, Val), WireError> {
    const KEY: u64 = wire_key(1, LEN);
    const VALUE: u64 = wire_key(2, LEN);
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
    const INT: u64 = wire_key(1, VARINT);
    const FLOAT: u64 = wire_key(2, FIXED64);
    const STRING: u64 = wire_key(3, LEN);
    const BOOL: u64 = wire_key(4, VARINT);
    const BYTES: u64 = wire_key(5, LEN);
    const UNIT: u64 = wire_key(6, LEN);
    const TYPE: u64 = wire_key(7, VARINT);
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
    const KEY: u64 = wire_key(1, LEN);
    const VALUE: u64 = wire_key(2, LEN);
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

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::decode::framing::{Unframer, DEFAULT_MAX_PAYLOAD};
    use crate::proto::{Checkpoint, Error, Event, EventBatch, ExecutionTrace, StateDiff, TokenChunk, ToolExecution};
    use crate::sim::encode::QualityRecord;

    /// Outcome of the reference path (prost) in a comparable form.
    fn by_prost(body: &[u8]) -> Result<String, ()> {
        let msg = DashStreamMessage::decode(body).map_err(drop)?;
        Ok(describe(&classify(&msg)))
    }

    /// Debug prints NaN and -0.0 faithfully.
    fn describe(d: &Decoded<'_>) -> String {
        format!("{d:?}")
    }

    /// The generated branch of each kind (`None` for a message without one).
    fn branch_of(kind: OtherKind) -> Option<Message> {
        match kind {
            OtherKind::Event => Some(Message::Event(Event::default())),
            OtherKind::StateDiff => Some(Message::StateDiff(StateDiff {})),
            OtherKind::TokenChunk => Some(Message::TokenChunk(TokenChunk {})),
            OtherKind::ToolExecution => Some(Message::ToolExecution(ToolExecution {})),
            OtherKind::Checkpoint => Some(Message::Checkpoint(Checkpoint {})),
            OtherKind::Error => Some(Message::Error(Error {})),
            OtherKind::EventBatch => Some(Message::EventBatch(EventBatch {})),
            OtherKind::ExecutionTrace => Some(Message::ExecutionTrace(ExecutionTrace {})),
            OtherKind::Empty => None,
        }
    }

    /// An `Event` with the given attributes (string values).
    fn event_with(attrs: &[(&str, &str)]) -> Vec<u8> {
        use crate::proto::{attribute_value::Value, AttributeValue};
        let attributes = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue { value: Some(Value::StringValue(v.to_string())) }))
            .collect();
        DashStreamMessage { message: Some(Message::Event(Event { attributes, ..Event::default() })) }.encode_to_vec()
    }

    #[test]
    fn low_quality_alerts_are_read_from_the_event_branch() {
        use crate::sim::encode::low_quality_alert;
        let alert = low_quality_alert("t-1", 0.55, 0.8, &["low_accuracy", "low_relevance"]).encode_to_vec();
        assert_eq!(scan(&alert), Ok(Decoded::QualityAlert));
        assert_eq!(by_prost(&alert), Ok("QualityAlert".into()));
        for (attrs, want) in [
            (&[("alert_type", "LOW_QUALITY")][..], Decoded::QualityAlert),
            (&[("alert_type", "low_quality")], Decoded::Other(OtherKind::Event)),
            (&[("alert_type", "HIGH_LATENCY")], Decoded::Other(OtherKind::Event)),
            (&[("kind", "LOW_QUALITY")], Decoded::Other(OtherKind::Event)),
            (&[], Decoded::Other(OtherKind::Event)),
        ] {
            let body = event_with(attrs);
            assert_eq!(scan(&body), Ok(want.clone()), "{attrs:?}");
            assert_eq!(by_prost(&body), Ok(describe(&want)), "{attrs:?}");
        }
        // A later entry of the same name replaces the earlier; another branch in between replaces the event.
        let later_wins = [event_with(&[("alert_type", "LOW_QUALITY")]), event_with(&[("alert_type", "x")])].concat();
        assert_eq!(scan(&later_wins), Ok(Decoded::Other(OtherKind::Event)));
        let merged = [event_with(&[("alert_type", "x")]), event_with(&[("alert_type", "LOW_QUALITY")])].concat();
        assert_eq!(scan(&merged), Ok(Decoded::QualityAlert));
        let chunk = DashStreamMessage { message: Some(Message::TokenChunk(TokenChunk {})) }.encode_to_vec();
        assert_eq!(scan(&[alert.clone(), chunk].concat()), Ok(Decoded::Other(OtherKind::TokenChunk)));
        // Malformed alerts are errors, as prost says: a truncated one, invalid UTF-8 in the node id.
        assert!(scan(&alert[..alert.len() - 3]).is_err() && by_prost(&alert[..alert.len() - 3]).is_err());
        let node = DashStreamMessage {
            message: Some(Message::Event(Event { node_id: "quality_monitor".into(), ..Event::default() })),
        }
        .encode_to_vec();
        let mut bad = [node, event_with(&[("alert_type", "LOW_QUALITY")])].concat();
        let at = bad.iter().position(|b| *b == b'q').unwrap();
        bad[at] = 0xff;
        assert_eq!(scan(&bad), Err(WireError("invalid string value: data is not UTF-8 encoded")));
        assert!(by_prost(&bad).is_err());
    }

    #[test]
    fn every_other_kind_is_read_from_its_branch() {
        for kind in OtherKind::ALL {
            let body = DashStreamMessage { message: branch_of(kind) }.encode_to_vec();
            assert_eq!(scan(&body), Ok(Decoded::Other(kind)), "{kind}");
            assert_eq!(classify(&DashStreamMessage::decode(&body[..]).unwrap()), Decoded::Other(kind), "{kind}");
        }
    }

    /// The in-place reader accepts, rejects and reads exactly what the generated prost types do, and the fast
    /// path reads exactly what they do whenever it reads a record at all, on valid records of every shape and
    /// on a quarter of a million mutations of them.
    #[test]
    fn in_place_reader_and_fast_path_agree_with_prost() {
        agree_with_prost(250_000);
    }

    /// The same on more mutations: `DECODE_MUTATIONS` of them (default 1 200 000); run with
    /// `cargo test --lib -- --ignored readers_agree_with_prost_long_run`.
    #[test]
    #[ignore = "long run"]
    fn readers_agree_with_prost_long_run() {
        let n = std::env::var("DECODE_MUTATIONS").map_or(1_200_000, |v| v.parse().expect("a count"));
        agree_with_prost(n);
    }

    fn agree_with_prost(mutations: usize) {
        use crate::sim::generator::{Generator, RecordShape, Rng, Traffic};
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        let traffic = Traffic {
            seed: 3,
            zstd_ratio: 0.0,
            legacy_ratio: 0.0,
            monitor_ratio: 0.1,
            stamp_from_us: Some(1_796_000_000_000_000),
            ..Traffic::default()
        };
        let mut g = Generator::new(traffic.clone());
        let mut lean = Generator::new(Traffic { shape: RecordShape::Lean, ..traffic });
        for n in 0..40 {
            seeds.push(QualityRecord::sample(n).message().encode_to_vec());
            seeds.push(g.next_record().message().encode_to_vec());
            let (mut v, mut k) = (Vec::new(), String::new());
            g.next_encoded(&mut v, &mut k);
            seeds.push(v[1..].to_vec()); // hand-written encoder, frame byte dropped
            lean.next_encoded(&mut v, &mut k);
            seeds.push(v[1..].to_vec()); // the shape the generator wrote before issue 29
        }
        let generated = seeds.len();
        let mut r = QualityRecord::sample(1);
        r.thread_id = None;
        seeds.push(r.message().encode_to_vec());
        r.scope = "llm".into();
        seeds.push(r.message().encode_to_vec());
        seeds.push(DashStreamMessage { message: Some(Message::TokenChunk(TokenChunk {})) }.encode_to_vec());
        seeds.push(Vec::new());
        let two =
            [QualityRecord::sample(2).message().encode_to_vec(), QualityRecord::sample(3).message().encode_to_vec()];
        seeds.push(two.concat()); // the metrics branch twice: merged
        let chunk = DashStreamMessage { message: Some(Message::TokenChunk(TokenChunk {})) }.encode_to_vec();
        seeds.push([two[0].clone(), chunk.clone(), two[1].clone()].concat()); // replaced, then new
        seeds.push([two[0].clone(), chunk].concat()); // last branch wins
                                                      // QualityMonitor's shapes: evaluations with and without issues, its alert, alerts mixed with metrics.
        let monitor = QualityRecord::monitor("t-m", 0.5, 0.6, 0.9, &["low_accuracy", "low_relevance", "made_up"]);
        seeds.push(monitor.message().encode_to_vec());
        seeds.push(QualityRecord::monitor("t-m", 0.9, 0.95, 0.8, &[]).message().encode_to_vec());
        let alert =
            crate::sim::encode::low_quality_alert("t-m", 0.66, 0.8, &["low_accuracy", "low_relevance"]).encode_to_vec();
        seeds.push(alert.clone());
        seeds.push([alert.clone(), alert.clone()].concat());
        seeds.push([two[0].clone(), alert.clone()].concat());
        seeds.push([alert, two[1].clone()].concat());
        let mut official = Vec::new();
        for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dashstream")).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "bin") {
                let bytes = std::fs::read(&path).unwrap();
                if let Ok(body) = Unframer::new(DEFAULT_MAX_PAYLOAD).unframe(&bytes) {
                    official.push(body.to_vec());
                }
            }
        }
        // Whether prost accepts the record, and whether the fast path read it.
        let check = |body: &[u8]| {
            let ours = scan(body).map(|d| describe(&d)).map_err(drop);
            let prost = by_prost(body);
            assert_eq!(ours, prost, "disagreement on {body:02x?}");
            let fast = crate::decode::fast::scan(body).map(|d| describe(&d));
            if let Some(f) = &fast {
                assert_eq!(Ok(f), prost.as_ref(), "the fast path disagrees on {body:02x?}");
            }
            (ours.is_ok(), fast.is_some())
        };
        for (i, s) in seeds.iter().enumerate() {
            let (ok, fast) = check(s);
            assert!(ok, "seed must decode: {s:02x?}");
            // Every record a DashFlow producer or the generator writes takes the fast path.
            assert!(fast || i >= generated, "seed {i} takes the fast path: {s:02x?}");
        }
        let official_ok = official.iter().filter(|b| check(b).0).count();
        assert_eq!(
            (official.len(), official_ok),
            (10, 9),
            "12 official records: empty and bad zstd do not unframe, one is truncated"
        );
        seeds.extend(official);
        // DashFlow's producers' shapes, encoded by the official runtime from DashFlow's own .proto.
        for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dashflow")).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "bin") {
                let body = std::fs::read(&path).unwrap()[1..].to_vec(); // every one is 0x00-framed
                assert_eq!(check(&body).0, !path.to_string_lossy().contains("truncated"), "{path:?}");
                seeds.push(body);
            }
        }
        let mut rng = Rng::new(99);
        let (mut ok, mut err, mut fast, mut fallen_back) = (0, 0, 0, 0);
        for i in 0..mutations {
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
            match check(&b) {
                (true, true) => (ok, fast) = (ok + 1, fast + 1),
                (true, false) => (ok, fallen_back) = (ok + 1, fallen_back + 1),
                (false, _) => err += 1,
            }
        }
        eprintln!("{mutations} mutations: {ok} accepted ({fast} by the fast path, {fallen_back} by the in-place reader), {err} refused");
        let tenth = mutations / 10;
        assert!(ok > tenth && err > tenth, "mutations exercise both outcomes: {ok} ok, {err} errors");
        assert!(
            fast > tenth / 2 && fallen_back > tenth / 10,
            "accepted mutations go both ways: {fast} by the fast path, {fallen_back} by the in-place reader"
        );
    }
}
