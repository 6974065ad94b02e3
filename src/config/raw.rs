//! The raw stage: for each setting a command reads, the string in force and where it came from. A flag wins
//! over the environment variable; a variable set to the empty string counts as unset (the original exporter
//! treated `""` as a value and then failed or silently fell back).
//!
//! A secret setting may instead be given by its file twin (`KAFKA_SASL_PASSWORD_FILE`,
//! `--kafka-sasl-password-file`): only the path is kept here. Flags still win over variables as a pair: when
//! either flag of a secret is given, neither of its variables is read.
//!
//! Nothing here reads files or checks values: the flags and variables arrive through closures, so tests build
//! a [`RawSettings`] from any map. The validating stage (the other files of `config`) turns it into types.

use std::fmt;

use super::setting::Setting;

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    Env,
    Flag,
    /// Read from the file named by the `_FILE` variable.
    EnvFile,
    /// Read from the file named by the `--…-file` flag.
    FlagFile,
}

impl Origin {
    /// Whether the value came from a file (its raw value is the path).
    pub fn is_file(self) -> bool {
        matches!(self, Origin::EnvFile | Origin::FlagFile)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Default => "default",
            Origin::Env => "env",
            Origin::Flag => "flag",
            Origin::EnvFile => "env file",
            Origin::FlagFile => "flag file",
        })
    }
}

/// The raw, unvalidated values: a flag if given, else the environment variable, else nothing.
#[derive(Clone, Debug, Default)]
pub struct RawSettings {
    values: Vec<(Setting, String, Origin)>,
    /// Paths given by the file twins of secret settings (origin [`Origin::EnvFile`] or [`Origin::FlagFile`]).
    files: Vec<(Setting, String, Origin)>,
}

impl RawSettings {
    /// Reads `settings` (the ones a command uses): a flag through `flag`, else a variable through `env`. Both
    /// closures are asked by variable name: a setting's (`KAFKA_SASL_PASSWORD`) or its file twin's
    /// (`KAFKA_SASL_PASSWORD_FILE`, which `flag` answers for `--kafka-sasl-password-file`).
    pub fn collect(
        settings: &[Setting],
        flag: impl Fn(&str) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mut raw = RawSettings::default();
        for &s in settings {
            let flag_value = flag(s.env());
            let flag_file = s.file_env().and_then(&flag);
            if flag_value.is_some() || flag_file.is_some() {
                raw.values.extend(flag_value.map(|v| (s, v, Origin::Flag)));
                raw.files.extend(flag_file.map(|p| (s, p, Origin::FlagFile)));
                continue;
            }
            if let Some(v) = env(s.env()) {
                if !v.is_empty() || s.empty_is_a_value() {
                    raw.values.push((s, v, Origin::Env));
                }
            }
            if let Some(p) = s.file_env().and_then(&env).filter(|p| !p.is_empty()) {
                raw.files.push((s, p, Origin::EnvFile));
            }
        }
        raw
    }

    /// Every setting from variables alone (no flags).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Self {
        Self::collect(Setting::ALL, |_| None, env)
    }

    /// The value given by a flag or variable, if any (defaults not applied).
    pub fn explicit(&self, s: Setting) -> Option<(&str, Origin)> {
        self.values.iter().find(|(k, _, _)| *k == s).map(|(_, v, o)| (v.as_str(), *o))
    }

    /// The path given by the setting's file twin, if any, and whether a variable or a flag gave it.
    pub fn file(&self, s: Setting) -> Option<(&str, Origin)> {
        self.files.iter().find(|(k, _, _)| *k == s).map(|(_, p, o)| (p.as_str(), *o))
    }

    /// The value in force (explicit or default) and its origin.
    pub fn get(&self, s: Setting) -> Option<(String, Origin)> {
        if let Some((v, o)) = self.explicit(s) {
            return Some((v.to_string(), o));
        }
        s.default().map(|d| (d.to_string(), Origin::Default))
    }

    /// Sets a value as if it came from a flag (used by `demo` to point the pipeline at its own broker).
    pub fn set(&mut self, s: Setting, value: impl Into<String>) {
        self.values.retain(|(k, _, _)| *k != s);
        self.files.retain(|(k, _, _)| *k != s);
        self.values.push((s, value.into(), Origin::Flag));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_variable_and_empty_variables_are_unset() {
        let flag = |k: &str| (k == "METRICS_PORT").then(|| "1234".to_string());
        let env = |k: &str| match k {
            "METRICS_PORT" => Some("9999".to_string()),
            "KAFKA_TOPIC" => Some(String::new()),
            "KAFKA_SSL_ENDPOINT_ALGORITHM" => Some(String::new()),
            _ => None,
        };
        let raw = RawSettings::collect(Setting::ALL, flag, env);
        assert_eq!(raw.get(Setting::MetricsPort), Some(("1234".to_string(), Origin::Flag)));
        assert_eq!(raw.get(Setting::KafkaTopic), Some(("dashstream-quality".to_string(), Origin::Default)));
        assert_eq!(raw.explicit(Setting::KafkaSslEndpointAlgorithm), Some(("", Origin::Env)));
        assert_eq!(raw.get(Setting::KafkaSaslUsername), None);
    }

    #[test]
    fn only_the_listed_settings_are_read() {
        let raw = RawSettings::collect(&[Setting::KafkaTopic], |_| None, |_| Some("x".to_string()));
        assert_eq!(raw.explicit(Setting::KafkaTopic), Some(("x", Origin::Env)));
        assert_eq!(raw.explicit(Setting::MetricsPort), None);
    }

    #[test]
    fn file_twins_keep_only_the_path_and_flags_win_as_a_pair() {
        let env = |k: &str| match k {
            "KAFKA_SASL_PASSWORD_FILE" => Some("/run/secrets/sasl".to_string()),
            "KAFKA_SSL_KEY_PASSWORD" => Some("from-env".to_string()),
            "KAFKA_SSL_KEY_PASSWORD_FILE" => Some("/run/secrets/key".to_string()),
            "KAFKA_SASL_USERNAME_FILE" => Some("/not/a/twin".to_string()),
            _ => None,
        };
        let raw = RawSettings::collect(Setting::ALL, |_| None, env);
        assert_eq!(raw.explicit(Setting::KafkaSaslPassword), None);
        assert_eq!(raw.file(Setting::KafkaSaslPassword), Some(("/run/secrets/sasl", Origin::EnvFile)));
        assert_eq!(raw.explicit(Setting::KafkaSslKeyPassword), Some(("from-env", Origin::Env)));
        assert_eq!(raw.file(Setting::KafkaSslKeyPassword), Some(("/run/secrets/key", Origin::EnvFile)));
        assert_eq!(raw.file(Setting::KafkaSaslUsername), None, "only secrets have file twins");

        let flag = |k: &str| (k == "KAFKA_SSL_KEY_PASSWORD_FILE").then(|| "/flag/key".to_string());
        let raw = RawSettings::collect(Setting::ALL, flag, env);
        assert_eq!(raw.file(Setting::KafkaSslKeyPassword), Some(("/flag/key", Origin::FlagFile)));
        assert_eq!(raw.explicit(Setting::KafkaSslKeyPassword), None, "a flag of the pair hides both variables");
        let blank = RawSettings::collect(Setting::ALL, |_| None, |_| Some(String::new()));
        assert_eq!(blank.file(Setting::KafkaSaslPassword), None, "an empty _FILE variable is unset");
    }
}
