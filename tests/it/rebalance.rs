//! A member joins a group whose only member has applied records it has not committed yet. Periodic
//! auto-commits are pushed out of the way (ten minutes apart), so the only commit that can save those records
//! from being counted again is the one the revoke callback makes.
//!
//! With `cooperative-sticky` that commit is made while the group is stable, and the broker takes it: nothing is
//! counted twice. With the eager assignors, librdkafka's mock coordinator refuses it (REBALANCE_IN_PROGRESS:
//! it accepts no commit while members are re-joining, where Kafka accepts commits of the current generation),
//! and every partition is read again from the start. The one-hour soak found that (benches/RESULTS.md, "Soak").

use std::time::Duration;

use crate::common::{Cluster, Exporter};
use dashflow_prometheus_exporter::sim::encode::{Framing, QualityRecord};

const WAIT: Duration = Duration::from_secs(40);
const PARTITIONS: i32 = 4;
const PER_PARTITION: usize = 500;
const TOTAL: f64 = (PARTITIONS as usize * PER_PARTITION) as f64;

/// The mock cluster holds a join round open for the session timeout less a second: 5 s leaves room for a
/// member slowed by a loaded machine to re-join in time.
const SESSION_TIMEOUT_MS: &str = "6000";

#[derive(Clone, Copy)]
enum StopOrder {
    FirstMemberFirst,
    NewcomerFirst,
}

struct Outcome {
    first: f64,
    second: f64,
    commit_errors: f64,
    committed: Vec<i64>,
    /// Both members' logs, for the failure message.
    logs: String,
}

/// The first member applies every record; a second joins; once both hold partitions and have been quiet for
/// a while, both are stopped. Returns what each counted, their commit errors and the group's offsets.
fn join_a_busy_member(topic: &str, strategy: &str, stop: StopOrder, session_timeout_ms: &str) -> Outcome {
    let c = Cluster::new(topic, PARTITIONS);
    let mut recs = Vec::new();
    for p in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            recs.push((
                p,
                Some(QualityRecord::sample((p as usize * PER_PARTITION + i) as u64).encode(Framing::Framed)),
            ));
        }
    }
    c.produce(&recs);
    let env = [
        ("KAFKA_SESSION_TIMEOUT_MS", session_timeout_ms),
        ("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", strategy),
        ("KAFKA_CONSUMER_PROPERTIES", "heartbeat.interval.ms=500,auto.commit.interval.ms=600000"),
    ];
    let group = format!("g-{topic}");
    let mut a = Exporter::start(&c, &group, &env);
    a.wait_value("dashstream_quality_monitor_queries_total", TOTAL, WAIT);
    assert_eq!(c.committed(&group), vec![-1; PARTITIONS as usize], "nothing committed before the join");

    let mut b = Exporter::start(&c, &group, &env);
    let assigned = |e: &Exporter| e.scrape().get("dashstream_exporter_kafka_assigned_partitions").unwrap_or(0.0);
    a.wait_until(WAIT, "both members holding partitions", |a| {
        let (x, y) = (assigned(a), assigned(&b));
        x > 0.0 && y > 0.0 && x + y == f64::from(PARTITIONS)
    });
    // Whatever is read again arrives within a few hundred ms of the assignment; wait well past that.
    std::thread::sleep(Duration::from_secs(3));
    let count = |e: &Exporter| e.scrape().v("dashstream_quality_monitor_queries_total");
    let errors = |e: &Exporter| e.scrape().v("dashstream_exporter_offset_commit_errors_total");
    let outcome = Outcome {
        first: count(&a),
        second: count(&b),
        commit_errors: errors(&a) + errors(&b),
        committed: Vec::new(),
        logs: String::new(),
    };
    let order = match stop {
        // Its shutdown commit is made while the group is stable.
        StopOrder::FirstMemberFirst => [&mut a, &mut b],
        // The first member's shutdown commit meets the rebalance the newcomer's leaving started.
        StopOrder::NewcomerFirst => [&mut b, &mut a],
    };
    for e in order {
        let (status, _) = e.terminate();
        assert_eq!(status.code(), Some(0), "{}", e.logs());
    }
    let logs = format!("--- first member ---\n{}\n--- second member ---\n{}", a.logs(), b.logs());
    Outcome { committed: c.committed(&group), logs, ..outcome }
}

#[test]
fn cooperative_sticky_commits_what_it_gives_up_and_nothing_is_counted_twice() {
    let o = join_a_busy_member("coop", "cooperative-sticky", StopOrder::FirstMemberFirst, SESSION_TIMEOUT_MS);
    assert_eq!((o.first, o.second), (TOTAL, 0.0), "the newcomer's partitions were committed first\n{}", o.logs);
    assert_eq!(o.commit_errors, 0.0, "{}", o.logs);
    assert_eq!(o.committed, vec![PER_PARTITION as i64; PARTITIONS as usize], "{}", o.logs);
}

#[test]
fn eager_on_the_mock_cluster_loses_the_revoke_commit_and_reads_everything_again() {
    let o = join_a_busy_member("eager", "range,roundrobin", StopOrder::FirstMemberFirst, SESSION_TIMEOUT_MS);
    assert!(o.commit_errors >= 1.0, "the revoke commit was refused");
    // At least every partition read twice (more when the mock's join round times out and starts again).
    assert!(o.first + o.second >= 2.0 * TOTAL, "{} + {}", o.first, o.second);
    assert!(o.second >= TOTAL / 2.0, "the newcomer read its share again: {}", o.second);
}

/// The newcomer stops, and the first member a moment later: the coordinator refuses the first member's
/// shutdown commit (the group is rebalancing after the newcomer left) until it has re-joined, and the
/// exporter commits again then. Periodic commits being ten minutes apart, only that commit can have put the
/// first member's partitions at their end offsets. A 4-s session timeout: the mock holds the rebalance after a
/// leave for 3 s, well within the 6 s a shutdown waits.
#[test]
fn a_shutdown_commit_refused_mid_rebalance_is_made_after_it() {
    let o = join_a_busy_member("late", "cooperative-sticky", StopOrder::NewcomerFirst, "4000");
    assert_eq!(o.committed, vec![PER_PARTITION as i64; PARTITIONS as usize], "{}", o.logs);
    assert!(o.logs.contains("shutdown: the group is rebalancing; committing again"), "{}", o.logs);
    assert!(!o.logs.contains("shutdown: synchronous offset commit failed"), "{}", o.logs);
}
