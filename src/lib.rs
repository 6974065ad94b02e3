//! dashflow-prometheus-exporter: DashFlow quality events from Kafka as Prometheus metrics.
//!
//! One folder per stage, in the order data flows (ARCHITECTURE.md): [`config`] (flags and environment →
//! a validated [`config::Config`]) → [`ingest`] (the poll thread owns the consumer and sends each record,
//! decoded, over a bounded channel to the worker; offsets follow what the worker applied) → [`decode`]
//! (bytes → [`decode::QualityView`] → the small [`decode::event::Event`] that crosses the channel, pure) →
//! [`metrics`] (the worker applies events; scrapes write the exposition) → [`http`] (`/metrics` behind a
//! connection gate). [`app`] wires the threads, [`runtime`] holds the process helpers, [`table`] the typed
//! label tables; [`sim`] and [`tools`] are the developer tooling and the subcommands.

pub mod app;
pub mod config;
pub mod decode;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod remote_write;
pub mod runtime;
pub mod sim;
pub mod table;
pub mod tools;

/// Types generated from `proto/dashstream.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/dashstream.v1.rs"));
}
