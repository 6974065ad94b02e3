//! Records encoded by the official protobuf runtime from the original `.proto` (tests/data/dashstream, a copy
//! of shared/testdata/dashstream) decode to exactly what `cases.json` says.

use dashflow_prometheus_exporter::decode::labels::{category_label, model_label};
use dashflow_prometheus_exporter::decode::{Decoded, Decoder, OtherKind, DEFAULT_MAX_PAYLOAD};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dashstream");

#[test]
fn every_case_decodes_as_specified() {
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    let mut checked_fields = 0;
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let expect = &case["expect"];
        let bytes = std::fs::read(format!("{DIR}/{file}")).unwrap();
        let mut decoder = Decoder::new(DEFAULT_MAX_PAYLOAD);
        let got = decoder.decode(&bytes);
        match expect["kind"].as_str().unwrap() {
            "quality" => {
                let Ok(Decoded::Quality(v)) = got else { panic!("{file}: expected a quality event, got {got:?}") };
                let (ev, an) = (v, v.anomalies);
                for (k, want) in expect.as_object().unwrap() {
                    let ok = match k.as_str() {
                        "kind" => continue,
                        "query_id" => ev.query_id == want.as_str().unwrap(),
                        "quality_score" => ev.quality_score == want.as_f64().unwrap(),
                        "passed" => ev.passed == want.as_bool().unwrap(),
                        "category" => ev.category == want.as_str().unwrap(),
                        "normalized_category" => category_label(ev.category) == want.as_str().unwrap(),
                        "latency_ms" => ev.latency_ms == want.as_u64().unwrap(),
                        "retry_count" => u64::from(ev.retry_count) == want.as_u64().unwrap(),
                        "model" => ev.model == want.as_str().unwrap(),
                        "normalized_model" => model_label(ev.model) == want.as_str().unwrap(),
                        "session_id" => ev.session_id == want.as_str().unwrap(),
                        "turn_number" => u64::from(ev.turn_number) == want.as_u64().unwrap(),
                        "accuracy" => ev.accuracy == want.as_f64().unwrap(),
                        "relevance" => ev.relevance == want.as_f64().unwrap(),
                        "completeness" => ev.completeness == want.as_f64().unwrap(),
                        "application_type" => ev.application_type == want.as_str().unwrap(),
                        "missing_header" => an.missing_header == want.as_bool().unwrap(),
                        other => panic!("{file}: cases.json field {other} is not checked by this test"),
                    };
                    assert!(ok, "{file}: field {k} expected {want}, decoded {ev:?} {an:?}");
                    checked_fields += 1;
                }
            }
            "wrong_scope" => {
                assert_eq!(got, Ok(Decoded::WrongScope(expect["scope"].as_str().unwrap())), "{file}")
            }
            "not_metrics" => {
                assert_eq!(expect["branch"], "token_chunk");
                assert_eq!(got, Ok(Decoded::Other(OtherKind::TokenChunk)), "{file}");
            }
            "error" => {
                let e = got.expect_err(file);
                assert_eq!(e.reason().label(), expect["error"].as_str().unwrap(), "{file}: {e}");
            }
            k => panic!("unknown kind {k}"),
        }
    }
    assert_eq!(checked_fields, 4 * 14 + 10 + 6 + 5);
}

#[test]
fn anomalies_of_the_official_records() {
    let read = |f: &str| std::fs::read(format!("{DIR}/{f}")).unwrap();
    let mut d = Decoder::new(DEFAULT_MAX_PAYLOAD);
    let bytes = read("05-negative-ints-and-aliases.bin");
    let Ok(Decoded::Quality(v)) = d.decode(&bytes) else { panic!() };
    let an = v.anomalies;
    assert_eq!(an.out_of_range.names().collect::<Vec<_>>(), ["latency_ms", "retry_count", "turn_number"]);
    let bytes = read("07-type-mismatch.bin");
    let Ok(Decoded::Quality(v)) = d.decode(&bytes) else { panic!() };
    let an = v.anomalies;
    assert_eq!(an.type_mismatch.names().collect::<Vec<_>>(), ["quality_score", "passed", "latency_ms"]);
    assert!(an.present.is_empty());
}
