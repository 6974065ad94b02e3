//! The `dashflow-prometheus-exporter` binary: the daemon, or one of its subcommands.

use std::sync::Arc;

use clap::{value_parser, Arg, ArgMatches, Command};
use log::info;

use dashflow_prometheus_exporter::config::{add_setting_flags, Config, RawSettings};
use dashflow_prometheus_exporter::demo::{self, DemoOptions};
use dashflow_prometheus_exporter::shutdown::Lifecycle;
use dashflow_prometheus_exporter::{app, logging};

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
    add_setting_flags(
        Command::new("dashflow-prometheus-exporter")
            .version(env!("CARGO_PKG_VERSION"))
            .about("Consumes DashFlow quality events from Kafka and serves them as Prometheus metrics")
            .after_help("Every setting can also be given by its environment variable; a flag wins over the variable."),
    )
    .subcommand(add_setting_flags(demo))
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

fn daemon(m: &ArgMatches) -> i32 {
    let raw = RawSettings::from_process(Some(m));
    let cfg = match Config::from_raw(&raw) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return 2;
        }
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

fn main() {
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
        _ => daemon(&matches),
    };
    log::logger().flush();
    std::process::exit(code);
}
