//! Reads a `Header` message in place (the message id, thread id and timestamp a quality event keeps),
//! checking every field as the generated prost types do. Shared by the `Metrics` and `Event` readers.

use crate::decode::quality::Fields;
use crate::decode::wire::{Reader, WireError, LEN, VARINT};

/// Reads one occurrence of a `Header` message into `f`.
pub(super) fn read_header<'a>(f: &mut Fields<'a>, buf: &'a [u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                Reader::expect(wire, LEN)?;
                f.message_id = r.bytes()?;
            }
            7 => {
                Reader::expect(wire, LEN)?;
                r.bytes()?;
            }
            3 => {
                Reader::expect(wire, LEN)?;
                r.str()?;
            }
            4 => {
                Reader::expect(wire, LEN)?;
                f.thread_id = r.str()?;
            }
            2 => {
                Reader::expect(wire, VARINT)?;
                // int64: the varint is the two's-complement bit pattern, as prost reads it.
                f.timestamp_us = r.varint()? as i64;
            }
            5 | 6 | 8 | 9 => {
                Reader::expect(wire, VARINT)?;
                r.varint()?;
            }
            _ => r.skip(field, wire, 2)?,
        }
    }
    Ok(())
}
