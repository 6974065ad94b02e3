//! The validating stage's common parts: [`Checker`] reads raw values and records every problem instead of
//! stopping at the first, and [`ConfigErrors`] reports them together, each naming the variable (or the flag
//! it came from), the value (secrets masked) and what is allowed; the caller exits with code 2.
//!
//! The checker also reads the files named by the file twins of secret settings, once, when it is made: from
//! then on a value read from a file is the setting's value, and a problem with it names the `_FILE` variable
//! (or `--…-file` flag) and the path, never the content.

use std::fmt;
use std::path::PathBuf;

use super::raw::{Origin, RawSettings};
use super::secret_file;
use super::setting::{Allowed, Setting};
use crate::table::Label;

/// One invalid value.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub setting: Setting,
    pub value: String,
    pub origin: Origin,
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.setting;
        // A value from a file is recorded as its path, which is not secret.
        let shown =
            if s.secret() && !self.origin.is_file() { "<redacted>".to_string() } else { format!("{:?}", self.value) };
        let from = match self.origin {
            Origin::Flag => format!("--{}", s.flag()),
            Origin::FlagFile => format!("--{}", s.file_flag().unwrap_or_default()),
            Origin::EnvFile => s.file_env().unwrap_or_default().to_string(),
            Origin::Default | Origin::Env => s.env().to_string(),
        };
        write!(f, "{} ({from}) = {shown}: {}", s.env(), self.allowed)
    }
}

/// All problems found, reported together.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem{}):", self.0.len(), if self.0.len() == 1 { "" } else { "s" })?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads values for the per-concern validators, collecting problems and warnings.
pub(crate) struct Checker<'a> {
    raw: &'a RawSettings,
    /// Values read from the files of secret settings, with their origin.
    from_files: Vec<(Setting, String, Origin)>,
    errors: Vec<ConfigError>,
    /// Settings that are valid but have no effect.
    warnings: Vec<String>,
}

impl<'a> Checker<'a> {
    /// A checker of `raw`; reads every secret file it names.
    pub fn new(raw: &'a RawSettings) -> Self {
        let mut c = Checker { raw, from_files: Vec::new(), errors: Vec::new(), warnings: Vec::new() };
        for &s in Setting::ALL {
            if let Some((path, origin)) = raw.file(s) {
                c.read_secret_file(s, path, origin);
            }
        }
        c
    }

    /// Reads the file given for `s`; both the value and the file given is a problem naming both.
    fn read_secret_file(&mut self, s: Setting, path: &str, origin: Origin) {
        let problem = if self.raw.explicit(s).is_some() {
            let (value, file) = match origin {
                Origin::FlagFile => (format!("--{}", s.flag()), format!("--{}", s.file_flag().unwrap_or_default())),
                _ => (s.env().to_string(), s.file_env().unwrap_or_default().to_string()),
            };
            format!("{value} and {file} are both set; set only one")
        } else {
            match secret_file::read(std::path::Path::new(path)) {
                Ok(v) => return self.from_files.push((s, v, origin)),
                Err(why) => why,
            }
        };
        self.errors.push(ConfigError { setting: s, value: path.to_string(), origin, allowed: problem });
        // Still given (so no "must be set as well" follows), with no usable value.
        self.from_files.push((s, String::new(), origin));
    }
    /// The warnings, or every problem found.
    pub fn finish(self) -> Result<Vec<String>, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(self.warnings)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// The value in force (the default when none is given) and its origin; blank when there is neither.
    pub fn value(&self, s: Setting) -> (String, Origin) {
        self.file_value(s).or_else(|| self.raw.get(s)).unwrap_or((String::new(), Origin::Default))
    }

    /// The value given by a flag, a variable or a file, if any.
    pub fn explicit(&self, s: Setting) -> Option<String> {
        self.file_value(s).map(|(v, _)| v).or_else(|| self.raw.explicit(s).map(|(v, _)| v.to_string()))
    }

    fn file_value(&self, s: Setting) -> Option<(String, Origin)> {
        self.from_files.iter().find(|(k, _, _)| *k == s).map(|(_, v, o)| (v.clone(), *o))
    }

    /// Records that `value` of `s` is not allowed. A value read from a file is recorded as the file's path.
    pub fn fail(&mut self, s: Setting, value: &str, allowed: impl Into<String>) {
        let origin = self.value(s).1;
        let value = match self.raw.file(s) {
            Some((path, _)) if origin.is_file() => path,
            _ => value,
        };
        self.errors.push(ConfigError { setting: s, value: value.to_string(), origin, allowed: allowed.into() });
    }

    pub fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    pub fn non_empty_string(&mut self, s: Setting) -> String {
        let (v, _) = self.value(s);
        if v.trim().is_empty() {
            self.fail(s, &v, "must not be blank");
        }
        v
    }

    /// A whole number in the range the settings table gives `s` ([`Allowed::Integer`]); the problem (and the
    /// range's lower end) when it is not one.
    pub fn integer<T>(&mut self, s: Setting) -> T
    where
        T: std::str::FromStr + TryFrom<i64> + PartialOrd + Copy + fmt::Display,
    {
        let Allowed::Integer(min, max) = s.allowed() else {
            panic!("{} is not a whole number in a range in the settings table", s.env())
        };
        let bound =
            |b: i64| T::try_from(b).unwrap_or_else(|_| panic!("{}'s range {min}..={max} fits its type", s.env()));
        let (min, max) = (bound(min), bound(max));
        let (v, _) = self.value(s);
        match v.trim().parse::<T>() {
            Ok(n) if n >= min && n <= max => n,
            _ => {
                self.fail(s, &v, format!("expected a whole number from {min} to {max}"));
                min
            }
        }
    }

    /// 0 (off), or a whole number in the range the settings table gives `s` ([`Allowed::ZeroOrInteger`]); the
    /// problem (and 0) when it is neither.
    pub fn zero_or_integer<T>(&mut self, s: Setting) -> T
    where
        T: std::str::FromStr + TryFrom<i64> + PartialOrd + Copy + fmt::Display + Default,
    {
        let Allowed::ZeroOrInteger(min, max) = s.allowed() else {
            panic!("{} is not 0-or-a-range in the settings table", s.env())
        };
        let bound =
            |b: i64| T::try_from(b).unwrap_or_else(|_| panic!("{}'s range {min}..={max} fits its type", s.env()));
        let (min, max) = (bound(min), bound(max));
        let (v, _) = self.value(s);
        match v.trim().parse::<T>() {
            Ok(n) if n == T::default() || (n >= min && n <= max) => n,
            _ => {
                self.fail(s, &v, format!("expected 0 (off) or a whole number in {min}..={max}"));
                T::default()
            }
        }
    }

    /// The word in force for `s` (given, or the default) as the enum `E` whose labels are the setting's
    /// [`Allowed::Choice`], compared without regard to case; `None` when unset without a default. A word not
    /// allowed is a problem naming the words that are, and stands for the default meanwhile.
    pub fn choice<E: Label>(&mut self, s: Setting) -> Option<E> {
        let parse = |v: &str| E::all().iter().copied().find(|e| e.label().eq_ignore_ascii_case(v.trim()));
        let (v, _) = self.raw.get(s)?;
        if let Some(e) = parse(&v) {
            return Some(e);
        }
        let words: Vec<&str> = E::all().iter().map(|e| e.label()).collect();
        self.fail(s, &v, format!("expected one of: {}", words.join(", ")));
        s.default().and_then(parse)
    }

    /// A parsed value, or the problem `parse` names (and `fallback`).
    pub fn parsed<T>(&mut self, s: Setting, parse: impl FnOnce(&str) -> Result<T, String>, fallback: T) -> T {
        let (v, _) = self.value(s);
        match parse(&v) {
            Ok(x) => x,
            Err(why) => {
                self.fail(s, &v, why);
                fallback
            }
        }
    }

    /// A path, when given; with `check`, it must be an existing file.
    pub fn path(&mut self, s: Setting, check: bool) -> Option<PathBuf> {
        let v = self.explicit(s)?;
        let p = PathBuf::from(&v);
        if check && !p.is_file() {
            self.fail(s, &v, "expected a readable file (it does not exist or is not a file)");
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{errs, ok, temp_file as secret};
    use crate::config::{Config, ConfigErrors, Origin, Setting};

    #[test]
    fn a_secret_file_stands_for_the_variable_without_its_trailing_newline() {
        let sasl = secret("sasl", "Zq-sasl-from-file-91\n");
        let key = secret("key", "Zq-key-from-file-37\r\n");
        let c = ok(&[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("KAFKA_SASL_USERNAME", "alice"),
            ("KAFKA_SASL_PASSWORD_FILE", &sasl),
            ("KAFKA_SSL_KEY_PASSWORD_FILE", &key),
        ]);
        assert_eq!(c.kafka.sasl_password.as_ref().map(|s| s.expose()), Some("Zq-sasl-from-file-91"));
        assert_eq!(c.kafka.ssl_key_password.as_ref().map(|s| s.expose()), Some("Zq-key-from-file-37"));
        let p = c.kafka.client_properties();
        assert!(p.contains(&("sasl.password".to_string(), "Zq-sasl-from-file-91".to_string())));
        let described = Config::describe(&crate::config::testing::raw(&[("KAFKA_SASL_PASSWORD_FILE", &sasl)]));
        assert!(described.contains(&format!("KAFKA_SASL_PASSWORD=*** (file KAFKA_SASL_PASSWORD_FILE={sasl})")));
        assert!(!described.join("\n").contains("Zq-sasl"));
    }

    #[test]
    fn empty_and_unreadable_files_name_the_variable_and_the_path() {
        let empty = secret("empty", "\n");
        let e = errs(&[
            ("KAFKA_SASL_USERNAME", "alice"),
            ("KAFKA_SASL_PASSWORD_FILE", &empty),
            ("KAFKA_SSL_KEY_PASSWORD_FILE", "/nonexistent/key"),
        ]);
        assert_eq!(e.len(), 2, "no \"must be set as well\" after a file that could not be used: {e:?}");
        assert_eq!((e[0].setting, e[0].origin), (Setting::KafkaSaslPassword, Origin::EnvFile));
        assert_eq!(
            e[0].to_string(),
            format!("KAFKA_SASL_PASSWORD (KAFKA_SASL_PASSWORD_FILE) = {empty:?}: the file is empty")
        );
        assert_eq!(
            e[1].to_string(),
            "KAFKA_SSL_KEY_PASSWORD (KAFKA_SSL_KEY_PASSWORD_FILE) = \"/nonexistent/key\": cannot read the file: No such file or directory (os error 2)"
        );
        // A directory cannot be read as a file (root reads any mode, so no chmod 000 here).
        let dir = std::env::temp_dir();
        let e = errs(&[("KAFKA_SASL_PASSWORD_FILE", dir.to_str().unwrap())]);
        assert_eq!(e[0].allowed, "cannot read the file: Is a directory (os error 21)");
    }

    #[test]
    fn the_variable_and_its_file_twin_together_are_refused_naming_both() {
        let f = secret("both", "Zq-both-from-file\n");
        let e = errs(&[
            ("KAFKA_SASL_USERNAME", "alice"),
            ("KAFKA_SASL_PASSWORD", "Zq-both-from-env"),
            ("KAFKA_SASL_PASSWORD_FILE", &f),
        ]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            e[0].to_string(),
            format!(
                "KAFKA_SASL_PASSWORD (KAFKA_SASL_PASSWORD_FILE) = {f:?}: KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set; set only one"
            )
        );
        let text = ConfigErrors(e).to_string();
        assert!(!text.contains("Zq-both"), "{text}");
    }

    #[test]
    fn a_later_problem_with_a_value_from_a_file_shows_the_path_not_the_content() {
        let f = secret("lonely", "Zq-lonely-password\n");
        let e = errs(&[("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"), ("KAFKA_SASL_PASSWORD_FILE", &f)]);
        assert_eq!(
            e[0].to_string(),
            format!("KAFKA_SASL_PASSWORD (KAFKA_SASL_PASSWORD_FILE) = {f:?}: KAFKA_SASL_USERNAME must be set as well")
        );
        assert!(!ConfigErrors(e).to_string().contains("Zq-lonely"));
    }
}
