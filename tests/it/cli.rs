//! The binary's command line and configuration errors, run as an operator would.

use std::collections::BTreeSet;
use std::process::Command;

use dashflow_prometheus_exporter::config::Setting;

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

/// The flags a `--help` text lists (the first `--name` of each option line).
fn listed_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("-h, ").or_else(|| line.strip_prefix("-V, ")).unwrap_or(line);
            let name = line.strip_prefix("--")?.split(|c: char| c.is_whitespace() || c == '<').next()?;
            Some(format!("--{name}"))
        })
        .collect()
}

fn flags(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn each_command_lists_exactly_the_flags_it_reads() {
    let every_setting: BTreeSet<String> = Setting::ALL
        .iter()
        .flat_map(|s| std::iter::once(s.flag()).chain(s.file_flag()))
        .map(|f| format!("--{f}"))
        .collect();
    assert!(
        every_setting.contains("--kafka-sasl-password-file") && every_setting.contains("--kafka-ssl-key-password-file")
    );
    let kafka_client = flags(&[
        "--brokers",
        "--topic",
        "--kafka-security-protocol",
        "--kafka-sasl-mechanism",
        "--kafka-sasl-username",
        "--kafka-sasl-password",
        "--kafka-sasl-password-file",
        "--kafka-ssl-ca-location",
        "--kafka-ssl-certificate-location",
        "--kafka-ssl-key-location",
        "--kafka-ssl-key-password",
        "--kafka-ssl-key-password-file",
        "--kafka-ssl-endpoint-algorithm",
        "--kafka-broker-address-family",
        "--dashstream-max-payload-bytes",
        "--log-level",
    ]);
    let produce = flags(&[
        "--rate",
        "--count",
        "--seed",
        "--partitions-key",
        "--pass-rate",
        "--zstd-ratio",
        "--legacy-ratio",
        "--bad-ratio",
        "--sessions",
        "--monitor-ratio",
        "--linger-ms",
        "--timestamps-from",
        "--timestamps-span",
        "--json",
        "--help",
    ]);
    let tail = flags(&["--from-beginning", "--tail", "--limit", "--partition", "--json", "--help"]);
    let cases: [(&[&str], BTreeSet<String>); 7] = [
        (&["--help"], &every_setting | &flags(&["--help", "--version"])),
        (&["demo", "--help"], &every_setting | &flags(&["--rate", "--partitions", "--seed", "--help"])),
        (&["check-config", "--help"], &every_setting | &flags(&["--help"])),
        (&["produce", "--help"], &kafka_client | &produce),
        (&["tail", "--help"], &kafka_client | &tail),
        (
            &["healthcheck", "--help"],
            flags(&["--url", "--timeout", "--web.config.file", "--ca-file", "--user", "--password-file", "--help"]),
        ),
        (&["mock-broker", "--help"], flags(&["--topic", "--partitions", "--brokers", "--help"])),
    ];
    for (args, want) in cases {
        let (code, out, err) = run(args, &[]);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        let got = listed_flags(&out);
        assert_eq!(got, want, "{args:?} lists {:?} too many, {:?} missing:\n{out}", &got - &want, &want - &got);
    }
    let (_, out, _) = run(&["mock-broker", "--help"], &[]);
    assert!(!out.contains("--metrics-port") && !out.contains("--kafka-brokers"), "{out}");
    let (_, out, _) = run(&["produce", "--help"], &[]);
    assert!(out.contains("--kafka-security-protocol") && !out.contains("--metrics-port"), "{out}");
}

#[test]
fn a_flag_the_command_does_not_read_is_a_usage_error() {
    for args in [
        &["mock-broker", "--metrics-port", "1"][..],
        &["healthcheck", "--kafka-brokers", "x"],
        &["produce", "--kafka-consumer-properties", "a=b"],
        &["tail", "--prometheus-retry-buckets", "1"],
        &["--metrics-port", "1", "check-config"],
    ] {
        let (code, _, err) = run(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("error:"), "{args:?}: {err}");
    }
}

#[test]
fn remote_write_configuration_errors_exit_2_naming_the_variable() {
    for (env, expect) in [
        (
            vec![("REMOTE_WRITE_URL", "prometheus:9090/api/v1/write")],
            "REMOTE_WRITE_URL (REMOTE_WRITE_URL) = \"prometheus:9090/api/v1/write\": expected an http:// or https:// URL",
        ),
        (
            vec![("REMOTE_WRITE_URL", "http://h/api/v1/write"), ("REMOTE_WRITE_INTERVAL_SECS", "0")],
            "REMOTE_WRITE_INTERVAL_SECS (REMOTE_WRITE_INTERVAL_SECS) = \"0\": expected a whole number from 1 to 3600",
        ),
        (
            vec![("REMOTE_WRITE_URL", "http://h/api/v1/write"), ("REMOTE_WRITE_BEARER_TOKEN_FILE", "/nonexistent/token")],
            "REMOTE_WRITE_BEARER_TOKEN_FILE (REMOTE_WRITE_BEARER_TOKEN_FILE) = \"/nonexistent/token\": cannot read the file: No such file or directory (os error 2)",
        ),
    ] {
        let (code, _, err) = run(&[], &env);
        assert_eq!(code, Some(2), "{env:?}: {err}");
        assert!(err.contains(expect), "{env:?}: {err}");
    }
    let (code, _, err) = run(&["--remote-write.url", "http://h:99999/w"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("REMOTE_WRITE_URL (--remote-write.url) = \"http://h:99999/w\": expected a port from 1 to 65535"),
        "{err}"
    );
}

#[test]
fn check_config_shows_remote_write_with_secrets_masked() {
    let dir = std::env::temp_dir().join(format!("dfe-cli-rw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, "Zq-rw-password\n").unwrap();
    let pw = pw.to_str().unwrap();
    let (code, out, err) = run(
        &["check-config", "--remote-write.url", "https://mimir.example/api/v1/push"],
        &[
            ("REMOTE_WRITE_BASIC_AUTH_USERNAME", "edge"),
            ("REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE", pw),
            ("REMOTE_WRITE_INSTANCE", "box-1"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("REMOTE_WRITE_URL=https://mimir.example/api/v1/push (flag)"), "{out}");
    assert!(
        out.contains(&format!(
            "REMOTE_WRITE_BASIC_AUTH_PASSWORD=*** (file REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE={pw})"
        )),
        "{out}"
    );
    assert!(out.contains("REMOTE_WRITE_INTERVAL_SECS=15 (default)"), "{out}");
    assert!(
        out.contains("remote write to https://mimir.example/api/v1/push every 15s, labels {job=dashstream-quality,instance=box-1}, tls on, auth basic"),
        "{out}"
    );
    assert!(!out.contains("Zq-rw") && !err.contains("Zq-rw"));
    let (code, out, _) = run(&["check-config"], &[]);
    assert_eq!(code, Some(0));
    assert!(out.contains("remote write off (REMOTE_WRITE_URL unset)"), "{out}");
}
