//! `backfill`: turns a time range of the topic into an OpenMetrics file whose samples are stamped in event
//! time, for `promtool tsdb create-blocks-from openmetrics` (docs/operations.md, "Backfilling history").
//!
//! The partitions are read assigned directly (`source.rs`), merged by event time (each step takes the record
//! of the partition whose next record is oldest) and put in order within the reorder window (`merge.rs`).
//! Each record is decoded and applied by the daemon's own code (`decode`, `metrics::Applier` on a fresh
//! registry) with its event time as the clock, sessions included; before the first record past a step
//! boundary, every data family is written stamped with that boundary (`metrics/timestamped.rs`). The file is
//! written to a temporary name and renamed when complete, so a file at the output path always ends in `# EOF`.

pub mod merge;
pub mod source;
pub mod time;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::cli::BackfillArgs;
use crate::config::Config;
use crate::decode::event::{Event, Normalizer};
use crate::decode::{Decoded, Decoder, ErrorReason, OtherKind};
use crate::metrics::sessions::SessionTracker;
use crate::metrics::timestamped::{TimestampedWriter, DATA_LABELS};
use crate::metrics::{Applier, Metrics};
use crate::runtime::shutdown::Lifecycle;
use crate::table::PerKey;

use self::merge::Reorder;
use self::source::{Raw, Source, SourceError};
use self::time::format_instant;

/// The most records the reorder window holds, whatever the traffic (each is a few hundred bytes).
pub const REORDER_CAP: usize = 65_536;

/// What one backfill does.
#[derive(Clone, Debug)]
pub struct Plan {
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_ms: i64,
    pub window_ms: i64,
    pub labels: Vec<(String, String)>,
    /// `None`: standard output.
    pub output: Option<PathBuf>,
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot create metrics: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("interrupted; no file was written")]
    Interrupted,
}

/// What a backfill read and wrote.
#[derive(Debug, Default)]
pub struct Summary {
    /// (partition, first offset, end offset, records read).
    pub partitions: Vec<(i32, i64, i64, u64)>,
    pub by_timestamp: bool,
    pub applied: u64,
    pub alerts: u64,
    pub before_range: u64,
    pub after_range: u64,
    pub late: u64,
    pub no_time: u64,
    pub undecodable: PerKey<ErrorReason, u64>,
    pub payload_missing: u64,
    pub wrong_scope: u64,
    pub other_type: PerKey<OtherKind, u64>,
    pub boundaries: u64,
    pub samples: u64,
    pub bytes: u64,
    /// Records classified so far (for the progress line).
    pub read_so_far: u64,
}

impl Summary {
    pub fn read(&self) -> u64 {
        self.partitions.iter().map(|p| p.3).sum()
    }

    /// The lines printed at the end.
    pub fn text(&self, elapsed: Duration) -> String {
        let mut s = String::new();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(
            s,
            "backfill: {} records read in {:.1} s ({:.0} records/s){}",
            self.read(),
            secs,
            self.read() as f64 / secs,
            if self.by_timestamp {
                ""
            } else {
                "; the broker does not look offsets up by time: partitions read from their start"
            }
        );
        for (p, start, end, n) in &self.partitions {
            let _ = writeln!(s, "  partition {p}: offsets {start}..{end}, {n} records read");
        }
        let _ = writeln!(
            s,
            "  applied: {} quality events, {} QualityMonitor alerts; out of the range by event time: {} before, {} after",
            self.applied, self.alerts, self.before_range, self.after_range
        );
        let _ = writeln!(s, "  later than the reorder window (counted at the next boundary): {}", self.late);
        let undecodable: Vec<String> =
            self.undecodable.iter().filter(|(_, n)| **n > 0).map(|(r, n)| format!("{r}={n}")).collect();
        let other: Vec<String> =
            self.other_type.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k}={n}")).collect();
        let _ = writeln!(
            s,
            "  undecodable: {} ({}); no payload: {}; not quality scope: {}; other message types: {} ({}); no time: {}",
            self.undecodable.values().sum::<u64>(),
            if undecodable.is_empty() { "none".into() } else { undecodable.join(" ") },
            self.payload_missing,
            self.wrong_scope,
            self.other_type.values().sum::<u64>(),
            if other.is_empty() { "none".into() } else { other.join(" ") },
            self.no_time,
        );
        let _ =
            writeln!(s, "  written: {} boundaries, {} samples, {} bytes", self.boundaries, self.samples, self.bytes);
        s
    }
}

/// A record that changes the data families, with its event time.
#[derive(Clone, Copy)]
enum Item {
    Quality(Event),
    Alert,
}

/// Decodes a record into an item stamped with its event time, or counts why it is none.
struct Classifier {
    decoder: Decoder,
    normalizer: Normalizer,
    from_us: i64,
    to_us: i64,
}

impl Classifier {
    fn classify(&mut self, r: Raw<'_>, sum: &mut Summary) -> Option<(i64, Item)> {
        sum.read_so_far += 1;
        let kafka_us = r.kafka_ms.map(|ms| ms.saturating_mul(1000));
        let Some(bytes) = r.payload else {
            sum.payload_missing += 1;
            return None;
        };
        let (t, item) = match self.decoder.decode(bytes) {
            Ok(Decoded::Quality(v)) => {
                let mut ev = self.normalizer.event(&v);
                if ev.produced_us == 0 {
                    ev.produced_us = kafka_us.unwrap_or(0); // as the daemon does: when Kafka says it was written
                }
                (ev.produced_us, Item::Quality(ev))
            }
            Ok(Decoded::QualityAlert) => (kafka_us.unwrap_or(0), Item::Alert),
            Ok(Decoded::WrongScope(_)) => {
                sum.wrong_scope += 1;
                return None;
            }
            Ok(Decoded::Other(kind)) => {
                sum.other_type[kind] += 1;
                return None;
            }
            Err(e) => {
                sum.undecodable[e.reason()] += 1;
                return None;
            }
        };
        if t <= 0 {
            sum.no_time += 1;
            None
        } else if t <= self.from_us {
            // The range is (from, to]: consecutive ranges share an end and count each event once.
            sum.before_range += 1;
            None
        } else if t > self.to_us {
            sum.after_range += 1;
            None
        } else {
            Some((t, item))
        }
    }
}

/// Applies released records in event time and writes the boundaries they pass.
struct Sink<'a> {
    applier: Applier,
    metrics: Metrics,
    writer: TimestampedWriter,
    plan: &'a Plan,
    /// The next boundary to write, milliseconds.
    next_ms: i64,
    /// The monotonic instant standing for `plan.from_ms` (sessions time out in event time).
    base: Instant,
    last_expiry_s: i64,
    applied: u64,
    alerts: u64,
}

impl Sink<'_> {
    fn at(&self, t_us: i64) -> Instant {
        self.base + Duration::from_micros((t_us - self.plan.from_ms * 1000).max(0) as u64)
    }

    /// Writes every boundary before `t_us` (a boundary includes the events stamped at it).
    fn boundaries_before(&mut self, t_us: i64) -> std::io::Result<()> {
        while self.next_ms <= self.plan.to_ms && self.next_ms * 1000 < t_us {
            let now = self.at(self.next_ms * 1000);
            self.applier.expire_sessions(now);
            self.writer.write_boundary(&self.metrics, self.next_ms)?;
            self.next_ms += self.plan.step_ms;
        }
        Ok(())
    }

    fn apply(&mut self, t_us: i64, item: Item) -> std::io::Result<()> {
        self.boundaries_before(t_us)?;
        // The daemon closes idle sessions once a second; here once per second of event time.
        let second = t_us.div_euclid(1_000_000);
        if second > self.last_expiry_s {
            self.last_expiry_s = second;
            let now = self.at(t_us);
            self.applier.expire_sessions(now);
        }
        match item {
            Item::Quality(ev) => {
                let now = self.at(t_us);
                self.applier.apply(&ev, t_us as f64 / 1e6, now);
                self.applied += 1;
            }
            Item::Alert => {
                self.metrics.quality_alerts.inc();
                self.alerts += 1;
            }
        }
        Ok(())
    }
}

/// The first boundary after `from_ms`: a multiple of the step since the epoch. (The boundary at `from` itself
/// belongs to the range that ends there, so that consecutive ranges write no timestamp twice.)
pub fn first_boundary(from_ms: i64, step_ms: i64) -> i64 {
    from_ms.div_euclid(step_ms) * step_ms + step_ms
}

/// Where the file goes: a temporary name beside the output, renamed at the end, or standard output.
struct Output {
    final_path: Option<PathBuf>,
    temp: Option<PathBuf>,
}

impl Output {
    fn spool_dir(&self) -> PathBuf {
        let pid = std::process::id();
        match &self.final_path {
            Some(p) => {
                let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                dir.join(format!(".{name}.backfill-{pid}.d"))
            }
            None => std::env::temp_dir().join(format!("dashflow-backfill-{pid}.d")),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = std::fs::remove_file(t);
        }
    }
}

/// Reads the range and writes the file; returns what was done.
pub fn run(cfg: &Config, plan: &Plan, life: &Lifecycle) -> Result<Summary, BackfillError> {
    let started = Instant::now();
    let mut output = Output { final_path: plan.output.clone(), temp: None };
    // The output's directory must be writable before Kafka is asked anything.
    let spool_dir = output.spool_dir();
    let mut buckets = cfg.buckets.clone();
    buckets.exemplars = false;
    buckets.native = None;
    let metrics = Metrics::new(&buckets)?;
    let writer = TimestampedWriter::new(&metrics, &spool_dir, &plan.labels)?;
    let applier = Applier::new(metrics.clone(), SessionTracker::new(cfg.session_timeout, cfg.session_max_tracked))
        .with_pass_threshold(cfg.quality_pass_threshold);
    let window_us = plan.window_ms * 1000;
    let mut source = Source::open(&cfg.kafka, plan.from_ms - plan.window_ms, plan.to_ms + plan.window_ms)?;
    let mut sum = Summary { by_timestamp: source.by_timestamp, ..Summary::default() };
    let mut classifier = Classifier {
        decoder: Decoder::new(cfg.max_payload_bytes),
        normalizer: Normalizer::with_exemplars(false),
        from_us: plan.from_ms * 1000,
        to_us: plan.to_ms * 1000,
    };
    let mut sink = Sink {
        applier,
        metrics,
        writer,
        plan,
        next_ms: first_boundary(plan.from_ms, plan.step_ms),
        base: Instant::now(),
        last_expiry_s: i64::MIN,
        applied: 0,
        alerts: 0,
    };
    let mut reorder: Reorder<Item> = Reorder::new(window_us, REORDER_CAP);
    // The partitions by the event time of their next record (the k-way merge): (time, partition) of each head.
    let mut heads: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::with_capacity(source.parts.len());
    let mut items: Vec<Option<Item>> = vec![None; source.parts.len()];
    let mut refill =
        |i: usize, heads: &mut BinaryHeap<Reverse<(i64, usize)>>, items: &mut Vec<Option<Item>>, sum: &mut Summary| {
            while !source.parts[i].done() {
                if let Some(Some((t, item))) = source.next(i, |r| classifier.classify(r, sum))? {
                    items[i] = Some(item);
                    heads.push(Reverse((t, i)));
                    break;
                }
            }
            Ok::<_, SourceError>(())
        };
    for i in 0..items.len() {
        refill(i, &mut heads, &mut items, &mut sum)?;
    }
    let mut release = |t: i64, item: Item| sink.apply(t, item);
    let mut last_progress = Instant::now();
    while let Some(Reverse((t, i))) = heads.pop() {
        if life.stop_requested() {
            return Err(BackfillError::Interrupted);
        }
        let item = items[i].take().expect("a partition in the heap has a head");
        reorder.push(t, item, &mut release)?;
        refill(i, &mut heads, &mut items, &mut sum)?;
        if plan.progress && last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            let read = sum.read_so_far;
            let span = (plan.to_ms - plan.from_ms).max(1) as f64;
            eprintln!(
                "backfill: at {} ({:.0} %), {read} records read, {:.0} records/s",
                format_instant(t / 1000),
                ((t / 1000 - plan.from_ms) as f64 / span * 100.0).clamp(0.0, 100.0),
                read as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    reorder.finish(&mut release)?;
    sink.boundaries_before((plan.to_ms + 1) * 1000)?;
    sum.partitions = source.parts.iter().map(|p| (p.id, p.start, p.end, p.read)).collect();
    drop(source);
    sum.late = reorder.late;
    sum.applied = sink.applied;
    sum.alerts = sink.alerts;
    sum.boundaries = sink.writer.boundaries;
    sum.samples = sink.writer.samples;
    if life.stop_requested() {
        return Err(BackfillError::Interrupted);
    }
    sum.bytes = match &output.final_path {
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
            sink.writer.finish(&mut out)?
        }
        Some(path) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let temp = dir.join(format!(".{name}.partial-{}", std::process::id()));
            output.temp = Some(temp.clone());
            let mut out = BufWriter::with_capacity(64 * 1024, std::fs::File::create(&temp)?);
            let n = sink.writer.finish(&mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&temp, path)?;
            output.temp = None;
            n
        }
    };
    Ok(sum)
}

/// Refuses extra labels that would clash with a data family's own or are not label names.
pub fn check_labels(labels: &[(String, String)]) -> Result<(), String> {
    for (i, (k, _)) in labels.iter().enumerate() {
        if DATA_LABELS.contains(&k.as_str()) {
            return Err(format!("--label {k}=…: {k:?} is a label of the data families; choose another name"));
        }
        if labels[..i].iter().any(|(other, _)| other == k) {
            return Err(format!("--label {k}=… is given twice"));
        }
    }
    Ok(())
}

/// The `backfill` subcommand.
pub fn main(args: BackfillArgs) -> i32 {
    let cfg = match super::valid(Config::from_raw(&args.settings)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // librdkafka's connection errors would be logged once per attempt while the run fails with one clear
    // message anyway: logging only when RUST_LOG asks for it.
    let asked = args.settings.explicit(crate::config::Setting::RustLog).is_some();
    crate::runtime::logging::init(if asked { cfg.log_level } else { log::LevelFilter::Off });
    let to_ms = args.to_ms.unwrap_or_else(|| (crate::metrics::unix_now() * 1000.0) as i64);
    if args.from_ms >= to_ms {
        eprintln!(
            "backfill: --from ({}) must be before --to ({})",
            format_instant(args.from_ms),
            format_instant(to_ms)
        );
        return super::EXIT_CONFIG;
    }
    if let Err(e) = check_labels(&args.labels) {
        eprintln!("backfill: {e}");
        return super::EXIT_CONFIG;
    }
    let plan = Plan {
        from_ms: args.from_ms,
        to_ms,
        step_ms: args.step_ms,
        window_ms: args.window_ms,
        labels: args.labels,
        output: (args.output != "-").then(|| PathBuf::from(&args.output)),
        progress: !args.quiet,
    };
    let life = super::stopped_by_signals();
    let started = Instant::now();
    match run(&cfg, &plan, &life) {
        Ok(sum) => {
            if !args.quiet {
                eprint!("{}", sum.text(started.elapsed()));
            }
            0
        }
        Err(e) => {
            eprintln!("backfill failed: {e}");
            super::EXIT_RUNTIME
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_multiples_of_the_step() {
        assert_eq!(first_boundary(1_000, 15_000), 15_000);
        assert_eq!(first_boundary(15_000, 15_000), 30_000);
        assert_eq!(first_boundary(15_001, 15_000), 30_000);
        assert_eq!(first_boundary(29_999, 15_000), 30_000);
        assert_eq!(first_boundary(1_796_083_200_000, 3_600_000), 1_796_086_800_000);
    }

    #[test]
    fn extra_labels_must_not_clash() {
        let l = |k: &str| (k.to_string(), "v".to_string());
        assert!(check_labels(&[l("job"), l("instance")]).is_ok());
        assert!(check_labels(&[l("model")]).unwrap_err().contains("label of the data families"));
        assert!(check_labels(&[l("job"), l("job")]).unwrap_err().contains("given twice"));
    }
}
