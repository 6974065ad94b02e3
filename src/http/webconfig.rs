//! `--web.config.file`: TLS and basic auth for the scrape endpoint, in the Prometheus exporter-toolkit format.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt            # PEM certificate (chain); relative paths: relative to this file
//!   key_file: server.key             # PEM private key
//!   client_auth_type: NoClientCert   # or RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven,
//!                                    # RequireAndVerifyClientCert
//!   client_ca_file: ca.crt           # CA(s) that client certificates must chain to
//!   min_version: TLS12               # TLS10..TLS13 (default TLS12); max_version likewise
//! basic_auth_users:
//!   alice: $2y$10$...                # bcrypt hash
//! ```
//!
//! The parser is a small strict one for exactly this two-level format (block mappings, plain or quoted scalars,
//! comments): anything else, an unknown key, a duplicate key or an invalid value is an error naming the line and
//! the key, as the toolkit's strict YAML decoding would. [`parse`] and [`parse_basic_auth`] are pure so they can
//! be fuzzed. [`WebState`] holds the config in force and re-reads the file (and the certificate, key and CA files
//! it names) when they change, at most once a second, keeping the old one when the new one is invalid.
//! Password hashes and passwords never appear in errors, logs or `Debug` output.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{error, info};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509Name;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::runtime::shutdown::RateLimit;

/// Why a web config cannot be used. The text names the line and key; it never contains a hash or password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfigError(pub String);

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WebConfigError {}

fn err_at(line: usize, msg: impl fmt::Display) -> WebConfigError {
    WebConfigError(redact_hashes(&format!("line {line}: {msg}")))
}

/// Masks everything that starts like a bcrypt hash (`$2a$`, `$2b$`, `$2x$`, `$2y$` and the run of bcrypt
/// characters after it). Error messages quote keys and values to say what is wrong; on a malformed line a hash
/// can end up inside a "key" (found by the `webconfig` fuzz target), and no message may ever carry one.
fn redact_hashes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 3 < b.len() {
        if b[i] == b'$' && b[i + 1] == b'2' && matches!(b[i + 2], b'a' | b'b' | b'x' | b'y') && b[i + 3] == b'$' {
            let mut j = i + 4;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'.' | b'/' | b'$')) {
                j += 1;
            }
            out.push_str(&s[copied..i]);
            out.push_str("<redacted>");
            copied = j;
            i = j;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// exporter-toolkit's `client_auth_type` values (Go's `tls.ClientAuthType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const ALL: [(&'static str, ClientAuth); 5] = [
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        ("VerifyClientCertIfGiven", ClientAuth::VerifyClientCertIfGiven),
        ("RequireAndVerifyClientCert", ClientAuth::RequireAndVerifyClientCert),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, c)| *c == self).map(|(n, _)| *n).unwrap_or("NoClientCert")
    }

    /// Whether client certificates are checked against `client_ca_file`.
    pub fn verifies(self) -> bool {
        matches!(self, ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    const ALL: [(&'static str, TlsVersion); 4] = [
        ("TLS10", TlsVersion::Tls10),
        ("TLS11", TlsVersion::Tls11),
        ("TLS12", TlsVersion::Tls12),
        ("TLS13", TlsVersion::Tls13),
    ];

    fn ssl(self) -> SslVersion {
        match self {
            TlsVersion::Tls10 => SslVersion::TLS1,
            TlsVersion::Tls11 => SslVersion::TLS1_1,
            TlsVersion::Tls12 => SslVersion::TLS1_2,
            TlsVersion::Tls13 => SslVersion::TLS1_3,
        }
    }
}

/// `tls_server_config`, with paths already resolved against the config file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: Option<TlsVersion>,
}

/// `basic_auth_users`: user name → bcrypt hash. `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Users(BTreeMap<String, String>);

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Users {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// A parsed web config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebConfig {
    pub tls: Option<TlsConfig>,
    pub users: Users,
}

impl WebConfig {
    /// One line for `check-config` and the start-up log: what is on, never a hash.
    pub fn summary(&self) -> String {
        let tls = match &self.tls {
            None => "TLS off".to_string(),
            Some(t) => format!(
                "TLS on (cert_file={}, client_auth_type={}{})",
                t.cert_file.display(),
                t.client_auth.as_str(),
                t.client_ca_file.as_ref().map(|c| format!(", client_ca_file={}", c.display())).unwrap_or_default()
            ),
        };
        let auth = if self.users.is_empty() {
            "basic auth off".to_string()
        } else {
            let names: Vec<&str> = self.users.names().collect();
            format!(
                "basic auth on ({} user{}: {})",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            )
        };
        // Paths and user names are the operator's text; like error messages, the line never carries a hash.
        redact_hashes(&format!("{tls}, {auth}"))
    }

    /// The files this config reads besides itself.
    fn files(&self) -> Vec<PathBuf> {
        match &self.tls {
            None => Vec::new(),
            Some(t) => [Some(t.cert_file.clone()), Some(t.key_file.clone()), t.client_ca_file.clone()]
                .into_iter()
                .flatten()
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The YAML subset.

/// One `key: value` line: indentation, key, value (`None` when nothing follows the colon).
struct Line {
    no: usize,
    indent: usize,
    key: String,
    value: Option<Scalar>,
}

#[derive(Clone, Debug, PartialEq)]
enum Scalar {
    /// Unquoted: `null`, `~` and the empty value are null.
    Plain(String),
    Quoted(String),
    /// `{}`: an empty mapping.
    EmptyMap,
}

impl Scalar {
    fn is_null(&self) -> bool {
        matches!(self, Scalar::Plain(s) if s == "null" || s == "~" || s == "Null" || s == "NULL")
    }
    fn text(&self) -> Option<&str> {
        match self {
            Scalar::Plain(s) | Scalar::Quoted(s) => Some(s),
            Scalar::EmptyMap => None,
        }
    }
}

/// Parses a scalar (what follows `key:`); only a comment may follow it.
fn scalar(s: &str, line: usize) -> Result<Scalar, WebConfigError> {
    let s = s.trim_start_matches(' ');
    if let Some(rest) = s.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|(_, n)| *n) == Some('\'') {
                    out.push('\'');
                    chars.next();
                    continue;
                }
                trailing(&rest[i + 1..], line)?;
                return Ok(Scalar::Quoted(out));
            }
            out.push(c);
        }
        return Err(err_at(line, "unterminated single-quoted string"));
    }
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    trailing(&rest[i + 1..], line)?;
                    return Ok(Scalar::Quoted(out));
                }
                '\\' => match chars.next().map(|(_, e)| e) {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('/') => out.push('/'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    _ => {
                        return Err(err_at(
                            line,
                            "unsupported escape in double-quoted string (allowed: \\\" \\\\ \\/ \\n \\t)",
                        ))
                    }
                },
                c => out.push(c),
            }
        }
        return Err(err_at(line, "unterminated double-quoted string"));
    }
    let plain = strip_comment(s).trim_end();
    if plain.starts_with('{') {
        if plain.replace(' ', "") == "{}" {
            return Ok(Scalar::EmptyMap);
        }
        return Err(err_at(line, "flow mappings ({...}) are not supported; use one key per line"));
    }
    if let Some(c) = plain.chars().next() {
        if "[&*!|>%@`".contains(c) {
            return Err(err_at(line, format!("unsupported YAML: a value may not start with {c:?} here (quote it)")));
        }
    }
    if plain.contains(": ") || plain.ends_with(':') {
        return Err(err_at(line, "unexpected ':' in a value (nested mappings go on their own lines; quote it)"));
    }
    Ok(Scalar::Plain(plain.to_string()))
}

/// After a quoted scalar only spaces and a comment may follow.
fn trailing(rest: &str, line: usize) -> Result<(), WebConfigError> {
    let t = rest.trim_start_matches(' ');
    if t.is_empty() || (t.starts_with('#') && t.len() < rest.len()) {
        return Ok(());
    }
    if t.starts_with('#') {
        return Err(err_at(line, "a comment must be separated from the value by a space"));
    }
    Err(err_at(line, "unexpected text after a quoted value"))
}

/// Removes a `#` comment: a `#` at the start or preceded by a space.
fn strip_comment(s: &str) -> &str {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'#' && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') {
            return &s[..i];
        }
    }
    s
}

fn lines(text: &str) -> Result<Vec<Line>, WebConfigError> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let body = raw.trim_start_matches(' ');
        let indent = raw.len() - body.len();
        if body.starts_with('\t') {
            return Err(err_at(no, "tabs are not allowed for indentation in YAML"));
        }
        let content = strip_comment(body).trim_end();
        if content.is_empty() {
            continue;
        }
        if content == "---" && out.is_empty() && indent == 0 {
            continue;
        }
        if content == "---" || content == "..." {
            return Err(err_at(no, "only one YAML document is allowed"));
        }
        if content.starts_with("- ") || content == "-" {
            return Err(err_at(no, "lists are not supported here"));
        }
        let (key, rest) = split_key(body, no)?;
        let value = match rest.trim_start_matches(' ') {
            r if strip_comment(r).trim().is_empty() => None,
            _ => Some(scalar(rest, no)?),
        };
        let value = match value {
            Some(v) if v.is_null() => None,
            v => v,
        };
        out.push(Line { no, indent, key, value });
    }
    Ok(out)
}

/// Splits `key: rest` (the key plain or quoted).
fn split_key(body: &str, no: usize) -> Result<(String, &str), WebConfigError> {
    let (key, after) = if body.starts_with('"') || body.starts_with('\'') {
        let q = body.as_bytes()[0] as char;
        let end = body[1..].find(q).ok_or_else(|| err_at(no, "unterminated quoted key"))? + 1;
        let after = &body[end + 1..];
        let after = after.trim_start_matches(' ');
        (body[1..end].to_string(), after)
    } else {
        let colon = body
            .find(": ")
            .or_else(|| body.strip_suffix(':').map(|b| b.len()))
            .or_else(|| {
                let c = strip_comment(body).trim_end();
                c.strip_suffix(':').map(|b| b.len())
            })
            .ok_or_else(|| err_at(no, "expected `key: value`"))?;
        let key = body[..colon].trim_end();
        if key.is_empty() {
            return Err(err_at(no, "empty key"));
        }
        (key.to_string(), &body[colon..])
    };
    let rest = after.strip_prefix(':').ok_or_else(|| err_at(no, "expected ':' after the key"))?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(err_at(no, "expected a space after ':'"));
    }
    Ok((key, rest))
}

const TLS_KEYS: &[&str] =
    &["cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"];
/// exporter-toolkit settings this exporter does not implement: an error rather than silently ignored.
const UNSUPPORTED: &[&str] = &[
    "cert",
    "key",
    "client_ca",
    "client_allowed_sans",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
];

fn plain_string(v: &Scalar, key: &str, line: usize) -> Result<String, WebConfigError> {
    match v.text() {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(err_at(line, format!("{key}: expected a string"))),
    }
}

/// Whether `h` looks like a bcrypt hash: `$2a$`, `$2b$`, `$2x$` or `$2y$`, a cost 04..31, 53 characters.
pub fn is_bcrypt_hash(h: &str) -> bool {
    let b = h.as_bytes();
    b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        // Bytes, not `&h[4..6]`: that slice panics when a multi-byte character straddles it (fuzz finding).
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && (4..=31).contains(&((b[4] - b'0') * 10 + (b[5] - b'0')))
        && b[6] == b'$'
        && b[7..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
}

/// Parses the text of a web config file. Relative file names are resolved against `base_dir` (the config
/// file's directory). Files are not read here.
pub fn parse(text: &str, base_dir: &Path) -> Result<WebConfig, WebConfigError> {
    let lines = lines(text)?;
    let mut cfg = WebConfig::default();
    let mut seen_top: HashSet<String> = HashSet::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.indent != 0 {
            return Err(err_at(l.no, format!("{:?}: unexpected indentation at the top level", l.key)));
        }
        if !seen_top.insert(l.key.clone()) {
            return Err(err_at(l.no, format!("duplicate key {:?}", l.key)));
        }
        // The section's entries: the following lines indented more than 0, all at the same indentation.
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && lines[end].indent > 0 {
            end += 1;
        }
        let entries = &lines[start..end];
        if let Some(first) = entries.first() {
            if l.value.is_some() {
                return Err(err_at(first.no, format!("{}: has a value and nested keys", l.key)));
            }
            if let Some(bad) = entries.iter().find(|e| e.indent != first.indent) {
                return Err(err_at(bad.no, format!("{}.{}: inconsistent indentation", l.key, bad.key)));
            }
        }
        match (l.key.as_str(), &l.value) {
            (_, Some(Scalar::EmptyMap)) | (_, None) => {}
            (k @ ("tls_server_config" | "basic_auth_users" | "http_server_config"), Some(_)) => {
                return Err(err_at(l.no, format!("{k}: expected a mapping (keys on the following lines)")))
            }
            _ => {}
        }
        match l.key.as_str() {
            "tls_server_config" => cfg.tls = tls_section(entries, base_dir)?,
            "basic_auth_users" => {
                let mut users = BTreeMap::new();
                for e in entries {
                    let hash = match &e.value {
                        Some(v) => v.text().unwrap_or(""),
                        None => "",
                    };
                    if !is_bcrypt_hash(hash) {
                        return Err(err_at(
                            e.no,
                            format!(
                                "basic_auth_users.{}: expected a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters; \
                                 e.g. from `htpasswd -nBC 10 USER`)",
                                e.key
                            ),
                        ));
                    }
                    if e.key.contains(':') {
                        return Err(err_at(
                            e.no,
                            format!("basic_auth_users.{}: a user name cannot contain ':'", e.key),
                        ));
                    }
                    if users.insert(e.key.clone(), hash.to_string()).is_some() {
                        return Err(err_at(e.no, format!("basic_auth_users: duplicate user {:?}", e.key)));
                    }
                }
                cfg.users = Users(users);
            }
            "http_server_config" => {
                if let Some(e) = entries.first() {
                    return Err(err_at(
                        e.no,
                        format!("http_server_config.{}: not supported by this exporter (only HTTP/1.1)", e.key),
                    ));
                }
            }
            other => {
                return Err(err_at(
                    l.no,
                    format!("unknown key {other:?} (allowed: tls_server_config, basic_auth_users)"),
                ))
            }
        }
        i = end;
    }
    Ok(cfg)
}

fn tls_section(entries: &[Line], base: &Path) -> Result<Option<TlsConfig>, WebConfigError> {
    let mut values: BTreeMap<&str, (String, usize)> = BTreeMap::new();
    for e in entries {
        let key = e.key.as_str();
        if UNSUPPORTED.contains(&key) {
            return Err(err_at(e.no, format!("tls_server_config.{key}: not supported by this exporter")));
        }
        let Some(k) = TLS_KEYS.iter().find(|k| **k == key) else {
            return Err(err_at(
                e.no,
                format!("tls_server_config: unknown key {key:?} (allowed: {})", TLS_KEYS.join(", ")),
            ));
        };
        if values.contains_key(k) {
            return Err(err_at(e.no, format!("tls_server_config: duplicate key {key:?}")));
        }
        let Some(v) = &e.value else { continue };
        values.insert(k, (plain_string(v, &format!("tls_server_config.{key}"), e.no)?, e.no));
    }
    let first_line = entries.first().map_or(0, |e| e.no);
    if values.is_empty() {
        return Ok(None);
    }
    let path = |k: &str| values.get(k).map(|(v, _)| base.join(v));
    let (cert_file, key_file) = match (path("cert_file"), path("key_file")) {
        (Some(c), Some(k)) => (c, k),
        (None, _) => return Err(err_at(first_line, "tls_server_config.cert_file: missing (needed with key_file)")),
        (_, None) => return Err(err_at(first_line, "tls_server_config.key_file: missing (needed with cert_file)")),
    };
    let client_auth = match values.get("client_auth_type") {
        None => ClientAuth::NoClientCert,
        Some((v, no)) => ClientAuth::ALL.iter().find(|(n, _)| n == v).map(|(_, c)| *c).ok_or_else(|| {
            let names: Vec<&str> = ClientAuth::ALL.iter().map(|(n, _)| *n).collect();
            err_at(*no, format!("tls_server_config.client_auth_type: {v:?} is not one of {}", names.join(", ")))
        })?,
    };
    let version = |k: &str| -> Result<Option<TlsVersion>, WebConfigError> {
        match values.get(k) {
            None => Ok(None),
            Some((v, no)) => TlsVersion::ALL.iter().find(|(n, _)| n == v).map(|(_, t)| Some(*t)).ok_or_else(|| {
                err_at(*no, format!("tls_server_config.{k}: {v:?} is not one of TLS10, TLS11, TLS12, TLS13"))
            }),
        }
    };
    let min_version = version("min_version")?.unwrap_or(TlsVersion::Tls12);
    let max_version = version("max_version")?;
    if let Some(max) = max_version {
        if (max as u8) < (min_version as u8) {
            return Err(err_at(
                values["max_version"].1,
                "tls_server_config.max_version: lower than min_version (default TLS12)",
            ));
        }
    }
    let client_ca_file = path("client_ca_file");
    if client_auth.verifies() && client_ca_file.is_none() {
        return Err(err_at(
            values["client_auth_type"].1,
            format!("tls_server_config.client_auth_type: {} needs client_ca_file", client_auth.as_str()),
        ));
    }
    if client_ca_file.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(err_at(
            values["client_ca_file"].1,
            "tls_server_config.client_ca_file: set without a client_auth_type that uses it \
             (VerifyClientCertIfGiven or RequireAndVerifyClientCert)",
        ));
    }
    Ok(Some(TlsConfig { cert_file, key_file, client_auth, client_ca_file, min_version, max_version }))
}

/// Builds the TLS server context: loads the certificate chain, the key (checked against the certificate) and
/// the client CA.
pub fn build_acceptor(t: &TlsConfig) -> Result<SslAcceptor, WebConfigError> {
    let ssl_err = |what: &str, path: &Path, e: openssl::error::ErrorStack| {
        WebConfigError(format!("tls_server_config.{what} ({}): {e}", path.display()))
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| WebConfigError(format!("cannot create a TLS context: {e}")))?;
    b.set_min_proto_version(Some(t.min_version.ssl()))
        .and_then(|_| b.set_max_proto_version(t.max_version.map(TlsVersion::ssl)))
        .map_err(|e| WebConfigError(format!("tls_server_config.min_version/max_version: {e}")))?;
    for (what, p) in [("cert_file", &t.cert_file), ("key_file", &t.key_file)] {
        if let Err(e) = std::fs::metadata(p) {
            return Err(WebConfigError(format!("tls_server_config.{what} ({}): {e}", p.display())));
        }
    }
    b.set_certificate_chain_file(&t.cert_file).map_err(|e| ssl_err("cert_file", &t.cert_file, e))?;
    b.set_private_key_file(&t.key_file, SslFiletype::PEM).map_err(|e| ssl_err("key_file", &t.key_file, e))?;
    b.check_private_key().map_err(|e| ssl_err("key_file", &t.key_file, e))?;
    if let Some(ca) = &t.client_ca_file {
        if let Err(e) = std::fs::metadata(ca) {
            return Err(WebConfigError(format!("tls_server_config.client_ca_file ({}): {e}", ca.display())));
        }
        b.set_ca_file(ca).map_err(|e| ssl_err("client_ca_file", ca, e))?;
        let names = X509Name::load_client_ca_file(ca).map_err(|e| ssl_err("client_ca_file", ca, e))?;
        b.set_client_ca_list(names);
    }
    let require = SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT;
    match t.client_auth {
        ClientAuth::NoClientCert => b.set_verify(SslVerifyMode::NONE),
        // Asked for (or required) but not verified: any certificate passes.
        ClientAuth::RequestClientCert => b.set_verify_callback(SslVerifyMode::PEER, |_, _| true),
        ClientAuth::RequireAnyClientCert => b.set_verify_callback(require, |_, _| true),
        ClientAuth::VerifyClientCertIfGiven => b.set_verify(SslVerifyMode::PEER),
        ClientAuth::RequireAndVerifyClientCert => b.set_verify(require),
    }
    // Needed for session resumption when client certificates are requested.
    b.set_session_id_context(b"dashflow-prometheus-exporter")
        .map_err(|e| WebConfigError(format!("cannot set the TLS session context: {e}")))?;
    Ok(b.build())
}

/// A web config read from disk, with its TLS context built.
pub struct Loaded {
    pub config: WebConfig,
    pub acceptor: Option<SslAcceptor>,
}

/// Reads, parses and builds everything a web config file names. Errors name the file.
pub fn load_file(path: &Path) -> Result<Loaded, WebConfigError> {
    let (config, _) = read_config(path)?;
    let acceptor = config.tls.as_ref().map(build_acceptor).transpose()?;
    Ok(Loaded { config, acceptor })
}

fn read_config(path: &Path) -> Result<(WebConfig, Vec<PathBuf>), WebConfigError> {
    let text = std::fs::read(path).map_err(|e| WebConfigError(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8(text).map_err(|_| WebConfigError(format!("{}: not UTF-8 text", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let config = parse(&text, base).map_err(|e| WebConfigError(format!("{}: {e}", path.display())))?;
    let files = config.files();
    Ok((config, files))
}

// ---------------------------------------------------------------------------------------------------------
// Basic auth.

/// Decodes `Authorization: Basic base64(user:password)` (scheme case-insensitive, as Go's `Request.BasicAuth`).
pub fn parse_basic_auth(header: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::Engine as _;
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim_start_matches(' ')).ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

/// Hash of a password that no input matches, verified for unknown users so that they cost the same time as
/// known ones (as exporter-toolkit does).
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Successful verifications, keyed by a SHA-256 of (user, hash, password): a scrape with the right password
/// costs one hash instead of a bcrypt run (~50 ms at cost 10). Bounded; cleared when full.
#[derive(Default)]
pub struct AuthCache {
    ok: Mutex<HashSet<[u8; 32]>>,
}

const AUTH_CACHE_MAX: usize = 1024;

impl AuthCache {
    fn key(user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
        let mut h = openssl::sha::Sha256::new();
        for part in [user, hash.as_bytes(), password] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finish()
    }
}

/// Whether the `Authorization` header value authenticates one of `users`. `true` when no users are configured.
pub fn check_basic_auth(header: Option<&str>, users: &Users, cache: &AuthCache) -> bool {
    if users.is_empty() {
        return true;
    }
    let Some((user, password)) = header.and_then(parse_basic_auth) else { return false };
    let known = std::str::from_utf8(&user).ok().and_then(|u| users.0.get(u));
    let hash = known.map_or(DUMMY_HASH, String::as_str);
    let key = AuthCache::key(&user, hash, &password);
    if known.is_some() && cache.ok.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
        return true;
    }
    let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known.is_some();
    if ok {
        let mut c = cache.ok.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= AUTH_CACHE_MAX {
            c.clear();
        }
        c.insert(key);
    }
    ok
}

// ---------------------------------------------------------------------------------------------------------
// The config in force, re-read when its files change.

/// Identity of a file's content as far as `stat` tells: (mtime ns, size, inode), `None` if it cannot be read.
type Stamp = Option<(i64, u64, u64)>;

fn stamp(p: &Path) -> Stamp {
    std::fs::metadata(p).ok().map(|m| (m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.size(), m.ino()))
}

struct Watch {
    current: Arc<Loaded>,
    /// The config file and the files named by the config last read (valid or not), with their stamps then.
    stamps: Vec<(PathBuf, Stamp)>,
    checked: Instant,
}

/// The web config in force; shared by the connection threads (TLS) and the request threads (basic auth).
pub struct WebState {
    path: PathBuf,
    watch: Mutex<Watch>,
    pub cache: AuthCache,
    reload_ok: IntCounter,
    reload_failed: IntCounter,
    reloads: IntCounterVec,
    pub auth_failures: IntCounter,
    pub tls_failures: IntCounter,
    error_log: RateLimit,
}

/// How often the files are checked for changes, at most.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl WebState {
    /// Loads the file; fails as [`load_file`] does.
    pub fn new(path: &Path) -> Result<WebState, WebConfigError> {
        let (config, files) = read_config(path)?;
        let acceptor = config.tls.as_ref().map(build_acceptor).transpose()?;
        let stamps = std::iter::once(path.to_path_buf()).chain(files).map(|p| (p.clone(), stamp(&p))).collect();
        let reloads = IntCounterVec::new(
            Opts::new(
                "dashstream_exporter_web_config_reloads_total",
                "Re-reads of --web.config.file (and the files it names) after a change, by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let auth_failures = IntCounter::new(
            "dashstream_exporter_web_auth_failures_total",
            "HTTP requests refused with 401: missing or wrong basic auth credentials",
        )
        .expect("valid metric");
        let tls_failures = IntCounter::new(
            "dashstream_exporter_web_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out (no or untrusted client certificate, protocol errors, plain HTTP)",
        )
        .expect("valid metric");
        Ok(WebState {
            path: path.to_path_buf(),
            watch: Mutex::new(Watch {
                current: Arc::new(Loaded { config, acceptor }),
                stamps,
                checked: Instant::now(),
            }),
            cache: AuthCache::default(),
            reload_ok: reloads.with_label_values(&["success"]),
            reload_failed: reloads.with_label_values(&["failure"]),
            reloads,
            auth_failures,
            tls_failures,
            error_log: RateLimit::new(Duration::from_secs(10)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds the reload, auth-failure and TLS-failure counters to a registry.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.reloads.clone()))?;
        registry.register(Box::new(self.auth_failures.clone()))?;
        registry.register(Box::new(self.tls_failures.clone()))
    }

    /// The config in force, re-read first if a second has passed since the last check and a file changed.
    pub fn current(&self) -> Arc<Loaded> {
        let mut w = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if w.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            w.checked = Instant::now();
            if w.stamps.iter().any(|(p, s)| stamp(p) != *s) {
                self.reload(&mut w);
            }
        }
        w.current.clone()
    }

    fn reload(&self, w: &mut Watch) {
        // Stamps are taken before each file is read, so a change during the read is seen at the next check.
        let config_stamp = stamp(&self.path);
        let parsed = read_config(&self.path);
        let files = match &parsed {
            Ok((_, files)) => files.clone(),
            // Unparsable: keep watching the files of the config in force.
            Err(_) => w.stamps.iter().skip(1).map(|(p, _)| p.clone()).collect(),
        };
        w.stamps = std::iter::once((self.path.clone(), config_stamp))
            .chain(files.into_iter().map(|p| (p.clone(), stamp(&p))))
            .collect();
        let result = parsed.and_then(|(config, _)| {
            let acceptor = config.tls.as_ref().map(build_acceptor).transpose()?;
            Ok(Loaded { config, acceptor })
        });
        match result {
            Ok(loaded) => {
                info!("web config {} reloaded: {}", self.path.display(), loaded.config.summary());
                if loaded.config.users != w.current.config.users {
                    self.cache.ok.lock().unwrap_or_else(|p| p.into_inner()).clear();
                }
                w.current = Arc::new(loaded);
                self.reload_ok.inc();
            }
            Err(e) => {
                self.reload_failed.inc();
                if let Some(n) = self.error_log.check() {
                    let more = if n > 0 { format!(" ({n} more failures not logged)") } else { String::new() };
                    error!("web config {}: reload failed, keeping the previous one: {e}{more}", self.path.display());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_carry_a_hash_even_inside_a_malformed_key() {
        // Reduced from the webconfig fuzz target's first finding: a line whose "key" swallowed a hash.
        let h = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
        let text = format!("basic_auth_users\u{19}x\"client_ca {h} # c\": \"{h}\"\n  carol: {h}\n");
        let e = parse(&text, Path::new("/")).unwrap_err().to_string();
        assert!(!e.contains(h) && !e.contains("$2y$"), "{e}");
        assert!(e.starts_with("line 2: ") && e.contains("<redacted>"), "{e}");
        assert_eq!(redact_hashes("a $2b$04$abc/def. b $2c$ $2y$"), "a <redacted> b $2c$ <redacted>");
        assert_eq!(redact_hashes("no hash: caf\u{e9} $2"), "no hash: caf\u{e9} $2");
        // Third finding: a 60-byte value with a multi-byte character where the cost goes panicked.
        assert!(!is_bcrypt_hash("$2y$1\u{41a}QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"));
        assert!(parse(
            "basic_auth_users:\n  bob: \"$2y$1\u{41a}QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\"\n",
            Path::new("/")
        )
        .is_err());
        assert!(
            is_bcrypt_hash(h)
                && !is_bcrypt_hash(&h.replace("$10$", "$32$"))
                && !is_bcrypt_hash(&h.replace("$10$", "$03$"))
        );
        // Second finding: a file name holding a hash reached the summary that check-config prints.
        let cfg = parse(&format!("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: \"ca {h}\"\n"), Path::new("/d")).unwrap();
        assert_eq!(cfg.summary(), "TLS on (cert_file=/d/s.crt, client_auth_type=RequireAndVerifyClientCert, client_ca_file=/d/ca <redacted>), basic auth off");
    }

    const HASH: &str = "$2y$04$8wCHDkh5RTIdG3VkS4dVieKl6gXUqENvNmE3fKfGFePKcvP8ySPhW";

    fn p(text: &str) -> Result<WebConfig, String> {
        parse(text, Path::new("/etc/x")).map_err(|e| e.0)
    }

    #[test]
    fn full_example() {
        let c = p("# web config\n---\ntls_server_config:\n  cert_file: server.crt\n  key_file: \"/abs/server.key\"\n  \
                   client_auth_type: RequireAndVerifyClientCert  # mTLS\n  client_ca_file: 'ca.crt'\n  \
                   min_version: TLS13\n\nbasic_auth_users:\n    alice: $2y$04$8wCHDkh5RTIdG3VkS4dVieKl6gXUqENvNmE3fKfGFePKcvP8ySPhW\n    \
                   \"bob\": '$2y$04$8wCHDkh5RTIdG3VkS4dVieKl6gXUqENvNmE3fKfGFePKcvP8ySPhW'\n")
        .unwrap();
        let t = c.tls.clone().unwrap();
        assert_eq!(t.cert_file, PathBuf::from("/etc/x/server.crt"));
        assert_eq!(t.key_file, PathBuf::from("/abs/server.key"));
        assert_eq!(t.client_ca_file, Some(PathBuf::from("/etc/x/ca.crt")));
        assert_eq!(t.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(t.min_version, TlsVersion::Tls13);
        assert_eq!(t.max_version, None);
        assert_eq!(c.users.names().collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!(c.users.0["bob"], HASH);
        let shown = format!("{c:?} {}", c.summary());
        assert!(!shown.contains("$2y$"), "no hash in Debug or summary: {shown}");
        assert!(c.summary().contains("basic auth on (2 users: alice, bob)"), "{}", c.summary());
    }

    #[test]
    fn empty_and_null_sections_mean_off() {
        assert_eq!(p("").unwrap(), WebConfig::default());
        assert_eq!(p("tls_server_config:\nbasic_auth_users: {}\n").unwrap(), WebConfig::default());
        assert_eq!(p("tls_server_config: null\nbasic_auth_users: ~\n").unwrap(), WebConfig::default());
        let c = p("tls_server_config:\n  cert_file: a\n  key_file: b\n").unwrap();
        let t = c.tls.unwrap();
        assert_eq!((t.client_auth, t.min_version), (ClientAuth::NoClientCert, TlsVersion::Tls12));
    }

    #[test]
    fn errors_name_line_and_key() {
        let cases: &[(&str, &str)] = &[
            ("tls_server_confg:\n  cert_file: a\n", "line 1: unknown key \"tls_server_confg\""),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  foo: 1\n",
                "line 4: tls_server_config: unknown key \"foo\"",
            ),
            ("tls_server_config:\n  cert_file: a\n", "tls_server_config.key_file: missing"),
            ("tls_server_config:\n  key_file: a\n", "tls_server_config.cert_file: missing"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS9\n",
                "line 4: tls_server_config.min_version: \"TLS9\" is not one of",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
                "line 5: tls_server_config.max_version: lower",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Require\n",
                "line 4: tls_server_config.client_auth_type: \"Require\" is not one of NoClientCert",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
                "needs client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
                "line 4: tls_server_config.client_ca_file: set without",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: x\n",
                "line 4: tls_server_config.cipher_suites: not supported",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  cert_file: b\n",
                "line 3: tls_server_config: duplicate key \"cert_file\"",
            ),
            (
                "tls_server_config:\n  cert_file: a\n   key_file: b\n",
                "line 3: tls_server_config.key_file: inconsistent indentation",
            ),
            ("tls_server_config:\n\tcert_file: a\n", "line 2: tabs"),
            ("tls_server_config: yes\n", "line 1: tls_server_config: expected a mapping"),
            ("basic_auth_users:\n  alice: secret\n", "line 2: basic_auth_users.alice: expected a bcrypt hash"),
            ("basic_auth_users:\n  alice:\n", "line 2: basic_auth_users.alice: expected a bcrypt hash"),
            ("basic_auth_users:\n  - alice\n", "line 2: lists are not supported"),
            ("basic_auth_users: {a: b}\n", "line 1: flow mappings"),
            ("basic_auth_users:\nbasic_auth_users:\n", "line 2: duplicate key \"basic_auth_users\""),
            ("  basic_auth_users:\n", "line 1: \"basic_auth_users\": unexpected indentation"),
            ("http_server_config:\n  http2: false\n", "line 2: http_server_config.http2: not supported"),
            ("tls_server_config:\n  cert_file: 'a\n", "line 2: unterminated single-quoted string"),
            ("tls_server_config:\n  cert_file: \"a\\q\"\n", "line 2: unsupported escape"),
            ("tls_server_config:\n  cert_file: &anchor a\n", "line 2: unsupported YAML"),
            ("tls_server_config:\n  cert_file: a: b\n", "line 2: unexpected ':'"),
            ("tls_server_config:\n  cert_file:a\n", "line 2: expected `key: value`"),
            ("just text\n", "line 1: expected `key: value`"),
            ("---\na: 1\n---\n", "line 3: only one YAML document"),
        ];
        for (text, want) in cases {
            let got = p(text).expect_err(text);
            assert!(got.contains(want), "{text:?}: got {got:?}, want {want:?}");
        }
        // A wrong hash is never echoed.
        let e = p("basic_auth_users:\n  alice: $2y$04$short\n").unwrap_err();
        assert!(!e.contains("$2y$04$short"), "{e}");
    }

    #[test]
    fn comments_and_quotes() {
        let c = p("tls_server_config: # on\n  cert_file: 'it''s#1.crt' # c\n  key_file: a#b.key\n").unwrap();
        let t = c.tls.unwrap();
        assert_eq!(t.cert_file, PathBuf::from("/etc/x/it's#1.crt"));
        assert_eq!(t.key_file, PathBuf::from("/etc/x/a#b.key"));
        assert!(p("tls_server_config:\n  cert_file: 'a'x\n  key_file: b\n").is_err());
    }

    #[test]
    fn the_dummy_hash_is_a_real_cost_10_hash() {
        assert!(is_bcrypt_hash(DUMMY_HASH));
        assert_eq!(bcrypt::verify("x", DUMMY_HASH).map_err(|e| e.to_string()), Ok(false));
        assert_eq!(DUMMY_HASH.parse::<bcrypt::HashParts>().map(|h| h.get_cost()).map_err(|e| e.to_string()), Ok(10));
    }

    #[test]
    fn bcrypt_hash_shape() {
        assert!(is_bcrypt_hash(HASH));
        assert!(is_bcrypt_hash(&HASH.replacen("$2y$", "$2a$", 1)));
        assert!(!is_bcrypt_hash(&HASH.replacen("$2y$04", "$2y$03", 1)));
        assert!(!is_bcrypt_hash(&HASH.replacen("$2y$", "$3y$", 1)));
        assert!(!is_bcrypt_hash(&HASH[..59]));
        assert!(!is_bcrypt_hash(&format!("{}!", &HASH[..59])));
    }

    fn basic(user: &str, pass: &str) -> String {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
    }

    #[test]
    fn basic_auth_header_parsing() {
        assert_eq!(parse_basic_auth(&basic("a", "b:c")), Some((b"a".to_vec(), b"b:c".to_vec())));
        assert_eq!(parse_basic_auth("basic YTo="), Some((b"a".to_vec(), b"".to_vec())));
        assert_eq!(parse_basic_auth("Bearer YTpi"), None);
        assert_eq!(parse_basic_auth("Basic !!!"), None);
        assert_eq!(parse_basic_auth("Basic YWI="), None, "no colon");
        assert_eq!(parse_basic_auth("Basic"), None);
    }

    #[test]
    fn basic_auth_checks_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Users([("alice".to_string(), hash.clone())].into());
        let cache = AuthCache::default();
        assert!(check_basic_auth(None, &Users::default(), &cache), "no users: open");
        assert!(!check_basic_auth(None, &users, &cache));
        assert!(!check_basic_auth(Some(&basic("alice", "wrong")), &users, &cache));
        assert!(!check_basic_auth(Some(&basic("mallory", "s3cret")), &users, &cache));
        assert!(cache.ok.lock().unwrap().is_empty(), "failures are not cached");
        assert!(check_basic_auth(Some(&basic("alice", "s3cret")), &users, &cache));
        assert_eq!(cache.ok.lock().unwrap().len(), 1);
        assert!(check_basic_auth(Some(&basic("alice", "s3cret")), &users, &cache));
        assert_eq!(cache.ok.lock().unwrap().len(), 1);
        // A cached success does not survive a changed hash (the key includes it).
        let other = Users([("alice".to_string(), bcrypt::hash("new", 4).unwrap())].into());
        assert!(!check_basic_auth(Some(&basic("alice", "s3cret")), &other, &cache));
        assert!(check_basic_auth(Some(&basic("alice", "new")), &other, &cache));
    }
}
