//! The subcommands, each run as a process the way an operator would.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, http_request, Cluster, Exporter, Scrape, BIN};
use dashflow_prometheus_exporter::sim::generator::{Generator, Traffic};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).env_clear().envs(env.iter().copied()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn produce_json(c: &Cluster, extra: &[&str]) -> Value {
    let mut args = vec!["produce", "--brokers", &c.brokers, "--topic", &c.topic, "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args, &[]);
    assert_eq!(code, Some(0), "produce failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("summary is JSON ({e}): {out}"))
}

#[test]
fn demo_shows_every_kind_of_series_within_five_seconds() {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["demo", "--metrics-port", &port.to_string()])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let wanted = [
        "dashstream_quality_monitor_queries_total",
        "dashstream_quality_monitor_quality_score",
        "dashstream_query_latency_ms_count",
        "dashstream_latency_by_model_ms_count{model=\"gpt-4o\"}",
        "dashstream_queries_by_model_total{model=\"claude-3.5-sonnet\"}",
        "dashstream_turns_by_session_count",
        "dashstream_librarian_requests_total",
        "dashstream_librarian_request_duration_seconds_count",
    ];
    let mut last = Scrape::default();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(r) = http_request(addr, "GET", "/metrics", &[]) {
            last = Scrape::parse(&r.text());
            if wanted.iter().all(|w| last.get(w).is_some_and(|v| v > 0.0)) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let missing: Vec<_> = wanted.iter().filter(|w| !last.get(w).is_some_and(|v| v > 0.0)).collect();
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(missing.is_empty(), "after {:?} still zero or absent: {missing:?}\n{}", start.elapsed(), last.text);
    assert_eq!(status.code(), Some(0), "Ctrl-C stops the demo cleanly");
    assert!(out.contains(&format!("metrics:      http://127.0.0.1:{port}/metrics")), "{out}");
    assert!(out.contains(&format!("landing page: http://127.0.0.1:{port}/")), "{out}");
}

#[test]
fn exporter_counters_equal_the_produce_summary_per_label() {
    let c = Cluster::new("produce-exact", 3);
    let sum = produce_json(
        &c,
        &[
            "--rate",
            "0",
            "--count",
            "6000",
            "--seed",
            "77",
            "--bad-ratio",
            "0.1",
            "--zstd-ratio",
            "0.1",
            "--legacy-ratio",
            "0.1",
        ],
    );
    assert_eq!(sum["records"], 6000);
    let quality = sum["quality_events"].as_u64().unwrap();
    let bad: u64 = sum["bad"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    let alerts = sum["alerts"].as_u64().unwrap();
    assert_eq!(quality + bad + alerts, 6000);
    let monitor = sum["monitor_evaluations"].as_u64().unwrap();
    assert!(monitor > 800 && alerts > 100, "about 20% of the events are QualityMonitor's: {monitor}, {alerts} alerts");
    assert!(bad > 400, "about 10% bad: {bad}");
    let e = Exporter::start(&c, "g-produce", &[]);
    e.wait_value("dashstream_exporter_messages_received_total", 6000.0, WAIT);
    e.wait_value("dashstream_quality_monitor_queries_total", quality as f64, WAIT);
    let s = e.scrape();
    assert_eq!(s.v("dashstream_quality_monitor_queries_passed_total"), sum["passed"].as_f64().unwrap());
    assert_eq!(s.v("dashstream_quality_alerts_total"), alerts as f64);
    for issue in ["tool_results_ignored", "incomplete_coverage", "low_accuracy", "low_relevance", "low_completeness"] {
        let want = sum["issues"][issue].as_f64().unwrap();
        assert!(want > 0.0, "{issue}");
        assert_eq!(s.v(&format!("dashstream_quality_issues_total{{issue=\"{issue}\"}}")), want, "{issue}");
    }
    assert_eq!(s.v("dashstream_quality_issues_total{issue=\"other\"}"), 0.0);
    for cat in ["Simple", "Medium", "Complex", "Edge", "Unknown"] {
        let want = sum["failed_by_category"][cat].as_f64().unwrap_or(0.0);
        assert_eq!(
            s.v(&format!("dashstream_quality_monitor_queries_failed_total{{category=\"{cat}\"}}")),
            want,
            "{cat}"
        );
    }
    let by_model = sum["by_model"].as_object().unwrap();
    assert!(by_model.len() >= 15, "many model labels: {by_model:?}");
    for (model, n) in by_model {
        assert_eq!(
            s.v(&format!("dashstream_queries_by_model_total{{model=\"{model}\"}}")),
            n.as_f64().unwrap(),
            "{model}"
        );
    }
    assert_eq!(s.sum("dashstream_queries_by_model_total"), (quality - monitor) as f64, "QualityMonitor names no model");
    assert_eq!(s.v("dashstream_librarian_requests_total"), sum["librarian"].as_f64().unwrap());
    assert_eq!(s.v("dashstream_query_latency_ms_sum"), sum["latency_ms_sum"].as_f64().unwrap());
    let b = &sum["bad"];
    let n = |k: &str| b[k].as_f64().unwrap_or(0.0);
    for reason in ["empty", "payload_too_large", "decompressed_too_large", "decompress", "invalid_protobuf"] {
        assert_eq!(
            s.v(&format!("dashstream_exporter_messages_failed_total{{error_type=\"{reason}\"}}")),
            n(reason),
            "{reason}"
        );
    }
    assert!(n("payload_too_large") > 0.0 || b.get("payload_too_large").is_none());
    assert_eq!(s.v("dashstream_exporter_kafka_payload_missing_total"), n("payload_missing"));
    assert_eq!(s.v("dashstream_exporter_messages_wrong_scope_total"), n("wrong_scope"));
    assert_eq!(
        s.v("dashstream_exporter_messages_other_type_total{message_type=\"token_chunk\"}"),
        n("other_type:token_chunk")
    );
    assert_eq!(s.v("dashstream_exporter_messages_other_type_total{message_type=\"empty\"}"), n("other_type:empty"));
}

#[test]
fn payload_too_large_is_produced_when_the_limit_allows() {
    let c = Cluster::new("produce-large", 1);
    let sum = {
        let (code, out, err) = run(
            &[
                "produce",
                "--brokers",
                &c.brokers,
                "--topic",
                &c.topic,
                "--json",
                "--count",
                "300",
                "--bad-ratio",
                "1",
                "--rate",
                "0",
            ],
            &[("DASHSTREAM_MAX_PAYLOAD_BYTES", "2048")],
        );
        assert_eq!(code, Some(0), "{err}");
        serde_json::from_str::<Value>(out.trim()).unwrap()
    };
    let too_large = sum["bad"]["payload_too_large"].as_f64().unwrap();
    assert!(too_large > 0.0);
    let e = Exporter::start(&c, "g-large", &[("DASHSTREAM_MAX_PAYLOAD_BYTES", "2048")]);
    e.wait_value("dashstream_exporter_messages_received_total", 300.0, WAIT);
    assert_eq!(e.scrape().v("dashstream_exporter_messages_failed_total{error_type=\"payload_too_large\"}"), too_large);
}

#[test]
fn same_seed_same_summary_and_text_summary() {
    let c = Cluster::new("produce-seed", 2);
    let a = produce_json(&c, &["--count", "500", "--seed", "5", "--rate", "0"]);
    let b = produce_json(&c, &["--count", "500", "--seed", "5", "--rate", "0"]);
    for k in ["passed", "failed_by_category", "by_model", "librarian", "latency_ms_sum", "framing"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    let (code, out, _) =
        run(&["produce", "--brokers", &c.brokers, "--topic", &c.topic, "--count", "50", "--rate", "0"], &[]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("sent 50 records in "), "{out}");
    assert!(out.contains("by model (normalized label):"), "{out}");
}

#[test]
fn tail_decodes_what_produce_sent() {
    let c = Cluster::new("tail", 1);
    produce_json(
        &c,
        &[
            "--count",
            "5",
            "--seed",
            "11",
            "--rate",
            "0",
            "--zstd-ratio",
            "0.4",
            "--legacy-ratio",
            "0.3",
            "--monitor-ratio",
            "0",
        ],
    );
    let (code, out, err) =
        run(&["tail", "--brokers", &c.brokers, "--topic", &c.topic, "--from-beginning", "--limit", "5", "--json"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "{out}");
    let mut g = Generator::new(Traffic { seed: 11, zstd_ratio: 0.4, legacy_ratio: 0.3, ..Traffic::default() });
    for (i, v) in lines.iter().enumerate() {
        let want = g.next_record();
        assert_eq!(v["kind"], "quality");
        assert_eq!(v["partition"], 0);
        assert_eq!(v["offset"], i as u64);
        let e = &v["event"];
        assert_eq!(e["query_id"], want.query_id.clone().unwrap());
        assert_eq!(e["session_id"], want.thread_id.clone().unwrap());
        assert_eq!(e["model"], want.model.clone().unwrap());
        assert_eq!(e["quality_score"].as_f64(), want.quality_score);
        assert_eq!(e["latency_ms"].as_i64(), want.latency_ms);
        assert_eq!(e["passed"].as_bool(), want.passed);
        assert_eq!(e["turn_number"].as_i64(), want.turn_number);
    }
    // Plain text, one partition, and the consumer group of the exporter is untouched.
    let (code, out, _) = run(
        &["tail", "--brokers", &c.brokers, "--topic", &c.topic, "--from-beginning", "--limit", "2", "--partition", "0"],
        &[],
    );
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 2);
    assert!(out.starts_with("partition=0 offset=0 quality query_id=\"q-1\""), "{out}");
    let (code, _, err) =
        run(&["tail", "--brokers", &c.brokers, "--topic", &c.topic, "--partition", "7", "--limit", "1"], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("has no partition 7"), "{err}");
}

#[test]
fn tail_shows_the_precise_error_and_a_hex_preview() {
    let c = Cluster::new("tail-bad", 1);
    c.produce(&[(0, Some(vec![0x00, 0xff, 0xff])), (0, Some(vec![0x01, 1, 2, 3])), (0, None)]);
    let (code, out, _) =
        run(&["tail", "--brokers", &c.brokers, "--topic", &c.topic, "--from-beginning", "--limit", "3"], &[]);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("partition=0 offset=0 error invalid_protobuf: "), "{out}");
    assert!(lines[0].ends_with("(3 bytes: 00 ff ff)"), "{out}");
    assert!(lines[1].starts_with("partition=0 offset=1 error decompress: "), "{out}");
    assert_eq!(lines[2], "partition=0 offset=2 no payload");
}

#[test]
fn healthcheck_exit_codes() {
    let c = Cluster::new("health", 1);
    let e = Exporter::start(&c, "g-health", &[]);
    e.wait_until(WAIT, "ready", |e| e.get("/-/ready").map(|r| r.status == 200).unwrap_or(false));
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", e.port);
    assert_eq!(run(&["healthcheck", "--url", &url("/-/ready")], &[]).0, Some(0));
    assert_eq!(
        run(&["healthcheck"], &[("METRICS_PORT", &e.port.to_string())]).0,
        Some(0),
        "default URL uses METRICS_PORT"
    );
    let (code, _, err) = run(&["healthcheck", "--url", &url("/nope")], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("answered HTTP 404"), "{err}");
    let dead = format!("http://127.0.0.1:{}/-/ready", free_port());
    let (code, _, err) = run(&["healthcheck", "--url", &dead, "--timeout", "1"], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Connection refused"), "{err}");
    // A listener that never answers: fails after the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let start = Instant::now();
    let (code, _, _) =
        run(&["healthcheck", "--url", &format!("http://{}/", silent.local_addr().unwrap()), "--timeout", "1"], &[]);
    assert_eq!(code, Some(1));
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(run(&["healthcheck", "--url", "ftp://x"], &[]).0, Some(1));
}

#[test]
fn check_config_good_and_bad() {
    let (code, out, err) = run(
        &["check-config", "--metrics-port", "9300"],
        &[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("KAFKA_SASL_USERNAME", "u"),
            ("KAFKA_SASL_PASSWORD", "p4ssw0rd-secret"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("METRICS_PORT=9300 (flag)"), "{out}");
    assert!(out.contains("KAFKA_SASL_PASSWORD=*** (env)"), "{out}");
    assert!(out.contains("KAFKA_BROKERS=localhost:9092 (default)"), "{out}");
    assert!(out.contains("  sasl.password=***"), "{out}");
    assert!(out.contains("  sasl.mechanism=PLAIN"), "{out}");
    assert!(out.trim_end().ends_with("configuration OK"), "{out}");
    assert!(!out.contains("p4ssw0rd-secret") && !err.contains("p4ssw0rd-secret"));

    let (code, out, err) =
        run(&["check-config"], &[("METRICS_PORT", "70000"), ("KAFKA_SASL_PASSWORD", "p4ssw0rd-secret")]);
    assert_eq!(code, Some(2));
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("METRICS_PORT (METRICS_PORT) = \"70000\""), "{err}");
    assert!(!err.contains("p4ssw0rd-secret"), "{err}");
    let (code, _, err) = run(&["check-config"], &[("KAFKA_CONSUMER_PROPERTIES", "fetch.wait.max.ms=banana")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("fetch.wait.max.ms"), "{err}");
}

#[test]
fn every_subcommand_has_help() {
    for (sub, must) in [
        ("demo", "--rate"),
        ("produce", "--bad-ratio"),
        ("tail", "--from-beginning"),
        ("healthcheck", "--url"),
        ("check-config", "--kafka-brokers"),
        ("mock-broker", "--partitions"),
    ] {
        let (code, out, _) = run(&[sub, "--help"], &[]);
        assert_eq!(code, Some(0), "{sub}");
        assert!(out.contains(must), "{sub} --help lacks {must}:\n{out}");
    }
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, Some(0));
    for sub in ["demo", "produce", "tail", "healthcheck", "check-config"] {
        assert!(out.contains(sub), "{sub} listed");
    }
}

#[test]
fn mock_broker_runs_as_a_separate_process() {
    let mut child = Command::new(BIN)
        .args(["mock-broker", "--topic", "sep", "--partitions", "4"])
        .env_clear()
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let brokers = line.trim().to_string();
    assert!(brokers.starts_with("127.0.0.1:"), "{brokers}");
    let (code, out, err) = run(
        &["produce", "--brokers", &brokers, "--topic", "sep", "--count", "100", "--rate", "0", "--monitor-ratio", "0"],
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("sent 100 records"));
    let e = Exporter::start_with(&brokers, "sep", "g-sep", &[]);
    e.wait_value("dashstream_quality_monitor_queries_total", 100.0, WAIT);
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
