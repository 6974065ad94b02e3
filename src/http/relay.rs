//! The relay of one admitted connection: copies bytes between the client and tiny_http, and ends the
//! connection when it is idle, slow to send a header, sends a header too large, or is evicted by the gate.
//!
//! tiny_http sets no socket timeouts and buffers header lines of any length, so these limits are enforced
//! here, on the (decrypted) bytes before tiny_http sees them. With TLS on, the handshake happens here too.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{debug, error};

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

/// Copies bytes both ways between the client and tiny_http until both sides are done; ends early when
/// nothing moved for `idle`, when a request header is not complete `header_timeout` after it began (or
/// after the connection was accepted), when a header exceeds `MAX_HEADER_BYTES` (answered with 431), or
/// when the gate evicts the connection. tiny_http is only connected once the first request header is
/// complete (until then its bytes, at most `MAX_HEADER_BYTES`, wait here): a client that never completes one
/// costs no tiny_http thread. With TLS (`web` has an acceptor) the handshake comes first, within the first
/// header's deadline and `idle`, and the scanner sees the decrypted bytes. Returns why it ended (counted).
pub(super) fn relay(
    tcp: TcpStream,
    handler: &UnixAddr,
    conn: &Conn,
    timeouts: Timeouts,
    web: Option<&WebState>,
) -> Closed {
    let Timeouts { idle, header: header_timeout } = timeouts;
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
