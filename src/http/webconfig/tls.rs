//! `tls_server_config`: its settings, read from the section's lines, and the OpenSSL server context built
//! from them.
//!
//! Paths are resolved against the config file's directory when read; the certificate, key and client CA
//! files themselves are only opened by [`build_acceptor`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509Name;

use super::error::{err_at, WebConfigError};
use super::yaml::{Line, Scalar};

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

/// The keys of `tls_server_config` this exporter reads.
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

/// Reads the section's lines (`None` when it sets nothing). Relative paths are joined to `base`.
pub(super) fn section(entries: &[Line], base: &Path) -> Result<Option<TlsConfig>, WebConfigError> {
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
