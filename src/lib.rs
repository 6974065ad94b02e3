//! dashflow-prometheus-exporter: DashFlow quality events from Kafka as Prometheus metrics.
//!
//! One folder per stage, in the order data flows (ARCHITECTURE.md): [`config`] (flags and environment →
//! a validated [`config::Config`]) → [`ingest`] (the poll thread owns the consumer and sends each record,
//! decoded, over a bounded channel to the worker; offsets follow what the worker applied) → [`decode`]
//! (bytes → [`decode::QualityView`] → the small [`decode::event::Event`] that crosses the channel, pure) →
//! [`metrics`] (the worker applies events; scrapes write the exposition) → [`http`] (`/metrics` behind a
//! connection gate). [`app`] wires the threads, [`runtime`] holds the process helpers, [`table`] the typed
//! label tables; [`sim`] and [`tools`] are the developer tooling and the subcommands.

pub mod app;
pub mod config;
pub mod decode;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod remote_write;
pub mod runtime;
pub mod sim;
pub mod table;
pub mod tools;

/// Types generated from `proto/dashstream.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/dashstream.v1.rs"));
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `src/`, as its path from there (`http/gate.rs`, `main.rs`).
    fn source_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read src/") {
            let entry = entry.expect("read src/");
            let name = entry.file_name().into_string().expect("UTF-8 file name");
            let rel = format!("{prefix}{name}");
            if entry.file_type().expect("file type").is_dir() {
                source_files(&entry.path(), &format!("{rel}/"), out);
            } else if name.ends_with(".rs") {
                out.push(rel);
            }
        }
    }

    /// ARCHITECTURE.md maps the tree: it names every source file with its folder, in backticks (`http/gate.rs`),
    /// and every path of a `.rs` file it names (outside `tests/`, `benches/` and `fuzz/`) exists under `src/`.
    #[test]
    fn architecture_names_every_source_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
        let mut files = Vec::new();
        source_files(&root.join("src"), "", &mut files);
        files.sort();
        let missing: Vec<&String> = files.iter().filter(|f| !doc.contains(&format!("`{f}`"))).collect();
        assert!(
            missing.is_empty(),
            "ARCHITECTURE.md does not name these files under src/ (as `folder/file.rs`): {missing:?}"
        );
        let stale: Vec<&str> = doc
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| t.ends_with(".rs") && t.contains('/') && !t.contains(' '))
            .filter(|t| !t.starts_with("tests/") && !t.starts_with("benches/"))
            .filter(|t| !t.starts_with("fuzz/") && !files.iter().any(|f| f == t.trim_start_matches("src/")))
            .collect();
        assert!(stale.is_empty(), "ARCHITECTURE.md names files that are not under src/: {stale:?}");
    }
}
