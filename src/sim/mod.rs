//! Developer tooling apart from the daemon: the producer-side encoder, the synthetic traffic generator,
//! librdkafka's mock cluster and `demo`, which runs the whole exporter against the two.

pub mod demo;
pub mod encode;
pub mod generator;
pub mod mock;
