//! Time lag per partition: how long ago the oldest record not yet applied was written, estimated from the
//! Kafka timestamps the poll thread sees (docs/metrics.md, Freshness). Records behind (`lag` > 0) say how
//! many; this says how old the numbers on the dashboard are.
//!
//! The poll thread notes the timestamp of every record it fetches, one entry per run of records that share
//! a timestamp (so a burst written in one millisecond is one entry). Every tick it drops the runs the worker
//! has applied. Then, per partition:
//! - fetched records wait to be applied: the oldest of them is the record at the applied position, and its
//!   run's timestamp is exact;
//! - none is fetched, but the broker's high watermark (from the last statistics, at most a second old) lies
//!   beyond the applied position: the oldest waiting record was written after the last applied one, so the
//!   age of that one is the estimate (an upper bound);
//! - otherwise the partition is caught up: 0.
//!
//! Nothing here asks the broker anything: it runs on data the poll thread has anyway.

use std::collections::VecDeque;

/// Partitions above this number are not tracked (a topic has far fewer; the table is indexed by number).
const MAX_TRACKED_PARTITION: usize = 1 << 16;

/// The records of one partition the poll thread has fetched and the worker may not have applied yet.
#[derive(Default)]
struct Partition {
    /// `(first offset, Kafka timestamp in ms)` of each run of fetched records with one timestamp, oldest
    /// first; a run ends where the next begins, the last one at `fetched_next`.
    runs: VecDeque<(i64, i64)>,
    /// One past the newest fetched offset.
    fetched_next: i64,
    /// Timestamp of the newest record known to be applied.
    applied_ms: Option<i64>,
}

/// Per-partition fetch history, owned by the poll thread.
#[derive(Default)]
pub struct TimeLag {
    partitions: Vec<Option<Partition>>,
}

impl TimeLag {
    /// A record the poll thread has fetched (and sends to the worker), with its Kafka timestamp if it has one.
    #[inline]
    pub fn fetched(&mut self, partition: i32, offset: i64, written_ms: Option<i64>) {
        let (Some(ts), Ok(i)) = (written_ms, usize::try_from(partition)) else { return };
        if i >= MAX_TRACKED_PARTITION {
            return;
        }
        if self.partitions.len() <= i {
            self.partitions.resize_with(i + 1, || None);
        }
        let p = self.partitions[i].get_or_insert_with(Partition::default);
        if p.runs.back().is_none_or(|&(_, t)| t != ts) {
            p.runs.push_back((offset, ts));
        }
        p.fetched_next = p.fetched_next.max(offset + 1);
    }

    /// Forgets every partition `keep` rejects (revoked ones).
    pub fn retain(&mut self, mut keep: impl FnMut(i32) -> bool) {
        for (i, p) in self.partitions.iter_mut().enumerate() {
            if p.is_some() && !keep(i as i32) {
                *p = None;
            }
        }
    }

    /// The time lag of `partition` in seconds at `now_ms`, given the next offset to apply (`applied_next`,
    /// what the worker has applied) and the broker's high watermark, when known. `None` while nothing
    /// fetched or applied tells how old the waiting records are.
    pub fn seconds(
        &mut self,
        partition: i32,
        applied_next: Option<i64>,
        high: Option<i64>,
        now_ms: i64,
    ) -> Option<f64> {
        let p = usize::try_from(partition).ok().and_then(|i| self.partitions.get_mut(i)).and_then(Option::as_mut);
        let age = |ts: i64| Some((now_ms - ts).max(0) as f64 / 1000.0);
        let Some(p) = p else {
            // Nothing fetched since the assignment: behind only if the broker holds records past the position.
            return match (applied_next, high) {
                (Some(next), Some(h)) if h <= next => Some(0.0),
                _ => None,
            };
        };
        if let Some(next) = applied_next {
            p.drop_applied(next);
        }
        let waiting_fetched = applied_next.is_none_or(|next| next < p.fetched_next);
        if waiting_fetched {
            return p.runs.front().and_then(|&(_, ts)| age(ts));
        }
        match (applied_next, high) {
            (Some(next), Some(h)) if h > next => p.applied_ms.and_then(age),
            _ => Some(0.0),
        }
    }
}

impl Partition {
    /// Drops the runs wholly below `next` (applied), remembering the newest applied timestamp.
    fn drop_applied(&mut self, next: i64) {
        while let Some(&(start, ts)) = self.runs.front() {
            let end = self.runs.get(1).map_or(self.fetched_next, |&(o, _)| o);
            if start >= next {
                break;
            }
            self.applied_ms = Some(ts);
            if end > next {
                break; // `next` lies inside this run: the record at `next` has its timestamp
            }
            self.runs.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records `offsets` of partition 0 fetched with timestamps `ts` (ms).
    fn fetch(t: &mut TimeLag, records: &[(i64, i64)]) {
        for &(o, ts) in records {
            t.fetched(0, o, Some(ts));
        }
    }

    #[test]
    fn the_oldest_fetched_record_not_yet_applied_sets_the_lag() {
        let mut t = TimeLag::default();
        fetch(&mut t, &[(10, 1_000), (11, 1_000), (12, 4_000), (13, 9_000)]);
        // nothing applied yet: the oldest fetched record, offset 10, was written at 1.0 s
        assert_eq!(t.seconds(0, None, Some(14), 20_000), Some(19.0));
        // 10 and 11 applied: offset 12 (4.0 s) is the oldest waiting
        assert_eq!(t.seconds(0, Some(12), Some(14), 20_000), Some(16.0));
        // 12 applied: offset 13 waits, written at 9.0 s
        assert_eq!(t.seconds(0, Some(13), Some(14), 20_000), Some(11.0));
        // everything applied and the broker holds nothing more: caught up
        assert_eq!(t.seconds(0, Some(14), Some(14), 20_000), Some(0.0));
    }

    #[test]
    fn a_position_inside_a_run_keeps_that_runs_timestamp() {
        let mut t = TimeLag::default();
        fetch(&mut t, &[(0, 500), (1, 500), (2, 500), (3, 800)]);
        assert_eq!(t.seconds(0, Some(1), Some(4), 1_500), Some(1.0), "offset 1 was written at 0.5 s");
        assert_eq!(t.seconds(0, Some(3), Some(4), 1_500), Some(0.7));
        assert_eq!(t.partitions[0].as_ref().unwrap().runs.len(), 1, "applied runs are dropped");
    }

    #[test]
    fn records_not_fetched_yet_are_estimated_from_the_last_applied_one() {
        let mut t = TimeLag::default();
        fetch(&mut t, &[(0, 2_000), (1, 3_000)]);
        // both applied, but the broker holds 5 records: the next one was written after 3.0 s
        assert_eq!(t.seconds(0, Some(2), Some(5), 10_000), Some(7.0));
        assert_eq!(t.seconds(0, Some(2), Some(2), 10_000), Some(0.0));
        assert_eq!(t.seconds(0, Some(2), None, 10_000), Some(0.0), "no statistics yet: nothing known behind");
    }

    #[test]
    fn unknown_until_something_is_fetched_or_caught_up() {
        let mut t = TimeLag::default();
        assert_eq!(t.seconds(3, Some(7), Some(9), 10_000), None, "behind, but how long ago is unknown");
        assert_eq!(t.seconds(3, Some(9), Some(9), 10_000), Some(0.0));
        assert_eq!(t.seconds(3, None, None, 10_000), None);
        t.fetched(3, 7, None);
        assert_eq!(t.seconds(3, Some(7), Some(9), 10_000), None, "a record without a timestamp tells nothing");
    }

    #[test]
    fn a_clock_behind_the_stamps_gives_zero_not_a_negative_age() {
        let mut t = TimeLag::default();
        fetch(&mut t, &[(0, 5_000)]);
        assert_eq!(t.seconds(0, Some(0), Some(1), 4_000), Some(0.0));
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut t = TimeLag::default();
        t.fetched(0, 0, Some(1_000));
        t.fetched(2, 0, Some(1_000));
        t.retain(|p| p == 2);
        assert!(t.partitions[0].is_none());
        assert_eq!(t.seconds(2, Some(0), Some(1), 3_000), Some(2.0));
        assert_eq!(t.seconds(0, Some(0), Some(1), 3_000), None);
    }
}
