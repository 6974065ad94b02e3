//! The HTTP server's settings: address, port, threads, connection limits and timeouts, and the web config file
//! (TLS and basic auth). The file is read and its certificates loaded here, at validation, so a broken file
//! is reported with every other problem before anything starts.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use super::check::Checker;
use super::setting::Setting;
use super::webconfig::{load_file, WebConfigFile};

/// Where the HTTP server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `--web.listen-address` (each once), else `METRICS_BIND_IP:METRICS_PORT`.
    Addresses(Vec<ListenAddr>),
    /// `--web.systemd-socket`: the sockets systemd passes.
    Systemd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Socket(SocketAddr),
    /// `:PORT`: every interface, IPv6 and IPv4 (IPv4 only where the host has no IPv6), as Go listens.
    AnyHost(u16),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Socket(a) => write!(f, "{a}"),
            ListenAddr::AnyHost(p) => write!(f, ":{p}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub listen: Listen,
    pub bind_ip: IpAddr,
    pub port: u16,
    pub threads: usize,
    pub max_connections: usize,
    pub timeout: Duration,
    /// Time allowed to receive a complete request header (from its first byte, or from accept).
    pub header_timeout: Duration,
    pub shutdown_linger: Duration,
    /// `--web.config.file`, read and checked at start-up (parsed, certificates loaded); `http::bind` starts
    /// from it without reading the file again.
    pub web_config: Option<WebConfigFile>,
}

impl HttpConfig {
    pub(crate) fn check(c: &mut Checker<'_>) -> HttpConfig {
        let bind_ip = c.parsed(Setting::MetricsBindIp, parse_bind_ip, IpAddr::from([0, 0, 0, 0]));
        let port = c.integer::<u16>(Setting::MetricsPort);
        let threads = c.integer::<usize>(Setting::MetricsHttpThreads);
        let max_connections = c.integer::<usize>(Setting::MetricsMaxConnections);
        let shutdown_linger = Duration::from_secs(c.integer::<u64>(Setting::MetricsShutdownLingerSecs));
        let timeout = Duration::from_secs(c.integer::<u64>(Setting::MetricsHttpTimeoutSecs));
        let header_timeout = Duration::from_secs(c.integer::<u64>(Setting::MetricsHttpHeaderTimeoutSecs));
        let web_config = match c.explicit(Setting::WebConfigFile) {
            None => None,
            Some(p) => match load_file(Path::new(&p)) {
                Ok(file) => Some(file),
                Err(e) => {
                    c.fail(Setting::WebConfigFile, &p, format!("expected a valid exporter-toolkit web config: {e}"));
                    None
                }
            },
        };
        let listen = listen(c, bind_ip, port);
        HttpConfig {
            listen,
            bind_ip,
            port,
            threads,
            max_connections,
            timeout,
            header_timeout,
            shutdown_linger,
            web_config,
        }
    }
}

/// `--web.systemd-socket`, else `--web.listen-address`, else the bind address and port.
fn listen(c: &mut Checker<'_>, bind_ip: IpAddr, port: u16) -> Listen {
    let systemd = match c.explicit(Setting::WebSystemdSocket).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            c.fail(Setting::WebSystemdSocket, other, "expected true or false (the flag takes no value)");
            false
        }
    };
    let addresses = match c.explicit(Setting::WebListenAddress) {
        None => vec![ListenAddr::Socket(SocketAddr::new(bind_ip, port))],
        Some(list) => {
            let mut out = Vec::new();
            for a in list.split(',').map(str::trim) {
                match parse_listen_address(a) {
                    Ok(l) if !out.contains(&l) => out.push(l),
                    Ok(_) => {}
                    Err(e) => c.fail(Setting::WebListenAddress, a, e),
                }
            }
            out
        }
    };
    if systemd {
        Listen::Systemd
    } else {
        Listen::Addresses(addresses)
    }
}

/// One `--web.listen-address`: `host:port` (a name resolves to its first address, IPv4 first), `[v6]:port`,
/// or `:port`.
pub fn parse_listen_address(s: &str) -> Result<ListenAddr, String> {
    const ALLOWED: &str =
        "expected host:port, [IPv6]:port or :port (port 0..65535), e.g. 0.0.0.0:9190, [::]:9190 or :9190";
    if let Some(port) = s.strip_prefix(':') {
        return port.parse::<u16>().map(ListenAddr::AnyHost).map_err(|_| ALLOWED.to_string());
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(ListenAddr::Socket(a));
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(|| ALLOWED.to_string())?;
    if host.is_empty() || host.contains(':') || port.parse::<u16>().is_err() {
        return Err(ALLOWED.to_string());
    }
    let addrs: Vec<SocketAddr> = s.to_socket_addrs().map_err(|e| format!("cannot resolve {host:?}: {e}"))?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(|a| ListenAddr::Socket(*a))
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

/// An IPv4 or IPv6 literal; brackets around an IPv6 one are allowed (`[::1]`).
fn parse_bind_ip(s: &str) -> Result<IpAddr, String> {
    let t = s.trim();
    let t = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(t);
    t.parse::<IpAddr>()
        .map_err(|_| "expected an IPv4 or IPv6 address literal, e.g. 0.0.0.0, 127.0.0.1 or ::".to_string())
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{errs, ok};
    use std::time::Duration;

    #[test]
    fn http_header_timeout_default_and_bounds() {
        assert_eq!(ok(&[]).http.header_timeout, Duration::from_secs(5));
        assert_eq!(ok(&[("METRICS_HTTP_HEADER_TIMEOUT_SECS", "30")]).http.header_timeout, Duration::from_secs(30));
        for bad in ["0", "301", "-1", "5s"] {
            let e = errs(&[("METRICS_HTTP_HEADER_TIMEOUT_SECS", bad)]);
            assert_eq!(e.len(), 1, "{bad}");
            assert_eq!(e[0].setting.env(), "METRICS_HTTP_HEADER_TIMEOUT_SECS");
            assert_eq!(e[0].value, bad);
            assert!(e[0].allowed.contains("1 to 300"), "{}", e[0].allowed);
        }
    }

    #[test]
    fn bracketed_ipv6_bind_address_is_accepted() {
        assert_eq!(ok(&[("METRICS_BIND_IP", "[::1]")]).http.bind_ip.to_string(), "::1");
        assert_eq!(ok(&[("METRICS_BIND_IP", "::")]).http.bind_ip.to_string(), "::");
    }

    #[test]
    fn listen_addresses_as_the_toolkit_writes_them() {
        use super::{Listen, ListenAddr};
        let sock = |s: &str| ListenAddr::Socket(s.parse().unwrap());
        assert_eq!(ok(&[]).http.listen, Listen::Addresses(vec![sock("0.0.0.0:9190")]));
        assert_eq!(
            ok(&[("METRICS_BIND_IP", "127.0.0.1"), ("METRICS_PORT", "9300")]).http.listen,
            Listen::Addresses(vec![sock("127.0.0.1:9300")])
        );
        assert_eq!(
            ok(&[("WEB_LISTEN_ADDRESS", "127.0.0.1:9191, [::]:9192,:9193,localhost:9194,:9193")]).http.listen,
            Listen::Addresses(vec![
                sock("127.0.0.1:9191"),
                sock("[::]:9192"),
                ListenAddr::AnyHost(9193),
                sock("127.0.0.1:9194")
            ])
        );
        assert_eq!(ok(&[("WEB_SYSTEMD_SOCKET", "true"), ("WEB_LISTEN_ADDRESS", ":1")]).http.listen, Listen::Systemd);
        for bad in ["9190", "1.2.3.4", ":99999", "[::1]", "host:port", "a:b:1"] {
            let e = errs(&[("WEB_LISTEN_ADDRESS", bad)]);
            assert_eq!(e.len(), 1, "{bad}");
            assert_eq!((e[0].setting.env(), e[0].value.as_str()), ("WEB_LISTEN_ADDRESS", bad));
            assert!(e[0].allowed.starts_with("expected host:port"), "{bad}: {}", e[0].allowed);
        }
        let e = errs(&[("WEB_SYSTEMD_SOCKET", "yes please")]);
        assert_eq!((e.len(), e[0].allowed.as_str()), (1, "expected true or false (the flag takes no value)"));
    }

    #[test]
    fn a_missing_web_config_file_is_a_problem_naming_the_file() {
        let e = errs(&[("WEB_CONFIG_FILE", "/nonexistent/web.yml")]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].value, "/nonexistent/web.yml");
        assert!(e[0].allowed.starts_with("expected a valid exporter-toolkit web config: "), "{}", e[0].allowed);
    }
}
