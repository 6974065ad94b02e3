//! Prometheus remote write's settings: the receiver URL (remote write is off without it), the interval, the
//! labels every pushed series gets, TLS to the receiver and its credentials (basic auth, or a bearer token
//! from a file). Certificates are loaded and the token file read here, at validation, so a broken one is
//! reported with every other problem before anything starts.

use std::time::Duration;

use base64::Engine as _;

pub use self::endpoint::Endpoint;
pub use self::tls::{connector, TlsFile, TlsFiles};
use super::check::Checker;
use super::setting::Setting;

mod endpoint;
mod tls;

/// What goes into the `Authorization` header (the value is never logged).
#[derive(Clone)]
pub enum Auth {
    None,
    Basic(String),
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Basic(_) => "Basic(***)",
            Auth::Bearer(_) => "Bearer(***)",
        })
    }
}

/// What the pusher needs; `None` in [`super::Config`] when `REMOTE_WRITE_URL` is unset.
#[derive(Clone)]
pub struct RemoteWriteConfig {
    pub endpoint: Endpoint,
    pub interval: Duration,
    /// `job`, `instance`, then the extra labels, in that order.
    pub labels: Vec<(String, String)>,
    /// Built when the URL is `https`.
    pub tls: Option<openssl::ssl::SslConnector>,
    pub tls_files: TlsFiles,
    pub auth: Auth,
}

impl std::fmt::Debug for RemoteWriteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWriteConfig")
            .field("endpoint", &self.endpoint.to_string())
            .field("interval", &self.interval)
            .field("labels", &self.labels)
            .field("tls_files", &self.tls_files)
            .field("auth", &self.auth)
            .finish()
    }
}

impl RemoteWriteConfig {
    /// One line for the start-up log and `check-config` (no secret in it).
    pub fn summary(&self) -> String {
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let auth = match self.auth {
            Auth::None => "none",
            Auth::Basic(_) => "basic",
            Auth::Bearer(_) => "bearer token",
        };
        format!(
            "remote write to {} every {}s, labels {{{}}}, tls {}, auth {auth}",
            self.endpoint,
            self.interval.as_secs(),
            labels.join(","),
            match (self.endpoint.tls, self.tls_files.cert.is_some()) {
                (false, _) => "off",
                (true, false) => "on",
                (true, true) => "on with a client certificate",
            }
        )
    }

    pub(crate) fn check(c: &mut Checker<'_>) -> Option<RemoteWriteConfig> {
        let interval = Duration::from_secs(c.integer::<u64>(Setting::RemoteWriteIntervalSecs));
        let job = c.non_empty_string(Setting::RemoteWriteJob);
        let instance = match c.explicit(Setting::RemoteWriteInstance) {
            Some(i) if i.trim().is_empty() => {
                c.fail(Setting::RemoteWriteInstance, &i, "must not be blank");
                i
            }
            Some(i) => i,
            None => host_name(),
        };
        let mut labels = vec![("job".to_string(), job), ("instance".to_string(), instance)];
        labels.extend(c.parsed(Setting::RemoteWriteExtraLabels, parse_labels, Vec::new()));
        let tls_files = TlsFiles {
            ca: c.path(Setting::RemoteWriteTlsCaFile, false),
            cert: c.path(Setting::RemoteWriteTlsCertFile, false),
            key: c.path(Setting::RemoteWriteTlsKeyFile, false),
        };
        pair(c, Setting::RemoteWriteTlsCertFile, Setting::RemoteWriteTlsKeyFile);
        let auth = auth(c);
        let url = c.explicit(Setting::RemoteWriteUrl);
        let Some(url) = url else {
            for s in REMOTE_WRITE_SETTINGS {
                if c.explicit(*s).is_some() {
                    c.warn(format!("{} has no effect without REMOTE_WRITE_URL", s.env()));
                }
            }
            return None;
        };
        let endpoint = match Endpoint::parse(&url) {
            Ok(e) => e,
            Err(why) => {
                c.fail(Setting::RemoteWriteUrl, &url, why);
                return None;
            }
        };
        let tls = if endpoint.tls {
            match connector(&tls_files) {
                Ok(t) => Some(t),
                Err((file, why)) => {
                    let (s, p) = match file {
                        TlsFile::Ca => (Setting::RemoteWriteTlsCaFile, &tls_files.ca),
                        TlsFile::Cert => (Setting::RemoteWriteTlsCertFile, &tls_files.cert),
                        TlsFile::Key => (Setting::RemoteWriteTlsKeyFile, &tls_files.key),
                    };
                    let shown = p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                    c.fail(s, &shown, why);
                    None
                }
            }
        } else {
            for s in [Setting::RemoteWriteTlsCaFile, Setting::RemoteWriteTlsCertFile, Setting::RemoteWriteTlsKeyFile] {
                if c.explicit(s).is_some() {
                    c.warn(format!("{} has no effect: REMOTE_WRITE_URL is not https://", s.env()));
                }
            }
            None
        };
        Some(RemoteWriteConfig { endpoint, interval, labels, tls, tls_files, auth })
    }
}

/// The settings that only matter with a URL (for the "has no effect" warning).
const REMOTE_WRITE_SETTINGS: &[Setting] = &[
    Setting::RemoteWriteExtraLabels,
    Setting::RemoteWriteInstance,
    Setting::RemoteWriteTlsCaFile,
    Setting::RemoteWriteTlsCertFile,
    Setting::RemoteWriteTlsKeyFile,
    Setting::RemoteWriteBasicAuthUsername,
    Setting::RemoteWriteBasicAuthPassword,
    Setting::RemoteWriteBearerTokenFile,
];

/// Both of a pair, or neither: the one given names the other.
fn pair(c: &mut Checker<'_>, a: Setting, b: Setting) {
    match (c.explicit(a), c.explicit(b)) {
        (Some(v), None) => c.fail(a, &v, format!("{} must be set as well", b.env())),
        (None, Some(v)) => c.fail(b, &v, format!("{} must be set as well", a.env())),
        _ => {}
    }
}

fn auth(c: &mut Checker<'_>) -> Auth {
    let user = c.explicit(Setting::RemoteWriteBasicAuthUsername);
    let password = c.explicit(Setting::RemoteWriteBasicAuthPassword);
    let token_file = c.explicit(Setting::RemoteWriteBearerTokenFile);
    pair(c, Setting::RemoteWriteBasicAuthUsername, Setting::RemoteWriteBasicAuthPassword);
    if let (Some(t), Some(_)) = (&token_file, &user) {
        c.fail(Setting::RemoteWriteBearerTokenFile, t, "set either the bearer token or basic auth, not both");
        return Auth::None;
    }
    if let Some(path) = token_file {
        return match super::secret_file::read(std::path::Path::new(&path)) {
            Ok(token) if token.bytes().all(|b| (0x21..0x7f).contains(&b)) => Auth::Bearer(token),
            Ok(_) => {
                c.fail(Setting::RemoteWriteBearerTokenFile, &path, "the token must be printable ASCII without spaces");
                Auth::None
            }
            Err(why) => {
                c.fail(Setting::RemoteWriteBearerTokenFile, &path, why);
                Auth::None
            }
        };
    }
    match (user, password) {
        (Some(u), Some(p)) if !p.is_empty() => {
            if u.contains(':') {
                c.fail(Setting::RemoteWriteBasicAuthUsername, &u, "must not contain ':'");
            }
            Auth::Basic(base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        }
        _ => Auth::None,
    }
}

/// `name=value,name=value`: Prometheus label names (not `__`-reserved, not `job` or `instance`, which have
/// their own settings), non-empty values, no name twice.
fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| format!("expected name=value, got {item:?}"))?;
        let (k, v) = (k.trim(), v.trim());
        let valid = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("expected a label name ([a-zA-Z_][a-zA-Z0-9_]*), got {k:?}"));
        }
        if k.starts_with("__") {
            return Err(format!("label names starting with __ are reserved, got {k:?}"));
        }
        if k == "job" || k == "instance" {
            return Err(format!("set {k} with REMOTE_WRITE_{}", k.to_ascii_uppercase()));
        }
        if v.is_empty() {
            return Err(format!("expected a value for label {k:?}"));
        }
        if out.iter().any(|(n, _)| n == k) {
            return Err(format!("label {k:?} is given twice"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// The host name (the default `instance`), or `localhost` when it cannot be read.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(h) if r == 0 && !h.is_empty() => h.to_string(),
        _ => "localhost".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::Auth;
    use crate::config::testing::{errs, ok, raw, temp_file as file};
    use crate::config::Config;
    use std::time::Duration;

    #[test]
    fn off_by_default_and_the_defaults_when_on() {
        assert!(ok(&[]).remote_write.is_none());
        let c = ok(&[("REMOTE_WRITE_URL", "http://127.0.0.1:9090/api/v1/write")]);
        let rw = c.remote_write.unwrap();
        assert_eq!(rw.interval, Duration::from_secs(15));
        assert_eq!(rw.labels[0], ("job".to_string(), "dashstream-quality".to_string()));
        assert_eq!(rw.labels[1].0, "instance");
        assert!(!rw.labels[1].1.is_empty());
        assert!(matches!(rw.auth, Auth::None));
        assert!(rw.tls.is_none());
    }

    #[test]
    fn labels_interval_and_credentials() {
        let token = file("token", "Zq-token-42\n");
        let c = ok(&[
            ("REMOTE_WRITE_URL", "https://mimir.example/api/v1/push"),
            ("REMOTE_WRITE_INTERVAL_SECS", "60"),
            ("REMOTE_WRITE_INSTANCE", "edge-7"),
            ("REMOTE_WRITE_EXTRA_LABELS", "site=north, rack = r1"),
            ("REMOTE_WRITE_BEARER_TOKEN_FILE", &token),
        ]);
        let rw = c.remote_write.unwrap();
        assert_eq!(rw.interval, Duration::from_secs(60));
        let l: Vec<(&str, &str)> = rw.labels.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(l, vec![("job", "dashstream-quality"), ("instance", "edge-7"), ("site", "north"), ("rack", "r1")]);
        assert!(matches!(&rw.auth, Auth::Bearer(t) if t == "Zq-token-42"));
        assert!(rw.tls.is_some(), "https builds a connector from the system bundle");
        assert!(!format!("{rw:?}").contains("Zq-token") && !rw.summary().contains("Zq-token"));
        assert_eq!(
            rw.summary(),
            "remote write to https://mimir.example/api/v1/push every 60s, labels {job=dashstream-quality,instance=edge-7,site=north,rack=r1}, tls on, auth bearer token"
        );
        let pw = file("pw", "Zq-pass\n");
        let c = ok(&[
            ("REMOTE_WRITE_URL", "http://h/w"),
            ("REMOTE_WRITE_BASIC_AUTH_USERNAME", "edge"),
            ("REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE", &pw),
        ]);
        // base64("edge:Zq-pass")
        assert!(matches!(&c.remote_write.unwrap().auth, Auth::Basic(v) if v == "ZWRnZTpacS1wYXNz"));
        let described = Config::describe(&raw(&[("REMOTE_WRITE_BASIC_AUTH_PASSWORD", "Zq-pass")])).join("\n");
        assert!(described.contains("REMOTE_WRITE_BASIC_AUTH_PASSWORD=*** (env)"), "{described}");
        assert!(!described.contains("Zq-pass"));
    }

    #[test]
    fn problems_name_the_variable() {
        for (pairs, setting, allowed) in [
            (vec![("REMOTE_WRITE_URL", "localhost:9090")], "REMOTE_WRITE_URL", "expected an http:// or https:// URL"),
            (
                vec![("REMOTE_WRITE_URL", "http://h/w"), ("REMOTE_WRITE_INTERVAL_SECS", "0")],
                "REMOTE_WRITE_INTERVAL_SECS",
                "expected a whole number from 1 to 3600",
            ),
            (
                vec![("REMOTE_WRITE_URL", "http://h/w"), ("REMOTE_WRITE_INTERVAL_SECS", "3601")],
                "REMOTE_WRITE_INTERVAL_SECS",
                "expected a whole number from 1 to 3600",
            ),
            (
                vec![("REMOTE_WRITE_URL", "http://h/w"), ("REMOTE_WRITE_BEARER_TOKEN_FILE", "/nonexistent/token")],
                "REMOTE_WRITE_BEARER_TOKEN_FILE",
                "cannot read the file: No such file or directory (os error 2)",
            ),
            (
                vec![("REMOTE_WRITE_URL", "http://h/w"), ("REMOTE_WRITE_EXTRA_LABELS", "__x=1")],
                "REMOTE_WRITE_EXTRA_LABELS",
                "label names starting with __ are reserved, got \"__x\"",
            ),
            (
                vec![("REMOTE_WRITE_URL", "http://h/w"), ("REMOTE_WRITE_EXTRA_LABELS", "job=x")],
                "REMOTE_WRITE_EXTRA_LABELS",
                "set job with REMOTE_WRITE_JOB",
            ),
            (
                vec![("REMOTE_WRITE_URL", "http://h/w"), ("REMOTE_WRITE_EXTRA_LABELS", "a=1,a=2")],
                "REMOTE_WRITE_EXTRA_LABELS",
                "label \"a\" is given twice",
            ),
            (
                vec![("REMOTE_WRITE_URL", "http://h/w"), ("REMOTE_WRITE_BASIC_AUTH_USERNAME", "u")],
                "REMOTE_WRITE_BASIC_AUTH_USERNAME",
                "REMOTE_WRITE_BASIC_AUTH_PASSWORD must be set as well",
            ),
            (
                vec![("REMOTE_WRITE_URL", "https://h/w"), ("REMOTE_WRITE_TLS_CA_FILE", "/nonexistent/ca.pem")],
                "REMOTE_WRITE_TLS_CA_FILE",
                "cannot read the file: No such file or directory (os error 2)",
            ),
            (
                vec![("REMOTE_WRITE_URL", "https://h/w"), ("REMOTE_WRITE_TLS_CERT_FILE", "/x.pem")],
                "REMOTE_WRITE_TLS_CERT_FILE",
                "REMOTE_WRITE_TLS_KEY_FILE must be set as well",
            ),
        ] {
            let e = errs(&pairs);
            assert_eq!(e.len(), 1, "{pairs:?}: {e:?}");
            assert_eq!(e[0].setting.env(), setting, "{pairs:?}");
            assert_eq!(e[0].allowed, allowed, "{pairs:?}");
        }
        let not_pem = file("not.pem", "hello\n");
        let e = errs(&[("REMOTE_WRITE_URL", "https://h/w"), ("REMOTE_WRITE_TLS_CA_FILE", &not_pem)]);
        assert_eq!((e[0].setting.env(), e[0].value.as_str()), ("REMOTE_WRITE_TLS_CA_FILE", not_pem.as_str()));
        assert!(e[0].allowed.starts_with("expected CA certificates in PEM format"), "{}", e[0].allowed);
        let token = file("token2", "t\n");
        let e = errs(&[
            ("REMOTE_WRITE_URL", "http://h/w"),
            ("REMOTE_WRITE_BEARER_TOKEN_FILE", &token),
            ("REMOTE_WRITE_BASIC_AUTH_USERNAME", "u"),
            ("REMOTE_WRITE_BASIC_AUTH_PASSWORD", "Zq-secret"),
        ]);
        assert_eq!(e[0].allowed, "set either the bearer token or basic auth, not both");
        assert!(!crate::config::ConfigErrors(e).to_string().contains("Zq-secret"));
    }

    #[test]
    fn settings_without_a_url_are_warned_about() {
        let c = ok(&[("REMOTE_WRITE_EXTRA_LABELS", "site=x"), ("REMOTE_WRITE_INTERVAL_SECS", "30")]);
        assert!(c.remote_write.is_none());
        assert_eq!(c.warnings, vec!["REMOTE_WRITE_EXTRA_LABELS has no effect without REMOTE_WRITE_URL".to_string()]);
        let c = ok(&[("REMOTE_WRITE_URL", "http://h/w"), ("REMOTE_WRITE_TLS_CA_FILE", "/etc/hostname")]);
        assert_eq!(
            c.warnings,
            vec!["REMOTE_WRITE_TLS_CA_FILE has no effect: REMOTE_WRITE_URL is not https://".to_string()]
        );
    }
}
