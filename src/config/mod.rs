//! Configuration: raw strings from flags and environment (`RawSettings`) → one validated [`Config`].
//!
//! Every setting has an environment variable (the original exporter's names) and a command-line flag; a flag
//! wins over the variable. A variable set to the empty string counts as unset (the original treated `""` as a
//! value and then failed or silently fell back). All problems are collected and reported together, each naming
//! the variable, the value it had and what is allowed; the caller exits with code 2.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgMatches, Command};
use log::LevelFilter;

/// One configurable value: its variable, its flag and its default.
pub struct Setting {
    pub env: &'static str,
    pub flag: &'static str,
    pub default: Option<&'static str>,
    pub help: &'static str,
    /// Secret values are never printed (errors, `check-config`, start-up line).
    pub secret: bool,
}

macro_rules! settings {
    ($( $env:literal, $flag:literal, $default:expr, $secret:literal, $help:literal; )*) => {
        /// Every setting the daemon reads, in the order they are documented.
        pub const SETTINGS: &[Setting] = &[
            $( Setting { env: $env, flag: $flag, default: $default, help: $help, secret: $secret }, )*
        ];
    };
}

settings! {
    "KAFKA_BROKERS", "kafka-brokers", Some("localhost:9092"), false, "Comma-separated bootstrap brokers";
    "KAFKA_TOPIC", "kafka-topic", Some("dashstream-quality"), false, "Topic holding the quality events";
    "KAFKA_GROUP_ID", "kafka-group-id", Some("prometheus-exporter"), false, "Consumer group id";
    "KAFKA_AUTO_OFFSET_RESET", "kafka-auto-offset-reset", Some("earliest"), false, "Where a new group starts: earliest or latest";
    "KAFKA_SESSION_TIMEOUT_MS", "kafka-session-timeout-ms", Some("30000"), false, "Consumer group session timeout in ms (3000..=3600000)";
    "KAFKA_CONSUMER_PROPERTIES", "kafka-consumer-properties", None, false, "Extra librdkafka consumer properties, comma-separated key=value (applied last)";
    "KAFKA_SECURITY_PROTOCOL", "kafka-security-protocol", Some("plaintext"), false, "plaintext, ssl, sasl_plaintext or sasl_ssl";
    "KAFKA_SASL_MECHANISM", "kafka-sasl-mechanism", None, false, "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, GSSAPI or OAUTHBEARER (PLAIN when a sasl_* protocol is used and this is unset)";
    "KAFKA_SASL_USERNAME", "kafka-sasl-username", None, false, "SASL username (set together with the password)";
    "KAFKA_SASL_PASSWORD", "kafka-sasl-password", None, true, "SASL password (prefer the variable: flags show in `ps`)";
    "KAFKA_SSL_CA_LOCATION", "kafka-ssl-ca-location", None, false, "CA bundle (PEM) used to verify the brokers";
    "KAFKA_SSL_CERTIFICATE_LOCATION", "kafka-ssl-certificate-location", None, false, "Client certificate (PEM) for mTLS (set together with the key)";
    "KAFKA_SSL_KEY_LOCATION", "kafka-ssl-key-location", None, false, "Client private key (PEM) for mTLS (set together with the certificate)";
    "KAFKA_SSL_KEY_PASSWORD", "kafka-ssl-key-password", None, true, "Password of the client private key";
    "KAFKA_SSL_ENDPOINT_ALGORITHM", "kafka-ssl-endpoint-algorithm", Some("https"), false, "Broker host name verification: https or none";
    "KAFKA_BROKER_ADDRESS_FAMILY", "kafka-broker-address-family", None, false, "any, v4 or v6 (default: v4 when a broker is localhost/127.x, v6 when it is ::1, else any)";
    "METRICS_BIND_IP", "metrics-bind-ip", Some("0.0.0.0"), false, "Address the HTTP server binds (IPv4 or IPv6 literal)";
    "METRICS_PORT", "metrics-port", Some("9190"), false, "Port of the HTTP server (0 picks a free port)";
    "METRICS_HTTP_THREADS", "metrics-http-threads", Some("2"), false, "Threads answering HTTP requests (1..=16)";
    "METRICS_MAX_CONNECTIONS", "metrics-max-connections", Some("64"), false, "Most HTTP connections open at once; more get 503 (1..=10000)";
    "METRICS_HTTP_TIMEOUT_SECS", "metrics-http-timeout-secs", Some("10"), false, "An HTTP connection idle this many seconds is closed (1..=300)";
    "METRICS_HTTP_HEADER_TIMEOUT_SECS", "metrics-http-header-timeout-secs", Some("5"), false, "A request header not complete this many seconds after its first byte (or after the connection opened) closes the connection (1..=300)";
    "WEB_CONFIG_FILE", "web.config.file", None, false, "TLS and basic auth for the HTTP endpoints: a Prometheus exporter-toolkit web config file (YAML: tls_server_config, basic_auth_users); re-read when it or its certificate files change";
    "METRICS_SHUTDOWN_LINGER_SECS", "metrics-shutdown-linger-secs", Some("0"), false, "After a graceful stop has drained and committed, keep serving /metrics this many seconds (/-/ready is 503) so a last scrape sees every applied event (0..=60)";
    "DASHSTREAM_MAX_PAYLOAD_BYTES", "dashstream-max-payload-bytes", Some("10485760"), false, "Largest record (and largest decompressed record) accepted, in bytes (1024..=1073741824)";
    "PROMETHEUS_SESSION_TIMEOUT_SECS", "prometheus-session-timeout-secs", Some("300"), false, "Idle seconds after which a session is closed and its turns observed (1..=604800)";
    "KAFKA_INGEST_NICE", "kafka-ingest-nice", Some("5"), false, "How much lower the ingest threads (librdkafka's, the poll thread, the worker) are scheduled than the HTTP threads: their nice value is raised by this much, so scrapes are answered promptly while a backlog drains on busy cores (0..=19; 0 keeps them equal)";
    "PROMETHEUS_SESSION_MAX_TRACKED", "prometheus-session-max-tracked", Some("100000"), false, "Most sessions tracked at once; past it the least recently seen is closed early (1..=10000000)";
    "PROMETHEUS_LATENCY_BUCKETS_MS", "prometheus-latency-buckets-ms", Some("10,50,100,200,500,1000,2000,5000,10000,15000,20000,30000"), false, "Buckets of the latency histograms (ms)";
    "PROMETHEUS_RETRY_BUCKETS", "prometheus-retry-buckets", Some("0,1,2,3,5,10"), false, "Buckets of dashstream_quality_retry_count";
    "PROMETHEUS_QUALITY_SCORE_BUCKETS", "prometheus-quality-score-buckets", Some("0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95,1.0"), false, "Buckets of dashstream_quality_score_by_model";
    "PROMETHEUS_SESSION_TURN_BUCKETS", "prometheus-session-turn-buckets", Some("1,2,5,10,20,50"), false, "Buckets of dashstream_turns_by_session";
    "PROMETHEUS_DURATION_BUCKETS_SECONDS", "prometheus-duration-buckets-seconds", Some("0.01,0.05,0.1,0.2,0.5,1,2,5,10"), false, "Buckets of dashstream_librarian_request_duration_seconds";
    "PROMETHEUS_METRICS_ENDPOINT_BUCKETS", "prometheus-metrics-endpoint-buckets", Some("0.001,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1"), false, "Buckets of dashstream_exporter_metrics_endpoint_duration_seconds";
    "RUST_LOG", "log-level", Some("info"), false, "Log level: error, warn, info, debug, trace or off";
}

/// Adds one flag per setting to a command; the flags are global, so subcommands accept them too.
pub fn add_setting_flags(mut cmd: Command) -> Command {
    for s in SETTINGS {
        let mut help = format!("{} [env: {}]", s.help, s.env);
        if let Some(d) = s.default {
            help.push_str(&format!(" [default: {d}]"));
        }
        cmd = cmd.arg(
            Arg::new(s.env).long(s.flag).value_name("VALUE").help(help).help_heading("Configuration").global(true),
        );
    }
    cmd
}

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
    values: Vec<(&'static str, String, Origin)>,
}

impl RawSettings {
    /// Reads flags from `matches` (built with [`add_setting_flags`]) and variables through `env`.
    pub fn collect(matches: Option<&ArgMatches>, env: impl Fn(&str) -> Option<String>) -> Self {
        let mut values = Vec::new();
        for s in SETTINGS {
            let flag = matches.and_then(|m| m.get_one::<String>(s.env).cloned());
            if let Some(v) = flag {
                values.push((s.env, v, Origin::Flag));
            } else if let Some(v) = env(s.env) {
                // Empty means unset, except for the endpoint algorithm where the original allowed "" (= none).
                if !v.is_empty() || s.env == "KAFKA_SSL_ENDPOINT_ALGORITHM" {
                    values.push((s.env, v, Origin::Env));
                }
            }
        }
        RawSettings { values }
    }

    /// Reads the process environment and the given flags.
    pub fn from_process(matches: Option<&ArgMatches>) -> Self {
        Self::collect(matches, |k| std::env::var(k).ok())
    }

    fn raw(&self, env: &str) -> Option<(&str, Origin)> {
        self.values.iter().find(|(k, _, _)| *k == env).map(|(_, v, o)| (v.as_str(), *o))
    }

    /// The value in force (explicit or default) and its origin.
    pub fn get(&self, env: &str) -> Option<(String, Origin)> {
        if let Some((v, o)) = self.raw(env) {
            return Some((v.to_string(), o));
        }
        setting(env).default.map(|d| (d.to_string(), Origin::Default))
    }

    /// Sets a value as if it came from a flag (used by `demo` to point the pipeline at its own broker).
    pub fn set(&mut self, env: &'static str, value: impl Into<String>) {
        self.values.retain(|(k, _, _)| *k != env);
        self.values.push((env, value.into(), Origin::Flag));
    }
}

fn setting(env: &str) -> &'static Setting {
    SETTINGS.iter().find(|s| s.env == env).unwrap_or_else(|| panic!("unknown setting {env}"))
}

/// One invalid value.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub env: &'static str,
    pub value: String,
    pub origin: Origin,
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = setting(self.env);
        let shown = if s.secret { "<redacted>".to_string() } else { format!("{:?}", self.value) };
        let from = match self.origin {
            Origin::Flag => format!("--{}", s.flag),
            _ => self.env.to_string(),
        };
        write!(f, "{} ({from}) = {shown}: {}", self.env, self.allowed)
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }
    pub fn uses_ssl(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// Histogram bucket lists.
#[derive(Clone, Debug, PartialEq)]
pub struct Buckets {
    pub latency_ms: Vec<f64>,
    pub retry: Vec<f64>,
    pub quality_score: Vec<f64>,
    pub session_turns: Vec<f64>,
    pub duration_seconds: Vec<f64>,
    pub endpoint_seconds: Vec<f64>,
}

/// Everything the Kafka side needs.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    pub auto_offset_reset: OffsetReset,
    pub session_timeout_ms: u32,
    pub security_protocol: SecurityProtocol,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    pub ssl_ca_location: Option<PathBuf>,
    pub ssl_certificate_location: Option<PathBuf>,
    pub ssl_key_location: Option<PathBuf>,
    pub ssl_key_password: Option<String>,
    pub ssl_endpoint_algorithm: String,
    pub broker_address_family: String,
    pub extra_properties: Vec<(String, String)>,
}

/// librdkafka property names whose values must never be printed.
fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("sasl.oauthbearer.config")
}

impl KafkaConfig {
    /// librdkafka properties shared by every client this program makes (consumer, producer, `tail`).
    pub fn client_properties(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), self.brokers.clone()),
            ("broker.address.family".into(), self.broker_address_family.clone()),
            ("security.protocol".into(), self.security_protocol.as_str().into()),
        ];
        if self.security_protocol.uses_sasl() {
            if let Some(m) = &self.sasl_mechanism {
                p.push(("sasl.mechanism".into(), m.clone()));
            }
            if let Some(u) = &self.sasl_username {
                p.push(("sasl.username".into(), u.clone()));
            }
            if let Some(pw) = &self.sasl_password {
                p.push(("sasl.password".into(), pw.clone()));
            }
        }
        if self.security_protocol.uses_ssl() {
            // Without a CA location, `probe` makes librdkafka look in the usual system places (OpenSSL built
            // from source does not know the distribution's CA path).
            let ca = self.ssl_ca_location.as_ref().map_or_else(|| "probe".to_string(), |v| v.display().to_string());
            p.push(("ssl.ca.location".into(), ca));
            if let Some(v) = &self.ssl_certificate_location {
                p.push(("ssl.certificate.location".into(), v.display().to_string()));
            }
            if let Some(v) = &self.ssl_key_location {
                p.push(("ssl.key.location".into(), v.display().to_string()));
            }
            if let Some(v) = &self.ssl_key_password {
                p.push(("ssl.key.password".into(), v.clone()));
            }
            p.push(("ssl.endpoint.identification.algorithm".into(), self.ssl_endpoint_algorithm.clone()));
        }
        p
    }

    /// Properties of the exporter's group consumer: the client ones plus consumer behaviour, then the
    /// operator's extra properties (so they can override anything).
    pub fn consumer_properties(&self) -> Vec<(String, String)> {
        let mut p = self.client_properties();
        let reset = match self.auto_offset_reset {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        };
        p.extend(
            [
                ("group.id", self.group_id.as_str()),
                ("client.id", "dashflow-prometheus-exporter"),
                ("enable.auto.commit", "true"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", reset),
                ("enable.partition.eof", "false"),
                // Lag and broker state come from librdkafka's statistics, served inside poll(): no blocking
                // watermark queries on the poll thread.
                ("statistics.interval.ms", "1000"),
                // Bounded pre-fetch (benches/RESULTS.md): a small queue refilled at once instead of librdkafka
                // 2.12's 1 s back-off once it is full; peak RSS 27 MiB instead of 55 and 2-4x the drain rate.
                ("queued.max.messages.kbytes", "2048"),
                ("fetch.queue.backoff.ms", "1"),
                ("fetch.max.bytes", "2097152"),
                ("max.partition.fetch.bytes", "131072"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        p.push(("session.timeout.ms".into(), self.session_timeout_ms.to_string()));
        p.extend(self.extra_properties.iter().cloned());
        p
    }

    /// A property list with secret values replaced, for logs.
    pub fn masked(props: &[(String, String)]) -> Vec<(String, String)> {
        props.iter().map(|(k, v)| (k.clone(), if is_secret_property(k) { "***".into() } else { v.clone() })).collect()
    }
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub bind_ip: IpAddr,
    pub port: u16,
    pub threads: usize,
    pub max_connections: usize,
    pub timeout: Duration,
    /// Time allowed to receive a complete request header (from its first byte, or from accept).
    pub header_timeout: Duration,
    pub shutdown_linger: Duration,
    /// `--web.config.file`, read and checked at start-up (parsed, certificates loaded); `http::bind` starts
    /// from it without reading the file again.
    pub web_config: Option<crate::http::webconfig::WebConfigFile>,
}

/// The validated configuration of the daemon.
#[derive(Clone, Debug)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
    pub max_payload_bytes: usize,
    pub session_timeout: Duration,
    pub session_max_tracked: usize,
    /// `KAFKA_INGEST_NICE`: added to the ingest threads' nice value.
    pub ingest_nice: i32,
    pub buckets: Buckets,
    pub log_level: LevelFilter,
    /// `RUST_LOG` directives for other targets that were accepted but are not applied.
    pub ignored_log_directives: Vec<String>,
    /// Start-up warnings (settings that are valid but have no effect).
    pub warnings: Vec<String>,
}

struct Validator<'a> {
    raw: &'a RawSettings,
    errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    fn value(&self, env: &'static str) -> Option<(String, Origin)> {
        self.raw.get(env)
    }

    fn fail(&mut self, env: &'static str, value: &str, origin: Origin, allowed: impl Into<String>) {
        self.errors.push(ConfigError { env, value: value.to_string(), origin, allowed: allowed.into() });
    }

    fn optional(&mut self, env: &'static str) -> Option<String> {
        self.raw.raw(env).map(|(v, _)| v.to_string())
    }

    fn non_empty_string(&mut self, env: &'static str) -> String {
        let (v, o) = self.value(env).unwrap_or_default_pair();
        if v.trim().is_empty() {
            self.fail(env, &v, o, "must not be blank");
        }
        v
    }

    fn integer<T>(&mut self, env: &'static str, min: T, max: T) -> T
    where
        T: std::str::FromStr + PartialOrd + Copy + fmt::Display,
    {
        let (v, o) = self.value(env).unwrap_or_default_pair();
        match v.trim().parse::<T>() {
            Ok(n) if n >= min && n <= max => n,
            _ => {
                self.fail(env, &v, o, format!("expected a whole number from {min} to {max}"));
                min
            }
        }
    }

    fn choice(&mut self, env: &'static str, allowed: &[&'static str]) -> Option<&'static str> {
        let (v, o) = self.value(env)?;
        let lower = v.trim().to_ascii_lowercase();
        match allowed.iter().find(|a| a.to_ascii_lowercase() == lower) {
            Some(a) => Some(a),
            None => {
                self.fail(env, &v, o, format!("expected one of: {}", allowed.join(", ")));
                None
            }
        }
    }

    fn buckets(&mut self, env: &'static str) -> Vec<f64> {
        let (v, o) = self.value(env).unwrap_or_default_pair();
        match parse_buckets(&v) {
            Ok(b) => b,
            Err(why) => {
                self.fail(env, &v, o, why);
                Vec::new()
            }
        }
    }

    fn path(&mut self, env: &'static str, check: bool) -> Option<PathBuf> {
        let (v, o) = self.raw.raw(env).map(|(v, o)| (v.to_string(), o))?;
        let p = PathBuf::from(&v);
        if check && !p.is_file() {
            self.fail(env, &v, o, "expected a readable file (it does not exist or is not a file)");
        }
        Some(p)
    }
}

trait OrDefaultPair {
    fn unwrap_or_default_pair(self) -> (String, Origin);
}

impl OrDefaultPair for Option<(String, Origin)> {
    fn unwrap_or_default_pair(self) -> (String, Origin) {
        self.unwrap_or((String::new(), Origin::Default))
    }
}

/// Parses a bucket list: comma-separated finite numbers, strictly increasing (a trailing `+Inf` is allowed
/// and dropped, as the Prometheus client adds it anyway).
pub fn parse_buckets(s: &str) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    let items: Vec<&str> = s.split(',').map(str::trim).collect();
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        if last && (item.eq_ignore_ascii_case("+inf") || item.eq_ignore_ascii_case("inf")) && !out.is_empty() {
            break;
        }
        match item.parse::<f64>() {
            Ok(x) if x.is_finite() => out.push(x),
            _ => {
                return Err(format!(
                "expected comma-separated finite numbers in strictly increasing order; {item:?} is not a finite number"
            ))
            }
        }
    }
    if let Some(w) = out.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "expected comma-separated finite numbers in strictly increasing order; {} is followed by {}",
            w[0], w[1]
        ));
    }
    Ok(out)
}

/// Host part of one `bootstrap.servers` entry: `host:port`, `[v6]:port`, a bare IPv6 literal, or a bare host.
fn broker_host(entry: &str) -> &str {
    let e = entry.trim();
    let e = e.split_once("://").map(|(_, rest)| rest).unwrap_or(e);
    if let Some(rest) = e.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    if e.matches(':').count() > 1 {
        return e; // bare IPv6 literal without port
    }
    e.split(':').next().unwrap_or("")
}

/// The address family librdkafka should use when none is configured: loopback brokers are pinned to the family
/// of their loopback address (so `localhost` does not try `::1` first against an IPv4-only broker).
pub fn auto_address_family(brokers: &str) -> &'static str {
    let mut v4 = false;
    let mut v6 = false;
    for entry in brokers.split(',') {
        let host = broker_host(entry).to_ascii_lowercase();
        if host == "localhost" || host.starts_with("127.") {
            v4 = true;
        } else if host.parse::<std::net::Ipv6Addr>().map(|a| a.is_loopback()).unwrap_or(false) {
            v6 = true;
        }
    }
    match (v4, v6) {
        (true, false) => "v4",
        (false, true) => "v6",
        _ => "any",
    }
}

/// Parses `RUST_LOG`-style input: a level, optionally with `target=level` directives (accepted, not applied).
fn parse_log_level(s: &str) -> Result<(LevelFilter, Vec<String>), String> {
    let mut level = None;
    let mut ignored = Vec::new();
    for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let lvl_text = d.rsplit_once('=').map(|(_, l)| l).unwrap_or(d);
        let lvl: LevelFilter = lvl_text
            .parse()
            .map_err(|_| format!("expected a level (error, warn, info, debug, trace, off); {lvl_text:?} is not one"))?;
        if d.contains('=') {
            ignored.push(d.to_string());
        } else {
            level = Some(lvl);
        }
    }
    Ok((level.unwrap_or(LevelFilter::Info), ignored))
}

impl Config {
    /// Validates every setting; returns all problems at once.
    pub fn from_raw(raw: &RawSettings) -> Result<Config, ConfigErrors> {
        let mut v = Validator { raw, errors: Vec::new() };
        let mut warnings = Vec::new();

        let brokers = v.non_empty_string("KAFKA_BROKERS");
        let topic = v.non_empty_string("KAFKA_TOPIC");
        let group_id = v.non_empty_string("KAFKA_GROUP_ID");
        let auto_offset_reset = match v.choice("KAFKA_AUTO_OFFSET_RESET", &["earliest", "latest"]) {
            Some("latest") => OffsetReset::Latest,
            _ => OffsetReset::Earliest,
        };
        let session_timeout_ms = v.integer::<u32>("KAFKA_SESSION_TIMEOUT_MS", 3000, 3_600_000);
        let extra_properties = match v.optional("KAFKA_CONSUMER_PROPERTIES") {
            None => Vec::new(),
            Some(s) => {
                let mut out = Vec::new();
                for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    match item.split_once('=') {
                        Some((k, val)) if !k.trim().is_empty() => {
                            out.push((k.trim().to_string(), val.trim().to_string()))
                        }
                        _ => {
                            let (_, o) = v.value("KAFKA_CONSUMER_PROPERTIES").unwrap_or_default_pair();
                            // Only the malformed item is shown: the rest may hold secrets.
                            let shown = if is_secret_property(item) { "<redacted>" } else { item };
                            v.fail("KAFKA_CONSUMER_PROPERTIES", shown, o, "expected comma-separated key=value pairs");
                        }
                    }
                }
                out
            }
        };

        let security_protocol =
            match v.choice("KAFKA_SECURITY_PROTOCOL", &["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]) {
                Some("ssl") => SecurityProtocol::Ssl,
                Some("sasl_plaintext") => SecurityProtocol::SaslPlaintext,
                Some("sasl_ssl") => SecurityProtocol::SaslSsl,
                _ => SecurityProtocol::Plaintext,
            };
        let mut sasl_mechanism = v
            .choice("KAFKA_SASL_MECHANISM", &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER"])
            .map(str::to_string);
        let sasl_username = v.optional("KAFKA_SASL_USERNAME");
        let sasl_password = v.optional("KAFKA_SASL_PASSWORD");
        match (&sasl_username, &sasl_password) {
            (Some(u), None) => {
                let (_, o) = v.value("KAFKA_SASL_USERNAME").unwrap_or_default_pair();
                v.fail("KAFKA_SASL_USERNAME", u, o, "KAFKA_SASL_PASSWORD must be set as well");
            }
            (None, Some(p)) => {
                let (_, o) = v.value("KAFKA_SASL_PASSWORD").unwrap_or_default_pair();
                v.fail("KAFKA_SASL_PASSWORD", p, o, "KAFKA_SASL_USERNAME must be set as well");
            }
            _ => {}
        }
        if security_protocol.uses_sasl() {
            if sasl_mechanism.is_none() {
                sasl_mechanism = Some("PLAIN".into());
            }
            let needs_credentials =
                matches!(sasl_mechanism.as_deref(), Some("PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"));
            if needs_credentials && sasl_username.is_none() && sasl_password.is_none() {
                let (p, o) = v.value("KAFKA_SECURITY_PROTOCOL").unwrap_or_default_pair();
                v.fail(
                    "KAFKA_SECURITY_PROTOCOL",
                    &p,
                    o,
                    format!(
                        "SASL mechanism {} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
                        sasl_mechanism.as_deref().unwrap_or("")
                    ),
                );
            }
        } else if sasl_username.is_some() || v.optional("KAFKA_SASL_MECHANISM").is_some() {
            warnings.push(format!(
                "KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL={} does not use SASL; the SASL settings are ignored",
                security_protocol.as_str()
            ));
        }

        let ssl = security_protocol.uses_ssl();
        // librdkafka also accepts a CA directory or the word `probe` (search the system's usual places).
        let ssl_ca_location = match v.optional("KAFKA_SSL_CA_LOCATION") {
            Some(p) if p == "probe" || std::path::Path::new(&p).is_dir() => Some(PathBuf::from(p)),
            _ => v.path("KAFKA_SSL_CA_LOCATION", ssl),
        };
        let ssl_certificate_location = v.path("KAFKA_SSL_CERTIFICATE_LOCATION", ssl);
        let ssl_key_location = v.path("KAFKA_SSL_KEY_LOCATION", ssl);
        let ssl_key_password = v.optional("KAFKA_SSL_KEY_PASSWORD");
        match (&ssl_certificate_location, &ssl_key_location) {
            (Some(c), None) => {
                let (_, o) = v.value("KAFKA_SSL_CERTIFICATE_LOCATION").unwrap_or_default_pair();
                v.fail(
                    "KAFKA_SSL_CERTIFICATE_LOCATION",
                    &c.display().to_string(),
                    o,
                    "KAFKA_SSL_KEY_LOCATION must be set as well",
                );
            }
            (None, Some(k)) => {
                let (_, o) = v.value("KAFKA_SSL_KEY_LOCATION").unwrap_or_default_pair();
                v.fail(
                    "KAFKA_SSL_KEY_LOCATION",
                    &k.display().to_string(),
                    o,
                    "KAFKA_SSL_CERTIFICATE_LOCATION must be set as well",
                );
            }
            _ => {}
        }
        if !ssl && (ssl_ca_location.is_some() || ssl_certificate_location.is_some() || ssl_key_location.is_some()) {
            warnings.push(format!(
                "KAFKA_SSL_* is set but KAFKA_SECURITY_PROTOCOL={} does not use TLS; the SSL settings are ignored",
                security_protocol.as_str()
            ));
        }
        let ssl_endpoint_algorithm = match v.value("KAFKA_SSL_ENDPOINT_ALGORITHM") {
            Some((s, _)) if s.is_empty() => "none".to_string(),
            _ => v.choice("KAFKA_SSL_ENDPOINT_ALGORITHM", &["https", "none"]).unwrap_or("https").to_string(),
        };
        let broker_address_family = match v.optional("KAFKA_BROKER_ADDRESS_FAMILY") {
            Some(_) => v.choice("KAFKA_BROKER_ADDRESS_FAMILY", &["any", "v4", "v6"]).unwrap_or("any").to_string(),
            None => auto_address_family(&brokers).to_string(),
        };

        let bind_ip = {
            let (s, o) = v.value("METRICS_BIND_IP").unwrap_or_default_pair();
            let t = s.trim();
            let t = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(t);
            match t.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => {
                    v.fail(
                        "METRICS_BIND_IP",
                        &s,
                        o,
                        "expected an IPv4 or IPv6 address literal, e.g. 0.0.0.0, 127.0.0.1 or ::",
                    );
                    IpAddr::from([0, 0, 0, 0])
                }
            }
        };
        let port = v.integer::<u16>("METRICS_PORT", 0, 65535);
        let threads = v.integer::<usize>("METRICS_HTTP_THREADS", 1, 16);
        let max_connections = v.integer::<usize>("METRICS_MAX_CONNECTIONS", 1, 10_000);
        let shutdown_linger = Duration::from_secs(v.integer::<u64>("METRICS_SHUTDOWN_LINGER_SECS", 0, 60));
        let http_timeout = v.integer::<u64>("METRICS_HTTP_TIMEOUT_SECS", 1, 300);
        let header_timeout = v.integer::<u64>("METRICS_HTTP_HEADER_TIMEOUT_SECS", 1, 300);
        let web_config = match v.optional("WEB_CONFIG_FILE") {
            None => None,
            Some(p) => match crate::http::webconfig::load_file(std::path::Path::new(&p)) {
                Ok(file) => Some(file),
                Err(e) => {
                    let (_, o) = v.value("WEB_CONFIG_FILE").unwrap_or_default_pair();
                    v.fail("WEB_CONFIG_FILE", &p, o, format!("expected a valid exporter-toolkit web config: {e}"));
                    None
                }
            },
        };
        let max_payload_bytes = v.integer::<usize>("DASHSTREAM_MAX_PAYLOAD_BYTES", 1024, 1 << 30);
        let session_timeout = v.integer::<u64>("PROMETHEUS_SESSION_TIMEOUT_SECS", 1, 604_800);
        let session_max_tracked = v.integer::<usize>("PROMETHEUS_SESSION_MAX_TRACKED", 1, 10_000_000);
        let ingest_nice = v.integer::<i32>("KAFKA_INGEST_NICE", 0, 19);

        let buckets = Buckets {
            latency_ms: v.buckets("PROMETHEUS_LATENCY_BUCKETS_MS"),
            retry: v.buckets("PROMETHEUS_RETRY_BUCKETS"),
            quality_score: v.buckets("PROMETHEUS_QUALITY_SCORE_BUCKETS"),
            session_turns: v.buckets("PROMETHEUS_SESSION_TURN_BUCKETS"),
            duration_seconds: v.buckets("PROMETHEUS_DURATION_BUCKETS_SECONDS"),
            endpoint_seconds: v.buckets("PROMETHEUS_METRICS_ENDPOINT_BUCKETS"),
        };

        let (log_level, ignored_log_directives) = {
            let (s, o) = v.value("RUST_LOG").unwrap_or_default_pair();
            match parse_log_level(&s) {
                Ok(x) => x,
                Err(why) => {
                    v.fail("RUST_LOG", &s, o, why);
                    (LevelFilter::Info, Vec::new())
                }
            }
        };

        if !v.errors.is_empty() {
            return Err(ConfigErrors(v.errors));
        }
        Ok(Config {
            kafka: KafkaConfig {
                brokers,
                topic,
                group_id,
                auto_offset_reset,
                session_timeout_ms,
                security_protocol,
                sasl_mechanism,
                sasl_username,
                sasl_password,
                ssl_ca_location,
                ssl_certificate_location,
                ssl_key_location,
                ssl_key_password,
                ssl_endpoint_algorithm,
                broker_address_family,
                extra_properties,
            },
            http: HttpConfig {
                bind_ip,
                port,
                threads,
                max_connections,
                timeout: Duration::from_secs(http_timeout),
                header_timeout: Duration::from_secs(header_timeout),
                shutdown_linger,
                web_config,
            },
            max_payload_bytes,
            session_timeout: Duration::from_secs(session_timeout),
            session_max_tracked,
            ingest_nice,
            buckets,
            log_level,
            ignored_log_directives,
            warnings,
        })
    }

    /// `SETTING=value (origin)` lines for every setting, secrets masked.
    pub fn describe(raw: &RawSettings) -> Vec<String> {
        SETTINGS
            .iter()
            .map(|s| match raw.get(s.env) {
                Some((v, o)) => {
                    let shown = if s.secret || (s.env == "KAFKA_CONSUMER_PROPERTIES" && is_secret_property(&v)) {
                        "***".to_string()
                    } else {
                        v
                    };
                    format!("{}={shown} ({o})", s.env)
                }
                None => format!("{} unset", s.env),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawSettings {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RawSettings::collect(None, |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    fn ok(pairs: &[(&str, &str)]) -> Config {
        Config::from_raw(&raw(pairs)).expect("valid config")
    }

    fn errs(pairs: &[(&str, &str)]) -> Vec<ConfigError> {
        Config::from_raw(&raw(pairs)).expect_err("invalid config").0
    }

    #[test]
    fn defaults_match_the_original() {
        let c = ok(&[]);
        assert_eq!(c.kafka.brokers, "localhost:9092");
        assert_eq!(c.kafka.topic, "dashstream-quality");
        assert_eq!(c.kafka.group_id, "prometheus-exporter");
        assert_eq!(c.kafka.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(c.kafka.session_timeout_ms, 30000);
        assert_eq!(c.kafka.security_protocol, SecurityProtocol::Plaintext);
        assert_eq!(c.kafka.broker_address_family, "v4");
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
    fn bucket_lists_parse_like_the_original_accepts() {
        assert_eq!(parse_buckets("10,50,100,500").unwrap(), vec![10.0, 50.0, 100.0, 500.0]);
        assert_eq!(parse_buckets(" 10 , 50 , 100 ").unwrap(), vec![10.0, 50.0, 100.0]);
        assert_eq!(parse_buckets("42.5").unwrap(), vec![42.5]);
        assert_eq!(parse_buckets("0.001,0.01,0.1,1.0").unwrap(), vec![0.001, 0.01, 0.1, 1.0]);
        assert_eq!(parse_buckets("1,2,+Inf").unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn invalid_bucket_lists_are_errors_not_silent_defaults() {
        assert!(parse_buckets("10,not_a_number,100").unwrap_err().contains("\"not_a_number\""));
        assert!(parse_buckets("10,5").unwrap_err().contains("10 is followed by 5"));
        assert!(parse_buckets("1,1").is_err());
        assert!(parse_buckets("1,NaN").is_err());
        assert!(parse_buckets("1,,2").is_err());
        let e = errs(&[("PROMETHEUS_RETRY_BUCKETS", "3,2,1")]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].env, "PROMETHEUS_RETRY_BUCKETS");
        assert_eq!(e[0].value, "3,2,1");
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let c = ok(&[("PROMETHEUS_LATENCY_BUCKETS_MS", ""), ("KAFKA_SASL_USERNAME", ""), ("METRICS_PORT", "")]);
        assert_eq!(c.buckets.latency_ms.len(), 12);
        assert_eq!(c.kafka.sasl_username, None);
        assert_eq!(c.http.port, 9190);
    }

    #[test]
    fn offset_reset_is_case_insensitive_and_strict() {
        assert_eq!(ok(&[("KAFKA_AUTO_OFFSET_RESET", "latest")]).kafka.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(ok(&[("KAFKA_AUTO_OFFSET_RESET", "EARLIEST")]).kafka.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(ok(&[("KAFKA_AUTO_OFFSET_RESET", "Latest")]).kafka.auto_offset_reset, OffsetReset::Latest);
        let e = errs(&[("KAFKA_AUTO_OFFSET_RESET", "newest")]);
        assert_eq!(
            e[0].to_string(),
            "KAFKA_AUTO_OFFSET_RESET (KAFKA_AUTO_OFFSET_RESET) = \"newest\": expected one of: earliest, latest"
        );
    }

    #[test]
    fn http_header_timeout_default_and_bounds() {
        assert_eq!(ok(&[]).http.header_timeout, Duration::from_secs(5));
        assert_eq!(ok(&[("METRICS_HTTP_HEADER_TIMEOUT_SECS", "30")]).http.header_timeout, Duration::from_secs(30));
        for bad in ["0", "301", "-1", "5s"] {
            let e = errs(&[("METRICS_HTTP_HEADER_TIMEOUT_SECS", bad)]);
            assert_eq!(e.len(), 1, "{bad}");
            assert_eq!(e[0].env, "METRICS_HTTP_HEADER_TIMEOUT_SECS");
            assert_eq!(e[0].value, bad);
            assert!(e[0].allowed.contains("1 to 300"), "{}", e[0].allowed);
        }
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
        let names: Vec<_> = e.iter().map(|e| e.env).collect();
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
    fn flags_win_over_environment_and_are_named_in_errors() {
        let m = add_setting_flags(Command::new("t"))
            .try_get_matches_from(["t", "--metrics-port", "1234", "--kafka-topic", "from-flag"])
            .unwrap();
        let env = |k: &str| match k {
            "METRICS_PORT" => Some("9999".to_string()),
            "KAFKA_TOPIC" => Some("from-env".to_string()),
            _ => None,
        };
        let c = Config::from_raw(&RawSettings::collect(Some(&m), env)).unwrap();
        assert_eq!(c.http.port, 1234);
        assert_eq!(c.kafka.topic, "from-flag");
        let m = add_setting_flags(Command::new("t")).try_get_matches_from(["t", "--metrics-port", "x"]).unwrap();
        let e = Config::from_raw(&RawSettings::collect(Some(&m), |_| None)).unwrap_err();
        assert!(e.to_string().contains("METRICS_PORT (--metrics-port) = \"x\""), "{e}");
    }

    #[test]
    fn sasl_and_ssl_pairs_are_validated_and_secrets_never_printed() {
        let e = errs(&[("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"), ("KAFKA_SASL_PASSWORD", "hunter2")]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].env, "KAFKA_SASL_PASSWORD");
        let text = ConfigErrors(e).to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"));

        let e = errs(&[("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")]);
        assert!(e[0].allowed.contains("needs KAFKA_SASL_USERNAME"));

        let e = errs(&[("KAFKA_SECURITY_PROTOCOL", "ssl"), ("KAFKA_SSL_CERTIFICATE_LOCATION", "/nonexistent.pem")]);
        let names: Vec<_> = e.iter().map(|e| e.env).collect();
        assert_eq!(names, vec!["KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION"]);
    }

    #[test]
    fn sasl_defaults_to_plain_and_maps_to_librdkafka_properties() {
        let c = ok(&[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_USERNAME", "alice"),
            ("KAFKA_SASL_PASSWORD", "s3cret"),
            ("KAFKA_SSL_ENDPOINT_ALGORITHM", ""),
        ]);
        let p = c.kafka.client_properties();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(get("sasl.username"), Some("alice"));
        assert_eq!(get("sasl.password"), Some("s3cret"));
        assert_eq!(get("ssl.endpoint.identification.algorithm"), Some("none"));
        let masked = KafkaConfig::masked(&p);
        assert!(masked.iter().all(|(_, v)| v != "s3cret"));
        let described = Config::describe(&raw(&[("KAFKA_SASL_PASSWORD", "s3cret")])).join("\n");
        assert!(described.contains("KAFKA_SASL_PASSWORD=*** (env)"));
        assert!(!described.contains("s3cret"));
    }

    #[test]
    fn plaintext_does_not_send_sasl_or_ssl_properties() {
        let c = ok(&[("KAFKA_SASL_USERNAME", "a"), ("KAFKA_SASL_PASSWORD", "b")]);
        assert!(c.kafka.client_properties().iter().all(|(k, _)| !k.starts_with("sasl.") && !k.starts_with("ssl.")));
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn address_family_auto_detection() {
        assert_eq!(auto_address_family("localhost:9092"), "v4");
        assert_eq!(auto_address_family("LOCALHOST:9092"), "v4");
        assert_eq!(auto_address_family("127.0.0.1:9092,kafka:9092"), "v4");
        assert_eq!(auto_address_family("127.1.2.3:9092"), "v4");
        assert_eq!(auto_address_family("[::1]:9092"), "v6");
        assert_eq!(auto_address_family("::1"), "v6");
        assert_eq!(auto_address_family("kafka-1:9092,kafka-2:9092"), "any");
        assert_eq!(auto_address_family("[2001:db8::1]:9092"), "any");
        assert_eq!(auto_address_family("localhost:9092,[::1]:9093"), "any");
        assert_eq!(ok(&[("KAFKA_BROKER_ADDRESS_FAMILY", "V6")]).kafka.broker_address_family, "v6");
        assert_eq!(errs(&[("KAFKA_BROKER_ADDRESS_FAMILY", "ipv4")])[0].env, "KAFKA_BROKER_ADDRESS_FAMILY");
    }

    #[test]
    fn bracketed_ipv6_bind_address_is_accepted() {
        assert_eq!(ok(&[("METRICS_BIND_IP", "[::1]")]).http.bind_ip.to_string(), "::1");
        assert_eq!(ok(&[("METRICS_BIND_IP", "::")]).http.bind_ip.to_string(), "::");
    }

    #[test]
    fn log_level_accepts_rust_log_style_directives() {
        let c = ok(&[("RUST_LOG", "warn,rdkafka=debug")]);
        assert_eq!(c.log_level, LevelFilter::Warn);
        assert_eq!(c.ignored_log_directives, vec!["rdkafka=debug".to_string()]);
        assert_eq!(ok(&[("RUST_LOG", "DEBUG")]).log_level, LevelFilter::Debug);
    }

    #[test]
    fn extra_consumer_properties_are_applied_last() {
        let c = ok(&[("KAFKA_CONSUMER_PROPERTIES", "heartbeat.interval.ms=500, session.timeout.ms=6000")]);
        let p = c.kafka.consumer_properties();
        let last_session = p.iter().rev().find(|(k, _)| k == "session.timeout.ms").unwrap();
        assert_eq!(last_session.1, "6000");
        assert!(p.contains(&("heartbeat.interval.ms".to_string(), "500".to_string())));
        assert_eq!(errs(&[("KAFKA_CONSUMER_PROPERTIES", "novalue")])[0].env, "KAFKA_CONSUMER_PROPERTIES");
        let e = errs(&[("KAFKA_CONSUMER_PROPERTIES", "sasl.password=hunter2,oops")]);
        assert_eq!(e[0].value, "oops");
        assert!(!ConfigErrors(e).to_string().contains("hunter2"));
        let c = ok(&[("KAFKA_SECURITY_PROTOCOL", "ssl"), ("KAFKA_SSL_CA_LOCATION", "probe")]);
        assert_eq!(c.kafka.ssl_ca_location, Some(PathBuf::from("probe")));
        assert!(ok(&[("KAFKA_SECURITY_PROTOCOL", "ssl"), ("KAFKA_SSL_CA_LOCATION", "/")])
            .kafka
            .ssl_ca_location
            .is_some());
    }
}
