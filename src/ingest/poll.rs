//! The poll thread's loop: polls the consumer, decodes each record on the spot into a small event (or
//! counts why it is none), and adds every record to the [`Feed`]'s batch, so that its offset moves on in
//! order with the others. A round waits up to a tick for the first record, then takes what librdkafka already
//! holds without waiting, until the batch is full or nothing more is there, and sends the batch: a drain
//! hands the worker full batches, a trickle single records without delay. Between rounds it stores the
//! applied offsets; at the end it drains and commits (README, How it works).

use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message as _};

use crate::decode::event::{Event, Normalizer};
use crate::decode::{Decoded, Decoder};
use crate::ingest::consumer::{ExporterConsumer, ExporterContext};
use crate::ingest::offsets::{Feed, Item, WorkerGone};
use crate::ingest::time_lag::TimeLag;
use crate::runtime::shutdown::RateLimit;

/// How long one round waits for a first record, and how often applied offsets are stored.
const POLL_TICK: Duration = Duration::from_millis(100);

/// The poll loop; returns when a stop is requested (after the final drain and commit) or the worker is gone.
/// `exemplars`: copy each record's ids into its event (PROMETHEUS_EXEMPLARS).
pub fn poll_loop(consumer: ExporterConsumer, feed: Feed, max_payload: usize, exemplars: bool) {
    let ctx = consumer.context();
    let mut records = Records {
        ctx,
        decoder: Decoder::new(max_payload),
        normalizer: Normalizer::with_exemplars(exemplars),
        bad_log: RateLimit::new(Duration::from_secs(10)),
        time_lag: TimeLag::default(),
    };
    let mut last_store = Instant::now();
    while !ctx.life.stop_requested() {
        if round(&consumer, &feed, &mut records).is_err() {
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
    consumer.unsubscribe();
    drop(consumer);
    info!("kafka consumer closed");
}

/// One round: up to [`POLL_TICK`] for the first record, then the records librdkafka already holds, until a
/// batch has gone out or none is waiting; then what was added is sent.
fn round(consumer: &ExporterConsumer, feed: &Feed, records: &mut Records<'_>) -> Result<(), WorkerGone> {
    let mut timeout = POLL_TICK;
    loop {
        let sent = match consumer.poll(timeout) {
            None => break,
            Some(Err(e)) => {
                records.ctx.count_error("consumer error", &e);
                false
            }
            Some(Ok(msg)) => feed.push(records.item(&msg))?,
        };
        if sent {
            break;
        }
        timeout = Duration::ZERO;
    }
    feed.flush()
}

/// Turns records into channel items, counting the ones that carry no quality event.
struct Records<'a> {
    ctx: &'a ExporterContext,
    decoder: Decoder,
    normalizer: Normalizer,
    bad_log: RateLimit,
    time_lag: TimeLag,
}

impl Records<'_> {
    fn item(&mut self, msg: &BorrowedMessage<'_>) -> Item {
        let (partition, offset) = (msg.partition(), msg.offset());
        let written_ms = msg.timestamp().to_millis();
        self.time_lag.fetched(partition, offset, written_ms);
        let mut event = self.event(msg.payload(), partition, offset);
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
            m.payload_missing.inc();
            if let Some(n) = self.bad_log.check() {
                warn!("record {partition}/{offset} has no payload ({n} bad records not logged)");
            }
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
            Err(e) => {
                m.messages_failed[e.reason()].inc();
                if let Some(n) = self.bad_log.check() {
                    warn!(
                        "record {partition}/{offset} ({} bytes) rejected: {e} [{}] ({n} bad records not logged)",
                        bytes.len(),
                        e.reason()
                    );
                }
                None
            }
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch (Kafka's timestamp unit).
fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
