//! What a web config file sets ([`WebConfig`]) and [`parse`], from the file's text to it.
//!
//! The top level has `tls_server_config` and `basic_auth_users`; each section's lines are read by its own
//! module. `parse` reads no file, so it can be fuzzed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::basic_auth::{self, Users};
use super::error::{err_at, redact_hashes, WebConfigError};
use super::tls::{self, TlsConfig};
use super::yaml::{lines, Scalar};

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
    pub(super) fn files(&self) -> Vec<PathBuf> {
        match &self.tls {
            None => Vec::new(),
            Some(t) => [Some(t.cert_file.clone()), Some(t.key_file.clone()), t.client_ca_file.clone()]
                .into_iter()
                .flatten()
                .collect(),
        }
    }
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
            "tls_server_config" => cfg.tls = tls::section(entries, base_dir)?,
            "basic_auth_users" => cfg.users = basic_auth::section(entries)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::webconfig::basic_auth::{is_bcrypt_hash, TEST_HASH as HASH};
    use crate::http::webconfig::tls::{ClientAuth, TlsVersion};

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
}
