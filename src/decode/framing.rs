//! The record framing: how a record value carries its protobuf (docs/wire-format.md).
//!
//! A framed record starts with a frame byte, `0x00` (plain) or `0x01` (zstd); a legacy record is the protobuf
//! alone or a bare zstd frame. The size limit applies before decompressing, and the decompressed output is
//! capped at the same limit (checked against the declared size first, then enforced while decompressing), so a
//! small compressed bomb never costs more than the limit in memory.

use std::io::Read;

use crate::decode::error::DecodeError;

/// Frame byte of an uncompressed framed record.
pub const FRAME_PLAIN: u8 = 0x00;
/// Frame byte of a zstd-compressed framed record.
pub const FRAME_ZSTD: u8 = 0x01;
/// Magic number of a zstd frame (a legacy unframed compressed record starts with it).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Default largest payload, 10 MiB, as in the original.
pub const DEFAULT_MAX_PAYLOAD: usize = 10 * 1024 * 1024;

/// Undoes the framing; keeps a scratch buffer for decompression between calls.
pub struct Unframer {
    max: usize,
    scratch: Vec<u8>,
}

impl Unframer {
    pub fn new(max_payload: usize) -> Self {
        Unframer { max: max_payload, scratch: Vec::new() }
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
