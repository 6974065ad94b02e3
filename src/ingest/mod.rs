//! Kafka to the worker: the poll thread owns the group consumer ([`consumer`]), takes records from librdkafka
//! in batches ([`fetch`]), decodes every record into a small event ([`poll`]) and sends it over a bounded channel to the worker ([`worker`]), which applies it to
//! the metrics ([`batch`]: the channel; [`ledger`]: what was sent and applied). Offsets are stored and committed
//! only for records the worker has applied ([`offsets`]). What is counted and logged: [`events`].

pub mod batch;
pub mod consumer;
pub mod events;
pub mod fetch;
mod ledger;
pub mod offsets;
pub mod poll;
pub mod time_lag;
pub mod worker;
