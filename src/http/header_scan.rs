//! Finds where each request header ends in a client's byte stream, and when one grows too large.
//!
//! The relay feeds it every chunk it reads from the client: it needs to know when a header began (for the
//! header deadline), when one is complete (to connect tiny_http, and for the gate) and when one passes
//! [`MAX_HEADER_BYTES`] (answered with 431), without buffering the stream.

use std::time::Instant;

/// Largest request header accepted: request line and header fields with their line ends. tiny_http would
/// buffer a header line of any length (and reads it a byte at a time through a mutex); the relay stops
/// forwarding past this and answers 431. A Prometheus scrape request is about 300 bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Finds request header ends (`CRLF CRLF`) in the client's byte stream, without buffering it. Bytes after a
/// header end begin the next request's header (only GET and HEAD are served: no request has a body).
pub(super) struct HeaderScan {
    /// When the header in progress began; `None` between requests.
    pub since: Option<Instant>,
    pub bytes: usize,
    /// How much of `\r\n\r\n` the last bytes matched.
    pub matched: u8,
}

/// What a chunk of client bytes did.
pub(super) struct Scanned {
    /// How many bytes of the chunk may be passed on (fewer than all only when the header grew too large:
    /// up to the end of the last complete header).
    pub forward: usize,
    pub completed: bool,
    pub too_large: bool,
}

impl HeaderScan {
    pub fn feed(&mut self, chunk: &[u8], now: Instant) -> Scanned {
        let mut out = Scanned { forward: chunk.len(), completed: false, too_large: false };
        let mut last_end = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if self.since.is_none() {
                *self = HeaderScan { since: Some(now), bytes: 0, matched: 0 };
            }
            self.bytes += 1;
            self.matched = match (self.matched, b) {
                (0 | 2, b'\r') | (1 | 3, b'\n') => self.matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if self.bytes > MAX_HEADER_BYTES {
                out.forward = last_end;
                out.too_large = true;
                return out;
            }
            if self.matched == 4 {
                self.since = None;
                out.completed = true;
                last_end = i + 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> HeaderScan {
        HeaderScan { since: None, bytes: 0, matched: 0 }
    }

    #[test]
    fn header_ends_are_found_across_chunks_and_pipelined() {
        let t = Instant::now();
        let mut s = fresh();
        let r = s.feed(b"GET / HTTP/1.1\r\nHost: x\r", t);
        assert_eq!((r.forward, r.completed, r.too_large), (24, false, false));
        assert_eq!(s.since, Some(t));
        let r = s.feed(b"\n\r", t);
        assert!(!r.completed);
        let r = s.feed(b"\nGET /a HTTP/1.1\r\n\r\nGET", t);
        assert_eq!((r.forward, r.completed, r.too_large), (23, true, false));
        assert_eq!(s.since, Some(t), "the third request has begun");
        assert_eq!(s.bytes, 3);
        // Bare LFs do not end a header (tiny_http needs CRLF), and "\r\r\n\r\n" still does.
        let mut s = fresh();
        assert!(!s.feed(b"GET / HTTP/1.1\n\n", t).completed);
        assert!(s.feed(b"\r\r\n\r\n", t).completed);
        assert_eq!(s.since, None);
    }

    #[test]
    fn header_larger_than_the_limit_stops_after_the_last_complete_one() {
        let t = Instant::now();
        let mut s = fresh();
        let mut chunk = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        chunk.extend(std::iter::repeat_n(b'a', MAX_HEADER_BYTES + 1));
        let r = s.feed(&chunk, t);
        assert_eq!((r.forward, r.completed, r.too_large), (18, true, true), "only the complete request goes on");
        let mut s = fresh();
        let r = s.feed(&vec![b'a'; MAX_HEADER_BYTES], t);
        assert_eq!((r.forward, r.too_large), (MAX_HEADER_BYTES, false), "at the limit is still fine");
        let r = s.feed(b"b", t);
        assert_eq!((r.forward, r.too_large), (0, true));
    }
}
