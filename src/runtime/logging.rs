//! Logging through `log` + `simplelog` to standard error, where systemd's journal and container runtimes
//! collect it: one line per message with an RFC 3339 timestamp and its target (the module, or `librdkafka`
//! for the client library's own lines), without thread names or source locations.

use log::LevelFilter;
use simplelog::{ColorChoice, ConfigBuilder, TermLogger, TerminalMode};

/// Installs the logger (once; later calls are ignored).
pub fn init(level: LevelFilter) {
    let mut b = ConfigBuilder::new();
    b.set_target_level(LevelFilter::Error)
        .set_thread_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .set_time_format_rfc3339();
    let _ = TermLogger::init(level, b.build(), TerminalMode::Stderr, ColorChoice::Never);
}
