//! The web config's error type, and the redaction that keeps bcrypt hashes out of every message.
//!
//! Errors name the file, the line and the key that are wrong. When a message quotes the operator's text
//! (a key, a value) it does so through [`quote`], which masks anything shaped like a bcrypt hash; the
//! exporter's own words are never masked, so a message still reads as written.

use std::fmt;

/// Why a web config cannot be used. The text names the line and key; it never contains a hash or password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfigError(pub String);

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WebConfigError {}

pub(super) fn err_at(line: usize, msg: impl fmt::Display) -> WebConfigError {
    WebConfigError(format!("line {line}: {msg}"))
}

/// The operator's text, quoted, with hashes masked: the only way a message repeats what the file says.
pub(super) fn quote(s: &str) -> String {
    format!("{:?}", redact_hashes(s))
}

/// A key of the operator's as part of a dotted path: as written when it is a plain word, else quoted
/// (and masked) like any other quoted text.
pub(super) fn key_name(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if plain {
        s.to_string()
    } else {
        quote(s)
    }
}

/// Masks everything that starts like a bcrypt hash (`$2a$`, `$2b$`, `$2x$`, `$2y$` and the run of bcrypt
/// characters after it). On a malformed line a hash can end up inside a "key" (found by the `webconfig`
/// fuzz target), and no message may ever carry one.
pub(super) fn redact_hashes(s: &str) -> String {
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
