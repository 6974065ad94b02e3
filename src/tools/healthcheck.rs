//! `healthcheck`: GET a URL and succeed only on HTTP 200 (for container health checks with no shell or curl).
//!
//! It works behind the same web config as the daemon: given `WEB_CONFIG_FILE` (or `--web.config.file`) it
//! reads that file, speaks TLS when the file turns TLS on (trusting `--ca-file` if given, else the
//! certificate the file configures) and sends basic auth credentials when the file has users: the user from
//! `HEALTHCHECK_USER` (`--user`), the password from the file named by `HEALTHCHECK_PASSWORD_FILE`
//! (`--password-file`) or from the variable `HEALTHCHECK_PASSWORD` (no flag: flags show in `ps`). The
//! password is never printed. The connection goes to loopback, so the certificate chain is verified but not
//! the host name in it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::X509;

use crate::config::cli::HealthcheckArgs;
use crate::config::webconfig::{load_file, Pem};
use crate::config::{ListenAddr, RawSettings, Setting};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CheckError {
    #[error("unsupported URL {0:?}: expected http://HOST[:PORT][/PATH] or https://…")]
    Url(String),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("{0}")]
    Io(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("not an HTTP response: {0:?}")]
    Garbled(String),
    #[error("{0}")]
    Setup(String),
}

/// How to reach the endpoint: TLS trust and credentials.
#[derive(Default)]
pub struct Client {
    /// PEM certificates to trust (a CA bundle, or the server's own certificate chain).
    pub trust: Option<Vec<u8>>,
    /// `user:password`, sent as basic auth.
    pub credentials: Option<(String, String)>,
}

/// The `healthcheck` subcommand: exit 0 on a 200 answer, else 1 with the reason.
pub fn main(args: HealthcheckArgs) -> i32 {
    let (client, tls) = match client(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return 1;
        }
    };
    let url = args.url.clone().unwrap_or_else(|| default_url(&args.settings, tls));
    match check_with(&url, args.timeout, &client) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("healthcheck {url}: {e}");
            1
        }
    }
}

/// Trust and credentials from the web config and the arguments; whether the web config turns TLS on.
fn client(args: &HealthcheckArgs) -> Result<(Client, bool), CheckError> {
    let setup = |m: String| CheckError::Setup(m);
    let web = match args.settings.get(Setting::WebConfigFile) {
        Some((p, _)) => Some(load_file(Path::new(&p)).map_err(|e| setup(format!("web config: {e}")))?),
        None => None,
    };
    let tls = web.as_ref().and_then(|w| w.config().tls.clone());
    let mut client = Client::default();
    if let Some(ca) = &args.ca_file {
        client.trust = Some(std::fs::read(ca).map_err(|e| setup(format!("--ca-file {}: {e}", ca.display())))?);
    } else if let Some(t) = &tls {
        client.trust = Some(match &t.cert {
            Pem::File(p) => std::fs::read(p).map_err(|e| setup(format!("{}: {e}", p.display())))?,
            Pem::Inline(s) => s.clone().into_bytes(),
        });
    }
    let password = match (&args.password_file, &args.password) {
        (Some(f), _) => Some(
            std::fs::read_to_string(f)
                .map(|s| s.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&s).to_string())
                .map_err(|e| setup(format!("--password-file {}: {e}", f.display())))?,
        ),
        (None, p) => p.clone(),
    };
    let needs_auth = web.as_ref().is_some_and(|w| !w.config().users.is_empty());
    client.credentials = match (&args.user, password) {
        (Some(u), Some(p)) => Some((u.clone(), p)),
        (None, None) if needs_auth => {
            return Err(setup(
                "the web config turns on basic auth: set HEALTHCHECK_USER and HEALTHCHECK_PASSWORD_FILE \
                 (or HEALTHCHECK_PASSWORD)"
                    .into(),
            ))
        }
        (None, None) => None,
        (Some(_), None) => return Err(setup("HEALTHCHECK_USER is set without a password".into())),
        (None, Some(_)) => return Err(setup("a password is set without HEALTHCHECK_USER".into())),
    };
    Ok((client, tls.is_some()))
}

/// The daemon's readiness URL on loopback: the first `WEB_LISTEN_ADDRESS` when set (its host unless that is
/// an any-address), else `METRICS_PORT` when it is a valid port, else 9190; https when the web config turns
/// TLS on.
pub fn default_url(settings: &RawSettings, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let first = settings.get(Setting::WebListenAddress).and_then(|(list, _)| {
        list.split(',').next().and_then(|a| crate::config::http::parse_listen_address(a.trim()).ok())
    });
    let hostport = match first {
        Some(ListenAddr::Socket(a)) if a.ip().is_unspecified() && a.is_ipv6() => format!("[::1]:{}", a.port()),
        Some(ListenAddr::Socket(a)) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        Some(ListenAddr::Socket(a)) => a.to_string(),
        Some(ListenAddr::AnyHost(port)) => format!("127.0.0.1:{port}"),
        None => {
            let port = settings
                .get(Setting::MetricsPort)
                .map(|(p, _)| p)
                .filter(|p| p.parse::<u16>().is_ok())
                .unwrap_or_else(|| "9190".into());
            format!("127.0.0.1:{port}")
        }
    };
    format!("{scheme}://{hostport}/-/ready")
}

/// Splits `http[s]://host[:port][/path]` into (TLS?, host:port, path).
pub fn parse_url(url: &str) -> Result<(bool, String, String), CheckError> {
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => return Err(CheckError::Url(url.into())),
    };
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
    let hostport = if has_port { authority.to_string() } else { format!("{authority}:{}", if tls { 443 } else { 80 }) };
    Ok((tls, hostport, path.to_string()))
}

/// Performs a plain check (no TLS trust, no credentials); Ok(()) only for a 200 answer within `timeout`.
pub fn check(url: &str, timeout: Duration) -> Result<(), CheckError> {
    check_with(url, timeout, &Client::default())
}

/// Performs the check; Ok(()) only for a 200 answer within `timeout`.
pub fn check_with(url: &str, timeout: Duration, client: &Client) -> Result<(), CheckError> {
    let (tls, hostport, path) = parse_url(url)?;
    let deadline = Instant::now() + timeout;
    let addr = hostport
        .to_socket_addrs()
        .map_err(|_| CheckError::Resolve(hostport.clone()))?
        .next()
        .ok_or_else(|| CheckError::Resolve(hostport.clone()))?;
    let io = |e: std::io::Error| CheckError::Io(format!("{hostport}: {e}"));
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).map_err(io)?;
    s.set_write_timeout(Some(left)).map_err(io)?;
    let auth = client.credentials.as_ref().map_or(String::new(), |(u, p)| {
        format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
    });
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: dashflow-prometheus-exporter-healthcheck\r\n{auth}Connection: close\r\n\r\n"
    );
    let line = if tls {
        let mut stream = tls_stream(s, client)?;
        exchange(&mut stream, &request).map_err(io)?
    } else {
        let mut s = s;
        exchange(&mut s, &request).map_err(io)?
    };
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

fn tls_stream(s: TcpStream, client: &Client) -> Result<openssl::ssl::SslStream<TcpStream>, CheckError> {
    let tls = |e: &dyn std::fmt::Display| CheckError::Tls(e.to_string());
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| tls(&e))?;
    match &client.trust {
        Some(pem) => {
            for c in X509::stack_from_pem(pem).map_err(|e| tls(&e))? {
                b.cert_store_mut().add_cert(c).map_err(|e| tls(&e))?;
            }
            // The server's own certificate is trusted as it is, without the CA that issued it.
            b.cert_store_mut().set_flags(X509VerifyFlags::PARTIAL_CHAIN).map_err(|e| tls(&e))?;
        }
        None => b.set_default_verify_paths().map_err(|e| tls(&e))?,
    }
    b.set_verify(SslVerifyMode::PEER);
    let mut cfg = b.build().configure().map_err(|e| tls(&e))?;
    // Loopback: the chain is verified, not the name the certificate was issued for.
    cfg.set_verify_hostname(false);
    cfg.connect("localhost", s).map_err(|e| tls(&e))
}

/// Sends the request and reads the status line's start.
fn exchange(s: &mut (impl Read + Write), request: &str) -> std::io::Result<String> {
    s.write_all(request.as_bytes())?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(String::from_utf8_lossy(&head[..n]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = |s: &str| parse_url(s).unwrap();
        assert_eq!(u("http://127.0.0.1:9190/-/ready"), (false, "127.0.0.1:9190".into(), "/-/ready".into()));
        assert_eq!(u("http://localhost"), (false, "localhost:80".into(), "/".into()));
        assert_eq!(u("https://localhost"), (true, "localhost:443".into(), "/".into()));
        assert_eq!(u("https://[::1]:9190/x"), (true, "[::1]:9190".into(), "/x".into()));
        assert_eq!(u("http://[::1]/x"), (false, "[::1]:80".into(), "/x".into()));
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn default_url_uses_a_valid_metrics_port_and_the_scheme_of_the_web_config() {
        let url = |port: &str, tls: bool| {
            let port = port.to_string();
            default_url(&RawSettings::from_env(|k| (k == "METRICS_PORT").then(|| port.clone())), tls)
        };
        assert_eq!(url("9300", false), "http://127.0.0.1:9300/-/ready");
        assert_eq!(url("9300", true), "https://127.0.0.1:9300/-/ready");
        assert_eq!(url("", false), "http://127.0.0.1:9190/-/ready");
        assert_eq!(url("not-a-port", false), "http://127.0.0.1:9190/-/ready");
        let listen = |list: &str| {
            let list = list.to_string();
            default_url(
                &RawSettings::from_env(|k| match k {
                    "WEB_LISTEN_ADDRESS" => Some(list.clone()),
                    "METRICS_PORT" => Some("9300".into()),
                    _ => None,
                }),
                false,
            )
        };
        assert_eq!(listen("10.1.2.3:9400,:9500"), "http://10.1.2.3:9400/-/ready");
        assert_eq!(listen(":9500"), "http://127.0.0.1:9500/-/ready");
        assert_eq!(listen("[::]:9600"), "http://[::1]:9600/-/ready");
        assert_eq!(listen("0.0.0.0:9700"), "http://127.0.0.1:9700/-/ready");
        assert_eq!(listen("bogus"), "http://127.0.0.1:9300/-/ready");
    }
}
