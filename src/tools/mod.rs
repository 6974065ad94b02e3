//! The binary's commands, each started with the typed arguments `config::cli` parsed: the daemon and the
//! subcommands `demo`, `produce`, `tail`, `healthcheck`, `check-config`, `mock-broker` and `backfill`. Each `main`
//! returns the process exit code.

pub mod backfill;
pub mod check_config;
pub mod daemon;
pub mod demo;
pub mod healthcheck;
pub mod mock_broker;
pub mod produce;
pub mod tail;

use std::sync::Arc;

use crate::config::{ConfigErrors, ToolConfig};
use crate::runtime::shutdown::Lifecycle;

pub use crate::app::{EXIT_CONFIG, EXIT_RUNTIME, EXIT_SECOND_SIGNAL};

/// A validated configuration, or [`EXIT_CONFIG`] after printing every problem.
pub fn valid<T>(checked: Result<T, ConfigErrors>) -> Result<T, i32> {
    checked.map_err(|e| {
        eprint!("{e}");
        EXIT_CONFIG
    })
}

/// SIGINT/SIGTERM: the first asks for a clean stop, a second one exits at once.
pub fn install_signals(life: &Arc<Lifecycle>) {
    let life = life.clone();
    let r = ctrlc::set_handler(move || {
        if life.stop_requested() {
            eprintln!("second signal: exiting now");
            std::process::exit(EXIT_SECOND_SIGNAL);
        }
        life.request_stop();
    });
    if let Err(e) = r {
        eprintln!("cannot install the signal handler: {e}");
        std::process::exit(EXIT_RUNTIME);
    }
}

/// A lifecycle whose stop the signals request.
pub fn stopped_by_signals() -> Arc<Lifecycle> {
    let life = Arc::new(Lifecycle::new());
    install_signals(&life);
    life
}

/// Common start of `produce` and `tail`: their configuration, quiet logging, signals.
pub fn client_tool_start(raw: &crate::config::RawSettings) -> Result<(ToolConfig, Arc<Lifecycle>), i32> {
    let cfg = valid(ToolConfig::from_raw(raw))?;
    crate::runtime::logging::init(cfg.log_level.min(log::LevelFilter::Warn));
    Ok((cfg, stopped_by_signals()))
}
