//! The binary's command line and configuration errors, run as an operator would.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dashflow-prometheus-exporter");

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).env_clear().envs(env.iter().copied()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_configuration_exits_2_naming_every_problem() {
    let (code, _, err) = run(
        &["--kafka-auto-offset-reset", "newest"],
        &[("METRICS_PORT", "abc"), ("PROMETHEUS_RETRY_BUCKETS", "3,2"), ("KAFKA_SASL_PASSWORD", "hunter2")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid configuration (4 problems)"), "{err}");
    assert!(err.contains("METRICS_PORT (METRICS_PORT) = \"abc\": expected a whole number from 0 to 65535"), "{err}");
    assert!(
        err.contains(
            "KAFKA_AUTO_OFFSET_RESET (--kafka-auto-offset-reset) = \"newest\": expected one of: earliest, latest"
        ),
        "{err}"
    );
    assert!(err.contains("PROMETHEUS_RETRY_BUCKETS (PROMETHEUS_RETRY_BUCKETS) = \"3,2\""), "{err}");
    assert!(
        err.contains("KAFKA_SASL_PASSWORD (KAFKA_SASL_PASSWORD) = <redacted>: KAFKA_SASL_USERNAME must be set as well"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn a_librdkafka_property_it_refuses_exits_2() {
    let (code, _, err) = run(&[], &[("KAFKA_CONSUMER_PROPERTIES", "no.such.property=1"), ("METRICS_PORT", "0")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no.such.property"), "{err}");
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, Some(0));
    for flag in
        ["--kafka-brokers", "--metrics-port", "--dashstream-max-payload-bytes", "--log-level", "[env: KAFKA_TOPIC]"]
    {
        assert!(out.contains(flag), "{flag} in --help:\n{out}");
    }
    assert!(out.contains("demo"));
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), format!("dashflow-prometheus-exporter {}", env!("CARGO_PKG_VERSION")));
    let (code, out, _) = run(&["demo", "--help"], &[]);
    assert_eq!(code, Some(0));
    assert!(out.contains("--rate") && out.contains("--partitions"));
    let (code, _, err) = run(&["--no-such-flag"], &[]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let (code, _, err) = run(&[], &[("METRICS_BIND_IP", "127.0.0.1"), ("METRICS_PORT", &port)]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{err}");
}
