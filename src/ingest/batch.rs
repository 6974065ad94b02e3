//! The batch channel between the poll thread and the worker: batches of records, allocated at start, circulate
//! from the poll thread ([`Feed`] fills and sends) to the worker ([`Inbox`] applies, reports the positions
//! applied to the ledger and hands the emptied batch back). Why batches, how many and what bounds them:
//! ARCHITECTURE.md, "How records move". Nothing here knows Kafka: the offset protocol ([`super::offsets`])
//! stores and commits what the [`Drain`] end says was applied.
//!
//! - Every record, quality event or not, goes through the worker, so positions move on in order.
//! - A batch is sent when full ([`Feed::push`]) or when the poll thread has nothing more waiting
//!   ([`Feed::flush`]); when every batch is in flight the poll thread waits: the back-pressure.
//! - [`Drain`] sends the batch being filled and waits for the worker to apply everything sent (before a
//!   commit on revoke and at shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::ledger::Ledger;
use crate::decode::event::Event;

/// The most records in one batch. Large, so that a hand-off, the worker's wake-up and its report (a lock,
/// the positions) are shared by many records; small enough that a full batch goes out within about half a
/// millisecond of a drain, and that a busy poll thread gets back to its timers often.
pub const BATCH_LEN: usize = 512;

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
/// [`BATCH_LEN`]: the poll thread's [`Feed`], the worker's [`Inbox`], and the [`Drain`] the offset protocol
/// waits on.
pub fn channel(capacity: usize) -> (Feed, Inbox, Drain) {
    let len = BATCH_LEN.min(capacity.max(1));
    with_batches(capacity.div_ceil(len).max(2), len)
}

/// [`channel`] with `count` batches (at least 2: one filling, one applied) of `len` records.
fn with_batches(count: usize, len: usize) -> (Feed, Inbox, Drain) {
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
    (feed, inbox, Drain { outbox, ledger })
}

/// The sending side, shared by the poll loop ([`Feed`]) and the drain on revoke ([`Drain`]), which both
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
        self.ledger.sent(n);
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

/// The poll thread's view of what the worker applied, for the offset protocol: it sends the batch being
/// filled and waits for the worker, and takes the positions applied since it last looked.
pub struct Drain {
    /// The batch the poll loop is filling, sent before a drain.
    outbox: Arc<Outbox>,
    ledger: Arc<Ledger>,
}

impl Drain {
    /// Sends the batch being filled and waits up to `timeout` for the worker to apply everything sent; true
    /// if it did.
    pub fn drain(&self, timeout: Duration) -> bool {
        // Records fetched before a revoke belong to the drain: without the worker they stay unapplied.
        self.outbox.flush().is_ok() && self.ledger.wait_applied(timeout)
    }

    /// The next offset to consume per partition, applied since the last call.
    pub fn take_applied(&self) -> HashMap<i32, i64> {
        self.ledger.take_next()
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
    fn ends(count: usize, len: usize) -> (Feed, Inbox, Drain) {
        with_batches(count, len)
    }

    fn turns(inbox: &mut Inbox) -> Vec<u32> {
        let mut seen = Vec::new();
        assert!(inbox.apply_batch(Duration::ZERO, |events| seen.extend(events.map(|e| e.turn_number))));
        seen
    }

    #[test]
    fn a_batch_hands_out_only_events_and_reports_every_record_it_passed() {
        let (feed, mut inbox, drain) = ends(2, 16);
        assert_eq!(feed.push(item(0, 10, Some(event(1)))), Ok(false));
        assert_eq!(feed.push(item(1, 5, None)), Ok(false));
        assert_eq!(feed.push(item(0, 11, Some(event(2)))), Ok(false));
        feed.flush().unwrap();
        assert_eq!(turns(&mut inbox), [1, 2]);
        assert!(drain.ledger.wait_applied(Duration::ZERO), "all three records count as applied");
        assert_eq!(drain.ledger.applied_count(), 3);
        assert_eq!(drain.ledger.take_next(), HashMap::from([(0, 12), (1, 6)]));
    }

    #[test]
    fn nothing_crosses_until_the_batch_is_full_or_flushed() {
        let (feed, mut inbox, drain) = ends(2, 3);
        assert_eq!(feed.push(item(0, 0, Some(event(1)))), Ok(false));
        assert_eq!(feed.push(item(0, 1, Some(event(2)))), Ok(false));
        assert_eq!(turns(&mut inbox), [] as [u32; 0], "the batch being filled is not sent");
        assert_eq!(drain.ledger.sent_count(), 0);
        assert_eq!(feed.push(item(0, 2, Some(event(3)))), Ok(true), "the third record fills the batch");
        assert_eq!(drain.ledger.sent_count(), 3);
        assert_eq!(turns(&mut inbox), [1, 2, 3]);
        feed.flush().unwrap();
        assert_eq!(drain.ledger.sent_count(), 3, "an empty batch is not sent");
        assert_eq!(drain.ledger.take_next(), HashMap::from([(0, 3)]));
    }

    #[test]
    fn positions_are_the_last_of_each_partition_in_a_batch() {
        let (feed, mut inbox, drain) = ends(2, 8);
        for (p, o) in [(0, 1), (1, 1), (0, 2), (0, 3), (2, 0), (1, 2)] {
            feed.push(item(p, o, None)).unwrap();
        }
        feed.flush().unwrap();
        assert_eq!(turns(&mut inbox), [] as [u32; 0]);
        assert_eq!(drain.ledger.applied_count(), 6);
        assert_eq!(drain.ledger.take_next(), HashMap::from([(0, 4), (1, 3), (2, 1)]));
    }

    #[test]
    fn a_caller_that_stops_early_leaves_the_rest_for_the_next_call() {
        let (feed, mut inbox, drain) = ends(2, 8);
        assert!(drain.ledger.wait_applied(Duration::ZERO), "nothing sent yet");
        feed.push(item(0, 0, None)).unwrap();
        feed.push(item(0, 1, Some(event(1)))).unwrap();
        feed.push(item(0, 2, Some(event(2)))).unwrap();
        feed.flush().unwrap();
        assert!(!drain.ledger.wait_applied(Duration::from_millis(10)));
        assert!(inbox.apply_batch(Duration::ZERO, |_| {}));
        assert!(!drain.ledger.wait_applied(Duration::ZERO), "a call that took nothing reports nothing");
        let turn = |events: &mut Events<'_>| events.next().map(|e| e.turn_number);
        assert!(inbox.apply_batch(Duration::ZERO, |events| assert_eq!(turn(events), Some(1))));
        assert!(!drain.ledger.wait_applied(Duration::ZERO), "the third record is not applied yet");
        assert_eq!(drain.ledger.take_next(), HashMap::from([(0, 2)]));
        assert!(inbox.apply_batch(Duration::ZERO, |events| assert_eq!(turn(events), Some(2))));
        assert!(drain.ledger.wait_applied(Duration::ZERO));
        assert_eq!(drain.ledger.take_next(), HashMap::from([(0, 3)]));
    }

    #[test]
    fn a_drain_sends_the_batch_being_filled_and_waits_for_the_worker() {
        let (feed, mut inbox, drain) = ends(2, 16);
        for o in 0..3 {
            feed.push(item(2, o, Some(event(1)))).unwrap();
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                inbox.apply_batch(Duration::from_secs(10), |events| events.for_each(drop));
            });
            assert!(drain.drain(Duration::from_secs(10)));
        });
        assert_eq!(drain.ledger.applied_count(), 3);
        assert_eq!(drain.ledger.take_next(), HashMap::from([(2, 3)]));
    }

    #[test]
    fn the_batches_bound_what_is_in_flight_and_come_back_for_reuse() {
        let (feed, mut inbox, drain) = ends(2, 2);
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
        assert_eq!(drain.ledger.applied_count(), 4);
        // Both batches are back and keep their capacity: filling them again allocates nothing.
        let f = drain.outbox.lock();
        assert!(f.batch.is_empty() && f.batch.capacity() == 2);
        let spare = f.empties.try_recv().expect("the other batch came back");
        assert!(spare.is_empty() && spare.capacity() == 2);
    }

    #[test]
    fn the_inbox_closes_with_the_feed_after_the_last_records() {
        let (feed, mut inbox, drain) = ends(4, 3);
        for o in 0..7 {
            feed.push(item(0, o, Some(event(1)))).unwrap();
        }
        drop(feed);
        let mut sizes = Vec::new();
        while inbox.apply_batch(Duration::ZERO, |events| sizes.push(events.count())) {}
        assert_eq!(sizes, [3, 3, 1], "dropping the feed sent the partial batch");
        assert_eq!(drain.ledger.take_next(), HashMap::from([(0, 7)]));
    }

    #[test]
    fn a_feed_without_a_worker_says_so() {
        let (feed, inbox, drain) = ends(2, 2);
        drop(inbox);
        assert_eq!(feed.push(item(0, 0, None)), Ok(false));
        assert!(!drain.drain(Duration::ZERO), "the batch being filled cannot be sent");
        assert_eq!(feed.push(item(0, 1, None)), Ok(false));
        assert_eq!(feed.push(item(0, 2, None)), Err(WorkerGone));
        assert_eq!(drain.ledger.sent_count(), 0);
    }

    #[test]
    fn the_public_channel_has_batches_of_batch_len() {
        let (_feed, _inbox, drain) = channel(8192);
        assert_eq!(drain.outbox.len, BATCH_LEN);
        assert_eq!(drain.outbox.lock().empties.len(), 8192 / BATCH_LEN - 1);
    }
}
