//! The relay of one admitted connection: copies bytes between the client and tiny_http, and ends the
//! connection when it is idle, slow to send a header, sends a header too large, or is evicted by the gate.
//!
//! tiny_http sets no socket timeouts and buffers header lines of any length, so these limits are enforced
//! here, on the (decrypted) bytes before tiny_http sees them. With TLS on, the handshake happens here too.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::ControlFlow::{self, Break, Continue};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{debug, error};
use openssl::ssl::SslAcceptor;

use super::client::{tls_accept, wait_until, Client, HandshakeEnd};
use super::conn::{us_since, Closed, Conn, NO_HEADER};
use super::header_scan::HeaderScan;
use crate::http::webconfig::WebState;

/// How long a connection may stay quiet (`METRICS_HTTP_TIMEOUT_SECS`) and how long a request header may
/// take (`METRICS_HTTP_HEADER_TIMEOUT_SECS`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Timeouts {
    pub idle: Duration,
    pub header: Duration,
}

const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 33\r\nConnection: close\r\n\r\nrequest header larger than 8 KiB\n";

/// Relays one admitted connection until it ends, and returns why (counted, see `Conn::settle`).
///
/// Copies bytes both ways between the client and tiny_http until both sides are done; ends early when
/// nothing moved for `idle`, when a request header is not complete `header` after it began (or after the
/// connection was accepted), when a header exceeds `MAX_HEADER_BYTES` (answered with 431), or when the gate
/// evicts the connection. With TLS (`web` has an acceptor) the handshake comes first, within the first
/// header's deadline and `idle`, and the limits apply to the decrypted bytes.
pub(super) fn relay(
    tcp: TcpStream,
    handler: &UnixAddr,
    conn: &Conn,
    timeouts: Timeouts,
    web: Option<&WebState>,
) -> Closed {
    let _ = tcp.set_nodelay(true);
    if tcp.set_nonblocking(true).is_err() {
        let why = conn.settle(Closed::Normal);
        let _ = tcp.shutdown(Shutdown::Both);
        return why;
    }
    // Until the relay publishes anything, `header_since` is the accept time.
    let accepted = conn.epoch + Duration::from_micros(conn.header_since.load(Ordering::SeqCst));
    let client = match web.and_then(|w| w.current().acceptor.clone().map(|acceptor| (w, acceptor))) {
        None => Client::Plain(tcp),
        Some((web, acceptor)) => match start_tls(&acceptor, tcp, accepted, conn, timeouts, web) {
            Ok(client) => client,
            Err(why) => return why,
        },
    };
    Relay::new(client, handler, conn, timeouts, accepted).run()
}

/// The TLS handshake, as part of the first request's header time (its deadline runs from the accept) and
/// within `idle`. A failure is settled, counted and closed here.
fn start_tls(
    acceptor: &SslAcceptor,
    tcp: TcpStream,
    accepted: Instant,
    conn: &Conn,
    timeouts: Timeouts,
    web: &WebState,
) -> Result<Client, Closed> {
    let Timeouts { idle, header } = timeouts;
    let peer = tcp.peer_addr().ok();
    let end = match tls_accept(acceptor, tcp, accepted + header.min(idle)) {
        Ok(s) => return Ok(Client::Tls(Box::new(s))),
        Err(end) => end,
    };
    let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
    let why = match end {
        HandshakeEnd::TimedOut if header <= idle => {
            debug!("http: {peer}: TLS handshake not finished within {header:?}");
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
    if why != Closed::Evicted {
        web.tls_failures.inc();
    }
    // The gate's handle keeps the socket open until the thread is joined: close it now.
    let _ = conn.tcp.shutdown(Shutdown::Both);
    Err(why)
}

/// One connection being relayed: its two sockets and where the relay stands. tiny_http is only connected
/// once the first request header is complete (until then the client's bytes wait in `early`), so a client
/// that never completes one costs no tiny_http thread.
struct Relay<'a> {
    conn: &'a Conn,
    /// tiny_http's socket address.
    handler: &'a UnixAddr,
    timeouts: Timeouts,
    client: Client,
    /// The client's socket, for poll(2).
    client_fd: RawFd,
    /// The connection to tiny_http, once the first request header is complete.
    backend: Option<UnixStream>,
    /// Client bytes received before `backend` is connected: at most `MAX_HEADER_BYTES`.
    early: Vec<u8>,
    /// Bytes being moved, either way.
    buf: Vec<u8>,
    /// The client has not closed its sending side.
    client_open: bool,
    /// tiny_http has not closed its side.
    backend_open: bool,
    scan: HeaderScan,
    /// When a byte last moved in either direction.
    last: Instant,
    /// Why the relay ends, once settled with the gate.
    settled: Option<Closed>,
}

/// Which sockets poll(2) found readable (or closed).
struct Ready {
    client: bool,
    backend: bool,
}

impl<'a> Relay<'a> {
    fn new(client: Client, handler: &'a UnixAddr, conn: &'a Conn, timeouts: Timeouts, accepted: Instant) -> Self {
        Relay {
            conn,
            handler,
            timeouts,
            client_fd: client.tcp().as_raw_fd(),
            client,
            backend: None,
            early: Vec::new(),
            buf: vec![0u8; 16 * 1024],
            client_open: true,
            backend_open: true,
            scan: HeaderScan { since: Some(accepted), bytes: 0, matched: 0 },
            last: Instant::now(),
            settled: None,
        }
    }

    /// Relays until the connection ends; returns why (settled and counted).
    fn run(mut self) -> Closed {
        let why = loop {
            if let Break(why) = self.step() {
                break why;
            }
        };
        let why = self.settle(why);
        self.close();
        why
    }

    /// One wait for either socket, and what the bytes that came do.
    fn step(&mut self) -> ControlFlow<Closed> {
        if !self.backend_open {
            return Break(Closed::Normal);
        }
        if self.conn.evicted() {
            return Break(Closed::Evicted);
        }
        let time_left = self.time_left()?;
        // Decrypted bytes OpenSSL already holds are read without waiting.
        let buffered = self.client_open && self.client.pending() > 0;
        let wait_ms = if buffered { 0 } else { time_left.as_millis().clamp(1, i32::MAX as u128) as i32 };
        let Some(ready) = self.poll(wait_ms)? else { return Continue(()) };
        if self.client_open && (buffered || ready.client) {
            self.read_client()?;
        }
        if ready.backend {
            self.read_backend()?;
        }
        Continue(())
    }

    /// Time until the idle or the header deadline, whichever is first; `Break` once one has passed.
    fn time_left(&self) -> ControlFlow<Closed, Duration> {
        let idle_left = self.timeouts.idle.saturating_sub(self.last.elapsed());
        if idle_left.is_zero() {
            return Break(Closed::IdleTimeout);
        }
        let header_left = match self.scan.since {
            Some(t) if self.client_open => (t + self.timeouts.header).saturating_duration_since(Instant::now()),
            _ => Duration::MAX,
        };
        if header_left.is_zero() {
            return Break(Closed::HeaderTimeout);
        }
        Continue(idle_left.min(header_left))
    }

    /// Waits up to `wait_ms` for either socket; `None` when a signal interrupted the wait.
    fn poll(&self, wait_ms: i32) -> ControlFlow<Closed, Option<Ready>> {
        let watch = |fd: RawFd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let mut fds = [
            // Once the client is done, poll(2) ignores its socket (a negative fd): a hung-up socket would
            // otherwise report POLLHUP at once, over and over, while tiny_http finishes.
            watch(if self.client_open { self.client_fd } else { -1 }),
            watch(self.backend.as_ref().map_or(-1, |b| b.as_raw_fd())),
        ];
        // SAFETY: two pollfds (a negative fd is ignored) valid for the duration of the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, wait_ms) } < 0 {
            return match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::Interrupted => Continue(None),
                _ => Break(Closed::Normal),
            };
        }
        let ready = |f: &libc::pollfd| f.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
        Continue(Some(Ready { client: ready(&fds[0]), backend: ready(&fds[1]) }))
    }

    /// Reads from the client and passes the bytes on.
    fn read_client(&mut self) -> ControlFlow<Closed> {
        match self.client.read(&mut self.buf) {
            // A partial TLS record: wait for the rest.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {
                Continue(())
            }
            Ok(0) | Err(_) => self.client_closed(),
            Ok(n) => self.client_sent(n),
        }
    }

    /// The client is done sending; tiny_http still answers the requests it has, if any.
    fn client_closed(&mut self) -> ControlFlow<Closed> {
        if self.conn.evicted() {
            return Break(Closed::Evicted);
        }
        self.client_open = false;
        self.scan.since = None;
        self.conn.header_since.store(NO_HEADER, Ordering::SeqCst);
        match &self.backend {
            Some(b) => {
                let _ = b.shutdown(Shutdown::Write);
                Continue(())
            }
            None => Break(Closed::Normal), // no complete request: nothing to answer
        }
    }

    /// `n` new client bytes in `buf`: scanned for header ends, then passed on to tiny_http.
    fn client_sent(&mut self, n: usize) -> ControlFlow<Closed> {
        self.last = Instant::now();
        let scanned = self.scan.feed(&self.buf[..n], self.last);
        if self.backend.is_none() && scanned.completed {
            match connect_handler(self.handler, self.conn, self.timeouts.idle) {
                Some(b) => self.backend = Some(b),
                None => return Break(Closed::Normal),
            }
        }
        self.pass_on(scanned.forward)?;
        self.publish(scanned.completed);
        if scanned.too_large {
            return Break(self.too_large());
        }
        Continue(())
    }

    /// Writes the first `n` bytes of `buf` to tiny_http, after the `early` ones; keeps them in `early`
    /// while tiny_http is not connected yet.
    fn pass_on(&mut self, n: usize) -> ControlFlow<Closed> {
        let Some(mut backend) = self.backend.as_ref() else {
            // At most MAX_HEADER_BYTES: no header has ended since the accept.
            self.early.extend_from_slice(&self.buf[..n]);
            return Continue(());
        };
        if !self.early.is_empty() && backend.write_all(&std::mem::take(&mut self.early)).is_err() {
            return Break(Closed::Normal);
        }
        if n > 0 && backend.write_all(&self.buf[..n]).is_err() {
            return Break(Closed::Normal);
        }
        Continue(())
    }

    /// Tells the gate where the connection stands after client bytes came in.
    fn publish(&self, completed: bool) {
        if completed {
            self.conn.awaiting.store(true, Ordering::SeqCst);
        }
        let since = self.scan.since.map_or(NO_HEADER, |t| us_since(self.conn.epoch, t));
        self.conn.header_since.store(since, Ordering::SeqCst);
        self.conn.last.store(us_since(self.conn.epoch, self.last), Ordering::SeqCst);
    }

    /// A header grew too large: answered with 431, unless the gate evicted the connection first.
    fn too_large(&mut self) -> Closed {
        let why = self.settle(Closed::HeaderTooLarge);
        if why == Closed::HeaderTooLarge {
            refuse_too_large(&mut self.client, self.backend.as_ref(), &mut self.buf, self.timeouts.idle);
        }
        why
    }

    /// Reads what tiny_http answered and passes it on to the client.
    fn read_backend(&mut self) -> ControlFlow<Closed> {
        let Some(mut backend) = self.backend.as_ref() else { return Continue(()) };
        match backend.read(&mut self.buf) {
            Ok(0) | Err(_) => self.backend_open = false,
            Ok(n) => {
                self.conn.awaiting.store(false, Ordering::SeqCst);
                if self.client.write_all(&self.buf[..n], Instant::now() + self.timeouts.idle).is_err() {
                    return Break(Closed::Normal);
                }
                self.last = Instant::now();
                self.conn.last.store(us_since(self.conn.epoch, self.last), Ordering::SeqCst);
            }
        }
        Continue(())
    }

    /// Settles why the relay ends, once (see `Conn::settle`): later calls return the first answer.
    fn settle(&mut self, why: Closed) -> Closed {
        *self.settled.get_or_insert_with(|| self.conn.settle(why))
    }

    /// Closes the client, then waits (up to a second) for tiny_http to close its side, so that its pool
    /// thread for this connection is free again before the gate gives the slot to another connection.
    fn close(self) {
        let Relay { client, backend, mut buf, .. } = self;
        client.close();
        if let Some(mut b) = backend.as_ref() {
            let _ = b.shutdown(Shutdown::Write);
            let _ = b.set_read_timeout(Some(Duration::from_secs(1)));
            while let Ok(1..) = b.read(&mut buf) {}
        }
    }
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
