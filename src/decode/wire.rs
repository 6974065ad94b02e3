//! A minimal, allocation-free protobuf wire-format reader.
//!
//! It accepts exactly what prost (the generated `proto` types) accepts for the fields it reads: the same
//! varint, key, wire-type, length, UTF-8 and group rules, and unknown fields skipped; a test compares the two
//! on generated and mutated records. Errors carry prost-like messages.

use std::fmt;

/// Nesting allowed inside unknown groups (prost's recursion limit).
const RECURSION_LIMIT: u32 = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const START_GROUP: u8 = 3;
pub const END_GROUP: u8 = 4;
pub const FIXED32: u8 = 5;

#[derive(Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// One varint. Nearly every varint in a record (keys, lengths, small values) is one byte: that case is
    /// inlined, the rest is out of line.
    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64, WireError> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_slow(),
        }
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else { return Err(WireError("buffer underflow")) };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(WireError("invalid varint"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(WireError("invalid varint"))
    }

    /// The next field's (number, wire type).
    #[inline(always)]
    pub fn key(&mut self) -> Result<(u32, u8), WireError> {
        Self::split_key(self.varint()?)
    }

    /// A key read as a plain varint (to match the common one-byte tags directly) into (number, wire type),
    /// with [`Reader::key`]'s checks.
    #[inline(always)]
    pub fn split_key(k: u64) -> Result<(u32, u8), WireError> {
        if k > u64::from(u32::MAX) {
            return Err(WireError("invalid key value"));
        }
        let wire = (k & 7) as u8;
        if wire > FIXED32 {
            return Err(WireError("invalid wire type value"));
        }
        let field = (k >> 3) as u32;
        if field == 0 {
            return Err(WireError("invalid tag value: 0"));
        }
        Ok((field, wire))
    }

    #[inline(always)]
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let rest = self.buf.len() - self.pos;
        if len > rest as u64 {
            return Err(WireError("buffer underflow"));
        }
        let s = &self.buf[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        Ok(s)
    }

    /// A string field: UTF-8 checked as prost checks it. Short ASCII strings (every key, unit, id and label a
    /// producer sends in practice) are checked 8 bytes at a time inline; anything else goes to `from_utf8`.
    #[inline(always)]
    pub fn str(&mut self) -> Result<&'a str, WireError> {
        let b = self.bytes()?;
        if b.len() <= 32 && is_ascii_short(b) {
            // SAFETY: every byte is below 0x80, so the bytes are valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(b) });
        }
        std::str::from_utf8(b).map_err(|_| WireError("invalid string value: data is not UTF-8 encoded"))
    }

    #[inline]
    pub fn fixed64(&mut self) -> Result<u64, WireError> {
        let Some(b) = self.buf.get(self.pos..self.pos + 8) else { return Err(WireError("buffer underflow")) };
        self.pos += 8;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn fixed32(&mut self) -> Result<u32, WireError> {
        let Some(b) = self.buf.get(self.pos..self.pos + 4) else { return Err(WireError("buffer underflow")) };
        self.pos += 4;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    /// Checks a known field's wire type.
    #[inline]
    pub fn expect(wire: u8, expected: u8) -> Result<(), WireError> {
        if wire == expected {
            Ok(())
        } else {
            Err(WireError("invalid wire type"))
        }
    }

    /// Skips one field of an unknown number found in a message nested `depth` levels deep (0 = top level).
    pub fn skip(&mut self, field: u32, wire: u8, depth: u32) -> Result<(), WireError> {
        self.skip_depth(field, wire, RECURSION_LIMIT.saturating_sub(depth))
    }

    fn skip_depth(&mut self, field: u32, wire: u8, budget: u32) -> Result<(), WireError> {
        if budget == 0 {
            return Err(WireError("recursion limit reached"));
        }
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.fixed32().map(drop),
            START_GROUP => loop {
                let (f, w) = self.key()?;
                if w == END_GROUP {
                    return if f == field { Ok(()) } else { Err(WireError("unexpected end group tag")) };
                }
                self.skip_depth(f, w, budget - 1)?;
            },
            _ => Err(WireError("unexpected end group tag")),
        }
    }

    /// Validates a whole message whose fields are all unknown (an empty message type) at `depth`.
    pub fn skip_all(mut self, depth: u32) -> Result<(), WireError> {
        while !self.is_empty() {
            let (f, w) = self.key()?;
            self.skip(f, w, depth)?;
        }
        Ok(())
    }
}

/// Whether `b` (at most 32 bytes) is all ASCII: the OR of overlapping words that together cover every byte (the
/// last one ending at the end, so there is no byte-by-byte tail), high bits tested once.
#[inline(always)]
pub(super) fn is_ascii_short(b: &[u8]) -> bool {
    let n = b.len();
    let acc = if n >= 8 {
        let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let mut acc = word(n - 8);
        let mut i = 0;
        while i + 8 < n {
            acc |= word(i);
            i += 8;
        }
        acc
    } else if n >= 4 {
        let word = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        u64::from(word(0) | word(n - 4))
    } else if n > 0 {
        u64::from(b[0] | b[n / 2] | b[n - 1]) // n <= 3: these are all of them
    } else {
        0
    };
    acc & 0x8080_8080_8080_8080 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        assert_eq!(Reader::new(&[0xff; 9].iter().copied().chain([0x01]).collect::<Vec<_>>()).varint(), Ok(u64::MAX));
        assert_eq!(
            Reader::new(&[0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>()).varint(),
            Err(WireError("invalid varint"))
        );
        assert_eq!(Reader::new(&[0x80]).varint(), Err(WireError("buffer underflow")));
    }

    #[test]
    fn short_ascii_check_sees_a_high_byte_anywhere() {
        for n in 0..=32 {
            let ascii = vec![b'a'; n];
            assert!(is_ascii_short(&ascii), "{n} ASCII bytes");
            for at in 0..n {
                let mut b = ascii.clone();
                b[at] = 0x80;
                assert!(!is_ascii_short(&b), "a high byte at {at} of {n}");
                b[at] = 0xff;
                assert!(!is_ascii_short(&b), "0xff at {at} of {n}");
            }
        }
    }

    #[test]
    fn keys_and_groups() {
        assert_eq!(Reader::new(&[0x00]).key(), Err(WireError("invalid tag value: 0")));
        assert_eq!(Reader::new(&[0x0e]).key(), Err(WireError("invalid wire type value")));
        // group 1 { varint field 2 } end group 1
        let mut r = Reader::new(&[0x0b, 0x10, 0x05, 0x0c]);
        let (f, w) = r.key().unwrap();
        assert_eq!(r.skip(f, w, 0), Ok(()));
        assert!(r.is_empty());
        let mut r = Reader::new(&[0x0b, 0x14]);
        let (f, w) = r.key().unwrap();
        assert_eq!(r.skip(f, w, 0), Err(WireError("unexpected end group tag")));
    }
}
