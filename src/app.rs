//! Wires the pipeline: poll thread → bounded channel → worker thread → metrics ← HTTP threads, with one
//! coordinator for shutdown, and waits for the end while speaking systemd's notify protocol. Used by the
//! daemon and by `demo`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use crate::config::Config;
use crate::ingest::consumer::{create_consumer, ExporterContext, KafkaSetupError};
use crate::ingest::offsets::Offsets;
use crate::ingest::{batch, poll, worker};
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
    /// A thread still ran at the shutdown deadline; it was abandoned and ends with the process.
    #[error("shutdown did not finish within {0:?}; exiting without a clean close")]
    ShutdownTimeout(Duration),
}

/// Exit status of a clean stop.
pub const EXIT_OK: i32 = 0;
/// Exit status of a failure while running: a pipeline thread failed, the HTTP port could not be bound, the
/// subscription failed, or shutdown did not finish within its deadline.
pub const EXIT_RUNTIME: i32 = 1;
/// Exit status of an invalid configuration (including librdkafka properties or buckets the libraries refuse)
/// and of an invalid command line.
pub const EXIT_CONFIG: i32 = 2;
/// Exit status when a second SIGINT/SIGTERM arrives during shutdown (128 + SIGINT, as a shell reports it).
pub const EXIT_SECOND_SIGNAL: i32 = 130;

impl AppError {
    /// [`EXIT_CONFIG`] for configuration the libraries refuse, [`EXIT_RUNTIME`] for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Metrics(_) | AppError::Kafka(KafkaSetupError::Config(_)) => EXIT_CONFIG,
            _ => EXIT_RUNTIME,
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
    let (feed, inbox, drain) = batch::channel(CHANNEL_CAPACITY);
    let offsets = Offsets::new(
        &cfg.kafka.topic,
        drain,
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

    // Plain threads, not scoped ones: a thread that hangs at shutdown must be left behind (the process ends
    // without it), and `std::thread::scope` would wait for it forever.
    let server = Arc::new(server);
    let mut threads = Threads::default();
    let ingest_nice = cfg.ingest_nice;
    threads.spawn("kafka-poll", &life, move |life| {
        let _g = life.thread("kafka-poll");
        crate::runtime::sched::lower_priority_for("kafka-poll", ingest_nice);
        poll::poll_loop(consumer, feed, max_payload, exemplars);
    });
    threads.spawn("worker", &life, move |life| {
        let _g = life.thread("worker");
        crate::runtime::sched::lower_priority_for("worker", ingest_nice);
        worker::worker_loop(inbox, applier);
    });
    let (srv, m) = (server.clone(), metrics.clone());
    threads.spawn("http-gate", &life, move |life| {
        let _g = life.thread("http-gate");
        srv.run_gate(&m, &life);
    });
    for _ in 0..cfg.http.threads {
        let (srv, m) = (server.clone(), metrics.clone());
        threads.spawn("http", &life, move |life| {
            let _g = life.thread("http");
            crate::http::serve(&srv.server, &m, &life);
        });
    }
    // The pusher reads the registry as a scrape does; it stops with the HTTP threads, after one last push.
    let pushing = pusher.is_some();
    if let Some(p) = pusher {
        threads.spawn("remote-write", &life, move |life| {
            let _g = life.thread("remote-write");
            p.run(&life);
        });
    }
    supervise(&life);
    let limit = SHUTDOWN_DEADLINE + linger;
    let deadline = Instant::now() + limit;
    // The pipeline (poll thread, worker) drains and commits first; HTTP (and the pusher) keep going meanwhile.
    let http_threads = cfg.http.threads + 1 + usize::from(pushing);
    if life.wait_running_at_most(http_threads, deadline) && !linger.is_zero() {
        info!("pipeline stopped; serving /metrics for {linger:?} more for a final scrape");
        std::thread::sleep(linger.min(deadline.saturating_duration_since(Instant::now())));
    }
    life.stop_http();
    let outcome = threads.finish(&life, deadline, limit);
    match &outcome {
        Ok(()) => info!("stopped cleanly"),
        // The caller logs the error itself; a thread left running ends with the process.
        Err(AppError::ShutdownTimeout(_)) => {}
        Err(_) => warn!("stopped after a failure"),
    }
    outcome
}

/// The threads of one run, started as plain (not scoped) threads so that one that hangs at shutdown can be
/// left behind.
#[derive(Default)]
struct Threads {
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl Threads {
    fn spawn(&mut self, name: &'static str, life: &Arc<Lifecycle>, f: impl FnOnce(Arc<Lifecycle>) + Send + 'static) {
        let life = life.clone();
        let h = std::thread::Builder::new().name(name.into()).spawn(move || f(life)).expect("spawn thread");
        self.handles.push((name, h));
    }

    /// Waits until every thread has ended or `deadline` passes. A thread still running then is abandoned (its
    /// handle dropped, so it is detached and ends with the process) and the result is
    /// [`AppError::ShutdownTimeout`]; a thread that panicked or ended on its own (the lifecycle records both)
    /// makes it [`AppError::ThreadFailed`].
    fn finish(self, life: &Lifecycle, deadline: Instant, limit: Duration) -> Result<(), AppError> {
        if life.wait_threads(deadline) {
            // A thread marks itself ended just before it returns: give those the moments they need, no more.
            for (_, h) in &self.handles {
                while !h.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        let stuck: Vec<&str> = self.handles.iter().filter(|(_, h)| !h.is_finished()).map(|(name, _)| *name).collect();
        if !stuck.is_empty() {
            error!("still running at the deadline: {}", stuck.join(", "));
            return Err(AppError::ShutdownTimeout(limit));
        }
        for (_, h) in self.handles {
            // A panic has been recorded by the thread's guard (`life.failed()`); its payload adds nothing.
            let _ = h.join();
        }
        if life.failed() {
            Err(AppError::ThreadFailed)
        } else {
            Ok(())
        }
    }
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
    let props = crate::config::kafka::masked(&cfg.kafka.consumer_properties());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped(threads: Threads, life: &Lifecycle, within: Duration) -> Result<(), AppError> {
        life.request_stop();
        threads.finish(life, Instant::now() + within, within)
    }

    #[test]
    fn threads_that_stop_are_joined() {
        let life = Arc::new(Lifecycle::new());
        let mut t = Threads::default();
        t.spawn("a", &life, |life| {
            let _g = life.thread("a");
            life.wait_for_stop();
        });
        assert!(stopped(t, &life, Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn a_thread_that_hangs_is_abandoned_and_reported() {
        let life = Arc::new(Lifecycle::new());
        let (release, hang) = std::sync::mpsc::channel::<()>();
        let mut t = Threads::default();
        t.spawn("stuck", &life, move |life| {
            let _g = life.thread("stuck");
            let _ = hang.recv(); // ignores the stop request
        });
        let started = Instant::now();
        let e = stopped(t, &life, Duration::from_millis(100)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "returned without waiting for the thread");
        assert!(matches!(e, AppError::ShutdownTimeout(_)), "{e}");
        assert_eq!(e.exit_code(), EXIT_RUNTIME);
        assert_eq!(e.to_string(), "shutdown did not finish within 100ms; exiting without a clean close");
        drop(release); // lets the abandoned thread end
    }

    #[test]
    fn a_thread_that_panics_is_a_failure_not_a_panic() {
        let life = Arc::new(Lifecycle::new());
        let mut t = Threads::default();
        t.spawn("doomed", &life, |life| {
            let _g = life.thread("doomed");
            panic!("on purpose");
        });
        let e = stopped(t, &life, Duration::from_secs(10)).unwrap_err();
        assert!(matches!(e, AppError::ThreadFailed), "{e}");
        assert_eq!(e.exit_code(), EXIT_RUNTIME);
    }
}
