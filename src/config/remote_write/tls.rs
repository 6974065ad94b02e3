//! TLS to the receiver, through the OpenSSL the binary already links: the CA bundle that verifies it (the
//! given file, else the system's), and an optional client certificate and key (mutual TLS). Built once at
//! validation, so a certificate that does not load is a configuration error at start-up.

use std::path::{Path, PathBuf};

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVersion};

/// Where CA bundles usually are when no file is given (Debian/Ubuntu, RHEL/Fedora, Alpine/openSUSE). The
/// static binary's OpenSSL has no usable built-in default directory, so these are probed as librdkafka does.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The TLS settings for the receiver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Which file a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Ca,
    Cert,
    Key,
}

/// A connector verifying the receiver (certificate chain and host name) against `files.ca` or the system
/// bundle, presenting `files.cert`/`files.key` when given; TLS 1.2 at least.
pub fn connector(files: &TlsFiles) -> Result<SslConnector, (TlsFile, String)> {
    let setup = |e: openssl::error::ErrorStack| (TlsFile::Ca, format!("TLS setup failed: {e}"));
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(setup)?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2)).map_err(setup)?;
    match &files.ca {
        Some(ca) => b.set_ca_file(ca).map_err(|e| (TlsFile::Ca, pem_problem(ca, "CA certificates", &e)))?,
        None => {
            b.set_default_verify_paths().map_err(setup)?;
            if let Some(bundle) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
                // A broken system bundle is not this configuration's fault: the default paths still apply.
                let _ = b.set_ca_file(bundle);
            }
        }
    }
    if let (Some(cert), Some(key)) = (&files.cert, &files.key) {
        b.set_certificate_chain_file(cert).map_err(|e| (TlsFile::Cert, pem_problem(cert, "a certificate", &e)))?;
        b.set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| (TlsFile::Key, pem_problem(key, "a private key", &e)))?;
        b.check_private_key().map_err(|_| (TlsFile::Key, "the key does not match the certificate".to_string()))?;
    }
    Ok(b.build())
}

fn pem_problem(path: &Path, what: &str, e: &openssl::error::ErrorStack) -> String {
    match std::fs::metadata(path) {
        Err(io) => format!("cannot read the file: {io}"),
        Ok(m) if !m.is_file() => "expected a file".to_string(),
        Ok(_) => format!("expected {what} in PEM format: {e}"),
    }
}
