//! librdkafka's mock cluster: an in-process Kafka-protocol broker speaking real Kafka over TCP on loopback.
//!
//! Wraps the C API directly (rdkafka's `MockCluster` does not expose the group initial-rebalance delay, which
//! otherwise adds 3 s to every group join).

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer as _};
use rdkafka_sys as rd;

/// A running mock cluster; stops when dropped.
pub struct MockBroker {
    /// The client that owns the cluster (librdkafka ties a mock cluster to a handle).
    _owner: BaseProducer,
    ptr: *mut rd::rd_kafka_mock_cluster_t,
    bootstrap: String,
}

// SAFETY: librdkafka's mock-cluster calls are thread-safe (each is an operation sent to the cluster's own
// thread), and the owner handle is itself Send + Sync.
unsafe impl Send for MockBroker {}
unsafe impl Sync for MockBroker {}

#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot create the mock cluster's owner client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("librdkafka could not start a mock cluster")]
    Start,
    #[error("topic name {0:?} contains a NUL byte")]
    TopicName(String),
    #[error("mock cluster call failed: {0:?}")]
    Call(rdkafka::types::RDKafkaErrorCode),
}

fn check(err: rd::rd_kafka_resp_err_t) -> Result<(), MockError> {
    if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(MockError::Call(err.into()))
    }
}

impl MockBroker {
    /// Starts `brokers` mock brokers on loopback with random ports; group joins complete without delay.
    pub fn start(brokers: i32) -> Result<MockBroker, MockError> {
        let owner: BaseProducer = ClientConfig::new().set("log_level", "3").create()?;
        // SAFETY: the handle is valid for as long as `owner` lives, which outlives the cluster (field order and
        // Drop below destroy the cluster first).
        let ptr = unsafe { rd::rd_kafka_mock_cluster_new(owner.client().native_ptr(), brokers) };
        if ptr.is_null() {
            return Err(MockError::Start);
        }
        // SAFETY: ptr is a live cluster; the returned string is owned by it and copied at once.
        let bootstrap =
            unsafe { CStr::from_ptr(rd::rd_kafka_mock_cluster_bootstraps(ptr)) }.to_string_lossy().into_owned();
        // SAFETY: ptr is a live cluster.
        unsafe { rd::rd_kafka_mock_group_initial_rebalance_delay_ms(ptr, 0) };
        Ok(MockBroker { _owner: owner, ptr, bootstrap })
    }

    /// `host:port[,host:port…]` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic (replication factor 1).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), MockError> {
        let t = CString::new(topic).map_err(|_| MockError::TopicName(topic.into()))?;
        // SAFETY: live cluster, NUL-terminated topic name.
        check(unsafe { rd::rd_kafka_mock_topic_create(self.ptr, t.as_ptr(), partitions, 1) })
    }

    /// Sets the delay before the first rebalance of a new group (librdkafka's default is 3 s).
    pub fn set_group_initial_rebalance_delay(&self, delay: Duration) {
        // SAFETY: live cluster.
        unsafe { rd::rd_kafka_mock_group_initial_rebalance_delay_ms(self.ptr, delay.as_millis() as i32) };
    }

    /// Takes a broker down (connections are closed and refused) or brings it back.
    pub fn set_broker_up(&self, broker_id: i32, up: bool) -> Result<(), MockError> {
        // SAFETY: live cluster.
        check(unsafe {
            if up {
                rd::rd_kafka_mock_broker_set_up(self.ptr, broker_id)
            } else {
                rd::rd_kafka_mock_broker_set_down(self.ptr, broker_id)
            }
        })
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        // SAFETY: the cluster is live and destroyed once, before its owner handle is dropped.
        unsafe { rd::rd_kafka_mock_cluster_destroy(self.ptr) };
    }
}
