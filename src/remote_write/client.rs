//! One remote-write request over a blocking socket: resolve, connect, TLS when the URL is `https`, write the
//! POST, read the status line and headers (and a little of the body, for the log). Every step waits at most
//! until one deadline, enforced on each read and write ([`Bounded`]), so a receiver that stalls or trickles
//! bytes costs one push, never the pusher thread; and each wait is cut into short slices that look at a
//! stop request, so a push in progress never holds up the shutdown.
//!
//! Each push opens its own connection and closes it (`Connection: close`): a push every few seconds gains
//! nothing from keeping one open, and nothing is left half-read when a push is abandoned.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use openssl::ssl::SslConnector;

use crate::config::remote_write::{Auth, Endpoint};

/// Largest response header read; a receiver's answer is a status line and a few headers.
const MAX_HEAD: usize = 16 * 1024;
/// How much of an error body is kept for the log.
const BODY_SNIPPET: usize = 256;

/// The receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After`, in seconds or as an HTTP date, as a delay from now.
    pub retry_after: Option<Duration>,
    /// The start of the body (error text from the receiver).
    pub body: String,
}

/// Why no answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// Name resolution, connection refused or reset, a malformed answer.
    Network,
    /// The deadline passed.
    Timeout,
    /// The TLS handshake failed (certificate not trusted, host name mismatch, client certificate refused).
    Tls,
    /// A stop was requested while the push was under way.
    Cancelled,
}

/// The longest single wait of a push's steps: between two, the deadline and the stop request are looked at.
const SLICE: Duration = Duration::from_millis(200);
/// The longest single connect attempt (a connect cannot be resumed, only tried again): what a stop request
/// may have to wait for, at most.
const CONNECT_SLICE: Duration = Duration::from_secs(2);

/// When a push must end, and whether a stop was requested meanwhile.
#[derive(Clone, Copy)]
pub struct Limit<'a> {
    pub deadline: Instant,
    pub cancel: &'a dyn Fn() -> bool,
}

impl Limit<'_> {
    /// The time left for one wait (at most `slice`), or why there is none.
    fn wait(&self, slice: Duration) -> Result<Duration, (TransportError, String)> {
        if (self.cancel)() {
            return Err((TransportError::Cancelled, "stopping".into()));
        }
        let d = self.deadline.saturating_duration_since(Instant::now());
        if d.is_zero() {
            Err((TransportError::Timeout, "the push timed out".into()))
        } else {
            Ok(d.min(slice))
        }
    }

    fn io(&self, slice: Duration) -> std::io::Result<Duration> {
        self.wait(slice).map_err(|(kind, why)| {
            let kind = if kind == TransportError::Cancelled {
                std::io::ErrorKind::Interrupted
            } else {
                std::io::ErrorKind::TimedOut
            };
            std::io::Error::new(kind, why)
        })
    }
}

/// A socket whose every read and write ends by the push's deadline (or a stop request): each waits at most
/// a slice, and is tried again while time is left, so a peer that sends a byte now and then cannot stretch
/// a push (as it could with plain socket timeouts, which start again at every byte).
struct Bounded<'a> {
    tcp: TcpStream,
    limit: Limit<'a>,
}

impl std::fmt::Debug for Bounded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded").field("peer", &self.tcp.peer_addr().ok()).finish()
    }
}

impl Bounded<'_> {
    fn again<T>(&mut self, mut op: impl FnMut(&mut TcpStream) -> std::io::Result<T>, read: bool) -> std::io::Result<T> {
        loop {
            let t = self.limit.io(SLICE)?;
            if read { self.tcp.set_read_timeout(Some(t)) } else { self.tcp.set_write_timeout(Some(t)) }?;
            match op(&mut self.tcp) {
                Err(e) if is_timeout(&e) || e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.again(|t| t.read(buf), true)
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.again(|t| t.write(buf), false)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A request to one receiver.
pub struct Client<'a> {
    pub endpoint: &'a Endpoint,
    pub tls: Option<&'a SslConnector>,
    pub auth: &'a Auth,
    pub user_agent: &'a str,
}

impl Client<'_> {
    /// POSTs `body` (a snappy-compressed `WriteRequest`); all of it within `timeout`, or until `cancel` says
    /// a stop was requested.
    pub fn post(
        &self,
        body: &[u8],
        timeout: Duration,
        cancel: &dyn Fn() -> bool,
    ) -> Result<Answer, (TransportError, String)> {
        let limit = Limit { deadline: Instant::now() + timeout, cancel };
        let tcp = connect(self.endpoint, limit)?;
        let mut stream = Bounded { tcp, limit };
        let head = self.head(body.len());
        match (self.endpoint.tls, self.tls) {
            (true, Some(connector)) => {
                let cfg = connector.configure().map_err(|e| (TransportError::Tls, e.to_string()))?;
                let mut tls = match cfg.connect(&self.endpoint.host, &mut stream) {
                    Ok(tls) => tls,
                    Err(e) => {
                        let kind = tls_or_timeout(&e, limit);
                        return Err((kind, format!("TLS handshake with {}: {e}", self.endpoint.host)));
                    }
                };
                exchange(&mut tls, &head, body, limit)
            }
            (true, None) => Err((TransportError::Tls, "no TLS connector for an https URL".into())),
            (false, _) => exchange(&mut stream, &head, body, limit),
        }
    }

    fn head(&self, len: usize) -> Vec<u8> {
        let mut h = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nContent-Type: application/x-protobuf\r\n\
             Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {len}\r\n\
             Connection: close\r\n",
            self.endpoint.target,
            self.endpoint.host_header(),
            self.user_agent
        );
        match self.auth {
            Auth::None => {}
            Auth::Basic(v) => h.push_str(&format!("Authorization: Basic {v}\r\n")),
            Auth::Bearer(v) => h.push_str(&format!("Authorization: Bearer {v}\r\n")),
        }
        h.push_str("\r\n");
        h.into_bytes()
    }
}

/// A failed handshake because the time ran out (or a stop came) is no TLS failure.
fn tls_or_timeout<S>(e: &openssl::ssl::HandshakeError<S>, limit: Limit<'_>) -> TransportError {
    match e {
        openssl::ssl::HandshakeError::Failure(m) if m.error().io_error().is_some() => match limit.wait(SLICE) {
            Err((kind, _)) => kind,
            Ok(_) => TransportError::Network,
        },
        _ => TransportError::Tls,
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// Whether a name lookup is under way in a thread a push gave up waiting for: no second one is started
/// while it is, so a resolver that hangs costs one thread, not one per push.
static RESOLVING: AtomicBool = AtomicBool::new(false);

/// The receiver's addresses: an IP literal at once, a name by the system's resolver in a thread of its own,
/// waited for within the limit.
fn resolve(e: &Endpoint, limit: Limit<'_>) -> Result<Vec<SocketAddr>, (TransportError, String)> {
    if let Ok(ip) = e.host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, e.port)]);
    }
    if RESOLVING.swap(true, Ordering::SeqCst) {
        return Err((TransportError::Timeout, format!("cannot resolve {}: an earlier lookup still hangs", e.host)));
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let target = (e.host.clone(), e.port);
    let spawned = std::thread::Builder::new().name("remote-write-dns".into()).spawn(move || {
        let r = target.to_socket_addrs().map(Iterator::collect::<Vec<_>>);
        RESOLVING.store(false, Ordering::SeqCst);
        let _ = tx.send(r);
    });
    if let Err(err) = spawned {
        RESOLVING.store(false, Ordering::SeqCst);
        return Err((TransportError::Network, format!("cannot resolve {}: {err}", e.host)));
    }
    loop {
        match rx.recv_timeout(limit.wait(SLICE)?) {
            Ok(r) => return r.map_err(|err| (TransportError::Network, format!("cannot resolve {}: {err}", e.host))),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err((TransportError::Network, format!("cannot resolve {}", e.host)))
            }
        }
    }
}

fn connect(e: &Endpoint, limit: Limit<'_>) -> Result<TcpStream, (TransportError, String)> {
    let mut last = (TransportError::Network, format!("{} resolves to no address", e.host));
    for addr in resolve(e, limit)? {
        loop {
            let slice =
                limit.wait(CONNECT_SLICE).map_err(|(k, why)| (k, format!("cannot connect to {addr}: {why}")))?;
            match TcpStream::connect_timeout(&addr, slice) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                // A slice ended, not the push's time: tried again.
                Err(err) if is_timeout(&err) => continue,
                Err(err) => {
                    last = (TransportError::Network, format!("cannot connect to {addr}: {err}"));
                    break;
                }
            }
        }
    }
    Err(last)
}

fn io_error(what: &str, e: std::io::Error) -> (TransportError, String) {
    let kind = match e.kind() {
        // What `Bounded` says when a stop was requested.
        std::io::ErrorKind::Interrupted => TransportError::Cancelled,
        _ if is_timeout(&e) => TransportError::Timeout,
        _ => TransportError::Network,
    };
    (kind, format!("{what}: {e}"))
}

/// Writes the request, reads the answer, on a stream whose reads and writes end by the limit.
fn exchange(
    mut s: impl Read + Write,
    head: &[u8],
    body: &[u8],
    limit: Limit<'_>,
) -> Result<Answer, (TransportError, String)> {
    s.write_all(head).and_then(|()| s.write_all(body)).and_then(|()| s.flush()).map_err(|e| io_error("sending", e))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        limit.wait(SLICE)?;
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err((TransportError::Network, format!("response header larger than {MAX_HEAD} bytes")));
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                return Err((TransportError::Network, "the receiver closed the connection without an answer".into()))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error("reading the answer", e)),
        }
    };
    let mut answer = parse_head(&buf[..head_end], SystemTime::now())
        .ok_or((TransportError::Network, "malformed HTTP answer".to_string()))?;
    // A little of the body, for the log of a refused push; best effort, within the deadline.
    let mut body_bytes = buf[head_end..].to_vec();
    while answer.status >= 300 && body_bytes.len() < BODY_SNIPPET && limit.wait(SLICE).is_ok() {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body_bytes.extend_from_slice(&chunk[..n]),
        }
    }
    body_bytes.truncate(BODY_SNIPPET);
    // Escaped: a receiver's text must not forge log lines (or terminal control sequences).
    answer.body = String::from_utf8_lossy(&body_bytes).trim().escape_debug().to_string();
    Ok(answer)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The status and `Retry-After` of a response header (status line through the blank line).
fn parse_head(head: &[u8], now: SystemTime) -> Option<Answer> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok().filter(|s| (100..600).contains(s))?;
    let retry_after = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| retry_after(v.trim(), now));
    Some(Answer { status, retry_after, body: String::new() })
}

/// `Retry-After`: delay seconds, or an IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`) as a delay from `now`.
fn retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = http_date(v)?;
    let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs(at.saturating_sub(now).max(0) as u64))
}

/// Seconds since the epoch of an IMF-fixdate.
fn http_date(v: &str) -> Option<i64> {
    let mut f = v.split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    if zone != "GMT" || f.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let m = MONTHS.iter().position(|x| *x == month)? as i64 + 1;
    let (d, y): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), Howard Hinnant's algorithm.
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470); // Wed, 21 Oct 2015 07:27:50 GMT
        let a = parse_head(b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\n\r\n", now).unwrap();
        assert_eq!((a.status, a.retry_after), (429, Some(Duration::from_secs(7))));
        let a =
            parse_head(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n", now)
                .unwrap();
        assert_eq!(a.retry_after, Some(Duration::from_secs(10)));
        let past = parse_head(b"HTTP/1.1 503 x\r\nRetry-After: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n", now).unwrap();
        assert_eq!(past.retry_after, Some(Duration::ZERO));
        let a = parse_head(b"HTTP/1.0 204 No Content\r\nRetry-After: soon\r\n\r\n", now).unwrap();
        assert_eq!((a.status, a.retry_after), (204, None));
        assert_eq!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", now), None);
        assert_eq!(parse_head(b"HTTP/1.1 abc\r\n\r\n", now), None);
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date("Tue, 29 Feb 2028 12:00:00 GMT"), Some(1_835_438_400));
        assert_eq!(http_date("Tue, 29 Feb 2028 12:00:00 CET"), None);
    }

    #[test]
    fn the_request_carries_the_protocol_headers_and_the_credentials() {
        let e = Endpoint::parse("http://127.0.0.1:9090/api/v1/write").unwrap();
        let auth = Auth::Bearer("tok-123".into());
        let c = Client { endpoint: &e, tls: None, auth: &auth, user_agent: "dfe/1" };
        let head = String::from_utf8(c.head(42)).unwrap();
        assert_eq!(
            head,
            "POST /api/v1/write HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nUser-Agent: dfe/1\r\n\
             Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
             X-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: 42\r\nConnection: close\r\n\
             Authorization: Bearer tok-123\r\n\r\n"
        );
        assert_eq!(format!("{auth:?}"), "Bearer(***)");
    }
}
