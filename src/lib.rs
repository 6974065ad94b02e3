//! dashflow-prometheus-exporter: DashFlow quality events from Kafka as Prometheus metrics.
//!
//! Data flow: [`kafka`] (poll thread, owns the consumer) → [`decode`] (bytes → [`decode::QualityEvent`]) →
//! bounded channel → [`metrics`] (worker thread applies events) → [`http`] (`/metrics`). [`config`] turns
//! flags and environment into a validated [`config::Config`]; [`shutdown`] coordinates the threads; [`app`]
//! wires them.

pub mod app;
pub mod config;
pub mod decode;
pub mod demo;
pub mod encode;
pub mod event;
pub mod expo;
pub mod family;
pub mod generator;
pub mod hist;
pub mod http;
pub mod kafka;
pub mod labels;
pub mod logging;
pub mod metrics;
pub mod mock;
pub mod notify;
pub mod sched;
pub mod sessions;
pub mod shutdown;
pub mod tools;
pub mod webconfig;
pub mod wire;

/// Types generated from `proto/dashstream.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/dashstream.v1.rs"));
}
