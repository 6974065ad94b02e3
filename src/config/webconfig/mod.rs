//! `--web.config.file`: the Prometheus exporter-toolkit web config (TLS, basic auth, response headers, a
//! rate limit) for the HTTP endpoints, read as the toolkit reads it.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt            # or cert: | (PEM inline); relative paths: relative to this file
//!   key_file: server.key             # or key: |
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt           # or client_ca: |; without one, Verify* use the system's roots
//!   client_allowed_sans: [scraper.example.net]
//!   min_version: TLS12               # TLS10..TLS13; max_version likewise (default TLS13)
//!   cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]   # Go's names
//!   curve_preferences: [X25519, CurveP256]
//! http_server_config:
//!   http2: true                      # accepted; the server speaks HTTP/1.1
//!   headers: {X-Frame-Options: deny}
//! basic_auth_users:
//!   alice: $2y$10$...                # bcrypt hash
//! rate_limit: {interval: 1s, burst: 20}
//! ```
//!
//! The settings stage owns reading it: `node` reads the YAML (saphyr-parser) into a tree with line numbers,
//! `decode` holds the strict typed reads, and `settings` (with `tls` and `users` for their sections) turns
//! the tree into a [`WebConfig`]: an unknown key, a duplicate key or a wrong type is an error naming the file,
//! the line and the key. Password hashes, passwords and inline keys never appear in errors, logs or `Debug`
//! output. [`load_file`] (`file`) reads a file once and builds its TLS context, for the settings stage to
//! check and the HTTP server to start from. Using it is the HTTP stage's (`http/webconfig/`): the config in
//! force and its re-reading, the login check, the token bucket of `rate_limit`.

mod decode;
mod error;
mod file;
mod node;
mod settings;
mod tls;
pub(crate) mod users;

pub use error::WebConfigError;
pub use file::{load_file, read_stamped, stamp, Checked, Stamp, WebConfigFile};
pub use settings::{parse, RateLimitConfig, WebConfig, HEADERS};
pub use tls::{build_acceptor, ClientAuth, Pem, TlsConfig, TlsVersion, CIPHER_SUITES, CURVES};
#[cfg(test)]
pub(crate) use users::TEST_HASH;
pub use users::{is_bcrypt_hash, Users};
