//! Which exposition format a scrape gets, from its `Accept` header (docs/formats.md).
//!
//! The media ranges Prometheus 2.x and 3.x send are understood with their parameters: OpenMetrics text
//! (`application/openmetrics-text`, version 1.0.0, 0.0.1 or none), the delimited protobuf stream
//! (`application/vnd.google.protobuf` with `proto=io.prometheus.client.MetricFamily` and
//! `encoding=delimited`) and the text format (`text/plain`, version 0.0.4, 1.0.0 or none; `text/*`, `*/*`).
//! Other parameters (`escaping=allow-utf-8`, `charset`) are ignored: every name the exporter writes is valid
//! in the classic character set, so no escaping scheme changes it. The range with the highest `q` wins, the
//! earlier one on a tie; a range with `q=0` is refused; nothing usable (or no header) means the text format,
//! as client_golang falls back to it.

use crate::metrics::Format;

/// The format for this `Accept` header value.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else { return Format::Text };
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let Some((q, format)) = offer(range) else { continue };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, format));
        }
    }
    best.map_or(Format::Text, |(_, f)| f)
}

/// The quality and format of one media range, `None` when it names no format served here or is malformed.
fn offer(range: &str) -> Option<(f32, Format)> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim();
    let (mut q, mut version, mut proto, mut encoding) = (1.0f32, None, None, None);
    for p in parts {
        let (k, v) = p.split_once('=')?;
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "q" => {
                q = v.parse().ok().filter(|q: &f32| (0.0..=1.0).contains(q))?;
            }
            "version" => version = Some(v),
            "proto" => proto = Some(v),
            "encoding" => encoding = Some(v),
            _ => {}
        }
    }
    let (kind, sub) = media.split_once('/')?;
    let (kind, sub) = (kind.trim().to_ascii_lowercase(), sub.trim().to_ascii_lowercase());
    let format = match (kind.as_str(), sub.as_str()) {
        ("application", "openmetrics-text") if matches!(version, None | Some("1.0.0" | "0.0.1")) => Format::OpenMetrics,
        ("application", "vnd.google.protobuf")
            if proto == Some("io.prometheus.client.MetricFamily") && encoding == Some("delimited") =>
        {
            Format::Protobuf
        }
        ("text", "plain") if matches!(version, None | Some("0.0.4" | "1.0.0")) => Format::Text,
        ("text", "*") | ("*", "*") => Format::Text,
        _ => return None,
    };
    Some((q, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_prometheus_sends() {
        // Prometheus 2.42's default, and with --enable-feature=native-histograms.
        let p2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(p2)), Format::OpenMetrics);
        let p2_native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,\
application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,\
text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(p2_native)), Format::Protobuf);
        // Prometheus 3's defaults.
        let p3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(negotiate(Some(p3)), Format::OpenMetrics);
        let p3_native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;\
escaping=allow-utf-8;q=0.7,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(negotiate(Some(p3_native)), Format::Protobuf);
        // Prometheus 3 with scrape_protocols: [PrometheusText0.0.4].
        assert_eq!(negotiate(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")), Format::Text);
    }

    #[test]
    fn defaults_and_edges() {
        for a in [None, Some(""), Some("*/*"), Some("text/plain"), Some("text/*"), Some("application/json")] {
            assert_eq!(negotiate(a), Format::Text, "{a:?}");
        }
        assert_eq!(negotiate(Some("application/openmetrics-text")), Format::OpenMetrics);
        assert_eq!(negotiate(Some("Application/OpenMetrics-Text; Version=1.0.0")), Format::OpenMetrics);
        assert_eq!(negotiate(Some("application/openmetrics-text;version=2.0.0")), Format::Text);
        assert_eq!(negotiate(Some("application/openmetrics-text;q=0")), Format::Text);
        assert_eq!(negotiate(Some("text/plain;q=0.2,application/openmetrics-text;q=0.3")), Format::OpenMetrics);
        assert_eq!(negotiate(Some("application/openmetrics-text;q=0.3,text/plain;q=0.3")), Format::OpenMetrics);
        assert_eq!(negotiate(Some("text/plain;q=0.3,application/openmetrics-text;q=0.3")), Format::Text);
        // Protobuf needs both parameters: other encodings (text, compact-text) are not served.
        assert_eq!(
            negotiate(Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily")),
            Format::Text
        );
        let text_pb = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text";
        assert_eq!(negotiate(Some(text_pb)), Format::Text);
        assert_eq!(negotiate(Some("application/openmetrics-text;q=abc,text/plain")), Format::Text);
        assert_eq!(negotiate(Some("application/openmetrics-text;q=1.5")), Format::Text);
        assert_eq!(negotiate(Some("garbage,,;;")), Format::Text);
    }
}
