//! Configuration in two stages. The raw stage ([`raw`]) gathers, for every setting a command reads, the
//! string given by its flag or environment variable, without reading files or judging values. The validating
//! stage turns those strings into types, one file per concern ([`kafka`], [`http`], [`buckets`], `limits`,
//! `log_level`, [`remote_write`]), collecting every problem so they are reported together (`check`); the caller exits with
//! code 2. Secret settings may come from files (`secret_file`), read in the validating stage. [`setting`]
//! lists the settings; [`cli`] defines the command line and which settings each command
//! reads.

pub mod buckets;
mod check;
pub mod choices;
pub mod cli;
mod flags;
pub mod http;
pub mod kafka;
mod limits;
mod log_level;
pub mod raw;
mod redact;
pub mod remote_write;
mod secret_file;
pub mod setting;
pub mod webconfig;

use std::time::Duration;

use log::LevelFilter;

pub use buckets::{parse_buckets, Buckets, NativeConfig};
pub use check::{ConfigError, ConfigErrors};
pub use http::{HttpConfig, Listen, ListenAddr};
pub use kafka::{auto_address_family, KafkaConfig, OffsetReset, Secret, SecurityProtocol};
pub use raw::{Origin, RawSettings};
pub use remote_write::RemoteWriteConfig;
pub use setting::Allowed;
pub use setting::Setting;

use check::Checker;
use limits::Limits;

/// The validated configuration of the daemon (and of `demo` and `check-config`).
#[derive(Clone, Debug)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
    pub max_payload_bytes: usize,
    pub session_timeout: Duration,
    pub session_max_tracked: usize,
    /// `KAFKA_INGEST_NICE`: added to the ingest threads' nice value.
    pub ingest_nice: i32,
    /// `PROMETHEUS_QUALITY_PASS_THRESHOLD`: judge QualityMonitor evaluations by score (unset: by issues).
    pub quality_pass_threshold: Option<f64>,
    pub buckets: Buckets,
    pub log_level: LevelFilter,
    /// Prometheus remote write, when `REMOTE_WRITE_URL` is set.
    pub remote_write: Option<RemoteWriteConfig>,
    /// `RUST_LOG` directives for other targets that were accepted but are not applied.
    pub ignored_log_directives: Vec<String>,
    /// Start-up warnings (settings that are valid but have no effect).
    pub warnings: Vec<String>,
}

impl Config {
    /// Validates every setting; returns all problems at once.
    pub fn from_raw(raw: &RawSettings) -> Result<Config, ConfigErrors> {
        let mut c = Checker::new(raw);
        let kafka = KafkaConfig::check(&mut c);
        let http = HttpConfig::check(&mut c);
        let limits = Limits::check(&mut c);
        let buckets = Buckets::check(&mut c);
        let (log_level, ignored_log_directives) = log_level::check(&mut c);
        let remote_write = RemoteWriteConfig::check(&mut c);
        let warnings = c.finish()?;
        Ok(Config {
            kafka,
            http,
            max_payload_bytes: limits.max_payload_bytes,
            session_timeout: limits.session_timeout,
            session_max_tracked: limits.session_max_tracked,
            ingest_nice: limits.ingest_nice,
            quality_pass_threshold: limits.quality_pass_threshold,
            buckets,
            log_level,
            remote_write,
            ignored_log_directives,
            warnings,
        })
    }

    /// `SETTING=value (origin)` lines for every setting, secrets masked; a secret read from a file shows where
    /// from: `KAFKA_SASL_PASSWORD=*** (file KAFKA_SASL_PASSWORD_FILE=/run/secrets/sasl)`.
    pub fn describe(raw: &RawSettings) -> Vec<String> {
        Setting::ALL
            .iter()
            .map(|&s| match (raw.get(s), raw.file(s)) {
                (None, Some((path, o))) => {
                    let twin = match o {
                        Origin::FlagFile => format!("--{}", s.file_flag().unwrap_or_default()),
                        _ => s.file_env().unwrap_or_default().to_string(),
                    };
                    format!("{}=*** (file {twin}={path})", s.env())
                }
                (Some((v, o)), _) => {
                    let masked = s == Setting::KafkaConsumerProperties && kafka::is_secret_property(&v);
                    let shown = if s.secret() || masked { "***".to_string() } else { v };
                    format!("{}={shown} ({o})", s.env())
                }
                (None, None) => format!("{} unset", s.env()),
            })
            .collect()
    }
}

/// The validated configuration of `produce` and `tail`, Kafka clients that join no group: the connection and
/// security settings with the topic, the payload limit, the log level. Settings it does not read keep their
/// defaults in `kafka`.
#[derive(Clone, Debug)]
pub struct ToolConfig {
    pub kafka: KafkaConfig,
    pub max_payload_bytes: usize,
    pub log_level: LevelFilter,
}

impl ToolConfig {
    /// Validates what the tools read; returns all problems at once.
    pub fn from_raw(raw: &RawSettings) -> Result<ToolConfig, ConfigErrors> {
        let mut c = Checker::new(raw);
        let kafka = KafkaConfig::check(&mut c);
        let max_payload_bytes = limits::max_payload_bytes(&mut c);
        let (log_level, _) = log_level::check(&mut c);
        c.finish()?;
        Ok(ToolConfig { kafka, max_payload_bytes, log_level })
    }
}

/// Shorthands for the tests of every concern: a configuration from variables given as pairs.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Config, ConfigError, RawSettings};

    pub fn raw(pairs: &[(&str, &str)]) -> RawSettings {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RawSettings::from_env(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    pub fn ok(pairs: &[(&str, &str)]) -> Config {
        Config::from_raw(&raw(pairs)).expect("valid config")
    }

    pub fn errs(pairs: &[(&str, &str)]) -> Vec<ConfigError> {
        Config::from_raw(&raw(pairs)).expect_err("invalid config").0
    }

    /// A file holding `content` in this test process's directory (names are unique across the config tests).
    pub fn temp_file(name: &str, content: &str) -> String {
        let dir = std::env::temp_dir().join(format!("dfe-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{errs, ok, raw};
    use super::*;

    #[test]
    fn defaults_match_the_original() {
        let c = ok(&[]);
        assert_eq!(c.kafka.brokers, "localhost:9092");
        assert_eq!(c.kafka.topic, "dashstream-quality");
        assert_eq!(c.kafka.group_id, "prometheus-exporter");
        assert_eq!(c.kafka.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(c.kafka.session_timeout_ms, 30000);
        assert_eq!(c.kafka.security_protocol, SecurityProtocol::Plaintext);
        assert_eq!(c.kafka.broker_address_family, crate::config::kafka::AddressFamily::V4);
        assert_eq!(c.http.port, 9190);
        assert_eq!(c.http.bind_ip.to_string(), "0.0.0.0");
        assert_eq!(c.max_payload_bytes, 10 * 1024 * 1024);
        assert_eq!(c.session_timeout, Duration::from_secs(300));
        assert_eq!(c.session_max_tracked, 100_000);
        assert_eq!(c.ingest_nice, 5);
        assert_eq!(
            c.buckets.latency_ms,
            vec![10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 15000.0, 20000.0, 30000.0]
        );
        assert_eq!(c.buckets.retry, vec![0.0, 1.0, 2.0, 3.0, 5.0, 10.0]);
        assert_eq!(c.buckets.quality_score, vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]);
        assert_eq!(c.buckets.session_turns, vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        assert_eq!(c.buckets.duration_seconds, vec![0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]);
        assert_eq!(c.buckets.endpoint_seconds, vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]);
        assert_eq!(c.log_level, LevelFilter::Info);
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let c = ok(&[("PROMETHEUS_LATENCY_BUCKETS_MS", ""), ("KAFKA_SASL_USERNAME", ""), ("METRICS_PORT", "")]);
        assert_eq!(c.buckets.latency_ms.len(), 12);
        assert_eq!(c.kafka.sasl_username, None);
        assert_eq!(c.http.port, 9190);
    }

    #[test]
    fn all_errors_are_reported_together() {
        let e = errs(&[
            ("METRICS_PORT", "99999"),
            ("METRICS_BIND_IP", "not-an-ip"),
            ("DASHSTREAM_MAX_PAYLOAD_BYTES", "0"),
            ("KAFKA_SECURITY_PROTOCOL", "tls"),
            ("RUST_LOG", "chatty"),
        ]);
        let names: Vec<_> = e.iter().map(|e| e.setting.env()).collect();
        assert_eq!(
            names,
            vec![
                "KAFKA_SECURITY_PROTOCOL",
                "METRICS_BIND_IP",
                "METRICS_PORT",
                "DASHSTREAM_MAX_PAYLOAD_BYTES",
                "RUST_LOG"
            ]
        );
        assert!(e[2].allowed.contains("0 to 65535"));
        assert!(e[3].allowed.contains("1024 to 1073741824"));
    }

    #[test]
    fn tools_read_only_their_settings() {
        let env = |k: &str| match k {
            "METRICS_PORT" => Some("not-a-port".to_string()),
            "DASHSTREAM_MAX_PAYLOAD_BYTES" => Some("2048".to_string()),
            "KAFKA_TOPIC" => Some("t".to_string()),
            _ => None,
        };
        let settings = [Setting::KafkaTopic, Setting::DashstreamMaxPayloadBytes, Setting::RustLog];
        let c = ToolConfig::from_raw(&RawSettings::collect(&settings, |_| None, env)).unwrap();
        assert_eq!((c.kafka.topic.as_str(), c.max_payload_bytes, c.log_level), ("t", 2048, LevelFilter::Info));
        let e = ToolConfig::from_raw(&raw(&[("DASHSTREAM_MAX_PAYLOAD_BYTES", "1"), ("KAFKA_TOPIC", " ")])).unwrap_err();
        let names: Vec<_> = e.0.iter().map(|e| e.setting.env()).collect();
        assert_eq!(names, vec!["KAFKA_TOPIC", "DASHSTREAM_MAX_PAYLOAD_BYTES"]);
    }
}
