//! Reads an `Event` message in place (DashFlow QualityMonitor's alerts), checking it as the generated prost
//! types do and keeping only what its `alert_type` attribute says.

use crate::decode::header::read_header;
use crate::decode::quality::Fields;
use crate::decode::wire::{Reader, WireError, FIXED64, LEN, VARINT};

/// The attribute of an `Event` naming the kind of alert.
pub const ALERT_TYPE_ATTRIBUTE: &str = "alert_type";
/// The value QualityMonitor gives that attribute on a low-quality alert.
pub const LOW_QUALITY_ALERT: &str = "LOW_QUALITY";

/// What an `Event`'s `alert_type` attribute holds, as far as the exporter cares (the last entry of the name
/// wins, as map insertion does).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AlertType {
    Absent,
    LowQuality,
    /// Another value, or a value of another type.
    Other,
}

/// Reads one occurrence of an `Event` message, checking it as the generated types do; only the
/// `alert_type` attribute is kept.
pub(super) fn read_event(alert: &mut AlertType, buf: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                Reader::expect(wire, LEN)?;
                read_header(&mut Fields::default(), r.bytes()?)?; // checked, not kept
            }
            2 | 5 => {
                Reader::expect(wire, VARINT)?;
                r.varint()?;
            }
            3 | 6 => {
                Reader::expect(wire, LEN)?;
                r.str()?;
            }
            4 => {
                Reader::expect(wire, LEN)?;
                if let Some(a) = attribute_entry(r.bytes()?)? {
                    *alert = a;
                }
            }
            _ => r.skip(field, wire, 1)?,
        }
    }
    Ok(())
}

/// One `attributes` map entry: what it says about the alert type, or `None` for another attribute.
fn attribute_entry(buf: &[u8]) -> Result<Option<AlertType>, WireError> {
    let mut r = Reader::new(buf);
    let (mut key, mut value) = ("", None);
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                Reader::expect(wire, LEN)?;
                key = r.str()?;
            }
            2 => {
                Reader::expect(wire, LEN)?;
                attribute_value(r.bytes()?, &mut value)?;
            }
            _ => r.skip(field, wire, 2)?,
        }
    }
    Ok((key == ALERT_TYPE_ATTRIBUTE).then(|| match value {
        Some(s) if s == LOW_QUALITY_ALERT => AlertType::LowQuality,
        _ => AlertType::Other,
    }))
}

/// Merges one occurrence of an `AttributeValue` (its last oneof variant wins): `Some(s)` when that is the
/// string `s`, else `None`.
fn attribute_value<'a>(buf: &'a [u8], string: &mut Option<&'a str>) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                Reader::expect(wire, LEN)?;
                *string = Some(r.str()?);
            }
            2 | 4 => {
                Reader::expect(wire, VARINT)?;
                r.varint()?;
                *string = None;
            }
            3 => {
                Reader::expect(wire, FIXED64)?;
                r.fixed64()?;
                *string = None;
            }
            5 => {
                Reader::expect(wire, LEN)?;
                r.bytes()?;
                *string = None;
            }
            6 | 7 => {
                // AttributeArray / AttributeMap: declared empty, their contents checked and skipped.
                Reader::expect(wire, LEN)?;
                Reader::new(r.bytes()?).skip_all(4)?;
                *string = None;
            }
            _ => r.skip(field, wire, 3)?,
        }
    }
    Ok(())
}
