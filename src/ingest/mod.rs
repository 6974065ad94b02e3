//! The poll thread: owns the `BaseConsumer`, decodes records and hands them to the worker over a bounded
//! channel; stores and commits offsets only for records the worker has applied.
//!
//! Offsets flow back through [`Progress`]: the worker records the next offset per partition after applying a
//! batch, the poll thread stores those offsets between polls (librdkafka's auto-commit then commits them), and
//! on revoke and at shutdown waits until everything sent has been applied and commits synchronously.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{debug, error, info, warn};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message as _;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::decode::event::{Event, Normalizer};
use crate::decode::{Decoded, Decoder};
use crate::metrics::Metrics;
use crate::runtime::shutdown::{Lifecycle, RateLimit};

/// What crosses the channel: one record's decoded content and its position.
pub struct Item {
    pub partition: i32,
    pub offset: i64,
    pub body: Body,
}

pub enum Body {
    /// A quality event to apply.
    Quality(Event),
    /// A record already counted by the poll thread (bad or not a quality event); only its offset matters.
    Skip,
}

/// Applied-offset bookkeeping shared by the worker and the poll thread.
#[derive(Default)]
pub struct Progress {
    state: Mutex<ProgressState>,
    applied_cv: Condvar,
    /// Items sent to the worker so far.
    pub sent: AtomicU64,
}

#[derive(Default)]
struct ProgressState {
    applied: u64,
    next: HashMap<i32, i64>,
}

impl Progress {
    fn lock(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Worker: `count` more items were applied; `next` holds the next offset to consume per partition.
    pub fn record(&self, count: u64, next: &mut HashMap<i32, i64>) {
        let mut s = self.lock();
        s.applied += count;
        for (p, o) in next.drain() {
            let e = s.next.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
        drop(s);
        self.applied_cv.notify_all();
    }

    fn take(&self) -> HashMap<i32, i64> {
        std::mem::take(&mut self.lock().next)
    }

    /// Waits until every item sent has been applied, or `timeout`; true if all were.
    fn wait_applied(&self, timeout: Duration) -> bool {
        let target = self.sent.load(Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        while s.applied < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self.applied_cv.wait_timeout(s, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}

/// The consumer's context: rebalance, statistics, errors and logs all arrive here, on the poll thread.
pub struct ExporterContext {
    topic: String,
    metrics: Metrics,
    life: Arc<Lifecycle>,
    progress: Arc<Progress>,
    /// Offsets stored with librdkafka, per assigned partition (what a commit will write).
    stored: Mutex<HashMap<i32, i64>>,
    error_log: RateLimit,
    rdkafka_log: RateLimit,
    idle: Mutex<IdleWatch>,
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
    pub fn new(cfg: &KafkaConfig, metrics: Metrics, life: Arc<Lifecycle>, progress: Arc<Progress>) -> Self {
        ExporterContext {
            topic: cfg.topic.clone(),
            metrics,
            life,
            progress,
            stored: Mutex::new(HashMap::new()),
            error_log: RateLimit::new(Duration::from_secs(10)),
            rdkafka_log: RateLimit::new(Duration::from_secs(10)),
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
    fn check_idle(&self, now: Instant) {
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
            "no partition of topic {:?} assigned for {} s although connected: this member of group {:?} consumes              nothing. Either the group has at least as many other members as the topic has partitions (a standby),              or the broker still counts a member that died as their owner (README, Troubleshooting)",
            self.topic,
            idle.as_secs(),
            w.group
        );
    }

    fn stored(&self) -> std::sync::MutexGuard<'_, HashMap<i32, i64>> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the offsets the worker has applied since the last call.
    fn store_applied(&self, consumer: &BaseConsumer<Self>) {
        let next = self.progress.take();
        if next.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(next.len());
        for (&p, &o) in &next {
            if tpl.add_partition_offset(&self.topic, p, Offset::Offset(o)).is_err() {
                self.metrics.offset_store_errors.inc();
            }
        }
        match consumer.store_offsets(&tpl) {
            Ok(()) => self.stored().extend(next),
            Err(e) => {
                // Partitions revoked meanwhile cannot be stored; their records are re-read by the new owner.
                self.metrics.offset_store_errors.inc();
                if let Some(n) = self.error_log.check() {
                    warn!("storing offsets failed: {e} ({n} similar messages suppressed)");
                }
            }
        }
    }

    /// Waits for the worker to apply what was sent, stores, and commits `partitions` (all when `None`)
    /// synchronously.
    fn drain_and_commit(&self, consumer: &BaseConsumer<Self>, partitions: Option<&[i32]>, why: &str) {
        if !self.progress.wait_applied(Duration::from_secs(3)) {
            warn!("{why}: the worker did not apply all in-flight records within 3 s; committing what was applied");
        }
        self.store_applied(consumer);
        let stored = self.stored();
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in stored.iter() {
            if partitions.is_none_or(|ps| ps.contains(&p)) {
                let _ = tpl.add_partition_offset(&self.topic, p, Offset::Offset(o));
            }
        }
        drop(stored);
        if tpl.count() == 0 {
            return;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => debug!("{why}: committed {} partition offset(s)", tpl.count()),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.metrics.offset_commit_errors.inc();
                error!("{why}: synchronous offset commit failed: {e}");
            }
        }
    }

    fn count_error(&self, what: &str, e: &dyn std::fmt::Display) {
        self.metrics.consumer_errors.inc();
        if let Some(n) = self.error_log.check() {
            warn!("kafka {what}: {e} ({n} similar messages suppressed in the last 10 s)");
        }
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
        for p in topic.partitions.values().filter(|p| p.partition >= 0 && p.desired) {
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
        self.count_error("error", &format_args!("{error}: {reason}"));
    }
}

impl ConsumerContext for ExporterContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> =
                    tpl.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect();
                info!("partitions revoked: {parts:?}; draining in-flight records and committing");
                self.drain_and_commit(consumer, Some(&parts), "revoke");
                let mut stored = self.stored();
                for p in &parts {
                    stored.remove(p);
                    self.metrics.partition_lag.remove(&p.to_string());
                }
            }
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!("partitions assigned: {parts:?}");
            }
            Rebalance::Error(e) => self.count_error("rebalance error", e),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        let n = consumer.assignment().map(|a| a.count()).unwrap_or(0);
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
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.metrics.offset_commit_errors.inc();
                if let Some(n) = self.error_log.check() {
                    warn!("offset commit failed: {e} ({n} similar messages suppressed)");
                }
            }
        }
    }
}

/// Creating the consumer failed (a librdkafka property it refuses, or the subscription).
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("invalid Kafka client configuration: {0}")]
    Config(KafkaError),
    #[error("cannot subscribe to topic {topic:?}: {source}")]
    Subscribe { topic: String, source: KafkaError },
}

pub type ExporterConsumer = BaseConsumer<ExporterContext>;

/// Builds and subscribes the group consumer.
pub fn create_consumer(cfg: &KafkaConfig, ctx: ExporterContext) -> Result<ExporterConsumer, KafkaSetupError> {
    let mut cc = ClientConfig::new();
    for (k, v) in cfg.consumer_properties() {
        cc.set(k, v);
    }
    let consumer: ExporterConsumer = cc.create_with_context(ctx).map_err(KafkaSetupError::Config)?;
    consumer
        .subscribe(&[&cfg.topic])
        .map_err(|source| KafkaSetupError::Subscribe { topic: cfg.topic.clone(), source })?;
    Ok(consumer)
}

/// The poll loop; returns when a stop is requested (after the final drain and commit) or the worker is gone.
pub fn poll_loop(consumer: ExporterConsumer, tx: Sender<Item>, max_payload: usize) {
    let ctx = consumer.context();
    let m = ctx.metrics.clone();
    let mut decoder = Decoder::new(max_payload);
    let mut normalizer = Normalizer::default();
    let bad_log = RateLimit::new(Duration::from_secs(10));
    let mut last_store = Instant::now();
    while !ctx.life.stop_requested() {
        let item = match consumer.poll(Duration::from_millis(100)) {
            None => None,
            Some(Err(e)) => {
                ctx.count_error("consumer error", &e);
                None
            }
            Some(Ok(msg)) => {
                m.messages_received.inc();
                let (partition, offset) = (msg.partition(), msg.offset());
                let body = match msg.payload() {
                    None => {
                        m.payload_missing.inc();
                        if let Some(n) = bad_log.check() {
                            warn!("record {partition}/{offset} has no payload ({n} bad records not logged)");
                        }
                        Body::Skip
                    }
                    Some(bytes) => match decoder.decode(bytes) {
                        Ok(Decoded::Quality(v)) => Body::Quality(normalizer.event(&v)),
                        Ok(Decoded::WrongScope(scope)) => {
                            m.wrong_scope.inc();
                            debug!("record {partition}/{offset}: scope {scope:?} is not \"quality\"");
                            Body::Skip
                        }
                        Ok(Decoded::Other(kind)) => {
                            m.count_other(kind);
                            Body::Skip
                        }
                        Err(e) => {
                            m.messages_failed[e.reason()].inc();
                            if let Some(n) = bad_log.check() {
                                warn!(
                                    "record {partition}/{offset} ({} bytes) rejected: {e} [{}] ({n} bad records not logged)",
                                    bytes.len(),
                                    e.reason()
                                );
                            }
                            Body::Skip
                        }
                    },
                };
                Some(Item { partition, offset, body })
            }
        };
        if let Some(item) = item {
            if tx.send(item).is_err() {
                error!("worker thread is gone; stopping the consumer");
                break;
            }
            ctx.progress.sent.fetch_add(1, Ordering::SeqCst);
        }
        if last_store.elapsed() >= Duration::from_millis(100) {
            ctx.store_applied(&consumer);
            last_store = Instant::now();
            ctx.check_idle(last_store);
        }
    }
    info!("stopping: draining in-flight records and committing offsets");
    ctx.drain_and_commit(&consumer, None, "shutdown");
    drop(tx);
    consumer.unsubscribe();
    drop(consumer);
    info!("kafka consumer closed");
}
