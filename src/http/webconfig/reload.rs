//! The web config in force ([`WebState`]), starting from the file the settings stage read and checked
//! (`config/webconfig/file.rs`), re-read when the file or the files it names change.
//!
//! The settings stage reads and checks the file; the HTTP server starts from that value and reads the files
//! again only when they change. The check runs at most once a second, when a connection or a request asks
//! for the config, and sees a change by `stat` (mtime, size, inode). An invalid new version is logged and
//! counted, and the previous one stays in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{error, info};
use openssl::ssl::SslAcceptor;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use super::basic_auth::{dummy_hash, AuthCache, AuthLimits, Throttle};
use super::rate::TokenBucket;
use crate::config::webconfig::{read_stamped, stamp, Checked, Stamp, WebConfig, WebConfigFile};
use crate::runtime::logging::RateLimit;
use crate::table::PerKey;

/// The web config in force, with what the HTTP stage builds from it once per load.
pub struct Loaded {
    pub config: WebConfig,
    pub acceptor: Option<SslAcceptor>,
    /// `rate_limit`'s bucket; kept across a reload that leaves `rate_limit` as it was.
    pub limiter: Option<Arc<TokenBucket>>,
    /// `http_server_config.headers`, built once per load: sent on every answer.
    pub headers: Vec<tiny_http::Header>,
    /// What unknown user names are checked against (`basic_auth::dummy_hash`).
    pub dummy_hash: String,
}

impl Loaded {
    fn new(Checked { config, acceptor }: Checked) -> Loaded {
        let limiter = config.rate_limit.map(|l| Arc::new(TokenBucket::new(l)));
        // The values were checked against the toolkit's rules when parsed; one tiny_http refuses is skipped.
        let headers = config
            .headers
            .iter()
            .filter_map(|(k, v)| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
            .collect();
        let dummy_hash = if config.users.is_empty() { String::new() } else { dummy_hash(&config.users) };
        Loaded { config, acceptor, limiter, headers, dummy_hash }
    }
}

struct Watch {
    current: Arc<Loaded>,
    /// The config file and the files named by the config last read (valid or not), with their stamps then.
    stamps: Vec<(PathBuf, Stamp)>,
    checked: Instant,
}

/// The web config in force; shared by the connection threads (TLS) and the request threads (basic auth).
pub struct WebState {
    path: PathBuf,
    watch: Mutex<Watch>,
    pub cache: AuthCache,
    /// The budgets of bcrypt runs, kept across reloads.
    pub auth_limits: AuthLimits,
    reload_ok: IntCounter,
    reload_failed: IntCounter,
    reloads: IntCounterVec,
    pub auth_failures: IntCounter,
    pub tls_failures: IntCounter,
    /// Requests answered 429 by `rate_limit`.
    pub rate_limited: IntCounter,
    /// Logins answered 429 because a budget of bcrypt runs was spent, by budget.
    auth_throttled_family: IntCounterVec,
    pub auth_throttled: PerKey<Throttle, IntCounter>,
    error_log: RateLimit,
}

/// How often the files are checked for changes, at most.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl WebState {
    /// Starts from the file as the settings stage read it; the files are read again only once they change.
    pub fn new(file: WebConfigFile) -> WebState {
        let reloads = IntCounterVec::new(
            Opts::new(
                "dashstream_exporter_web_config_reloads_total",
                "Re-reads of --web.config.file (and the files it names) after a change, by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let auth_failures = IntCounter::new(
            "dashstream_exporter_web_auth_failures_total",
            "HTTP requests refused with 401: missing or wrong basic auth credentials",
        )
        .expect("valid metric");
        let tls_failures = IntCounter::new(
            "dashstream_exporter_web_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out (no or untrusted client certificate, protocol errors, plain HTTP)",
        )
        .expect("valid metric");
        let rate_limited = IntCounter::new(
            "dashstream_exporter_web_rate_limited_total",
            "HTTP requests refused with 429 by the web config's rate_limit",
        )
        .expect("valid metric");
        let auth_throttled_family = IntCounterVec::new(
            Opts::new(
                "dashstream_exporter_web_auth_throttled_total",
                "Logins answered 429 without a bcrypt check: the client address failed too often lately \
                 (scope=client) or the server's budget of bcrypt checks per second was spent (scope=total)",
            ),
            &["scope"],
        )
        .expect("valid metric");
        let auth_throttled = PerKey::from_fn(|t: Throttle| auth_throttled_family.with_label_values(&[t.label()]));
        WebState {
            rate_limited,
            auth_throttled_family,
            auth_throttled,
            auth_limits: AuthLimits::default(),
            path: file.path,
            watch: Mutex::new(Watch {
                current: Arc::new(Loaded::new(Arc::unwrap_or_clone(file.checked))),
                stamps: file.stamps,
                checked: Instant::now(),
            }),
            cache: AuthCache::default(),
            reload_ok: reloads.with_label_values(&["success"]),
            reload_failed: reloads.with_label_values(&["failure"]),
            reloads,
            auth_failures,
            tls_failures,
            error_log: RateLimit::new(Duration::from_secs(10)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds the reload, auth-failure, TLS-failure and rate-limit counters to a registry.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.reloads.clone()))?;
        registry.register(Box::new(self.auth_failures.clone()))?;
        registry.register(Box::new(self.tls_failures.clone()))?;
        registry.register(Box::new(self.auth_throttled_family.clone()))?;
        registry.register(Box::new(self.rate_limited.clone()))
    }

    /// The config in force, re-read first if a second has passed since the last check and a file changed.
    pub fn current(&self) -> Arc<Loaded> {
        let mut w = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if w.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            w.checked = Instant::now();
            if w.stamps.iter().any(|(p, s)| stamp(p) != *s) {
                self.reload(&mut w);
            }
        }
        w.current.clone()
    }

    fn reload(&self, w: &mut Watch) {
        let in_force = || w.stamps.iter().skip(1).map(|(p, _)| p.clone()).collect();
        let (stamps, result) = read_stamped(&self.path, in_force);
        w.stamps = stamps;
        match result {
            Ok(checked) => {
                let loaded = Loaded::new(checked);
                info!("web config {} reloaded: {}", self.path.display(), loaded.config.summary());
                if loaded.config.users != w.current.config.users {
                    self.cache.clear();
                }
                let mut loaded = loaded;
                if loaded.config.rate_limit == w.current.config.rate_limit {
                    loaded.limiter = w.current.limiter.clone();
                }
                w.current = Arc::new(loaded);
                self.reload_ok.inc();
            }
            Err(e) => {
                self.reload_failed.inc();
                if let Some(n) = self.error_log.check() {
                    let more = if n > 0 { format!(" ({n} more failures not logged)") } else { String::new() };
                    error!("web config reload failed, keeping the previous one: {e}{more}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::webconfig::{load_file, TEST_HASH};

    /// The server starts from the value read at start-up, without reading the file again, and still
    /// picks up a change made after that read at its first check.
    #[test]
    fn the_server_starts_from_the_file_as_read_and_reloads_on_change() {
        let dir = std::env::temp_dir().join(format!("dfe-webconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yml");
        std::fs::write(&path, format!("basic_auth_users:\n  alice: {TEST_HASH}\n")).unwrap();
        let file = load_file(&path).unwrap();
        assert_eq!(file.config().users.names().collect::<Vec<_>>(), ["alice"]);
        assert!(!format!("{file:?}").contains("$2y$"), "{file:?}");
        std::fs::write(&path, format!("basic_auth_users:\n  bob: {TEST_HASH}\n  carol: {TEST_HASH}\n")).unwrap();
        let state = WebState::new(file);
        let names = |s: &WebState| s.current().config.users.names().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(names(&state), ["alice"], "not read again at start-up");
        std::thread::sleep(RELOAD_CHECK_INTERVAL);
        assert_eq!(names(&state), ["bob", "carol"], "the change is seen at the first check");
        assert_eq!(state.reload_ok.get(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
