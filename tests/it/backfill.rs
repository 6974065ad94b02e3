//! `backfill` as an operator runs it, against librdkafka's mock cluster: records stamped in the past on two
//! partitions (out of order inside a partition, one later than the reorder window, one outside the range, one
//! undecodable, one without a header stamp), and the exact samples written at each boundary.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::common::{Cluster, BIN};
use dashflow_prometheus_exporter::sim::encode::{Framing, QualityRecord};
use rdkafka::producer::{BaseRecord, Producer};

/// An hour boundary in the past (2026-12-01T00:00:00Z); boundaries every minute after it.
const T0: i64 = 1_796_083_200;

/// Produces `(partition, kafka timestamp in seconds, value)` in order and waits for delivery.
fn produce(c: &Cluster, records: &[(i32, i64, Vec<u8>)]) {
    let p = c.producer();
    for (part, ts, value) in records {
        let rec: BaseRecord<'_, (), [u8]> =
            BaseRecord::to(&c.topic).partition(*part).timestamp(ts * 1000).payload(value.as_slice());
        p.send(rec).map_err(|(e, _)| e).expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// A passed (or failed) event stamped `T0 + secs` in its header.
fn event(secs: i64, passed: bool, score: f64, latency: i64, category: &str) -> QualityRecord {
    QualityRecord {
        thread_id: Some(format!("thread-{secs}")),
        timestamp_us: (T0 + secs) * 1_000_000,
        quality_score: Some(score),
        passed: Some(passed),
        latency_ms: Some(latency),
        category: Some(category.into()),
        model: Some("gpt-4o".into()),
        ..QualityRecord::default()
    }
}

fn enc(r: &QualityRecord) -> Vec<u8> {
    r.encode(Framing::Framed)
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).env_clear().output().expect("run backfill");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `series` → timestamp → value, from the written file.
fn samples(text: &str) -> BTreeMap<String, BTreeMap<i64, f64>> {
    let mut m: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (rest, ts) = l.rsplit_once(' ').unwrap();
        let (series, v) = rest.rsplit_once(' ').unwrap();
        m.entry(series.to_string()).or_default().insert(ts.parse().unwrap(), v.parse().unwrap());
    }
    m
}

#[test]
fn backfill_writes_exact_samples_at_each_boundary_in_event_time() {
    let c = Cluster::new("bf-exact", 2);
    // Sessions: "s" is seen at +5 (turn 1) and +10 (turn 2); with a 60 s timeout it is still open at +70 (60 s
    // idle, not more) and closed by the expiry at the +120 boundary, before its samples are written.
    let with_session = |mut r: QualityRecord, turn: i64| {
        r.thread_id = Some("s".into());
        r.turn_number = Some(turn);
        r
    };
    let no_header = QualityRecord {
        quality_score: Some(0.77),
        passed: Some(true),
        latency_ms: Some(10),
        ..QualityRecord::default()
    };
    produce(
        &c,
        &[
            (1, T0 - 100, enc(&event(-100, true, 0.1, 1, "Simple"))), // before --from
            (1, T0 + 5, enc(&with_session(event(5, true, 0.95, 40, "Simple"), 1))),
            (1, T0 + 6, vec![0x00, 0xff, 0xff]), // undecodable
            (1, T0 + 65, enc(&event(65, false, 0.3, 700, "Complex"))),
            (1, T0 + 62, enc(&event(62, true, 0.6, 120, "Simple"))), // 3 s out of order: within the window
            (1, T0 + 200, enc(&event(200, true, 0.85, 2500, "Simple"))),
            (0, T0 + 10, enc(&with_session(event(10, true, 0.9, 100, "Simple"), 2))),
            (0, T0 + 70, enc(&event(70, false, 0.2, 300, "Simple"))),
            (0, T0 + 130, enc(&event(130, true, 0.8, 15000, "Simple"))),
            (0, T0 + 20, enc(&event(20, true, 0.5, 60, "Simple"))), // 110 s late: beyond the window
            (0, T0 + 250, enc(&no_header)),                         // event time from the Kafka timestamp
        ],
    );
    let dir = std::env::temp_dir().join(format!("dfe-backfill-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("history.om");
    let (code, _, err) = run(&[
        "backfill",
        "--brokers",
        &c.brokers,
        "--topic",
        &c.topic,
        "--prometheus-session-timeout-secs",
        "60",
        "--from",
        "2026-12-01T00:00:00Z",
        "--to",
        &(T0 + 300).to_string(),
        "--step",
        "1m",
        "--label",
        "job=dashflow",
        "--label",
        "instance=backfill \"a\"",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    // The summary on standard error.
    assert!(err.contains("partition 0: offsets 0..5, 5 records read"), "{err}");
    assert!(err.contains("partition 1: offsets 0..6, 6 records read"), "{err}");
    assert!(
        err.contains(
            "applied: 9 quality events, 0 QualityMonitor alerts; out of the range by event time: 1 before, 0 after"
        ),
        "{err}"
    );
    assert!(err.contains("later than the reorder window (counted at the next boundary): 1"), "{err}");
    assert!(err.contains("undecodable: 1 (invalid_protobuf=1)"), "{err}");
    assert!(err.contains("written: 5 boundaries"), "{err}");

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.ends_with("\n# EOF\n"), "ends with # EOF");
    assert_eq!(text.matches("# EOF").count(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file or spool left: {leftovers:?}");
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert_eq!(text.matches(&format!("{l}\n")).count(), 1, "{l} once");
        let family = l.split(' ').nth(2).unwrap();
        assert!(family.starts_with("dashstream_") && !family.starts_with("dashstream_exporter_"), "{l}");
    }
    assert!(!text.contains("_created"), "no _created samples");
    // Families are not interleaved: a family's samples follow its header until the next header.
    let mut current = String::new();
    for l in text.lines() {
        if let Some(t) = l.strip_prefix("# TYPE ") {
            current = t.split(' ').next().unwrap().to_string();
        } else if !l.starts_with('#') {
            assert!(l.starts_with(&current), "{l} under {current}");
            assert!(l.contains("{job=\"dashflow\",instance=\"backfill \\\"a\\\"\""), "{l}");
        }
    }

    let s = samples(&text);
    let lbl = "job=\"dashflow\",instance=\"backfill \\\"a\\\"\"";
    let at = |series: &str, extra: &str| -> Vec<f64> {
        let key = if extra.is_empty() { format!("{series}{{{lbl}}}") } else { format!("{series}{{{lbl},{extra}}}") };
        let by_ts = s.get(&key).unwrap_or_else(|| panic!("no series {key}"));
        assert_eq!(by_ts.keys().copied().collect::<Vec<_>>(), (1..6).map(|i| T0 + 60 * i).collect::<Vec<_>>(), "{key}");
        by_ts.values().copied().collect()
    };
    // Boundaries +60, +120, +180, +240, +300 (the range is (from, to]: +0 belongs to the range ending there).
    // Applied in event time: 5, 10 | 62, 65, 70, then 20 (late, at 70) | 130 | 200 | 250.
    assert_eq!(at("dashstream_quality_monitor_queries_total", ""), [2.0, 6.0, 7.0, 8.0, 9.0]);
    assert_eq!(at("dashstream_quality_monitor_queries_passed_total", ""), [2.0, 4.0, 5.0, 6.0, 7.0]);
    assert_eq!(
        at("dashstream_quality_monitor_queries_failed_total", "category=\"Complex\""),
        [0.0, 1.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(at("dashstream_quality_monitor_queries_failed_total", "category=\"Simple\""), [0.0, 1.0, 1.0, 1.0, 1.0]);
    // The gauge holds the last event applied before each boundary (the late one at +120).
    assert_eq!(at("dashstream_quality_monitor_quality_score", ""), [0.9, 0.5, 0.8, 0.85, 0.77]);
    assert_eq!(at("dashstream_query_latency_ms_count", ""), [2.0, 6.0, 7.0, 8.0, 9.0]);
    assert_eq!(at("dashstream_query_latency_ms_sum", ""), [140.0, 1320.0, 16320.0, 18820.0, 18830.0]);
    assert_eq!(at("dashstream_query_latency_ms_bucket", "le=\"50\""), [1.0, 1.0, 1.0, 1.0, 2.0]);
    assert_eq!(at("dashstream_query_latency_ms_bucket", "le=\"100\""), [2.0, 3.0, 3.0, 3.0, 4.0]);
    assert_eq!(at("dashstream_query_latency_ms_bucket", "le=\"+Inf\""), [2.0, 6.0, 7.0, 8.0, 9.0]);
    // Models: the header-less event has none.
    assert_eq!(at("dashstream_queries_by_model_total", "model=\"gpt-4o\""), [2.0, 6.0, 7.0, 8.0, 8.0]);
    // Session "s" closed in event time at +120: one session of 2 turns.
    assert_eq!(at("dashstream_turns_by_session_count", ""), [0.0, 1.0, 1.0, 1.0, 1.0]);
    assert_eq!(at("dashstream_turns_by_session_sum", ""), [0.0, 2.0, 2.0, 2.0, 2.0]);

    // The next range starts where this one's part ended: (+120, +300] holds 130, 200 and 250, and writes no
    // timestamp the range (+0, +120] would (so files for consecutive ranges can be loaded together).
    let second = dir.join("second.om");
    let (code, _, err) = run(&[
        "backfill",
        "--brokers",
        &c.brokers,
        "--topic",
        &c.topic,
        "--from",
        &(T0 + 120).to_string(),
        "--to",
        &(T0 + 300).to_string(),
        "--step",
        "1m",
        "--output",
        second.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("out of the range by event time: 7 before, 0 after"), "{err}");
    let s2 = samples(&std::fs::read_to_string(&second).unwrap());
    let total: Vec<(i64, f64)> = s2["dashstream_quality_monitor_queries_total"].iter().map(|(t, v)| (*t, *v)).collect();
    assert_eq!(total, [(T0 + 180, 1.0), (T0 + 240, 2.0), (T0 + 300, 3.0)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_refused_without_a_file() {
    let dir = std::env::temp_dir().join(format!("dfe-backfill-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("out.om");
    let f = file.to_str().unwrap();
    for (args, code, says) in [
        (&["--from", "1796083200", "--bogus", "--output", f][..], 2, "unexpected argument '--bogus'"),
        (&["--from", "2026-12-01T01:00:00Z", "--to", "2026-12-01T00:00:00Z", "--output", f], 2, "must be before --to"),
        (&["--from", "1796083200", "--step", "500ms", "--output", f], 2, "under 1s"),
        (&["--from", "1796083200", "--step", "fast", "--output", f], 2, "is not a duration"),
        (&["--from", "yesterday", "--output", f], 2, "neither RFC 3339"),
        (&["--from", "1796083200", "--label", "model=x", "--output", f], 2, "label of the data families"),
        (&["--from", "1796083200", "--label", "9x=1", "--output", f], 2, "is not a label name"),
        (&["--from", "1796083200"], 2, "--output"),
    ] {
        let mut all = vec!["backfill"];
        all.extend_from_slice(args);
        let (got, _, err) = run(&all);
        assert_eq!(got, Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A missing topic and an unreachable broker: runtime errors, and no file.
    let c = Cluster::new("bf-present", 1);
    let (got, _, err) =
        run(&["backfill", "--brokers", &c.brokers, "--topic", "bf-absent", "--from", "1796083200", "--output", f]);
    assert_eq!(got, Some(1), "{err}");
    assert!(err.contains("topic \"bf-absent\" does not exist"), "{err}");
    // Port 1 (tcpmux): nothing listens there, and no mock cluster of a test running alongside can take it.
    let (got, _, err) = run(&["backfill", "--brokers", "127.0.0.1:1", "--from", "1796083200", "--output", f]);
    assert_eq!(got, Some(1), "{err}");
    assert!(err.contains("backfill failed: kafka"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing written");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn standard_output_gets_the_whole_file() {
    let c = Cluster::new("bf-stdout", 1);
    produce(&c, &[(0, T0 + 1, enc(&event(1, true, 0.5, 5, "Simple")))]);
    let (code, out, err) = run(&[
        "backfill",
        "--brokers",
        &c.brokers,
        "--topic",
        &c.topic,
        "--from",
        "1796083200",
        "--to",
        "1796083230",
        "--output",
        "-",
        "--quiet",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err, "", "--quiet");
    assert!(out.ends_with("\n# EOF\n"));
    let s = samples(&out);
    assert_eq!(
        s["dashstream_quality_monitor_queries_total"].iter().map(|(t, v)| (*t, *v)).collect::<Vec<_>>(),
        [(T0 + 15, 1.0), (T0 + 30, 1.0)]
    );
}

#[test]
fn help_explains_the_workflow() {
    let (code, out, _) = run(&["backfill", "--help"]);
    assert_eq!(code, Some(0));
    for must in [
        "--from <TIME>",
        "--to <TIME>",
        "--step <DURATION>",
        "--reorder-window <DURATION>",
        "--label <NAME=VALUE>",
        "--output <FILE>",
        "--kafka-sasl-password-file",
        "--prometheus-latency-buckets-ms",
        "promtool tsdb create-blocks-from openmetrics",
        "--storage.tsdb.allow-overlapping-blocks",
        "no consumer group is joined",
    ] {
        assert!(out.contains(must), "backfill --help lacks {must}:\n{out}");
    }
    let (_, out, _) = run(&["--help"]);
    assert!(out.contains("backfill"), "listed in the top-level help");
}
