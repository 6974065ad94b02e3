//! The integration tests, as one test binary (one link of librdkafka and OpenSSL instead of one per file, as
//! ripgrep's `tests/tests.rs` does): each file is a module, `common` is the harness they share. Run one file's
//! tests with `cargo test --test it FILE::`, e.g. `cargo test --test it daemon::`.
//!
//! Tests of different modules run in parallel threads of this one process (`--test-threads`, by default one
//! per core, as within one file before). Each test starts its own exporter and mock cluster on ports of its
//! own, so none depends on another's process state; the RSS figures `bad_input` prints are the whole
//! process's and informative only.

mod common;

mod backfill;
mod bad_input;
mod cli;
mod daemon;
mod dashflow_producers;
mod formats;
mod hostile_http;
mod rebalance;
mod remote_write;
mod secrets;
mod testdata;
mod tools;
mod web;
mod web_toolkit;
mod webconfig_files;
