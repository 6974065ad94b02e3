//! The `--web.config.file` side of src/config/webconfig/ and src/http/webconfig/: `parse` (saphyr-parser's events into the line-numbered
//! tree of `node`, then the strict decoding of every toolkit section) and the `Authorization: Basic` header
//! decoder (the bcrypt check itself is a library call, deliberately far too slow to fuzz).
//!
//! The first byte picks what the rest is: even → the text of a web config file, odd → a header value.
//! Findings: a panic (or a stack overflow, a hang or runaway memory on nesting and alias bombs); a parse
//! error whose message repeats a bcrypt hash of the input (errors name the line and key, never a hash) or
//! does not name a line; a summary or `Debug` of an accepted config that contains a hash or inline key text;
//! a decoded header that does not round-trip (`Basic base64(user:password)` must give back the same user and
//! password).
#![no_main]

use std::path::Path;

use base64::Engine as _;
use dashflow_prometheus_exporter::config::webconfig::{is_bcrypt_hash, parse, Pem};
use dashflow_prometheus_exporter::http::webconfig::parse_basic_auth;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    if mode % 2 == 0 {
        let hashes: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ':')
            .filter(|t| is_bcrypt_hash(t))
            .collect();
        match parse(text, Path::new("/nonexistent/web")) {
            Ok(cfg) => {
                let shown = format!("{} {cfg:?}", cfg.summary());
                for h in &hashes {
                    assert!(!shown.contains(h), "summary or Debug repeats a hash: {shown:?}");
                }
                // Inline PEM never shapes what is shown: the same config with other inline text shows the same.
                if cfg.tls.is_some() {
                    let mut other = cfg.clone();
                    let tls = other.tls.as_mut().expect("cloned");
                    for pem in [&mut tls.cert, &mut tls.key] {
                        if let Pem::Inline(text) = pem {
                            *text = format!("other {}", text.len());
                        }
                    }
                    assert_eq!(format!("{} {other:?}", other.summary()), shown, "inline PEM shown");
                }
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("line "), "an error names the line: {msg:?}");
                for h in &hashes {
                    assert!(!msg.contains(h), "error repeats a hash: {msg:?}");
                }
            }
        }
    } else if let Some((user, password)) = parse_basic_auth(text) {
        assert!(!user.contains(&b':'), "the user name ends at the first colon");
        let mut raw = user.clone();
        raw.push(b':');
        raw.extend_from_slice(&password);
        let again = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&raw));
        assert_eq!(parse_basic_auth(&again), Some((user, password)), "round trip of {text:?}");
    }
});
