//! What of the Kafka settings must never be printed: secret values ([`Secret`]), librdkafka's secret
//! properties ([`is_secret_property`]) and their values in librdkafka's error texts ([`printable_error`]).

/// A secret value (a password): its `Debug` shows `***`, so printing a configuration (a log line, a panic
/// message, `{:?}` anywhere) cannot reveal it; [`Secret::expose`] is the one way to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for librdkafka.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// librdkafka property names whose values must never be printed.
pub(crate) fn is_secret_property(key: &str) -> bool {
    let k = key.trim().to_ascii_lowercase();
    SENSITIVE_PROPERTIES.contains(&k.as_str())
        || [".password", ".pem", ".secret", ".passphrase"].iter().any(|end| k.ends_with(end))
        || ["password", "secret"].iter().any(|word| k.contains(word))
}

/// A property list with secret values replaced, for logs.
pub fn masked(props: &[(String, String)]) -> Vec<(String, String)> {
    props.iter().map(|(k, v)| (k.clone(), if is_secret_property(k) { "***".into() } else { v.clone() })).collect()
}

/// The properties librdkafka itself marks sensitive (`_RK_SENSITIVE` in `rdkafka_conf.c`, 2.12) and redacts
/// from its own dumps, but for `sasl.username`: a name, not a secret, which `check-config` shows anyway as
/// `KAFKA_SASL_USERNAME` and an operator needs to see when a login fails. `is_secret_property` also masks
/// anything named like a password, key or secret.
const SENSITIVE_PROPERTIES: [&str; 12] = [
    "ssl.key.location",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl_key",
    "ssl.ca.pem",
    "ssl.keystore.password",
    "sasl.password",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
];

/// A Kafka client error as it may be printed: rust-rdkafka's text of a refused property ends with the value
/// (and librdkafka's own description may quote it), so for a secret property the value is masked.
pub fn printable_error(e: &rdkafka::error::KafkaError) -> String {
    match e {
        rdkafka::error::KafkaError::ClientConfig(_, desc, key, value) if is_secret_property(key) => {
            let desc = if value.is_empty() { desc.clone() } else { desc.replace(value.as_str(), "***") };
            format!("Client config error: {desc} {key} ***")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafkas_sensitive_properties_are_masked_and_so_are_their_values_in_errors() {
        for k in SENSITIVE_PROPERTIES {
            assert!(is_secret_property(k), "{k}");
        }
        for k in ["SSL.KEY.PEM", "sasl.oauthbearer.client.secret", "ssl.truststore.password", "x.passphrase"] {
            assert!(is_secret_property(k), "{k}");
        }
        for k in ["bootstrap.servers", "ssl.certificate.location", "client.id", "fetch.max.bytes"] {
            assert!(!is_secret_property(k), "{k}");
        }
        let key = "-----BEGIN PRIVATE KEY-----abc";
        let masked = masked(&[("ssl.key.pem".into(), key.into()), ("client.id".into(), "me".into())]);
        assert_eq!(masked, [("ssl.key.pem".to_string(), "***".to_string()), ("client.id".into(), "me".into())]);
        // A property librdkafka refuses: rust-rdkafka's text ends with the value; ours masks it, also where
        // librdkafka's description quotes it.
        // librdkafka built without libcurl (as here) refuses OIDC's client secret, as the issue saw.
        let Err(refused) = rdkafka::config::ClientConfig::new()
            .set("sasl.oauthbearer.client.secret", "hunter2-value")
            .create_native_config()
        else {
            panic!("librdkafka accepted sasl.oauthbearer.client.secret");
        };
        assert!(refused.to_string().contains("hunter2-value"), "rust-rdkafka's own text: {refused}");
        let plain = rdkafka::error::KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"s3cr3t\" for configuration property \"sasl.password\"".into(),
            "sasl.password".into(),
            "s3cr3t".into(),
        );
        assert!(plain.to_string().contains("s3cr3t"), "rust-rdkafka's own text shows it");
        assert_eq!(
            printable_error(&plain),
            "Client config error: Invalid value \"***\" for configuration property \"sasl.password\" sasl.password ***"
        );
        let not_secret = rdkafka::error::KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
            "No such configuration property: \"fetch.maxx\"".into(),
            "fetch.maxx".into(),
            "7".into(),
        );
        assert_eq!(printable_error(&not_secret), not_secret.to_string(), "others as rust-rdkafka says them");
        assert!(!printable_error(&refused).contains("hunter2"), "{}", printable_error(&refused));
    }
}
