//! The HTTP side: `/metrics`, `/`, `/-/healthy`, `/-/ready` over tiny_http, behind a connection gate.
//!
//! tiny_http parses requests on a thread per open connection, sets no socket timeouts and buffers header lines
//! of any length, so an idle, slow or endless client would hold a thread (and memory) forever and enough of
//! them would exhaust the process. The gate owns the public TCP listener: it admits at most
//! `METRICS_MAX_CONNECTIONS` connections at once and relays each admitted one to tiny_http over a private,
//! abstract Unix socket. The relay closes a connection once it has been idle for `METRICS_HTTP_TIMEOUT_SECS`,
//! when a request header is not complete `METRICS_HTTP_HEADER_TIMEOUT_SECS` after it began (slow-loris), and
//! answers 431 to a header larger than [`MAX_HEADER_BYTES`]. At the cap, a new connection takes the slot of
//! the connection that has been sending an incomplete header the longest (not counting one whose complete
//! header already waits unread in its socket: its relay thread has not run yet), or else of one idle in
//! keep-alive for a second or more, so clients that trickle bytes or sit idle cannot lock out a scraper; only when
//! every slot has a request in progress does the newcomer get a 503. Threads stay bounded: one relay thread
//! per admitted connection (joined before its slot is reused), one tiny_http pool thread per connection
//! tiny_http is serving, plus the fixed request handlers.
//!
//! With `--web.config.file` ([`crate::http::webconfig`]) the relay terminates TLS (client certificates checked per
//! `client_auth_type`) and the request handlers demand basic auth. The header scanner, its deadline and the
//! size limit then apply to the decrypted bytes, before tiny_http (and so before any 401) sees them. The TLS
//! handshake counts against the first request's header deadline (which runs from the accept), and must also
//! finish within `METRICS_HTTP_TIMEOUT_SECS`: whichever is shorter. A connection still in its handshake is an
//! incomplete header for eviction. At the cap with no connection to evict, a TLS newcomer is closed without
//! an answer (a plaintext 503 would be a handshake error to it anyway).

pub mod webconfig;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use openssl::ssl::{ErrorCode, HandshakeError, SslAcceptor, SslStream};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::config::HttpConfig;
use crate::http::webconfig::{check_basic_auth, WebState};
use crate::metrics::{encode_text, Metrics};
use crate::runtime::shutdown::{Lifecycle, RateLimit};

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
    header_timeout: Duration,
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
    // A longer accept queue than std's 128: under a connection flood a scraper's SYN that finds the queue
    // full is dropped and retried only a second later. (The kernel caps it at net.core.somaxconn.)
    // SAFETY: listen(2) on the listener's own socket, which is already listening; only the backlog changes.
    unsafe { libc::listen(listener.as_raw_fd(), ACCEPT_BACKLOG) };
    let addr = listener.local_addr().map_err(|e| err(Box::new(e)))?;
    listener.set_nonblocking(true).map_err(|e| err(Box::new(e)))?;
    let name = format!("dashflow-prometheus-exporter/{}/{}", std::process::id(), addr.port());
    let backend = UnixAddr::from_abstract_name(name.as_bytes()).map_err(|e| err(Box::new(e)))?;
    let unix = UnixListener::bind_addr(&backend).map_err(|e| err(Box::new(e)))?;
    // tiny_http's accept thread, and the connection threads it starts, inherit the short scheduler slice of
    // the thread that creates the server (see `crate::runtime::sched`).
    let server = crate::runtime::sched::on_thread_with(
        || {
            crate::runtime::sched::prefer_latency();
        },
        || Server::from_listener(unix, None),
    )
    .map_err(|_| err("tiny_http panicked while starting".into()))?
    .map_err(err)?;
    Ok(HttpServer {
        server: std::mem::ManuallyDrop::new(Backend { server, web }),
        listener,
        backend,
        addr,
        max_connections: cfg.max_connections,
        timeout: cfg.timeout,
        header_timeout: cfg.header_timeout,
        active: Arc::new(AtomicUsize::new(0)),
    })
}

const ACCEPT_BACKLOG: i32 = 1024;

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\ntoo many connections, try again\n";
const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 33\r\nConnection: close\r\n\r\nrequest header larger than 8 KiB\n";

/// Largest request header accepted: request line and header fields with their line ends. tiny_http would
/// buffer a header line of any length (and reads it a byte at a time through a mutex); the relay stops
/// forwarding past this and answers 431. A Prometheus scrape request is about 300 bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// A kept-alive connection with no request in progress may be closed to admit a new one once nothing has
/// moved on it for this long.
const EVICT_IDLE_AFTER_US: u64 = 1_000_000;

/// How long the gate waits for an evicted connection's thread to end before it refuses the newcomer.
const EVICT_WAIT: Duration = Duration::from_millis(500);

/// `Conn::header_since` when no request header is in progress.
const NO_HEADER: u64 = u64::MAX;

/// What the relay of one admitted connection publishes for the gate, which picks a connection to close when
/// all slots are taken.
struct Conn {
    /// Handles on the client socket and (once connected) the socket to tiny_http: shutting both down ends
    /// the relay, also when it is blocked writing to either.
    tcp: TcpStream,
    backend: std::sync::Mutex<Option<UnixStream>>,
    /// Microseconds (since `epoch`) when the request header now being received began (accept time for a new
    /// connection); `NO_HEADER` when none is in progress.
    header_since: AtomicU64,
    /// Microseconds (since `epoch`) of the last byte moved in either direction.
    last: AtomicU64,
    /// A complete request header was passed on and no byte of an answer has come back since.
    awaiting: AtomicBool,
    /// `LIVE`, then `ENDING` (set by the relay as it ends on its own) or `EVICTED` (set by the gate), once:
    /// each close is counted by whichever of the two set it.
    fate: AtomicU8,
    epoch: Instant,
    /// `dashstream_exporter_http_connections_closed_total`, indexed like `HTTP_CLOSE_REASONS`.
    closed: [prometheus::IntCounter; crate::metrics::HTTP_CLOSE_REASONS.len()],
}

const LIVE: u8 = 0;
const ENDING: u8 = 1;
const EVICTED: u8 = 2;

impl Conn {
    fn now_us(&self) -> u64 {
        us_since(self.epoch, Instant::now())
    }
    fn evicted(&self) -> bool {
        self.fate.load(Ordering::SeqCst) == EVICTED
    }
    /// Settles, once, why the relay ends (unless the gate evicted it first) and counts it, before the client
    /// sees the close: a client that has seen it can read the counter. An eviction is counted by the gate,
    /// which decided it.
    fn settle(&self, why: Closed) -> Closed {
        match self.fate.compare_exchange(LIVE, ENDING, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                if !matches!(why, Closed::Normal | Closed::Evicted) {
                    self.closed[why as usize].inc();
                }
                why
            }
            Err(_) => Closed::Evicted,
        }
    }
}

/// Why a relay ended; the server's own closes are indexed like `HTTP_CLOSE_REASONS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    IdleTimeout = 0,
    HeaderTimeout = 1,
    HeaderTooLarge = 2,
    Evicted = 3,
    /// The client or tiny_http closed, or a socket error.
    Normal = 4,
}

/// An admitted connection: its published state and its relay thread.
struct Admitted {
    conn: Arc<Conn>,
    thread: std::thread::JoinHandle<()>,
    /// Disconnected when the relay thread is done.
    done: crossbeam_channel::Receiver<()>,
}

impl HttpServer {
    /// Connections currently admitted.
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Accepts connections until a stop is requested.
    ///
    /// Admission: below `max_connections` a connection is admitted. At the cap, a slot is freed by closing
    /// (1) the connection whose incomplete request header began longest ago (a new connection counts as
    /// beginning its header when accepted), or else (2) the kept-alive connection quiet the longest, if quiet
    /// for at least a second; one with a request being answered is never closed. Only when no connection
    /// qualifies does the newcomer get a 503. A client that sends a complete header at once (any scraper)
    /// is therefore always admitted while the slots are held by clients that trickle or sit idle. With TLS on,
    /// a refused newcomer is closed without the (plaintext) 503.
    pub fn run_gate(&self, metrics: &Metrics, life: &Lifecycle) {
        // The relay threads it starts inherit this.
        crate::runtime::sched::prefer_latency_for("http-gate");
        let busy_log = RateLimit::new(Duration::from_secs(10));
        if let Some(Err(e)) = self.server.web.as_ref().map(|w| w.register(&metrics.registry)) {
            warn!("web config metrics not registered: {e}");
        }
        let epoch = Instant::now();
        let mut admitted: Vec<Admitted> = Vec::with_capacity(self.max_connections);
        // Refused connections linger briefly (answer sent, write side shut) so that closing them with unread
        // request bytes does not reset the connection before the client has read the 503.
        let mut lingering: VecDeque<(TcpStream, Instant)> = VecDeque::new();
        while !life.http_stop_requested() {
            reap(&mut lingering);
            self.reap_admitted(&mut admitted);
            match self.listener.accept() {
                Ok((tcp, peer)) => {
                    if admitted.len() >= self.max_connections {
                        self.evict(&mut admitted, metrics);
                    }
                    if admitted.len() < self.max_connections {
                        if let Some(a) = self.admit(tcp, epoch, metrics) {
                            admitted.push(a);
                            self.active.store(admitted.len(), Ordering::SeqCst);
                        }
                        continue;
                    }
                    metrics.http_rejected.inc();
                    if let Some(n) = busy_log.check() {
                        warn!("http: refusing {peer}: {} connections open ({n} more refused)", self.max_connections);
                    }
                    if tcp.set_nonblocking(true).is_ok() {
                        drain(&tcp);
                        // A TLS client could not read a plaintext answer: it just sees the connection close.
                        if !self.tls_on() {
                            let _ = (&tcp).write(BUSY);
                        }
                        let _ = tcp.shutdown(Shutdown::Write);
                        if lingering.len() >= 1024 {
                            lingering.pop_front();
                        }
                        lingering.push_back((tcp, Instant::now() + Duration::from_millis(500)));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let busy = !lingering.is_empty() || admitted.len() >= self.max_connections;
                    wait_readable(&self.listener, if busy { 20 } else { 200 })
                }
                Err(e) => {
                    debug!("http accept: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Whether the web config in force terminates TLS (it may change when the file is re-read).
    fn tls_on(&self) -> bool {
        self.server.web.as_ref().is_some_and(|w| w.current().acceptor.is_some())
    }

    /// Joins the relay threads that have ended.
    fn reap_admitted(&self, admitted: &mut Vec<Admitted>) {
        let mut i = 0;
        while i < admitted.len() {
            if admitted[i].thread.is_finished() {
                let _ = admitted.swap_remove(i).thread.join();
            } else {
                i += 1;
            }
        }
        self.active.store(admitted.len(), Ordering::SeqCst);
    }

    /// Closes one connection by the admission policy (see `run_gate`), counts it, and waits (briefly) for
    /// its thread to end, which frees its slot.
    fn evict(&self, admitted: &mut Vec<Admitted>, metrics: &Metrics) {
        let Some(first) = admitted.first() else { return };
        let now = first.conn.now_us();
        let live = || admitted.iter().enumerate().filter(|(_, a)| a.conn.fate.load(Ordering::SeqCst) == LIVE);
        // Oldest header in progress first. One whose complete request header already waits unread in its
        // socket is not slow: its relay thread has just not run yet (a busy machine), so it is skipped.
        let mut in_progress: Vec<(usize, u64)> = live()
            .map(|(i, a)| (i, a.conn.header_since.load(Ordering::SeqCst)))
            .filter(|(_, since)| *since != NO_HEADER)
            .collect();
        in_progress.sort_unstable_by_key(|(_, since)| *since);
        let slow_header = in_progress.into_iter().map(|(i, _)| i).find(|&i| !request_waiting(&admitted[i].conn.tcp));
        let victim = slow_header.or_else(|| {
            live()
                .filter(|(_, a)| {
                    !a.conn.awaiting.load(Ordering::SeqCst)
                        && a.conn.header_since.load(Ordering::SeqCst) == NO_HEADER
                        && now.saturating_sub(a.conn.last.load(Ordering::SeqCst)) >= EVICT_IDLE_AFTER_US
                })
                .min_by_key(|(_, a)| a.conn.last.load(Ordering::SeqCst))
                .map(|(i, _)| i)
        });
        let Some(i) = victim else { return };
        let conn = &admitted[i].conn;
        // Unless the relay is ending on its own already (then it frees the slot anyway, and counts why).
        if conn.fate.compare_exchange(LIVE, EVICTED, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            metrics.http_closed[Closed::Evicted as usize].inc();
            let _ = conn.tcp.shutdown(Shutdown::Both);
            // The write side only: the relay still waits for tiny_http to close its side.
            if let Some(b) = conn.backend.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                let _ = b.shutdown(Shutdown::Write);
            }
        }
        if let Err(crossbeam_channel::RecvTimeoutError::Timeout) = admitted[i].done.recv_timeout(EVICT_WAIT) {
            return; // still counted as admitted; the newcomer is refused
        }
        let _ = admitted.swap_remove(i).thread.join();
        self.active.store(admitted.len(), Ordering::SeqCst);
    }

    fn admit(&self, tcp: TcpStream, epoch: Instant, metrics: &Metrics) -> Option<Admitted> {
        let tcp_handle = match tcp.try_clone() {
            Ok(h) => h,
            Err(e) => {
                error!("http: cannot keep a handle on a connection: {e}");
                return None;
            }
        };
        let now = us_since(epoch, Instant::now());
        let conn = Arc::new(Conn {
            tcp: tcp_handle,
            backend: std::sync::Mutex::new(None),
            header_since: AtomicU64::new(now),
            last: AtomicU64::new(now),
            awaiting: AtomicBool::new(false),
            fate: AtomicU8::new(LIVE),
            epoch,
            closed: metrics.http_closed.clone(),
        });
        let (idle, header) = (self.timeout, self.header_timeout);
        let state = conn.clone();
        let handler = self.backend.clone();
        let web = self.server.web.clone();
        let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
        let spawned = std::thread::Builder::new().name("http-conn".into()).spawn(move || {
            let _done = done_tx;
            relay(tcp, &handler, &state, idle, header, web.as_deref());
        });
        match spawned {
            Ok(thread) => Some(Admitted { conn, thread, done }),
            Err(e) => {
                error!("http: cannot start a connection thread: {e}");
                None
            }
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

/// Finds request header ends (`CRLF CRLF`) in the client's byte stream, without buffering it. Bytes after a
/// header end begin the next request's header (only GET and HEAD are served: no request has a body).
struct HeaderScan {
    /// When the header in progress began; `None` between requests.
    since: Option<Instant>,
    bytes: usize,
    /// How much of `\r\n\r\n` the last bytes matched.
    matched: u8,
}

/// What a chunk of client bytes did.
struct Scanned {
    /// How many bytes of the chunk may be passed on (fewer than all only when the header grew too large:
    /// up to the end of the last complete header).
    forward: usize,
    completed: bool,
    too_large: bool,
}

impl HeaderScan {
    fn feed(&mut self, chunk: &[u8], now: Instant) -> Scanned {
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

/// Whether a complete plaintext request header (its blank line) is waiting unread in the socket's receive
/// buffer. Never blocks and never consumes (MSG_PEEK | MSG_DONTWAIT); a TLS connection never matches.
fn request_waiting(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: recv(2) into a buffer we own, of the length given; the socket stays open for the call.
    let n =
        unsafe { libc::recv(tcp.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n > 0 && buf[..n as usize].windows(4).any(|w| w == b"\r\n\r\n")
}

fn us_since(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch).as_micros() as u64
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
    /// Ends the sending side: TLS close_notify (best effort), then a TCP FIN.
    fn shutdown_write(&mut self) {
        if let Client::Tls(s) = self {
            let _ = s.shutdown();
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }
    fn close(mut self) {
        self.shutdown_write();
        let _ = self.tcp().shutdown(Shutdown::Both);
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

/// Why a TLS handshake did not complete.
enum HandshakeEnd {
    TimedOut,
    Failed(String),
}

/// The server side of the TLS handshake on a non-blocking socket, all of it before `deadline`. An eviction
/// (the gate shuts the socket down) ends it as a failure at once.
fn tls_accept(acceptor: &SslAcceptor, tcp: TcpStream, deadline: Instant) -> Result<SslStream<TcpStream>, HandshakeEnd> {
    let mut attempt = acceptor.accept(tcp);
    loop {
        match attempt {
            Ok(s) => return Ok(s),
            Err(HandshakeError::WouldBlock(mid)) => {
                let events = if mid.error().code() == ErrorCode::WANT_WRITE { libc::POLLOUT } else { libc::POLLIN };
                if !wait_until(mid.get_ref(), events, deadline) {
                    return Err(HandshakeEnd::TimedOut);
                }
                attempt = mid.handshake();
            }
            Err(HandshakeError::SetupFailure(e)) => return Err(HandshakeEnd::Failed(format!("TLS setup failed: {e}"))),
            Err(HandshakeError::Failure(mid)) => {
                let verify = mid.ssl().verify_result();
                let why = if verify != openssl::x509::X509VerifyResult::OK {
                    format!("{} (client certificate: {})", mid.error(), verify.error_string())
                } else {
                    mid.error().to_string()
                };
                return Err(HandshakeEnd::Failed(format!("TLS handshake failed: {why}")));
            }
        }
    }
}

/// Copies bytes both ways between the client and tiny_http until both sides are done; ends early when
/// nothing moved for `idle`, when a request header is not complete `header_timeout` after it began (or
/// after the connection was accepted), when a header exceeds `MAX_HEADER_BYTES` (answered with 431), or
/// when the gate evicts the connection. tiny_http is only connected once the first request header is
/// complete (until then its bytes, at most `MAX_HEADER_BYTES`, wait here): a client that never completes one
/// costs no tiny_http thread. With TLS (`web` has an acceptor) the handshake comes first, within the first
/// header's deadline and `idle`, and the scanner sees the decrypted bytes. Returns why it ended (counted).
fn relay(
    tcp: TcpStream,
    handler: &UnixAddr,
    conn: &Conn,
    idle: Duration,
    header_timeout: Duration,
    web: Option<&WebState>,
) -> Closed {
    let _ = tcp.set_nodelay(true);
    if tcp.set_nonblocking(true).is_err() {
        let why = conn.settle(Closed::Normal);
        let _ = tcp.shutdown(Shutdown::Both);
        return why;
    }
    let accepted = conn.epoch + Duration::from_micros(conn.header_since.load(Ordering::SeqCst));
    let mut client = match web.and_then(|w| w.current().acceptor.clone()) {
        None => Client::Plain(tcp),
        Some(acceptor) => {
            let peer = tcp.peer_addr().ok();
            // The handshake is part of the first request's header time (the deadline runs from the accept).
            let deadline = accepted + header_timeout.min(idle);
            match tls_accept(&acceptor, tcp, deadline) {
                Ok(s) => Client::Tls(Box::new(s)),
                Err(end) => {
                    let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
                    let why = match end {
                        HandshakeEnd::TimedOut if header_timeout <= idle => {
                            debug!("http: {peer}: TLS handshake not finished within {header_timeout:?}");
                            Closed::HeaderTimeout
                        }
                        HandshakeEnd::TimedOut => {
                            debug!("http: {peer}: TLS handshake not finished within {idle:?}");
                            Closed::IdleTimeout
                        }
                        HandshakeEnd::Failed(e) => {
                            debug!("http: {peer}: {e}");
                            Closed::Normal
                        }
                    };
                    // An evicted handshake (the gate shut the socket down) is no TLS failure.
                    let why = conn.settle(why);
                    if let (Some(w), false) = (web, why == Closed::Evicted) {
                        w.tls_failures.inc();
                    }
                    // The gate's handle keeps the socket open until the thread is joined: close it now.
                    let _ = conn.tcp.shutdown(Shutdown::Both);
                    return why;
                }
            }
        }
    };
    let fd = client.tcp().as_raw_fd();
    let mut backend: Option<UnixStream> = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut client_open = true;
    let mut server_open = true;
    let mut scan = HeaderScan { since: Some(accepted), bytes: 0, matched: 0 };
    let mut last = Instant::now();
    // Set when the reason was settled inside the loop (before the 431 went out).
    let mut settled = None;
    let why = loop {
        if !server_open {
            break Closed::Normal;
        }
        if conn.evicted() {
            break Closed::Evicted;
        }
        let mut fds = [
            // Once the client is done, poll(2) ignores its socket (a negative fd): a hung-up socket would
            // otherwise report POLLHUP at once, over and over, while tiny_http finishes.
            libc::pollfd { fd: if client_open { fd } else { -1 }, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: backend.as_ref().map_or(-1, |b| b.as_raw_fd()), events: libc::POLLIN, revents: 0 },
        ];
        let idle_left = idle.saturating_sub(last.elapsed());
        if idle_left.is_zero() {
            break Closed::IdleTimeout;
        }
        let header_left = match scan.since {
            Some(t) if client_open => (t + header_timeout).saturating_duration_since(Instant::now()),
            _ => Duration::MAX,
        };
        if header_left.is_zero() {
            break Closed::HeaderTimeout;
        }
        // Decrypted bytes OpenSSL already holds are read without waiting.
        let buffered = client_open && client.pending() > 0;
        let wait = if buffered { 0 } else { idle_left.min(header_left).as_millis().clamp(1, i32::MAX as u128) as i32 };
        // SAFETY: two pollfds (a negative fd is ignored) valid for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, wait) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break Closed::Normal;
        }
        if n == 0 && !buffered {
            continue; // re-check the budgets
        }
        let ready = |f: &libc::pollfd| f.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
        if client_open && (buffered || ready(&fds[0])) {
            let got = match client.read(&mut buf) {
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => None,
                Ok(0) | Err(_) => Some(0),
                Ok(k) => Some(k),
            };
            match got {
                None => {} // a partial TLS record: wait for the rest
                Some(0) => {
                    if conn.evicted() {
                        break Closed::Evicted;
                    }
                    client_open = false;
                    scan.since = None;
                    conn.header_since.store(NO_HEADER, Ordering::SeqCst);
                    match &backend {
                        Some(b) => {
                            let _ = b.shutdown(Shutdown::Write);
                        }
                        None => break Closed::Normal, // no complete request: nothing to answer
                    }
                }
                Some(k) => {
                    last = Instant::now();
                    let s = scan.feed(&buf[..k], last);
                    if backend.is_none() && s.completed {
                        match connect_handler(handler, conn, idle) {
                            Some(b) => backend = Some(b),
                            None => break Closed::Normal,
                        }
                    }
                    match backend.as_ref() {
                        Some(mut b) => {
                            if !pending.is_empty() && b.write_all(&std::mem::take(&mut pending)).is_err() {
                                break Closed::Normal;
                            }
                            if s.forward > 0 && b.write_all(&buf[..s.forward]).is_err() {
                                break Closed::Normal;
                            }
                        }
                        // At most MAX_HEADER_BYTES: no header has ended since the accept.
                        None => pending.extend_from_slice(&buf[..s.forward]),
                    }
                    if s.completed {
                        conn.awaiting.store(true, Ordering::SeqCst);
                    }
                    let since = scan.since.map_or(NO_HEADER, |t| us_since(conn.epoch, t));
                    conn.header_since.store(since, Ordering::SeqCst);
                    conn.last.store(us_since(conn.epoch, last), Ordering::SeqCst);
                    if s.too_large {
                        let why = conn.settle(Closed::HeaderTooLarge);
                        settled = Some(why);
                        if why == Closed::HeaderTooLarge {
                            refuse_too_large(&mut client, backend.as_ref(), &mut buf, idle);
                        }
                        break why;
                    }
                }
            }
        }
        if let Some(mut b) = backend.as_ref().filter(|_| ready(&fds[1])) {
            match b.read(&mut buf) {
                Ok(0) | Err(_) => server_open = false,
                Ok(k) => {
                    conn.awaiting.store(false, Ordering::SeqCst);
                    if client.write_all(&buf[..k], Instant::now() + idle).is_err() {
                        break Closed::Normal;
                    }
                    last = Instant::now();
                    conn.last.store(us_since(conn.epoch, last), Ordering::SeqCst);
                }
            }
        }
    };
    let why = settled.unwrap_or_else(|| conn.settle(why));
    client.close();
    if let Some(mut b) = backend.as_ref() {
        // Wait (up to a second) for tiny_http to close its side, so that its pool thread for this connection
        // is free again before the gate gives the slot to another connection.
        let _ = b.shutdown(Shutdown::Write);
        let _ = b.set_read_timeout(Some(Duration::from_secs(1)));
        while let Ok(1..) = b.read(&mut buf) {}
    }
    why
}

/// Connects to tiny_http and leaves the gate a handle on the socket (to end a relay blocked writing to it).
fn connect_handler(handler: &UnixAddr, conn: &Conn, idle: Duration) -> Option<UnixStream> {
    let b = match UnixStream::connect_addr(handler) {
        Ok(b) => b,
        Err(e) => {
            error!("http: cannot reach the request handler: {e}");
            return None;
        }
    };
    let _ = b.set_write_timeout(Some(idle));
    match b.try_clone() {
        Ok(h) => *conn.backend.lock().unwrap_or_else(|e| e.into_inner()) = Some(h),
        Err(e) => {
            error!("http: cannot keep a handle on a connection: {e}");
            return None;
        }
    }
    Some(b)
}

/// After a header grew past `MAX_HEADER_BYTES`: passes on what tiny_http still answers to earlier requests,
/// then answers 431 (over TLS when the connection is TLS) and closes; the client's further bytes are read
/// and dropped undecrypted (up to 256 KiB or 200 ms) so that the answer is delivered before the close
/// (which, with unread bytes, resets the connection).
fn refuse_too_large(client: &mut Client, backend: Option<&UnixStream>, buf: &mut [u8], idle: Duration) {
    if let Some(mut server) = backend {
        let _ = server.shutdown(Shutdown::Write);
        let _ = server.set_read_timeout(Some(idle));
        while let Ok(k) = server.read(buf) {
            if k == 0 || client.write_all(&buf[..k], Instant::now() + idle).is_err() {
                break;
            }
        }
    }
    let _ = client.write_all(TOO_LARGE, Instant::now() + idle);
    client.shutdown_write();
    // Bounded: a client sending a huge header costs at most this much more reading.
    let until = Instant::now() + Duration::from_millis(200);
    let mut left = 256 * 1024usize;
    let mut tcp = client.tcp();
    while left > 0 {
        match tcp.read(buf) {
            Ok(0) => break,
            Ok(k) => left = left.saturating_sub(k),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !wait_until(tcp, libc::POLLIN, until) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
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
    crate::runtime::sched::prefer_latency_for("http");
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
    if let Err(e) = encode_text(metrics, buf) {
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
    if let Err(e) = respond_at_once(req, resp) {
        debug!("/metrics response not sent: {e}");
    }
}

/// Sends exactly what `req.respond(resp)` sends, but in one write. `respond` writes the header and then the
/// body in 8 KiB pieces, each a write to the relay's socket that wakes the relay; on busy cores the handler
/// is then preempted mid-answer and may wait a whole time slice of another thread (3 ms was seen) before it
/// writes the rest. Here tiny_http renders the response into memory (its own `raw_print`, with the arguments
/// `respond` passes) and the bytes go out at once; tiny_http reads the connection's next request once the
/// writer is dropped, as after `respond`.
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

    #[test]
    fn close_reasons_index_the_metric_labels() {
        use crate::metrics::HTTP_CLOSE_REASONS;
        assert_eq!(HTTP_CLOSE_REASONS[Closed::IdleTimeout as usize], "idle_timeout");
        assert_eq!(HTTP_CLOSE_REASONS[Closed::HeaderTimeout as usize], "header_timeout");
        assert_eq!(HTTP_CLOSE_REASONS[Closed::HeaderTooLarge as usize], "header_too_large");
        assert_eq!(HTTP_CLOSE_REASONS[Closed::Evicted as usize], "evicted");
        assert_eq!(Closed::Normal as usize, HTTP_CLOSE_REASONS.len());
    }

    /// A connection whose whole request header sits unread is told apart from a partial or silent one, and
    /// looking does not consume it.
    #[test]
    fn a_waiting_complete_request_header_is_seen_without_being_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for sent in [&b""[..], b"GET /metrics HTTP/1.1\r\nHost: x", b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"] {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(sent).unwrap();
            clients.push(c);
            servers.push(listener.accept().unwrap().0);
        }
        // Loopback delivers at once, but let the kernel finish queueing.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !request_waiting(&servers[2]) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!request_waiting(&servers[0]), "nothing sent");
        assert!(!request_waiting(&servers[1]), "header not complete");
        assert!(request_waiting(&servers[2]), "complete header waiting");
        assert!(request_waiting(&servers[2]), "peeking twice: still there");
        let mut got = [0u8; 64];
        let n = servers[2].read(&mut got).unwrap();
        assert_eq!(&got[..n], b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(!request_waiting(&servers[2]), "read: gone");
    }

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
