//! The YAML subset a web config is written in, read into `key: value` lines.
//!
//! Block mappings two levels deep, plain or quoted scalars and comments; anything else (lists, flow
//! mappings, anchors, several documents, tabs) is an error naming the line, as the toolkit's strict YAML
//! decoding would refuse it. What the keys mean is for the sections to say (`settings`, `tls`, `basic_auth`).

use super::error::{err_at, WebConfigError};

/// One `key: value` line: indentation, key, value (`None` when nothing follows the colon).
pub(super) struct Line {
    pub no: usize,
    pub indent: usize,
    pub key: String,
    pub value: Option<Scalar>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Scalar {
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
    pub fn text(&self) -> Option<&str> {
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

/// Reads the text into its `key: value` lines, skipping blank and comment lines and a leading `---`.
pub(super) fn lines(text: &str) -> Result<Vec<Line>, WebConfigError> {
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
