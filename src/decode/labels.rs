//! Bounded label values: model and category normalization (reference §2.4) and librarian routing (§2.5).
//!
//! Each function maps free text from producers to one of a fixed set of label values, so the number of series
//! stays bounded whatever producers send. Indices are stable and used to cache metric handles.

/// Every model label value; `other` is the overflow value.
pub const MODEL_LABELS: [&str; 29] = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4-turbo",
    "gpt-4",
    "gpt-3.5-turbo",
    "gpt-3.5",
    "o1-preview",
    "o1-mini",
    "o1",
    "o3",
    "claude-3.5-sonnet",
    "claude-3.5-haiku",
    "claude-3-opus",
    "claude-3-sonnet",
    "claude-3-haiku",
    "claude-2",
    "claude-other",
    "gemini-2",
    "gemini-1.5-pro",
    "gemini-1.5-flash",
    "gemini-pro",
    "gemini-other",
    "codellama",
    "llama-3",
    "llama-2",
    "llama-other",
    "mixtral",
    "mistral",
    "other",
];

/// Models whose `dashstream_queries_by_model_total` series exist before any event (as in the original).
pub const PRECREATED_MODELS: [&str; 14] = [
    "gpt-4",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4-turbo",
    "gpt-3.5-turbo",
    "o1-preview",
    "o1-mini",
    "claude-3.5-sonnet",
    "claude-3.5-haiku",
    "claude-3-opus",
    "gemini-1.5-pro",
    "gemini-1.5-flash",
    "llama-3",
    "mistral",
];

/// Index into [`MODEL_LABELS`] of a label value.
pub fn model_index(label: &str) -> usize {
    MODEL_LABELS.iter().position(|m| *m == label).expect("known model label")
}

/// Maps a raw model name to its label index (rules of reference §2.4, first match wins).
///
/// The original lower-cases then trims; ASCII lower-casing is used here (model names are ASCII; a non-ASCII
/// name can only fall through to a `contains` rule or `other`, exactly as with full lower-casing).
pub fn normalize_model(raw: &str) -> usize {
    let trimmed = raw.trim();
    // Fast path: most producers send an exact label in lower case.
    let mut buf = [0u8; 64];
    let owned;
    let s: &str = if trimmed.len() <= buf.len() && trimmed.is_ascii() {
        buf[..trimmed.len()].copy_from_slice(trimmed.as_bytes());
        buf[..trimmed.len()].make_ascii_lowercase();
        std::str::from_utf8(&buf[..trimmed.len()]).unwrap_or("")
    } else {
        owned = trimmed.to_lowercase();
        owned.as_str()
    };
    let idx = |label: &str| model_index(label);
    let sw = |p: &str| s.starts_with(p);
    let has = |p: &str| s.contains(p);
    if sw("gpt-4o-mini") || s == "gpt4omini" {
        idx("gpt-4o-mini")
    } else if sw("gpt-4o") || s == "gpt4o" {
        idx("gpt-4o")
    } else if sw("gpt-4-turbo") || s == "gpt4turbo" {
        idx("gpt-4-turbo")
    } else if sw("gpt-4") || s == "gpt4" {
        idx("gpt-4")
    } else if sw("gpt-3.5-turbo") || s == "gpt35turbo" || s == "gpt-35-turbo" {
        idx("gpt-3.5-turbo")
    } else if sw("gpt-3.5") || s == "gpt35" {
        idx("gpt-3.5")
    } else if sw("o1-preview") {
        idx("o1-preview")
    } else if sw("o1-mini") {
        idx("o1-mini")
    } else if sw("o1") && !sw("o1-") {
        idx("o1")
    } else if sw("o3") {
        idx("o3")
    } else if has("claude-3-5-sonnet") || has("claude-3.5-sonnet") {
        idx("claude-3.5-sonnet")
    } else if has("claude-3-5-haiku") || has("claude-3.5-haiku") {
        idx("claude-3.5-haiku")
    } else if has("claude-3-opus") {
        idx("claude-3-opus")
    } else if has("claude-3-sonnet") {
        idx("claude-3-sonnet")
    } else if has("claude-3-haiku") {
        idx("claude-3-haiku")
    } else if has("claude-2") {
        idx("claude-2")
    } else if has("claude") {
        idx("claude-other")
    } else if has("gemini-2") {
        idx("gemini-2")
    } else if has("gemini-1.5-pro") {
        idx("gemini-1.5-pro")
    } else if has("gemini-1.5-flash") {
        idx("gemini-1.5-flash")
    } else if has("gemini-pro") || has("gemini-1.0") {
        idx("gemini-pro")
    } else if has("gemini") {
        idx("gemini-other")
    } else if has("codellama") {
        idx("codellama")
    } else if has("llama-3") || has("llama3") {
        idx("llama-3")
    } else if has("llama-2") || has("llama2") {
        idx("llama-2")
    } else if has("llama") {
        idx("llama-other")
    } else if has("mixtral") {
        idx("mixtral")
    } else if has("mistral") {
        idx("mistral")
    } else {
        idx("other")
    }
}

/// The label value of a raw model name.
pub fn model_label(raw: &str) -> &'static str {
    MODEL_LABELS[normalize_model(raw)]
}

/// Category label values; `Unknown` is the overflow value.
pub const CATEGORY_LABELS: [&str; 5] = ["Simple", "Medium", "Complex", "Edge", "Unknown"];

/// Maps a raw category to its label index. Matching ignores ASCII case and surrounding white space (the
/// original accepted only three spellings per value, so `sImple` became `Unknown`).
pub fn normalize_category(raw: &str) -> usize {
    let s = raw.trim();
    CATEGORY_LABELS[..4].iter().position(|c| c.eq_ignore_ascii_case(s)).unwrap_or(4)
}

/// The label value of a raw category.
pub fn category_label(raw: &str) -> &'static str {
    CATEGORY_LABELS[normalize_category(raw)]
}

/// Whether an application type routes to the librarian metrics (exact, case-sensitive match as in the
/// original; the last three are legacy names of the same application).
pub fn is_librarian(application_type: &str) -> bool {
    matches!(application_type, "librarian" | "code_assistant" | "document_search" | "document_search_streaming")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(cases: &[(&str, &str)]) {
        for (raw, want) in cases {
            assert_eq!(model_label(raw), *want, "model {raw:?}");
        }
    }

    #[test]
    fn openai_models() {
        check(&[
            ("gpt-4", "gpt-4"),
            ("GPT-4", "gpt-4"),
            ("gpt-4-0613", "gpt-4"),
            ("gpt-4-0314", "gpt-4"),
            ("gpt4", "gpt-4"),
            ("gpt-4-turbo-preview", "gpt-4-turbo"),
            ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
            ("gpt4turbo", "gpt-4-turbo"),
            ("gpt-4o", "gpt-4o"),
            ("gpt4o", "gpt-4o"),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("gpt4omini", "gpt-4o-mini"),
            ("gpt-4.1", "gpt-4"),
            ("gpt-4.5", "gpt-4"),
            ("gpt-5", "other"),
        ]);
    }

    #[test]
    fn gpt35_variants() {
        check(&[
            ("gpt-3.5-turbo", "gpt-3.5-turbo"),
            ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
            ("gpt35turbo", "gpt-3.5-turbo"),
            ("gpt-35-turbo", "gpt-3.5-turbo"),
            ("gpt-35-turbo-16k", "other"),
            ("gpt-3.5", "gpt-3.5"),
            ("gpt35", "gpt-3.5"),
        ]);
    }

    #[test]
    fn o_series() {
        check(&[
            ("o1-preview", "o1-preview"),
            ("o1-mini", "o1-mini"),
            ("o1", "o1"),
            ("o1preview", "o1"),
            ("o1-2024-12-17", "other"),
            ("o3", "o3"),
            ("o3-mini", "o3"),
        ]);
    }

    #[test]
    fn anthropic_models() {
        check(&[
            ("claude-3-5-sonnet-20241022", "claude-3.5-sonnet"),
            ("claude-3.5-sonnet", "claude-3.5-sonnet"),
            ("anthropic/claude-3-5-haiku", "claude-3.5-haiku"),
            ("claude-3-opus-20240229", "claude-3-opus"),
            ("claude-3-sonnet", "claude-3-sonnet"),
            ("claude-3-haiku", "claude-3-haiku"),
            ("claude-2.1", "claude-2"),
            ("claude-instant", "claude-other"),
            ("claude-3-7-sonnet", "claude-other"),
            ("claude-sonnet-4", "claude-other"),
        ]);
    }

    #[test]
    fn google_models() {
        check(&[
            ("gemini-2.0-flash", "gemini-2"),
            ("gemini-2.5-pro", "gemini-2"),
            ("gemini-1.5-pro", "gemini-1.5-pro"),
            ("gemini-1.5-flash-001", "gemini-1.5-flash"),
            ("gemini-pro", "gemini-pro"),
            ("gemini-1.0-pro", "gemini-pro"),
            ("gemini-ultra", "gemini-other"),
        ]);
    }

    #[test]
    fn open_models() {
        check(&[
            ("llama3:8b", "llama-3"),
            ("llama-3-70b", "llama-3"),
            ("llama2", "llama-2"),
            ("llama-1-7b", "llama-other"),
            ("codellama:34b", "codellama"),
            ("mixtral:8x7b", "mixtral"),
            ("mistral-large", "mistral"),
        ]);
    }

    #[test]
    fn unknown_and_whitespace() {
        check(&[
            ("typo-gbt-4", "other"),
            ("", "other"),
            ("   ", "other"),
            ("  gpt-4  ", "gpt-4"),
            ("\tgpt-4\n", "gpt-4"),
            ("ÇLAUDE-3-OPUS", "other"),
            ("Claude-3-Opus-ÿ", "claude-3-opus"),
        ]);
        let long = format!("{}claude", "x".repeat(100));
        assert_eq!(model_label(&long), "claude-other");
    }

    #[test]
    fn spellings_collapse_to_one_series() {
        let n = ["gpt-4", "GPT-4", "gpt-4-0613", "gpt-4-0314", " gpt4 "]
            .iter()
            .filter(|m| model_label(m) == "gpt-4")
            .count();
        assert_eq!(n, 5);
    }

    #[test]
    fn precreated_models_are_labels() {
        for m in PRECREATED_MODELS {
            assert_eq!(MODEL_LABELS[model_index(m)], m);
            assert_eq!(model_label(m), m, "a pre-created label normalizes to itself");
        }
    }

    #[test]
    fn categories() {
        for (raw, want) in [
            ("Simple", "Simple"),
            ("simple", "Simple"),
            ("SIMPLE", "Simple"),
            ("sImple", "Simple"),
            (" medium ", "Medium"),
            ("MEDIUM", "Medium"),
            ("Complex", "Complex"),
            ("complex", "Complex"),
            ("COMPLEX", "Complex"),
            ("Edge", "Edge"),
            ("edge", "Edge"),
            ("EDGE", "Edge"),
            ("Unknown", "Unknown"),
            ("SomeOtherCategory", "Unknown"),
            ("", "Unknown"),
            ("MiXeD CaSe", "Unknown"),
            ("High", "Unknown"),
        ] {
            assert_eq!(category_label(raw), want, "category {raw:?}");
        }
    }

    #[test]
    fn librarian_routing_is_exact() {
        for t in ["librarian", "code_assistant", "document_search", "document_search_streaming"] {
            assert!(is_librarian(t), "{t}");
        }
        for t in ["rag", "unknown", "", "Librarian", " librarian"] {
            assert!(!is_librarian(t), "{t}");
        }
    }
}
