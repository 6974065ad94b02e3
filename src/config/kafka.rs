//! The Kafka side: brokers, topic, consumer group, security (SASL, TLS) and extra librdkafka properties,
//! validated into a [`KafkaConfig`], which is also the one place that turns them into an rdkafka
//! [`ClientConfig`] for every client this program makes (the daemon's consumer, `produce`, `tail`,
//! `check-config`).

use std::path::{Path, PathBuf};

use rdkafka::config::ClientConfig;

use super::check::Checker;
pub use super::choices::{AddressFamily, EndpointAlgorithm, OffsetReset, SaslMechanism, SecurityProtocol};
pub(crate) use super::redact::is_secret_property;
pub use super::redact::{masked, printable_error, Secret};
use super::setting::Setting;

/// The assignors of `partition.assignment.strategy` that this exporter offers, by librdkafka's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignor {
    Range,
    RoundRobin,
    CooperativeSticky,
}

impl Assignor {
    const ALL: [Assignor; 3] = [Assignor::Range, Assignor::RoundRobin, Assignor::CooperativeSticky];

    pub fn as_str(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Cooperative (incremental) rebalancing: a member gives up only the partitions that move.
    pub fn cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }
}

/// Everything the Kafka side needs.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    pub auto_offset_reset: OffsetReset,
    pub session_timeout_ms: u32,
    /// `partition.assignment.strategy`, in the operator's order: eager assignors, or cooperative-sticky alone.
    pub assignment_strategy: Vec<Assignor>,
    pub security_protocol: SecurityProtocol,
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
    pub ssl_ca_location: Option<PathBuf>,
    pub ssl_certificate_location: Option<PathBuf>,
    pub ssl_key_location: Option<PathBuf>,
    pub ssl_key_password: Option<Secret>,
    pub ssl_endpoint_algorithm: EndpointAlgorithm,
    pub broker_address_family: AddressFamily,
    pub extra_properties: Vec<(String, String)>,
}

/// An rdkafka configuration holding `props`, in order (a later property overrides an earlier one).
fn client_config_of(props: &[(String, String)]) -> ClientConfig {
    let mut cc = ClientConfig::new();
    for (k, v) in props {
        cc.set(k, v);
    }
    cc
}

impl KafkaConfig {
    /// librdkafka properties shared by every client this program makes (consumer, producer, `tail`).
    pub fn client_properties(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), self.brokers.clone()),
            ("broker.address.family".into(), self.broker_address_family.label().into()),
            ("security.protocol".into(), self.security_protocol.as_str().into()),
        ];
        if self.security_protocol.uses_sasl() {
            if let Some(m) = &self.sasl_mechanism {
                p.push(("sasl.mechanism".into(), m.label().into()));
            }
            if let Some(u) = &self.sasl_username {
                p.push(("sasl.username".into(), u.clone()));
            }
            if let Some(pw) = &self.sasl_password {
                p.push(("sasl.password".into(), pw.expose().to_string()));
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
                p.push(("ssl.key.password".into(), v.expose().to_string()));
            }
            p.push(("ssl.endpoint.identification.algorithm".into(), self.ssl_endpoint_algorithm.label().into()));
        }
        p
    }

    /// Properties of the exporter's group consumer: the client ones plus consumer behaviour, then the
    /// operator's extra properties (so they can override anything).
    pub fn consumer_properties(&self) -> Vec<(String, String)> {
        let mut p = self.client_properties();
        let reset = self.auto_offset_reset.label();
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
        let strategy: Vec<&str> = self.assignment_strategy.iter().map(|a| a.as_str()).collect();
        p.push(("partition.assignment.strategy".into(), strategy.join(",")));
        p.extend(self.extra_properties.iter().cloned());
        p
    }

    /// The rdkafka configuration of a client that joins no group (`produce`, `tail`): [`Self::client_properties`];
    /// the caller adds what its role needs.
    pub fn client_config(&self) -> ClientConfig {
        client_config_of(&self.client_properties())
    }

    /// The rdkafka configuration of the exporter's group consumer: [`Self::consumer_properties`].
    pub fn consumer_config(&self) -> ClientConfig {
        client_config_of(&self.consumer_properties())
    }

    pub(crate) fn check(c: &mut Checker<'_>) -> KafkaConfig {
        let brokers = c.non_empty_string(Setting::KafkaBrokers);
        let topic = c.non_empty_string(Setting::KafkaTopic);
        let group_id = c.non_empty_string(Setting::KafkaGroupId);
        let auto_offset_reset = c.choice(Setting::KafkaAutoOffsetReset).unwrap_or(OffsetReset::Earliest);
        let session_timeout_ms = c.integer::<u32>(Setting::KafkaSessionTimeoutMs);
        let assignment_strategy = c.parsed(
            Setting::KafkaPartitionAssignmentStrategy,
            parse_assignment_strategy,
            vec![Assignor::Range, Assignor::RoundRobin],
        );
        let extra_properties = extra_properties(c);
        let (security_protocol, sasl_mechanism, sasl_username, sasl_password) = sasl(c);
        let ssl = Ssl::check(c, security_protocol);
        let broker_address_family =
            c.choice(Setting::KafkaBrokerAddressFamily).unwrap_or_else(|| auto_address_family(&brokers));
        KafkaConfig {
            brokers,
            topic,
            group_id,
            auto_offset_reset,
            session_timeout_ms,
            assignment_strategy,
            security_protocol,
            sasl_mechanism,
            sasl_username,
            sasl_password,
            ssl_ca_location: ssl.ca_location,
            ssl_certificate_location: ssl.certificate_location,
            ssl_key_location: ssl.key_location,
            ssl_key_password: ssl.key_password,
            ssl_endpoint_algorithm: ssl.endpoint_algorithm,
            broker_address_family,
            extra_properties,
        }
    }
}

/// `KAFKA_PARTITION_ASSIGNMENT_STRATEGY`: comma-separated assignor names, each once. librdkafka cannot mix
/// the eager and the cooperative protocol, so `cooperative-sticky` stands alone.
fn parse_assignment_strategy(v: &str) -> Result<Vec<Assignor>, String> {
    let names: Vec<&str> = Assignor::ALL.iter().map(|a| a.as_str()).collect();
    let allowed = format!(
        "expected comma-separated assignors from: {} (cooperative-sticky alone: librdkafka cannot mix the eager \
         and cooperative protocols)",
        names.join(", ")
    );
    let mut out: Vec<Assignor> = Vec::new();
    for item in v.split(',').map(str::trim) {
        let a = Assignor::ALL.iter().copied().find(|a| a.as_str().eq_ignore_ascii_case(item));
        match a {
            Some(a) if !out.contains(&a) => out.push(a),
            _ => return Err(allowed),
        }
    }
    if out.len() > 1 && out.iter().any(|a| a.cooperative()) {
        return Err(allowed);
    }
    Ok(out)
}

/// `KAFKA_CONSUMER_PROPERTIES`: comma-separated `key=value` pairs.
fn extra_properties(c: &mut Checker<'_>) -> Vec<(String, String)> {
    let Some(s) = c.explicit(Setting::KafkaConsumerProperties) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once('=') {
            Some((k, val)) if !k.trim().is_empty() => out.push((k.trim().to_string(), val.trim().to_string())),
            _ => {
                // Only the malformed item is shown: the rest may hold secrets.
                let shown = if is_secret_property(item) { "<redacted>" } else { item };
                c.fail(Setting::KafkaConsumerProperties, shown, "expected comma-separated key=value pairs");
            }
        }
    }
    out
}

/// The security protocol and the SASL mechanism and credentials (username and password come as a pair).
fn sasl(c: &mut Checker<'_>) -> (SecurityProtocol, Option<SaslMechanism>, Option<String>, Option<Secret>) {
    let security_protocol = c.choice(Setting::KafkaSecurityProtocol).unwrap_or(SecurityProtocol::Plaintext);
    let mut mechanism = c.choice(Setting::KafkaSaslMechanism);
    let username = c.explicit(Setting::KafkaSaslUsername);
    let password = c.explicit(Setting::KafkaSaslPassword);
    match (&username, &password) {
        (Some(u), None) => c.fail(Setting::KafkaSaslUsername, u, "KAFKA_SASL_PASSWORD must be set as well"),
        (None, Some(p)) => c.fail(Setting::KafkaSaslPassword, p, "KAFKA_SASL_USERNAME must be set as well"),
        _ => {}
    }
    if security_protocol.uses_sasl() {
        let m = *mechanism.get_or_insert(SaslMechanism::Plain);
        if m.needs_credentials() && username.is_none() && password.is_none() {
            let (p, _) = c.value(Setting::KafkaSecurityProtocol);
            c.fail(
                Setting::KafkaSecurityProtocol,
                &p,
                format!("SASL mechanism {m} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
            );
        }
    } else if username.is_some() || c.explicit(Setting::KafkaSaslMechanism).is_some() {
        c.warn(format!(
            "KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL={} does not use SASL; the SASL settings are ignored",
            security_protocol.as_str()
        ));
    }
    (security_protocol, mechanism, username, password.map(Secret::new))
}

/// The TLS settings of the Kafka clients.
struct Ssl {
    ca_location: Option<PathBuf>,
    certificate_location: Option<PathBuf>,
    key_location: Option<PathBuf>,
    key_password: Option<Secret>,
    endpoint_algorithm: EndpointAlgorithm,
}

impl Ssl {
    /// Files are checked only when the protocol uses TLS; otherwise setting them is a warning.
    fn check(c: &mut Checker<'_>, protocol: SecurityProtocol) -> Ssl {
        let ssl = protocol.uses_ssl();
        // librdkafka also accepts a CA directory or the word `probe` (search the system's usual places).
        let ca_location = match c.explicit(Setting::KafkaSslCaLocation) {
            Some(p) if p == "probe" || Path::new(&p).is_dir() => Some(PathBuf::from(p)),
            _ => c.path(Setting::KafkaSslCaLocation, ssl),
        };
        let certificate_location = c.path(Setting::KafkaSslCertificateLocation, ssl);
        let key_location = c.path(Setting::KafkaSslKeyLocation, ssl);
        let key_password = c.explicit(Setting::KafkaSslKeyPassword).map(Secret::new);
        match (&certificate_location, &key_location) {
            (Some(cert), None) => c.fail(
                Setting::KafkaSslCertificateLocation,
                &cert.display().to_string(),
                "KAFKA_SSL_KEY_LOCATION must be set as well",
            ),
            (None, Some(key)) => c.fail(
                Setting::KafkaSslKeyLocation,
                &key.display().to_string(),
                "KAFKA_SSL_CERTIFICATE_LOCATION must be set as well",
            ),
            _ => {}
        }
        if !ssl && (ca_location.is_some() || certificate_location.is_some() || key_location.is_some()) {
            c.warn(format!(
                "KAFKA_SSL_* is set but KAFKA_SECURITY_PROTOCOL={} does not use TLS; the SSL settings are ignored",
                protocol.as_str()
            ));
        }
        let endpoint_algorithm = match c.explicit(Setting::KafkaSslEndpointAlgorithm) {
            Some(s) if s.is_empty() => EndpointAlgorithm::None,
            _ => c.choice(Setting::KafkaSslEndpointAlgorithm).unwrap_or(EndpointAlgorithm::Https),
        };
        Ssl { ca_location, certificate_location, key_location, key_password, endpoint_algorithm }
    }
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
pub fn auto_address_family(brokers: &str) -> AddressFamily {
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
        (true, false) => AddressFamily::V4,
        (false, true) => AddressFamily::V6,
        _ => AddressFamily::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::testing::{errs, ok, raw};
    use crate::config::{Config, ConfigErrors};

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
    fn the_assignment_strategy_defaults_to_librdkafkas_and_cooperative_stands_alone() {
        let strategy = |c: &Config| {
            let p = c.kafka.consumer_properties();
            p.iter().find(|(k, _)| k == "partition.assignment.strategy").map(|(_, v)| v.clone())
        };
        assert_eq!(strategy(&ok(&[])).as_deref(), Some("range,roundrobin"));
        let c = ok(&[("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", " Cooperative-Sticky ")]);
        assert_eq!(c.kafka.assignment_strategy, vec![Assignor::CooperativeSticky]);
        assert_eq!(strategy(&c).as_deref(), Some("cooperative-sticky"));
        let c = ok(&[("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", "roundrobin, range")]);
        assert_eq!(strategy(&c).as_deref(), Some("roundrobin,range"));
        for bad in ["sticky", "range,range", "cooperative-sticky,range", "range,"] {
            let e = errs(&[("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", bad)]);
            assert_eq!(e.len(), 1, "{bad:?}");
            assert_eq!(
                e[0].to_string(),
                format!(
                    "KAFKA_PARTITION_ASSIGNMENT_STRATEGY (KAFKA_PARTITION_ASSIGNMENT_STRATEGY) = {bad:?}: expected \
                     comma-separated assignors from: range, roundrobin, cooperative-sticky (cooperative-sticky \
                     alone: librdkafka cannot mix the eager and cooperative protocols)"
                )
            );
        }
    }

    #[test]
    fn sasl_and_ssl_pairs_are_validated_and_secrets_never_printed() {
        let e = errs(&[("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"), ("KAFKA_SASL_PASSWORD", "hunter2")]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].setting.env(), "KAFKA_SASL_PASSWORD");
        let text = ConfigErrors(e).to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"));

        let e = errs(&[("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")]);
        assert!(e[0].allowed.contains("needs KAFKA_SASL_USERNAME"));

        let e = errs(&[("KAFKA_SECURITY_PROTOCOL", "ssl"), ("KAFKA_SSL_CERTIFICATE_LOCATION", "/nonexistent.pem")]);
        let names: Vec<_> = e.iter().map(|e| e.setting.env()).collect();
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
        let masked = masked(&p);
        assert!(masked.iter().all(|(_, v)| v != "s3cret"));
        let described = Config::describe(&raw(&[("KAFKA_SASL_PASSWORD", "s3cret")])).join("\n");
        assert!(described.contains("KAFKA_SASL_PASSWORD=*** (env)"));
        assert!(!described.contains("s3cret"));
    }

    #[test]
    fn debug_output_of_a_configuration_holds_no_secret() {
        let c = ok(&[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("KAFKA_SASL_USERNAME", "alice"),
            ("KAFKA_SASL_PASSWORD", "Zq-debug-sasl"),
            ("KAFKA_SSL_KEY_PASSWORD", "Zq-debug-key"),
        ]);
        assert_eq!(c.kafka.sasl_password.as_ref().map(Secret::expose), Some("Zq-debug-sasl"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("Zq-debug"), "{shown}");
        assert!(shown.contains("sasl_password: Some(Secret(***))"), "{shown}");
    }

    #[test]
    fn plaintext_does_not_send_sasl_or_ssl_properties() {
        let c = ok(&[("KAFKA_SASL_USERNAME", "a"), ("KAFKA_SASL_PASSWORD", "b")]);
        assert!(c.kafka.client_properties().iter().all(|(k, _)| !k.starts_with("sasl.") && !k.starts_with("ssl.")));
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn client_and_consumer_configs_hold_their_properties() {
        let c = ok(&[("KAFKA_BROKERS", "kafka:9092"), ("KAFKA_CONSUMER_PROPERTIES", "session.timeout.ms=6000")]);
        let client = c.kafka.client_config();
        assert_eq!(client.get("bootstrap.servers"), Some("kafka:9092"));
        assert_eq!(client.get("broker.address.family"), Some("any"));
        assert_eq!(client.get("group.id"), None, "a client that joins no group gets no consumer properties");
        let consumer = c.kafka.consumer_config();
        assert_eq!(consumer.get("bootstrap.servers"), Some("kafka:9092"));
        assert_eq!(consumer.get("group.id"), Some("prometheus-exporter"));
        assert_eq!(consumer.get("session.timeout.ms"), Some("6000"), "extra properties are applied last");
    }

    #[test]
    fn address_family_auto_detection() {
        assert_eq!(auto_address_family("localhost:9092"), AddressFamily::V4);
        assert_eq!(auto_address_family("LOCALHOST:9092"), AddressFamily::V4);
        assert_eq!(auto_address_family("127.0.0.1:9092,kafka:9092"), AddressFamily::V4);
        assert_eq!(auto_address_family("127.1.2.3:9092"), AddressFamily::V4);
        assert_eq!(auto_address_family("[::1]:9092"), AddressFamily::V6);
        assert_eq!(auto_address_family("::1"), AddressFamily::V6);
        assert_eq!(auto_address_family("kafka-1:9092,kafka-2:9092"), AddressFamily::Any);
        assert_eq!(auto_address_family("[2001:db8::1]:9092"), AddressFamily::Any);
        assert_eq!(auto_address_family("localhost:9092,[::1]:9093"), AddressFamily::Any);
        assert_eq!(ok(&[("KAFKA_BROKER_ADDRESS_FAMILY", "V6")]).kafka.broker_address_family, AddressFamily::V6);
        assert_eq!(errs(&[("KAFKA_BROKER_ADDRESS_FAMILY", "ipv4")])[0].setting.env(), "KAFKA_BROKER_ADDRESS_FAMILY");
    }

    #[test]
    fn extra_consumer_properties_are_applied_last() {
        let c = ok(&[("KAFKA_CONSUMER_PROPERTIES", "heartbeat.interval.ms=500, session.timeout.ms=6000")]);
        let p = c.kafka.consumer_properties();
        let last_session = p.iter().rev().find(|(k, _)| k == "session.timeout.ms").unwrap();
        assert_eq!(last_session.1, "6000");
        assert!(p.contains(&("heartbeat.interval.ms".to_string(), "500".to_string())));
        assert_eq!(errs(&[("KAFKA_CONSUMER_PROPERTIES", "novalue")])[0].setting.env(), "KAFKA_CONSUMER_PROPERTIES");
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
