//! The ids a quality event carries for exemplars: the header's `thread_id` and `message_id`, copied into a
//! fixed buffer so the event stays a small `Copy` value (no allocation per record).
//!
//! OpenMetrics limits an exemplar's label set to 128 UTF-8 characters, names included. The labels are
//! `thread_id` (9) and `message_id` (10); the message id is written as lowercase hex of at most its first
//! [`MESSAGE_ID_MAX_BYTES`] bytes (32 characters, a UUID's length); that leaves [`THREAD_ID_MAX`] bytes for the
//! thread id. A longer thread id keeps its first bytes up to a character boundary, at most
//! [`THREAD_ID_KEPT`], then `~` and the 8 hex digits of the FNV-1a 32-bit hash of the whole id, so distinct
//! long ids stay distinct and the same id gives the same label in every replica. Bytes count at least as many
//! as characters, so the limit holds whatever the text.

/// Longest thread id kept as it is (bytes).
pub const THREAD_ID_MAX: usize = 128 - "thread_id".len() - "message_id".len() - 2 * MESSAGE_ID_MAX_BYTES;
/// Bytes of a message id kept (each written as two hex digits).
pub const MESSAGE_ID_MAX_BYTES: usize = 16;
/// Most bytes kept of a longer thread id, before `~` and the 8-digit hash.
pub const THREAD_ID_KEPT: usize = THREAD_ID_MAX - 9;

/// Where the message id starts in [`Ids::bytes`] (the thread id fills the bytes before it).
const MESSAGE_AT: usize = 80;
/// Size of [`Ids::bytes`]: a whole number of u64 words.
pub const IDS_BYTES: usize = MESSAGE_AT + MESSAGE_ID_MAX_BYTES;

/// A thread id (UTF-8, at most [`THREAD_ID_MAX`] bytes) and a message id (raw, at most
/// [`MESSAGE_ID_MAX_BYTES`]); either may be empty.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    bytes: [u8; IDS_BYTES],
    thread_len: u8,
    message_len: u8,
}

impl Default for Ids {
    fn default() -> Self {
        Ids { bytes: [0; IDS_BYTES], thread_len: 0, message_len: 0 }
    }
}

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ids").field("thread_id", &self.thread_id()).field("message_id", &self.message_id()).finish()
    }
}

const _: () = assert!(THREAD_ID_MAX <= MESSAGE_AT && IDS_BYTES % 8 == 0);

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

impl Ids {
    /// The ids of a record, shortened as the module describes.
    pub fn new(thread_id: &str, message_id: &[u8]) -> Ids {
        let mut ids = Ids::default();
        let t = thread_id.as_bytes();
        let thread_len = if t.len() <= THREAD_ID_MAX {
            ids.bytes[..t.len()].copy_from_slice(t);
            t.len()
        } else {
            let mut keep = THREAD_ID_KEPT;
            while !thread_id.is_char_boundary(keep) {
                keep -= 1;
            }
            ids.bytes[..keep].copy_from_slice(&t[..keep]);
            ids.bytes[keep] = b'~';
            let h = fnv1a32(t);
            for i in 0..8 {
                ids.bytes[keep + 1 + i] = HEX[(h >> (28 - 4 * i) & 0xf) as usize];
            }
            keep + 9
        };
        let m = &message_id[..message_id.len().min(MESSAGE_ID_MAX_BYTES)];
        ids.bytes[MESSAGE_AT..MESSAGE_AT + m.len()].copy_from_slice(m);
        ids.thread_len = thread_len as u8;
        ids.message_len = m.len() as u8;
        ids
    }

    pub fn thread_id(&self) -> &str {
        // Built from a &str cut at a character boundary, plus ASCII.
        std::str::from_utf8(&self.bytes[..usize::from(self.thread_len)]).unwrap_or("")
    }

    /// The kept bytes of the message id (raw; written as hex).
    pub fn message_id(&self) -> &[u8] {
        &self.bytes[MESSAGE_AT..MESSAGE_AT + usize::from(self.message_len)]
    }

    pub fn is_empty(&self) -> bool {
        self.thread_len == 0 && self.message_len == 0
    }

    /// The ids as words and a length word, for storage in atomics ([`Ids::from_words`] undoes it).
    pub fn to_words(&self, words: &mut [u64; IDS_BYTES / 8]) -> u64 {
        for (w, chunk) in words.iter_mut().zip(self.bytes.chunks_exact(8)) {
            *w = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
        }
        u64::from(self.thread_len) | u64::from(self.message_len) << 8
    }

    /// The ids stored by [`Ids::to_words`]; `None` when the lengths are not ones it writes.
    pub fn from_words(words: &[u64; IDS_BYTES / 8], lens: u64) -> Option<Ids> {
        let (thread_len, message_len) = ((lens & 0xff) as u8, (lens >> 8 & 0xff) as u8);
        if usize::from(thread_len) > THREAD_ID_MAX || usize::from(message_len) > MESSAGE_ID_MAX_BYTES {
            return None;
        }
        let mut ids = Ids { thread_len, message_len, ..Ids::default() };
        for (chunk, w) in ids.bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        std::str::from_utf8(&ids.bytes[..usize::from(thread_len)]).ok()?;
        Some(ids)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` as lowercase hex.
pub fn push_hex(bytes: &[u8], out: &mut Vec<u8>) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label_chars(ids: &Ids) -> usize {
        let mut hex = Vec::new();
        push_hex(ids.message_id(), &mut hex);
        "thread_id".len() + ids.thread_id().chars().count() + "message_id".len() + hex.len()
    }

    #[test]
    fn short_ids_are_kept_as_they_are() {
        let mid: Vec<u8> = (0u8..16).collect();
        let ids = Ids::new("session-0000000b-3", &mid);
        assert_eq!(ids.thread_id(), "session-0000000b-3");
        assert_eq!(ids.message_id(), &mid[..]);
        let mut hex = Vec::new();
        push_hex(ids.message_id(), &mut hex);
        assert_eq!(hex, b"000102030405060708090a0b0c0d0e0f");
        assert!(Ids::new("", &[]).is_empty());
        assert_eq!(THREAD_ID_MAX, 77);
        let exact = "t".repeat(77);
        assert_eq!(Ids::new(&exact, &mid).thread_id(), exact);
        assert_eq!(label_chars(&Ids::new(&exact, &mid)), 128);
    }

    #[test]
    fn long_ids_are_shortened_within_the_limit() {
        let long = "x".repeat(78);
        let ids = Ids::new(&long, &[0xab; 40]);
        assert_eq!(ids.thread_id(), format!("{}~{:08x}", "x".repeat(68), fnv1a32(long.as_bytes())));
        assert_eq!(ids.message_id(), &[0xab; 16][..]);
        assert!(label_chars(&ids) <= 128);
        assert_ne!(Ids::new(&"y".repeat(100), &[]).thread_id(), Ids::new(&"y".repeat(101), &[]).thread_id());
        // A multi-byte character across the cut is left out whole.
        let wide = format!("{}é{}", "a".repeat(67), "b".repeat(40));
        let t = Ids::new(&wide, &[]);
        assert!(t.thread_id().starts_with(&format!("{}~", "a".repeat(67))), "{}", t.thread_id());
        assert_eq!(t.thread_id().len(), 67 + 9);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c, "FNV-1a 32 of \"a\"");
    }

    #[test]
    fn words_round_trip() {
        let ids = Ids::new("ünïcode-thread", b"\x01\x02\xff");
        let mut words = [0; IDS_BYTES / 8];
        let lens = ids.to_words(&mut words);
        assert_eq!(Ids::from_words(&words, lens), Some(ids));
        assert_eq!(Ids::from_words(&words, 200), None);
    }
}
