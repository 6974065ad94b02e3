//! The web config in force ([`WebState`]), re-read when its file or the files it names change.
//!
//! The check runs at most once a second, when a connection or a request asks for the config; a change is
//! seen by `stat` (mtime, size, inode). An invalid new version is logged and counted, and the previous one
//! stays in force.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{error, info};
use openssl::ssl::SslAcceptor;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use super::basic_auth::AuthCache;
use super::error::WebConfigError;
use super::settings::{parse, WebConfig};
use super::tls::build_acceptor;
use crate::runtime::shutdown::RateLimit;

/// A web config read from disk, with its TLS context built.
pub struct Loaded {
    pub config: WebConfig,
    pub acceptor: Option<SslAcceptor>,
}

/// Reads, parses and builds everything a web config file names. Errors name the file.
pub fn load_file(path: &Path) -> Result<Loaded, WebConfigError> {
    let (config, _) = read_config(path)?;
    let acceptor = config.tls.as_ref().map(build_acceptor).transpose()?;
    Ok(Loaded { config, acceptor })
}

fn read_config(path: &Path) -> Result<(WebConfig, Vec<PathBuf>), WebConfigError> {
    let text = std::fs::read(path).map_err(|e| WebConfigError(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8(text).map_err(|_| WebConfigError(format!("{}: not UTF-8 text", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let config = parse(&text, base).map_err(|e| WebConfigError(format!("{}: {e}", path.display())))?;
    let files = config.files();
    Ok((config, files))
}

/// Identity of a file's content as far as `stat` tells: (mtime ns, size, inode), `None` if it cannot be read.
type Stamp = Option<(i64, u64, u64)>;

fn stamp(p: &Path) -> Stamp {
    std::fs::metadata(p).ok().map(|m| (m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.size(), m.ino()))
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
    reload_ok: IntCounter,
    reload_failed: IntCounter,
    reloads: IntCounterVec,
    pub auth_failures: IntCounter,
    pub tls_failures: IntCounter,
    error_log: RateLimit,
}

/// How often the files are checked for changes, at most.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl WebState {
    /// Loads the file; fails as [`load_file`] does.
    pub fn new(path: &Path) -> Result<WebState, WebConfigError> {
        let (config, files) = read_config(path)?;
        let acceptor = config.tls.as_ref().map(build_acceptor).transpose()?;
        let stamps = std::iter::once(path.to_path_buf()).chain(files).map(|p| (p.clone(), stamp(&p))).collect();
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
        Ok(WebState {
            path: path.to_path_buf(),
            watch: Mutex::new(Watch {
                current: Arc::new(Loaded { config, acceptor }),
                stamps,
                checked: Instant::now(),
            }),
            cache: AuthCache::default(),
            reload_ok: reloads.with_label_values(&["success"]),
            reload_failed: reloads.with_label_values(&["failure"]),
            reloads,
            auth_failures,
            tls_failures,
            error_log: RateLimit::new(Duration::from_secs(10)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds the reload, auth-failure and TLS-failure counters to a registry.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.reloads.clone()))?;
        registry.register(Box::new(self.auth_failures.clone()))?;
        registry.register(Box::new(self.tls_failures.clone()))
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
        // Stamps are taken before each file is read, so a change during the read is seen at the next check.
        let config_stamp = stamp(&self.path);
        let parsed = read_config(&self.path);
        let files = match &parsed {
            Ok((_, files)) => files.clone(),
            // Unparsable: keep watching the files of the config in force.
            Err(_) => w.stamps.iter().skip(1).map(|(p, _)| p.clone()).collect(),
        };
        w.stamps = std::iter::once((self.path.clone(), config_stamp))
            .chain(files.into_iter().map(|p| (p.clone(), stamp(&p))))
            .collect();
        let result = parsed.and_then(|(config, _)| {
            let acceptor = config.tls.as_ref().map(build_acceptor).transpose()?;
            Ok(Loaded { config, acceptor })
        });
        match result {
            Ok(loaded) => {
                info!("web config {} reloaded: {}", self.path.display(), loaded.config.summary());
                if loaded.config.users != w.current.config.users {
                    self.cache.clear();
                }
                w.current = Arc::new(loaded);
                self.reload_ok.inc();
            }
            Err(e) => {
                self.reload_failed.inc();
                if let Some(n) = self.error_log.check() {
                    let more = if n > 0 { format!(" ({n} more failures not logged)") } else { String::new() };
                    error!("web config {}: reload failed, keeping the previous one: {e}{more}", self.path.display());
                }
            }
        }
    }
}
