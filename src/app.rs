//! Wires the pipeline: poll thread → bounded channel → worker thread → metrics ← HTTP threads, with one
//! coordinator for shutdown, and waits for the end while speaking systemd's notify protocol. Used by the
//! daemon and by `demo`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use crate::config::{Config, KafkaConfig};
use crate::ingest::consumer::{create_consumer, ExporterContext, KafkaSetupError};
use crate::ingest::{offsets, poll, worker};
use crate::metrics::sessions::SessionTracker;
use crate::metrics::{Applier, Metrics, MetricsError};
use crate::remote_write::Pusher;
use crate::runtime::notify::Notifier;
use crate::runtime::shutdown::Lifecycle;

/// Records buffered between the poll thread and the worker.
pub const CHANNEL_CAPACITY: usize = 8192;
/// How long shutdown may take before the process gives up on a clean close: the drain, a final commit that
/// may wait for a rebalance ([`crate::ingest::offsets::SHUTDOWN_PATIENCE`]) and the close, within Docker's
/// default stop timeout (10 s).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(9);

/// Why the pipeline could not start or did not stop cleanly. `exit_code` maps each to the process status.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Kafka(#[from] KafkaSetupError),
    #[error(transparent)]
    Bind(#[from] crate::http::BindError),
    #[error("a pipeline thread failed")]
    ThreadFailed,
    #[error("shutdown did not finish within {0:?}")]
    ShutdownTimeout(Duration),
}

impl AppError {
    /// 2 for configuration the libraries refuse, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Metrics(_) | AppError::Kafka(KafkaSetupError::Config(_)) => 2,
            _ => 1,
        }
    }
}

/// Runs the whole exporter until `life` is asked to stop. `on_listening` receives the HTTP address once bound.
pub fn run(cfg: &Config, life: Arc<Lifecycle>, on_listening: impl FnOnce(SocketAddr)) -> Result<(), AppError> {
    let metrics = Metrics::new(&cfg.buckets)?;
    run_with_metrics(cfg, metrics, life, on_listening)
}

pub fn run_with_metrics(
    cfg: &Config,
    metrics: Metrics,
    life: Arc<Lifecycle>,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), AppError> {
    let (feed, inbox, offsets) = offsets::channel(
        CHANNEL_CAPACITY,
        &cfg.kafka.topic,
        metrics.offset_store_errors.clone(),
        metrics.offset_commit_errors.clone(),
    );
    let ctx = ExporterContext::new(&cfg.kafka, metrics.clone(), life.clone(), offsets);
    // librdkafka's threads start with the consumer and inherit the lower priority of the thread creating it.
    let consumer = crate::runtime::sched::on_thread_with(
        || crate::runtime::sched::lower_priority_for("kafka", cfg.ingest_nice),
        || create_consumer(&cfg.kafka, ctx),
    )
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    let server = crate::http::bind(&cfg.http)?;
    on_listening(server.addr);
    // Registered before the first scrape, so the remote-write families are there from the start.
    let pusher = match &cfg.remote_write {
        Some(rw) => Some(Pusher::new(rw.clone(), metrics.clone()).map_err(MetricsError::from)?),
        None => None,
    };
    let applier = Applier::new(metrics.clone(), SessionTracker::new(cfg.session_timeout, cfg.session_max_tracked))
        .with_pass_threshold(cfg.quality_pass_threshold);
    let max_payload = cfg.max_payload_bytes;
    let exemplars = cfg.buckets.exemplars;
    let linger = cfg.http.shutdown_linger;

    let outcome = std::thread::scope(|s| {
        let spawn = |name: &'static str| std::thread::Builder::new().name(name.into());
        let (life, server, metrics) = (&life, &server, &metrics);
        spawn("kafka-poll")
            .spawn_scoped(s, move || {
                let _g = life.thread("kafka-poll");
                crate::runtime::sched::lower_priority_for("kafka-poll", cfg.ingest_nice);
                poll::poll_loop(consumer, feed, max_payload, exemplars);
            })
            .expect("spawn thread");
        spawn("worker")
            .spawn_scoped(s, move || {
                let _g = life.thread("worker");
                crate::runtime::sched::lower_priority_for("worker", cfg.ingest_nice);
                worker::worker_loop(inbox, applier);
            })
            .expect("spawn thread");
        spawn("http-gate")
            .spawn_scoped(s, move || {
                let _g = life.thread("http-gate");
                server.run_gate(metrics, life);
            })
            .expect("spawn thread");
        for _ in 0..cfg.http.threads {
            spawn("http")
                .spawn_scoped(s, move || {
                    let _g = life.thread("http");
                    crate::http::serve(&server.server, metrics, life);
                })
                .expect("spawn thread");
        }
        // The pusher reads the registry as a scrape does; it stops with the HTTP threads, after one last push.
        let pushing = pusher.is_some();
        if let Some(p) = pusher {
            spawn("remote-write")
                .spawn_scoped(s, move || {
                    let _g = life.thread("remote-write");
                    p.run(life);
                })
                .expect("spawn thread");
        }
        supervise(life);
        let deadline = Instant::now() + SHUTDOWN_DEADLINE + linger;
        // The pipeline (poll thread, worker) drains and commits first; HTTP (and the pusher) keep going meanwhile.
        let http_threads = cfg.http.threads + 1 + usize::from(pushing);
        if life.wait_running_at_most(http_threads, deadline) && !linger.is_zero() {
            info!("pipeline stopped; serving /metrics for {linger:?} more for a final scrape");
            std::thread::sleep(linger.min(deadline.saturating_duration_since(Instant::now())));
        }
        life.stop_http();
        if !life.wait_threads(deadline) {
            error!("shutdown did not finish within {:?}; exiting without a clean close", SHUTDOWN_DEADLINE + linger);
            log::logger().flush();
            std::process::exit(1);
        }
        if life.failed() {
            Err(AppError::ThreadFailed)
        } else {
            Ok(())
        }
    });
    if outcome.is_ok() {
        info!("stopped cleanly");
    } else {
        warn!("stopped after a failure");
    }
    outcome
}

/// Waits for a stop request while speaking systemd's notify protocol: `READY=1` the first time the exporter
/// is ready, `WATCHDOG=1` at half the watchdog interval while every thread is healthy, `STOPPING=1` at the end.
fn supervise(life: &Lifecycle) {
    let notifier = Notifier::from_env();
    if !notifier.enabled() {
        life.wait_for_stop();
        return;
    }
    let watchdog = notifier.watchdog_interval();
    let tick = watchdog.map_or(Duration::from_millis(200), |w| w.min(Duration::from_millis(200)));
    let mut told_ready = false;
    let mut last_ping = Instant::now() - Duration::from_secs(3600);
    while !life.wait_for_stop_timeout(tick) {
        if !told_ready && life.ready() {
            notifier.send("READY=1\nSTATUS=consuming");
            told_ready = true;
        }
        if let Some(w) = watchdog {
            if life.healthy() && last_ping.elapsed() >= w {
                notifier.send("WATCHDOG=1");
                last_ping = Instant::now();
            }
        }
    }
    notifier.send("STOPPING=1\nSTATUS=stopping: committing offsets");
}

/// The start-up INFO line: effective configuration with secrets masked.
pub fn startup_line(cfg: &Config) -> String {
    let props = KafkaConfig::masked(&cfg.kafka.consumer_properties());
    let props: Vec<String> = props.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "starting dashflow-prometheus-exporter {}: topic={} group={} http={}:{} max_payload={}B session_timeout={}s \
         session_cap={} ingest_nice=+{} librdkafka[{}]",
        env!("CARGO_PKG_VERSION"),
        cfg.kafka.topic,
        cfg.kafka.group_id,
        cfg.http.bind_ip,
        cfg.http.port,
        cfg.max_payload_bytes,
        cfg.session_timeout.as_secs(),
        cfg.session_max_tracked,
        cfg.ingest_nice,
        props.join(" ")
    )
}
