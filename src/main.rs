//! The `dashflow-prometheus-exporter` binary: the daemon, or one of its subcommands (busybox style, so the
//! one static binary carries everything to an edge box). The command line is parsed in `config::cli`; each
//! command lives in `tools`.

/// musl's allocator halves the static binary's drain rate (librdkafka allocates per message), so the musl
/// build uses mimalloc for Rust and, through its `override` feature, for the C libraries too.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's defaults commit whole arenas eagerly on Linux and purge freed memory late: 70-80 MiB peak RSS
/// in the drain benchmark instead of ~20 MiB. Option indices of mimalloc v3's `mi_option_e` (mimalloc.h).
#[cfg(target_env = "musl")]
fn tune_allocator() {
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: plain option setters of the allocator, called once at start-up before other threads exist.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}
#[cfg(not(target_env = "musl"))]
fn tune_allocator() {}

use dashflow_prometheus_exporter::config::cli::{self, Invocation};
use dashflow_prometheus_exporter::tools;

fn main() {
    tune_allocator();
    let code = match cli::parse() {
        Invocation::Daemon(raw) => tools::daemon::main(raw),
        Invocation::Demo(args) => tools::demo::main(args),
        Invocation::Produce(args) => tools::produce::main(args),
        Invocation::Tail(args) => tools::tail::main(args),
        Invocation::Healthcheck(args) => tools::healthcheck::main(args),
        Invocation::CheckConfig(raw) => tools::check_config::main(raw),
        Invocation::MockBroker(args) => tools::mock_broker::main(args),
        Invocation::Backfill(args) => tools::backfill::main(args),
    };
    log::logger().flush();
    std::process::exit(code);
}
