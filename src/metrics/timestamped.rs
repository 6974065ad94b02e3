//! OpenMetrics with a timestamp on every sample, for `promtool tsdb create-blocks-from openmetrics` (the
//! `backfill` subcommand, docs/operations.md).
//!
//! At each step boundary [`TimestampedWriter::write_boundary`] takes the exposition a scrape would get in
//! OpenMetrics ([`encode`]: the same names, types, units, HELP, label values and numbers) and keeps its data
//! families only: the self-monitoring ones (`dashstream_exporter_*`), the process metrics and
//! `dashflow_build_info` describe this process, not the events. Each kept sample gets the operator's extra labels
//! (`job`, `instance`) first and the boundary as its timestamp, in seconds; `_created` samples and exemplars are
//! dropped (promtool stores neither usefully).
//!
//! OpenMetrics forbids interleaving families, but the samples come boundary by boundary. So each family's
//! samples go to a spool file of their own as they come (memory stays flat whatever the range), and
//! [`TimestampedWriter::finish`] writes the file: each family's `# TYPE`/`# UNIT`/`# HELP` once, its samples in
//! time order, the families in name order, then `# EOF`. Within a family the samples of one boundary come
//! before those of the next, so every series' timestamps increase, as promtool requires.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use prometheus::core::{Collector, Desc};

use crate::metrics::expo;
use crate::metrics::family::Scratch;
use crate::metrics::process::ProcessCollector;
use crate::metrics::registry::encode;
use crate::metrics::{openmetrics, Format, Metrics};

/// Whether a family describes the events (and is written) rather than the exporter process.
pub fn is_data_family(name: &str) -> bool {
    name.starts_with("dashstream_") && !name.starts_with("dashstream_exporter_")
}

/// The label names the data families use themselves (an extra label must not repeat one).
pub const DATA_LABELS: [&str; 6] = ["model", "category", "status", "issue", "le", "quantile"];

struct Spool {
    name: String,
    /// `# TYPE`, `# UNIT` and `# HELP` lines, as the exposition wrote them.
    header: Vec<u8>,
    path: PathBuf,
    file: BufWriter<File>,
}

/// Writes timestamped samples family by family into spool files under a directory it owns, then the whole file.
pub struct TimestampedWriter {
    dir: PathBuf,
    /// `name="value",` for each extra label, escaped.
    extra: Vec<u8>,
    spools: Vec<Spool>,
    index: HashMap<String, usize>,
    scratch: Scratch,
    exposition: Vec<u8>,
    line: Vec<u8>,
    /// Samples written so far.
    pub samples: u64,
    /// Boundaries written so far.
    pub boundaries: u64,
}

impl TimestampedWriter {
    /// A writer spooling into `dir` (created; removed by [`finish`](Self::finish) or [`discard`](Self::discard)).
    /// The process metrics are unregistered from `m` (they would be read from /proc at every boundary for
    /// nothing).
    pub fn new(m: &Metrics, dir: &Path, labels: &[(String, String)]) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        unregister_self_monitoring(m);
        let mut extra = Vec::new();
        for (k, v) in labels {
            extra.extend_from_slice(k.as_bytes());
            extra.extend_from_slice(b"=\"");
            expo::escape(v.as_bytes(), true, &mut extra);
            extra.extend_from_slice(b"\",");
        }
        Ok(TimestampedWriter {
            dir: dir.to_path_buf(),
            extra,
            spools: Vec::new(),
            index: HashMap::new(),
            scratch: Scratch::default(),
            exposition: Vec::with_capacity(64 * 1024),
            line: Vec::with_capacity(512),
            samples: 0,
            boundaries: 0,
        })
    }

    /// Writes every data family's samples as they are now, stamped `ts_ms`.
    pub fn write_boundary(&mut self, m: &Metrics, ts_ms: i64) -> io::Result<()> {
        encode(m, Format::OpenMetrics, &mut self.scratch, &mut self.exposition)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut stamp = Vec::with_capacity(24);
        stamp.push(b' ');
        seconds(ts_ms, &mut stamp);
        stamp.push(b'\n');
        let exposition = std::mem::take(&mut self.exposition);
        let mut current: Option<usize> = None;
        // Header lines are kept for a family whose spool this boundary created.
        let mut fresh = false;
        for line in exposition.split(|&b| b == b'\n') {
            if let Some(rest) = line.strip_prefix(b"# ") {
                if let Some(t) = rest.strip_prefix(b"TYPE ") {
                    let name = String::from_utf8_lossy(t.split(|&b| b == b' ').next().unwrap_or_default());
                    current = None;
                    if is_data_family(&name) {
                        let (i, created) = self.spool(&name)?;
                        (current, fresh) = (Some(i), created);
                    }
                }
                let descriptor = [&b"TYPE "[..], b"UNIT ", b"HELP "].iter().any(|d| rest.starts_with(d));
                if !descriptor {
                    current = None; // `# EOF`
                }
                if let (Some(i), true, true) = (current, fresh, descriptor) {
                    let header = &mut self.spools[i].header;
                    header.extend_from_slice(line);
                    header.push(b'\n');
                }
                continue;
            }
            let Some(i) = current else { continue };
            if line.is_empty() || !sample_line(line, &self.extra, &mut self.line) {
                continue;
            }
            let file = &mut self.spools[i].file;
            file.write_all(&self.line)?;
            file.write_all(&stamp)?;
            self.samples += 1;
        }
        self.exposition = exposition;
        self.boundaries += 1;
        Ok(())
    }

    /// The spool of a family, created at its first appearance (then true).
    fn spool(&mut self, name: &str) -> io::Result<(usize, bool)> {
        if let Some(&i) = self.index.get(name) {
            return Ok((i, false));
        }
        let path = self.dir.join(format!("{}.spool", self.spools.len()));
        let file = BufWriter::with_capacity(64 * 1024, File::create(&path)?);
        self.spools.push(Spool { name: name.to_string(), header: Vec::new(), path, file });
        self.index.insert(name.to_string(), self.spools.len() - 1);
        Ok((self.spools.len() - 1, true))
    }

    /// Writes the file to `out`: the families in name order, each header once then its samples, then `# EOF`;
    /// removes the spools. Returns the bytes written.
    pub fn finish(mut self, out: &mut dyn Write) -> io::Result<u64> {
        let mut order: Vec<usize> = (0..self.spools.len()).collect();
        order.sort_by(|&a, &b| self.spools[a].name.cmp(&self.spools[b].name));
        let mut written = 0u64;
        for i in order {
            let s = &mut self.spools[i];
            s.file.flush()?;
            out.write_all(&s.header)?;
            written += s.header.len() as u64;
            let mut r = BufReader::with_capacity(64 * 1024, File::open(&s.path)?);
            written += io::copy(&mut r, out)?;
        }
        out.write_all(openmetrics::EOF)?;
        written += openmetrics::EOF.len() as u64;
        out.flush()?;
        self.discard();
        Ok(written)
    }

    /// Removes the spools and their directory.
    pub fn discard(&mut self) {
        for s in self.spools.drain(..) {
            drop(s.file);
            let _ = std::fs::remove_file(&s.path);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl Drop for TimestampedWriter {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Takes the families that are not data out of `m`'s prometheus registry, so that each boundary neither
/// gathers them (the process metrics would be read from /proc every time) nor skips them. The labelled
/// self-monitoring families are not in that registry; they are skipped while the exposition is rewritten.
fn unregister_self_monitoring(m: &Metrics) {
    let _ = m.registry.unregister(Box::new(ProcessCollector::new()));
    for mf in m.registry.gather() {
        if !is_data_family(mf.name()) {
            // A collector is found by the ids of its descriptions, which come from the name alone here (none of
            // these families has constant labels).
            if let Ok(desc) = Desc::new(mf.name().to_string(), mf.help().to_string(), vec![], HashMap::new()) {
                let _ = m.registry.unregister(Box::new(Named(desc)));
            }
        }
    }
}

/// A stand-in with the description of a registered collector, to unregister it.
struct Named(Desc);

impl Collector for Named {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0]
    }
    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        Vec::new()
    }
}

/// Unix seconds from milliseconds: whole seconds as an integer, else with three decimals.
pub fn seconds(ms: i64, out: &mut Vec<u8>) {
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    expo::integer(s, out);
    if frac != 0 {
        out.extend_from_slice(format!(".{frac:03}").as_bytes());
    }
}

/// Rewrites one exposition sample line into `out` (cleared): without `_created` samples (false) and exemplars,
/// with the extra labels first; the timestamp is appended by the caller.
fn sample_line(line: &[u8], extra: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let name_end = line.iter().position(|&b| b == b'{' || b == b' ').unwrap_or(line.len());
    let name = &line[..name_end];
    if name.ends_with(b"_created") {
        return false;
    }
    let (labels, rest) = if line.get(name_end) == Some(&b'{') {
        let close = closing_brace(line, name_end + 1);
        (&line[name_end + 1..close], &line[(close + 1).min(line.len())..])
    } else {
        (&line[..0], &line[name_end..])
    };
    // ` value` then, maybe, ` # {exemplar} value ts`.
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let value = rest.split(|&b| b == b' ').next().unwrap_or_default();
    out.extend_from_slice(name);
    if !extra.is_empty() || !labels.is_empty() {
        out.push(b'{');
        out.extend_from_slice(extra);
        if labels.is_empty() {
            out.pop(); // the extra labels' last comma
        } else {
            out.extend_from_slice(labels);
        }
        out.push(b'}');
    }
    out.push(b' ');
    out.extend_from_slice(value);
    true
}

/// The index of the `}` closing a label set that starts at `from`, skipping quoted values (with escapes).
fn closing_brace(line: &[u8], from: usize) -> usize {
    let (mut quoted, mut escaped) = (false, false);
    for (i, &b) in line.iter().enumerate().skip(from) {
        match (quoted, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => quoted = false,
            (false, _, b'"') => quoted = true,
            (false, _, b'}') => return i,
            _ => {}
        }
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_lines_get_the_extra_labels_and_lose_exemplars_and_created() {
        let mut out = Vec::new();
        let extra = b"job=\"j\",";
        assert!(sample_line(b"a_total 3", extra, &mut out));
        assert_eq!(out, b"a_total{job=\"j\"} 3");
        assert!(sample_line(b"a_total 3", b"", &mut out));
        assert_eq!(out, b"a_total 3");
        assert!(sample_line(
            b"h_bucket{model=\"x}\\\" y\",le=\"+Inf\"} 4 # {thread_id=\"t\"} 5 1.000",
            extra,
            &mut out
        ));
        assert_eq!(String::from_utf8_lossy(&out), "h_bucket{job=\"j\",model=\"x}\\\" y\",le=\"+Inf\"} 4");
        assert!(!sample_line(b"a_created 1700000000.5", extra, &mut out));
        assert!(!sample_line(b"h_created{model=\"m\"} 1700000000.5", extra, &mut out));
        let mut s = Vec::new();
        seconds(1_700_000_000_000, &mut s);
        s.push(b' ');
        seconds(1_700_000_000_050, &mut s);
        assert_eq!(s, b"1700000000 1700000000.050");
    }

    #[test]
    fn the_registry_keeps_only_data_families() {
        let m = Metrics::new(&crate::metrics::registry::tests::buckets()).unwrap();
        let dir = std::env::temp_dir().join(format!("dfe-timestamped-{}", std::process::id()));
        let mut w = TimestampedWriter::new(&m, &dir, &[("job".into(), "j".into())]).unwrap();
        let names: Vec<String> = m.registry.gather().iter().map(|f| f.name().to_string()).collect();
        assert!(names.iter().all(|n| is_data_family(n)), "{names:?}");
        assert!(names.contains(&"dashstream_quality_monitor_queries_total".to_string()), "{names:?}");
        m.queries_total.inc();
        w.write_boundary(&m, 1_700_000_000_000).unwrap();
        m.queries_total.inc();
        m.quality_score.set(0.25);
        w.write_boundary(&m, 1_700_000_015_000).unwrap();
        let mut out = Vec::new();
        w.finish(&mut out).unwrap();
        assert!(!dir.exists(), "spools removed");
        let text = String::from_utf8(out).unwrap();
        let family = |name: &str| -> String {
            let start = text.find(&format!("# TYPE {name} ")).unwrap_or_else(|| panic!("{name} in {text}"));
            let rest = &text[start..];
            let end = rest[1..].find("# TYPE ").map_or(rest.len(), |e| e + 1);
            rest[..end].to_string()
        };
        assert_eq!(
            family("dashstream_quality_monitor_queries"),
            "# TYPE dashstream_quality_monitor_queries counter\n\
# HELP dashstream_quality_monitor_queries Total queries processed\n\
dashstream_quality_monitor_queries_total{job=\"j\"} 1 1700000000\n\
dashstream_quality_monitor_queries_total{job=\"j\"} 2 1700000015\n"
        );
        assert_eq!(
            family("dashstream_quality_monitor_quality_score"),
            "# TYPE dashstream_quality_monitor_quality_score gauge\n\
# HELP dashstream_quality_monitor_quality_score Current quality score (0.0-1.0)\n\
dashstream_quality_monitor_quality_score{job=\"j\"} 0 1700000000\n\
dashstream_quality_monitor_quality_score{job=\"j\"} 0.25 1700000015\n"
        );
        assert!(text.ends_with("\n# EOF\n") && text.matches("# EOF").count() == 1);
        assert!(!text.contains("dashstream_exporter_") && !text.contains("process_") && !text.contains("build_info"));
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 2 * text.lines().filter(|l| l.ends_with(" 1700000000")).count(), "every series twice");
    }

    #[test]
    fn data_families_are_the_events_ones() {
        assert!(is_data_family("dashstream_quality_monitor_queries_total"));
        assert!(is_data_family("dashstream_query_latency_ms"));
        assert!(!is_data_family("dashstream_exporter_messages_received_total"));
        assert!(!is_data_family("process_cpu_seconds_total"));
        assert!(!is_data_family("dashflow_build_info"));
    }
}
