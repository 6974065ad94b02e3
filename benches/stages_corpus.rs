//! Writes a corpus of generated records for `benches/stages` (issue 29): each record as a little-endian u32
//! length and its bytes, 0x00-framed, the `produce` traffic (seed 7, 200 sessions, every model and category).
//!
//!   cargo bench --bench stages_corpus -- FILE [dashflow|lean] [N] [zstd]
//!
//! `dashflow` (the default) writes records as DashFlow's producers do, `lean` as the generator did before
//! issue 29; N defaults to 4096 records (a poll batch's worth of cache, as `benches/common` uses); `zstd`
//! frames every record 0x01 + zstd instead of 0x00.
use std::io::Write as _;

use dashflow_prometheus_exporter::sim::generator::{Generator, RecordShape, Traffic};

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    // `cargo test --benches` runs it once without arguments: 64 records into a temporary file, removed after.
    let smoke = std::env::temp_dir().join(format!("dfe-stages-corpus-{}.bin", std::process::id()));
    let (file, smoke) = match args.first() {
        Some(f) => (f.clone(), false),
        None if !bench => (smoke.display().to_string(), true),
        None => panic!("usage: stages_corpus FILE [dashflow|lean] [N]"),
    };
    let file = file.as_str();
    let shape = match args.get(1).map(String::as_str) {
        None | Some("dashflow") => RecordShape::DashFlow,
        Some("lean") => RecordShape::Lean,
        Some(other) => panic!("shape is dashflow or lean, not {other}"),
    };
    let n: usize = args.get(2).map_or(if smoke { 64 } else { 4096 }, |s| s.parse().expect("a record count"));
    let zstd_ratio = match args.get(3).map(String::as_str) {
        None => 0.0,
        Some("zstd") => 1.0,
        Some(other) => panic!("the fourth argument is zstd or nothing, not {other}"),
    };
    let traffic = Traffic { seed: 7, zstd_ratio, legacy_ratio: 0.0, shape, ..Traffic::default() };
    let mut g = Generator::new(traffic);
    let (mut v, mut key, mut out) = (Vec::new(), String::new(), Vec::new());
    for _ in 0..n {
        g.next_encoded(&mut v, &mut key);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(&v);
    }
    std::fs::File::create(file).and_then(|mut f| f.write_all(&out)).expect("write the corpus");
    let bytes = out.len() - 4 * n;
    println!("{n} {shape:?} records, {bytes} bytes, {:.1} bytes per record, to {file}", bytes as f64 / n as f64);
    if smoke {
        std::fs::remove_file(file).expect("remove the smoke corpus");
    }
}
