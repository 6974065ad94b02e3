//! `tls_server_config`: its settings, decoded from the section, and the OpenSSL server context built from
//! them.
//!
//! The toolkit's names are Go's: cipher suites as Go's `tls.CipherSuites()` names them, curves as
//! `tls.CurveID`, client auth types as `tls.ClientAuthType`. Each maps to OpenSSL's own name here. As in
//! Go, TLS 1.3 suites cannot be chosen (listing them is accepted and changes nothing), TLS is on as soon as
//! a certificate, key, client CA or client auth type is set, and `VerifyClientCertIfGiven` or
//! `RequireAndVerifyClientCert` without a client CA verify against the system's roots. Paths are resolved
//! against the config file's directory when read; files are only opened by [`build_acceptor`].

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslMethod, SslOptions, SslVerifyMode, SslVersion};
use openssl::x509::{X509Name, X509Ref, X509};

use super::decode::{self, get, mapping};
use super::error::{err_at, quote, WebConfigError};
use super::node::Node;

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
    /// Every accepted name; `RequireClientCert` is the toolkit's old name of `RequireAnyClientCert`.
    const NAMES: [(&'static str, ClientAuth); 6] = [
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        ("RequireClientCert", ClientAuth::RequireAnyClientCert),
        ("VerifyClientCertIfGiven", ClientAuth::VerifyClientCertIfGiven),
        ("RequireAndVerifyClientCert", ClientAuth::RequireAndVerifyClientCert),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES.iter().find(|(_, c)| *c == self).map(|(n, _)| *n).unwrap_or("NoClientCert")
    }

    /// Whether client certificates are verified (against the client CA, or the system roots without one).
    pub fn verifies(self) -> bool {
        matches!(self, ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert)
    }

    fn requires(self) -> bool {
        matches!(self, ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, v)| *v == self).map(|(n, _)| *n).unwrap_or("TLS12")
    }

    fn ssl(self) -> SslVersion {
        match self {
            TlsVersion::Tls10 => SslVersion::TLS1,
            TlsVersion::Tls11 => SslVersion::TLS1_1,
            TlsVersion::Tls12 => SslVersion::TLS1_2,
            TlsVersion::Tls13 => SslVersion::TLS1_3,
        }
    }
}

/// Go's cipher suite names (those `tls.CipherSuites()` returns) and OpenSSL's; `None` for the TLS 1.3
/// suites, which Go (and so the toolkit) does not let a config choose.
pub const CIPHER_SUITES: &[(&str, Option<&str>)] = &[
    ("TLS_AES_128_GCM_SHA256", None),
    ("TLS_AES_256_GCM_SHA384", None),
    ("TLS_CHACHA20_POLY1305_SHA256", None),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", Some("ECDHE-ECDSA-AES128-SHA")),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", Some("ECDHE-ECDSA-AES256-SHA")),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", Some("ECDHE-RSA-AES128-SHA")),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", Some("ECDHE-RSA-AES256-SHA")),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", Some("ECDHE-ECDSA-AES128-GCM-SHA256")),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", Some("ECDHE-ECDSA-AES256-GCM-SHA384")),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Some("ECDHE-RSA-AES128-GCM-SHA256")),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", Some("ECDHE-RSA-AES256-GCM-SHA384")),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", Some("ECDHE-RSA-CHACHA20-POLY1305")),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", Some("ECDHE-ECDSA-CHACHA20-POLY1305")),
];

/// The suites one of which Go's HTTP/2 server insists on when a config lists suites.
pub const HTTP2_REQUIRED: [&str; 2] =
    ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"];

/// Go's curve names and OpenSSL's group names.
pub const CURVES: &[(&str, &str)] =
    &[("CurveP256", "P-256"), ("CurveP384", "P-384"), ("CurveP521", "P-521"), ("X25519", "X25519")];

/// A certificate, key or CA: a file, or PEM text inline in the config.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

/// Paths are shown (hashes masked), inline PEM is not (it may be a private key).
impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => write!(f, "File({})", quote(&p.display().to_string())),
            Pem::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

impl Pem {
    /// How `check-config` names it.
    pub fn describe(&self) -> String {
        match self {
            Pem::File(p) => p.display().to_string(),
            Pem::Inline(_) => "inline".to_string(),
        }
    }
}

/// `tls_server_config`, with paths already resolved against the config file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert: Pem,
    pub key: Pem,
    pub client_ca: Option<Pem>,
    pub client_auth: ClientAuth,
    pub client_allowed_sans: Vec<String>,
    /// Go names, as listed (validated).
    pub cipher_suites: Vec<&'static str>,
    pub curve_preferences: Vec<&'static str>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    pub prefer_server_cipher_suites: bool,
}

impl TlsConfig {
    /// The files it reads.
    pub(super) fn files(&self) -> Vec<PathBuf> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|p| match p {
                Pem::File(f) => Some(f.clone()),
                Pem::Inline(_) => None,
            })
            .collect()
    }
}

const TLS_KEYS: &[&str] = &[
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "cipher_suites",
    "curve_preferences",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
];

/// Reads the section (`None` when it turns nothing on); `at` is the line of its key. Relative paths are
/// joined to `base`.
pub(super) fn section(node: Option<&Node>, at: usize, base: &Path) -> Result<Option<TlsConfig>, WebConfigError> {
    let s = mapping(node, "tls_server_config", TLS_KEYS)?;
    let text = |k: &str| decode::string(get(s, k), &format!("tls_server_config.{k}"));
    let line_of = |k: &str| get(s, k).map_or(at, |n| n.line);
    let (cert, key, client_ca) = (text("cert")?, text("key")?, text("client_ca")?);
    let (cert_file, key_file, client_ca_file) = (text("cert_file")?, text("key_file")?, text("client_ca_file")?);
    let auth_name = text("client_auth_type")?;
    let version = |k: &str, default: TlsVersion| -> Result<TlsVersion, WebConfigError> {
        let v = text(k)?;
        if v.is_empty() && get(s, k).is_none() {
            return Ok(default);
        }
        TlsVersion::ALL.iter().find(|(n, _)| *n == v).map(|(_, t)| *t).ok_or_else(|| {
            err_at(
                line_of(k),
                format!(
                    "tls_server_config.{k}: unknown TLS version {} (allowed: TLS10, TLS11, TLS12, TLS13)",
                    quote(&v)
                ),
            )
        })
    };
    let min_version = version("min_version", TlsVersion::Tls12)?;
    let max_version = version("max_version", TlsVersion::Tls13)?;
    let mut cipher_suites = Vec::new();
    for (name, line) in decode::strings(get(s, "cipher_suites"), "tls_server_config.cipher_suites")? {
        let Some((go, _)) = CIPHER_SUITES.iter().find(|(n, _)| *n == name) else {
            let all: Vec<&str> = CIPHER_SUITES.iter().map(|(n, _)| *n).collect();
            return Err(err_at(
                line,
                format!(
                    "tls_server_config.cipher_suites: unknown cipher {} (allowed: {})",
                    quote(&name),
                    all.join(", ")
                ),
            ));
        };
        cipher_suites.push(*go);
    }
    let mut curve_preferences = Vec::new();
    for (name, line) in decode::strings(get(s, "curve_preferences"), "tls_server_config.curve_preferences")? {
        let Some((go, _)) = CURVES.iter().find(|(n, _)| *n == name) else {
            return Err(err_at(line, format!("tls_server_config.curve_preferences: unknown curve {} (allowed: CurveP256, CurveP384, CurveP521, X25519)", quote(&name))));
        };
        curve_preferences.push(*go);
    }
    let prefer_server_cipher_suites =
        decode::boolean(get(s, "prefer_server_cipher_suites"), "tls_server_config.prefer_server_cipher_suites")?
            .unwrap_or(true);
    let client_allowed_sans: Vec<String> =
        decode::strings(get(s, "client_allowed_sans"), "tls_server_config.client_allowed_sans")?
            .into_iter()
            .map(|(v, _)| v)
            .collect();
    // Go's rule: TLS is on when any of these is set (non-empty).
    let enabled =
        [&cert, &key, &client_ca, &cert_file, &key_file, &client_ca_file, &auth_name].iter().any(|v| !v.is_empty());
    if !enabled {
        return Ok(None);
    }
    let pick = |file: String, inline: String| match (file.is_empty(), inline.is_empty()) {
        (false, _) => Some(Pem::File(base.join(file))),
        (true, false) => Some(Pem::Inline(inline)),
        (true, true) => None,
    };
    let cert =
        pick(cert_file, cert).ok_or_else(|| err_at(at, "tls_server_config: missing one of cert or cert_file"))?;
    let key = pick(key_file, key).ok_or_else(|| err_at(at, "tls_server_config: missing one of key or key_file"))?;
    let client_ca = pick(client_ca_file, client_ca);
    let client_auth = match auth_name.as_str() {
        "" => ClientAuth::NoClientCert,
        name => ClientAuth::NAMES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).ok_or_else(|| {
            let names: Vec<&str> = ClientAuth::NAMES.iter().map(|(n, _)| *n).collect();
            err_at(
                line_of("client_auth_type"),
                format!(
                    "tls_server_config.client_auth_type: invalid ClientAuth {} (allowed: {})",
                    quote(name),
                    names.join(", ")
                ),
            )
        })?,
    };
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        let k = if get(s, "client_ca_file").is_some() { "client_ca_file" } else { "client_ca" };
        return Err(err_at(
            line_of(k),
            format!("tls_server_config.{k}: client CA's have been configured without a Client Auth Policy (set client_auth_type, e.g. RequireAndVerifyClientCert)"),
        ));
    }
    if max_version < min_version {
        return Err(err_at(
            line_of("max_version"),
            format!(
                "tls_server_config.max_version: {} is lower than min_version {}",
                max_version.as_str(),
                min_version.as_str()
            ),
        ));
    }
    Ok(Some(TlsConfig {
        cert,
        key,
        client_ca,
        client_auth,
        client_allowed_sans,
        cipher_suites,
        curve_preferences,
        min_version,
        max_version,
        prefer_server_cipher_suites,
    }))
}

/// The system's trusted roots, for verifying client certificates without a client CA: OpenSSL's defaults
/// (and `SSL_CERT_FILE`/`SSL_CERT_DIR`), plus the distribution bundle, which a vendored OpenSSL does not know.
const SYSTEM_ROOTS: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/// Whether one of the certificate's subject alternative names (DNS, e-mail, IP, URI) is in `allowed`,
/// exactly as written.
fn san_allowed(cert: &X509Ref, allowed: &[String]) -> bool {
    let Some(names) = cert.subject_alt_names() else { return false };
    names.iter().any(|n| {
        let ip = n.ipaddress().and_then(|b| match b.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
            _ => None,
        });
        [n.dnsname().map(str::to_string), n.email().map(str::to_string), n.uri().map(str::to_string), ip]
            .into_iter()
            .flatten()
            .any(|v| allowed.contains(&v))
    })
}

/// Builds the TLS server context: the certificate chain and key (checked against each other), versions,
/// suites and curves, and the client certificate policy.
pub fn build_acceptor(t: &TlsConfig) -> Result<SslAcceptor, WebConfigError> {
    let e = |what: &str, pem: &Pem, e: &dyn fmt::Display| {
        WebConfigError(format!("tls_server_config.{what} ({}): {e}", pem.describe()))
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| WebConfigError(format!("cannot create a TLS context: {e}")))?;
    b.set_min_proto_version(Some(t.min_version.ssl()))
        .and_then(|_| b.set_max_proto_version(Some(t.max_version.ssl())))
        .map_err(|e| WebConfigError(format!("tls_server_config.min_version/max_version: {e}")))?;
    let read = |what: &str, pem: &Pem| -> Result<Vec<u8>, WebConfigError> {
        match pem {
            Pem::File(p) => std::fs::read(p).map_err(|err| e(what, pem, &err)),
            Pem::Inline(s) => Ok(s.as_bytes().to_vec()),
        }
    };
    let (cert_key, key_key) = match (&t.cert, &t.key) {
        (Pem::File(_), Pem::File(_)) => ("cert_file", "key_file"),
        (Pem::File(_), Pem::Inline(_)) => ("cert_file", "key"),
        (Pem::Inline(_), Pem::File(_)) => ("cert", "key_file"),
        (Pem::Inline(_), Pem::Inline(_)) => ("cert", "key"),
    };
    let chain = X509::stack_from_pem(&read(cert_key, &t.cert)?).map_err(|err| e(cert_key, &t.cert, &err))?;
    let mut chain = chain.into_iter();
    let leaf = chain.next().ok_or_else(|| e(cert_key, &t.cert, &"no PEM certificate found"))?;
    b.set_certificate(&leaf).map_err(|err| e(cert_key, &t.cert, &err))?;
    for c in chain {
        b.add_extra_chain_cert(c).map_err(|err| e(cert_key, &t.cert, &err))?;
    }
    // The key's text is never quoted: OpenSSL's error says what is wrong with it.
    let key = PKey::private_key_from_pem(&read(key_key, &t.key)?).map_err(|err| e(key_key, &t.key, &err))?;
    b.set_private_key(&key).map_err(|err| e(key_key, &t.key, &err))?;
    b.check_private_key().map_err(|err| e(key_key, &t.key, &err))?;
    let tls12: Vec<&str> = t
        .cipher_suites
        .iter()
        .filter_map(|n| CIPHER_SUITES.iter().find(|(g, _)| g == n).and_then(|(_, o)| *o))
        .collect();
    // TLS 1.0 and 1.1 need suites they can use (Go's defaults: the ECDHE AEAD ones, then the CBC ones; the
    // default list here is AEAD only) and OpenSSL 3's security level 0, below which they are refused.
    let legacy = t.min_version < TlsVersion::Tls12;
    let go_defaults = || {
        let all = CIPHER_SUITES.iter().filter_map(|(g, o)| o.map(|o| (g.ends_with("_CBC_SHA"), o)));
        let (cbc, aead): (Vec<_>, Vec<_>) = all.partition(|(cbc, _)| *cbc);
        aead.into_iter().chain(cbc).map(|(_, o)| o).collect::<Vec<&str>>()
    };
    let list = match (tls12.is_empty(), legacy) {
        (false, _) => Some(tls12.join(":")),
        (true, true) => Some(go_defaults().join(":")),
        (true, false) => None,
    };
    if legacy {
        // Mozilla's intermediate profile, which this context starts from, switches both off.
        b.clear_options(SslOptions::NO_TLSV1 | SslOptions::NO_TLSV1_1);
    }
    if let Some(mut list) = list {
        if legacy {
            list.push_str(":@SECLEVEL=0");
        }
        b.set_cipher_list(&list).map_err(|err| WebConfigError(format!("tls_server_config.cipher_suites: {err}")))?;
    }
    if !t.curve_preferences.is_empty() {
        let groups: Vec<&str> =
            t.curve_preferences.iter().filter_map(|n| CURVES.iter().find(|(g, _)| g == n).map(|(_, o)| *o)).collect();
        b.set_groups_list(&groups.join(":"))
            .map_err(|err| WebConfigError(format!("tls_server_config.curve_preferences: {err}")))?;
    }
    if t.prefer_server_cipher_suites {
        b.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    } else {
        b.clear_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    }
    match &t.client_ca {
        Some(ca) => {
            let what = if matches!(ca, Pem::File(_)) { "client_ca_file" } else { "client_ca" };
            let certs = X509::stack_from_pem(&read(what, ca)?).map_err(|err| e(what, ca, &err))?;
            if certs.is_empty() {
                return Err(e(what, ca, &"no PEM certificate found"));
            }
            for c in &certs {
                b.cert_store_mut().add_cert(c.clone()).map_err(|err| e(what, ca, &err))?;
            }
            if let Pem::File(p) = ca {
                let names = X509Name::load_client_ca_file(p).map_err(|err| e(what, ca, &err))?;
                b.set_client_ca_list(names);
            } else {
                for c in &certs {
                    b.add_client_ca(c).map_err(|err| e(what, ca, &err))?;
                }
            }
        }
        None if t.client_auth.verifies() => {
            b.set_default_verify_paths()
                .map_err(|err| WebConfigError(format!("cannot load the system's trusted roots: {err}")))?;
            if let Some(bundle) = SYSTEM_ROOTS.iter().find(|p| Path::new(p).exists()) {
                b.set_ca_file(bundle).map_err(|err| {
                    WebConfigError(format!("cannot load the system's trusted roots ({bundle}): {err}"))
                })?;
            }
        }
        None => {}
    }
    let mode = match (t.client_auth, t.client_auth.requires()) {
        (ClientAuth::NoClientCert, _) => SslVerifyMode::NONE,
        (_, true) => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        (_, false) => SslVerifyMode::PEER,
    };
    let verifies = t.client_auth.verifies();
    let sans = t.client_allowed_sans.clone();
    // Request/RequireAny take any certificate; the Verify* ones only a trusted chain. With
    // client_allowed_sans the client's own certificate (depth 0) must also carry one of them.
    b.set_verify_callback(mode, move |chain_ok, ctx| {
        if verifies && !chain_ok {
            return false;
        }
        if sans.is_empty() || ctx.error_depth() != 0 {
            return true;
        }
        ctx.current_cert().is_some_and(|c| san_allowed(c, &sans))
    });
    // Needed for session resumption when client certificates are requested.
    b.set_session_id_context(b"dashflow-prometheus-exporter")
        .map_err(|e| WebConfigError(format!("cannot set the TLS session context: {e}")))?;
    Ok(b.build())
}
