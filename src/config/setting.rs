//! Every setting the exporter reads, written once: its environment variable (the original exporter's names),
//! its command-line flag, its default, whether it is secret and its help text.
//!
//! Code names a setting by its [`Setting`] variant, so no lookup can name a setting that does not exist.
//! A secret setting also has a file twin (`<VARIABLE>_FILE`, `--<flag>-file`) naming a file that holds the
//! value, for Docker secrets and systemd credentials.

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
    ($( $name:ident = $env:literal, $flag:literal, $default:expr, $secrecy:ident, $help:literal; )*) => {
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
    help: &'static str,
}

settings! {
    KafkaBrokers = "KAFKA_BROKERS", "kafka-brokers", Some("localhost:9092"), plain, "Comma-separated bootstrap brokers";
    KafkaTopic = "KAFKA_TOPIC", "kafka-topic", Some("dashstream-quality"), plain, "Topic holding the quality events";
    KafkaGroupId = "KAFKA_GROUP_ID", "kafka-group-id", Some("prometheus-exporter"), plain, "Consumer group id";
    KafkaAutoOffsetReset = "KAFKA_AUTO_OFFSET_RESET", "kafka-auto-offset-reset", Some("earliest"), plain, "Where a new group starts: earliest or latest";
    KafkaSessionTimeoutMs = "KAFKA_SESSION_TIMEOUT_MS", "kafka-session-timeout-ms", Some("30000"), plain, "Consumer group session timeout in ms (3000..=3600000)";
    KafkaPartitionAssignmentStrategy = "KAFKA_PARTITION_ASSIGNMENT_STRATEGY", "kafka-partition-assignment-strategy", Some("range,roundrobin"), plain, "How the group shares partitions: range and/or roundrobin (eager, librdkafka's default) or cooperative-sticky alone (incremental)";
    KafkaConsumerProperties = "KAFKA_CONSUMER_PROPERTIES", "kafka-consumer-properties", None, plain, "Extra librdkafka consumer properties, comma-separated key=value (applied last)";
    KafkaSecurityProtocol = "KAFKA_SECURITY_PROTOCOL", "kafka-security-protocol", Some("plaintext"), plain, "plaintext, ssl, sasl_plaintext or sasl_ssl";
    KafkaSaslMechanism = "KAFKA_SASL_MECHANISM", "kafka-sasl-mechanism", None, plain, "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, GSSAPI or OAUTHBEARER (PLAIN when a sasl_* protocol is used and this is unset)";
    KafkaSaslUsername = "KAFKA_SASL_USERNAME", "kafka-sasl-username", None, plain, "SASL username (set together with the password)";
    KafkaSaslPassword = "KAFKA_SASL_PASSWORD", "kafka-sasl-password", None, secret, "SASL password (prefer KAFKA_SASL_PASSWORD_FILE or the variable: flags show in `ps`)";
    KafkaSslCaLocation = "KAFKA_SSL_CA_LOCATION", "kafka-ssl-ca-location", None, plain, "CA bundle (PEM) used to verify the brokers";
    KafkaSslCertificateLocation = "KAFKA_SSL_CERTIFICATE_LOCATION", "kafka-ssl-certificate-location", None, plain, "Client certificate (PEM) for mTLS (set together with the key)";
    KafkaSslKeyLocation = "KAFKA_SSL_KEY_LOCATION", "kafka-ssl-key-location", None, plain, "Client private key (PEM) for mTLS (set together with the certificate)";
    KafkaSslKeyPassword = "KAFKA_SSL_KEY_PASSWORD", "kafka-ssl-key-password", None, secret, "Password of the client private key";
    KafkaSslEndpointAlgorithm = "KAFKA_SSL_ENDPOINT_ALGORITHM", "kafka-ssl-endpoint-algorithm", Some("https"), plain, "Broker host name verification: https or none";
    KafkaBrokerAddressFamily = "KAFKA_BROKER_ADDRESS_FAMILY", "kafka-broker-address-family", None, plain, "any, v4 or v6 (default: v4 when a broker is localhost/127.x, v6 when it is ::1, else any)";
    MetricsBindIp = "METRICS_BIND_IP", "metrics-bind-ip", Some("0.0.0.0"), plain, "Address the HTTP server binds (IPv4 or IPv6 literal)";
    MetricsPort = "METRICS_PORT", "metrics-port", Some("9190"), plain, "Port of the HTTP server (0 picks a free port)";
    MetricsHttpThreads = "METRICS_HTTP_THREADS", "metrics-http-threads", Some("2"), plain, "Threads answering HTTP requests (1..=16)";
    MetricsMaxConnections = "METRICS_MAX_CONNECTIONS", "metrics-max-connections", Some("64"), plain, "Most HTTP connections open at once; more get 503 (1..=10000)";
    MetricsHttpTimeoutSecs = "METRICS_HTTP_TIMEOUT_SECS", "metrics-http-timeout-secs", Some("10"), plain, "An HTTP connection idle this many seconds is closed (1..=300)";
    MetricsHttpHeaderTimeoutSecs = "METRICS_HTTP_HEADER_TIMEOUT_SECS", "metrics-http-header-timeout-secs", Some("5"), plain, "A request header not complete this many seconds after its first byte (or after the connection opened) closes the connection (1..=300)";
    WebConfigFile = "WEB_CONFIG_FILE", "web.config.file", None, plain, "TLS and basic auth for the HTTP endpoints: a Prometheus exporter-toolkit web config file (YAML: tls_server_config, basic_auth_users); re-read when it or its certificate files change";
    MetricsShutdownLingerSecs = "METRICS_SHUTDOWN_LINGER_SECS", "metrics-shutdown-linger-secs", Some("0"), plain, "After a graceful stop has drained and committed, keep serving /metrics this many seconds (/-/ready is 503) so a last scrape sees every applied event (0..=60)";
    DashstreamMaxPayloadBytes = "DASHSTREAM_MAX_PAYLOAD_BYTES", "dashstream-max-payload-bytes", Some("10485760"), plain, "Largest record (and largest decompressed record) accepted, in bytes (1024..=1073741824)";
    PrometheusSessionTimeoutSecs = "PROMETHEUS_SESSION_TIMEOUT_SECS", "prometheus-session-timeout-secs", Some("300"), plain, "Idle seconds after which a session is closed and its turns observed (1..=604800)";
    PrometheusQualityPassThreshold = "PROMETHEUS_QUALITY_PASS_THRESHOLD", "prometheus-quality-pass-threshold", None, plain, "Judge DashFlow QualityMonitor evaluations (events without `passed`) as passed when their quality_average is at least this, instead of when the monitor reports no issue (a number from 0 to 1; unset: by the issues)";
    KafkaIngestNice = "KAFKA_INGEST_NICE", "kafka-ingest-nice", Some("5"), plain, "How much lower the ingest threads (librdkafka's, the poll thread, the worker) are scheduled than the HTTP threads: their nice value is raised by this much, so scrapes are answered promptly while a backlog drains on busy cores (0..=19; 0 keeps them equal)";
    PrometheusSessionMaxTracked = "PROMETHEUS_SESSION_MAX_TRACKED", "prometheus-session-max-tracked", Some("100000"), plain, "Most sessions tracked at once; past it the least recently seen is closed early (1..=10000000)";
    PrometheusLatencyBucketsMs = "PROMETHEUS_LATENCY_BUCKETS_MS", "prometheus-latency-buckets-ms", Some("10,50,100,200,500,1000,2000,5000,10000,15000,20000,30000"), plain, "Buckets of the latency histograms (ms)";
    PrometheusRetryBuckets = "PROMETHEUS_RETRY_BUCKETS", "prometheus-retry-buckets", Some("0,1,2,3,5,10"), plain, "Buckets of dashstream_quality_retry_count";
    PrometheusQualityScoreBuckets = "PROMETHEUS_QUALITY_SCORE_BUCKETS", "prometheus-quality-score-buckets", Some("0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95,1.0"), plain, "Buckets of dashstream_quality_score_by_model";
    PrometheusSessionTurnBuckets = "PROMETHEUS_SESSION_TURN_BUCKETS", "prometheus-session-turn-buckets", Some("1,2,5,10,20,50"), plain, "Buckets of dashstream_turns_by_session";
    PrometheusDurationBucketsSeconds = "PROMETHEUS_DURATION_BUCKETS_SECONDS", "prometheus-duration-buckets-seconds", Some("0.01,0.05,0.1,0.2,0.5,1,2,5,10"), plain, "Buckets of dashstream_librarian_request_duration_seconds";
    PrometheusEventDelayBucketsSeconds = "PROMETHEUS_EVENT_DELAY_BUCKETS_SECONDS", "prometheus-event-delay-buckets-seconds", Some("0.01,0.05,0.1,0.5,1,5,10,30,60,120,300,600"), plain, "Buckets of dashstream_exporter_event_delay_seconds (seconds from the producer's stamp to the event being applied)";
    PrometheusMetricsEndpointBuckets = "PROMETHEUS_METRICS_ENDPOINT_BUCKETS", "prometheus-metrics-endpoint-buckets", Some("0.001,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1"), plain, "Buckets of dashstream_exporter_metrics_endpoint_duration_seconds";
    PrometheusExemplars = "PROMETHEUS_EXEMPLARS", "prometheus-exemplars", Some("true"), plain, "Exemplars (thread_id, message_id) on the buckets of dashstream_query_latency_ms, dashstream_latency_by_model_ms and dashstream_quality_score_by_model, in the OpenMetrics and protobuf formats (true or false)";
    PrometheusNativeHistogramSchema = "PROMETHEUS_NATIVE_HISTOGRAM_SCHEMA", "prometheus-native-histogram-schema", Some("3"), plain, "Starting resolution of the native histograms served in the protobuf format: bucket bounds grow by 2^(2^-schema), 3 is a factor of 1.09 (-4..=8)";
    PrometheusNativeHistogramZeroThreshold = "PROMETHEUS_NATIVE_HISTOGRAM_ZERO_THRESHOLD", "prometheus-native-histogram-zero-threshold", Some("2.938735877055719e-39"), plain, "Observations of at most this magnitude count in the native histograms' zero bucket (a finite number >= 0; default 2^-128)";
    PrometheusNativeHistogramMaxBuckets = "PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS", "prometheus-native-histogram-max-buckets", Some("160"), plain, "Widest range of native-histogram buckets per sign and series; a wider spread lowers the schema (doubles the bucket width) until it fits. 0 turns native histograms off (0, or 132..=4096)";
    RustLog = "RUST_LOG", "log-level", Some("info"), plain, "Log level: error, warn, info, debug, trace or off";
    // Prometheus remote write (src/remote_write/, src/config/remote_write.rs): off unless the URL is set.
    RemoteWriteUrl = "REMOTE_WRITE_URL", "remote-write.url", None, plain, "Push every series with Prometheus remote write 1.0 to this http:// or https:// URL (e.g. http://prometheus:9090/api/v1/write); unset: no pushing";
    RemoteWriteIntervalSecs = "REMOTE_WRITE_INTERVAL_SECS", "remote-write.interval-secs", Some("15"), plain, "Seconds between pushes (1..=3600); a push not delivered by the next one is dropped (the next carries the cumulative values)";
    RemoteWriteJob = "REMOTE_WRITE_JOB", "remote-write.job", Some("dashstream-quality"), plain, "The job label of pushed series";
    RemoteWriteInstance = "REMOTE_WRITE_INSTANCE", "remote-write.instance", None, plain, "The instance label of pushed series (default: the host name)";
    RemoteWriteExtraLabels = "REMOTE_WRITE_EXTRA_LABELS", "remote-write.extra-labels", None, plain, "More labels for every pushed series, comma-separated name=value (a series' own label of the same name wins)";
    RemoteWriteTlsCaFile = "REMOTE_WRITE_TLS_CA_FILE", "remote-write.tls.ca-file", None, plain, "CA bundle (PEM) verifying an https receiver (default: the system's)";
    RemoteWriteTlsCertFile = "REMOTE_WRITE_TLS_CERT_FILE", "remote-write.tls.cert-file", None, plain, "Client certificate (PEM) for mutual TLS to the receiver (set together with the key)";
    RemoteWriteTlsKeyFile = "REMOTE_WRITE_TLS_KEY_FILE", "remote-write.tls.key-file", None, plain, "Client private key (PEM, unencrypted) for mutual TLS to the receiver";
    RemoteWriteBasicAuthUsername = "REMOTE_WRITE_BASIC_AUTH_USERNAME", "remote-write.basic-auth.username", None, plain, "Basic auth user name for the receiver (set together with the password)";
    RemoteWriteBasicAuthPassword = "REMOTE_WRITE_BASIC_AUTH_PASSWORD", "remote-write.basic-auth.password", None, secret, "Basic auth password for the receiver (prefer REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE)";
    RemoteWriteBearerTokenFile = "REMOTE_WRITE_BEARER_TOKEN_FILE", "remote-write.bearer-token-file", None, plain, "File holding a bearer token for the receiver (read at start-up; not with basic auth)";
    WebListenAddress = "WEB_LISTEN_ADDRESS", "web.listen-address", None, plain, "Address the HTTP server listens on, as the exporter-toolkit flag: host:port, [::]:9190, or :9190 for every interface; repeat the flag (or separate with commas) for several. Unset: METRICS_BIND_IP:METRICS_PORT";
    WebSystemdSocket = "WEB_SYSTEMD_SOCKET", "web.systemd-socket", None, plain, "Listen on the sockets systemd passes (socket activation, LISTEN_FDS) instead of any address: the flag takes no value; the variable true or false";
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

    /// One line for `--help`.
    pub fn help(self) -> &'static str {
        self.spec().help
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
}
