//! The offset protocol: the poll thread stores with librdkafka only what the worker has applied, and commits
//! synchronously on revoke and at shutdown. Why, and how it fits the batch channel ([`super::batch`]):
//! ARCHITECTURE.md, "Offsets and commits". Its invariants:
//!
//! - A record's offset is stored with librdkafka only after the worker has applied the record; the poll
//!   thread never stores an offset of its own ([`super::batch::Drain::take_applied`]).
//! - Between polls the poll thread stores what was applied ([`Offsets::store_applied`]); librdkafka's
//!   auto-commit commits what was stored.
//! - On revoke, and at shutdown, the poll thread first sends the batch it is filling, waits until the worker
//!   has applied everything sent, then stores and commits synchronously ([`Offsets::commit_revoked`],
//!   [`Offsets::commit_at_shutdown`]).
//! - A shutdown commit that the coordinator refuses because the group is rebalancing (another member joined
//!   or left a moment before) is made again once this member has taken part in the rebalance, for at most
//!   [`SHUTDOWN_PATIENCE`]; the partitions are paused meanwhile, so nothing new is read.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use prometheus::IntCounter;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

use super::batch::Drain;
use super::events::{AutoCommitFailed, OffsetStoreFailed, SyncCommitFailed};

/// How long a revoke or shutdown waits for the worker to apply what is in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a shutdown keeps trying to commit while the group rebalances. Kafka completes a rebalance once
/// every member has re-joined (about a heartbeat interval, 3 s by default); librdkafka's mock cluster waits
/// about the session timeout less one second when a member has left.
pub const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(6);

/// The poll thread's offset book: stores what the worker applied, commits on revoke and at shutdown.
pub struct Offsets {
    topic: String,
    /// What the worker applied, and the batch the poll loop is filling (sent before a commit).
    drain: Drain,
    /// Offsets stored with librdkafka, per assigned partition: what a commit writes.
    stored: Mutex<HashMap<i32, i64>>,
    store_failed: OffsetStoreFailed,
    auto_commit_failed: AutoCommitFailed,
    sync_commit_failed: SyncCommitFailed,
}

impl Offsets {
    /// The offset book of `topic`'s records that go through `drain`'s channel, counting failed stores and
    /// commits on `store_errors` and `commit_errors`.
    pub fn new(topic: &str, drain: Drain, store_errors: IntCounter, commit_errors: IntCounter) -> Self {
        Offsets {
            topic: topic.to_owned(),
            drain,
            stored: Mutex::new(HashMap::new()),
            store_failed: OffsetStoreFailed::new(store_errors),
            auto_commit_failed: AutoCommitFailed::new(commit_errors.clone()),
            sync_commit_failed: SyncCommitFailed::new(commit_errors),
        }
    }

    fn stored(&self) -> MutexGuard<'_, HashMap<i32, i64>> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next offset to consume of `partition` as last stored (what the worker has applied), if any.
    pub fn stored_position(&self, partition: i32) -> Option<i64> {
        self.stored().get(&partition).copied()
    }

    /// Stores the offsets the worker has applied since the last call (librdkafka's auto-commit commits them).
    pub fn store_applied<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        let next = self.drain.take_applied();
        if next.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(next.len());
        for (&p, &o) in &next {
            if tpl.add_partition_offset(&self.topic, p, Offset::Offset(o)).is_err() {
                self.store_failed.emit_position();
            }
        }
        match consumer.store_offsets(&tpl) {
            Ok(()) => self.stored().extend(next),
            // Partitions revoked meanwhile cannot be stored; their records are re-read by the new owner.
            Err(e) => self.store_failed.emit(&e),
        }
    }

    /// For the revoke callback: drains, commits `partitions` synchronously and forgets them.
    pub fn commit_revoked<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, partitions: &[i32]) {
        if let Err(e) = self.drain_and_commit(consumer, Some(partitions), "revoke") {
            self.sync_commit_failed.emit("revoke", &e);
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
                self.sync_commit_failed.emit("shutdown", &e);
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
            Err(e) => self.auto_commit_failed.emit(&e),
        }
    }

    /// Waits for the worker to apply what was fetched, stores, and commits `partitions` (all when `None`)
    /// synchronously. Nothing to commit is success.
    fn drain_and_commit<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: Option<&[i32]>,
        why: &str,
    ) -> KafkaResult<()> {
        if !self.drain.drain(DRAIN_TIMEOUT) {
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
}
