//! Subcommands besides the daemon: `produce`, `tail`, `healthcheck` (and `demo`, `check-config` in main).

pub mod healthcheck;
pub mod produce;
pub mod tail;
