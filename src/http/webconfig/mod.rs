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
//! The reader is a small strict one for exactly this format: anything else, an unknown key, a duplicate key
//! or an invalid value is an error naming the line and the key. Password hashes and passwords never appear
//! in errors, logs or `Debug` output.
//!
//! From text to use: `yaml` reads lines, `settings` (with `tls` and `basic_auth` for their sections) turns
//! them into a [`WebConfig`]. [`load_file`] reads a file once, for the settings stage to check and the
//! HTTP server to start from; [`WebState`] keeps the config in force and re-reads it when its files change.

mod basic_auth;
mod error;
mod reload;
mod settings;
mod tls;
mod yaml;

pub use basic_auth::{check_basic_auth, is_bcrypt_hash, parse_basic_auth, AuthCache, Users};
pub use error::WebConfigError;
pub use reload::{load_file, Loaded, WebConfigFile, WebState, RELOAD_CHECK_INTERVAL};
pub use settings::{parse, WebConfig};
pub use tls::{build_acceptor, ClientAuth, TlsConfig, TlsVersion};
