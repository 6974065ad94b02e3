//! The metrics stage: the families the exporter exposes, the rules that apply a quality event to them, and
//! the text exposition a scrape writes (README, Metrics).
//!
//! [`registry`] registers every family and holds the shared handles ([`Metrics`]); [`apply`] is the worker's
//! [`Applier`]; [`family`] and [`hist`] are the labelled families and histograms a scrape writes straight from
//! their atomics, in the format of [`expo`]; [`sessions`] tracks sessions for `dashstream_turns_by_session`;
//! [`process`] reads the `process_*` metrics.

pub mod apply;
pub mod expo;
pub mod family;
pub mod hist;
pub mod process;
pub mod registry;
pub mod sessions;

pub use self::apply::Applier;
pub use self::process::unix_now;
pub use self::registry::{encode_text, CloseReason, LegacyErrorType, Metrics, MetricsError, Outcome};

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::decode::event::Normalizer;
    use crate::decode::{Decoded, Decoder, DEFAULT_MAX_PAYLOAD};
    use crate::metrics::expo::reference;
    use crate::metrics::registry::tests::buckets;
    use crate::metrics::sessions::SessionTracker;
    use crate::sim::generator::{Generator, Traffic};

    #[test]
    fn the_exporters_registry_after_traffic_matches_the_reference_encoder() {
        let mut applier =
            Applier::new(Metrics::new(&buckets()).unwrap(), SessionTracker::new(Duration::from_secs(300), 1000));
        let mut generator = Generator::new(Traffic { seed: 11, ..Traffic::default() });
        let mut decoder = Decoder::new(DEFAULT_MAX_PAYLOAD);
        let mut normalizer = Normalizer::default();
        let (mut value, mut key) = (Vec::new(), String::new());
        for _ in 0..2000 {
            value.clear();
            generator.next_encoded(&mut value, &mut key);
            match decoder.decode(&value) {
                Ok(Decoded::Quality(v)) => {
                    let ev = normalizer.event(&v);
                    applier.apply(&ev, 1_700_000_000.0, Instant::now());
                }
                other => panic!("the generator's records are quality events: {other:?}"),
            }
        }
        // What a scrape writes (registry gathered, labelled families from their storage) against the crate's
        // TextEncoder over every family as protobufs; the process_* values (CPU, RSS) move between the two
        // reads, their lines are compared without the value.
        let families = applier.metrics().gather_all();
        let mut buf = Vec::new();
        encode_text(applier.metrics(), &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let steady = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| match l.strip_prefix("process_") {
                    Some(_) => l.rsplit_once(' ').map_or(l, |(series, _)| series).to_string(),
                    None => l.to_string(),
                })
                .collect()
        };
        assert_eq!(steady(&text), steady(&reference(&families)));
        let mut ours = Vec::new();
        expo::encode(&families, &mut ours).unwrap();
        assert_eq!(String::from_utf8(ours).unwrap(), reference(&families));
        assert!(text.lines().filter(|l| !l.starts_with('#')).count() > 500, "a populated registry");
        let mut names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "no family name twice across the registry and the labelled families");
        assert!(applier.metrics().families.contains("dashstream_quality_score_by_model"));
    }
}
