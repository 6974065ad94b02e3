//! Process-level helpers the pipeline runs on: the shutdown coordinator, scheduler hints, systemd's notify
//! protocol and logging set-up.

pub mod logging;
pub mod notify;
pub mod sched;
pub mod shutdown;
