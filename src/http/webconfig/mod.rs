//! Serving with `--web.config.file` (the Prometheus exporter-toolkit web config, read and checked by
//! `config/webconfig/`): [`WebState`] keeps the config in force and re-reads it when its files change
//! (`reload`), `basic_auth` checks logins against `basic_auth_users` within budgets of bcrypt work, and
//! `rate` is the token bucket of `rate_limit`.

mod basic_auth;
mod rate;
mod reload;

pub use basic_auth::{dummy_hash, parse_basic_auth, AuthCache, AuthLimits, AuthOutcome, Login, Throttle};
pub use rate::TokenBucket;
pub use reload::{Loaded, WebState, RELOAD_CHECK_INTERVAL};
