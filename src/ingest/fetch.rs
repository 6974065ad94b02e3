//! Records in batches straight from librdkafka: a queue of the exporter's own to which the fetch queue of
//! every assigned partition is forwarded, read with `rd_kafka_consume_batch_queue` (issue 17).
//!
//! `BaseConsumer::poll` hands out one record per call, each wrapped in an event and a reference count, with
//! four clock readings per record between librdkafka and rdkafka. Here a call takes every record that is
//! waiting, up to a batch, with one reading. Rebalances, statistics, commit results and errors stay on the
//! consumer queue, which the poll thread still polls every round, so the context's callbacks run as before.
//!
//! The partitions are forwarded in the assign callback, before librdkafka starts fetching them, so a
//! partition's records all arrive on this queue, in order. A partition whose forwarding failed keeps
//! delivering on the consumer queue, which the poll loop reads too. Records that were fetched before a revoke
//! are dropped by librdkafka's version barrier on this queue as on the consumer queue.
//!
//! While the poll thread waits on this queue, an event arriving on the consumer queue wakes it
//! ([`FetchQueue::waker`], librdkafka's yield), so rebalances are served as soon as they come.
//!
//! The queue must be destroyed before the consumer: the poll loop holds a [`FetchGuard`] for that.

use std::ffi::CString;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use log::warn;
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

/// The forwarding target, opened by the poll loop and closed before the consumer is dropped.
#[derive(Default)]
pub struct FetchQueue {
    /// Read by the poll thread and by the waker (on librdkafka's threads); written by open and close.
    queue: Arc<RwLock<Option<Queue>>>,
}

/// The native queue (owned: destroyed by [`FetchQueue::close`]).
struct Queue(*mut rd::rd_kafka_queue_t);

// SAFETY: librdkafka's queue calls are thread-safe; the pointer is only used under the lock, which close()
// takes exclusively before destroying it.
unsafe impl Send for Queue {}
unsafe impl Sync for Queue {}

impl FetchQueue {
    /// Creates the queue on `consumer`'s client. Until it is open, nothing is forwarded and every record
    /// arrives on the consumer queue.
    pub fn open<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        // SAFETY: the client pointer is valid for the consumer's lifetime; the queue is destroyed in close(),
        // which the poll loop calls before dropping the consumer.
        let q = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        if q.is_null() {
            warn!("cannot create a fetch queue: records are read one at a time");
            return;
        }
        *self.write() = Some(Queue(q));
    }

    /// A callback that makes a wait on this queue return at once (librdkafka's yield; a no-op once closed):
    /// the consumer queue's non-empty callback, so that an event there does not wait for the tick.
    pub fn waker(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = Arc::clone(&self.queue);
        move || {
            if let Some(Queue(q)) = shared.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
                // SAFETY: the queue is open while the read lock is held.
                unsafe { rd::rd_kafka_queue_yield(*q) };
            }
        }
    }

    /// Forwards the fetch queues of `partitions` of `topic` here (called in the assign callback, before
    /// librdkafka starts fetching them). Returns how many were forwarded.
    pub fn forward<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, topic: &str, partitions: &[i32]) -> usize {
        let guard = self.lock();
        let Some(Queue(q)) = guard.as_ref() else { return 0 };
        let Ok(topic) = CString::new(topic) else { return 0 };
        let mut n = 0;
        for &p in partitions {
            // SAFETY: valid client and topic string; the partition handle is destroyed right after forwarding
            // (the forwarding stays with the partition's queue).
            unsafe {
                let pq = rd::rd_kafka_queue_get_partition(consumer.client().native_ptr(), topic.as_ptr(), p);
                if pq.is_null() {
                    continue;
                }
                rd::rd_kafka_queue_forward(pq, *q);
                rd::rd_kafka_queue_destroy(pq);
            }
            n += 1;
        }
        n
    }

    /// Whether the queue is open (records of forwarded partitions arrive here).
    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// Appends up to `max` waiting records to `batch` (no more than it has room for), waiting up to `timeout`
    /// for them: the wait ends when `max` have come or the time is up.
    pub fn consume(&self, timeout: Duration, max: usize, batch: &mut Records) {
        let guard = self.lock();
        let Some(Queue(q)) = guard.as_ref() else { return };
        let len = batch.ptrs.len();
        let room = max.min(batch.ptrs.capacity() - len);
        if room == 0 {
            return;
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: the array has `room` free slots after `len`; librdkafka writes `n <= room` message pointers
        // there, each owned by `batch` from then on and destroyed by it.
        unsafe {
            let n = rd::rd_kafka_consume_batch_queue(*q, ms, batch.ptrs.as_mut_ptr().add(len), room);
            batch.ptrs.set_len(len + n.max(0) as usize);
        }
    }

    /// Destroys the queue; records still in it are dropped (they were never applied, so their offsets were
    /// not stored).
    pub fn close(&self) {
        if let Some(Queue(q)) = self.write().take() {
            // SAFETY: the queue was created by open() and is destroyed once.
            unsafe { rd::rd_kafka_queue_destroy(q) };
        }
    }

    fn lock(&self) -> std::sync::RwLockReadGuard<'_, Option<Queue>> {
        self.queue.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Queue>> {
        self.queue.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Closes the queue when the poll loop ends, also by a panic, before the consumer is dropped.
pub struct FetchGuard<'a>(pub &'a FetchQueue);

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A batch of records taken from the queue, owned until cleared (their memory is librdkafka's).
pub struct Records {
    ptrs: Vec<*mut rd::rd_kafka_message_t>,
}

/// One record of a [`Records`] batch, borrowed.
pub struct Record<'a> {
    pub partition: i32,
    pub offset: i64,
    /// librdkafka's error for this position (a consumer error, not a record), 0 for a record.
    pub error: rd::rd_kafka_resp_err_t,
    /// The record's timestamp in milliseconds, when it has one.
    pub timestamp_ms: Option<i64>,
    pub payload: Option<&'a [u8]>,
}

impl Records {
    /// Room for `len` records, allocated once.
    pub fn with_capacity(len: usize) -> Self {
        Records { ptrs: Vec::with_capacity(len.max(1)) }
    }

    pub fn len(&self) -> usize {
        self.ptrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ptrs.is_empty()
    }

    /// The records in queue order.
    pub fn iter(&self) -> impl Iterator<Item = Record<'_>> {
        self.ptrs.iter().map(|&m| {
            // SAFETY: every pointer came from rd_kafka_consume_batch_queue and is not yet destroyed; the
            // payload lives as long as the message, which outlives the borrow of self.
            unsafe {
                let msg = &*m;
                let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
                let ts = rd::rd_kafka_message_timestamp(m, &mut kind);
                let payload =
                    (!msg.payload.is_null()).then(|| std::slice::from_raw_parts(msg.payload as *const u8, msg.len));
                Record {
                    partition: msg.partition,
                    offset: msg.offset,
                    error: msg.err,
                    // As rdkafka's Timestamp::to_millis: none when not available or -1.
                    timestamp_ms: (kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts != -1)
                        .then_some(ts),
                    payload,
                }
            }
        })
    }

    /// Gives the records back to librdkafka.
    pub fn clear(&mut self) {
        for m in self.ptrs.drain(..) {
            // SAFETY: each message is destroyed exactly once.
            unsafe { rd::rd_kafka_message_destroy(m) };
        }
    }
}

impl Drop for Records {
    fn drop(&mut self) {
        self.clear();
    }
}
