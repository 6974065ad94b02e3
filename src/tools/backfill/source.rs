//! What `backfill` reads: each partition of the topic between the offsets of `--from` and `--to`, assigned
//! directly (no consumer group is joined, nothing is committed), one librdkafka queue per partition so that
//! the caller can always take the next record of the partition whose head is oldest.
//!
//! The first offset comes from the broker's lookup by timestamp (ListOffsets, `offsets_for_times`) of `--from`
//! less a margin (the reorder window); a partition is read up to its first record whose Kafka timestamp is at
//! or after `--to` plus the margin (the offset a lookup of that time gives; not looked up, since tansu 0.6.0
//! answers such lookups wrongly). Kafka's record timestamps bound what is read; the caller selects by event
//! time. A broker that does not answer lookups by timestamp (librdkafka's mock cluster answers "none" for
//! every time) is detected by asking for time 0, which a non-empty partition must answer with its first
//! offset; otherwise partitions are read from their first offset, and the event time still selects. No
//! partition is read past the high watermark taken at the start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;

/// What librdkafka may hold pre-fetched for all partitions together (KiB): memory stays flat whatever the
/// partition count (each partition gets its share, from 64 KiB to 2 MiB).
const PREFETCH_BUDGET_KIB: usize = 8 * 1024;
/// The most one fetch response may carry (all partitions together).
const FETCH_MAX_BYTES: usize = 1024 * 1024;
/// How long a request for metadata or offsets may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A partition that yields nothing for this long while records remain ends the run with an error.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("kafka: {}", crate::config::kafka::printable_error(.0))]
    Kafka(#[from] KafkaError),
    #[error("topic {0:?} does not exist or has no partitions")]
    NoTopic(String),
    #[error("record {partition}/{offset} arrived outside its partition's queue")]
    Misrouted { partition: i32, offset: i64 },
    #[error("partition {partition} gave no record for {secs} s at offset {offset} (range ends at {end}): {last}")]
    Stalled { partition: i32, offset: i64, end: i64, secs: u64, last: String },
}

/// One record, borrowed from librdkafka for the time of the caller's closure.
pub struct Raw<'a> {
    pub partition: i32,
    pub offset: i64,
    /// Kafka's timestamp (create or log-append time), milliseconds.
    pub kafka_ms: Option<i64>,
    pub payload: Option<&'a [u8]>,
}

/// A partition's range and progress.
pub struct Part {
    pub id: i32,
    /// First offset read and the offset where reading stops (exclusive).
    pub start: i64,
    pub end: i64,
    /// Records read.
    pub read: u64,
    next: i64,
    done: bool,
    queue: Option<PartitionQueue<DefaultConsumerContext>>,
}

impl Part {
    pub fn done(&self) -> bool {
        self.done
    }
}

pub struct Source {
    consumer: Arc<BaseConsumer>,
    pub topic: String,
    pub parts: Vec<Part>,
    /// Whether the broker answered lookups by timestamp (else partitions are read from their first offset).
    pub by_timestamp: bool,
    /// A partition is read up to its first record stamped (Kafka timestamp) at or after this.
    stop_ms: i64,
    last_error: String,
}

impl Source {
    /// Looks the range up and assigns the partitions; `from_ms`/`to_ms` are already widened by the margin.
    pub fn open(kafka: &KafkaConfig, from_ms: i64, to_ms: i64) -> Result<Source, SourceError> {
        let topic = kafka.topic.clone();
        // A first client only for the partition count: the pre-fetch limits below depend on it.
        let probe: BaseConsumer = Self::config(kafka, 2048).create()?;
        let md = probe.fetch_metadata(Some(&topic), REQUEST_TIMEOUT)?;
        drop(probe);
        let mut ids: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        ids.sort_unstable();
        if ids.is_empty() {
            return Err(SourceError::NoTopic(topic));
        }
        let kib = (PREFETCH_BUDGET_KIB / ids.len()).clamp(64, 2048);
        let consumer: Arc<BaseConsumer> = Arc::new(Self::config(kafka, kib).create()?);
        let mut marks = Vec::with_capacity(ids.len());
        for &p in &ids {
            marks.push(consumer.fetch_watermarks(&topic, p, REQUEST_TIMEOUT)?);
        }
        let lookup = |ms: i64| -> Result<Vec<Option<i64>>, SourceError> {
            let mut tpl = TopicPartitionList::new();
            for &p in &ids {
                tpl.add_partition_offset(&topic, p, Offset::Offset(ms))?;
            }
            let got = consumer.offsets_for_times(tpl, REQUEST_TIMEOUT)?;
            Ok(ids
                .iter()
                .map(|&p| match got.find_partition(&topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) if o >= 0 => Some(o),
                    _ => None, // no record at or after that time
                })
                .collect())
        };
        let probe = lookup(0)?;
        // Time 0 is at or before every record: a broker that looks offsets up by time answers each non-empty
        // partition's first offset.
        let by_timestamp = probe.iter().zip(&marks).all(|(o, (low, high))| low >= high || *o == Some(*low));
        let starts = if by_timestamp { lookup(from_ms)? } else { vec![] };
        let mut parts = Vec::with_capacity(ids.len());
        let mut tpl = TopicPartitionList::new();
        for (i, &id) in ids.iter().enumerate() {
            let (low, high) = marks[i];
            // The end is not looked up: tansu 0.6.0 answers offset 0 for a time after the last record, where
            // Kafka answers none. Reading stops at the first record stamped at or after `to_ms` instead, which
            // is the offset a correct lookup gives.
            let (start, end) =
                if by_timestamp { (starts[i].unwrap_or(high).clamp(low, high), high) } else { (low, high) };
            let done = start >= end;
            if !done {
                tpl.add_partition_offset(&topic, id, Offset::Offset(start))?;
            }
            parts.push(Part { id, start, end, read: 0, next: start, done, queue: None });
        }
        // Each partition's queue is split off before the assignment, so that no record reaches the main queue.
        for p in parts.iter_mut().filter(|p| !p.done) {
            p.queue = consumer.split_partition_queue(&topic, p.id);
        }
        consumer.assign(&tpl)?;
        Ok(Source { consumer, topic, parts, by_timestamp, stop_ms: to_ms, last_error: String::new() })
    }

    /// The client: the daemon's connection settings, no group joined, no commits; `kib` pre-fetched per partition.
    fn config(kafka: &KafkaConfig, kib: usize) -> rdkafka::ClientConfig {
        let mut cc = kafka.client_config();
        // The operator's extra librdkafka properties (KAFKA_CONSUMER_PROPERTIES), then what reading history needs.
        for (k, v) in &kafka.extra_properties {
            cc.set(k, v);
        }
        // librdkafka wants a group id even for assign(); this one is never joined and never committed to.
        let group = format!("dashflow-backfill-{}-{}", std::process::id(), crate::metrics::unix_now() as u64);
        cc.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            // With one queue per partition these limits apply per partition (librdkafka's CONFIGURATION.md).
            .set("queued.max.messages.kbytes", kib.to_string())
            .set("max.partition.fetch.bytes", (kib * 1024).to_string())
            .set("fetch.max.bytes", FETCH_MAX_BYTES.to_string())
            // A partition whose queue is full is fetched again as soon as it has room, not after librdkafka's
            // default 1 s back-off (as the daemon does: benches/RESULTS.md).
            .set("fetch.queue.backoff.ms", "1");
        cc
    }

    /// The next record of partition `i`, handed to `f`; `Ok(None)` once the partition's range is read.
    pub fn next<R>(&mut self, i: usize, mut f: impl FnMut(Raw<'_>) -> R) -> Result<Option<R>, SourceError> {
        let mut waiting_since: Option<Instant> = None;
        loop {
            let p = &mut self.parts[i];
            if p.done || p.next >= p.end {
                p.done = true;
                p.queue = None;
                return Ok(None);
            }
            let Some(queue) = p.queue.as_ref() else {
                p.done = true;
                return Ok(None);
            };
            match queue.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    p.next = m.offset() + 1;
                    if m.offset() >= p.end {
                        p.done = true;
                        continue;
                    }
                    if m.timestamp().to_millis().is_some_and(|ms| ms >= self.stop_ms) {
                        p.end = m.offset();
                        p.done = true;
                        continue;
                    }
                    p.read += 1;
                    let raw = Raw {
                        partition: p.id,
                        offset: m.offset(),
                        kafka_ms: m.timestamp().to_millis(),
                        payload: m.payload(),
                    };
                    return Ok(Some(f(raw)));
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    p.done = true;
                }
                Some(Err(e)) => self.last_error = e.to_string(),
                None => {
                    // The main queue carries errors and other events; serve it while waiting. A record there
                    // would be one its partition's queue missed: never silently dropped.
                    match self.consumer.poll(Duration::ZERO) {
                        Some(Err(e)) => self.last_error = e.to_string(),
                        Some(Ok(m)) => {
                            return Err(SourceError::Misrouted { partition: m.partition(), offset: m.offset() })
                        }
                        None => {}
                    }
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= STALL_TIMEOUT {
                        let p = &self.parts[i];
                        return Err(SourceError::Stalled {
                            partition: p.id,
                            offset: p.next,
                            end: p.end,
                            secs: STALL_TIMEOUT.as_secs(),
                            last: if self.last_error.is_empty() {
                                "no error reported".into()
                            } else {
                                self.last_error.clone()
                            },
                        });
                    }
                }
            }
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        // The partition queues go before the consumer they belong to.
        for p in &mut self.parts {
            p.queue = None;
        }
        let _ = self.consumer.unassign();
    }
}
