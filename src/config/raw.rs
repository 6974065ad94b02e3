//! The raw stage: for each setting a command reads, the string in force and where it came from. A flag wins
//! over the environment variable; a variable set to the empty string counts as unset (the original exporter
//! treated `""` as a value and then failed or silently fell back).
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
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Default => "default",
            Origin::Env => "env",
            Origin::Flag => "flag",
        })
    }
}

/// The raw, unvalidated values: a flag if given, else the environment variable, else nothing.
#[derive(Clone, Debug, Default)]
pub struct RawSettings {
    values: Vec<(Setting, String, Origin)>,
}

impl RawSettings {
    /// Reads `settings` (the ones a command uses): a flag through `flag`, else a variable through `env`.
    pub fn collect(
        settings: &[Setting],
        flag: impl Fn(Setting) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mut values = Vec::new();
        for &s in settings {
            if let Some(v) = flag(s) {
                values.push((s, v, Origin::Flag));
            } else if let Some(v) = env(s.env()) {
                if !v.is_empty() || s.empty_is_a_value() {
                    values.push((s, v, Origin::Env));
                }
            }
        }
        RawSettings { values }
    }

    /// Every setting from variables alone (no flags).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Self {
        Self::collect(Setting::ALL, |_| None, env)
    }

    /// The value given by a flag or variable, if any (defaults not applied).
    pub fn explicit(&self, s: Setting) -> Option<(&str, Origin)> {
        self.values.iter().find(|(k, _, _)| *k == s).map(|(_, v, o)| (v.as_str(), *o))
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
        self.values.push((s, value.into(), Origin::Flag));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_variable_and_empty_variables_are_unset() {
        let flag = |s: Setting| (s == Setting::MetricsPort).then(|| "1234".to_string());
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
}
