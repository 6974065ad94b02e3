//! The group consumer and its context. librdkafka calls the context on the poll thread, inside `poll()`:
//! rebalances (a revoke drains and commits through [`Offsets`]), statistics (per-partition lag and the
//! broker states behind readiness), errors and librdkafka's own log lines. It also notices a member that
//! stays connected without a partition and says so in the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::ingest::events::KafkaClientErrors;
use crate::ingest::fetch::FetchQueue;
use crate::ingest::offsets::Offsets;
use crate::ingest::time_lag::TimeLag;
use crate::metrics::Metrics;
use crate::runtime::logging::RateLimit;
use crate::runtime::shutdown::Lifecycle;

/// The consumer's context: rebalance, statistics, errors and logs all arrive here, on the poll thread.
pub struct ExporterContext {
    topic: String,
    pub(super) metrics: Metrics,
    pub(super) life: Arc<Lifecycle>,
    pub(super) offsets: Offsets,
    /// Where the assigned partitions' records are forwarded (opened and closed by the poll loop).
    pub(super) fetch: FetchQueue,
    /// Consumer, client and rebalance errors: one counter, a log limit each.
    pub(super) errors: KafkaClientErrors,
    rdkafka_log: RateLimit,
    idle: Mutex<IdleWatch>,
    /// Partitions of the topic assigned now (kept by the rebalance callbacks).
    assigned: Mutex<Vec<i32>>,
    /// Per partition, the broker's high watermark and the group's committed offset from the last statistics
    /// (-1 where unknown).
    watermarks: Mutex<HashMap<i32, (i64, i64)>>,
}

/// How long this member has held no partition, and when that was last logged.
struct IdleWatch {
    group: String,
    /// Two session timeouts: by then a broker that expires dead members (as Kafka does) has handed their
    /// partitions on, so an assignment still empty means this member has none to get.
    patience: Duration,
    empty_since: Option<Instant>,
    last_warning: Option<Instant>,
}

/// A member that holds no partition is warned about again this often while it stays so.
const IDLE_WARNING_EVERY: Duration = Duration::from_secs(300);

impl ExporterContext {
    /// `offsets` is the poll thread's offset book ([`Offsets::new`]).
    pub fn new(cfg: &KafkaConfig, metrics: Metrics, life: Arc<Lifecycle>, offsets: Offsets) -> Self {
        ExporterContext {
            errors: KafkaClientErrors::new(&metrics.consumer_errors),
            topic: cfg.topic.clone(),
            metrics,
            life,
            offsets,
            fetch: FetchQueue::default(),
            rdkafka_log: RateLimit::new(Duration::from_secs(10)),
            assigned: Mutex::new(Vec::new()),
            watermarks: Mutex::new(HashMap::new()),
            idle: Mutex::new(IdleWatch {
                group: cfg.group_id.clone(),
                patience: 2 * Duration::from_millis(u64::from(cfg.session_timeout_ms)),
                empty_since: Some(Instant::now()),
                last_warning: None,
            }),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, IdleWatch> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Warns (then every [`IDLE_WARNING_EVERY`]) while the member is connected but has held no partition for
    /// longer than its patience: `dashstream_exporter_kafka_assigned_partitions` is 0 then, and the log says why
    /// that can be.
    pub(super) fn check_idle(&self, now: Instant) {
        if !self.life.ready() {
            return; // not connected: "kafka cluster unreachable" has been logged instead
        }
        let mut w = self.idle();
        let Some(since) = w.empty_since else { return };
        let idle = now.saturating_duration_since(since);
        if idle < w.patience || w.last_warning.is_some_and(|t| now.saturating_duration_since(t) < IDLE_WARNING_EVERY) {
            return;
        }
        w.last_warning = Some(now);
        warn!(
            "no partition of topic {:?} assigned for {} s although connected: this member of group {:?} consumes \
             nothing. Either the group has at least as many other members as the topic has partitions \
             (a standby), or the broker still counts a member that died as their owner (docs/operations.md, Troubleshooting)",
            self.topic,
            idle.as_secs(),
            w.group
        );
    }

    /// Sets the time-lag gauges of the assigned partitions from what the poll thread fetched (`t`), what the
    /// worker applied and the last statistics; called by the poll thread once per tick.
    pub(super) fn update_time_lag(&self, t: &mut TimeLag, now_ms: i64) {
        let assigned = lock(&self.assigned).clone();
        t.retain(|p| assigned.contains(&p));
        let marks = lock(&self.watermarks);
        let mut max = 0.0f64;
        for &p in &assigned {
            let (high, committed) = marks.get(&p).copied().unwrap_or((-1, -1));
            let next = self.offsets.stored_position(p).or((committed >= 0).then_some(committed));
            let label = p.to_string();
            match t.seconds(p, next, (high >= 0).then_some(high), now_ms) {
                Some(s) => {
                    self.metrics.partition_time_lag.get(&label).set(s);
                    max = max.max(s);
                }
                None => {
                    self.metrics.partition_time_lag.remove(&label);
                }
            }
        }
        self.metrics.consumer_time_lag.set(max);
    }

    fn set_ready(&self, ready: bool) {
        self.life.set_ready(ready);
        self.metrics.ready.set(i64::from(ready));
    }
}

impl ClientContext for ExporterContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                if let Some(n) = self.rdkafka_log.check() {
                    warn!(target: "librdkafka", "{fac}: {msg} ({n} librdkafka messages suppressed)");
                }
            }
            _ => debug!(target: "librdkafka", "{fac}: {msg}"),
        }
    }

    fn stats(&self, stats: Statistics) {
        let up = stats.brokers.values().any(|b| b.state == "UP");
        if up != self.life.ready() && !self.life.stop_requested() {
            info!("kafka cluster {}", if up { "reachable: ready" } else { "unreachable: not ready" });
        }
        self.set_ready(up);
        let Some(topic) = stats.topics.get(&self.topic) else { return };
        let mut sum = 0i64;
        let mut marks = lock(&self.watermarks);
        for p in topic.partitions.values().filter(|p| p.partition >= 0 && p.desired) {
            marks.insert(p.partition, (p.hi_offset, p.committed_offset));
            let lag = if p.consumer_lag_stored >= 0 { p.consumer_lag_stored } else { p.consumer_lag };
            let label = p.partition.to_string();
            if lag >= 0 {
                sum += lag;
                self.metrics.partition_lag.get(&label).set(lag);
            } else {
                // Unknown (nothing consumed or committed yet): no series rather than a stale or made-up value.
                self.metrics.partition_lag.remove(&label);
            }
        }
        self.metrics.consumer_lag.set(sum);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::AllBrokersDown)) {
            if self.life.ready() {
                warn!("all Kafka brokers are down: not ready");
            }
            self.set_ready(false);
        }
        self.errors.client.emit(&format_args!("{error}: {reason}"));
    }
}

impl ConsumerContext for ExporterContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> =
                    tpl.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect();
                info!("partitions revoked: {parts:?}; draining in-flight records and committing");
                self.offsets.commit_revoked(consumer, &parts);
                let mut marks = lock(&self.watermarks);
                for p in &parts {
                    self.metrics.partition_lag.remove(&p.to_string());
                    self.metrics.partition_time_lag.remove(&p.to_string());
                    marks.remove(p);
                }
            }
            Rebalance::Assign(tpl) => {
                // Before librdkafka starts fetching them: every record of these partitions comes in batches
                // through the fetch queue (logged once the assignment is in force, in post_rebalance).
                let parts: Vec<i32> =
                    tpl.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect();
                let n = self.fetch.forward(consumer, &self.topic, &parts);
                if n < parts.len() {
                    debug!(
                        "{} of {} assigned partitions read through the consumer queue",
                        parts.len() - n,
                        parts.len()
                    );
                }
            }
            Rebalance::Error(e) => self.errors.rebalance.emit(e),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let assignment = consumer.assignment().ok();
        let n = assignment.as_ref().map_or(0, |a| a.count());
        let holding: Vec<i32> = assignment
            .iter()
            .flat_map(|a| a.elements())
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect();
        if let Rebalance::Assign(tpl) = rebalance {
            // With cooperative-sticky an assignment adds partitions to those held; with eager it replaces them.
            let added: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            info!("partitions assigned: {added:?}; holding {holding:?}");
        }
        *lock(&self.assigned) = holding;
        self.metrics.assigned_partitions.set(n as i64);
        let mut w = self.idle();
        if n > 0 {
            w.empty_since = None;
            w.last_warning = None;
            drop(w);
            self.set_ready(true);
        } else if w.empty_since.is_none() {
            w.empty_since = Some(Instant::now());
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        self.offsets.auto_committed(result);
    }
}

/// Creating the consumer failed (a librdkafka property it refuses, or the subscription).
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// The error's text, with a refused secret property's value masked (`config::kafka::printable_error`).
    #[error("invalid Kafka client configuration: {0}")]
    Config(String),
    #[error("cannot subscribe to topic {topic:?}: {source}")]
    Subscribe { topic: String, source: KafkaError },
}

pub type ExporterConsumer = BaseConsumer<ExporterContext>;

/// Builds and subscribes the group consumer.
pub fn create_consumer(cfg: &KafkaConfig, ctx: ExporterContext) -> Result<ExporterConsumer, KafkaSetupError> {
    let consumer: ExporterConsumer = cfg
        .consumer_config()
        .create_with_context(ctx)
        .map_err(|e| KafkaSetupError::Config(crate::config::kafka::printable_error(&e)))?;
    consumer
        .subscribe(&[&cfg.topic])
        .map_err(|source| KafkaSetupError::Subscribe { topic: cfg.topic.clone(), source })?;
    Ok(consumer)
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain maps and lists).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
