//! The validating stage's common parts: [`Checker`] reads raw values and records every problem instead of
//! stopping at the first, and [`ConfigErrors`] reports them together, each naming the variable (or the flag
//! it came from), the value (secrets masked) and what is allowed; the caller exits with code 2.

use std::fmt;
use std::path::PathBuf;

use super::raw::{Origin, RawSettings};
use super::setting::Setting;

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
        let shown = if s.secret() { "<redacted>".to_string() } else { format!("{:?}", self.value) };
        let from = match self.origin {
            Origin::Flag => format!("--{}", s.flag()),
            _ => s.env().to_string(),
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
    errors: Vec<ConfigError>,
    /// Settings that are valid but have no effect.
    warnings: Vec<String>,
}

impl<'a> Checker<'a> {
    pub fn new(raw: &'a RawSettings) -> Self {
        Checker { raw, errors: Vec::new(), warnings: Vec::new() }
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
        self.raw.get(s).unwrap_or((String::new(), Origin::Default))
    }

    /// The value given by a flag or variable, if any.
    pub fn explicit(&self, s: Setting) -> Option<String> {
        self.raw.explicit(s).map(|(v, _)| v.to_string())
    }

    /// Records that `value` of `s` is not allowed.
    pub fn fail(&mut self, s: Setting, value: &str, allowed: impl Into<String>) {
        let origin = self.value(s).1;
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

    pub fn integer<T>(&mut self, s: Setting, min: T, max: T) -> T
    where
        T: std::str::FromStr + PartialOrd + Copy + fmt::Display,
    {
        let (v, _) = self.value(s);
        match v.trim().parse::<T>() {
            Ok(n) if n >= min && n <= max => n,
            _ => {
                self.fail(s, &v, format!("expected a whole number from {min} to {max}"));
                min
            }
        }
    }

    /// One of `allowed`, compared without regard to case; `None` when unset or not allowed.
    pub fn choice(&mut self, s: Setting, allowed: &[&'static str]) -> Option<&'static str> {
        let (v, _) = self.raw.get(s)?;
        let lower = v.trim().to_ascii_lowercase();
        match allowed.iter().find(|a| a.to_ascii_lowercase() == lower) {
            Some(a) => Some(a),
            None => {
                self.fail(s, &v, format!("expected one of: {}", allowed.join(", ")));
                None
            }
        }
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
