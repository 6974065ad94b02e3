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
        }
    }
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
