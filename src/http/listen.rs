//! The public listeners: each `--web.listen-address` bound here, or the sockets systemd passes under
//! `--web.systemd-socket` (socket activation: `LISTEN_PID` names this process, `LISTEN_FDS` counts the
//! descriptors from 3 on), as the exporter-toolkit's flags do.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};

use super::BindError;
use crate::config::ListenAddr;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// Binds one address; `:PORT` binds IPv6's any-address (which takes IPv4 too), or IPv4's where the host
/// has no IPv6.
pub(super) fn bind_one(a: &ListenAddr) -> Result<TcpListener, BindError> {
    let err = |addr: SocketAddr, e: std::io::Error| BindError { addr: addr.to_string(), source: Box::new(e) };
    match *a {
        ListenAddr::Socket(addr) => TcpListener::bind(addr).map_err(|e| err(addr, e)),
        ListenAddr::AnyHost(port) => {
            let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
            TcpListener::bind(v6).or_else(|e| match e.raw_os_error() {
                Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL) => {
                    let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
                    TcpListener::bind(v4).map_err(|e| err(v4, e))
                }
                _ => Err(err(v6, e)),
            })
        }
    }
}

/// Takes the listening TCP sockets systemd passed to this process.
pub(super) fn systemd_listeners() -> Result<Vec<TcpListener>, String> {
    let pid = std::env::var("LISTEN_PID").map_err(|_| "LISTEN_PID is not set: not started by socket activation")?;
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Err(format!("LISTEN_PID={pid} is not this process ({}): the sockets are not ours", std::process::id()));
    }
    let n: RawFd = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| (1..=64).contains(n))
        .ok_or("no socket activation file descriptors found (LISTEN_FDS)")?;
    let mut out = Vec::new();
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + n {
        let (mut ty, mut listening) = (0 as libc::c_int, 0 as libc::c_int);
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt(2) into ints we own, with their size; an fd that is no socket just fails.
        let is_stream = unsafe {
            libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, (&mut ty as *mut libc::c_int).cast(), &mut len)
        } == 0
            && ty == libc::SOCK_STREAM;
        len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as above.
        let accepts = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                (&mut listening as *mut libc::c_int).cast(),
                &mut len,
            )
        } == 0
            && listening == 1;
        if !is_stream || !accepts {
            return Err(format!("descriptor {fd} from systemd is not a listening stream socket"));
        }
        // SAFETY: systemd hands this process the descriptor (LISTEN_PID checked); it is owned from here on.
        let l = unsafe { TcpListener::from_raw_fd(fd) };
        match l.local_addr() {
            Ok(SocketAddr::V4(_) | SocketAddr::V6(_)) => {}
            Err(_) => return Err(format!("descriptor {fd} from systemd is not a TCP socket (only TCP is served)")),
        }
        // SAFETY: fcntl(2) on a descriptor we own: not inherited by children.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        out.push(l);
    }
    Ok(out)
}
