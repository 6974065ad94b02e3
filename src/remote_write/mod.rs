//! Prometheus remote write (protocol 1.0) for edge boxes nobody can scrape: a pusher thread sends the current
//! value of every series the exporter has to a receiver (Prometheus, Mimir, Thanos, Cortex) every interval.
//! Off unless `REMOTE_WRITE_URL` is set.
//!
//! Values are cumulative, so nothing is queued: each push carries a fresh snapshot, and a push that is not
//! delivered by the time the next is due is dropped (a gap in the data, no memory growth, no stall). The
//! pusher reads the registry as a scrape does and never touches the pipeline, so a slow or absent receiver
//! costs neither ingestion nor scraping.
//!
//! Its settings (the URL, the TLS connector, the credentials) are read and checked by the settings stage
//! (`config/remote_write/`); [`encode`] turns the registry into a snappy-compressed `WriteRequest`, [`client`] sends one request, [`push`] is the thread: schedule,
//! retries and back-off, self-metrics.

pub mod client;
pub mod encode;
pub mod push;

/// The remote-write messages generated from `proto/remote.proto`.
#[allow(clippy::all, missing_docs)]
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

pub use push::{PushMetrics, Pusher};
