//! What a web config file sets ([`WebConfig`]) and [`parse`], from the file's text to it.
//!
//! The top level has the toolkit's four sections: `tls_server_config` (`tls`), `http_server_config`
//! (here), `basic_auth_users` (`users`) and `rate_limit` (here). `parse` reads no file, so it can be
//! fuzzed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::decode::{self, get, mapping};
use super::error::{err_at, quote, redact_hashes, WebConfigError};
use super::node::parse_document;
use super::tls::{self, TlsConfig, HTTP2_REQUIRED};
use super::users::{self, Users};

/// `rate_limit`: a token bucket of `burst` requests refilled one per `interval` (Go's `rate.Limiter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub interval: Duration,
    pub burst: u32,
}

/// A parsed web config. `Debug` is the summary: never a hash, even one inside a path or a user name.
#[derive(Clone, PartialEq, Eq)]
pub struct WebConfig {
    pub tls: Option<TlsConfig>,
    pub users: Users,
    /// `http_server_config.http2` (default true). Accepted and shown; the server speaks HTTP/1.1 only.
    pub http2: bool,
    /// `http_server_config.headers`, sent on every answer (name, value; blank ones left out).
    pub headers: Vec<(&'static str, String)>,
    /// `rate_limit` with a non-zero interval.
    pub rate_limit: Option<RateLimitConfig>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebConfig({})", self.summary())
    }
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig { tls: None, users: Users::default(), http2: true, headers: Vec::new(), rate_limit: None }
    }
}

/// The headers `http_server_config.headers` may set, and the values each allows (any when empty): the
/// toolkit's set, kept small on purpose for consistency across the Prometheus ecosystem.
pub const HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "default".to_string()
    } else {
        items.join(" ")
    }
}

impl WebConfig {
    /// One line for `check-config` and the start-up log: what is on, never a hash or key.
    pub fn summary(&self) -> String {
        // Paths, SANs, header values and user names are the operator's text: masked like in errors.
        let r = |s: &str| redact_hashes(s);
        let tls = match &self.tls {
            None => "TLS off".to_string(),
            Some(t) => {
                let mut s = format!(
                    "TLS on (cert={}, key={}, versions={}..{}, cipher_suites={}, prefer_server_cipher_suites={}, \
                     curve_preferences={}, client_auth_type={}",
                    r(&t.cert.describe()),
                    r(&t.key.describe()),
                    t.min_version.as_str(),
                    t.max_version.as_str(),
                    list(&t.cipher_suites),
                    t.prefer_server_cipher_suites,
                    list(&t.curve_preferences),
                    t.client_auth.as_str()
                );
                match &t.client_ca {
                    Some(ca) => s.push_str(&format!(", client_ca={}", r(&ca.describe()))),
                    None if t.client_auth.verifies() => s.push_str(", client_ca=system roots"),
                    None => {}
                }
                if !t.client_allowed_sans.is_empty() {
                    s.push_str(&format!(", client_allowed_sans={}", r(&t.client_allowed_sans.join(" "))));
                }
                s + ")"
            }
        };
        let http = format!("http2={} (served: HTTP/1.1)", self.http2);
        let headers = if self.headers.is_empty() {
            "headers: none".to_string()
        } else {
            let h: Vec<String> = self.headers.iter().map(|(k, v)| format!("{k}: {}", r(v))).collect();
            format!("headers: {}", h.join("; "))
        };
        let rate = match self.rate_limit {
            None => "rate limit off".to_string(),
            Some(l) => format!("rate limit on (burst {} then 1 per {:?}; beyond: 429)", l.burst, l.interval),
        };
        let auth = if self.users.is_empty() {
            "basic auth off".to_string()
        } else {
            let names: Vec<String> = self.users.names().map(r).collect();
            format!(
                "basic auth on ({} user{}: {})",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            )
        };
        format!("{tls}, {http}, {headers}, {rate}, {auth}")
    }

    /// The files this config reads besides itself.
    pub(super) fn files(&self) -> Vec<PathBuf> {
        self.tls.as_ref().map(TlsConfig::files).unwrap_or_default()
    }
}

const TOP_KEYS: &[&str] = &["tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"];

/// Parses the text of a web config file. Relative file names are resolved against `base_dir` (the config
/// file's directory). Files are not read here.
pub fn parse(text: &str, base_dir: &Path) -> Result<WebConfig, WebConfigError> {
    let root = parse_document(text)?;
    let top = mapping(root.as_ref(), "", TOP_KEYS).map_err(|e| match &root {
        Some(n) if !matches!(n.kind, super::node::Kind::Map(_)) => err_at(
            n.line,
            "expected a mapping with tls_server_config, http_server_config, basic_auth_users or rate_limit",
        ),
        _ => e,
    })?;
    let tls_line = top.iter().find(|(k, _, _)| k == "tls_server_config").map_or(1, |(_, l, _)| *l);
    let tls = tls::section(get(top, "tls_server_config"), tls_line, base_dir)?;
    let users = users::section(get(top, "basic_auth_users"))?;
    let http_node = get(top, "http_server_config");
    let http = mapping(http_node, "http_server_config", &["http2", "headers"])?;
    let http2 = decode::boolean(get(http, "http2"), "http_server_config.http2")?.unwrap_or(true);
    let mut headers = Vec::new();
    for (name, line, value) in mapping(get(http, "headers"), "http_server_config.headers", &[])? {
        let Some((known, allowed)) = HEADERS.iter().find(|(h, _)| h == name) else {
            let names: Vec<&str> = HEADERS.iter().map(|(h, _)| *h).collect();
            return Err(err_at(
                *line,
                format!(
                    "http_server_config.headers: HTTP header {} can not be configured (allowed: {})",
                    quote(name),
                    names.join(", ")
                ),
            ));
        };
        let v = decode::string(Some(value).filter(|v| !v.is_null()), &format!("http_server_config.headers.{known}"))?;
        if !allowed.is_empty() && !allowed.contains(&v.as_str()) {
            return Err(err_at(
                *line,
                format!(
                    "http_server_config.headers.{known}: invalid value for {known}: {} (allowed: {})",
                    quote(&v),
                    allowed.join(", ")
                ),
            ));
        }
        if v.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(err_at(
                *line,
                format!(
                    "http_server_config.headers.{known}: a header value cannot hold line breaks or control characters"
                ),
            ));
        }
        if !v.is_empty() {
            headers.push((*known, v));
        }
    }
    let rate_node = get(top, "rate_limit");
    let rate = mapping(rate_node, "rate_limit", &["interval", "burst"])?;
    let interval = decode::duration(get(rate, "interval"), "rate_limit.interval")?.unwrap_or(Duration::ZERO);
    let burst = decode::count(get(rate, "burst"), "rate_limit.burst", i64::from(u32::MAX))?.unwrap_or(0) as u32;
    let rate_limit = (!interval.is_zero()).then_some(RateLimitConfig { interval, burst });
    if let Some(t) = &tls {
        // Go's HTTP/2 server refuses to start with a suite list that lacks its required suite (below TLS 1.3
        // only); the toolkit then fails, so this file is refused too, even though HTTP/2 is not served here.
        let listed = !t.cipher_suites.is_empty() && t.min_version < tls::TlsVersion::Tls13;
        if http2 && listed && !t.cipher_suites.iter().any(|c| HTTP2_REQUIRED.contains(c)) {
            let tls_node = mapping(get(top, "tls_server_config"), "tls_server_config", &[])?;
            let line = tls_node.iter().find(|(k, _, _)| k == "cipher_suites").map_or(tls_line, |(_, l, _)| *l);
            return Err(err_at(line, format!(
                "tls_server_config.cipher_suites: TLSConfig.CipherSuites is missing an HTTP/2-required AES_128_GCM_SHA256 cipher \
                 (need at least one of {}), as the toolkit refuses it while http_server_config.http2 is true; \
                 add one, or set http2: false",
                HTTP2_REQUIRED.join(" or ")
            )));
        }
    }
    Ok(WebConfig { tls, users, http2, headers, rate_limit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::webconfig::tls::{ClientAuth, Pem, TlsVersion};
    use crate::config::webconfig::users::{is_bcrypt_hash, TEST_HASH as HASH};

    fn p(text: &str) -> Result<WebConfig, String> {
        parse(text, Path::new("/etc/x")).map_err(|e| e.0)
    }

    #[test]
    fn errors_never_carry_a_hash_and_still_read_as_written() {
        let h = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
        // A hash used as a key (a line whose "key" swallowed a hash: the fuzz target's first finding).
        let e = p(&format!("basic_auth_users:\n  \"x {h}\": {h}\n  \"{h}\": nope\n")).unwrap_err();
        assert_eq!(
            e,
            "line 3: basic_auth_users.\"<redacted>\": expected a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters; \
             e.g. from `htpasswd -nBC 10 USER`)"
        );
        let e = p(&format!("tls_server_confg: {h}\n")).unwrap_err();
        assert!(e.starts_with("line 1: unknown key \"tls_server_confg\" (allowed: "), "{e}");
        let e = p(&format!("{h}: 1\n")).unwrap_err();
        assert!(e.starts_with("line 1: unknown key \"<redacted>\""), "{e}");
        assert_eq!(redact_hashes("a $2b$04$abc/def. b $2c$ $2y$"), "a <redacted> b $2c$ <redacted>");
        // A 60-byte value with a multi-byte character where the cost goes (third finding) is no hash.
        assert!(!is_bcrypt_hash("$2y$1\u{41a}QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"));
        // A file name holding a hash reached the summary that check-config prints (second finding).
        let cfg = p(&format!("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: \"ca {h}\"\n")).unwrap();
        assert!(cfg.summary().contains("client_ca=/etc/x/ca <redacted>)"), "{}", cfg.summary());
        assert!(!cfg.summary().contains("$2y$"), "{}", cfg.summary());
    }

    #[test]
    fn every_key_in_block_and_flow_style() {
        let block = format!(
            "# web config\r\n---\r\ntls_server_config:\r\n  cert_file: server.crt\r\n  key_file: \"/abs/server.key\"\r\n  \
             client_auth_type: RequireClientCert  # the old name\r\n  client_ca_file: 'ca.crt'\r\n  \
             client_allowed_sans:\r\n    - scraper.example.net\r\n    - 10.0.0.7\r\n  min_version: TLS13\r\n  max_version: TLS13\r\n  \
             cipher_suites:\r\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\r\n  curve_preferences: [X25519, CurveP256]\r\n  \
             prefer_server_cipher_suites: no\r\nhttp_server_config:\r\n  http2: false\r\n  headers:\r\n    X-Frame-Options: deny\r\n    \
             Content-Security-Policy: \"default-src 'self'\"\r\nbasic_auth_users:\r\n  alice: &pw {HASH}\r\n  \"bob\": *pw\r\n\
             rate_limit:\r\n  interval: 1m30s\r\n  burst: 20\r\n...\r\n"
        );
        let c = p(&block).unwrap();
        let t = c.tls.clone().unwrap();
        assert_eq!(t.cert, Pem::File(PathBuf::from("/etc/x/server.crt")));
        assert_eq!(t.key, Pem::File(PathBuf::from("/abs/server.key")));
        assert_eq!(t.client_ca, Some(Pem::File(PathBuf::from("/etc/x/ca.crt"))));
        assert_eq!(t.client_auth, ClientAuth::RequireAnyClientCert);
        assert_eq!(t.client_allowed_sans, ["scraper.example.net", "10.0.0.7"]);
        assert_eq!((t.min_version, t.max_version), (TlsVersion::Tls13, TlsVersion::Tls13));
        assert_eq!(t.cipher_suites, ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        assert_eq!(t.curve_preferences, ["X25519", "CurveP256"]);
        assert!(!t.prefer_server_cipher_suites);
        assert!(!c.http2);
        assert_eq!(
            c.headers,
            [("X-Frame-Options", "deny".to_string()), ("Content-Security-Policy", "default-src 'self'".to_string())]
        );
        assert_eq!(c.users.names().collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!(c.users.0["bob"], HASH);
        assert_eq!(c.rate_limit, Some(RateLimitConfig { interval: Duration::from_secs(90), burst: 20 }));
        let flow = format!(
            "{{tls_server_config: {{cert_file: server.crt, key_file: /abs/server.key, client_auth_type: RequireClientCert, \
             client_ca_file: ca.crt, client_allowed_sans: [scraper.example.net, 10.0.0.7], min_version: TLS13, max_version: TLS13, \
             cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256], curve_preferences: [X25519, CurveP256], \
             prefer_server_cipher_suites: false}}, http_server_config: {{http2: off, headers: {{X-Frame-Options: deny, \
             Content-Security-Policy: \"default-src 'self'\"}}}}, basic_auth_users: {{alice: \"{HASH}\", bob: '{HASH}'}}, \
             rate_limit: {{interval: 90s, burst: 20}}}}"
        );
        assert_eq!(p(&flow).unwrap(), c);
        let shown = format!("{c:?} {}", c.summary());
        assert!(!shown.contains("$2y$"), "no hash in Debug or summary: {shown}");
        assert_eq!(
            c.summary(),
            "TLS on (cert=/etc/x/server.crt, key=/abs/server.key, versions=TLS13..TLS13, \
             cipher_suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, prefer_server_cipher_suites=false, \
             curve_preferences=X25519 CurveP256, client_auth_type=RequireAnyClientCert, client_ca=/etc/x/ca.crt, \
             client_allowed_sans=scraper.example.net 10.0.0.7), http2=false (served: HTTP/1.1), \
             headers: X-Frame-Options: deny; Content-Security-Policy: default-src 'self', \
             rate limit on (burst 20 then 1 per 90s; beyond: 429), basic auth on (2 users: alice, bob)"
        );
    }

    #[test]
    fn defaults_and_inline_pem() {
        assert_eq!(p("").unwrap(), WebConfig::default());
        assert_eq!(
            p("tls_server_config:\nbasic_auth_users: {}\nrate_limit: {interval: 0, burst: 0}\n").unwrap(),
            WebConfig::default()
        );
        // Only what turns TLS on turns it on (Go's rule): versions alone do not, empty strings do not.
        assert_eq!(p("tls_server_config: {min_version: TLS13, cert_file: \"\"}\n").unwrap().tls, None);
        let c = p("tls_server_config:\n  cert: |\n    -----BEGIN CERTIFICATE-----\n    AAAA\n  key_file: k\n  client_auth_type: VerifyClientCertIfGiven\n").unwrap();
        let t = c.tls.unwrap();
        assert_eq!(t.cert, Pem::Inline("-----BEGIN CERTIFICATE-----\nAAAA\n".into()));
        assert_eq!(
            (t.client_auth, t.client_ca.clone(), t.min_version, t.max_version),
            (ClientAuth::VerifyClientCertIfGiven, None, TlsVersion::Tls12, TlsVersion::Tls13)
        );
        assert!(t.prefer_server_cipher_suites);
        assert_eq!(format!("{:?}", Pem::Inline("secret key".into())), "Inline(..)");
    }

    #[test]
    fn errors_name_line_and_key() {
        let cases: &[(&str, &str)] = &[
            ("tls_server_confg:\n  cert_file: a\n", "line 1: unknown key \"tls_server_confg\" (allowed: tls_server_config, http_server_config, basic_auth_users, rate_limit)"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  foo: 1\n", "line 4: tls_server_config: unknown key \"foo\""),
            ("tls_server_config:\n  cert_file: a\n", "line 1: tls_server_config: missing one of key or key_file"),
            ("tls_server_config:\n  key_file: a\n", "line 1: tls_server_config: missing one of cert or cert_file"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS9\n", "line 4: tls_server_config.min_version: unknown TLS version \"TLS9\""),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n", "line 5: tls_server_config.max_version: TLS12 is lower than min_version TLS13"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Require\n", "line 4: tls_server_config.client_auth_type: invalid ClientAuth \"Require\""),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n", "line 4: tls_server_config.client_ca_file: client CA's have been configured without a Client Auth Policy"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "line 4: tls_server_config.cipher_suites: unknown cipher \"TLS_RSA_WITH_RC4_128_SHA\""),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: TLS_AES_128_GCM_SHA256\n", "line 4: tls_server_config.cipher_suites: expected a list, got \"TLS_AES_128_GCM_SHA256\""),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences:\n    - P-256\n", "line 5: tls_server_config.curve_preferences: unknown curve \"P-256\""),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites:\n    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n", "line 4: tls_server_config.cipher_suites: TLSConfig.CipherSuites is missing an HTTP/2-required"),
            ("tls_server_config:\n  cert_file: a\n  cert_file: b\n", "line 3: key \"cert_file\" already set on line 2"),
            ("tls_server_config:\n  cert_file: [a]\n", "line 2: tls_server_config.cert_file: expected a string, got a list"),
            ("tls_server_config:\n\tcert_file: a\n", "line 2: invalid YAML: "),
            ("tls_server_config: yes\n", "line 1: tls_server_config: expected a mapping, got a scalar"),
            ("basic_auth_users:\n  alice: secret\n", "line 2: basic_auth_users.alice: expected a bcrypt hash ($2a$, $2b$ or $2y$"),
            ("basic_auth_users:\n  alice:\n", "line 2: basic_auth_users.alice: expected a bcrypt hash"),
            ("basic_auth_users:\n  - alice\n", "line 2: basic_auth_users: expected a mapping, got a list"),
            ("basic_auth_users:\nbasic_auth_users:\n", "line 2: key \"basic_auth_users\" already set on line 1"),
            ("http_server_config:\n  http2: \"true\"\n", "line 2: http_server_config.http2: expected true or false, got \"true\""),
            ("http_server_config:\n  headers:\n    Server: x\n", "line 3: http_server_config.headers: HTTP header \"Server\" can not be configured"),
            ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "line 3: http_server_config.headers.X-Frame-Options: invalid value for X-Frame-Options: \"allow\" (allowed: deny, sameorigin)"),
            ("http_server_config:\n  headers:\n    X-Content-Type-Options: \"\"\n", "line 3: http_server_config.headers.X-Content-Type-Options: invalid value"),
            ("http_server_config:\n  headers: {X-XSS-Protection: \"1\\nSet-Cookie: a\"}\n", "line 2: http_server_config.headers.X-XSS-Protection: a header value cannot hold line breaks"),
            ("http_server_config:\n  http3: true\n", "line 2: http_server_config: unknown key \"http3\" (allowed: http2, headers)"),
            ("rate_limit:\n  interval: 1 second\n", "line 2: rate_limit.interval: expected a duration such as 1s, 500ms or 1m30s, got \"1 second\""),
            ("rate_limit:\n  interval: 1s\n  burst: ten\n", "line 3: rate_limit.burst: expected a whole number from 0 to 4294967295, got \"ten\""),
            ("rate_limit:\n  burst: -1\n", "line 2: rate_limit.burst: expected a whole number"),
            ("just text\n", "line 1: expected a mapping with tls_server_config"),
            ("---\na: 1\n---\nb: 2\n", "line 4: only one YAML document is allowed"),
            ("a: [1\n", "invalid YAML: "),
        ];
        for (text, want) in cases {
            let got = p(text).expect_err(text);
            assert!(
                got.starts_with(want) || (want.starts_with("invalid") && got.contains(want)),
                "{text:?}: got {got:?}, want {want:?}"
            );
        }
        // A wrong hash is never echoed.
        let e = p("basic_auth_users:\n  alice: $2y$04$short\n").unwrap_err();
        assert!(!e.contains("$2y$04$short"), "{e}");
    }
}
