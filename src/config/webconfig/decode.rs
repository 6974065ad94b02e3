//! Strict decoding of [`Node`]s into the settings' types, as Go's `yaml.UnmarshalStrict` into the toolkit's
//! structs: an unknown key or a value of the wrong type is an error naming the line and the key.
//!
//! Like Go's YAML v2 (YAML 1.1), a string setting takes any scalar as written (`port: 123` is the string
//! "123"), a boolean also takes yes/no/on/off, an integer must be a plain number, and a null value leaves the
//! setting at its default.

use std::time::Duration;

use super::error::{err_at, quote, WebConfigError};
use super::node::{Kind, Node};

pub(super) type Entries = [(String, usize, Node)];

/// The entries of the mapping at `path` (none when absent or null), every key checked against `allowed`.
pub(super) fn mapping<'a>(node: Option<&'a Node>, path: &str, allowed: &[&str]) -> Result<&'a Entries, WebConfigError> {
    let entries: &Entries = match node {
        None => &[],
        Some(n) if n.is_null() => &[],
        Some(Node { kind: Kind::Map(m), .. }) => m,
        Some(n) => return Err(err_at(n.line, format!("{path}: expected a mapping, got {}", what(n)))),
    };
    if !allowed.is_empty() {
        if let Some((k, line, _)) = entries.iter().find(|(k, _, _)| !allowed.contains(&k.as_str())) {
            let at = if path.is_empty() { String::new() } else { format!("{path}: ") };
            return Err(err_at(*line, format!("{at}unknown key {} (allowed: {})", quote(k), allowed.join(", "))));
        }
    }
    Ok(entries)
}

/// The value of `key`, if set (and not null).
pub(super) fn get<'a>(entries: &'a Entries, key: &str) -> Option<&'a Node> {
    entries.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v).filter(|v| !v.is_null())
}

fn what(n: &Node) -> &'static str {
    match n.kind {
        Kind::Scalar(..) => "a scalar",
        Kind::Seq(_) => "a list",
        Kind::Map(_) => "a mapping",
    }
}

/// A string setting: any scalar, as written; `""` when unset or null.
pub(super) fn string(node: Option<&Node>, path: &str) -> Result<String, WebConfigError> {
    match node {
        None => Ok(String::new()),
        Some(Node { kind: Kind::Scalar(s, _), .. }) => Ok(s.clone()),
        Some(n) => Err(err_at(n.line, format!("{path}: expected a string, got {}", what(n)))),
    }
}

/// A boolean setting (YAML 1.1 spellings, unquoted).
pub(super) fn boolean(node: Option<&Node>, path: &str) -> Result<Option<bool>, WebConfigError> {
    let Some(n) = node else { return Ok(None) };
    if let Kind::Scalar(s, true) = &n.kind {
        match s.as_str() {
            "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => return Ok(Some(true)),
            "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
                return Ok(Some(false))
            }
            _ => {}
        }
    }
    Err(err_at(n.line, format!("{path}: expected true or false, got {}", shown(n))))
}

fn shown(n: &Node) -> String {
    match &n.kind {
        Kind::Scalar(s, _) => quote(s),
        _ => what(n).to_string(),
    }
}

/// A plain decimal integer (`_` separators allowed, as YAML 1.1).
fn plain_int(n: &Node) -> Option<i64> {
    let Kind::Scalar(s, true) = &n.kind else { return None };
    let t = s.replace('_', "");
    let digits = t.strip_prefix(['-', '+']).unwrap_or(&t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// A whole number from 0 to `max`.
pub(super) fn count(node: Option<&Node>, path: &str, max: i64) -> Result<Option<i64>, WebConfigError> {
    let Some(n) = node else { return Ok(None) };
    match plain_int(n) {
        Some(v) if (0..=max).contains(&v) => Ok(Some(v)),
        _ => Err(err_at(n.line, format!("{path}: expected a whole number from 0 to {max}, got {}", shown(n)))),
    }
}

/// A duration: Go's syntax (`1s`, `500ms`, `1m30s`, `1.5h`; units ns, us, µs, ms, s, m, h) or a plain
/// integer of nanoseconds, as Go's YAML decodes a `time.Duration`. Negative durations come back as zero
/// (the toolkit's rate limiter treats them as "no limit", like zero).
pub(super) fn duration(node: Option<&Node>, path: &str) -> Result<Option<Duration>, WebConfigError> {
    let Some(n) = node else { return Ok(None) };
    if let Some(ns) = plain_int(n) {
        return Ok(Some(Duration::from_nanos(ns.max(0) as u64)));
    }
    let parsed = match &n.kind {
        Kind::Scalar(s, _) => go_duration(s),
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| {
        err_at(n.line, format!("{path}: expected a duration such as 1s, 500ms or 1m30s, got {}", shown(n)))
    })
}

/// Go's `time.ParseDuration`, negative values clamped to zero.
pub(super) fn go_duration(s: &str) -> Option<Duration> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (whole, frac) = rest[..num_end].split_once('.').unwrap_or((&rest[..num_end], ""));
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') || whole.len() + frac.len() > 30 {
            return None;
        }
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale: u128 = match &rest[..unit_end] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_end..];
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
        let frac_ns = if frac.is_empty() {
            0
        } else {
            frac.parse::<u128>().ok()?.checked_mul(scale)? / 10u128.pow(frac.len() as u32)
        };
        total = total.checked_add(whole.checked_mul(scale)?.checked_add(frac_ns)?)?;
    }
    if negative {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos(u64::try_from(total).ok()?))
}

/// A list of strings, each with its line; empty when unset or null.
pub(super) fn strings(node: Option<&Node>, path: &str) -> Result<Vec<(String, usize)>, WebConfigError> {
    let Some(n) = node else { return Ok(Vec::new()) };
    let Kind::Seq(items) = &n.kind else {
        return Err(err_at(n.line, format!("{path}: expected a list, got {}", shown(n))));
    };
    items
        .iter()
        .map(|i| match &i.kind {
            Kind::Scalar(s, _) => Ok((s.clone(), i.line)),
            _ => Err(err_at(i.line, format!("{path}: expected a list of strings, got {}", what(i)))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s: &str| go_duration(s).map(|d| d.as_nanos());
        assert_eq!(d("1s"), Some(1_000_000_000));
        assert_eq!(d("0"), Some(0));
        assert_eq!(d("1m30s"), Some(90_000_000_000));
        assert_eq!(d("1.5h"), Some(5_400_000_000_000));
        assert_eq!(d("250ms"), Some(250_000_000));
        assert_eq!(d("10us"), Some(10_000));
        assert_eq!(d("-1s"), Some(0));
        assert_eq!(d(".5s"), Some(500_000_000));
        assert_eq!(d("0.123456789123456789123456789h"), None, "overflows u128 on the way: refused, no panic");
        for bad in ["", "1", "s", "1x", "1.2.3s", "one second", "1s ", "."] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
    }
}
