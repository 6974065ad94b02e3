//! `demo`: the exporter against an in-process Kafka-protocol broker (librdkafka's mock cluster, real TCP)
//! fed by the built-in traffic generator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::config::{Config, Origin, RawSettings, Setting};
use crate::runtime::shutdown::Lifecycle;
use crate::sim::generator::{Generator, Traffic};
use crate::sim::mock::MockBroker;

/// Options of `demo`.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Events per second produced.
    pub rate: u64,
    pub partitions: i32,
    pub seed: u64,
}

/// Produces generated traffic at `rate` events/s until a stop is requested.
pub fn produce_until_stopped(brokers: &str, topic: &str, traffic: Traffic, rate: u64, life: &Lifecycle) -> u64 {
    let producer: BaseProducer = match ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("linger.ms", "5")
        .create()
    {
        Ok(p) => p,
        Err(e) => {
            error!("demo producer: {e}");
            return 0;
        }
    };
    let mut gen = Generator::new(traffic);
    let start = Instant::now();
    let mut sent = 0u64;
    while !life.stop_requested() {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let g = gen.next_generated();
            match producer.send(BaseRecord::to(topic).key(&g.key).payload(&g.value)) {
                Ok(()) => sent += 1,
                Err((e, _)) => {
                    warn!("demo producer: {e}");
                    break;
                }
            }
            // QualityMonitor's alert after a low evaluation, as its producer sends it.
            if let Some(alert) = gen.take_alert() {
                if producer.send(BaseRecord::to(topic).key(&g.key).payload(&alert)).is_ok() {
                    sent += 1;
                }
            }
        }
        producer.poll(Duration::from_millis(10));
    }
    let _ = producer.flush(Duration::from_secs(2));
    sent
}

/// Share of the demo's events sent as QualityMonitor evaluations.
pub const DEMO_MONITOR_RATIO: f64 = 0.2;

/// Runs the demo; returns the process exit code.
pub fn run(mut raw: RawSettings, opts: DemoOptions, life: Arc<Lifecycle>) -> i32 {
    let mock = match MockBroker::start(1) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot start the in-process Kafka mock cluster: {e}");
            return 1;
        }
    };
    let brokers = mock.bootstrap_servers().to_string();
    let topic = raw.get(Setting::KafkaTopic).map(|(t, _)| t).unwrap_or_else(|| "dashstream-quality".into());
    if let Err(e) = mock.create_topic(&topic, opts.partitions) {
        eprintln!("cannot create topic {topic}: {e}");
        return 1;
    }
    raw.set(Setting::KafkaBrokers, brokers.clone());
    // Demo defaults (each only when not set by the operator): a short group session so a restarted demo
    // rejoins quickly, and a short session idle timeout so dashstream_turns_by_session fills within seconds.
    for (k, v) in [
        (Setting::KafkaSessionTimeoutMs, "6000"),
        (Setting::PrometheusSessionTimeoutSecs, "2"),
        (Setting::MetricsBindIp, "127.0.0.1"),
    ] {
        if raw.get(k).is_some_and(|(_, o)| o == Origin::Default) {
            raw.set(k, v);
        }
    }
    if raw.get(Setting::KafkaConsumerProperties).is_none() {
        raw.set(Setting::KafkaConsumerProperties, "heartbeat.interval.ms=500");
    }
    let cfg = match Config::from_raw(&raw) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return crate::app::EXIT_CONFIG;
        }
    };
    crate::runtime::logging::init(cfg.log_level);
    info!("{}", crate::app::startup_line(&cfg));
    // A share of the events as DashFlow's QualityMonitor writes them, so the dashboard shows issues and alerts.
    let traffic = Traffic { seed: opts.seed, monitor_ratio: DEMO_MONITOR_RATIO, ..Traffic::default() };
    let result = std::thread::scope(|s| {
        let producer = s.spawn(|| produce_until_stopped(&brokers, &topic, traffic, opts.rate, &life));
        let r = crate::app::run(&cfg, life.clone(), |addr| {
            println!(
                "demo: in-process Kafka mock cluster at {brokers}, topic {topic} ({} partitions)",
                opts.partitions
            );
            println!("demo: producing {} synthetic quality events/s (seed {})", opts.rate, opts.seed);
            println!("metrics:      http://{addr}/metrics");
            println!("landing page: http://{addr}/");
            println!("press Ctrl-C to stop");
        });
        life.request_stop();
        let sent = producer.join().unwrap_or(0);
        info!("demo produced {sent} events");
        r
    });
    drop(mock);
    match result {
        Ok(()) => crate::app::EXIT_OK,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}
