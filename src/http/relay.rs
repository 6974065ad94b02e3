//! The relay of one admitted connection: reads the client's requests one at a time, hands each to tiny_http
//! on a connection of its own, and writes the answer back; ends the connection when it is idle, slow to
//! send a head, sends a head that is too large or refused (`request`), stops reading its answers, or is
//! evicted by the gate.
//!
//! tiny_http sets no socket timeouts, reads request bodies, queues pipelined requests and writes answers
//! straight into the client's socket, so one slow or hostile client could hold its request threads. Here a
//! connection has at most one request in flight; tiny_http's answer is read whole into the relay's buffer
//! (the request thread moves on at once) and written to the client under a deadline; and a client gone away
//! costs no further request. With TLS on, the handshake happens here too.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::ops::ControlFlow::{self, Break, Continue};
use std::os::fd::AsRawFd;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{debug, error};
use openssl::ssl::SslAcceptor;

use super::client::{tls_accept, wait_until, Client, HandshakeEnd};
use super::conn::{us_since, Closed, Conn, NO_HEADER};
use super::request::{examine, find_head, mark_last, Found, Refusal};
use crate::http::webconfig::WebState;

/// How long a connection may stay quiet (`METRICS_HTTP_TIMEOUT_SECS`; also the deadline for writing one
/// answer to the client) and how long a request head may take (`METRICS_HTTP_HEADER_TIMEOUT_SECS`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Timeouts {
    pub idle: Duration,
    pub header: Duration,
}

/// The largest answer the relay holds for a client: far above any exposition (a million series is about
/// 100 MiB of text); past it the connection is closed and the error logged.
const MAX_ANSWER_BYTES: usize = 256 << 20;

/// An answer buffer larger than this is not kept for the connection's next request.
const KEEP_ANSWER_CAPACITY: usize = 1 << 20;

/// Relays one admitted connection until it ends, and returns why (counted, see `Conn::settle`).
///
/// With TLS (`web` has an acceptor) the handshake comes first, within the first head's deadline and `idle`,
/// and everything else applies to the decrypted bytes.
pub(super) fn relay(
    tcp: TcpStream,
    handler: &UnixAddr,
    conn: &Conn,
    timeouts: Timeouts,
    web: Option<&WebState>,
) -> Closed {
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().ok().map(|a| a.ip());
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
    Relay::new(client, handler, conn, timeouts, accepted, peer).run()
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

/// One connection being relayed: the client, the bytes it sent that are not answered yet, and where the
/// relay stands.
struct Relay<'a> {
    conn: &'a Conn,
    /// tiny_http's socket address.
    handler: &'a UnixAddr,
    timeouts: Timeouts,
    client: Client,
    /// The client's address, passed on to the request handlers.
    peer: Option<IpAddr>,
    /// Client bytes not answered yet: at most one read past `MAX_HEADER_BYTES` (no more is read while a
    /// complete head waits in it).
    inbox: Vec<u8>,
    /// How much of `inbox` is known to hold no head end.
    searched: usize,
    /// When the head in `inbox` began (its first byte; the accept, for the first); `None` when none has.
    head_since: Option<Instant>,
    /// Bytes read from the client.
    buf: Vec<u8>,
    /// The head passed on to tiny_http, and its answer.
    request: Vec<u8>,
    answer: Vec<u8>,
    /// The client has not closed its sending side.
    client_open: bool,
    /// When a byte last moved in either direction.
    last: Instant,
    /// Why the relay ends, once settled with the gate.
    settled: Option<Closed>,
}

impl<'a> Relay<'a> {
    fn new(
        client: Client,
        handler: &'a UnixAddr,
        conn: &'a Conn,
        timeouts: Timeouts,
        accepted: Instant,
        peer: Option<IpAddr>,
    ) -> Self {
        Relay {
            conn,
            handler,
            timeouts,
            client,
            peer,
            inbox: Vec::new(),
            searched: 0,
            head_since: Some(accepted),
            buf: vec![0u8; 16 * 1024],
            request: Vec::new(),
            answer: Vec::new(),
            client_open: true,
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
        self.client.close();
        why
    }

    /// Answers the request waiting in `inbox`, if one is complete; else waits for more of it.
    fn step(&mut self) -> ControlFlow<Closed> {
        if self.conn.evicted() {
            return Break(Closed::Evicted);
        }
        match find_head(&self.inbox, self.searched) {
            Found::Head { start, end } => return self.answer_one(start, end),
            Found::TooLarge => return Break(self.refuse(Refusal::HeaderTooLarge)),
            Found::Partial { searched } => self.searched = searched,
        }
        if !self.client_open {
            // Done sending, and every complete request is answered.
            return Break(Closed::Normal);
        }
        let time_left = self.time_left()?;
        // Decrypted bytes OpenSSL already holds are read without waiting.
        if self.client.pending() == 0 && !wait_until(self.client.tcp(), libc::POLLIN, Instant::now() + time_left) {
            return Continue(()); // a deadline passed (the next step says which) or a signal
        }
        self.read_client()
    }

    /// Time until the idle or the head deadline, whichever is first; `Break` once one has passed.
    fn time_left(&self) -> ControlFlow<Closed, Duration> {
        let idle_left = self.timeouts.idle.saturating_sub(self.last.elapsed());
        if idle_left.is_zero() {
            return Break(Closed::IdleTimeout);
        }
        let header_left = match self.head_since {
            Some(t) => (t + self.timeouts.header).saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        };
        if header_left.is_zero() {
            return Break(Closed::HeaderTimeout);
        }
        Continue(idle_left.min(header_left))
    }

    /// Reads what the client sent into `inbox`.
    fn read_client(&mut self) -> ControlFlow<Closed> {
        match self.client.read(&mut self.buf) {
            // A partial TLS record: wait for the rest.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {}
            Ok(0) | Err(_) => {
                if self.conn.evicted() {
                    return Break(Closed::Evicted);
                }
                self.client_open = false;
                self.head_since = None;
            }
            Ok(n) => {
                self.last = Instant::now();
                if self.inbox.is_empty() && self.head_since.is_none() {
                    self.head_since = Some(self.last);
                }
                self.inbox.extend_from_slice(&self.buf[..n]);
            }
        }
        self.publish();
        Continue(())
    }

    /// Answers the request whose head is `inbox[start..end]`: refused here, or passed on to tiny_http and
    /// its answer written to the client.
    fn answer_one(&mut self, start: usize, end: usize) -> ControlFlow<Closed> {
        let close = match examine(&self.inbox[start..end], self.peer, &mut self.request) {
            Ok(close) => close,
            Err(refusal) => return Break(self.refuse(refusal)),
        };
        self.inbox.drain(..end);
        self.searched = 0;
        self.head_since = (!self.inbox.is_empty()).then(Instant::now);
        // Pipelined requests of a client that has gone away are not worth answering.
        if self.client_gone() {
            return Break(Closed::Normal);
        }
        self.conn.awaiting.store(true, Ordering::SeqCst);
        self.publish();
        self.ask_handler()?;
        if close {
            mark_last(&mut self.answer);
        }
        let written = self.client.write_all(&self.answer, Instant::now() + self.timeouts.idle);
        if self.answer.capacity() > KEEP_ANSWER_CAPACITY {
            self.answer = Vec::new();
        }
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Break(Closed::WriteTimeout),
            Err(_) => return Break(Closed::Normal),
            Ok(()) => {}
        }
        self.last = Instant::now();
        self.conn.awaiting.store(false, Ordering::SeqCst);
        self.publish();
        if close {
            return Break(Closed::Normal);
        }
        Continue(())
    }

    /// Passes `request` to tiny_http on a connection of its own and reads the whole answer into `answer`
    /// (tiny_http closes the connection after it: the request says `Connection: close`).
    fn ask_handler(&mut self) -> ControlFlow<Closed> {
        let Some(mut backend) = connect_handler(self.handler, self.conn, self.timeouts.idle) else {
            return Break(Closed::Normal);
        };
        self.answer.clear();
        let asked = backend
            .write_all(&self.request)
            .and_then(|()| (&mut backend).take(MAX_ANSWER_BYTES as u64 + 1).read_to_end(&mut self.answer));
        *self.conn.backend.lock().unwrap_or_else(|e| e.into_inner()) = None;
        match asked {
            Ok(_) if self.answer.len() > MAX_ANSWER_BYTES => {
                error!("http: an answer larger than {MAX_ANSWER_BYTES} bytes was not sent");
                Break(Closed::Normal)
            }
            Ok(0) => Break(Closed::Normal),
            Ok(_) => Continue(()),
            Err(e) => {
                debug!("http: no answer from the request handler: {e}");
                Break(Closed::Normal)
            }
        }
    }

    /// Whether the client's socket has failed or been closed both ways (as after a write met a reset).
    fn client_gone(&self) -> bool {
        let mut p = libc::pollfd { fd: self.client.tcp().as_raw_fd(), events: 0, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call; a zero timeout never blocks.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
    }

    /// Tells the gate where the connection stands.
    fn publish(&self) {
        let since = self.head_since.map_or(NO_HEADER, |t| us_since(self.conn.epoch, t));
        self.conn.header_since.store(since, Ordering::SeqCst);
        self.conn.last.store(us_since(self.conn.epoch, self.last), Ordering::SeqCst);
    }

    /// Answers a refused request itself and ends the connection, unless the gate evicted it first.
    fn refuse(&mut self, refusal: Refusal) -> Closed {
        debug!("http: {}: refused ({})", self.peer.map_or_else(|| "?".into(), |p| p.to_string()), refusal.label());
        let why = self.settle(Closed::Refused(refusal));
        if why == Closed::Refused(refusal) {
            let _ = self.client.write_all(&refusal.answer(), Instant::now() + self.timeouts.idle);
            self.client.shutdown_write();
            discard_unread(&self.client, &mut self.buf);
        }
        why
    }

    /// Settles why the relay ends, once (see `Conn::settle`): later calls return the first answer.
    fn settle(&mut self, why: Closed) -> Closed {
        *self.settled.get_or_insert_with(|| self.conn.settle(why))
    }
}

/// Connects to tiny_http and leaves the gate a handle on the socket (to end a relay blocked on it).
fn connect_handler(handler: &UnixAddr, conn: &Conn, idle: Duration) -> Option<UnixStream> {
    let b = match UnixStream::connect_addr(handler) {
        Ok(b) => b,
        Err(e) => {
            error!("http: cannot reach the request handler: {e}");
            return None;
        }
    };
    let _ = b.set_write_timeout(Some(idle));
    let _ = b.set_read_timeout(Some(idle));
    match b.try_clone() {
        Ok(h) => *conn.backend.lock().unwrap_or_else(|e| e.into_inner()) = Some(h),
        Err(e) => {
            error!("http: cannot keep a handle on a connection: {e}");
            return None;
        }
    }
    Some(b)
}

/// After a refusal: the client's further bytes (a body, more requests) are read and dropped, undecrypted, up
/// to 256 KiB or 200 ms, so that the answer is delivered before the close (which, with unread bytes,
/// resets the connection). Bounded: a client sending a huge request costs at most this much more reading.
fn discard_unread(client: &Client, buf: &mut [u8]) {
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
