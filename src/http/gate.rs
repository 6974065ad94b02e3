//! The connection gate: owns the public listeners and admits at most `METRICS_MAX_CONNECTIONS` connections,
//! each relayed to tiny_http by a thread of its own.
//!
//! tiny_http would give every open connection a thread and no timeouts, so idle or slow clients could
//! exhaust the process. At the cap the gate closes the connection that has been sending an incomplete header
//! the longest, or else one idle in keep-alive, so that trickling or idle clients cannot lock out a scraper;
//! only when every slot has a request in progress does a newcomer get a 503. Threads stay bounded: one
//! relay thread per admitted connection, joined before its slot is reused.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::SocketAddr as UnixAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, warn};

use super::conn::{Conn, NO_HEADER};
use super::relay::{relay, Timeouts};
use crate::http::webconfig::WebState;
use crate::metrics::{CloseReason, Metrics};
use crate::runtime::logging::RateLimit;
use crate::runtime::shutdown::Lifecycle;

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\ntoo many connections, try again\n";

/// A kept-alive connection with no request in progress may be closed to admit a new one once nothing has
/// moved on it for this long.
const EVICT_IDLE_AFTER_US: u64 = 1_000_000;

/// How long the gate waits for an evicted connection's thread to end before it refuses the newcomer.
const EVICT_WAIT: Duration = Duration::from_millis(500);

/// An admitted connection: its published state and its relay thread.
struct Admitted {
    conn: Arc<Conn>,
    thread: std::thread::JoinHandle<()>,
    /// Disconnected when the relay thread is done.
    done: crossbeam_channel::Receiver<()>,
}

/// The public listeners and the limits it admits connections by (one cap over all listeners).
pub(super) struct Gate {
    listeners: Vec<TcpListener>,
    /// tiny_http's private socket, which each relay connects to.
    handler: UnixAddr,
    web: Option<Arc<WebState>>,
    max_connections: usize,
    timeouts: Timeouts,
    active: Arc<AtomicUsize>,
}

impl Gate {
    /// A gate on `listeners` (non-blocking) that relays to tiny_http listening on `handler`.
    pub(super) fn new(
        listeners: Vec<TcpListener>,
        handler: UnixAddr,
        web: Option<Arc<WebState>>,
        max_connections: usize,
        timeouts: Timeouts,
    ) -> Gate {
        Gate { listeners, handler, web, max_connections, timeouts, active: Arc::new(AtomicUsize::new(0)) }
    }

    /// Connections currently admitted.
    pub(super) fn active_connections(&self) -> usize {
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
    pub(super) fn run(&self, metrics: &Metrics, life: &Lifecycle) {
        // The relay threads it starts inherit this.
        crate::runtime::sched::prefer_latency_for("http-gate");
        let busy_log = RateLimit::new(Duration::from_secs(10));
        if let Some(Err(e)) = self.web.as_ref().map(|w| w.register(&metrics.registry)) {
            warn!("web config metrics not registered: {e}");
        }
        let epoch = Instant::now();
        let mut admitted: Vec<Admitted> = Vec::with_capacity(self.max_connections);
        // Refused connections linger briefly (answer sent, write side shut) so that closing them with unread
        // request bytes does not reset the connection before the client has read the 503.
        let mut lingering: VecDeque<(TcpStream, Instant)> = VecDeque::new();
        let mut next = 0;
        while !life.http_stop_requested() {
            reap(&mut lingering);
            self.reap_admitted(&mut admitted);
            match self.accept_any(&mut next) {
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
                    self.refuse(tcp, &mut lingering);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let busy = !lingering.is_empty() || admitted.len() >= self.max_connections;
                    wait_readable(&self.listeners, if busy { 20 } else { 200 })
                }
                Err(e) => {
                    debug!("http accept: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// A connection from any listener, taking them in turn so that none starves the others.
    fn accept_any(&self, next: &mut usize) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
        let n = self.listeners.len();
        for i in 0..n {
            let at = (*next + i) % n;
            match self.listeners[at].accept() {
                Ok(c) => {
                    *next = (at + 1) % n;
                    return Ok(c);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::ErrorKind::WouldBlock.into())
    }

    /// Answers 503 (unless TLS is on) and lets the connection linger until the client has read it.
    fn refuse(&self, tcp: TcpStream, lingering: &mut VecDeque<(TcpStream, Instant)>) {
        if tcp.set_nonblocking(true).is_err() {
            return;
        }
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

    /// Whether the web config in force terminates TLS (it may change when the file is re-read).
    fn tls_on(&self) -> bool {
        self.web.as_ref().is_some_and(|w| w.current().acceptor.is_some())
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

    /// Closes one connection by the admission policy (see `run`), counts it, and waits (briefly) for
    /// its thread to end, which frees its slot.
    fn evict(&self, admitted: &mut Vec<Admitted>, metrics: &Metrics) {
        let Some(first) = admitted.first() else { return };
        let now = first.conn.now_us();
        let live = || admitted.iter().enumerate().filter(|(_, a)| a.conn.is_live());
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
        if conn.mark_evicted() {
            metrics.http_closed[CloseReason::Evicted].inc();
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
        let conn = Arc::new(Conn::accepted(tcp_handle, epoch, metrics.http_closed.clone()));
        let timeouts = self.timeouts;
        let state = conn.clone();
        let handler = self.handler.clone();
        let web = self.web.clone();
        let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
        let spawned = std::thread::Builder::new().name("http-conn".into()).spawn(move || {
            let _done = done_tx;
            relay(tcp, &handler, &state, timeouts, web.as_deref());
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

fn wait_readable(fds: &[impl AsRawFd], ms: i32) {
    let mut p: Vec<libc::pollfd> =
        fds.iter().map(|f| libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: valid pollfds, as many as passed, for the duration of the call.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
}

/// Whether a complete plaintext request header (its blank line) is waiting unread in the socket's receive
/// buffer. Never blocks and never consumes (MSG_PEEK | MSG_DONTWAIT); a TLS connection never matches.
fn request_waiting(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: recv(2) into a buffer we own, of the length given; the socket stays open for the call.
    let n =
        unsafe { libc::recv(tcp.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    let Ok(n) = usize::try_from(n) else { return false };
    // Empty lines before a request line complete nothing (`request::find_head`).
    let start = buf[..n].iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(n);
    buf[start..n].windows(4).any(|w| w == b"\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection whose whole request header sits unread is told apart from a partial or silent one, and
    /// looking does not consume it.
    #[test]
    fn a_waiting_complete_request_header_is_seen_without_being_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for sent in [
            &b""[..],
            b"GET /metrics HTTP/1.1\r\nHost: x",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\r\n\r\n\r\n",
        ] {
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
        assert!(!request_waiting(&servers[3]), "empty lines are no header");
        assert!(request_waiting(&servers[2]), "peeking twice: still there");
        let mut got = [0u8; 64];
        let n = servers[2].read(&mut got).unwrap();
        assert_eq!(&got[..n], b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(!request_waiting(&servers[2]), "read: gone");
    }
}
