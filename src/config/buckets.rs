//! Histogram buckets: one list per histogram family, each comma-separated finite numbers in strictly
//! increasing order. A list that does not parse is an error, never a silent fall-back to the default.

use super::check::Checker;
use super::setting::Setting;

/// Histogram bucket lists.
#[derive(Clone, Debug, PartialEq)]
pub struct Buckets {
    pub latency_ms: Vec<f64>,
    pub retry: Vec<f64>,
    pub quality_score: Vec<f64>,
    pub session_turns: Vec<f64>,
    pub duration_seconds: Vec<f64>,
    pub endpoint_seconds: Vec<f64>,
    pub event_delay_seconds: Vec<f64>,
    /// Exemplars on the three histograms that carry them (PROMETHEUS_EXEMPLARS).
    pub exemplars: bool,
    /// Native histograms beside their classic buckets; `None` when off.
    pub native: Option<NativeConfig>,
}

/// The native histograms' settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NativeConfig {
    /// Starting schema, -4..=8.
    pub schema: i8,
    /// Zero bucket half-width (finite, >= 0).
    pub zero_threshold: f64,
    /// Widest bucket range per sign (the range of PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS in the settings table).
    pub max_buckets: u16,
}

impl Default for NativeConfig {
    fn default() -> Self {
        NativeConfig { schema: 3, zero_threshold: 2f64.powi(-128), max_buckets: 160 }
    }
}

impl Buckets {
    pub(crate) fn check(c: &mut Checker<'_>) -> Buckets {
        let mut list = |s| c.parsed(s, parse_buckets, Vec::new());
        Buckets {
            latency_ms: list(Setting::PrometheusLatencyBucketsMs),
            retry: list(Setting::PrometheusRetryBuckets),
            quality_score: list(Setting::PrometheusQualityScoreBuckets),
            session_turns: list(Setting::PrometheusSessionTurnBuckets),
            duration_seconds: list(Setting::PrometheusDurationBucketsSeconds),
            endpoint_seconds: list(Setting::PrometheusMetricsEndpointBuckets),
            event_delay_seconds: list(Setting::PrometheusEventDelayBucketsSeconds),
            exemplars: c.parsed(Setting::PrometheusExemplars, parse_bool, true),
            native: native(c),
        }
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn native(c: &mut Checker<'_>) -> Option<NativeConfig> {
    let schema = c.integer::<i8>(Setting::PrometheusNativeHistogramSchema);
    let zero_threshold = c.parsed(
        Setting::PrometheusNativeHistogramZeroThreshold,
        |s| match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err("expected a finite number >= 0".into()),
        },
        NativeConfig::default().zero_threshold,
    );
    let max_buckets = c.zero_or_integer::<u16>(Setting::PrometheusNativeHistogramMaxBuckets);
    (max_buckets > 0).then_some(NativeConfig { schema, zero_threshold, max_buckets })
}

/// Parses a bucket list: comma-separated finite numbers, strictly increasing (a trailing `+Inf` is allowed
/// and dropped, as the Prometheus client adds it anyway).
pub fn parse_buckets(s: &str) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    let items: Vec<&str> = s.split(',').map(str::trim).collect();
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        if last && (item.eq_ignore_ascii_case("+inf") || item.eq_ignore_ascii_case("inf")) && !out.is_empty() {
            break;
        }
        match item.parse::<f64>() {
            Ok(x) if x.is_finite() => out.push(x),
            _ => {
                return Err(format!(
                "expected comma-separated finite numbers in strictly increasing order; {item:?} is not a finite number"
            ))
            }
        }
    }
    if let Some(w) = out.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "expected comma-separated finite numbers in strictly increasing order; {} is followed by {}",
            w[0], w[1]
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::errs;

    #[test]
    fn bucket_lists_parse_like_the_original_accepts() {
        assert_eq!(parse_buckets("10,50,100,500").unwrap(), vec![10.0, 50.0, 100.0, 500.0]);
        assert_eq!(parse_buckets(" 10 , 50 , 100 ").unwrap(), vec![10.0, 50.0, 100.0]);
        assert_eq!(parse_buckets("42.5").unwrap(), vec![42.5]);
        assert_eq!(parse_buckets("0.001,0.01,0.1,1.0").unwrap(), vec![0.001, 0.01, 0.1, 1.0]);
        assert_eq!(parse_buckets("1,2,+Inf").unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn invalid_bucket_lists_are_errors_not_silent_defaults() {
        assert!(parse_buckets("10,not_a_number,100").unwrap_err().contains("\"not_a_number\""));
        assert!(parse_buckets("10,5").unwrap_err().contains("10 is followed by 5"));
        assert!(parse_buckets("1,1").is_err());
        assert!(parse_buckets("1,NaN").is_err());
        assert!(parse_buckets("1,,2").is_err());
        let e = errs(&[("PROMETHEUS_RETRY_BUCKETS", "3,2,1")]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].setting.env(), "PROMETHEUS_RETRY_BUCKETS");
        assert_eq!(e[0].value, "3,2,1");
    }
}
