//! The `/metrics` answer: the exposition in the format the `Accept` header asks for ([`negotiate`]), gzip
//! when the client accepts it, sent in one write.
//!
//! The body is encoded into the request thread's buffer, reused from scrape to scrape; a `Content-Length`
//! is always sent (never chunked encoding).
//!
//! [`negotiate`]: super::negotiate::negotiate

use std::io::Write;
use std::time::Instant;

use log::{debug, error};
use tiny_http::{Header, Method, Request, Response};

use super::negotiate::negotiate;
use crate::metrics::family::Scratch;
use crate::metrics::{encode, Metrics};

/// Exactly what the Prometheus text format 0.0.4 asks for.
pub const CONTENT_TYPE_METRICS: &str = crate::metrics::expo::CONTENT_TYPE;

pub(super) fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("static header")
}

/// Whether the client accepts gzip (RFC 9110, 12.5.3): an explicit `gzip` (or `x-gzip`) coding decides by
/// its weight, else a `*` coding does; weight 0 refuses, and so does a weight that is not a number in
/// [0, 1]. Parameter names are case-insensitive (`Q=0` refuses too).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    let (mut gzip, mut any) = (None::<bool>, None::<bool>);
    for c in accept_encoding.split(',') {
        let mut parts = c.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let acceptable = parts
            .filter_map(|p| p.split_once('='))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .all(|(_, q)| q.trim().parse::<f64>().is_ok_and(|q| q > 0.0 && q <= 1.0));
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding == "*" {
            &mut any
        } else {
            continue;
        };
        // A coding listed twice is accepted if either listing accepts it.
        *slot = Some(slot.unwrap_or(false) || acceptable);
    }
    gzip.or(any).unwrap_or(false)
}

/// The request thread's buffers, reused from scrape to scrape.
#[derive(Default)]
pub struct Buffers {
    pub body: Vec<u8>,
    pub scratch: Scratch,
}

/// `extra`: the web config's headers, sent on every answer.
pub(super) fn respond_metrics(req: Request, metrics: &Metrics, bufs: &mut Buffers, extra: &[Header]) {
    let start = Instant::now();
    let accept = req.headers().iter().find(|h| h.field.equiv("Accept")).map(|h| h.value.as_str());
    let format = negotiate(accept);
    let buf = &mut bufs.body;
    if let Err(e) = encode(metrics, format, &mut bufs.scratch, buf) {
        error!("encoding /metrics failed: {e}");
        let _ = req.respond(Response::from_string(format!("error encoding metrics: {e}\n")).with_status_code(500));
        return;
    }
    metrics.endpoint_duration.observe(start.elapsed().as_secs_f64());
    let gzip =
        req.headers().iter().find(|h| h.field.equiv("Accept-Encoding")).is_some_and(|h| accepts_gzip(h.value.as_str()));
    let mut resp = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(buf.len() / 4), flate2::Compression::fast());
        let body = enc.write_all(buf).and_then(|_| enc.finish());
        match body {
            Ok(b) => Response::from_data(b).with_header(header("Content-Encoding", "gzip")),
            Err(_) => Response::from_data(buf.clone()),
        }
    } else {
        Response::from_data(buf.clone())
    };
    // A Content-Length rather than chunked encoding, whatever the size.
    resp = resp.with_header(header("Content-Type", format.content_type())).with_chunked_threshold(usize::MAX);
    resp = resp.with_header(header("Vary", "Accept, Accept-Encoding"));
    for h in extra {
        resp = resp.with_header(h.clone());
    }
    if let Err(e) = respond_at_once(req, resp) {
        debug!("/metrics response not sent: {e}");
    }
}

/// Sends exactly what `req.respond(resp)` sends, but in one write. `respond` writes the header and then the
/// body in 8 KiB pieces, each a write to the relay's socket that wakes the relay; on busy cores the handler
/// is then preempted mid-answer and may wait a whole time slice of another thread before it writes the
/// rest. Here tiny_http renders the response into memory (its own `raw_print`, with the arguments `respond`
/// passes) and the bytes go out at once; tiny_http reads the connection's next request once the writer is
/// dropped, as after `respond`.
fn respond_at_once(req: Request, resp: Response<std::io::Cursor<Vec<u8>>>) -> std::io::Result<()> {
    let head_only = *req.method() == Method::Head;
    let mut bytes = Vec::with_capacity(resp.data_length().unwrap_or(0) + 512);
    resp.raw_print(&mut bytes, req.http_version().clone(), req.headers(), head_only, None)?;
    let mut writer = req.into_writer();
    writer.write_all(&bytes).and_then(|_| writer.flush()).or_else(|e| match e.kind() {
        // What tiny_http's `respond` ignores too: the client is gone.
        std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::ConnectionRefused
        | std::io::ErrorKind::ConnectionReset => Ok(()),
        _ => Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpStream;
    use std::time::Duration;
    use tiny_http::Server;

    /// The one-write answer is byte for byte what tiny_http's `respond` sends (for GET, HEAD, HTTP/1.0 and a
    /// closing request), and tiny_http goes on to serve the connection's next request afterwards. The client
    /// reads everything up to the server's close, so a body after a HEAD answer would show.
    #[test]
    fn an_answer_written_at_once_is_what_respond_writes() {
        let server = Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let body: Vec<u8> = (0..3000).flat_map(|i| format!("series_{i} {i}\n").into_bytes()).collect();
        let make = || {
            Response::from_data(body.clone())
                .with_header(header("Content-Type", CONTENT_TYPE_METRICS))
                .with_chunked_threshold(usize::MAX)
                .with_header(header("Vary", "Accept-Encoding"))
        };
        let again = "GET /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let sessions = [
            (format!("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n{again}"), 2, "HTTP/1.1 200"),
            (format!("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n{again}"), 2, "HTTP/1.1 200"),
            ("GET /metrics HTTP/1.0\r\n\r\n".to_string(), 1, "HTTP/1.0 200"),
            ("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(), 1, "HTTP/1.1 200"),
        ];
        for (sent, requests, status) in &sessions {
            let mut streams = Vec::new();
            for at_once in [false, true] {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                c.write_all(sent.as_bytes()).unwrap();
                for _ in 0..*requests {
                    let req = server.recv_timeout(Duration::from_secs(5)).unwrap().expect("a request");
                    match (req.url(), at_once) {
                        ("/metrics", true) => respond_at_once(req, make()).unwrap(),
                        ("/metrics", false) => req.respond(make()).unwrap(),
                        _ => req.respond(Response::from_string("ok")).unwrap(),
                    }
                }
                let mut got = Vec::new();
                c.read_to_end(&mut got).unwrap();
                // Without the Date header, which changes by the second.
                let text = String::from_utf8(got).unwrap();
                streams.push(text.split_inclusive("\r\n").filter(|l| !l.starts_with("Date: ")).collect::<String>());
            }
            assert_eq!(streams[0], streams[1], "{sent:?}");
            assert!(streams[0].starts_with(status), "{sent:?}");
            let with_body = !sent.starts_with("HEAD");
            assert_eq!(streams[0].contains("series_2999 2999\n"), with_body, "{sent:?}");
            assert_eq!(streams[0].ends_with("\r\n\r\nok"), *requests == 2, "{sent:?}");
        }
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=1.0, *;q=0.5"));
        assert!(accepts_gzip("GZIP"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip(""));
        assert!(!accepts_gzip("x-gzip-like"));
        // Weights: case-insensitive names, 0 in any spelling refuses, an explicit gzip overrides `*`.
        assert!(!accepts_gzip("gzip;Q=0"));
        assert!(!accepts_gzip("gzip; q=0.000"));
        assert!(!accepts_gzip("gzip;q=0, *"));
        assert!(!accepts_gzip("*, gzip;q=0"));
        assert!(accepts_gzip("*;q=0.1"));
        assert!(!accepts_gzip("*;q=0"));
        assert!(accepts_gzip("gzip;q=0.001"));
        assert!(!accepts_gzip("gzip;q=abc"), "not a weight");
        assert!(!accepts_gzip("gzip;q=2"), "not a weight");
        assert!(accepts_gzip("x-gzip"));
        assert!(accepts_gzip("gzip;level=1"), "other parameters do not matter");
    }
}
