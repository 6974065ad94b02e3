//! The closed choices of the settings and flags, each an enum written once with its words (`label_enum!`):
//! the settings table ([`super::setting`]) takes its list of allowed words from here, the validators parse
//! into the enum (without regard to case, in one place: [`super::check::Checker::choice`]), and the rest of
//! the program matches on variants, never on strings.

use crate::table::label_enum;

label_enum! {
    /// Where a new consumer group starts reading (`KAFKA_AUTO_OFFSET_RESET`, librdkafka's `auto.offset.reset`).
    pub enum OffsetReset {
        Earliest => "earliest",
        Latest => "latest",
    }
}

label_enum! {
    /// How the Kafka clients connect (`KAFKA_SECURITY_PROTOCOL`, librdkafka's `security.protocol`).
    pub enum SecurityProtocol {
        Plaintext => "plaintext",
        Ssl => "ssl",
        SaslPlaintext => "sasl_plaintext",
        SaslSsl => "sasl_ssl",
    }
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        self.label()
    }
    pub fn uses_ssl(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

label_enum! {
    /// The SASL mechanism (`KAFKA_SASL_MECHANISM`, librdkafka's `sasl.mechanism`).
    pub enum SaslMechanism {
        Plain => "PLAIN",
        ScramSha256 => "SCRAM-SHA-256",
        ScramSha512 => "SCRAM-SHA-512",
        Gssapi => "GSSAPI",
        OauthBearer => "OAUTHBEARER",
    }
}

impl SaslMechanism {
    /// The mechanisms that log in with `KAFKA_SASL_USERNAME` and `KAFKA_SASL_PASSWORD`.
    pub fn needs_credentials(self) -> bool {
        matches!(self, SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512)
    }
}

label_enum! {
    /// Broker host name verification (`KAFKA_SSL_ENDPOINT_ALGORITHM`, librdkafka's
    /// `ssl.endpoint.identification.algorithm`). An empty value means `none`, as in the original exporter.
    pub enum EndpointAlgorithm {
        Https => "https",
        None => "none",
    }
}

label_enum! {
    /// The address family of broker connections (`KAFKA_BROKER_ADDRESS_FAMILY`, librdkafka's
    /// `broker.address.family`).
    pub enum AddressFamily {
        Any => "any",
        V4 => "v4",
        V6 => "v6",
    }
}

label_enum! {
    /// How `produce` keys records (`--partitions-key`), and so spreads them over partitions.
    pub enum KeyMode {
        /// The session (thread) id, as DashFlow producers do: a session stays on one partition.
        Session => "session",
        /// A random key per record: even spread.
        Random => "random",
        /// No key: librdkafka's partitioner decides.
        None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse_without_regard_to_case_and_nothing_else_parses() {
        assert_eq!(SecurityProtocol::parse_ignore_case(" SASL_SSL "), Some(SecurityProtocol::SaslSsl));
        assert_eq!(SaslMechanism::parse_ignore_case("scram-sha-512"), Some(SaslMechanism::ScramSha512));
        assert_eq!(AddressFamily::parse_ignore_case("V6"), Some(AddressFamily::V6));
        assert_eq!(OffsetReset::parse_ignore_case("Latest"), Some(OffsetReset::Latest));
        assert_eq!(EndpointAlgorithm::parse_ignore_case("NONE"), Some(EndpointAlgorithm::None));
        assert_eq!(KeyMode::parse_ignore_case("random"), Some(KeyMode::Random));
        assert_eq!(SecurityProtocol::parse_ignore_case("tls"), None);
        assert_eq!(SaslMechanism::parse_ignore_case("SCRAM"), None);
        assert_eq!(AddressFamily::parse_ignore_case(""), None);
        assert_eq!(SecurityProtocol::LABELS, ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]);
    }
}
