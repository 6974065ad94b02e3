//! The offset protocol between the poll thread and the worker (README, How it works). Its invariants:
//!
//! - A record's offset is stored with librdkafka only after the worker has applied the record; the poll
//!   thread never stores an offset of its own. Every record, quality event or not, goes through the worker,
//!   so offsets move on in order.
//! - Between polls the poll thread stores what was applied ([`Offsets::store_applied`]); librdkafka's
//!   auto-commit commits what was stored.
//! - On revoke, and at shutdown, the poll thread first waits until the worker has applied everything sent,
//!   then stores and commits synchronously ([`Offsets::commit_revoked`], [`Offsets::commit_at_shutdown`]).
//! - A shutdown commit that the coordinator refuses because the group is rebalancing (another member joined
//!   or left a moment before) is made again once this member has taken part in the rebalance, for at most
//!   [`SHUTDOWN_PATIENCE`]; the partitions are paused meanwhile, so nothing new is read.
//!
//! [`channel`] builds the three ends: [`Feed`] sends and counts, [`Inbox`] applies in batches and reports
//! them, [`Offsets`] stores and commits. None of them can report a record it did not handle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendError, Sender, TryIter};
use log::{debug, error, info, warn};
use prometheus::IntCounter;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

use crate::decode::event::Event;
use crate::runtime::shutdown::RateLimit;

/// The most records the worker applies before it reports their offsets. A bound, so that offsets are
/// reported (and idle sessions expired) regularly even while the channel never runs dry; large, so that the
/// lock and wake-up of a report are shared by many records.
pub const MAX_BATCH: usize = 4096;

/// How long a revoke or shutdown waits for the worker to apply what is in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a shutdown keeps trying to commit while the group rebalances. Kafka completes a rebalance once
/// every member has re-joined (about a heartbeat interval, 3 s by default); librdkafka's mock cluster waits
/// about the session timeout less one second when a member has left.
pub const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(6);

/// What crosses the channel: one record's position and, if it is a quality event, the decoded event.
/// Records without one (bad, or not a quality event) were counted by the poll thread; only their offset
/// matters.
pub struct Item {
    pub partition: i32,
    pub offset: i64,
    pub event: Option<Event>,
}

/// Builds the channel from the poll thread to the worker (holding `capacity` records) and the offset book
/// for the records of `topic` that go through it, which counts failed stores and commits.
pub fn channel(
    capacity: usize,
    topic: &str,
    store_errors: IntCounter,
    commit_errors: IntCounter,
) -> (Feed, Inbox, Offsets) {
    let ledger = Arc::new(Ledger::default());
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let feed = Feed { tx, ledger: ledger.clone() };
    let inbox = Inbox { rx, ledger: ledger.clone(), pending: None, next: HashMap::new() };
    let offsets = Offsets {
        topic: topic.to_owned(),
        ledger,
        stored: Mutex::new(HashMap::new()),
        store_errors,
        commit_errors,
        warnings: RateLimit::new(Duration::from_secs(10)),
    };
    (feed, inbox, offsets)
}

/// What was sent and what was applied; shared by the three ends.
#[derive(Default)]
struct Ledger {
    /// Records sent to the worker. Written only by [`Feed::send`], read by the same (poll) thread.
    sent: AtomicU64,
    applied: Mutex<Applied>,
    applied_changed: Condvar,
}

#[derive(Default)]
struct Applied {
    count: u64,
    /// The next offset to consume per partition, applied but not yet stored.
    next: HashMap<i32, i64>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `count` more records were applied; `next` (emptied) holds the next offset per partition.
    fn report(&self, count: u64, next: &mut HashMap<i32, i64>) {
        let mut a = self.lock();
        a.count += count;
        for (p, o) in next.drain() {
            let e = a.next.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
        drop(a);
        self.applied_changed.notify_all();
    }

    fn take_next(&self) -> HashMap<i32, i64> {
        std::mem::take(&mut self.lock().next)
    }

    /// Waits until every record sent has been applied, or `timeout`; true if all were.
    fn wait_applied(&self, timeout: Duration) -> bool {
        let sent = self.sent.load(Ordering::SeqCst);
        let (_guard, waited) = self
            .applied_changed
            .wait_timeout_while(self.lock(), timeout, |a| a.count < sent)
            .unwrap_or_else(|p| p.into_inner());
        !waited.timed_out()
    }
}

/// The poll thread's end of the channel.
pub struct Feed {
    tx: Sender<Item>,
    ledger: Arc<Ledger>,
}

impl Feed {
    /// Sends a record to the worker, waiting while the channel is full (the back-pressure), and counts it.
    /// Fails only when the worker is gone.
    pub fn send(&self, item: Item) -> Result<(), SendError<Item>> {
        self.tx.send(item)?;
        self.ledger.sent.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The worker's end of the channel.
pub struct Inbox {
    rx: Receiver<Item>,
    ledger: Arc<Ledger>,
    /// A record received but not yet handed out (the last batch's caller stopped before it).
    pending: Option<Item>,
    /// Positions of the batch being applied; reused from batch to batch.
    next: HashMap<i32, i64>,
}

impl Inbox {
    /// Waits up to `timeout` for a record. When one comes, `apply` gets the quality events of it and of the
    /// records already waiting behind it (at most [`MAX_BATCH`] records), and every record it went past is
    /// then reported applied. Returns false once the poll thread has hung up and the channel is empty.
    pub fn apply_batch(&mut self, timeout: Duration, apply: impl FnOnce(&mut Events<'_>)) -> bool {
        if self.pending.is_none() {
            match self.rx.recv_timeout(timeout) {
                Ok(item) => self.pending = Some(item),
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
        let mut events = Events {
            first: &mut self.pending,
            rest: self.rx.try_iter().take(MAX_BATCH - 1),
            next: &mut self.next,
            taken: 0,
        };
        apply(&mut events);
        let taken = events.taken;
        if taken > 0 {
            self.ledger.report(taken, &mut self.next);
        }
        true
    }
}

/// The quality events of one batch, in order. Each record it passes (with an event or not) counts as applied
/// when the batch ends.
pub struct Events<'a> {
    first: &'a mut Option<Item>,
    rest: std::iter::Take<TryIter<'a, Item>>,
    next: &'a mut HashMap<i32, i64>,
    taken: u64,
}

impl Iterator for Events<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            let item = self.first.take().or_else(|| self.rest.next())?;
            self.next.insert(item.partition, item.offset + 1);
            self.taken += 1;
            if item.event.is_some() {
                return item.event;
            }
        }
    }
}

/// The poll thread's offset book: stores what the worker applied, commits on revoke and at shutdown.
pub struct Offsets {
    topic: String,
    ledger: Arc<Ledger>,
    /// Offsets stored with librdkafka, per assigned partition: what a commit writes.
    stored: Mutex<HashMap<i32, i64>>,
    store_errors: IntCounter,
    commit_errors: IntCounter,
    warnings: RateLimit,
}

impl Offsets {
    fn stored(&self) -> MutexGuard<'_, HashMap<i32, i64>> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the offsets the worker has applied since the last call (librdkafka's auto-commit commits them).
    /// The next offset to consume of `partition` as last stored (what the worker has applied), if any.
    pub fn stored_position(&self, partition: i32) -> Option<i64> {
        self.stored().get(&partition).copied()
    }

    pub fn store_applied<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        let next = self.ledger.take_next();
        if next.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(next.len());
        for (&p, &o) in &next {
            if tpl.add_partition_offset(&self.topic, p, Offset::Offset(o)).is_err() {
                self.store_errors.inc();
            }
        }
        match consumer.store_offsets(&tpl) {
            Ok(()) => self.stored().extend(next),
            Err(e) => {
                // Partitions revoked meanwhile cannot be stored; their records are re-read by the new owner.
                self.store_errors.inc();
                if let Some(n) = self.warnings.check() {
                    warn!("storing offsets failed: {e} ({n} similar messages suppressed)");
                }
            }
        }
    }

    /// For the revoke callback: drains, commits `partitions` synchronously and forgets them.
    pub fn commit_revoked<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, partitions: &[i32]) {
        if let Err(e) = self.drain_and_commit(consumer, Some(partitions), "revoke") {
            self.commit_failed("revoke", &e);
        }
        let mut stored = self.stored();
        for p in partitions {
            stored.remove(p);
        }
    }

    /// For the end of the poll loop: drains and commits every assigned partition synchronously. While the
    /// coordinator refuses the commit because the group is rebalancing, this member pauses its partitions and
    /// polls, which takes part in the rebalance (a revoke in it commits what it gives up), then commits again;
    /// records delivered meanwhile are neither applied nor stored, so whoever owns them next reads them.
    pub fn commit_at_shutdown<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        let deadline = Instant::now() + SHUTDOWN_PATIENCE;
        let mut paused = false;
        while let Err(e) = self.drain_and_commit(consumer, None, "shutdown") {
            let rebalancing = matches!(
                e.rdkafka_error_code(),
                Some(RDKafkaErrorCode::RebalanceInProgress | RDKafkaErrorCode::IllegalGeneration)
            );
            if !rebalancing || Instant::now() >= deadline {
                self.commit_failed("shutdown", &e);
                return;
            }
            if !paused {
                info!("shutdown: the group is rebalancing; committing again once this member has re-joined");
                if let Ok(assigned) = consumer.assignment() {
                    let _ = consumer.pause(&assigned);
                }
                paused = true;
            }
            let deadline_poll = Instant::now() + Duration::from_millis(200);
            while Instant::now() < deadline_poll {
                drop(consumer.poll(Duration::from_millis(50)));
            }
        }
    }

    /// The outcome of one of librdkafka's automatic commits.
    pub fn auto_committed(&self, result: KafkaResult<()>) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.commit_errors.inc();
                if let Some(n) = self.warnings.check() {
                    warn!("offset commit failed: {e} ({n} similar messages suppressed)");
                }
            }
        }
    }

    /// Waits for the worker to apply what was sent, stores, and commits `partitions` (all when `None`)
    /// synchronously. Nothing to commit is success.
    fn drain_and_commit<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: Option<&[i32]>,
        why: &str,
    ) -> KafkaResult<()> {
        if !self.ledger.wait_applied(DRAIN_TIMEOUT) {
            warn!("{why}: the worker did not apply all in-flight records within 3 s; committing what was applied");
        }
        self.store_applied(consumer);
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in self.stored().iter() {
            if partitions.is_none_or(|ps| ps.contains(&p)) {
                let _ = tpl.add_partition_offset(&self.topic, p, Offset::Offset(o));
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                debug!("{why}: committed {} partition offset(s)", tpl.count());
                Ok(())
            }
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn commit_failed(&self, why: &str, e: &KafkaError) {
        self.commit_errors.inc();
        error!("{why}: synchronous offset commit failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(partition: i32, offset: i64, event: Option<Event>) -> Item {
        Item { partition, offset, event }
    }

    fn event(turn_number: u32) -> Event {
        Event {
            quality_score: 0.5,
            accuracy: 0.5,
            relevance: 0.5,
            completeness: 0.5,
            latency_ms: 1,
            retry_count: 0,
            turn_number,
            passed: true,
            librarian: false,
            model: None,
            category: crate::decode::labels::Category::Simple,
            session: None,
            produced_us: 0,
            anomalies: Default::default(),
        }
    }

    fn ends(capacity: usize) -> (Feed, Inbox, Offsets) {
        let counter = || IntCounter::new("errors", "errors").unwrap();
        channel(capacity, "t", counter(), counter())
    }

    #[test]
    fn a_batch_hands_out_only_events_and_reports_every_record_it_passed() {
        let (feed, mut inbox, offsets) = ends(16);
        feed.send(item(0, 10, Some(event(1)))).unwrap();
        feed.send(item(1, 5, None)).unwrap();
        feed.send(item(0, 11, Some(event(2)))).unwrap();
        let mut seen = Vec::new();
        assert!(inbox.apply_batch(Duration::ZERO, |events| seen.extend(events.map(|e| e.turn_number))));
        assert_eq!(seen, [1, 2]);
        assert!(offsets.ledger.wait_applied(Duration::ZERO), "all three records count as applied");
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(0, 12), (1, 6)]));
    }

    #[test]
    fn a_caller_that_stops_early_leaves_the_rest_for_the_next_batch() {
        let (feed, mut inbox, offsets) = ends(16);
        assert!(offsets.ledger.wait_applied(Duration::ZERO), "nothing sent yet");
        feed.send(item(0, 0, None)).unwrap();
        feed.send(item(0, 1, Some(event(1)))).unwrap();
        feed.send(item(0, 2, Some(event(2)))).unwrap();
        assert!(!offsets.ledger.wait_applied(Duration::from_millis(10)));
        assert!(inbox.apply_batch(Duration::ZERO, |_| {}));
        assert!(!offsets.ledger.wait_applied(Duration::ZERO), "a batch that took nothing reports nothing");
        let turn = |events: &mut Events<'_>| events.next().map(|e| e.turn_number);
        assert!(inbox.apply_batch(Duration::ZERO, |events| assert_eq!(turn(events), Some(1))));
        assert!(!offsets.ledger.wait_applied(Duration::ZERO), "the third record is still in the channel");
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(0, 2)]));
        assert!(inbox.apply_batch(Duration::ZERO, |events| assert_eq!(turn(events), Some(2))));
        assert!(offsets.ledger.wait_applied(Duration::ZERO));
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(0, 3)]));
    }

    #[test]
    fn a_drain_waits_for_the_worker() {
        let (feed, mut inbox, offsets) = ends(16);
        for o in 0..3 {
            feed.send(item(2, o, Some(event(1)))).unwrap();
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                inbox.apply_batch(Duration::ZERO, |events| events.for_each(drop));
            });
            assert!(offsets.ledger.wait_applied(Duration::from_secs(10)));
        });
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(2, 3)]));
    }

    #[test]
    fn batches_are_bounded_and_the_inbox_closes_with_the_feed() {
        let (feed, mut inbox, _offsets) = ends(MAX_BATCH + 1);
        for o in 0..=MAX_BATCH as i64 {
            feed.send(item(0, o, Some(event(1)))).unwrap();
        }
        let mut sizes = Vec::new();
        drop(feed);
        while inbox.apply_batch(Duration::ZERO, |events| sizes.push(events.count())) {}
        assert_eq!(sizes, [MAX_BATCH, 1]);
    }

    #[test]
    fn reports_keep_the_highest_offset_per_partition() {
        let ledger = Ledger::default();
        ledger.report(1, &mut HashMap::from([(0, 7)]));
        ledger.report(1, &mut HashMap::from([(0, 5), (1, 1)]));
        assert_eq!(ledger.take_next(), HashMap::from([(0, 7), (1, 1)]));
        assert!(ledger.take_next().is_empty());
    }
}
