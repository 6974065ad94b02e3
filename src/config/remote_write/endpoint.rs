//! The receiver's address: an `http://` or `https://` URL split into what a request needs (host to connect to,
//! port, the `Host` header, the request target). Only what remote write receivers use is accepted: no user
//! information (credentials have their own settings), no fragment.

use std::fmt;

/// A parsed receiver URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    /// Host name or IP literal, without brackets (what TLS verifies and DNS resolves).
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub target: String,
    /// The URL as given (it carries no credentials, so it may be logged).
    url: String,
}

impl Endpoint {
    /// Parses `http[s]://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("https://") {
            (true, &url[8..])
        } else if lower.starts_with("http://") {
            (false, &url[7..])
        } else {
            return Err("expected an http:// or https:// URL".into());
        };
        if rest.contains('#') {
            return Err("expected a URL without a #fragment".into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err(
                "expected a URL without user information (use REMOTE_WRITE_BASIC_AUTH_USERNAME and _PASSWORD)".into()
            );
        }
        let (host, port) = split_host_port(authority)?;
        let port = port.unwrap_or(if tls { 443 } else { 80 });
        let target = match target {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("expected a URL without spaces or control characters".into());
        }
        Ok(Endpoint { tls, host, port, target, url: url.to_string() })
    }

    /// The `Host` header: the host, with the port when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("expected a closing ] after an IPv6 address")?;
        h.parse::<std::net::Ipv6Addr>().map_err(|_| format!("expected an IPv6 address inside [], got {h:?}"))?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or("expected :port after ]")?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("expected a host name in the URL".into());
    }
    if !host.contains(':') && !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
        return Err(format!("expected a host name or IP address, got {host:?}"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("expected a port from 1 to 65535, got {p:?}")),
        },
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_target() {
        let e = Endpoint::parse("https://mimir.example:8443/api/v1/push").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port, e.target.as_str()), (true, "mimir.example", 8443, "/api/v1/push"));
        assert_eq!(e.host_header(), "mimir.example:8443");
        let e = Endpoint::parse("HTTP://127.0.0.1").unwrap();
        assert_eq!((e.tls, e.port, e.target.as_str(), e.host_header()), (false, 80, "/", "127.0.0.1".to_string()));
        let e = Endpoint::parse("http://[::1]:9090/api/v1/write?tenant=a").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.target.as_str()), ("::1", 9090, "/api/v1/write?tenant=a"));
        assert_eq!(e.host_header(), "[::1]:9090");
        assert_eq!(Endpoint::parse("https://h?x=1").unwrap().target, "/?x=1");
        assert_eq!(Endpoint::parse("https://h:443/").unwrap().host_header(), "h");
    }

    #[test]
    fn what_a_receiver_url_cannot_be_is_refused() {
        for (url, why) in [
            ("ftp://h/x", "expected an http:// or https:// URL"),
            ("localhost:9090/api/v1/write", "expected an http:// or https:// URL"),
            ("http:///api/v1/write", "expected a host name in the URL"),
            ("http://u:p@h/x", "expected a URL without user information"),
            ("http://h:0/x", "expected a port from 1 to 65535, got \"0\""),
            ("http://h:99999/x", "expected a port from 1 to 65535, got \"99999\""),
            ("http://h:/x", "expected a port from 1 to 65535, got \"\""),
            ("http://[::1/x", "expected a closing ] after an IPv6 address"),
            ("http://h/x#y", "expected a URL without a #fragment"),
            ("http://h/a b", "expected a URL without spaces or control characters"),
            ("http://h%41/x", "expected a host name or IP address, got \"h%41\""),
        ] {
            let e = Endpoint::parse(url).unwrap_err();
            assert!(e.starts_with(why), "{url}: {e}");
        }
    }
}
