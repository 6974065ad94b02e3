//! The `dashflow-prometheus-exporter` binary: the daemon, or one of its subcommands (busybox style, so the
//! one static binary carries everything to an edge box).

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

use std::sync::Arc;
use std::time::Duration;

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use log::info;

use dashflow_prometheus_exporter::config::{add_setting_flags, Config, KafkaConfig, RawSettings};
use dashflow_prometheus_exporter::runtime::shutdown::Lifecycle;
use dashflow_prometheus_exporter::sim::demo::{self, DemoOptions};
use dashflow_prometheus_exporter::sim::generator::Traffic;
use dashflow_prometheus_exporter::tools::{healthcheck, produce, tail};
use dashflow_prometheus_exporter::{app, runtime::logging};

fn ratio(name: &'static str, default: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_parser(parse_ratio).default_value(default).help(help)
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("expected a number from 0 to 1, got {s:?}")),
    }
}

fn brokers_topic(cmd: Command) -> Command {
    cmd.arg(Arg::new("brokers").long("brokers").value_name("LIST").help("Bootstrap brokers (overrides KAFKA_BROKERS)"))
        .arg(Arg::new("topic").long("topic").value_name("TOPIC").help("Topic (overrides KAFKA_TOPIC)"))
}

fn cli() -> Command {
    let demo = Command::new("demo")
        .about("Run the exporter against a built-in Kafka-protocol broker fed with synthetic traffic")
        .arg(
            Arg::new("rate")
                .long("rate")
                .value_parser(value_parser!(u64).range(1..=1_000_000))
                .default_value("300")
                .help("Events per second to produce"),
        )
        .arg(
            Arg::new("partitions")
                .long("partitions")
                .value_parser(value_parser!(i32).range(1..=1024))
                .default_value("3")
                .help("Partitions of the demo topic"),
        )
        .arg(Arg::new("seed").long("seed").value_parser(value_parser!(u64)).default_value("1").help("Traffic seed"));
    let produce = brokers_topic(Command::new("produce"))
        .about("Send synthetic quality events to a Kafka topic and print exactly what was sent")
        .arg(
            Arg::new("rate")
                .long("rate")
                .value_parser(value_parser!(u64))
                .default_value("1000")
                .help("Events per second (0 = as fast as possible)"),
        )
        .arg(
            Arg::new("count")
                .long("count")
                .value_parser(value_parser!(u64))
                .default_value("10000")
                .help("Records to send (0 = until Ctrl-C)"),
        )
        .arg(
            Arg::new("seed")
                .long("seed")
                .value_parser(value_parser!(u64))
                .default_value("1")
                .help("Seed: the same seed sends the same records"),
        )
        .arg(
            Arg::new("partitions-key")
                .long("partitions-key")
                .value_parser(["session", "random", "none"])
                .default_value("session")
                .help("Record key: the session id (as DashFlow producers), a random key, or none"),
        )
        .arg(ratio("pass-rate", "0.85", "Share of events that passed"))
        .arg(ratio("zstd-ratio", "0.05", "Share of records sent zstd-framed (0x01)"))
        .arg(ratio("legacy-ratio", "0.05", "Share of records sent legacy-unframed"))
        .arg(ratio("bad-ratio", "0", "Share of records that are malformed or not quality events (every kind)"))
        .arg(
            Arg::new("sessions")
                .long("sessions")
                .value_parser(value_parser!(usize))
                .default_value("200")
                .help("Sessions open at once"),
        )
        .arg(
            Arg::new("linger-ms")
                .long("linger-ms")
                .value_parser(value_parser!(u32).range(0..=60_000))
                .default_value("5")
                .help("How long records wait to be sent in batches (librdkafka linger.ms); larger batches make a big pre-load cheaper for the broker to serve")
        )
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("Print the summary as JSON"));
    let tail = brokers_topic(Command::new("tail"))
        .about("Print the topic's records and what they decode to, without joining a consumer group")
        .arg(
            Arg::new("from-beginning")
                .long("from-beginning")
                .action(ArgAction::SetTrue)
                .conflicts_with("tail")
                .help("Start at the oldest retained record"),
        )
        .arg(
            Arg::new("tail")
                .long("tail")
                .action(ArgAction::SetTrue)
                .help("Start at the end: only new records (default)"),
        )
        .arg(
            Arg::new("limit")
                .long("limit")
                .value_parser(value_parser!(u64))
                .default_value("0")
                .help("Stop after N records (0 = never)"),
        )
        .arg(
            Arg::new("partition")
                .long("partition")
                .value_parser(value_parser!(i32).range(0..))
                .help("Only this partition"),
        )
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("One JSON object per record"));
    let health = Command::new("healthcheck")
        .about("Exit 0 if the URL answers HTTP 200 within the timeout, else 1 (for container health checks)")
        .arg(
            Arg::new("url")
                .long("url")
                .help("URL to check [default: http://127.0.0.1:$METRICS_PORT/-/ready, port 9190]"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_parser(value_parser!(u64).range(1..=300))
                .default_value("3")
                .help("Seconds"),
        );
    let mock = Command::new("mock-broker")
        .about("Run librdkafka's mock Kafka cluster on loopback and print its bootstrap address (for tests and benchmarks; data is kept in memory only)")
        .arg(Arg::new("topic").long("topic").default_value("dashstream-quality").help("Topic to create"))
        .arg(Arg::new("partitions").long("partitions").value_parser(value_parser!(i32).range(1..=10_000)).default_value("3").help("Partitions of the topic"));
    let check = Command::new("check-config")
        .about("Validate the configuration exactly as the daemon would and print it (secrets masked); exit 0 or 2");
    add_setting_flags(
        Command::new("dashflow-prometheus-exporter")
            .version(env!("CARGO_PKG_VERSION"))
            .about("Consumes DashFlow quality events from Kafka and serves them as Prometheus metrics")
            .after_help("Without a subcommand it runs the exporter daemon. Every setting can also be given by its environment variable; a flag wins over the variable."),
    )
    .subcommand(demo)
    .subcommand(produce)
    .subcommand(tail)
    .subcommand(health)
    .subcommand(check)
    .subcommand(mock)
}

fn mock_broker_cmd(m: &ArgMatches) -> i32 {
    let topic = m.get_one::<String>("topic").expect("default");
    let partitions = *m.get_one::<i32>("partitions").expect("default");
    let mock = match dashflow_prometheus_exporter::sim::mock::MockBroker::start(1) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if let Err(e) = mock.create_topic(topic, partitions) {
        eprintln!("cannot create topic {topic}: {e}");
        return 1;
    }
    println!("{}", mock.bootstrap_servers());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let life = Arc::new(Lifecycle::new());
    install_signals(&life);
    life.wait_for_stop();
    0
}

/// SIGINT/SIGTERM: the first asks for a clean stop, a second one exits at once.
fn install_signals(life: &Arc<Lifecycle>) {
    let life = life.clone();
    let r = ctrlc::set_handler(move || {
        if life.stop_requested() {
            eprintln!("second signal: exiting now");
            std::process::exit(130);
        }
        life.request_stop();
    });
    if let Err(e) = r {
        eprintln!("cannot install the signal handler: {e}");
        std::process::exit(1);
    }
}

/// Validated configuration, or the exit code 2 after printing every problem.
fn config(raw: &RawSettings) -> Result<Config, i32> {
    Config::from_raw(raw).map_err(|e| {
        eprint!("{e}");
        2
    })
}

fn daemon(m: &ArgMatches) -> i32 {
    let cfg = match config(&RawSettings::from_process(Some(m))) {
        Ok(c) => c,
        Err(code) => return code,
    };
    logging::init(cfg.log_level);
    for d in &cfg.ignored_log_directives {
        log::warn!("RUST_LOG directive {d:?} names a target; only the global level is applied");
    }
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    info!("{}", app::startup_line(&cfg));
    let life = Arc::new(Lifecycle::new());
    install_signals(&life);
    match app::run(&cfg, life, |addr| info!("serving metrics on http://{addr}/metrics")) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            e.exit_code()
        }
    }
}

fn check_config(m: &ArgMatches) -> i32 {
    let raw = RawSettings::from_process(Some(m));
    let described = Config::describe(&raw);
    let cfg = match config(&raw) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for line in described {
        println!("{line}");
    }
    if let Some(web) = &cfg.http.web_config {
        println!("web config {}: {}", web.path().display(), web.summary());
    }
    println!("librdkafka consumer properties:");
    let props = cfg.kafka.consumer_properties();
    for (k, v) in KafkaConfig::masked(&props) {
        println!("  {k}={v}");
    }
    let mut cc = rdkafka::config::ClientConfig::new();
    for (k, v) in &props {
        cc.set(k, v);
    }
    if let Err(e) = cc.create_native_config() {
        eprintln!("invalid configuration: librdkafka refuses the consumer properties: {e}");
        return 2;
    }
    for w in &cfg.warnings {
        println!("warning: {w}");
    }
    println!("configuration OK");
    0
}

/// Settings with `--brokers`/`--topic` applied on top.
fn tool_settings(m: &ArgMatches) -> RawSettings {
    let mut raw = RawSettings::from_process(Some(m));
    if let Some(b) = m.get_one::<String>("brokers") {
        raw.set("KAFKA_BROKERS", b.clone());
    }
    if let Some(t) = m.get_one::<String>("topic") {
        raw.set("KAFKA_TOPIC", t.clone());
    }
    raw
}

/// Common start of `produce` and `tail`: settings with `--brokers`/`--topic`, quiet logging, signals.
fn tool_start(m: &ArgMatches) -> Result<(Config, Arc<Lifecycle>), i32> {
    let cfg = config(&tool_settings(m))?;
    logging::init(cfg.log_level.min(log::LevelFilter::Warn));
    let life = Arc::new(Lifecycle::new());
    install_signals(&life);
    Ok((cfg, life))
}

fn produce_cmd(m: &ArgMatches) -> i32 {
    let (cfg, life) = match tool_start(m) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let opts = produce::ProduceOptions {
        topic: cfg.kafka.topic.clone(),
        rate: *m.get_one::<u64>("rate").expect("default"),
        count: *m.get_one::<u64>("count").expect("default"),
        keys: match m.get_one::<String>("partitions-key").map(String::as_str) {
            Some("random") => produce::KeyMode::Random,
            Some("none") => produce::KeyMode::None,
            _ => produce::KeyMode::Session,
        },
        traffic: Traffic {
            seed: *m.get_one::<u64>("seed").expect("default"),
            pass_rate: *m.get_one::<f64>("pass-rate").expect("default"),
            zstd_ratio: *m.get_one::<f64>("zstd-ratio").expect("default"),
            legacy_ratio: *m.get_one::<f64>("legacy-ratio").expect("default"),
            active_sessions: *m.get_one::<usize>("sessions").expect("default"),
        },
        bad_ratio: *m.get_one::<f64>("bad-ratio").expect("default"),
        max_payload: cfg.max_payload_bytes,
        linger_ms: *m.get_one::<u32>("linger-ms").expect("default"),
    };
    if opts.traffic.zstd_ratio + opts.traffic.legacy_ratio > 1.0 {
        eprintln!("--zstd-ratio plus --legacy-ratio must not exceed 1");
        return 2;
    }
    match produce::run(&cfg.kafka, &opts, &life) {
        Ok(summary) => {
            if m.get_flag("json") {
                println!("{}", summary.to_json());
            } else {
                print!("{}", summary.to_text());
            }
            0
        }
        Err(e) => {
            eprintln!("produce failed: {e}");
            1
        }
    }
}

fn tail_cmd(m: &ArgMatches) -> i32 {
    let (cfg, life) = match tool_start(m) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let opts = tail::TailOptions {
        topic: cfg.kafka.topic.clone(),
        from_beginning: m.get_flag("from-beginning"),
        limit: *m.get_one::<u64>("limit").expect("default"),
        partition: m.get_one::<i32>("partition").copied(),
        json: m.get_flag("json"),
        max_payload: cfg.max_payload_bytes,
    };
    match tail::run(&cfg.kafka, &opts, &life) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("tail failed: {e}");
            1
        }
    }
}

fn healthcheck_cmd(m: &ArgMatches) -> i32 {
    let url = m.get_one::<String>("url").cloned().unwrap_or_else(|| {
        let port =
            std::env::var("METRICS_PORT").ok().filter(|p| p.parse::<u16>().is_ok()).unwrap_or_else(|| "9190".into());
        format!("http://127.0.0.1:{port}/-/ready")
    });
    let timeout = Duration::from_secs(*m.get_one::<u64>("timeout").expect("default"));
    match healthcheck::check(&url, timeout) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("healthcheck {url}: {e}");
            1
        }
    }
}

fn main() {
    tune_allocator();
    let matches = cli().get_matches();
    let code = match matches.subcommand() {
        Some(("demo", m)) => {
            let opts = DemoOptions {
                rate: *m.get_one::<u64>("rate").expect("default"),
                partitions: *m.get_one::<i32>("partitions").expect("default"),
                seed: *m.get_one::<u64>("seed").expect("default"),
            };
            let life = Arc::new(Lifecycle::new());
            install_signals(&life);
            demo::run(RawSettings::from_process(Some(m)), opts, life)
        }
        Some(("produce", m)) => produce_cmd(m),
        Some(("tail", m)) => tail_cmd(m),
        Some(("healthcheck", m)) => healthcheck_cmd(m),
        Some(("check-config", m)) => check_config(m),
        Some(("mock-broker", m)) => mock_broker_cmd(m),
        _ => daemon(&matches),
    };
    log::logger().flush();
    std::process::exit(code);
}
