//! `healthcheck`: GET a URL and succeed only on HTTP 200 (for container health checks with no shell or curl).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::config::cli::HealthcheckArgs;
use crate::config::{RawSettings, Setting};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CheckError {
    #[error("unsupported URL {0:?}: expected http://HOST[:PORT][/PATH]")]
    Url(String),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("{0}")]
    Io(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("not an HTTP response: {0:?}")]
    Garbled(String),
}

/// The `healthcheck` subcommand: exit 0 on a 200 answer, else 1 with the reason.
pub fn main(args: HealthcheckArgs) -> i32 {
    let url = args.url.unwrap_or_else(|| default_url(&args.settings));
    match check(&url, args.timeout) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("healthcheck {url}: {e}");
            1
        }
    }
}

/// The daemon's readiness URL on loopback: `METRICS_PORT` when it is a valid port, else 9190.
pub fn default_url(settings: &RawSettings) -> String {
    let port = settings
        .get(Setting::MetricsPort)
        .map(|(p, _)| p)
        .filter(|p| p.parse::<u16>().is_ok())
        .unwrap_or_else(|| "9190".into());
    format!("http://127.0.0.1:{port}/-/ready")
}

/// Splits `http://host[:port][/path]` into (host:port, path).
pub fn parse_url(url: &str) -> Result<(String, String), CheckError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| CheckError::Url(url.into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(CheckError::Url(url.into()));
    }
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    let hostport = if has_port { authority.to_string() } else { format!("{authority}:80") };
    Ok((hostport, path.to_string()))
}

/// Performs the check; Ok(()) only for a 200 answer within `timeout`.
pub fn check(url: &str, timeout: Duration) -> Result<(), CheckError> {
    let (hostport, path) = parse_url(url)?;
    let deadline = Instant::now() + timeout;
    let addr = hostport
        .to_socket_addrs()
        .map_err(|_| CheckError::Resolve(hostport.clone()))?
        .next()
        .ok_or_else(|| CheckError::Resolve(hostport.clone()))?;
    let io = |e: std::io::Error| CheckError::Io(format!("{hostport}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).map_err(io)?;
    s.set_write_timeout(Some(left)).map_err(io)?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: dashflow-prometheus-exporter-healthcheck\r\nConnection: close\r\n\r\n")
        .map_err(io)?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut head[n..]).map_err(io)? {
            0 => break,
            k => n += k,
        }
    }
    let line = String::from_utf8_lossy(&head[..n]).into_owned();
    let code: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| CheckError::Garbled(line.clone()))?;
    if code == 200 {
        Ok(())
    } else {
        Err(CheckError::Status(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("http://127.0.0.1:9190/-/ready").unwrap(), ("127.0.0.1:9190".into(), "/-/ready".into()));
        assert_eq!(parse_url("http://localhost").unwrap(), ("localhost:80".into(), "/".into()));
        assert_eq!(parse_url("http://[::1]:9190/x").unwrap(), ("[::1]:9190".into(), "/x".into()));
        assert_eq!(parse_url("http://[::1]/x").unwrap(), ("[::1]:80".into(), "/x".into()));
        assert!(parse_url("https://x/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn default_url_uses_a_valid_metrics_port() {
        let url = |port: &str| {
            let port = port.to_string();
            default_url(&RawSettings::from_env(|k| (k == "METRICS_PORT").then(|| port.clone())))
        };
        assert_eq!(url("9300"), "http://127.0.0.1:9300/-/ready");
        assert_eq!(url(""), "http://127.0.0.1:9190/-/ready");
        assert_eq!(url("not-a-port"), "http://127.0.0.1:9190/-/ready");
    }
}
