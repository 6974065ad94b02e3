//! The record framing: how a record value carries its protobuf (docs/wire-format.md).
//!
//! A framed record starts with a frame byte, `0x00` (plain) or `0x01` (zstd); a legacy record is the protobuf
//! alone or a bare zstd frame. The size limit applies before decompressing, and the decompressed output is
//! capped at the same limit (checked against the declared size first, then enforced while decompressing), so a
//! small compressed bomb never costs more than the limit in memory.
//!
//! The decompression context is made once per [`Unframer`] (one per poll thread) and reused for every
//! compressed record: making one costs several times what decompressing a small record does. Reusing it
//! changes nothing a record sees: the same streaming reader runs over it, and its session is reset first.

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

/// A decompression context whose buffers grew past this (a frame with a large window) is dropped after the
/// record, so a rare large frame does not hold its memory for good.
const MAX_KEPT_CONTEXT: usize = 1 << 20;

/// Undoes the framing; keeps a scratch buffer and a zstd decompression context between calls.
pub struct Unframer {
    max: usize,
    scratch: Vec<u8>,
    /// Made on the first compressed record, then reused.
    dctx: Option<zstd::zstd_safe::DCtx<'static>>,
}

impl Unframer {
    pub fn new(max_payload: usize) -> Self {
        Unframer { max: max_payload, scratch: Vec::new(), dctx: None }
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
        let dctx = self.dctx.get_or_insert_with(new_context);
        // The same streaming reader as `Decoder::with_buffer` (concatenated frames, a cut frame refused), over
        // the kept context; `with_context` resets its session first.
        let read = zstd::stream::read::Decoder::with_context(src, dctx)
            .take(max as u64 + 1)
            .read_to_end(&mut self.scratch)
            .map_err(|e| DecodeError::Decompress(e.to_string()));
        if self.dctx.as_ref().is_some_and(|c| c.sizeof() > MAX_KEPT_CONTEXT) {
            self.dctx = None;
        }
        read?;
        if self.scratch.len() > max {
            self.scratch = Vec::new(); // do not keep a bomb's worth of memory around
            return Err(DecodeError::DecompressedTooLarge { max });
        }
        Ok(())
    }

    /// Whether a decompression context is kept (tests).
    #[cfg(test)]
    pub(crate) fn has_context(&self) -> bool {
        self.dctx.is_some()
    }
}

/// A decompression context as `zstd::stream::read::Decoder::with_buffer` makes one (no dictionary, default
/// parameters).
fn new_context() -> zstd::zstd_safe::DCtx<'static> {
    let mut c = zstd::zstd_safe::DCtx::create();
    // Initializing a freshly made context only resets it, which cannot fail.
    let _ = c.init();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zstd_framed(body: &[u8]) -> Vec<u8> {
        let mut v = vec![FRAME_ZSTD];
        v.extend(zstd::bulk::compress(body, 3).unwrap());
        v
    }

    #[test]
    fn one_context_serves_every_record_and_a_large_one_is_dropped() {
        let mut u = Unframer::new(DEFAULT_MAX_PAYLOAD);
        assert!(!u.has_context());
        assert_eq!(u.unframe(&[FRAME_PLAIN, 7]), Ok(&[7u8][..]));
        assert!(!u.has_context(), "made on the first compressed record only");
        let a: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        let b: Vec<u8> = (0..5000u32).map(|i| (i % 13) as u8).collect();
        assert_eq!(u.unframe(&zstd_framed(&a)).unwrap(), &a[..]);
        assert!(u.has_context());
        // A cut frame mid-record, then good records: the session starts afresh each time.
        let whole = zstd_framed(&b);
        assert!(matches!(u.unframe(&whole[..whole.len() - 4]), Err(DecodeError::Decompress(_))));
        assert_eq!(u.unframe(&whole).unwrap(), &b[..]);
        assert_eq!(u.unframe(&zstd_framed(&a)).unwrap(), &a[..]);
        // Two concatenated frames decode as one body, as before; trailing garbage is refused.
        let two = [zstd_framed(&a), zstd_framed(&b)[1..].to_vec()].concat();
        assert_eq!(u.unframe(&two).unwrap(), &[&a[..], &b[..]].concat()[..]);
        let garbage = [zstd_framed(&a), vec![1, 2, 3, 4, 5, 6, 7, 8]].concat();
        assert!(matches!(u.unframe(&garbage), Err(DecodeError::Decompress(_))));
        assert!(u.has_context());
        // A streamed frame with a 2 MiB window (level 3, size not declared) grows the context past what is kept.
        let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &big).unwrap();
        let mut framed = vec![FRAME_ZSTD];
        framed.extend(enc.finish().unwrap());
        assert_eq!(u.unframe(&framed).unwrap().len(), big.len());
        assert!(!u.has_context(), "a context that grew past {MAX_KEPT_CONTEXT} bytes is not kept");
        assert_eq!(u.unframe(&zstd_framed(&a)).unwrap(), &a[..]);
        assert!(u.has_context());
    }
}
