//! The times and durations `backfill` takes on its command line: an instant as RFC 3339
//! (`2026-12-01T00:00:00Z`, `2026-12-01 08:30:00.250+02:00`) or Unix seconds (`1764547200`, `1764547200.5`), and a
//! duration as Prometheus writes one (`15s`, `1m30s`, `500ms`, `2h`, `7d`). Both are kept in milliseconds, the
//! precision of Kafka's timestamps and of the samples written.

/// An instant given as RFC 3339 or Unix seconds, in milliseconds since the Unix epoch.
pub fn parse_instant(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !s.is_empty() {
        return unix_seconds(s).ok_or_else(|| format!("{s:?} is not a number of Unix seconds"));
    }
    rfc3339(s).ok_or_else(|| {
        format!("{s:?} is neither RFC 3339 (2026-12-01T00:00:00Z, with Z or an offset such as +02:00) nor Unix seconds")
    })
}

/// `123` or `123.456` (at most millisecond precision kept: further digits are refused).
fn unix_seconds(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int.len() > 12 || frac.len() > 3 || (s.contains('.') && frac.is_empty()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let ms = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse::<i64>().ok()? };
    Some(secs * 1000 + ms)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// RFC 3339 `date-time`: `YYYY-MM-DD(T| )hh:mm:ss[.frac](Z|±hh:mm)`; fractions beyond milliseconds are
/// truncated, a leap second (`:60`) is refused.
fn rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..(start + 3).min(i)];
        ms = format!("{digits:0<3}").parse::<i64>().ok()?;
    }
    let offset_min = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + ms)
}

/// A duration such as `15s`, `1m30s`, `500ms`, `2h`, `7d` or `1w` (Prometheus's units, largest first, each at most
/// once), in milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    const UNITS: [(&str, i64); 7] =
        [("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1), ("y", 0)];
    let bad = || format!("{s:?} is not a duration (a number and a unit: 15s, 1m30s, 500ms, 2h, 7d)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let rank = UNITS[..6].iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(bad());
        }
        last_rank = rank;
        total = n.checked_mul(UNITS[rank].1).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-12-01T00:00:00Z`, with `.250` when not whole seconds).
pub fn format_instant(ms: i64) -> String {
    let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil_from_days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let frac = if frac == 0 { String::new() } else { format!(".{frac:03}") };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_both_spellings() {
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_instant("2026-12-01T00:00:00Z"), Ok(1_796_083_200_000));
        assert_eq!(parse_instant("2026-12-01T02:00:00+02:00"), Ok(1_796_083_200_000));
        assert_eq!(parse_instant("2026-11-30 19:00:00.25-05:00"), Ok(1_796_083_200_250));
        assert_eq!(parse_instant("2024-02-29t12:00:00.123456z"), Ok(1_709_208_000_123));
        assert_eq!(parse_instant("1796083200"), Ok(1_796_083_200_000));
        assert_eq!(parse_instant("1796083200.5"), Ok(1_796_083_200_500));
        for bad in [
            "",
            "2026-12-01",
            "2026-12-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T00:00:60Z",
            "2026-12-01T00:00:00.Z",
            "2026-12-01T00:00:00+2:00",
            "2026-12-01T00:00:00+02:00x",
            "1796083200.",
            "1796083200.1234",
            "-5",
            "yesterday",
        ] {
            assert!(parse_instant(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn instants_round_trip_through_the_formatter() {
        for ms in [0, 1_796_083_200_000, 1_709_208_000_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_instant(&format_instant(ms)), Ok(ms), "{}", format_instant(ms));
        }
        assert_eq!(format_instant(1_796_083_200_000), "2026-12-01T00:00:00Z");
        assert_eq!(format_instant(1_709_208_000_123), "2024-02-29T12:00:00.123Z");
    }

    #[test]
    fn durations_as_prometheus_writes_them() {
        assert_eq!(parse_duration("15s"), Ok(15_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("2h"), Ok(7_200_000));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
        assert_eq!(parse_duration("1w1d"), Ok(691_200_000));
        assert_eq!(parse_duration("1s500ms"), Ok(1500));
        for bad in ["", "15", "s", "1.5s", "30s1m", "1s1s", "1x", "-1s", "1 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
