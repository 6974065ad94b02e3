//! The request head as the relay sees it: where it ends in the client's byte stream, and whether it is
//! passed on to tiny_http or refused at the door.
//!
//! tiny_http reads a request body of any announced length (and allocates it to skip it when the request is
//! dropped), queues every pipelined request, and leaves an HTTP version it does not speak unanswered until
//! its idle timeout. So the relay parses each head itself (httparse) and forwards exactly one request at a
//! time in a form tiny_http handles safely: origin-form target, no body, no hop-by-hop headers,
//! `Connection: close`, and the client's address in [`PEER_HEADER`]. Everything else is refused here with
//! the status HTTP has for it.

use std::io::Write;
use std::net::IpAddr;

/// Largest request head accepted: request line and header fields with their line ends (and any empty lines
/// before the request line). A Prometheus scrape request is about 300 bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Most header fields in one request; more are answered 431 like an oversized head.
const MAX_HEADERS: usize = 100;

/// The header in which the relay tells the request handlers the client's address (for the per-client
/// limit on failed logins). A client's own header of this name is dropped, so the value is always the
/// relay's.
pub const PEER_HEADER: &str = "X-Dashflow-Exporter-Peer";

/// Where the first request head in the bytes received stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Not complete yet; `searched` bytes need not be searched again.
    Partial { searched: usize },
    /// Complete: the head is `start..end` (`start` skips empty lines sent before the request line).
    Head { start: usize, end: usize },
    /// Longer than [`MAX_HEADER_BYTES`] without an end.
    TooLarge,
}

/// Finds the first request head in `inbox`, whose first `searched` bytes are known to hold no head end.
/// Empty lines before the request line are skipped (RFC 9112, 2.2) but count towards the size limit, so a
/// client that trickles empty lines never completes a head.
pub fn find_head(inbox: &[u8], searched: usize) -> Found {
    let start = inbox.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(inbox.len());
    let from = searched.saturating_sub(3).max(start);
    match inbox[from..].windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) if from + i + 4 <= MAX_HEADER_BYTES => Found::Head { start, end: from + i + 4 },
        Some(_) => Found::TooLarge,
        None if inbox.len() > MAX_HEADER_BYTES => Found::TooLarge,
        None => Found::Partial { searched: inbox.len() },
    }
}

crate::table::label_enum! {
    /// Why the relay answered a request itself and closed the connection.
    pub enum Refusal {
        /// 400: a head httparse cannot parse, a malformed `Content-Length`, or a target that is neither
        /// origin-form, absolute-form nor `*`.
        BadRequest => "bad_request",
        /// 413: a request that announces a body (`Content-Length` other than 0, or any `Transfer-Encoding`):
        /// every endpoint is GET or HEAD.
        RequestBody => "request_body",
        /// 431: a head over [`MAX_HEADER_BYTES`] or with more than 100 fields.
        HeaderTooLarge => "header_too_large",
        /// 505: an HTTP version other than 1.0 and 1.1.
        HttpVersion => "http_version",
    }
}

impl Refusal {
    /// The whole answer, closing the connection.
    pub fn answer(self) -> Vec<u8> {
        let (status, text) = match self {
            Refusal::BadRequest => ("400 Bad Request", "malformed request\n"),
            Refusal::RequestBody => ("413 Content Too Large", "request bodies are not accepted\n"),
            Refusal::HeaderTooLarge => ("431 Request Header Fields Too Large", "request header larger than 8 KiB\n"),
            Refusal::HttpVersion => ("505 HTTP Version Not Supported", "only HTTP/1.0 and HTTP/1.1 are served\n"),
        };
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{text}",
            text.len()
        )
        .into_bytes()
    }
}

/// Headers that concern one hop, or that the relay owns: never passed on to tiny_http.
const DROPPED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "content-length",
    "transfer-encoding",
    PEER_HEADER,
];

/// Checks one request head (as [`find_head`] delimited it) and writes into `out` the head passed on to
/// tiny_http. Returns whether the client's connection closes after the answer (HTTP/1.0, or
/// `Connection: close`).
pub fn examine(head: &[u8], peer: Option<IpAddr>, out: &mut Vec<u8>) -> Result<bool, Refusal> {
    check_version(head)?;
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::HeaderTooLarge),
        _ => return Err(Refusal::BadRequest),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Refusal::BadRequest);
    };
    let target = origin_form(target)?;
    // tiny_http takes header values as ASCII text only (it would close without an answer): refused here.
    if req.headers.iter().any(|h| h.value.iter().any(|b| !(b.is_ascii_graphic() || *b == b' ' || *b == b'\t'))) {
        return Err(Refusal::BadRequest);
    }
    let mut close = minor == 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match h.value.trim_ascii() {
                b"0" => {}
                v if !v.is_empty() && v.iter().all(u8::is_ascii_digit) => return Err(Refusal::RequestBody),
                _ => return Err(Refusal::BadRequest),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Refusal::RequestBody);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h.value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    out.clear();
    // Writes into a Vec cannot fail.
    let _ = write!(out, "{method} {target} HTTP/1.{minor}\r\n");
    for h in req.headers.iter().filter(|h| !DROPPED.iter().any(|d| h.name.eq_ignore_ascii_case(d))) {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n");
    if let Some(ip) = peer {
        let _ = write!(out, "{PEER_HEADER}: {ip}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(close)
}

/// 505 for a request line that names an HTTP version other than 1.0 and 1.1 (`HTTP/2.0`, `HTTP/3`), before
/// httparse, which knows only 1.x, calls it malformed.
fn check_version(head: &[u8]) -> Result<(), Refusal> {
    let line = head.split(|b| *b == b'\r' || *b == b'\n').next().unwrap_or(b"");
    let version = line.rsplit(|b| *b == b' ').next().unwrap_or(b"");
    let Some(number) = version.strip_prefix(b"HTTP/") else { return Ok(()) };
    let looks_like_a_version = match number {
        [major] => major.is_ascii_digit(),
        [major, b'.', minor] => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    };
    match number {
        b"1.0" | b"1.1" => Ok(()),
        _ if looks_like_a_version => Err(Refusal::HttpVersion),
        _ => Ok(()), // httparse refuses it as malformed
    }
}

/// The target in origin form: an absolute-form URI (`http://host:port/path?q`, as a client talking to a
/// proxy sends it; RFC 9112, 3.2.2 says a server must accept it) loses its scheme and authority; `*` and
/// origin form stay; authority form and anything else is refused.
fn origin_form(target: &str) -> Result<&str, Refusal> {
    if target.starts_with('/') || target == "*" {
        return Ok(target);
    }
    let scheme_end = target.find("://").ok_or(Refusal::BadRequest)?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(Refusal::BadRequest);
    }
    let rest = &target[scheme_end + 3..];
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => Ok(&rest[i..]),
        // `http://host?q` and `http://host` both mean the root.
        _ => Ok("/"),
    }
}

/// Marks an answer of tiny_http's as the last on its connection: `Connection: close` after the status line
/// (HTTP/1.1 answers only; for 1.0 closing is the default).
pub fn mark_last(answer: &mut Vec<u8>) {
    if answer.starts_with(b"HTTP/1.1 ") {
        if let Some(i) = answer.windows(2).position(|w| w == b"\r\n") {
            answer.splice(i + 2..i + 2, b"Connection: close\r\n".iter().copied());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(head: &str) -> (String, bool) {
        let mut out = Vec::new();
        let close = examine(head.as_bytes(), Some("192.0.2.7".parse().unwrap()), &mut out).unwrap();
        (String::from_utf8(out).unwrap(), close)
    }

    fn refused(head: &str) -> Refusal {
        examine(head.as_bytes(), None, &mut Vec::new()).unwrap_err()
    }

    #[test]
    fn heads_are_found_after_empty_lines_and_never_made_of_them() {
        assert_eq!(find_head(b"", 0), Found::Partial { searched: 0 });
        assert_eq!(find_head(b"\r\n\r\n\r\n\r\n", 0), Found::Partial { searched: 8 }, "empty lines only");
        assert_eq!(find_head(b"\r\nGET / HTTP/1.1\r\n\r\nGET", 0), Found::Head { start: 2, end: 20 });
        assert_eq!(find_head(b"GET / HTTP/1.1\r\nHost: x\r", 0), Found::Partial { searched: 24 });
        // Searching again from where the last search stopped still finds an end split across reads.
        assert_eq!(find_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 24), Found::Head { start: 0, end: 27 });
        // Bare LFs end nothing (tiny_http needs CRLF).
        assert_eq!(find_head(b"GET / HTTP/1.1\n\n", 0), Found::Partial { searched: 16 });
    }

    #[test]
    fn the_size_limit_counts_every_byte_of_the_head() {
        let mut at_limit = b"GET / HTTP/1.1\r\nX: ".to_vec();
        at_limit.resize(MAX_HEADER_BYTES - 4, b'a');
        at_limit.extend_from_slice(b"\r\n\r\n");
        assert_eq!(find_head(&at_limit, 0), Found::Head { start: 0, end: MAX_HEADER_BYTES });
        let mut over = b"\r\n".to_vec();
        over.extend_from_slice(&at_limit);
        assert_eq!(find_head(&over, 0), Found::TooLarge, "leading empty lines count");
        assert_eq!(find_head(&vec![b'a'; MAX_HEADER_BYTES], 0), Found::Partial { searched: MAX_HEADER_BYTES });
        assert_eq!(find_head(&vec![b'a'; MAX_HEADER_BYTES + 1], 0), Found::TooLarge);
        assert_eq!(find_head(&vec![b'\n'; MAX_HEADER_BYTES + 1], 0), Found::TooLarge);
    }

    #[test]
    fn a_scrape_is_passed_on_with_connection_close_and_the_peer() {
        let (head, close) = pass(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\nConnection: keep-alive\r\n\
             X-Dashflow-Exporter-Peer: 10.0.0.1\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(
            head,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\nConnection: close\r\n\
             X-Dashflow-Exporter-Peer: 192.0.2.7\r\n\r\n"
        );
        assert!(!close);
        assert!(pass("GET / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n").1);
        assert!(pass("GET / HTTP/1.0\r\n\r\n").1, "HTTP/1.0 closes");
        let (head, _) = pass("HEAD /-/ready HTTP/1.0\r\nTE: trailers\r\nExpect: 100-continue\r\nUpgrade: h2c\r\n\r\n");
        assert_eq!(head, "HEAD /-/ready HTTP/1.0\r\nConnection: close\r\nX-Dashflow-Exporter-Peer: 192.0.2.7\r\n\r\n");
    }

    #[test]
    fn absolute_form_targets_are_served_as_origin_form() {
        assert!(pass("GET http://exporter:9190/metrics?x=1 HTTP/1.1\r\n\r\n").0.starts_with("GET /metrics?x=1 HTTP"));
        assert!(pass("GET HTTPS://exporter HTTP/1.1\r\n\r\n").0.starts_with("GET / HTTP/1.1"));
        assert!(pass("GET http://exporter?q HTTP/1.1\r\n\r\n").0.starts_with("GET / HTTP/1.1"));
        assert!(pass("OPTIONS * HTTP/1.1\r\n\r\n").0.starts_with("OPTIONS * HTTP/1.1"));
        assert_eq!(refused("GET ftp://exporter/metrics HTTP/1.1\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(refused("CONNECT exporter:9190 HTTP/1.1\r\n\r\n"), Refusal::BadRequest);
    }

    #[test]
    fn bodies_versions_and_malformed_heads_are_refused() {
        for cl in ["99999999999999", "18446744073709551615", "1", "00001"] {
            assert_eq!(refused(&format!("GET / HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n")), Refusal::RequestBody);
        }
        assert_eq!(refused("POST / HTTP/1.1\r\ncontent-length:  7 \r\n\r\n"), Refusal::RequestBody);
        assert_eq!(refused("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Refusal::RequestBody);
        assert_eq!(refused("GET / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"), Refusal::RequestBody);
        for cl in ["-1", "1e3", "", "0x10", "0, 0"] {
            assert_eq!(
                refused(&format!("GET / HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n")),
                Refusal::BadRequest,
                "{cl}"
            );
        }
        assert_eq!(refused("GET / HTTP/2.0\r\n\r\n"), Refusal::HttpVersion);
        assert_eq!(refused("GET / HTTP/3\r\n\r\n"), Refusal::HttpVersion);
        assert_eq!(refused("GET / HTTP/0.9\r\n\r\n"), Refusal::HttpVersion);
        assert_eq!(refused("GET / HTTP/1.12\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(refused("GET / HTTP/x.y\r\n\r\n"), Refusal::BadRequest, "no version at all");
        assert_eq!(refused("GET /\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(refused("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(refused("\u{1}\u{2}\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(
            examine(b"GET / HTTP/1.1\r\nX-Bin: \xff\xfe\r\n\r\n", None, &mut Vec::new()),
            Err(Refusal::BadRequest)
        );
        assert_eq!(examine(b"\xff\xfe\r\n\r\n", None, &mut Vec::new()), Err(Refusal::BadRequest));
        let many: String = (0..101).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(refused(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Refusal::HeaderTooLarge);
        let hundred: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        assert!(examine(format!("GET / HTTP/1.1\r\n{hundred}\r\n").as_bytes(), None, &mut Vec::new()).is_ok());
    }

    #[test]
    fn refusals_are_complete_answers() {
        for r in Refusal::ALL {
            let a = String::from_utf8(r.answer()).unwrap();
            let (head, body) = a.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("Content-Length: {}", body.len())), "{a}");
            assert!(head.ends_with("Connection: close"), "{a}");
        }
        assert!(String::from_utf8(Refusal::RequestBody.answer()).unwrap().starts_with("HTTP/1.1 413 "));
    }

    #[test]
    fn the_last_answer_says_so() {
        let mut a = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
        mark_last(&mut a);
        assert_eq!(a, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        let mut a = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
        mark_last(&mut a);
        assert_eq!(a, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
}
