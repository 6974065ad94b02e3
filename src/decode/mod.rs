//! Record bytes → [`Decoded`]: the decode stage of the poll thread (docs/wire-format.md).
//!
//! [`Decoder::decode`] undoes the framing ([`framing`]), reads the `DashStreamMessage` in place ([`message`],
//! on the allocation-free wire reader of [`wire`]) and maps a quality `Metrics` message to a [`QualityView`]
//! ([`quality`], keys in [`keys`]); [`event`] then normalizes the view into the small event sent to the
//! worker, with the bounded label values of [`labels`]. Pure: no metrics, no I/O. What the decoder notices
//! that is not fatal (a missing header, a metric value of the wrong type, a clamped or non-finite number) is
//! reported in [`Anomalies`] for counting.

pub mod alert;
pub mod error;
pub mod event;
mod fast;
pub mod framing;
mod header;
pub mod id_key;
pub mod ids;
pub mod keys;
pub mod labels;
pub mod message;
pub mod quality;
pub mod wire;

use prost::Message as _;

pub use self::error::{DecodeError, ErrorReason};
pub use self::framing::{Unframer, DEFAULT_MAX_PAYLOAD, FRAME_PLAIN, FRAME_ZSTD, ZSTD_MAGIC};
pub use self::keys::{Issue, IssueSet, KeySet, MetricKey, TagKey};
pub use self::message::{classify, Decoded, OtherKind};
pub use self::quality::{Anomalies, QualityView};
use crate::proto::DashStreamMessage;

/// Decodes records; keeps a scratch buffer for decompression between calls.
pub struct Decoder {
    unframer: Unframer,
}

impl Decoder {
    pub fn new(max_payload: usize) -> Self {
        Decoder { unframer: Unframer::new(max_payload) }
    }

    /// Decodes one record value, reading the protobuf in place: the usual shape through the fast path
    /// ([`fast`]), anything else through the in-place reader ([`message`]).
    // Never inlined: one call per record, and the decode stage keeps its own name in profiles
    // (benches/e2e_callgrind, benches/stages).
    #[inline(never)]
    pub fn decode<'a>(&'a mut self, payload: &'a [u8]) -> Result<Decoded<'a>, DecodeError> {
        let body = self.unframer.unframe(payload)?;
        if let Some(d) = fast::scan(body) {
            return Ok(d);
        }
        scan_in_place(body)
    }

    /// Unframes, decompresses and decodes a record into the generated prost types (the reference
    /// implementation; the exporter itself uses [`Decoder::decode`]).
    pub fn message(&mut self, payload: &[u8]) -> Result<DashStreamMessage, DecodeError> {
        let body = self.unframer.unframe(payload)?;
        DashStreamMessage::decode(body).map_err(|e| DecodeError::InvalidProtobuf(e.to_string()))
    }

    /// Checks the size, strips the frame byte and decompresses: the protobuf bytes of a record.
    pub fn unframe<'a>(&'a mut self, payload: &'a [u8]) -> Result<&'a [u8], DecodeError> {
        self.unframer.unframe(payload)
    }
}

/// Reads an unframed `DashStreamMessage` with the in-place reader alone (no fast path).
pub fn scan_in_place(body: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    message::scan(body).map_err(|e| DecodeError::InvalidProtobuf(format!("failed to decode Protobuf message: {e}")))
}

/// Reads an unframed `DashStreamMessage` with the fast path alone: `None` when it leaves the record to the
/// in-place reader (tests and the `decode_fast` fuzz target compare it with prost).
pub fn scan_fast(body: &[u8]) -> Option<Decoded<'_>> {
    fast::scan(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::dash_stream_message::Message;
    use crate::sim::encode::{frame, from_hex, Framing, QualityRecord, WORKED_EXAMPLE};

    /// The event's fields (anomalies cleared) and its anomalies.
    fn quality<'a>(d: Result<Decoded<'a>, DecodeError>) -> (QualityView<'a>, Anomalies) {
        match d {
            Ok(Decoded::Quality(v)) => (QualityView { anomalies: Anomalies::default(), ..v }, v.anomalies),
            other => panic!("expected a quality event, got {other:?}"),
        }
    }

    #[test]
    fn worked_example_decodes() {
        let bytes = from_hex(WORKED_EXAMPLE);
        assert_eq!(bytes.len(), 132);
        let mut d = Decoder::new(DEFAULT_MAX_PAYLOAD);
        let (ev, an) = quality(d.decode(&bytes));
        assert_eq!(
            ev,
            QualityView {
                quality_score: 0.9,
                passed: true,
                latency_ms: 1500,
                model: "gpt-4o",
                category: "Complex",
                session_id: "sess-1",
                application_type: "unknown",
                ..QualityView::default()
            }
        );
        assert_eq!(an.present.names().collect::<Vec<_>>(), vec!["quality_score", "passed", "latency_ms"]);
        assert!(an.type_mismatch.is_empty() && an.out_of_range.is_empty() && !an.missing_header);
        // Dropping the frame byte gives the equally accepted legacy form.
        let mut d2 = Decoder::new(DEFAULT_MAX_PAYLOAD);
        let (legacy, _) = quality(d2.decode(&bytes[1..]));
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
        let example = from_hex(WORKED_EXAMPLE);
        let (mut d, mut d2) = (Decoder::new(DEFAULT_MAX_PAYLOAD), Decoder::new(DEFAULT_MAX_PAYLOAD));
        assert_eq!(quality(d.decode(&ours)), quality(d2.decode(&example)));
    }

    #[test]
    fn every_framing_round_trips() {
        let rec = QualityRecord::sample(7);
        let framed = frame(&rec.message(), Framing::Framed);
        let mut d = Decoder::new(DEFAULT_MAX_PAYLOAD);
        let want = quality(d.decode(&framed)).0;
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
        assert_eq!(d.decode(&framed[..1025]).unwrap_err().reason(), ErrorReason::InvalidProtobuf);
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
        assert_eq!(d.decode(&[FRAME_ZSTD, 1, 2, 3, 4]).unwrap_err().reason(), ErrorReason::Decompress);
        assert_eq!(d.decode(b"not a valid protobuf message").unwrap_err().reason(), ErrorReason::InvalidProtobuf);
        let good = frame(&QualityRecord::sample(3).message(), Framing::Framed);
        assert_eq!(d.decode(&good[..good.len() / 2]).unwrap_err().reason(), ErrorReason::InvalidProtobuf);
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
}
