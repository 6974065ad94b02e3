//! dashflow-prometheus-exporter: DashFlow quality events from Kafka as Prometheus metrics.
//!
//! Data flow: [`kafka`] (poll thread, owns the consumer) → [`decode`] (bytes → [`decode::QualityView`]) →
//! bounded channel → [`metrics`] (worker thread applies events) → [`http`] (`/metrics`). [`config`] turns
//! flags and environment into a validated [`config::Config`]; [`shutdown`] coordinates the threads; [`app`]
//! wires them.

pub mod app;
pub mod config;
pub mod decode;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod runtime;
pub mod sim;
pub mod table;
pub mod tools;

/// Types generated from `proto/dashstream.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/dashstream.v1.rs"));
}
