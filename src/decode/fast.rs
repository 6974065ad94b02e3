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
use crate::decode::wire::is_ascii_short;

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

    /// The bytes after a varint's first (at most nine more; the last may only be 0 or 1).
    #[inline(never)]
    fn varint_rest(&mut self, first: u8) -> Option<u64> {
        let rest = self.buf.get(self.pos..)?;
        let mut v = u64::from(first & 0x7f);
        for (i, &b) in rest.iter().take(9).enumerate() {
            if i == 8 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * (i + 1));
            if b < 0x80 {
                self.pos += i + 1;
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

/// A string field's bytes as `&str`, checked as prost checks it (short ASCII strings word by word inline).
#[inline(always)]
fn utf8(b: &[u8]) -> Option<&str> {
    if b.len() <= 32 && is_ascii_short(b) {
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

/// The signature of `b`, or `None` outside 4..=24 bytes (no known key is that long or short): at run time,
/// three (or two) word loads.
#[inline(always)]
fn sig(b: &[u8]) -> Option<Sig> {
    let n = b.len();
    let w8 = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let w4 = |at: usize| u64::from(u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")));
    if (8..=24).contains(&n) {
        Some(Sig(n, w8(0), w8((n - 8).min(8)), w8(n - 8)))
    } else if (4..8).contains(&n) {
        Some(Sig(n, w4(0), w4(n - 4), 0))
    } else {
        None
    }
}

/// [`sig`] at compile time, for the key tables.
const fn const_sig(b: &[u8]) -> Option<Sig> {
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
    match const_sig(s.as_bytes()) {
        Some(s) => s,
        None => panic!("a known key is 4 to 24 bytes long"),
    }
}

/// Most keys of one table that share a length.
const SAME_LEN: usize = 3;
const NONE: u8 = u8::MAX;

/// A key table: each key's signature, and for each length (up to 24) the keys of that length.
struct Table {
    sigs: &'static [Sig],
    by_len: [[u8; SAME_LEN]; 25],
}

const fn table(labels: &'static [&'static str], sigs: &'static [Sig]) -> Table {
    let mut by_len = [[NONE; SAME_LEN]; 25];
    let mut i = 0;
    while i < labels.len() {
        let n = labels[i].len();
        let mut k = 0;
        while by_len[n][k] != NONE {
            k += 1; // more than SAME_LEN keys of one length fail to compile here
        }
        by_len[n][k] = i as u8;
        i += 1;
    }
    Table { sigs, by_len }
}

const METRIC_LABELS: [&str; MetricKey::COUNT] = {
    let mut t = [""; MetricKey::COUNT];
    let mut i = 0;
    while i < MetricKey::COUNT {
        t[i] = MetricKey::ALL[i].label();
        i += 1;
    }
    t
};
const METRIC_SIGS: [Sig; MetricKey::COUNT] = {
    let mut t = [Sig(0, 0, 0, 0); MetricKey::COUNT];
    let mut i = 0;
    while i < MetricKey::COUNT {
        t[i] = sig_of(METRIC_LABELS[i]);
        i += 1;
    }
    t
};
const METRICS: Table = table(&METRIC_LABELS, &METRIC_SIGS);

const TAG_LABELS: [&str; TagKey::COUNT] = {
    let mut t = [""; TagKey::COUNT];
    let mut i = 0;
    while i < TagKey::COUNT {
        t[i] = TagKey::ALL[i].label();
        i += 1;
    }
    t
};
const TAG_SIGS: [Sig; TagKey::COUNT] = {
    let mut t = [Sig(0, 0, 0, 0); TagKey::COUNT];
    let mut i = 0;
    while i < TagKey::COUNT {
        t[i] = sig_of(TAG_LABELS[i]);
        i += 1;
    }
    t
};
const TAGS: Table = table(&TAG_LABELS, &TAG_SIGS);

impl Table {
    /// The index of the key `b` spells exactly, if any: at most [`SAME_LEN`] whole-signature compares.
    #[inline(always)]
    fn find(&self, b: &[u8]) -> Option<usize> {
        let s = sig(b)?;
        for i in self.by_len[s.0] {
            if i == NONE {
                return None;
            }
            if self.sigs[usize::from(i)] == s {
                return Some(usize::from(i));
            }
        }
        None
    }
}

/// The metric key `b` spells exactly, if any.
#[inline(always)]
fn metric_key(b: &[u8]) -> Option<MetricKey> {
    METRICS.find(b).map(|i| MetricKey::ALL[i])
}

/// The tag key `b` spells exactly, if any.
#[inline(always)]
fn tag_key(b: &[u8]) -> Option<TagKey> {
    TAGS.find(b).map(|i| TagKey::ALL[i])
}

/// Keys as written on the wire: field number << 3 | wire type.
const fn key(field: u8, wire: u8) -> u8 {
    field << 3 | wire
}
const LEN: u8 = 2;

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
    Some(match f.view() {
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

/// A varint at the start of `b`: its value and length (prost's rule for the tenth byte).
#[inline(always)]
fn varint_at(b: &[u8]) -> Option<(u64, usize)> {
    match b {
        [x, ..] if *x < 0x80 => Some((u64::from(*x), 1)),
        _ => {
            let mut c = Cur { buf: b, pos: 0 };
            let v = c.varint()?;
            Some((v, c.pos))
        }
    }
}

/// A map entry `[key: string = 1, value = 2]` laid out key then value, each with a one-byte length, and
/// nothing after the value: (key bytes, value bytes).
#[inline(always)]
fn entry(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let [0x0a, kl, rest @ ..] = buf else { return None };
    let kl = usize::from(*kl);
    if kl >= 0x80 || rest.len() < kl + 2 {
        return None;
    }
    let (name, rest) = rest.split_at(kl);
    let [0x12, vl, value @ ..] = rest else { return None };
    (*vl < 0x80 && usize::from(*vl) == value.len()).then_some((name, value))
}

/// One `metrics` entry: key, then value, nothing else.
#[inline(always)]
fn metric_entry<'a>(f: &mut Fields<'a>, buf: &'a [u8]) -> Option<()> {
    let (name, value) = entry(buf)?;
    let val = metric_value(value)?;
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
    let (val, rest) = match buf {
        [0x11, a, b, c, d, e, f, g, h, rest @ ..] => {
            (Val::Float(f64::from_bits(u64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]))), rest)
        }
        [0x08, rest @ ..] => {
            let (v, n) = varint_at(rest)?;
            (Val::Int(v as i64), &rest[n..])
        }
        [0x20, rest @ ..] => {
            let (v, n) = varint_at(rest)?;
            (Val::Bool(v != 0), &rest[n..])
        }
        _ => (Val::Other, buf),
    };
    let rest = match rest {
        [0x32, ul, unit @ ..] if *ul < 0x80 && usize::from(*ul) <= unit.len() => {
            let (unit, rest) = unit.split_at(usize::from(*ul));
            utf8(unit)?;
            rest
        }
        _ => rest,
    };
    match rest {
        [] => Some(val),
        [0x38, t] if *t < 0x80 => Some(val),
        [0x38, t @ ..] => {
            let (_, n) = varint_at(t)?;
            (n == t.len()).then_some(val)
        }
        _ => None,
    }
}

/// One `tags` entry: key, then value, nothing else.
#[inline(always)]
fn tag_entry<'a>(f: &mut Fields<'a>, buf: &'a [u8]) -> Option<()> {
    let (name, value) = entry(buf)?;
    let value = utf8(value)?;
    match tag_key(name) {
        Some(k) => f.tags[k] = Some(value),
        None => f.other_tag(utf8(name)?, value),
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::decode::message::classify;
    use crate::proto::DashStreamMessage;

    /// A `metrics` branch around `body` (a one-byte length), as a whole message.
    fn message(body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 0x80);
        [&[0x32, body.len() as u8][..], body].concat()
    }

    /// The fast path's reading of `msg` (`None`: left to the in-place reader) and whether prost accepts it,
    /// after checking that whatever the fast path reads is what prost reads and that the in-place reader agrees
    /// with prost.
    fn fast(msg: &[u8]) -> (Option<String>, bool) {
        let prost = DashStreamMessage::decode(msg).map(|m| format!("{:?}", classify(&m)));
        let slow = crate::decode::message::scan(msg).map(|d| format!("{d:?}"));
        assert_eq!(slow.as_ref().ok(), prost.as_ref().ok(), "in-place reader and prost on {msg:02x?}");
        let fast = scan(msg).map(|d| format!("{d:?}"));
        if let Some(f) = &fast {
            assert_eq!(Some(f), prost.as_ref().ok(), "fast path and prost on {msg:02x?}");
        }
        (fast, prost.is_ok())
    }

    /// A length-delimited field: key byte, one-byte length, bytes.
    fn field(key: u8, bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 0x80);
        [&[key, bytes.len() as u8][..], bytes].concat()
    }

    const SCOPE: &[u8] = &[0x12, 7, b'q', b'u', b'a', b'l', b'i', b't', b'y'];

    #[test]
    fn unusual_layouts_fall_back_and_usual_ones_read_as_prost_does() {
        let score = |value: &[u8]| field(0x22, &[field(0x0a, b"quality_score"), field(0x12, value)].concat());
        let float = [&[0x11][..], &0.5f64.to_le_bytes()].concat();
        let read = |extra: &[u8]| fast(&message(&[SCOPE, extra].concat()));
        let usual = |extra: &[u8]| read(extra).0;
        // Unusual but valid: prost accepts, the fast path leaves it to the in-place reader.
        let unusual = |extra: &[u8]| read(extra) == (None, true);
        // Malformed: prost refuses, the fast path does not read it.
        let malformed = |extra: &[u8]| read(extra) == (None, false);
        // The usual layouts: a float with unit and type, a type alone as a long varint, a bool as a long varint.
        let unit = [&float[..], &field(0x32, b"ratio"), &[0x38, 2]].concat();
        assert!(usual(&score(&unit)).is_some_and(|d| d.contains("quality_score: 0.5")));
        assert!(usual(&score(&[0x38, 0x82, 0x01])).is_some(), "a type as a two-byte varint, no value");
        let bools = usual(&[&score(&[0x20, 0x80, 0x01])[..], &score(&unit)].concat());
        assert!(bools.is_some_and(|d| d.contains("type_mismatch: KeySet(0)")), "a later entry replaces an earlier one");
        assert!(unusual(&score(&[&float[..], &[0x08, 3]].concat())), "two variants: the last wins");
        assert!(unusual(&score(&[&[0x38, 2][..], &float].concat())), "type before the value");
        assert!(unusual(&score(&[&float[..], &[0x32, 0x85, 0x00], b"ratio"].concat())), "a two-byte unit length");
        assert!(unusual(&field(0x22, &[field(0x12, &float), field(0x0a, b"quality_score")].concat())), "value first");
        let key_len = [&[0x0a, 0x8d, 0x00][..], b"quality_score", &field(0x12, &float)].concat();
        assert!(unusual(&field(0x22, &key_len)), "a two-byte key length");
        let tag = [&field(0x0a, b"model")[..], &[0x12, 0x83, 0x00], b"gpt"].concat();
        assert!(unusual(&field(0x2a, &tag)), "a two-byte tag value length");
        assert!(unusual(&field(0x22, &field(0x12, &float))), "an entry without its key");
        assert!(unusual(&[0x30, 0x01]), "an unknown field of Metrics");
        assert_eq!(fast(&[message(SCOPE), message(SCOPE)].concat()), (None, true), "the metrics branch twice");
        assert_eq!(fast(&[&message(SCOPE)[..], &[0x0a, 0x00]].concat()), (None, true), "another branch after it");
        // A repeated header merges, as prost merges it; a non-canonical two-byte branch length reads the same.
        let two = usual(&[field(0x0a, &[0x22, 1, b'a', 0x10, 5]), field(0x0a, &[0x22, 1, b'b'])].concat());
        assert!(two.is_some_and(|d| d.contains("session_id: \"b\"") && d.contains("timestamp_us: 5")));
        assert!(fast(&[&[0x32, 0x89, 0x00][..], SCOPE].concat()).0.is_some());
        // Malformed records are never read by the fast path.
        assert!(malformed(&field(0x1a, &[0xc3, 0x28])), "invalid UTF-8 in the scope id");
        assert!(malformed(&score(&[0x11, 1, 2, 3])), "a cut float");
        assert!(
            malformed(&score(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])),
            "a varint past 64 bits"
        );
        assert!(malformed(&[0x22, 0x05, 0x0a, 0x01]), "an entry longer than the message");
    }

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
