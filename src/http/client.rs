//! The client side of a relayed connection: plain TCP, or TLS over it, on a non-blocking socket.
//!
//! Reads and writes wait with poll(2) up to a deadline, so that no client can hold a relay thread in a
//! blocking call; the TLS handshake runs the same way.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use openssl::ssl::{ErrorCode, HandshakeError, SslAcceptor, SslStream};

/// The client side of a relayed connection: plain TCP, or TLS over it. The socket is non-blocking.
pub(super) enum Client {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Client {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Client::Plain(t) => t,
            Client::Tls(s) => s.get_ref(),
        }
    }
    /// Decrypted bytes already buffered (poll(2) cannot see them).
    pub fn pending(&self) -> usize {
        match self {
            Client::Plain(_) => 0,
            Client::Tls(s) => s.ssl().pending(),
        }
    }
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Client::Plain(t) => t.read(buf),
            Client::Tls(s) => s.read(buf),
        }
    }
    /// Writes everything or fails; waits for the socket at most until `deadline`.
    pub fn write_all(&mut self, mut data: &[u8], deadline: Instant) -> std::io::Result<()> {
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
    pub fn shutdown_write(&mut self) {
        if let Client::Tls(s) = self {
            let _ = s.shutdown();
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }
    pub fn close(mut self) {
        self.shutdown_write();
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

/// Waits until `fd` is ready for `events` or `deadline` passes; false on timeout.
pub(super) fn wait_until(fd: &impl AsRawFd, events: libc::c_short, deadline: Instant) -> bool {
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
pub(super) enum HandshakeEnd {
    TimedOut,
    Failed(String),
}

/// The server side of the TLS handshake on a non-blocking socket, all of it before `deadline`. An eviction
/// (the gate shuts the socket down) ends it as a failure at once.
pub(super) fn tls_accept(
    acceptor: &SslAcceptor,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<SslStream<TcpStream>, HandshakeEnd> {
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
