//! The ingest stage's outcomes that are counted and logged, one type each (as Vector's `internal_events/`):
//! a type owns its counter, its log message and its own [`RateLimit`], so "(n similar messages suppressed)"
//! counts only messages of that kind. Call sites say what happened (`emit`), not how it is reported.

use std::fmt::Display;
use std::time::Duration;

use log::{error, warn};
use prometheus::IntCounter;
use rdkafka::error::KafkaError;

use crate::decode::{DecodeError, ErrorReason};
use crate::runtime::logging::RateLimit;
use crate::table::PerKey;

/// How often a repeating warning of one kind is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Storing applied offsets with librdkafka failed (`dashstream_exporter_offset_store_errors_total`).
pub struct OffsetStoreFailed {
    counter: IntCounter,
    log: RateLimit,
}

impl OffsetStoreFailed {
    pub fn new(counter: IntCounter) -> Self {
        OffsetStoreFailed { counter, log: RateLimit::new(LOG_EVERY) }
    }

    /// A whole store refused (partitions revoked meanwhile cannot be stored): counted and logged.
    pub fn emit(&self, e: &KafkaError) {
        self.counter.inc();
        if let Some(n) = self.log.check() {
            warn!("storing offsets failed: {e} ({n} similar messages suppressed)");
        }
    }

    /// One position that could not even be put in the list to store: counted only.
    pub fn emit_position(&self) {
        self.counter.inc();
    }
}

/// One of librdkafka's periodic automatic commits failed (`dashstream_exporter_offset_commit_errors_total`).
pub struct AutoCommitFailed {
    counter: IntCounter,
    log: RateLimit,
}

impl AutoCommitFailed {
    pub fn new(counter: IntCounter) -> Self {
        AutoCommitFailed { counter, log: RateLimit::new(LOG_EVERY) }
    }

    pub fn emit(&self, e: &KafkaError) {
        self.counter.inc();
        if let Some(n) = self.log.check() {
            warn!("offset commit failed: {e} ({n} similar messages suppressed)");
        }
    }
}

/// The synchronous commit on revoke or at shutdown failed (the same counter as [`AutoCommitFailed`]). It
/// happens at most once per rebalance or stop, so every one is logged, as an error.
pub struct SyncCommitFailed {
    counter: IntCounter,
}

impl SyncCommitFailed {
    pub fn new(counter: IntCounter) -> Self {
        SyncCommitFailed { counter }
    }

    /// `why`: "revoke" or "shutdown".
    pub fn emit(&self, why: &str, e: &KafkaError) {
        self.counter.inc();
        error!("{why}: synchronous offset commit failed: {e}");
    }
}

/// An error the Kafka client reports, of one kind (`dashstream_exporter_kafka_consumer_errors_total`, shared
/// by the kinds): the poll thread's consumer errors, the client's own errors, rebalance errors. Each kind is
/// its own value with its own limit.
pub struct KafkaClientError {
    /// The words after "kafka" in the message: "consumer error", "error", "rebalance error".
    what: &'static str,
    counter: IntCounter,
    log: RateLimit,
}

impl KafkaClientError {
    pub fn new(what: &'static str, counter: IntCounter) -> Self {
        KafkaClientError { what, counter, log: RateLimit::new(LOG_EVERY) }
    }

    pub fn emit(&self, e: &dyn Display) {
        self.counter.inc();
        if let Some(n) = self.log.check() {
            warn!("kafka {}: {e} ({n} similar messages suppressed in the last 10 s)", self.what);
        }
    }
}

/// The three kinds of [`KafkaClientError`], counted on one counter, each with its own limit.
pub struct KafkaClientErrors {
    pub consumer: KafkaClientError,
    pub client: KafkaClientError,
    pub rebalance: KafkaClientError,
}

impl KafkaClientErrors {
    pub fn new(counter: &IntCounter) -> Self {
        KafkaClientErrors {
            consumer: KafkaClientError::new("consumer error", counter.clone()),
            client: KafkaClientError::new("error", counter.clone()),
            rebalance: KafkaClientError::new("rebalance error", counter.clone()),
        }
    }
}

/// A record that is not a quality event because it is bad: no payload
/// (`dashstream_exporter_payload_missing_total`), or refused by the decoder
/// (`dashstream_exporter_messages_failed_total`, by reason). Both are bad records, logged under one limit, so
/// the count of those not logged counts bad records of either kind.
pub struct BadRecord {
    payload_missing: IntCounter,
    failed: PerKey<ErrorReason, IntCounter>,
    log: RateLimit,
}

impl BadRecord {
    pub fn new(payload_missing: IntCounter, failed: PerKey<ErrorReason, IntCounter>) -> Self {
        BadRecord { payload_missing, failed, log: RateLimit::new(LOG_EVERY) }
    }

    /// The record at `partition`/`offset` has no payload.
    pub fn no_payload(&self, partition: i32, offset: i64) {
        self.payload_missing.inc();
        if let Some(n) = self.log.check() {
            warn!("record {partition}/{offset} has no payload ({n} bad records not logged)");
        }
    }

    /// The decoder refused the `len` bytes of the record at `partition`/`offset`.
    pub fn rejected(&self, partition: i32, offset: i64, len: usize, e: &DecodeError) {
        self.failed[e.reason()].inc();
        if let Some(n) = self.log.check() {
            warn!(
                "record {partition}/{offset} ({len} bytes) rejected: {e} [{}] ({n} bad records not logged)",
                e.reason()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> IntCounter {
        IntCounter::new("c", "c").unwrap()
    }

    #[test]
    fn every_outcome_is_counted_whether_or_not_it_is_logged() {
        let c = counter();
        let store = OffsetStoreFailed::new(c.clone());
        for _ in 0..3 {
            store.emit(&KafkaError::NoMessageReceived);
        }
        store.emit_position();
        assert_eq!(c.get(), 4);
        let commits = counter();
        let auto = AutoCommitFailed::new(commits.clone());
        let sync = SyncCommitFailed::new(commits.clone());
        auto.emit(&KafkaError::NoMessageReceived);
        sync.emit("revoke", &KafkaError::NoMessageReceived);
        assert_eq!(commits.get(), 2);
    }

    #[test]
    fn each_kind_has_its_own_limit() {
        let c = counter();
        let errors = KafkaClientErrors::new(&c);
        errors.consumer.emit(&"x"); // logged
        errors.consumer.emit(&"x"); // suppressed
        assert_eq!(errors.consumer.log.check(), None, "the consumer's messages are within their interval");
        assert_eq!(errors.client.log.check(), Some(0), "a client error is logged at once, counting none");
        assert_eq!(errors.rebalance.log.check(), Some(0));
        assert_eq!(c.get(), 2);
        let store = OffsetStoreFailed::new(counter());
        let auto = AutoCommitFailed::new(counter());
        store.emit(&KafkaError::NoMessageReceived);
        assert_eq!(auto.log.check(), Some(0), "a store failure does not suppress a commit failure");
    }

    #[test]
    fn bad_records_count_by_kind_and_reason_under_one_limit() {
        let missing = counter();
        let failed = PerKey::from_fn(|r: ErrorReason| IntCounter::new(format!("f_{}", r.label()), "f").unwrap());
        let bad = BadRecord::new(missing.clone(), failed.clone());
        bad.no_payload(0, 1);
        bad.rejected(0, 2, 3, &DecodeError::Empty);
        bad.rejected(0, 3, 3, &DecodeError::Empty);
        assert_eq!(missing.get(), 1);
        assert_eq!(failed[DecodeError::Empty.reason()].get(), 2);
        assert_eq!(failed.values().map(IntCounter::get).sum::<u64>(), 2);
        assert_eq!(bad.log.check(), None, "the three share one interval");
    }
}
