//! The fast path in front of the in-place reader ([`super::message`]) for the usual record: one `metrics`
//! branch and nothing else, every tag a single byte and every length one or two bytes, map entries laid out key
//! then value, a metric value as its oneof variant, unit and type in field order, each at most once.
//!
//! It reads such a record with direct byte compares and whole-word key compares, and fills the same
//! [`Fields`] the in-place reader fills, turned into the view by the same code. It accepts only records it
//! has checked completely (every length within its message, every string UTF-8, every varint valid), which
//! prost accepts too; it gives up (`None`) on anything else, including every malformed record, and the
//! in-place reader then decides. So acceptance and the view are exactly the in-place reader's, and prost's:
//! a test compares the three on generated and mutated records, and so does the `decode_fast` fuzz target.

use crate::decode::keys::{MetricKey, TagKey};
use crate::decode::message::Decoded;
use crate::decode::quality::{Fields, Val};

/// A byte cursor over one message; every read gives up (`None`) past its end.
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// A length: one or two varint bytes (a longer one gives up).
    #[inline(always)]
    fn len(&mut self) -> Option<usize> {
        let b0 = self.byte()?;
        if b0 < 0x80 {
            return Some(usize::from(b0));
        }
        let b1 = self.byte()?;
        if b1 < 0x80 {
            return Some(usize::from(b0 & 0x7f) | usize::from(b1) << 7);
        }
        None
    }

    /// A varint of any length, with prost's rule for the tenth byte.
    #[inline(always)]
    fn varint(&mut self) -> Option<u64> {
        let b = self.byte()?;
        if b < 0x80 {
            return Some(u64::from(b));
        }
        self.varint_rest(b)
    }

    #[inline(never)]
    fn varint_rest(&mut self, first: u8) -> Option<u64> {
        let mut v = u64::from(first & 0x7f);
        for i in 1..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// A length-delimited field's bytes.
    #[inline(always)]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    #[inline(always)]
    fn fixed64(&mut self) -> Option<u64> {
        let b = self.buf.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    #[inline(always)]
    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Consumes `key` if it is the next byte.
    #[inline(always)]
    fn eat(&mut self, key: u8) -> bool {
        if self.buf.get(self.pos) == Some(&key) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
}

/// A string field's bytes as `&str`, checked as prost checks it.
#[inline(always)]
fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(b) });
    }
    std::str::from_utf8(b).ok()
}

/// A label compared as whole words: its length and three overlapping little-endian words that together cover
/// all its bytes (for 8 to 24 bytes), or two 4-byte words (4 to 7 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Sig(usize, u64, u64, u64);

const fn word8(b: &[u8], at: usize) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < 8 {
        w |= (b[at + i] as u64) << (8 * i);
        i += 1;
    }
    w
}

const fn word4(b: &[u8], at: usize) -> u64 {
    (b[at] as u64) | (b[at + 1] as u64) << 8 | (b[at + 2] as u64) << 16 | (b[at + 3] as u64) << 24
}

/// The signature of `b`, or `None` outside 4..=24 bytes (no known key is that long or short).
#[inline(always)]
const fn sig(b: &[u8]) -> Option<Sig> {
    let n = b.len();
    if n >= 8 && n <= 24 {
        let mid = if n - 8 < 8 { n - 8 } else { 8 };
        Some(Sig(n, word8(b, 0), word8(b, mid), word8(b, n - 8)))
    } else if n >= 4 && n < 8 {
        Some(Sig(n, word4(b, 0), word4(b, n - 4), 0))
    } else {
        None
    }
}

const fn sig_of(s: &str) -> Sig {
    match sig(s.as_bytes()) {
        Some(s) => s,
        None => panic!("a known key is 4 to 24 bytes long"),
    }
}

const METRIC_SIGS: [Sig; MetricKey::COUNT] = {
    let mut t = [Sig(0, 0, 0, 0); MetricKey::COUNT];
    let mut i = 0;
    while i < MetricKey::COUNT {
        t[i] = sig_of(MetricKey::ALL[i].label());
        i += 1;
    }
    t
};

const TAG_SIGS: [Sig; TagKey::COUNT] = {
    let mut t = [Sig(0, 0, 0, 0); TagKey::COUNT];
    let mut i = 0;
    while i < TagKey::COUNT {
        t[i] = sig_of(TagKey::ALL[i].label());
        i += 1;
    }
    t
};

/// The metric key `b` spells exactly, if any.
#[inline(always)]
fn metric_key(b: &[u8]) -> Option<MetricKey> {
    let s = sig(b)?;
    METRIC_SIGS.iter().position(|k| *k == s).map(|i| MetricKey::ALL[i])
}

/// The tag key `b` spells exactly, if any.
#[inline(always)]
fn tag_key(b: &[u8]) -> Option<TagKey> {
    let s = sig(b)?;
    TAG_SIGS.iter().position(|k| *k == s).map(|i| TagKey::ALL[i])
}

/// Keys as written on the wire: field number << 3 | wire type.
const fn key(field: u8, wire: u8) -> u8 {
    field << 3 | wire
}
const LEN: u8 = 2;
const VARINT: u8 = 0;
const FIXED64: u8 = 1;

/// Reads `buf` (an unframed `DashStreamMessage`) when it has the usual shape; `None` leaves it to the in-place
/// reader.
#[inline]
pub(super) fn scan(buf: &[u8]) -> Option<Decoded<'_>> {
    let mut c = Cur { buf, pos: 0 };
    if !c.eat(key(6, LEN)) {
        return None;
    }
    let body = c.bytes()?;
    if !c.at_end() {
        return None;
    }
    let mut f = Fields::default();
    metrics(&mut f, body)?;
    Some(match f.into_view() {
        Ok(v) => Decoded::Quality(v),
        Err(scope) => Decoded::WrongScope(scope),
    })
}

/// One `Metrics` message.
#[inline(always)]
fn metrics<'a>(f: &mut Fields<'a>, buf: &'a [u8]) -> Option<()> {
    let mut c = Cur { buf, pos: 0 };
    while !c.at_end() {
        match c.byte()? {
            0x22 => metric_entry(f, c.bytes()?)?,
            0x2a => tag_entry(f, c.bytes()?)?,
            0x0a => {
                f.header = true;
                header(f, c.bytes()?)?;
            }
            0x12 => f.scope = utf8(c.bytes()?)?,
            0x1a => {
                utf8(c.bytes()?)?;
            }
            _ => return None,
        }
    }
    Some(())
}

/// One `Header` (merged into what an earlier one set, as prost merges).
#[inline(always)]
fn header<'a>(f: &mut Fields<'a>, buf: &'a [u8]) -> Option<()> {
    let mut c = Cur { buf, pos: 0 };
    while !c.at_end() {
        match c.byte()? {
            0x0a => f.message_id = c.bytes()?,
            0x10 => f.timestamp_us = c.varint()? as i64,
            0x1a => {
                utf8(c.bytes()?)?;
            }
            0x22 => f.thread_id = utf8(c.bytes()?)?,
            0x28 | 0x30 | 0x40 | 0x48 => {
                c.varint()?;
            }
            0x3a => {
                c.bytes()?;
            }
            _ => return None,
        }
    }
    Some(())
}

/// One `metrics` entry: key, then value, nothing else.
#[inline(always)]
fn metric_entry<'a>(f: &mut Fields<'a>, buf: &'a [u8]) -> Option<()> {
    let mut c = Cur { buf, pos: 0 };
    if !c.eat(key(1, LEN)) {
        return None;
    }
    let name = c.bytes()?;
    if !c.eat(key(2, LEN)) {
        return None;
    }
    let val = metric_value(c.bytes()?)?;
    if !c.at_end() {
        return None;
    }
    match metric_key(name) {
        Some(k) => f.metrics[k] = Some(val),
        None => {
            utf8(name)?;
        }
    }
    Some(())
}

/// One `MetricValue`: an optional oneof variant (int, float or bool), then an optional unit, then an optional
/// type, each once.
#[inline(always)]
fn metric_value(buf: &[u8]) -> Option<Val> {
    let mut c = Cur { buf, pos: 0 };
    let val = if c.eat(key(2, FIXED64)) {
        Val::Float(f64::from_bits(c.fixed64()?))
    } else if c.eat(key(1, VARINT)) {
        Val::Int(c.varint()? as i64)
    } else if c.eat(key(4, VARINT)) {
        Val::Bool(c.varint()? != 0)
    } else {
        Val::Other
    };
    if c.eat(key(6, LEN)) {
        utf8(c.bytes()?)?;
    }
    if c.eat(key(7, VARINT)) {
        c.varint()?;
    }
    c.at_end().then_some(val)
}

/// One `tags` entry: key, then value, nothing else.
#[inline(always)]
fn tag_entry<'a>(f: &mut Fields<'a>, buf: &'a [u8]) -> Option<()> {
    let mut c = Cur { buf, pos: 0 };
    if !c.eat(key(1, LEN)) {
        return None;
    }
    let name = c.bytes()?;
    if !c.eat(key(2, LEN)) {
        return None;
    }
    let value = utf8(c.bytes()?)?;
    if !c.at_end() {
        return None;
    }
    match tag_key(name) {
        Some(k) => f.tags[k] = Some(value),
        None => f.tag(utf8(name)?, value),
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_word_keys_match_exactly_their_labels() {
        for k in MetricKey::ALL {
            assert_eq!(metric_key(k.label().as_bytes()), Some(k), "{k}");
            let mut b = k.label().as_bytes().to_vec();
            for at in 0..b.len() {
                let was = b[at];
                b[at] ^= 0x20;
                assert_eq!(metric_key(&b), None, "{k} changed at {at}");
                b[at] = was;
            }
            b.push(b'x');
            assert_eq!(metric_key(&b), None);
            assert_eq!(metric_key(&b[..b.len() - 2]), None);
        }
        for k in TagKey::ALL {
            assert_eq!(tag_key(k.label().as_bytes()), Some(k), "{k}");
            let mut b = k.label().as_bytes().to_vec();
            for at in 0..b.len() {
                b[at] ^= 0x01;
                assert_eq!(tag_key(&b), None, "{k} changed at {at}");
                b[at] ^= 0x01;
            }
        }
        for s in ["", "abc", "thread_id", "tenant_id", "quality_issues_count_", "a_twenty_five_byte_key__x"] {
            assert_eq!((metric_key(s.as_bytes()), tag_key(s.as_bytes())), (None, None), "{s}");
        }
    }
}
