//! Time and instructions per record of the per-record stages (issue 29), on a corpus file written by
//! `benches/stages_corpus`: decode (`Decoder::decode`), normalize (`Normalizer::event`, exemplars on) and
//! apply (`Applier::apply`, the default registry: exemplars and native histograms on), one thread.
//!
//!   cargo bench --bench stages -- FILE [ROUNDS]
//!
//! Applies the corpus once to warm every label and session, then runs ROUNDS (default 200) passes of
//! decode + normalize + apply over it and prints ns and events/s. Under callgrind
//! (`valgrind --tool=callgrind <bench binary> FILE 20`), the inclusive counts of `Decoder::decode`,
//! `Normalizer::event` and `Applier::apply` divided by the records decoded give instructions per record and
//! stage (the warm-up pass counts too: ROUNDS + 1 passes).
use std::hint::black_box;
use std::time::Instant;

#[path = "common/mod.rs"]
mod common;

use dashflow_prometheus_exporter::decode::event::Normalizer;
use dashflow_prometheus_exporter::decode::Decoded;
use dashflow_prometheus_exporter::metrics::unix_now;

fn read_corpus(file: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(file).expect("read the corpus");
    let (mut out, mut at) = (Vec::new(), 0);
    while at < bytes.len() {
        let n = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        out.push(bytes[at + 4..at + 4 + n].to_vec());
        at += 4 + n;
    }
    out
}

/// `cargo test --benches` runs every bench once without arguments: then 256 generated records in DashFlow's
/// shape, 2 rounds, as a smoke test that the stages run.
fn smoke_corpus() -> Vec<Vec<u8>> {
    use dashflow_prometheus_exporter::sim::generator::{Generator, Traffic};
    let mut g = Generator::new(Traffic { seed: 7, zstd_ratio: 0.0, legacy_ratio: 0.0, ..Traffic::default() });
    let mut key = String::new();
    (0..256)
        .map(|_| {
            let mut v = Vec::new();
            g.next_encoded(&mut v, &mut key);
            v
        })
        .collect()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let (records, rounds) = match args.first() {
        Some(file) => (read_corpus(file), args.get(1).map_or(200, |s| s.parse().expect("a round count"))),
        None if !bench => (smoke_corpus(), 2),
        None => panic!("usage: stages FILE [ROUNDS]"),
    };
    let mut applier = common::applier(common::metrics());
    let mut decoder = common::decoder();
    let mut normalizer = Normalizer::with_exemplars(true);
    let mut pass = |applier: &mut dashflow_prometheus_exporter::metrics::Applier| {
        let (wall, now) = (unix_now(), Instant::now());
        for r in &records {
            match decoder.decode(black_box(r)) {
                Ok(Decoded::Quality(v)) => {
                    let ev = normalizer.event(&v);
                    applier.apply(black_box(&ev), wall, now);
                }
                other => panic!("not a quality event: {other:?}"),
            }
        }
    };
    pass(&mut applier); // warm-up: every label and session known
    let start = Instant::now();
    for _ in 0..rounds {
        pass(&mut applier);
    }
    let n = (records.len() * rounds) as f64;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} records x {rounds} rounds: decode + normalize + apply {:.1} ns per event, {:.2} M events/s",
        records.len(),
        secs * 1e9 / n,
        n / secs / 1e6
    );
}
