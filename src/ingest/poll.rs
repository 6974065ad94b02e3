//! The poll thread's loop: takes records from librdkafka in batches ([`fetch`]), decodes each on the spot into
//! a small event (or counts why it is none), and adds every record to the [`Feed`]'s batch, so that its offset
//! moves on in order with the others. Between rounds it stores the applied offsets; at the end it drains and
//! commits. How a round runs and when a batch is sent: ARCHITECTURE.md, "How records move".

use std::time::{Duration, Instant};

use log::{debug, error, info};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaRespErr;

use crate::decode::event::{Event, Normalizer};
use crate::decode::{Decoded, Decoder};
use crate::ingest::batch::{Feed, Item, WorkerGone, BATCH_LEN};
use crate::ingest::consumer::{ExporterConsumer, ExporterContext};
use crate::ingest::events::BadRecord;
use crate::ingest::fetch::{self, FetchGuard, Record};
use crate::ingest::time_lag::TimeLag;

/// How long one round waits for a first record, and how often applied offsets are stored.
const POLL_TICK: Duration = Duration::from_millis(100);

/// The poll loop; returns when a stop is requested (after the final drain and commit) or the worker is gone.
/// `exemplars`: copy each record's ids into its event (PROMETHEUS_EXEMPLARS).
pub fn poll_loop(mut consumer: ExporterConsumer, feed: Feed, max_payload: usize, exemplars: bool) {
    consumer.context().fetch.open(&consumer);
    let waker = consumer.context().fetch.waker();
    consumer.set_nonempty_callback(waker);
    let ctx = consumer.context();
    let fetch_guard = FetchGuard(&ctx.fetch);
    let mut batch = fetch::Records::with_capacity(BATCH_LEN);
    let mut records = Records {
        ctx,
        decoder: Decoder::new(max_payload),
        normalizer: Normalizer::with_exemplars(exemplars),
        bad: BadRecord::new(ctx.metrics.payload_missing.clone(), ctx.metrics.messages_failed.clone()),
        time_lag: TimeLag::default(),
    };
    let mut last_store = Instant::now();
    while !ctx.life.stop_requested() {
        if round(&consumer, &feed, &mut records, &mut batch).is_err() {
            error!("worker thread is gone; stopping the consumer");
            break;
        }
        // One clock reading per round, not per record.
        let now = Instant::now();
        if now.duration_since(last_store) >= POLL_TICK {
            ctx.offsets.store_applied(&consumer);
            last_store = now;
            ctx.check_idle(now);
            ctx.update_time_lag(&mut records.time_lag, unix_ms());
        }
    }
    info!("stopping: draining in-flight records and committing offsets");
    ctx.offsets.commit_at_shutdown(&consumer);
    drop(feed);
    drop(batch); // librdkafka's records go back before their queue, and the queue before the consumer
    drop(fetch_guard);
    consumer.unsubscribe();
    drop(consumer);
    info!("kafka consumer closed");
}

/// One round: the consumer queue without waiting (with no fetch queue, up to [`POLL_TICK`] for a first
/// record), then the records waiting on the fetch queue, up to a batch, or, with none anywhere, up to
/// [`POLL_TICK`] for a first one; then what was added is sent.
fn round(
    consumer: &ExporterConsumer,
    feed: &Feed,
    records: &mut Records<'_>,
    batch: &mut fetch::Records,
) -> Result<(), WorkerGone> {
    let fetch = &records.ctx.fetch;
    let forwarding = fetch.is_open();
    let mut timeout = if forwarding { Duration::ZERO } else { POLL_TICK };
    let mut from_consumer_queue = false;
    loop {
        let sent = match consumer.poll(timeout) {
            None => break,
            Some(Err(e)) => {
                records.ctx.errors.consumer.emit(&e);
                false
            }
            Some(Ok(msg)) => {
                from_consumer_queue = true;
                let (partition, offset) = (msg.partition(), msg.offset());
                feed.push(records.item(partition, offset, msg.timestamp().to_millis(), msg.payload()))?
            }
        };
        if sent {
            break;
        }
        timeout = Duration::ZERO;
    }
    if forwarding {
        batch.clear();
        fetch.consume(Duration::ZERO, BATCH_LEN, batch);
        if batch.is_empty() && !from_consumer_queue {
            fetch.consume(POLL_TICK, 1, batch);
            fetch.consume(Duration::ZERO, BATCH_LEN, batch);
        }
        for r in batch.iter() {
            push_record(feed, records, &r)?;
        }
        batch.clear();
    }
    feed.flush()
}

/// Adds one record of the fetch queue to the feed (a consumer error is counted instead).
fn push_record(feed: &Feed, records: &mut Records<'_>, r: &Record<'_>) -> Result<bool, WorkerGone> {
    if r.error != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        records.ctx.errors.consumer.emit(&KafkaError::MessageConsumption(r.error.into()));
        return Ok(false);
    }
    feed.push(records.item(r.partition, r.offset, r.timestamp_ms, r.payload))
}

/// Turns records into channel items, counting the ones that carry no quality event.
struct Records<'a> {
    ctx: &'a ExporterContext,
    decoder: Decoder,
    normalizer: Normalizer,
    bad: BadRecord,
    time_lag: TimeLag,
}

impl Records<'_> {
    /// The channel item of the record at `partition`/`offset`, written at `written_ms` (Kafka's timestamp).
    fn item(&mut self, partition: i32, offset: i64, written_ms: Option<i64>, payload: Option<&[u8]>) -> Item {
        self.time_lag.fetched(partition, offset, written_ms);
        let mut event = self.event(payload, partition, offset);
        if let (Some(ev), Some(ms)) = (event.as_mut(), written_ms) {
            if ev.produced_us == 0 {
                ev.produced_us = ms.saturating_mul(1000); // no producer stamp: when Kafka says it was written
            }
        }
        Item { partition, offset, event }
    }

    fn event(&mut self, payload: Option<&[u8]>, partition: i32, offset: i64) -> Option<Event> {
        let m = &self.ctx.metrics;
        m.messages_received.inc();
        let Some(bytes) = payload else {
            self.bad.no_payload(partition, offset);
            return None;
        };
        match self.decoder.decode(bytes) {
            Ok(Decoded::Quality(v)) => Some(self.normalizer.event(&v)),
            Ok(Decoded::WrongScope(scope)) => {
                m.wrong_scope.inc();
                debug!("record {partition}/{offset}: scope {scope:?} is not \"quality\"");
                None
            }
            Ok(Decoded::Other(kind)) => {
                m.count_other(kind);
                None
            }
            Ok(Decoded::QualityAlert) => {
                m.quality_alerts.inc();
                None
            }
            Err(e) => {
                self.bad.rejected(partition, offset, bytes.len(), &e);
                None
            }
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch (Kafka's timestamp unit).
fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
