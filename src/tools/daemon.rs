//! The daemon's start: validate the configuration, start logging (saying which settings have no effect),
//! log the effective configuration and run the pipeline until a signal stops it.

use log::info;

use crate::app;
use crate::config::{Config, RawSettings};
use crate::runtime::logging;

pub fn main(raw: RawSettings) -> i32 {
    let cfg = match super::valid(Config::from_raw(&raw)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    logging::init(cfg.log_level);
    for d in &cfg.ignored_log_directives {
        log::warn!("RUST_LOG directive {d:?} names a target; only the global level is applied");
    }
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    info!("{}", app::startup_line(&cfg));
    let life = super::stopped_by_signals();
    match app::run(&cfg, life, |addr| info!("serving metrics on http://{addr}/metrics")) {
        Ok(()) => app::EXIT_OK,
        Err(e) => {
            log::error!("{e}");
            e.exit_code()
        }
    }
}
