//! The command line: the daemon's flags and each subcommand's, parsed into one [`Invocation`] holding that
//! command's typed arguments and its [`RawSettings`].
//!
//! A command lists, and accepts, only the settings it reads: the daemon, `demo` and `check-config` all of
//! them; `produce` and `tail` the Kafka connection and security ones ([`TOOL_SETTINGS`]); `healthcheck`
//! `--web.config.file` (and `METRICS_PORT`, `WEB_LISTEN_ADDRESS` from the environment) besides its own; `mock-broker` none. The daemon's flags go before any subcommand, a subcommand's after it.

use std::ffi::OsString;
use std::time::Duration;

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};

pub use super::choices::KeyMode;
use super::flags::{raw_settings, setting_arg, with_settings};
use super::raw::RawSettings;
use super::setting::Setting;

/// What `produce` and `tail` read (what `ToolConfig` validates); their `--brokers` and `--topic` are the
/// flags of the first two.
pub const TOOL_SETTINGS: &[Setting] = &[
    Setting::KafkaBrokers,
    Setting::KafkaTopic,
    Setting::KafkaSecurityProtocol,
    Setting::KafkaSaslMechanism,
    Setting::KafkaSaslUsername,
    Setting::KafkaSaslPassword,
    Setting::KafkaSslCaLocation,
    Setting::KafkaSslCertificateLocation,
    Setting::KafkaSslKeyLocation,
    Setting::KafkaSslKeyPassword,
    Setting::KafkaSslEndpointAlgorithm,
    Setting::KafkaBrokerAddressFamily,
    Setting::DashstreamMaxPayloadBytes,
    Setting::RustLog,
];

/// The command to run, with its arguments.
#[derive(Debug)]
pub enum Invocation {
    Daemon(RawSettings),
    Demo(DemoArgs),
    Produce(ProduceArgs),
    Tail(TailArgs),
    Healthcheck(HealthcheckArgs),
    CheckConfig(RawSettings),
    MockBroker(MockBrokerArgs),
    Backfill(BackfillArgs),
}

#[derive(Debug)]
pub struct DemoArgs {
    pub settings: RawSettings,
    /// Events per second produced.
    pub rate: u64,
    pub partitions: i32,
    pub seed: u64,
}

/// `--partitions-key` takes [`KeyMode`]'s words (clap lists them in `--help` and matches them ignoring case).
impl clap::ValueEnum for KeyMode {
    fn value_variants<'a>() -> &'a [Self] {
        &KeyMode::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.label()))
    }
}

#[derive(Debug)]
pub struct ProduceArgs {
    pub settings: RawSettings,
    /// Events per second; 0 = as fast as possible.
    pub rate: u64,
    /// Records to send; 0 = until stopped.
    pub count: u64,
    pub seed: u64,
    pub keys: KeyMode,
    pub pass_rate: f64,
    pub zstd_ratio: f64,
    pub legacy_ratio: f64,
    /// Share of events sent as DashFlow QualityMonitor evaluations (with their alerts).
    pub monitor_ratio: f64,
    pub bad_ratio: f64,
    /// Sessions open at once.
    pub sessions: usize,
    pub linger_ms: u32,
    /// `--timestamps-from` and `--timestamps-span`, milliseconds.
    pub stamps: Option<(i64, i64)>,
    /// Print the summary as JSON.
    pub json: bool,
}

#[derive(Debug)]
pub struct TailArgs {
    pub settings: RawSettings,
    pub from_beginning: bool,
    /// Stop after this many records (0 = never).
    pub limit: u64,
    pub partition: Option<i32>,
    pub json: bool,
}

#[derive(Debug)]
pub struct BackfillArgs {
    /// Every setting the daemon reads (the Kafka connection, the buckets and session rules).
    pub settings: RawSettings,
    pub from_ms: i64,
    /// `None`: now.
    pub to_ms: Option<i64>,
    pub step_ms: i64,
    pub window_ms: i64,
    pub labels: Vec<(String, String)>,
    /// A path, or `-` for standard output.
    pub output: String,
    pub quiet: bool,
}

#[derive(Debug)]
pub struct HealthcheckArgs {
    /// `--url`; without it the daemon's port (`METRICS_PORT`, from `settings`) on loopback.
    pub url: Option<String>,
    pub timeout: Duration,
    /// `METRICS_PORT`, `WEB_LISTEN_ADDRESS` (the variable) and `WEB_CONFIG_FILE` (`--web.config.file`).
    pub settings: RawSettings,
    /// `--ca-file` / `HEALTHCHECK_CA_FILE`: certificates to trust instead of the web config's own.
    pub ca_file: Option<std::path::PathBuf>,
    /// `--user` / `HEALTHCHECK_USER`.
    pub user: Option<String>,
    /// `--password-file` / `HEALTHCHECK_PASSWORD_FILE`.
    pub password_file: Option<std::path::PathBuf>,
    /// `HEALTHCHECK_PASSWORD` (a variable only: flags show in `ps`).
    pub password: Option<String>,
}

#[derive(Debug)]
pub struct MockBrokerArgs {
    pub topic: String,
    pub partitions: i32,
    /// Brokers in the cluster (ids 1..=N).
    pub brokers: i32,
}

fn ratio(name: &'static str, default: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_parser(parse_ratio).default_value(default).help(help)
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("expected a number from 0 to 1, got {s:?}")),
    }
}

/// `--brokers` and `--topic` (the daemon's `--kafka-brokers` and `--kafka-topic` are accepted too), then the
/// other settings of [`TOOL_SETTINGS`].
fn with_tool_settings(cmd: Command, own: impl FnOnce(Command) -> Command) -> Command {
    with_client_settings(cmd, TOOL_SETTINGS, own)
}

/// `--brokers` and `--topic`, then the other `settings`.
fn with_client_settings(cmd: Command, settings: &[Setting], own: impl FnOnce(Command) -> Command) -> Command {
    let (brokers, topic) = (Setting::KafkaBrokers, Setting::KafkaTopic);
    let cmd = cmd
        .arg(
            Arg::new(brokers.env())
                .long("brokers")
                .alias(brokers.flag())
                .value_name("LIST")
                .help("Bootstrap brokers (overrides KAFKA_BROKERS)"),
        )
        .arg(
            Arg::new(topic.env())
                .long("topic")
                .alias(topic.flag())
                .value_name("TOPIC")
                .help("Topic (overrides KAFKA_TOPIC)"),
        );
    let rest: Vec<Setting> = settings.iter().copied().filter(|&s| s != brokers && s != topic).collect();
    with_settings(own(cmd), &rest)
}

fn demo() -> Command {
    let cmd = Command::new("demo")
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
    with_settings(cmd, Setting::ALL)
}

fn produce() -> Command {
    let cmd =
        Command::new("produce").about("Send synthetic quality events to a Kafka topic and print exactly what was sent");
    with_tool_settings(cmd, |cmd| {
        cmd.arg(
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
                .value_parser(clap::builder::EnumValueParser::<KeyMode>::new())
                .ignore_case(true)
                .default_value("session")
                .help("Record key: the session id (as DashFlow producers), a random key, or none"),
        )
        .arg(ratio("pass-rate", "0.85", "Share of events that passed"))
        .arg(ratio("zstd-ratio", "0.05", "Share of records sent zstd-framed (0x01)"))
        .arg(ratio("legacy-ratio", "0.05", "Share of records sent legacy-unframed"))
        .arg(ratio(
            "monitor-ratio",
            "0.2",
            "Share of events sent as DashFlow QualityMonitor evaluations (its keys and issue tags), each averaging \
below 0.8 followed by its LOW_QUALITY alert event",
        ))
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
        .arg(
            Arg::new("timestamps-from")
                .long("timestamps-from")
                .value_name("TIME")
                .value_parser(crate::tools::backfill::time::parse_instant)
                .requires("timestamps-span")
                .help("Stamp the records (Kafka timestamp, and header.timestamp_us of DashFlow-shaped records) from TIME on, spread evenly over --timestamps-span by record number (needs --count): history for backfill"),
        )
        .arg(
            Arg::new("timestamps-span")
                .long("timestamps-span")
                .value_name("DURATION")
                .value_parser(crate::tools::backfill::time::parse_duration)
                .requires("timestamps-from")
                .help("The time the stamps of --timestamps-from cover (15m, 7d)"),
        )
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("Print the summary as JSON"))
    })
}

fn tail() -> Command {
    let cmd = Command::new("tail")
        .about("Print the topic's records and what they decode to, without joining a consumer group");
    with_tool_settings(cmd, |cmd| {
        cmd.arg(
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
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("One JSON object per record"))
    })
}

const BACKFILL_HELP: &str = "\
Reads the events stamped in (--from, --to] (partitions assigned directly: no consumer group is joined, nothing is \
committed, a running exporter is untouched), applies each quality event with the daemon's rules in event time \
(header.timestamp_us, else the Kafka record timestamp; the daemon's buckets and session settings apply) and \
writes, at every step boundary, every data family's samples stamped with that boundary: an OpenMetrics 1.0 \
file ending in # EOF. Self-monitoring families (dashstream_exporter_*, process_*, dashflow_build_info) are \
left out. The file is written under a temporary name and renamed when complete.

Records are merged across partitions in event-time order; skew inside a partition up to --reorder-window is \
put in order, records later than that are counted at the next boundary and reported at the end.

Workflow:
  1. dashflow-prometheus-exporter backfill --kafka-brokers B --topic T --from 2026-12-01T00:00:00Z \\
       --to 2026-12-07T00:00:00Z --label job=dashflow-exporter --label instance=backfill --output history.om
  2. promtool tsdb create-blocks-from openmetrics history.om ./blocks
  3. move the block directories from ./blocks into Prometheus's data directory (--storage.tsdb.path); it
     loads them at its next block reload (Prometheus 2.38 and older also need
     --storage.tsdb.allow-overlapping-blocks when the blocks overlap existing ones).
Keep --to older than Prometheus's head (about the last 2-3 hours) and pick labels that do not collide with
the live exporter's series (docs/operations.md, Backfilling history).";

fn backfill() -> Command {
    let cmd = Command::new("backfill")
        .about("Write a time range of the topic as an OpenMetrics file stamped in event time, for promtool tsdb create-blocks-from openmetrics")
        .after_long_help(BACKFILL_HELP);
    with_client_settings(cmd, Setting::ALL, |cmd| {
        cmd.arg(
            Arg::new("from")
                .long("from")
                .value_name("TIME")
                .required(true)
                .value_parser(crate::tools::backfill::time::parse_instant)
                .help("Start of the range, excluded (an event stamped exactly then belongs to the range ending there): RFC 3339 (2026-12-01T00:00:00Z, or with an offset) or Unix seconds"),
        )
        .arg(
            Arg::new("to")
                .long("to")
                .value_name("TIME")
                .value_parser(crate::tools::backfill::time::parse_instant)
                .help("End of the range (included), as --from [default: now]"),
        )
        .arg(
            Arg::new("step")
                .long("step")
                .value_name("DURATION")
                .value_parser(parse_step)
                .default_value("15s")
                .help("Time between the boundaries where samples are written (at least 1s): the scrape interval to mimic"),
        )
        .arg(
            Arg::new("reorder-window")
                .long("reorder-window")
                .value_name("DURATION")
                .value_parser(crate::tools::backfill::time::parse_duration)
                .default_value("10s")
                .help("How far out of event-time order a record may come and still be applied in order (at most 65536 records are held)"),
        )
        .arg(
            Arg::new("label")
                .long("label")
                .value_name("NAME=VALUE")
                .action(ArgAction::Append)
                .value_parser(parse_label)
                .help("A label added to every sample, such as job=… and instance=… so the dashboard's selectors match (repeatable)"),
        )
        .arg(
            Arg::new("output")
                .long("output")
                .short('o')
                .value_name("FILE")
                .required(true)
                .help("The OpenMetrics file to write, or - for standard output"),
        )
        .arg(
            Arg::new("quiet")
                .long("quiet")
                .action(ArgAction::SetTrue)
                .help("No progress lines and no summary on standard error"),
        )
    })
}

fn parse_step(s: &str) -> Result<i64, String> {
    let ms = crate::tools::backfill::time::parse_duration(s)?;
    if ms < 1000 {
        return Err(format!(
            "{s:?} is under 1s; Prometheus stores milliseconds, but a step under a second only bloats the file"
        ));
    }
    Ok(ms)
}

/// `NAME=VALUE`, NAME a Prometheus label name not reserved (`__…`).
fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    let valid =
        k.bytes().enumerate().all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
    if k.is_empty() || !valid || k.starts_with("__") {
        return Err(format!("{k:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"));
    }
    Ok((k.to_string(), v.to_string()))
}

fn healthcheck() -> Command {
    Command::new("healthcheck")
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
        )
        .arg(setting_arg(Setting::WebConfigFile).help(
            "The daemon's web config: TLS on means https (trusting the certificate it configures), users mean \
             basic auth [env: WEB_CONFIG_FILE]",
        ))
        .arg(
            Arg::new("ca-file").long("ca-file").value_name("PATH").help(
                "PEM certificates to trust instead of the web config's own certificate [env: HEALTHCHECK_CA_FILE]",
            ),
        )
        .arg(Arg::new("user").long("user").value_name("NAME").help("Basic auth user [env: HEALTHCHECK_USER]"))
        .arg(Arg::new("password-file").long("password-file").value_name("PATH").help(
            "File holding the basic auth password (one trailing newline removed) [env: HEALTHCHECK_PASSWORD_FILE; \
             or the password itself in HEALTHCHECK_PASSWORD]",
        ))
}

fn check_config() -> Command {
    let cmd = Command::new("check-config")
        .about("Validate the configuration exactly as the daemon would and print it (secrets masked); exit 0 or 2");
    with_settings(cmd, Setting::ALL)
}

fn mock_broker() -> Command {
    Command::new("mock-broker")
        .about("Run librdkafka's mock Kafka cluster on loopback and print its bootstrap address (for tests and benchmarks; data is kept in memory only)")
        .arg(Arg::new("topic").long("topic").default_value("dashstream-quality").help("Topic to create"))
        .arg(Arg::new("partitions").long("partitions").value_parser(value_parser!(i32).range(1..=10_000)).default_value("3").help("Partitions of the topic"))
        .arg(Arg::new("brokers").long("brokers").value_parser(value_parser!(i32).range(1..=16)).default_value("1").help("Brokers in the cluster (ids 1..=N); \"down ID\" and \"up ID\" lines on standard input take one down and bring it back"))
}

/// The whole command line.
pub fn command() -> Command {
    let top = Command::new("dashflow-prometheus-exporter")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Consumes DashFlow quality events from Kafka and serves them as Prometheus metrics")
        .after_help("Without a subcommand it runs the exporter daemon. Every setting can also be given by its environment variable; a flag wins over the variable.")
        .args_conflicts_with_subcommands(true);
    with_settings(top, Setting::ALL)
        .subcommand(demo())
        .subcommand(produce())
        .subcommand(tail())
        .subcommand(healthcheck())
        .subcommand(check_config())
        .subcommand(mock_broker())
        .subcommand(backfill())
}

/// A value of an argument that has a default.
fn given<T: Clone + Send + Sync + 'static>(m: &ArgMatches, id: &str) -> T {
    m.get_one::<T>(id).cloned().expect("the argument has a default")
}

/// A subcommand's own flag, else its variable; empty counts as unset.
fn own_or_env(m: &ArgMatches, id: &str, env: impl Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    m.get_one::<String>(id).cloned().or_else(|| env(var)).filter(|v| !v.is_empty())
}

/// Parses `args` (the program name first), reading variables through `env`.
pub fn parse_from<I, T>(args: I, env: impl Fn(&str) -> Option<String>) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let top = command().try_get_matches_from(args)?;
    Ok(match top.subcommand() {
        Some(("demo", m)) => Invocation::Demo(DemoArgs {
            settings: raw_settings(m, Setting::ALL, env),
            rate: given(m, "rate"),
            partitions: given(m, "partitions"),
            seed: given(m, "seed"),
        }),
        Some(("produce", m)) => Invocation::Produce(ProduceArgs {
            settings: raw_settings(m, TOOL_SETTINGS, env),
            rate: given(m, "rate"),
            count: given(m, "count"),
            seed: given(m, "seed"),
            keys: given(m, "partitions-key"),
            pass_rate: given(m, "pass-rate"),
            zstd_ratio: given(m, "zstd-ratio"),
            legacy_ratio: given(m, "legacy-ratio"),
            monitor_ratio: given(m, "monitor-ratio"),
            bad_ratio: given(m, "bad-ratio"),
            sessions: given(m, "sessions"),
            linger_ms: given(m, "linger-ms"),
            stamps: m.get_one::<i64>("timestamps-from").copied().zip(m.get_one::<i64>("timestamps-span").copied()),
            json: m.get_flag("json"),
        }),
        Some(("tail", m)) => Invocation::Tail(TailArgs {
            settings: raw_settings(m, TOOL_SETTINGS, env),
            from_beginning: m.get_flag("from-beginning"),
            limit: given(m, "limit"),
            partition: m.get_one::<i32>("partition").copied(),
            json: m.get_flag("json"),
        }),
        Some(("healthcheck", m)) => Invocation::Healthcheck(HealthcheckArgs {
            url: m.get_one::<String>("url").cloned(),
            timeout: Duration::from_secs(given(m, "timeout")),
            settings: RawSettings::collect(
                &[Setting::MetricsPort, Setting::WebConfigFile, Setting::WebListenAddress],
                |id| m.try_get_one::<String>(id).ok().flatten().cloned(),
                &env,
            ),
            ca_file: own_or_env(m, "ca-file", &env, "HEALTHCHECK_CA_FILE").map(Into::into),
            user: own_or_env(m, "user", &env, "HEALTHCHECK_USER"),
            password_file: own_or_env(m, "password-file", &env, "HEALTHCHECK_PASSWORD_FILE").map(Into::into),
            password: env("HEALTHCHECK_PASSWORD").filter(|p| !p.is_empty()),
        }),
        Some(("check-config", m)) => Invocation::CheckConfig(raw_settings(m, Setting::ALL, env)),
        Some(("mock-broker", m)) => Invocation::MockBroker(MockBrokerArgs {
            topic: given(m, "topic"),
            partitions: given(m, "partitions"),
            brokers: given(m, "brokers"),
        }),
        Some(("backfill", m)) => Invocation::Backfill(BackfillArgs {
            settings: raw_settings(m, Setting::ALL, env),
            from_ms: given(m, "from"),
            to_ms: m.get_one::<i64>("to").copied(),
            step_ms: given(m, "step"),
            window_ms: given(m, "reorder-window"),
            labels: m.get_many::<(String, String)>("label").map(|v| v.cloned().collect()).unwrap_or_default(),
            output: given(m, "output"),
            quiet: m.get_flag("quiet"),
        }),
        _ => Invocation::Daemon(raw_settings(&top, Setting::ALL, env)),
    })
}

/// Parses the process's arguments and environment; a usage error (or `--help`, `--version`) ends the process
/// as clap does.
pub fn parse() -> Invocation {
    parse_from(std::env::args_os(), |k| std::env::var(k).ok()).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Origin};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn flags_win_over_environment_and_are_named_in_errors() {
        let env = |k: &str| match k {
            "METRICS_PORT" => Some("9999".to_string()),
            "KAFKA_TOPIC" => Some("from-env".to_string()),
            _ => None,
        };
        let Ok(Invocation::Daemon(raw)) =
            parse_from(["t", "--metrics-port", "1234", "--kafka-topic", "from-flag"], env)
        else {
            panic!("the daemon's flags parse")
        };
        let c = Config::from_raw(&raw).unwrap();
        assert_eq!(c.http.port, 1234);
        assert_eq!(c.kafka.topic, "from-flag");
        let Ok(Invocation::Daemon(raw)) = parse_from(["t", "--metrics-port", "x"], no_env) else {
            panic!("the daemon's flags parse")
        };
        let e = Config::from_raw(&raw).unwrap_err();
        assert!(e.to_string().contains("METRICS_PORT (--metrics-port) = \"x\""), "{e}");
    }

    #[test]
    fn tools_take_brokers_and_topic_under_both_names_and_read_only_their_settings() {
        let env = |k: &str| Some(format!("env-{k}"));
        let Ok(Invocation::Produce(p)) =
            parse_from(["t", "produce", "--brokers", "b:1", "--kafka-topic", "t1", "--kafka-sasl-username", "u"], env)
        else {
            panic!("produce parses")
        };
        assert_eq!(p.settings.explicit(Setting::KafkaBrokers), Some(("b:1", Origin::Flag)));
        assert_eq!(p.settings.explicit(Setting::KafkaTopic), Some(("t1", Origin::Flag)));
        assert_eq!(p.settings.explicit(Setting::KafkaSaslUsername), Some(("u", Origin::Flag)));
        assert_eq!(p.settings.explicit(Setting::RustLog), Some(("env-RUST_LOG", Origin::Env)));
        assert_eq!(p.settings.explicit(Setting::MetricsPort), None, "produce does not read METRICS_PORT");
        assert_eq!(p.keys, KeyMode::Session);
        let Ok(Invocation::Tail(t)) = parse_from(["t", "tail", "--topic", "t2", "--partition", "3"], no_env) else {
            panic!("tail parses")
        };
        assert_eq!(t.settings.explicit(Setting::KafkaTopic), Some(("t2", Origin::Flag)));
        assert_eq!((t.partition, t.limit, t.from_beginning), (Some(3), 0, false));
    }

    #[test]
    fn a_flag_a_command_does_not_read_is_refused() {
        for args in [
            &["t", "mock-broker", "--metrics-port", "1"][..],
            &["t", "healthcheck", "--kafka-brokers", "x"],
            &["t", "produce", "--kafka-group-id", "g"],
            &["t", "tail", "--metrics-port", "1"],
            &["t", "--metrics-port", "1", "produce"],
        ] {
            let e = parse_from(args, no_env).expect_err(&args.join(" "));
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn secret_file_flags_are_read_by_every_command_that_reads_the_secret() {
        use crate::config::ToolConfig;
        let env = |k: &str| match k {
            "KAFKA_SASL_PASSWORD" => Some("env-password".to_string()),
            "KAFKA_SASL_USERNAME" => Some("alice".to_string()),
            _ => None,
        };
        let dir = std::env::temp_dir().join(format!("dfe-cli-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sasl");
        std::fs::write(&path, "flag-file-password\n").unwrap();
        let p = path.to_str().unwrap();
        let Ok(Invocation::Daemon(raw)) = parse_from(["t", "--kafka-sasl-password-file", p], env) else {
            panic!("the daemon's flags parse")
        };
        assert_eq!(raw.file(Setting::KafkaSaslPassword), Some((p, Origin::FlagFile)));
        let c = Config::from_raw(&raw).unwrap();
        assert_eq!(
            c.kafka.sasl_password.as_ref().map(|s| s.expose()),
            Some("flag-file-password"),
            "the flag pair wins over the variable"
        );
        let Ok(Invocation::Produce(pr)) = parse_from(["t", "produce", "--kafka-ssl-key-password-file", p], no_env)
        else {
            panic!("produce parses")
        };
        let c = ToolConfig::from_raw(&pr.settings).unwrap();
        assert_eq!(c.kafka.ssl_key_password.as_ref().map(|s| s.expose()), Some("flag-file-password"));
        let Ok(Invocation::CheckConfig(raw)) =
            parse_from(["t", "check-config", "--kafka-sasl-password", "x", "--kafka-sasl-password-file", p], env)
        else {
            panic!("check-config parses")
        };
        let e = Config::from_raw(&raw).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "KAFKA_SASL_PASSWORD (--kafka-sasl-password-file) = {p:?}: --kafka-sasl-password and --kafka-sasl-password-file are both set; set only one"
            )),
            "{e}"
        );
        assert!(parse_from(["t", "healthcheck", "--kafka-sasl-password-file", p], no_env).is_err());
    }

    #[test]
    fn healthcheck_reads_the_port_from_the_environment_only() {
        let env = |k: &str| (k == "METRICS_PORT").then(|| "9300".to_string());
        let Ok(Invocation::Healthcheck(h)) = parse_from(["t", "healthcheck", "--timeout", "2"], env) else {
            panic!("healthcheck parses")
        };
        assert_eq!((h.url, h.timeout), (None, Duration::from_secs(2)));
        assert_eq!(h.settings.explicit(Setting::MetricsPort), Some(("9300", Origin::Env)));
    }

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }
}
