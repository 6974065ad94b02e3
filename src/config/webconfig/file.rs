//! A web config file read and checked: the YAML parsed ([`super::parse`]) and the TLS context it names built
//! ([`super::build_acceptor`]), each file stamped (mtime, size, inode) just before it was read, so that the
//! HTTP stage's re-reading (`http/webconfig/reload.rs`) can tell when one changes.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::ssl::SslAcceptor;

use super::error::WebConfigError;
use super::settings::{parse, WebConfig};
use super::tls::build_acceptor;

/// A web config as read from disk and checked, with its TLS context built.
#[derive(Clone)]
pub struct Checked {
    pub config: WebConfig,
    pub acceptor: Option<SslAcceptor>,
}

/// A web config file as read and checked once: what the server starts from.
#[derive(Clone)]
pub struct WebConfigFile {
    pub path: PathBuf,
    pub checked: Arc<Checked>,
    /// The files read, each stamped just before it was read.
    pub stamps: Vec<(PathBuf, Stamp)>,
}

impl WebConfigFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &WebConfig {
        &self.checked.config
    }

    /// One line for `check-config` and the start-up log: what is on, never a hash.
    pub fn summary(&self) -> String {
        self.checked.config.summary()
    }
}

/// The path and the summary: never a hash, nor the TLS context.
impl fmt::Debug for WebConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfigFile").field("path", &self.path).field("summary", &self.summary()).finish()
    }
}

/// Reads, parses and builds everything a web config file names. Errors name the file.
pub fn load_file(path: &Path) -> Result<WebConfigFile, WebConfigError> {
    let (stamps, checked) = read_stamped(path, Vec::new);
    Ok(WebConfigFile { path: path.to_path_buf(), checked: Arc::new(checked?), stamps })
}

/// Reads the config file and builds the TLS context it names, stamping each file just before it is read, so
/// that a change during the read shows at the next check. When the file does not parse, the files named by
/// `fallback` are stamped instead (those of the config in force: still the ones to watch).
pub fn read_stamped(
    path: &Path,
    fallback: impl FnOnce() -> Vec<PathBuf>,
) -> (Vec<(PathBuf, Stamp)>, Result<Checked, WebConfigError>) {
    let config_stamp = stamp(path);
    let parsed = read_config(path);
    let files = match &parsed {
        Ok(config) => config.files(),
        Err(_) => fallback(),
    };
    let stamps = std::iter::once((path.to_path_buf(), config_stamp))
        .chain(files.into_iter().map(|p| (p.clone(), stamp(&p))))
        .collect();
    let checked = parsed.and_then(|config| {
        let acceptor = config
            .tls
            .as_ref()
            .map(build_acceptor)
            .transpose()
            .map_err(|e| WebConfigError(format!("{}: {e}", path.display())))?;
        Ok(Checked { config, acceptor })
    });
    (stamps, checked)
}

fn read_config(path: &Path) -> Result<WebConfig, WebConfigError> {
    let text = std::fs::read(path).map_err(|e| WebConfigError(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8(text).map_err(|_| WebConfigError(format!("{}: not UTF-8 text", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|e| WebConfigError(format!("{}: {e}", path.display())))
}

/// Identity of a file's content as far as `stat` tells: (mtime ns, size, inode), `None` if it cannot be read.
pub type Stamp = Option<(i64, u64, u64)>;

pub fn stamp(p: &Path) -> Stamp {
    std::fs::metadata(p).ok().map(|m| (m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.size(), m.ino()))
}
