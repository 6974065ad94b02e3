//! The log level (`RUST_LOG`, `--log-level`). `RUST_LOG`-style `target=level` directives are accepted so an
//! environment shared with other Rust programs does not stop the exporter, but only the global level applies;
//! the others are handed back so the daemon can say they are ignored.

use log::LevelFilter;

use super::check::Checker;
use super::setting::Setting;

/// The global level and the directives that were accepted but are not applied.
pub(crate) fn check(c: &mut Checker<'_>) -> (LevelFilter, Vec<String>) {
    c.parsed(Setting::RustLog, parse_log_level, (LevelFilter::Info, Vec::new()))
}

/// Parses `RUST_LOG`-style input: a level, optionally with `target=level` directives (accepted, not applied).
fn parse_log_level(s: &str) -> Result<(LevelFilter, Vec<String>), String> {
    let mut level = None;
    let mut ignored = Vec::new();
    for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let lvl_text = d.rsplit_once('=').map(|(_, l)| l).unwrap_or(d);
        let lvl: LevelFilter = lvl_text
            .parse()
            .map_err(|_| format!("expected a level (error, warn, info, debug, trace, off); {lvl_text:?} is not one"))?;
        if d.contains('=') {
            ignored.push(d.to_string());
        } else {
            level = Some(lvl);
        }
    }
    Ok((level.unwrap_or(LevelFilter::Info), ignored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::ok;

    #[test]
    fn log_level_accepts_rust_log_style_directives() {
        let c = ok(&[("RUST_LOG", "warn,rdkafka=debug")]);
        assert_eq!(c.log_level, LevelFilter::Warn);
        assert_eq!(c.ignored_log_directives, vec!["rdkafka=debug".to_string()]);
        assert_eq!(ok(&[("RUST_LOG", "DEBUG")]).log_level, LevelFilter::Debug);
    }

    #[test]
    fn an_unknown_level_names_itself() {
        assert!(parse_log_level("chatty").unwrap_err().contains("\"chatty\" is not one"));
        assert_eq!(parse_log_level("").unwrap(), (LevelFilter::Info, Vec::new()));
    }
}
