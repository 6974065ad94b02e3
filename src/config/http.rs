//! The HTTP server's settings: address, port, threads, connection limits and timeouts, and the web config file
//! (TLS and basic auth). The file is read and its certificates loaded here, at validation, so a broken file
//! is reported with every other problem before anything starts.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::check::Checker;
use super::setting::Setting;
use crate::http::webconfig::WebConfigFile;

#[derive(Clone, Debug)]
pub struct HttpConfig {
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
        let port = c.integer::<u16>(Setting::MetricsPort, 0, 65535);
        let threads = c.integer::<usize>(Setting::MetricsHttpThreads, 1, 16);
        let max_connections = c.integer::<usize>(Setting::MetricsMaxConnections, 1, 10_000);
        let shutdown_linger = Duration::from_secs(c.integer::<u64>(Setting::MetricsShutdownLingerSecs, 0, 60));
        let timeout = Duration::from_secs(c.integer::<u64>(Setting::MetricsHttpTimeoutSecs, 1, 300));
        let header_timeout = Duration::from_secs(c.integer::<u64>(Setting::MetricsHttpHeaderTimeoutSecs, 1, 300));
        let web_config = match c.explicit(Setting::WebConfigFile) {
            None => None,
            Some(p) => match crate::http::webconfig::load_file(Path::new(&p)) {
                Ok(file) => Some(file),
                Err(e) => {
                    c.fail(Setting::WebConfigFile, &p, format!("expected a valid exporter-toolkit web config: {e}"));
                    None
                }
            },
        };
        HttpConfig { bind_ip, port, threads, max_connections, timeout, header_timeout, shutdown_linger, web_config }
    }
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
    fn a_missing_web_config_file_is_a_problem_naming_the_file() {
        let e = errs(&[("WEB_CONFIG_FILE", "/nonexistent/web.yml")]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].value, "/nonexistent/web.yml");
        assert!(e[0].allowed.starts_with("expected a valid exporter-toolkit web config: "), "{}", e[0].allowed);
    }
}
