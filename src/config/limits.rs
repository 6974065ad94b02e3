//! The pipeline's bounds: the largest record accepted, how long and how many sessions are tracked, and how
//! much lower the ingest threads are scheduled than the HTTP threads; and the score threshold that judges
//! QualityMonitor evaluations, when one is set.

use std::time::Duration;

use super::check::Checker;
use super::setting::Setting;

/// The validated bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Limits {
    pub max_payload_bytes: usize,
    pub session_timeout: Duration,
    pub session_max_tracked: usize,
    pub ingest_nice: i32,
    pub quality_pass_threshold: Option<f64>,
}

impl Limits {
    pub fn check(c: &mut Checker<'_>) -> Limits {
        let max_payload_bytes = max_payload_bytes(c);
        let session_timeout = Duration::from_secs(c.integer::<u64>(Setting::PrometheusSessionTimeoutSecs));
        let session_max_tracked = c.integer::<usize>(Setting::PrometheusSessionMaxTracked);
        let ingest_nice = c.integer::<i32>(Setting::KafkaIngestNice);
        let quality_pass_threshold = quality_pass_threshold(c);
        Limits { max_payload_bytes, session_timeout, session_max_tracked, ingest_nice, quality_pass_threshold }
    }
}

/// `PROMETHEUS_QUALITY_PASS_THRESHOLD`: unset, or a number in [0, 1].
fn quality_pass_threshold(c: &mut Checker<'_>) -> Option<f64> {
    c.explicit(Setting::PrometheusQualityPassThreshold)?;
    c.parsed(
        Setting::PrometheusQualityPassThreshold,
        |s| match s.trim().parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(Some(x)),
            _ => Err("expected a number from 0 to 1 (a quality_average at or above it passes)".into()),
        },
        None,
    )
}

/// `DASHSTREAM_MAX_PAYLOAD_BYTES`: the largest record, and the largest decompressed record, accepted.
pub(crate) fn max_payload_bytes(c: &mut Checker<'_>) -> usize {
    c.integer::<usize>(Setting::DashstreamMaxPayloadBytes)
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{errs, ok};
    use std::time::Duration;

    #[test]
    fn defaults_and_bounds() {
        let c = ok(&[]);
        assert_eq!(c.max_payload_bytes, 10 * 1024 * 1024);
        assert_eq!(c.session_timeout, Duration::from_secs(300));
        assert_eq!(c.session_max_tracked, 100_000);
        assert_eq!(c.ingest_nice, 5);
        assert_eq!(ok(&[("KAFKA_INGEST_NICE", "0")]).ingest_nice, 0);
        let e = errs(&[("KAFKA_INGEST_NICE", "20"), ("PROMETHEUS_SESSION_MAX_TRACKED", "0")]);
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|e| e.allowed.starts_with("expected a whole number from ")));
    }

    #[test]
    fn quality_pass_threshold_is_unset_or_in_the_unit_interval() {
        assert_eq!(ok(&[]).quality_pass_threshold, None);
        for (v, want) in [("0.8", 0.8), ("0", 0.0), ("1", 1.0), (" 0.95 ", 0.95), ("1e-1", 0.1)] {
            assert_eq!(ok(&[("PROMETHEUS_QUALITY_PASS_THRESHOLD", v)]).quality_pass_threshold, Some(want), "{v}");
        }
        for v in ["1.01", "-0.1", "NaN", "inf", "high", "80%"] {
            let e = errs(&[("PROMETHEUS_QUALITY_PASS_THRESHOLD", v)]);
            assert_eq!(e.len(), 1, "{v:?}");
            assert_eq!(e[0].value, v);
            assert_eq!(e[0].allowed, "expected a number from 0 to 1 (a quality_average at or above it passes)");
        }
    }
}
