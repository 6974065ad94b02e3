//! Every setting the exporter reads, written once: its environment variable (the original exporter's names),
//! its command-line flag, its default, whether it is secret, what values it takes (a range of whole numbers or
//! a closed list of words, from `config::choices`) and its help text. `--help` and the table of
//! docs/configuration.md are made from it (a test below compares the table).
//!
//! Code names a setting by its [`Setting`] variant, so no lookup can name a setting that does not exist.
//! A secret setting also has a file twin (`<VARIABLE>_FILE`, `--<flag>-file`) naming a file that holds the
//! value, for Docker secrets and systemd credentials.

use super::choices::{AddressFamily, EndpointAlgorithm, OffsetReset, SaslMechanism, SecurityProtocol};

/// Whether a value may be printed.
macro_rules! is_secret {
    (secret) => {
        true
    };
    (plain) => {
        false
    };
}

macro_rules! settings {
    ($( $name:ident = $env:literal, $flag:literal, $default:expr, $secrecy:ident, $allowed:expr, $help:literal; )*) => {
        /// One configurable value.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Setting {
            $( $name, )*
        }

        impl Setting {
            /// Every setting, in the order they are documented.
            pub const ALL: &'static [Setting] = &[ $( Setting::$name, )* ];

            fn spec(self) -> &'static Spec {
                match self {
                    $( Setting::$name => &Spec {
                        env: $env,
                        flag: $flag,
                        file_env: concat!($env, "_FILE"),
                        file_flag: concat!($flag, "-file"),
                        default: $default,
                        secret: is_secret!($secrecy),
                        allowed: $allowed,
                        help: $help,
                    }, )*
                }
            }
        }
    };
}

struct Spec {
    env: &'static str,
    flag: &'static str,
    file_env: &'static str,
    file_flag: &'static str,
    default: Option<&'static str>,
    secret: bool,
    allowed: Allowed,
    help: &'static str,
}

/// What values a setting takes, when that is a range or a closed list: the validators read it from here, and
/// `--help` and docs/configuration.md show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// Text its validator parses (addresses, lists, paths, numbers with a rule of their own).
    Text,
    /// A whole number in `min..=max`.
    Integer(i64, i64),
    /// 0 (off), or a whole number in `min..=max`.
    ZeroOrInteger(i64, i64),
    /// One of these words, without regard to case (the labels of a `config::choices` enum).
    Choice(&'static [&'static str]),
}

impl Allowed {
    /// How `--help` and the documentation say it: `1..=16`, `0, or 132..=4096`, `plaintext, ssl or sasl_ssl`.
    pub fn describe(self) -> Option<String> {
        match self {
            Allowed::Text => None,
            Allowed::Integer(min, max) => Some(format!("{min}..={max}")),
            Allowed::ZeroOrInteger(min, max) => Some(format!("0, or {min}..={max}")),
            Allowed::Choice(words) => Some(match words.split_last() {
                Some((last, [])) => last.to_string(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            }),
        }
    }
}

settings! {
    KafkaBrokers = "KAFKA_BROKERS", "kafka-brokers", Some("localhost:9092"), plain, Allowed::Text, "Comma-separated bootstrap brokers";
    KafkaTopic = "KAFKA_TOPIC", "kafka-topic", Some("dashstream-quality"), plain, Allowed::Text, "Topic holding the quality events";
    KafkaGroupId = "KAFKA_GROUP_ID", "kafka-group-id", Some("prometheus-exporter"), plain, Allowed::Text, "Consumer group id";
    KafkaAutoOffsetReset = "KAFKA_AUTO_OFFSET_RESET", "kafka-auto-offset-reset", Some("earliest"), plain, Allowed::Choice(&OffsetReset::LABELS), "Where a new group starts";
    KafkaSessionTimeoutMs = "KAFKA_SESSION_TIMEOUT_MS", "kafka-session-timeout-ms", Some("30000"), plain, Allowed::Integer(3000, 3_600_000), "Consumer group session timeout in ms";
    KafkaPartitionAssignmentStrategy = "KAFKA_PARTITION_ASSIGNMENT_STRATEGY", "kafka-partition-assignment-strategy", Some("range,roundrobin"), plain, Allowed::Text, "How the group shares partitions: range and/or roundrobin (eager, librdkafka's default) or cooperative-sticky alone (incremental)";
    KafkaConsumerProperties = "KAFKA_CONSUMER_PROPERTIES", "kafka-consumer-properties", None, plain, Allowed::Text, "Extra librdkafka consumer properties, comma-separated key=value (applied last)";
    KafkaSecurityProtocol = "KAFKA_SECURITY_PROTOCOL", "kafka-security-protocol", Some("plaintext"), plain, Allowed::Choice(&SecurityProtocol::LABELS), "How the Kafka clients connect to the brokers";
    KafkaSaslMechanism = "KAFKA_SASL_MECHANISM", "kafka-sasl-mechanism", None, plain, Allowed::Choice(&SaslMechanism::LABELS), "SASL mechanism; PLAIN when a sasl_* protocol is used and this is unset";
    KafkaSaslUsername = "KAFKA_SASL_USERNAME", "kafka-sasl-username", None, plain, Allowed::Text, "SASL username (set together with the password)";
    KafkaSaslPassword = "KAFKA_SASL_PASSWORD", "kafka-sasl-password", None, secret, Allowed::Text, "SASL password (prefer KAFKA_SASL_PASSWORD_FILE or the variable: flags show in `ps`)";
    KafkaSslCaLocation = "KAFKA_SSL_CA_LOCATION", "kafka-ssl-ca-location", None, plain, Allowed::Text, "CA bundle (PEM) used to verify the brokers";
    KafkaSslCertificateLocation = "KAFKA_SSL_CERTIFICATE_LOCATION", "kafka-ssl-certificate-location", None, plain, Allowed::Text, "Client certificate (PEM) for mTLS (set together with the key)";
    KafkaSslKeyLocation = "KAFKA_SSL_KEY_LOCATION", "kafka-ssl-key-location", None, plain, Allowed::Text, "Client private key (PEM) for mTLS (set together with the certificate)";
    KafkaSslKeyPassword = "KAFKA_SSL_KEY_PASSWORD", "kafka-ssl-key-password", None, secret, Allowed::Text, "Password of the client private key";
    KafkaSslEndpointAlgorithm = "KAFKA_SSL_ENDPOINT_ALGORITHM", "kafka-ssl-endpoint-algorithm", Some("https"), plain, Allowed::Choice(&EndpointAlgorithm::LABELS), "Broker host name verification";
    KafkaBrokerAddressFamily = "KAFKA_BROKER_ADDRESS_FAMILY", "kafka-broker-address-family", None, plain, Allowed::Choice(&AddressFamily::LABELS), "Address family of the broker connections; unset: v4 when a broker is localhost/127.x, v6 when it is ::1, else any";
    MetricsBindIp = "METRICS_BIND_IP", "metrics-bind-ip", Some("0.0.0.0"), plain, Allowed::Text, "Address the HTTP server binds (IPv4 or IPv6 literal)";
    MetricsPort = "METRICS_PORT", "metrics-port", Some("9190"), plain, Allowed::Integer(0, 65_535), "Port of the HTTP server; 0 picks a free port";
    MetricsHttpThreads = "METRICS_HTTP_THREADS", "metrics-http-threads", Some("2"), plain, Allowed::Integer(1, 16), "Threads answering HTTP requests";
    MetricsMaxConnections = "METRICS_MAX_CONNECTIONS", "metrics-max-connections", Some("64"), plain, Allowed::Integer(1, 10_000), "Most HTTP connections open at once; more get 503";
    MetricsHttpTimeoutSecs = "METRICS_HTTP_TIMEOUT_SECS", "metrics-http-timeout-secs", Some("10"), plain, Allowed::Integer(1, 300), "An HTTP connection idle this many seconds is closed";
    MetricsHttpHeaderTimeoutSecs = "METRICS_HTTP_HEADER_TIMEOUT_SECS", "metrics-http-header-timeout-secs", Some("5"), plain, Allowed::Integer(1, 300), "A request header not complete this many seconds after its first byte (or after the connection opened) closes the connection";
    WebConfigFile = "WEB_CONFIG_FILE", "web.config.file", None, plain, Allowed::Text, "TLS, basic auth, response headers and a rate limit for the HTTP endpoints: a Prometheus exporter-toolkit web config file (YAML: tls_server_config, basic_auth_users, http_server_config, rate_limit); re-read when it or its certificate files change";
    MetricsShutdownLingerSecs = "METRICS_SHUTDOWN_LINGER_SECS", "metrics-shutdown-linger-secs", Some("0"), plain, Allowed::Integer(0, 60), "After a graceful stop has drained and committed, keep serving /metrics this many seconds (/-/ready is 503) so a last scrape sees every applied event";
    DashstreamMaxPayloadBytes = "DASHSTREAM_MAX_PAYLOAD_BYTES", "dashstream-max-payload-bytes", Some("10485760"), plain, Allowed::Integer(1024, 1 << 30), "Largest record (and largest decompressed record) accepted, in bytes";
    PrometheusSessionTimeoutSecs = "PROMETHEUS_SESSION_TIMEOUT_SECS", "prometheus-session-timeout-secs", Some("300"), plain, Allowed::Integer(1, 604_800), "Idle seconds after which a session is closed and its turns observed";
    PrometheusQualityPassThreshold = "PROMETHEUS_QUALITY_PASS_THRESHOLD", "prometheus-quality-pass-threshold", None, plain, Allowed::Text, "Judge DashFlow QualityMonitor evaluations (events without `passed`) as passed when their `quality_average` is at least this, instead of when the monitor reports no issue (a number from 0 to 1; unset: by the issues)";
    KafkaIngestNice = "KAFKA_INGEST_NICE", "kafka-ingest-nice", Some("5"), plain, Allowed::Integer(0, 19), "How much lower the ingest threads (librdkafka's, the poll thread, the worker) are scheduled than the HTTP threads: their nice value is raised by this much, so scrapes are answered promptly while a backlog drains on busy cores; 0 keeps them equal";
    PrometheusSessionMaxTracked = "PROMETHEUS_SESSION_MAX_TRACKED", "prometheus-session-max-tracked", Some("100000"), plain, Allowed::Integer(1, 10_000_000), "Most sessions tracked at once; past it the least recently seen is closed early";
    PrometheusLatencyBucketsMs = "PROMETHEUS_LATENCY_BUCKETS_MS", "prometheus-latency-buckets-ms", Some("10,50,100,200,500,1000,2000,5000,10000,15000,20000,30000"), plain, Allowed::Text, "Buckets of the latency histograms (ms)";
    PrometheusRetryBuckets = "PROMETHEUS_RETRY_BUCKETS", "prometheus-retry-buckets", Some("0,1,2,3,5,10"), plain, Allowed::Text, "Buckets of dashstream_quality_retry_count";
    PrometheusQualityScoreBuckets = "PROMETHEUS_QUALITY_SCORE_BUCKETS", "prometheus-quality-score-buckets", Some("0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95,1.0"), plain, Allowed::Text, "Buckets of dashstream_quality_score_by_model";
    PrometheusSessionTurnBuckets = "PROMETHEUS_SESSION_TURN_BUCKETS", "prometheus-session-turn-buckets", Some("1,2,5,10,20,50"), plain, Allowed::Text, "Buckets of dashstream_turns_by_session";
    PrometheusDurationBucketsSeconds = "PROMETHEUS_DURATION_BUCKETS_SECONDS", "prometheus-duration-buckets-seconds", Some("0.01,0.05,0.1,0.2,0.5,1,2,5,10"), plain, Allowed::Text, "Buckets of dashstream_librarian_request_duration_seconds";
    PrometheusEventDelayBucketsSeconds = "PROMETHEUS_EVENT_DELAY_BUCKETS_SECONDS", "prometheus-event-delay-buckets-seconds", Some("0.01,0.05,0.1,0.5,1,5,10,30,60,120,300,600"), plain, Allowed::Text, "Buckets of dashstream_exporter_event_delay_seconds (seconds from the producer's stamp to the event being applied)";
    PrometheusMetricsEndpointBuckets = "PROMETHEUS_METRICS_ENDPOINT_BUCKETS", "prometheus-metrics-endpoint-buckets", Some("0.001,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1"), plain, Allowed::Text, "Buckets of dashstream_exporter_metrics_endpoint_duration_seconds";
    PrometheusExemplars = "PROMETHEUS_EXEMPLARS", "prometheus-exemplars", Some("true"), plain, Allowed::Text, "Exemplars (`thread_id`, `message_id`) on the buckets of dashstream_query_latency_ms, dashstream_latency_by_model_ms and dashstream_quality_score_by_model, in the OpenMetrics and protobuf formats (true or false)";
    PrometheusNativeHistogramSchema = "PROMETHEUS_NATIVE_HISTOGRAM_SCHEMA", "prometheus-native-histogram-schema", Some("3"), plain, Allowed::Integer(-4, 8), "Starting resolution of the native histograms served in the protobuf format: bucket bounds grow by 2^(2^-schema), 3 is a factor of 1.09";
    PrometheusNativeHistogramZeroThreshold = "PROMETHEUS_NATIVE_HISTOGRAM_ZERO_THRESHOLD", "prometheus-native-histogram-zero-threshold", Some("2.938735877055719e-39"), plain, Allowed::Text, "Observations of at most this magnitude count in the native histograms' zero bucket (a finite number >= 0; default 2^-128)";
    // At schema -4 every finite positive float lies within 132 buckets (indexes -67..=64), so a limit at least
    // that wide can always be met by lowering the schema.
    PrometheusNativeHistogramMaxBuckets = "PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS", "prometheus-native-histogram-max-buckets", Some("160"), plain, Allowed::ZeroOrInteger(132, 4096), "Widest range of native-histogram buckets per sign and series; a wider spread lowers the schema (doubles the bucket width) until it fits. 0 turns native histograms off";
    RustLog = "RUST_LOG", "log-level", Some("info"), plain, Allowed::Text, "Log level: error, warn, info, debug, trace or off";
    // Prometheus remote write (src/remote_write/, src/config/remote_write.rs): off unless the URL is set.
    RemoteWriteUrl = "REMOTE_WRITE_URL", "remote-write.url", None, plain, Allowed::Text, "Push every series with Prometheus remote write 1.0 to this http:// or https:// URL (e.g. http://prometheus:9090/api/v1/write); unset: no pushing";
    RemoteWriteIntervalSecs = "REMOTE_WRITE_INTERVAL_SECS", "remote-write.interval-secs", Some("15"), plain, Allowed::Integer(1, 3600), "Seconds between pushes; a push not delivered by the next one is dropped (the next carries the cumulative values)";
    RemoteWriteJob = "REMOTE_WRITE_JOB", "remote-write.job", Some("dashstream-quality"), plain, Allowed::Text, "The job label of pushed series";
    RemoteWriteInstance = "REMOTE_WRITE_INSTANCE", "remote-write.instance", None, plain, Allowed::Text, "The instance label of pushed series (default: the host name)";
    RemoteWriteExtraLabels = "REMOTE_WRITE_EXTRA_LABELS", "remote-write.extra-labels", None, plain, Allowed::Text, "More labels for every pushed series, comma-separated name=value (a series' own label of the same name wins)";
    RemoteWriteTlsCaFile = "REMOTE_WRITE_TLS_CA_FILE", "remote-write.tls.ca-file", None, plain, Allowed::Text, "CA bundle (PEM) verifying an https receiver (default: the system's)";
    RemoteWriteTlsCertFile = "REMOTE_WRITE_TLS_CERT_FILE", "remote-write.tls.cert-file", None, plain, Allowed::Text, "Client certificate (PEM) for mutual TLS to the receiver (set together with the key)";
    RemoteWriteTlsKeyFile = "REMOTE_WRITE_TLS_KEY_FILE", "remote-write.tls.key-file", None, plain, Allowed::Text, "Client private key (PEM, unencrypted) for mutual TLS to the receiver";
    RemoteWriteBasicAuthUsername = "REMOTE_WRITE_BASIC_AUTH_USERNAME", "remote-write.basic-auth.username", None, plain, Allowed::Text, "Basic auth user name for the receiver (set together with the password)";
    RemoteWriteBasicAuthPassword = "REMOTE_WRITE_BASIC_AUTH_PASSWORD", "remote-write.basic-auth.password", None, secret, Allowed::Text, "Basic auth password for the receiver (prefer REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE)";
    RemoteWriteBearerTokenFile = "REMOTE_WRITE_BEARER_TOKEN_FILE", "remote-write.bearer-token-file", None, plain, Allowed::Text, "File holding a bearer token for the receiver (read at start-up; not with basic auth)";
    WebListenAddress = "WEB_LISTEN_ADDRESS", "web.listen-address", None, plain, Allowed::Text, "Address the HTTP server listens on, as the exporter-toolkit flag: host:port, [::]:9190, or :9190 for every interface; repeat the flag (or separate with commas) for several. Unset: METRICS_BIND_IP:METRICS_PORT";
    WebSystemdSocket = "WEB_SYSTEMD_SOCKET", "web.systemd-socket", None, plain, Allowed::Text, "Listen on the sockets systemd passes (socket activation, LISTEN_FDS) instead of any address: the flag takes no value; the variable true or false";
}

/// How a setting's flag is given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    /// `--flag VALUE`, once.
    Value,
    /// `--flag VALUE`, any number of times: the values joined by commas, as the variable takes them.
    Repeated,
    /// `--flag` alone: "true".
    Switch,
}

impl Setting {
    /// How the flag is given: most take one value.
    pub fn flag_kind(self) -> FlagKind {
        match self {
            Setting::WebListenAddress => FlagKind::Repeated,
            Setting::WebSystemdSocket => FlagKind::Switch,
            _ => FlagKind::Value,
        }
    }

    /// The environment variable.
    pub fn env(self) -> &'static str {
        self.spec().env
    }

    /// The command-line flag, without its leading `--`.
    pub fn flag(self) -> &'static str {
        self.spec().flag
    }

    /// The variable naming a file that holds the value (`KAFKA_SASL_PASSWORD_FILE`): secret settings only.
    pub fn file_env(self) -> Option<&'static str> {
        self.secret().then_some(self.spec().file_env)
    }

    /// The flag of the file twin, without its leading `--` (`kafka-sasl-password-file`): secret settings only.
    pub fn file_flag(self) -> Option<&'static str> {
        self.secret().then_some(self.spec().file_flag)
    }

    /// The value used when neither the flag nor the variable is given.
    pub fn default(self) -> Option<&'static str> {
        self.spec().default
    }

    /// Secret values are never printed (errors, `check-config`, start-up line).
    pub fn secret(self) -> bool {
        self.spec().secret
    }

    /// What values it takes.
    pub fn allowed(self) -> Allowed {
        self.spec().allowed
    }

    /// One line for `--help` and docs/configuration.md: the help text, then what values it takes.
    pub fn help(self) -> String {
        match self.allowed().describe() {
            Some(a) => format!("{} ({a})", self.spec().help),
            None => self.spec().help.to_string(),
        }
    }

    /// Whether a variable set to the empty string is a value rather than "unset". Only the endpoint
    /// algorithm, where the original exporter took `""` to mean `none`.
    pub fn empty_is_a_value(self) -> bool {
        self == Setting::KafkaSslEndpointAlgorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_flags_are_unique() {
        for (i, a) in Setting::ALL.iter().enumerate() {
            for b in &Setting::ALL[i + 1..] {
                assert_ne!(a.env(), b.env());
                assert_ne!(a.flag(), b.flag());
            }
        }
    }

    #[test]
    fn only_secrets_have_file_twins_and_no_twin_collides_with_a_setting() {
        let secret: Vec<_> = Setting::ALL.iter().filter(|s| s.secret()).map(|s| s.env()).collect();
        assert_eq!(secret, vec!["KAFKA_SASL_PASSWORD", "KAFKA_SSL_KEY_PASSWORD", "REMOTE_WRITE_BASIC_AUTH_PASSWORD"]);
        assert_eq!(Setting::RemoteWriteBasicAuthPassword.file_env(), Some("REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE"));
        assert_eq!(Setting::KafkaSaslPassword.file_env(), Some("KAFKA_SASL_PASSWORD_FILE"));
        assert_eq!(Setting::KafkaSslKeyPassword.file_flag(), Some("kafka-ssl-key-password-file"));
        assert_eq!(Setting::KafkaSaslUsername.file_env(), None);
        assert_eq!(Setting::WebConfigFile.file_flag(), None);
        for twin in Setting::ALL.iter().filter_map(|s| s.file_env()) {
            assert!(Setting::ALL.iter().all(|s| s.env() != twin), "{twin}");
        }
    }

    #[test]
    fn every_default_is_one_of_the_values_allowed() {
        for &s in Setting::ALL {
            let Some(d) = s.default() else { continue };
            match s.allowed() {
                Allowed::Text => {}
                Allowed::Integer(min, max) => {
                    assert!((min..=max).contains(&d.parse::<i64>().unwrap()), "{}: {d}", s.env())
                }
                Allowed::ZeroOrInteger(min, max) => {
                    let n = d.parse::<i64>().unwrap();
                    assert!(n == 0 || (min..=max).contains(&n), "{}: {d}", s.env())
                }
                Allowed::Choice(words) => assert!(words.contains(&d), "{}: {d} not in {words:?}", s.env()),
            }
        }
    }

    #[test]
    fn help_shows_the_range_or_choices_from_the_table() {
        assert_eq!(Setting::MetricsHttpThreads.help(), "Threads answering HTTP requests (1..=16)");
        assert_eq!(Setting::KafkaAutoOffsetReset.help(), "Where a new group starts (earliest or latest)");
        assert_eq!(
            Setting::KafkaSecurityProtocol.help(),
            "How the Kafka clients connect to the brokers (plaintext, ssl, sasl_plaintext or sasl_ssl)"
        );
        assert!(Setting::PrometheusNativeHistogramMaxBuckets.help().ends_with("(0, or 132..=4096)"));
        assert_eq!(Setting::KafkaBrokers.help(), "Comma-separated bootstrap brokers");
    }

    /// The row of docs/configuration.md's table for `s`: variable, flag, default and meaning, the meaning
    /// opening with the help text (a row may go on with links and notes).
    fn doc_row(s: Setting) -> [String; 4] {
        let flag = match s.flag_kind() {
            FlagKind::Value => format!("`--{}`", s.flag()),
            FlagKind::Repeated => format!("`--{}` (repeatable)", s.flag()),
            FlagKind::Switch => format!("`--{}` (no value)", s.flag()),
        };
        let default = s.default().map_or_else(|| "unset".to_string(), |d| format!("`{d}`"));
        [format!("`{}`", s.env()), flag, default, s.help()]
    }

    #[test]
    fn the_configuration_reference_in_docs_follows_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
            .collect();
        let mut drifted = Vec::new();
        for &s in Setting::ALL {
            let want = doc_row(s);
            let found = rows.iter().find(|r| r[0] == want[0]);
            let ok = found.is_some_and(|r| {
                r.len() >= 4 && r[1] == want[1] && r[2].starts_with(&want[2]) && r[3].starts_with(&want[3])
            });
            if !ok {
                drifted.push(format!("| {} |", want.join(" | ")));
            }
        }
        assert!(
            drifted.is_empty(),
            "docs/configuration.md drifted from src/config/setting.rs; rows should open with:\n{}",
            drifted.join("\n")
        );
    }
}
