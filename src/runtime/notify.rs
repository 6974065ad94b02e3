//! systemd's notify protocol over `NOTIFY_SOCKET` (a Unix datagram socket), so that a `Type=notify` unit
//! starts its dependents only once the exporter is ready and restarts it when it hangs: `READY=1` once the
//! exporter is ready, `WATCHDOG=1` while it is healthy when the unit sets `WatchdogSec`, `STOPPING=1` at
//! shutdown. Without `NOTIFY_SOCKET` every call does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    pub fn from_env() -> Notifier {
        Self::from_vars(
            std::env::var("NOTIFY_SOCKET").ok(),
            std::env::var("WATCHDOG_USEC").ok(),
            std::env::var("WATCHDOG_PID").ok(),
        )
    }

    pub fn from_vars(socket: Option<String>, watchdog_usec: Option<String>, watchdog_pid: Option<String>) -> Notifier {
        let target = socket.filter(|s| !s.is_empty()).and_then(|s| {
            let addr = match s.strip_prefix('@') {
                Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()).ok()?,
                None => SocketAddr::from_pathname(&s).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        let for_us = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(std::process::id()));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The interval at which `WATCHDOG=1` must be sent (half the unit's `WatchdogSec`), if asked for.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref().and(self.watchdog).map(|w| w / 2)
    }

    /// Sends one notification (e.g. `READY=1\nSTATUS=…`); failures are logged at debug level only.
    pub fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.target {
            if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
                log::debug!("sd_notify {msg:?}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("dfe-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_vars(Some(path.display().to_string()), Some("4000000".into()), None);
        assert!(n.enabled());
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(2)));
        n.send("READY=1");
        let mut buf = [0u8; 64];
        let k = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn watchdog_only_for_our_pid_and_nothing_without_a_socket() {
        let n = Notifier::from_vars(Some("@x".into()), Some("1000".into()), Some("1".into()));
        assert_eq!(n.watchdog_interval(), None);
        let n = Notifier::from_vars(None, Some("1000".into()), None);
        assert!(!n.enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.send("READY=1");
    }
}
