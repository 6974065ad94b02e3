//! The batch channel between the poll thread and the worker, and the offset protocol. Why batches, how many
//! and what bounds them: ARCHITECTURE.md, "How records move" and "Offsets and commits". Its invariants:
//!
//! - A record's offset is stored with librdkafka only after the worker has applied the record; the poll
//!   thread never stores an offset of its own. Every record, quality event or not, goes through the worker,
//!   so offsets move on in order.
//! - The poll thread fills a batch of [`Item`]s and sends it ([`Feed::push`], [`Feed::flush`]); the worker
//!   applies it, reports its positions applied and hands the empty `Vec` back ([`Inbox::apply_batch`]).
//! - Between polls the poll thread stores what was applied ([`Offsets::store_applied`]); librdkafka's
//!   auto-commit commits what was stored.
//! - On revoke, and at shutdown, the poll thread first sends the batch it is filling, waits until the worker
//!   has applied everything sent, then stores and commits synchronously ([`Offsets::commit_revoked`],
//!   [`Offsets::commit_at_shutdown`]).
//! - A shutdown commit that the coordinator refuses because the group is rebalancing (another member joined
//!   or left a moment before) is made again once this member has taken part in the rebalance, for at most
//!   [`SHUTDOWN_PATIENCE`]; the partitions are paused meanwhile, so nothing new is read.
//!
//! [`channel`] builds the three ends: [`Feed`] fills and sends, [`Inbox`] applies and reports, [`Offsets`]
//! stores and commits. None of them can report a record it did not handle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{debug, error, info, warn};
use prometheus::IntCounter;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

use crate::decode::event::Event;
use crate::runtime::shutdown::RateLimit;

/// The most records in one batch. Large, so that a hand-off, the worker's wake-up and its report (a lock,
/// the positions) are shared by many records; small enough that a full batch goes out within about half a
/// millisecond of a drain, and that a busy poll thread gets back to its timers often.
pub const BATCH_LEN: usize = 512;

/// How long a revoke or shutdown waits for the worker to apply what is in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a shutdown keeps trying to commit while the group rebalances. Kafka completes a rebalance once
/// every member has re-joined (about a heartbeat interval, 3 s by default); librdkafka's mock cluster waits
/// about the session timeout less one second when a member has left.
pub const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(6);

/// One record as it crosses the channel: its position and, if it is a quality event, the decoded event.
/// Records without one (bad, or not a quality event) were counted by the poll thread; only their offset
/// matters.
pub struct Item {
    pub partition: i32,
    pub offset: i64,
    pub event: Option<Event>,
}

/// Records in fetch order; what the channel carries.
type Batch = Vec<Item>;

/// The worker is gone: nothing sent now would be applied.
#[derive(Debug, PartialEq, Eq)]
pub struct WorkerGone;

/// Builds the channel from the poll thread to the worker, holding up to `capacity` records in batches of
/// [`BATCH_LEN`], and the offset book for the records of `topic` that go through it, which counts failed
/// stores and commits.
pub fn channel(
    capacity: usize,
    topic: &str,
    store_errors: IntCounter,
    commit_errors: IntCounter,
) -> (Feed, Inbox, Offsets) {
    let len = BATCH_LEN.min(capacity.max(1));
    with_batches(capacity.div_ceil(len).max(2), len, topic, store_errors, commit_errors)
}

/// [`channel`] with `count` batches (at least 2: one filling, one applied) of `len` records.
fn with_batches(
    count: usize,
    len: usize,
    topic: &str,
    store_errors: IntCounter,
    commit_errors: IntCounter,
) -> (Feed, Inbox, Offsets) {
    assert!(count >= 2 && len >= 1, "at least two batches of one record");
    let ledger = Arc::new(Ledger::default());
    let (tx, rx) = crossbeam_channel::bounded(count);
    let (back, empties) = crossbeam_channel::bounded(count);
    for _ in 1..count {
        back.send(Vec::with_capacity(len)).expect("the return channel has room for every batch");
    }
    let outbox = Arc::new(Outbox {
        filling: Mutex::new(Filling { batch: Vec::with_capacity(len), tx: Some(tx), empties }),
        len,
        ledger: ledger.clone(),
    });
    let feed = Feed { outbox: outbox.clone() };
    let inbox = Inbox { rx, back, ledger: ledger.clone(), current: Vec::new(), done: 0, next: HashMap::new() };
    let offsets = Offsets {
        topic: topic.to_owned(),
        ledger,
        outbox,
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
    /// Records sent to the worker. Written only when a batch is sent, on the poll thread, and read there.
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

/// The sending side, shared by the poll loop ([`Feed`]) and the drain on revoke ([`Offsets`]), which both
/// run on the poll thread: the lock is never contended, it only lets the consumer's context reach the batch.
struct Outbox {
    filling: Mutex<Filling>,
    /// Records per batch.
    len: usize,
    ledger: Arc<Ledger>,
}

struct Filling {
    /// The batch being filled.
    batch: Batch,
    /// `None` once the feed is closed: the worker then applies what was sent and stops.
    tx: Option<Sender<Batch>>,
    /// Applied batches, emptied, coming back from the worker.
    empties: Receiver<Batch>,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, Filling> {
        self.filling.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a record; sends the batch once it is full. True if it sent one.
    fn push(&self, item: Item) -> Result<bool, WorkerGone> {
        let mut f = self.lock();
        f.batch.push(item);
        if f.batch.len() < self.len {
            return Ok(false);
        }
        self.send(&mut f)?;
        Ok(true)
    }

    fn flush(&self) -> Result<(), WorkerGone> {
        self.send(&mut self.lock())
    }

    /// Sends the batch being filled (if it holds a record), counts it, and takes an empty one to fill next,
    /// waiting while every batch is in flight.
    fn send(&self, f: &mut Filling) -> Result<(), WorkerGone> {
        if f.batch.is_empty() {
            return Ok(());
        }
        let tx = f.tx.as_ref().ok_or(WorkerGone)?;
        let n = f.batch.len() as u64;
        tx.send(std::mem::take(&mut f.batch)).map_err(|_| WorkerGone)?;
        self.ledger.sent.fetch_add(n, Ordering::SeqCst);
        f.batch = f.empties.recv().map_err(|_| WorkerGone)?;
        Ok(())
    }
}

/// The poll thread's end of the channel. Dropping it sends what it holds and hangs up.
pub struct Feed {
    outbox: Arc<Outbox>,
}

impl Feed {
    /// Adds a record to the batch being filled and sends the batch once it is full (waiting while every
    /// batch is in flight: the back-pressure). True if it sent one. Fails only when the worker is gone.
    pub fn push(&self, item: Item) -> Result<bool, WorkerGone> {
        self.outbox.push(item)
    }

    /// Sends the batch being filled, if it holds a record.
    pub fn flush(&self) -> Result<(), WorkerGone> {
        self.outbox.flush()
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let mut f = self.outbox.lock();
        let _ = self.outbox.send(&mut f);
        f.tx = None;
    }
}

/// The worker's end of the channel.
pub struct Inbox {
    rx: Receiver<Batch>,
    /// Where applied batches go back, emptied.
    back: Sender<Batch>,
    ledger: Arc<Ledger>,
    /// The batch being applied, and how many of its records were.
    current: Batch,
    done: usize,
    /// Positions of the records being reported; reused from batch to batch.
    next: HashMap<i32, i64>,
}

impl Inbox {
    /// Waits up to `timeout` for a batch (unless one is partly applied). `apply` gets its quality events, and
    /// every record it went past is then reported applied; a batch applied whole goes back to the poll thread.
    /// Returns false once the poll thread has hung up and the channel is empty.
    pub fn apply_batch(&mut self, timeout: Duration, apply: impl FnOnce(&mut Events<'_>)) -> bool {
        if self.done == self.current.len() {
            match self.rx.recv_timeout(timeout) {
                Ok(batch) => {
                    self.current = batch;
                    self.done = 0;
                }
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
        let mut events = Events { items: self.current[self.done..].iter(), run: None, next: &mut self.next, taken: 0 };
        apply(&mut events);
        events.end_run();
        let taken = events.taken;
        if taken > 0 {
            self.done += taken;
            self.ledger.report(taken as u64, &mut self.next);
        }
        if self.done == self.current.len() {
            let mut spent = std::mem::take(&mut self.current);
            spent.clear();
            self.done = 0;
            // There is room for every batch; this fails only once the poll thread is gone.
            let _ = self.back.try_send(spent);
        }
        true
    }
}

/// The quality events of one batch, in order. Each record it passes (with an event or not) counts as applied
/// when the batch ends.
pub struct Events<'a> {
    items: std::slice::Iter<'a, Item>,
    /// The partition of the run of records passed last, and the next offset after it: records of one
    /// partition come in runs, so the positions are noted once per run, not per record.
    run: Option<(i32, i64)>,
    next: &'a mut HashMap<i32, i64>,
    taken: usize,
}

impl Events<'_> {
    fn end_run(&mut self) {
        if let Some((p, o)) = self.run.take() {
            self.next.insert(p, o);
        }
    }
}

impl Iterator for Events<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            let item = self.items.next()?;
            self.taken += 1;
            match self.run {
                Some((p, ref mut o)) if p == item.partition => *o = item.offset + 1,
                _ => {
                    self.end_run();
                    self.run = Some((item.partition, item.offset + 1));
                }
            }
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
    /// The batch the poll loop is filling, sent before a drain.
    outbox: Arc<Outbox>,
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

    /// The next offset to consume of `partition` as last stored (what the worker has applied), if any.
    pub fn stored_position(&self, partition: i32) -> Option<i64> {
        self.stored().get(&partition).copied()
    }

    /// Stores the offsets the worker has applied since the last call (librdkafka's auto-commit commits them).
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

    /// Sends the batch being filled and waits up to `timeout` for the worker to apply everything sent; true
    /// if it did.
    fn drain(&self, timeout: Duration) -> bool {
        // Records fetched before a revoke belong to the drain: without the worker they stay unapplied.
        self.outbox.flush().is_ok() && self.ledger.wait_applied(timeout)
    }

    /// Waits for the worker to apply what was fetched, stores, and commits `partitions` (all when `None`)
    /// synchronously. Nothing to commit is success.
    fn drain_and_commit<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: Option<&[i32]>,
        why: &str,
    ) -> KafkaResult<()> {
        if !self.drain(DRAIN_TIMEOUT) {
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
            issues_count: 0,
            issues: Default::default(),
            other_issues: 0,
            session: None,
            produced_us: 0,
            anomalies: Default::default(),
            ids: Default::default(),
        }
    }

    /// `count` batches of `len` records.
    fn ends(count: usize, len: usize) -> (Feed, Inbox, Offsets) {
        let counter = || IntCounter::new("errors", "errors").unwrap();
        with_batches(count, len, "t", counter(), counter())
    }

    fn turns(inbox: &mut Inbox) -> Vec<u32> {
        let mut seen = Vec::new();
        assert!(inbox.apply_batch(Duration::ZERO, |events| seen.extend(events.map(|e| e.turn_number))));
        seen
    }

    #[test]
    fn a_batch_hands_out_only_events_and_reports_every_record_it_passed() {
        let (feed, mut inbox, offsets) = ends(2, 16);
        assert_eq!(feed.push(item(0, 10, Some(event(1)))), Ok(false));
        assert_eq!(feed.push(item(1, 5, None)), Ok(false));
        assert_eq!(feed.push(item(0, 11, Some(event(2)))), Ok(false));
        feed.flush().unwrap();
        assert_eq!(turns(&mut inbox), [1, 2]);
        assert!(offsets.ledger.wait_applied(Duration::ZERO), "all three records count as applied");
        assert_eq!(offsets.ledger.lock().count, 3);
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(0, 12), (1, 6)]));
    }

    #[test]
    fn nothing_crosses_until_the_batch_is_full_or_flushed() {
        let (feed, mut inbox, offsets) = ends(2, 3);
        assert_eq!(feed.push(item(0, 0, Some(event(1)))), Ok(false));
        assert_eq!(feed.push(item(0, 1, Some(event(2)))), Ok(false));
        assert_eq!(turns(&mut inbox), [] as [u32; 0], "the batch being filled is not sent");
        assert_eq!(offsets.ledger.sent.load(Ordering::SeqCst), 0);
        assert_eq!(feed.push(item(0, 2, Some(event(3)))), Ok(true), "the third record fills the batch");
        assert_eq!(offsets.ledger.sent.load(Ordering::SeqCst), 3);
        assert_eq!(turns(&mut inbox), [1, 2, 3]);
        feed.flush().unwrap();
        assert_eq!(offsets.ledger.sent.load(Ordering::SeqCst), 3, "an empty batch is not sent");
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(0, 3)]));
    }

    #[test]
    fn positions_are_the_last_of_each_partition_in_a_batch() {
        let (feed, mut inbox, offsets) = ends(2, 8);
        for (p, o) in [(0, 1), (1, 1), (0, 2), (0, 3), (2, 0), (1, 2)] {
            feed.push(item(p, o, None)).unwrap();
        }
        feed.flush().unwrap();
        assert_eq!(turns(&mut inbox), [] as [u32; 0]);
        assert_eq!(offsets.ledger.lock().count, 6);
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(0, 4), (1, 3), (2, 1)]));
    }

    #[test]
    fn a_caller_that_stops_early_leaves_the_rest_for_the_next_call() {
        let (feed, mut inbox, offsets) = ends(2, 8);
        assert!(offsets.ledger.wait_applied(Duration::ZERO), "nothing sent yet");
        feed.push(item(0, 0, None)).unwrap();
        feed.push(item(0, 1, Some(event(1)))).unwrap();
        feed.push(item(0, 2, Some(event(2)))).unwrap();
        feed.flush().unwrap();
        assert!(!offsets.ledger.wait_applied(Duration::from_millis(10)));
        assert!(inbox.apply_batch(Duration::ZERO, |_| {}));
        assert!(!offsets.ledger.wait_applied(Duration::ZERO), "a call that took nothing reports nothing");
        let turn = |events: &mut Events<'_>| events.next().map(|e| e.turn_number);
        assert!(inbox.apply_batch(Duration::ZERO, |events| assert_eq!(turn(events), Some(1))));
        assert!(!offsets.ledger.wait_applied(Duration::ZERO), "the third record is not applied yet");
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(0, 2)]));
        assert!(inbox.apply_batch(Duration::ZERO, |events| assert_eq!(turn(events), Some(2))));
        assert!(offsets.ledger.wait_applied(Duration::ZERO));
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(0, 3)]));
    }

    #[test]
    fn a_drain_sends_the_batch_being_filled_and_waits_for_the_worker() {
        let (feed, mut inbox, offsets) = ends(2, 16);
        for o in 0..3 {
            feed.push(item(2, o, Some(event(1)))).unwrap();
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                inbox.apply_batch(Duration::from_secs(10), |events| events.for_each(drop));
            });
            assert!(offsets.drain(Duration::from_secs(10)));
        });
        assert_eq!(offsets.ledger.lock().count, 3);
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(2, 3)]));
    }

    #[test]
    fn the_batches_bound_what_is_in_flight_and_come_back_for_reuse() {
        let (feed, mut inbox, offsets) = ends(2, 2);
        let (done_tx, done) = std::sync::mpsc::channel();
        let feed = &feed;
        std::thread::scope(|s| {
            s.spawn(move || {
                // The first full batch takes the spare one; the second must wait for one to come back.
                for o in 0..4 {
                    feed.push(item(0, o, Some(event(o as u32)))).unwrap();
                }
                done_tx.send(()).unwrap();
            });
            assert!(done.recv_timeout(Duration::from_millis(200)).is_err(), "both batches are in flight");
            assert_eq!(turns(&mut inbox), [0, 1]);
            assert_eq!(done.recv_timeout(Duration::from_secs(10)), Ok(()), "the applied batch came back");
        });
        assert_eq!(turns(&mut inbox), [2, 3]);
        assert_eq!(offsets.ledger.lock().count, 4);
        // Both batches are back and keep their capacity: filling them again allocates nothing.
        let f = offsets.outbox.lock();
        assert!(f.batch.is_empty() && f.batch.capacity() == 2);
        let spare = f.empties.try_recv().expect("the other batch came back");
        assert!(spare.is_empty() && spare.capacity() == 2);
    }

    #[test]
    fn the_inbox_closes_with_the_feed_after_the_last_records() {
        let (feed, mut inbox, offsets) = ends(4, 3);
        for o in 0..7 {
            feed.push(item(0, o, Some(event(1)))).unwrap();
        }
        drop(feed);
        let mut sizes = Vec::new();
        while inbox.apply_batch(Duration::ZERO, |events| sizes.push(events.count())) {}
        assert_eq!(sizes, [3, 3, 1], "dropping the feed sent the partial batch");
        assert_eq!(offsets.ledger.take_next(), HashMap::from([(0, 7)]));
    }

    #[test]
    fn a_feed_without_a_worker_says_so() {
        let (feed, inbox, offsets) = ends(2, 2);
        drop(inbox);
        assert_eq!(feed.push(item(0, 0, None)), Ok(false));
        assert!(!offsets.drain(Duration::ZERO), "the batch being filled cannot be sent");
        assert_eq!(feed.push(item(0, 1, None)), Ok(false));
        assert_eq!(feed.push(item(0, 2, None)), Err(WorkerGone));
        assert_eq!(offsets.ledger.sent.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_public_channel_has_batches_of_batch_len() {
        let (_feed, _inbox, offsets) = {
            let counter = || IntCounter::new("errors", "errors").unwrap();
            channel(8192, "t", counter(), counter())
        };
        assert_eq!(offsets.outbox.len, BATCH_LEN);
        assert_eq!(offsets.outbox.lock().empties.len(), 8192 / BATCH_LEN - 1);
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
