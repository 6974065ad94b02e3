//! What each DashFlow producer writes (tests/data/dashflow: records encoded by the official protobuf runtime from
//! DashFlow's own `.proto`, see its `regenerate`) decodes as specified, and yields exact counts and gauge values
//! through the real binary and librdkafka's mock cluster: QualityMonitor's evaluations (with and without issues)
//! and its LOW_QUALITY alerts, DashStreamCallback's events and `send_test_quality_metrics`' events, mixed on one
//! topic, with PROMETHEUS_QUALITY_PASS_THRESHOLD off and on.

use std::process::Command;
use std::time::Duration;

use crate::common::{Cluster, Exporter, BIN};
use dashflow_prometheus_exporter::decode::classify;
use dashflow_prometheus_exporter::decode::{Decoded, Decoder, OtherKind, DEFAULT_MAX_PAYLOAD};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dashflow");
const WAIT: Duration = Duration::from_secs(30);

fn record(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap()
}

#[test]
fn every_record_decodes_as_its_case_says() {
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    let mut checked = 0;
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let expect = &case["expect"];
        let bytes = record(file);
        let mut d = Decoder::new(DEFAULT_MAX_PAYLOAD);
        let got = d.decode(&bytes);
        // The reference path agrees on every record.
        let reference = Decoder::new(DEFAULT_MAX_PAYLOAD).message(&bytes);
        match (&got, &reference) {
            (Ok(ours), Ok(msg)) => assert_eq!(format!("{ours:?}"), format!("{:?}", classify(msg)), "{file}"),
            (Err(a), Err(b)) => assert_eq!(a.reason(), b.reason(), "{file}"),
            _ => panic!("{file}: {got:?} vs {reference:?}"),
        }
        match expect["kind"].as_str().unwrap() {
            "quality" => {
                let Ok(Decoded::Quality(v)) = got else { panic!("{file}: {got:?}") };
                for (k, want) in expect.as_object().unwrap() {
                    let ok = match k.as_str() {
                        "kind" => continue,
                        "accuracy" => v.accuracy == want.as_f64().unwrap(),
                        "relevance" => v.relevance == want.as_f64().unwrap(),
                        "completeness" => v.completeness == want.as_f64().unwrap(),
                        "quality_score" => v.quality_score == want.as_f64().unwrap(),
                        "passed" => v.passed == want.as_bool().unwrap(),
                        "issues_count" => u64::from(v.issues_count) == want.as_u64().unwrap(),
                        "issues" => {
                            let mut names: Vec<&str> = v.issues.iter().map(|i| i.label()).collect();
                            names.sort_unstable();
                            names == want.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect::<Vec<_>>()
                        }
                        other => panic!("{file}: field {other} is not checked by this test"),
                    };
                    assert!(ok, "{file}: {k} expected {want}, decoded {v:?}");
                    checked += 1;
                }
                assert_eq!(v.other_issues, 0, "{file}");
                assert!(v.anomalies.type_mismatch.is_empty() && v.anomalies.out_of_range.is_empty(), "{file}");
            }
            "quality_alert" => assert_eq!(got, Ok(Decoded::QualityAlert), "{file}"),
            "other_event" => assert_eq!(got, Ok(Decoded::Other(OtherKind::Event)), "{file}"),
            "error" => assert_eq!(got.unwrap_err().reason().label(), expect["error"].as_str().unwrap(), "{file}"),
            k => panic!("{file}: unknown kind {k}"),
        }
    }
    assert_eq!(checked, 3 * 6 + 4 * 7, "every listed field was compared");
}

/// Every record on one topic, the evaluation with issues and a high average last.
const MIXED: [&str; 10] = [
    "01-monitor-issues.bin",
    "02-monitor-alert.bin",
    "03-monitor-clean.bin",
    "05-callback.bin",
    "06-test-quality-1.bin",
    "07-test-quality-2.bin",
    "08-test-quality-3.bin",
    "09-node-start-event.bin",
    "10-monitor-alert-truncated.bin",
    "04-monitor-issues-high-average.bin",
];

fn run(files: &[&str], extra: &[(&str, &str)]) -> crate::common::Scrape {
    let c = Cluster::new("dashflow", 1);
    c.produce(&files.iter().map(|f| (0, Some(record(f)))).collect::<Vec<_>>());
    let e = Exporter::start(&c, "g-dashflow", extra);
    e.wait_value("dashstream_exporter_messages_received_total", files.len() as f64, WAIT);
    e.scrape()
}

#[track_caller]
fn check(s: &crate::common::Scrape, expect: &[(&str, f64)]) {
    for (series, want) in expect {
        assert_eq!(s.v(series), *want, "{series}");
    }
}

const ISSUES: [&str; 6] =
    ["tool_results_ignored", "incomplete_coverage", "low_accuracy", "low_relevance", "low_completeness", "other"];

fn issues(s: &crate::common::Scrape) -> Vec<f64> {
    ISSUES.iter().map(|i| s.v(&format!("dashstream_quality_issues_total{{issue=\"{i}\"}}"))).collect()
}

#[test]
fn every_producer_mixed_on_one_topic_judged_by_the_monitors_verdict() {
    let s = run(&MIXED, &[]);
    check(
        &s,
        &[
            ("dashstream_quality_monitor_queries_total", 7.0),
            // monitor-clean, callback, test-quality 1 and 2
            ("dashstream_quality_monitor_queries_passed_total", 4.0),
            // monitor-issues, test-quality-3, monitor-issues-high-average (no category tag: Unknown)
            ("dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}", 3.0),
            ("dashstream_quality_alerts_total", 1.0),
            ("dashstream_exporter_messages_other_type_total{message_type=\"event\"}", 1.0),
            ("dashstream_exporter_messages_failed_total{error_type=\"invalid_protobuf\"}", 1.0),
            ("dashstream_exporter_messages_missing_header_total", 0.0),
            // the last quality event's: monitor-issues-high-average
            ("dashstream_quality_accuracy", 1.0),
            ("dashstream_quality_relevance", 1.0),
            ("dashstream_quality_completeness", 0.625),
            ("dashstream_quality_monitor_quality_score", 0.875),
        ],
    );
    assert_eq!(s.sum("dashstream_quality_monitor_queries_failed_total"), 3.0);
    assert_eq!(issues(&s), [1.0, 2.0, 1.0, 0.0, 2.0, 0.0]);
    assert_eq!(s.sum("dashstream_exporter_messages_failed_total"), 1.0);
    assert_eq!(s.sum("dashstream_exporter_invalid_values_total"), 0.0);
    assert_eq!(s.sum("dashstream_exporter_metric_type_mismatch_total"), 0.0);
    assert_eq!(s.sum("dashstream_exporter_messages_other_type_total"), 1.0);
}

#[test]
fn the_pass_threshold_judges_monitor_evaluations_by_their_average() {
    // 0.6: the evaluation with issues but average 0.875 passes too; the one at 0.5 still fails.
    let s = run(&MIXED, &[("PROMETHEUS_QUALITY_PASS_THRESHOLD", "0.6")]);
    check(
        &s,
        &[
            ("dashstream_quality_monitor_queries_total", 7.0),
            ("dashstream_quality_monitor_queries_passed_total", 5.0),
            ("dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}", 2.0),
            ("dashstream_quality_alerts_total", 1.0),
        ],
    );
    assert_eq!(issues(&s), [1.0, 2.0, 1.0, 0.0, 2.0, 0.0], "issues count whatever judges");
    // 0.9: no monitor evaluation reaches it; `passed` still judges the others.
    let s = run(&MIXED, &[("PROMETHEUS_QUALITY_PASS_THRESHOLD", "0.9")]);
    check(
        &s,
        &[
            ("dashstream_quality_monitor_queries_passed_total", 3.0),
            ("dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}", 4.0),
        ],
    );
}

#[test]
fn each_producer_shape_alone() {
    let s = run(&["01-monitor-issues.bin"], &[]);
    check(
        &s,
        &[
            ("dashstream_quality_monitor_queries_total", 1.0),
            ("dashstream_quality_monitor_queries_passed_total", 0.0),
            ("dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}", 1.0),
            ("dashstream_quality_accuracy", 0.5),
            ("dashstream_quality_relevance", 0.75),
            ("dashstream_quality_completeness", 0.25),
            ("dashstream_quality_monitor_quality_score", 0.5),
        ],
    );
    assert_eq!(issues(&s), [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
    let s = run(&["03-monitor-clean.bin"], &[]);
    check(
        &s,
        &[
            ("dashstream_quality_monitor_queries_passed_total", 1.0),
            ("dashstream_quality_accuracy", 0.875),
            ("dashstream_quality_relevance", 1.0),
            ("dashstream_quality_completeness", 0.75),
            ("dashstream_quality_monitor_quality_score", 0.875),
        ],
    );
    assert_eq!(issues(&s), [0.0; 6]);
    let s = run(&["02-monitor-alert.bin"], &[]);
    check(
        &s,
        &[
            ("dashstream_quality_alerts_total", 1.0),
            ("dashstream_quality_monitor_queries_total", 0.0),
            ("dashstream_exporter_messages_other_type_total{message_type=\"event\"}", 0.0),
        ],
    );
    let s = run(&["05-callback.bin"], &[]);
    check(
        &s,
        &[
            ("dashstream_quality_monitor_queries_passed_total", 1.0),
            ("dashstream_quality_accuracy", 0.95),
            ("dashstream_quality_relevance", 0.87),
            ("dashstream_quality_completeness", 0.92),
            ("dashstream_quality_monitor_quality_score", (0.95 + 0.87 + 0.92) / 3.0),
        ],
    );
    assert_eq!(issues(&s), [0.0; 6], "DashStreamCallback's tags (thread_id, tenant_id) are no issues");
    let s = run(&["06-test-quality-1.bin", "07-test-quality-2.bin", "08-test-quality-3.bin"], &[]);
    check(
        &s,
        &[
            ("dashstream_quality_monitor_queries_total", 3.0),
            ("dashstream_quality_monitor_queries_passed_total", 2.0),
            ("dashstream_quality_monitor_queries_failed_total{category=\"Unknown\"}", 1.0),
            ("dashstream_quality_accuracy", 0.72),
            ("dashstream_quality_relevance", 0.68),
            ("dashstream_quality_completeness", 0.79),
            ("dashstream_quality_monitor_quality_score", 0.73),
            ("dashstream_quality_alerts_total", 0.0),
        ],
    );
    assert_eq!(issues(&s), [0.0; 6]);
}

#[test]
fn a_bad_pass_threshold_exits_2_naming_it() {
    for (args, env, origin, shown) in [
        (&[][..], &[("PROMETHEUS_QUALITY_PASS_THRESHOLD", "1.5")][..], "PROMETHEUS_QUALITY_PASS_THRESHOLD", "1.5"),
        (&["--prometheus-quality-pass-threshold=-0.2"][..], &[][..], "--prometheus-quality-pass-threshold", "-0.2"),
        (&[][..], &[("PROMETHEUS_QUALITY_PASS_THRESHOLD", "80%")][..], "PROMETHEUS_QUALITY_PASS_THRESHOLD", "80%"),
    ] {
        let out = Command::new(BIN).args(args).env_clear().envs(env.iter().copied()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "PROMETHEUS_QUALITY_PASS_THRESHOLD ({origin}) = \"{shown}\": expected a number from 0 to 1 (a \
quality_average at or above it passes)"
            )),
            "{err}"
        );
    }
}
