//! The HTTP side: `/metrics`, `/`, `/-/healthy`, `/-/ready` over tiny_http, behind a connection gate.
//!
//! tiny_http parses requests on a thread per open connection and sets no socket timeouts, so an idle or slow
//! client would hold a thread forever and enough of them would exhaust the process. The gate owns the public
//! TCP listener: it admits at most `METRICS_MAX_CONNECTIONS` connections at once (others get an immediate
//! 503 and are closed), and relays each admitted one to tiny_http over a private, abstract Unix socket,
//! closing it once it has been idle for `METRICS_HTTP_TIMEOUT_SECS`. Threads stay bounded: two per admitted
//! connection (relay + tiny_http) plus the fixed request handlers.
//!
//! With `--web.config.file` ([`crate::webconfig`]) the relay terminates TLS (handshake bounded by the same
//! timeout, client certificates checked per `client_auth_type`) and the request handlers demand basic auth.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use openssl::ssl::{ErrorCode, HandshakeError, SslAcceptor, SslStream};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::config::HttpConfig;
use crate::metrics::{encode_text, Metrics};
use crate::shutdown::{Lifecycle, RateLimit};
use crate::webconfig::{check_basic_auth, WebState};

/// Exactly what the Prometheus text format 0.0.4 asks for.
pub const CONTENT_TYPE_METRICS: &str = "text/plain; version=0.0.4";

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The request side: tiny_http and the web config (basic auth users) the handlers check.
pub struct Backend {
    pub server: Server,
    pub web: Option<Arc<WebState>>,
}

impl std::ops::Deref for Backend {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

/// The bound HTTP side: the public listener (gate) and tiny_http behind it.
pub struct HttpServer {
    /// Never dropped: tiny_http's `Drop` unwraps a filesystem path and panics on an abstract socket address.
    /// Its accept thread ends with the process.
    pub server: std::mem::ManuallyDrop<Backend>,
    listener: TcpListener,
    backend: UnixAddr,
    pub addr: SocketAddr,
    max_connections: usize,
    timeout: Duration,
    active: Arc<AtomicUsize>,
}

/// Binds the public listener and starts tiny_http on a private abstract Unix socket.
pub fn bind(cfg: &HttpConfig) -> Result<HttpServer, BindError> {
    let addr = SocketAddr::new(cfg.bind_ip, cfg.port);
    let err = |e: Box<dyn std::error::Error + Send + Sync>| BindError { addr, source: e };
    let web = match &cfg.web_config_file {
        None => None,
        Some(path) => {
            let state = WebState::new(path).map_err(|e| err(Box::new(e)))?;
            info!("web config {}: {}", path.display(), state.current().config.summary());
            Some(Arc::new(state))
        }
    };
    let listener = TcpListener::bind(addr).map_err(|e| err(Box::new(e)))?;
    let addr = listener.local_addr().map_err(|e| err(Box::new(e)))?;
    listener.set_nonblocking(true).map_err(|e| err(Box::new(e)))?;
    let name = format!("dashflow-prometheus-exporter/{}/{}", std::process::id(), addr.port());
    let backend = UnixAddr::from_abstract_name(name.as_bytes()).map_err(|e| err(Box::new(e)))?;
    let unix = UnixListener::bind_addr(&backend).map_err(|e| err(Box::new(e)))?;
    let server = Server::from_listener(unix, None).map_err(err)?;
    Ok(HttpServer {
        server: std::mem::ManuallyDrop::new(Backend { server, web }),
        listener,
        backend,
        addr,
        max_connections: cfg.max_connections,
        timeout: cfg.timeout,
        active: Arc::new(AtomicUsize::new(0)),
    })
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\ntoo many connections, try again\n";

impl HttpServer {
    /// Connections currently admitted.
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Accepts connections until a stop is requested.
    pub fn run_gate(&self, metrics: &Metrics, life: &Lifecycle) {
        let busy_log = RateLimit::new(Duration::from_secs(10));
        if let Some(Err(e)) = self.server.web.as_ref().map(|w| w.register(&metrics.registry)) {
            warn!("web config metrics not registered: {e}");
        }
        // Refused connections linger briefly (answer sent, write side shut) so that closing them with unread
        // request bytes does not reset the connection before the client has read the 503.
        let mut lingering: VecDeque<(TcpStream, Instant)> = VecDeque::new();
        while !life.http_stop_requested() {
            reap(&mut lingering);
            match self.listener.accept() {
                Ok((tcp, peer)) => {
                    if self.active.load(Ordering::SeqCst) < self.max_connections {
                        self.admit(tcp);
                        continue;
                    }
                    metrics.http_rejected.inc();
                    if let Some(n) = busy_log.check() {
                        warn!("http: refusing {peer}: {} connections open ({n} more refused)", self.max_connections);
                    }
                    if tcp.set_nonblocking(true).is_ok() {
                        drain(&tcp);
                        let _ = (&tcp).write(BUSY);
                        let _ = tcp.shutdown(Shutdown::Write);
                        if lingering.len() >= 1024 {
                            lingering.pop_front();
                        }
                        lingering.push_back((tcp, Instant::now() + Duration::from_millis(500)));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    wait_readable(&self.listener, if lingering.is_empty() { 200 } else { 20 })
                }
                Err(e) => {
                    debug!("http accept: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    fn admit(&self, tcp: TcpStream) {
        let backend = match UnixStream::connect_addr(&self.backend) {
            Ok(b) => b,
            Err(e) => {
                error!("http: cannot reach the request handler: {e}");
                return;
            }
        };
        let active = self.active.clone();
        active.fetch_add(1, Ordering::SeqCst);
        let timeout = self.timeout;
        let web = self.server.web.clone();
        let spawned = std::thread::Builder::new().name("http-conn".into()).spawn(move || {
            relay(tcp, backend, timeout, web.as_deref());
            active.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            self.active.fetch_sub(1, Ordering::SeqCst);
            error!("http: cannot start a connection thread: {e}");
        }
    }
}

/// Reads and discards what a non-blocking socket has buffered; true once the peer has closed.
fn drain(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match (&*tcp).read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Closes refused connections whose peer has closed or whose grace period is over.
fn reap(lingering: &mut VecDeque<(TcpStream, Instant)>) {
    let now = Instant::now();
    lingering.retain(|(tcp, until)| !drain(tcp) && now < *until);
}

fn wait_readable(fd: &impl AsRawFd, ms: i32) {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// The client side of a relayed connection: plain TCP, or TLS over it. The socket is non-blocking.
enum Client {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Client {
    fn tcp(&self) -> &TcpStream {
        match self {
            Client::Plain(t) => t,
            Client::Tls(s) => s.get_ref(),
        }
    }
    /// Decrypted bytes already buffered (poll(2) cannot see them).
    fn pending(&self) -> usize {
        match self {
            Client::Plain(_) => 0,
            Client::Tls(s) => s.ssl().pending(),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Client::Plain(t) => t.read(buf),
            Client::Tls(s) => s.read(buf),
        }
    }
    /// Writes everything or fails; waits for the socket at most until `deadline`.
    fn write_all(&mut self, mut data: &[u8], deadline: Instant) -> std::io::Result<()> {
        while !data.is_empty() {
            let r = match self {
                Client::Plain(t) => t.write(data),
                Client::Tls(s) => s.write(data),
            };
            match r {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !wait_until(self.tcp(), libc::POLLOUT, deadline) {
                        return Err(std::io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    fn close(self) {
        match self {
            Client::Plain(t) => {
                let _ = t.shutdown(Shutdown::Both);
            }
            Client::Tls(mut s) => {
                let _ = s.shutdown(); // close_notify, best effort
                let _ = s.get_ref().shutdown(Shutdown::Both);
            }
        }
    }
}

/// Waits until `fd` is ready for `events` or `deadline` passes; false on timeout.
fn wait_until(fd: &impl AsRawFd, events: libc::c_short, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut p = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().clamp(1, i32::MAX as u128) as i32) };
        if n > 0 {
            return true;
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// The server side of the TLS handshake on a non-blocking socket, all of it within `limit`.
fn tls_accept(acceptor: &SslAcceptor, tcp: TcpStream, limit: Duration) -> Result<SslStream<TcpStream>, String> {
    let deadline = Instant::now() + limit;
    let mut attempt = acceptor.accept(tcp);
    loop {
        match attempt {
            Ok(s) => return Ok(s),
            Err(HandshakeError::WouldBlock(mid)) => {
                let events = if mid.error().code() == ErrorCode::WANT_WRITE { libc::POLLOUT } else { libc::POLLIN };
                if !wait_until(mid.get_ref(), events, deadline) {
                    return Err(format!("TLS handshake not finished within {limit:?}"));
                }
                attempt = mid.handshake();
            }
            Err(HandshakeError::SetupFailure(e)) => return Err(format!("TLS setup failed: {e}")),
            Err(HandshakeError::Failure(mid)) => {
                let verify = mid.ssl().verify_result();
                let why = if verify != openssl::x509::X509VerifyResult::OK {
                    format!("{} (client certificate: {})", mid.error(), verify.error_string())
                } else {
                    mid.error().to_string()
                };
                return Err(format!("TLS handshake failed: {why}"));
            }
        }
    }
}

/// Copies bytes both ways between the client and tiny_http until both sides are done, or nothing moved for
/// `idle`. With TLS configured, the handshake comes first and must finish within `idle`.
fn relay(tcp: TcpStream, backend: UnixStream, idle: Duration, web: Option<&WebState>) {
    let peer = tcp.peer_addr().ok();
    if tcp.set_nonblocking(true).is_err() {
        return;
    }
    let _ = backend.set_write_timeout(Some(idle));
    let _ = tcp.set_nodelay(true);
    let acceptor = web.and_then(|w| w.current().acceptor.clone());
    let mut client = match acceptor {
        None => Client::Plain(tcp),
        Some(acc) => match tls_accept(&acc, tcp, idle) {
            Ok(s) => Client::Tls(Box::new(s)),
            Err(e) => {
                if let Some(w) = web {
                    w.tls_failures.inc();
                }
                debug!("http: {}: {e}", peer.map_or_else(|| "?".to_string(), |p| p.to_string()));
                return; // dropping the stream closes the connection; the backend sees EOF
            }
        },
    };
    let fd = client.tcp().as_raw_fd();
    let mut server = &backend;
    let mut buf = vec![0u8; 16 * 1024];
    let mut client_open = true;
    let mut server_open = true;
    let mut last = Instant::now();
    while server_open {
        let mut fds = [
            // Once the client is done, poll(2) ignores its socket (a negative fd): a hung-up socket would
            // otherwise report POLLHUP at once, over and over, while tiny_http finishes.
            libc::pollfd { fd: if client_open { fd } else { -1 }, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: backend.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        let left = idle.saturating_sub(last.elapsed());
        if left.is_zero() {
            break;
        }
        let buffered = client_open && client.pending() > 0;
        let wait = if buffered { 0 } else { left.as_millis().min(i32::MAX as u128) as i32 };
        // SAFETY: two valid pollfds for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, wait) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 && !buffered {
            continue; // re-check the idle budget
        }
        let ready = |f: &libc::pollfd| f.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
        if client_open && (buffered || ready(&fds[0])) {
            match client.read(&mut buf) {
                Ok(0) => {
                    client_open = false;
                    let _ = backend.shutdown(Shutdown::Write);
                }
                Ok(k) => {
                    if server.write_all(&buf[..k]).is_err() {
                        break;
                    }
                    last = Instant::now();
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {}
                Err(_) => {
                    client_open = false;
                    let _ = backend.shutdown(Shutdown::Write);
                }
            }
        }
        if ready(&fds[1]) {
            match server.read(&mut buf) {
                Ok(0) | Err(_) => server_open = false,
                Ok(k) => {
                    if client.write_all(&buf[..k], Instant::now() + idle).is_err() {
                        break;
                    }
                    last = Instant::now();
                }
            }
        }
    }
    let _ = backend.shutdown(Shutdown::Both);
    client.close();
}

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("static header")
}

/// Whether the client accepts gzip (a `gzip` coding without `q=0`).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|c| {
        let mut parts = c.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let q_zero = parts.any(|p| {
            p.strip_prefix("q=").map(|q| q.trim().parse::<f32>().map(|q| q == 0.0).unwrap_or(false)).unwrap_or(false)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
    })
}

/// Answers requests until a stop is requested.
pub fn serve(server: &Backend, metrics: &Metrics, life: &Lifecycle) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while !life.http_stop_requested() {
        match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(req)) => handle(req, server.web.as_deref(), metrics, life, &mut buf),
            Ok(None) => {}
            Err(e) => {
                error!("http server: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn landing_page() -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>DashFlow Prometheus Exporter</title></head><body>\n\
<h1>DashFlow Prometheus Exporter</h1>\n<p>Version {}</p>\n<ul>\n\
<li><a href=\"/metrics\">/metrics</a>: metrics in the Prometheus text format</li>\n\
<li><a href=\"/-/healthy\">/-/healthy</a>: 200 while every thread is running</li>\n\
<li><a href=\"/-/ready\">/-/ready</a>: 200 while the Kafka consumer is connected</li>\n\
</ul>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn handle(req: Request, web: Option<&WebState>, metrics: &Metrics, life: &Lifecycle, buf: &mut Vec<u8>) {
    if let Some(web) = web {
        let current = web.current();
        let auth = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str());
        if !check_basic_auth(auth, &current.config.users, &web.cache) {
            web.auth_failures.inc();
            let resp = Response::from_string("Unauthorized\n")
                .with_status_code(401)
                .with_header(header("WWW-Authenticate", "Basic"));
            if let Err(e) = req.respond(resp) {
                debug!("http response not sent: {e}");
            }
            return;
        }
    }
    let path = req.url().split('?').next().unwrap_or("").to_string();
    let known = matches!(path.as_str(), "/" | "/metrics" | "/-/healthy" | "/-/ready");
    let resp = if !known {
        Response::from_string("404 page not found\n").with_status_code(404)
    } else if !matches!(req.method(), Method::Get | Method::Head) {
        Response::from_string("405 method not allowed\n")
            .with_status_code(405)
            .with_header(header("Allow", "GET, HEAD"))
    } else {
        match path.as_str() {
            "/metrics" => return respond_metrics(req, metrics, buf),
            "/-/healthy" => status_page(life.healthy(), "Healthy", "Unhealthy"),
            "/-/ready" => status_page(life.ready(), "Ready", "Not ready: no connection to the Kafka cluster"),
            _ => Response::from_string(landing_page()).with_header(header("Content-Type", "text/html; charset=utf-8")),
        }
    };
    if let Err(e) = req.respond(resp) {
        debug!("http response not sent: {e}");
    }
}

fn status_page(ok: bool, yes: &str, no: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let (code, text) = if ok { (200, yes) } else { (503, no) };
    Response::from_string(format!("{text}\n")).with_status_code(code)
}

fn respond_metrics(req: Request, metrics: &Metrics, buf: &mut Vec<u8>) {
    let start = Instant::now();
    if let Err(e) = encode_text(&metrics.registry, buf) {
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
    resp = resp.with_header(header("Content-Type", CONTENT_TYPE_METRICS)).with_chunked_threshold(usize::MAX);
    resp = resp.with_header(header("Vary", "Accept-Encoding"));
    if let Err(e) = req.respond(resp) {
        debug!("/metrics response not sent: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=1.0, *;q=0.5"));
        assert!(accepts_gzip("GZIP"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip(""));
        assert!(!accepts_gzip("x-gzip-like"));
    }
}
