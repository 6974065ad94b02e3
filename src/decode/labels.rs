//! Bounded label values: model and category normalization and librarian routing (docs/metrics.md, Label values).
//!
//! Each function maps free text from producers to one of a fixed set of label values, so the number of series
//! stays bounded whatever producers send. The values are typed tables ([`Model`], [`Category`]), so the
//! worker caches one metric handle per variant.

use crate::table::label_enum;

label_enum! {
    /// A model label value; `Other` is the overflow value.
    pub enum Model {
        Gpt4oMini => "gpt-4o-mini",
        Gpt4o => "gpt-4o",
        Gpt4Turbo => "gpt-4-turbo",
        Gpt4 => "gpt-4",
        Gpt35Turbo => "gpt-3.5-turbo",
        Gpt35 => "gpt-3.5",
        O1Preview => "o1-preview",
        O1Mini => "o1-mini",
        O1 => "o1",
        O3 => "o3",
        Claude35Sonnet => "claude-3.5-sonnet",
        Claude35Haiku => "claude-3.5-haiku",
        Claude3Opus => "claude-3-opus",
        Claude3Sonnet => "claude-3-sonnet",
        Claude3Haiku => "claude-3-haiku",
        Claude2 => "claude-2",
        ClaudeOther => "claude-other",
        Gemini2 => "gemini-2",
        Gemini15Pro => "gemini-1.5-pro",
        Gemini15Flash => "gemini-1.5-flash",
        GeminiPro => "gemini-pro",
        GeminiOther => "gemini-other",
        CodeLlama => "codellama",
        Llama3 => "llama-3",
        Llama2 => "llama-2",
        LlamaOther => "llama-other",
        Mixtral => "mixtral",
        Mistral => "mistral",
        Other => "other",
    }
}

/// Models whose `dashstream_queries_by_model_total` series exist before any event (as in the original).
pub const PRECREATED_MODELS: [Model; 14] = [
    Model::Gpt4,
    Model::Gpt4o,
    Model::Gpt4oMini,
    Model::Gpt4Turbo,
    Model::Gpt35Turbo,
    Model::O1Preview,
    Model::O1Mini,
    Model::Claude35Sonnet,
    Model::Claude35Haiku,
    Model::Claude3Opus,
    Model::Gemini15Pro,
    Model::Gemini15Flash,
    Model::Llama3,
    Model::Mistral,
];

/// Maps a raw model name to its label (the original's rules, in its order: first match wins).
///
/// The original lower-cases then trims; ASCII lower-casing is used here (model names are ASCII; a non-ASCII
/// name can only fall through to a `contains` rule or `other`, exactly as with full lower-casing).
pub fn normalize_model(raw: &str) -> Model {
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
    let sw = |p: &str| s.starts_with(p);
    let has = |p: &str| s.contains(p);
    if sw("gpt-4o-mini") || s == "gpt4omini" {
        Model::Gpt4oMini
    } else if sw("gpt-4o") || s == "gpt4o" {
        Model::Gpt4o
    } else if sw("gpt-4-turbo") || s == "gpt4turbo" {
        Model::Gpt4Turbo
    } else if sw("gpt-4") || s == "gpt4" {
        Model::Gpt4
    } else if sw("gpt-3.5-turbo") || s == "gpt35turbo" || s == "gpt-35-turbo" {
        Model::Gpt35Turbo
    } else if sw("gpt-3.5") || s == "gpt35" {
        Model::Gpt35
    } else if sw("o1-preview") {
        Model::O1Preview
    } else if sw("o1-mini") {
        Model::O1Mini
    } else if sw("o1") && !sw("o1-") {
        Model::O1
    } else if sw("o3") {
        Model::O3
    } else if has("claude-3-5-sonnet") || has("claude-3.5-sonnet") {
        Model::Claude35Sonnet
    } else if has("claude-3-5-haiku") || has("claude-3.5-haiku") {
        Model::Claude35Haiku
    } else if has("claude-3-opus") {
        Model::Claude3Opus
    } else if has("claude-3-sonnet") {
        Model::Claude3Sonnet
    } else if has("claude-3-haiku") {
        Model::Claude3Haiku
    } else if has("claude-2") {
        Model::Claude2
    } else if has("claude") {
        Model::ClaudeOther
    } else if has("gemini-2") {
        Model::Gemini2
    } else if has("gemini-1.5-pro") {
        Model::Gemini15Pro
    } else if has("gemini-1.5-flash") {
        Model::Gemini15Flash
    } else if has("gemini-pro") || has("gemini-1.0") {
        Model::GeminiPro
    } else if has("gemini") {
        Model::GeminiOther
    } else if has("codellama") {
        Model::CodeLlama
    } else if has("llama-3") || has("llama3") {
        Model::Llama3
    } else if has("llama-2") || has("llama2") {
        Model::Llama2
    } else if has("llama") {
        Model::LlamaOther
    } else if has("mixtral") {
        Model::Mixtral
    } else if has("mistral") {
        Model::Mistral
    } else {
        Model::Other
    }
}

/// The label value of a raw model name.
pub fn model_label(raw: &str) -> &'static str {
    normalize_model(raw).label()
}

label_enum! {
    /// A category label value; `Unknown` is the overflow value.
    pub enum Category {
        Simple => "Simple",
        Medium => "Medium",
        Complex => "Complex",
        Edge => "Edge",
        Unknown => "Unknown",
    }
}

/// Maps a raw category to its label. Matching ignores ASCII case and surrounding white space (the original
/// accepted only three spellings per value, so `sImple` became `Unknown`).
pub fn normalize_category(raw: &str) -> Category {
    // A label spelled exactly (what producers send) is itself: one compare instead of a case-blind scan.
    if let Some(c) = Category::from_label(raw) {
        return c;
    }
    let s = raw.trim();
    Category::ALL.into_iter().find(|c| c.label().eq_ignore_ascii_case(s)).unwrap_or(Category::Unknown)
}

/// The label value of a raw category.
pub fn category_label(raw: &str) -> &'static str {
    normalize_category(raw).label()
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
            assert_eq!(Model::from_label(m.label()), Some(m));
            assert_eq!(normalize_model(m.label()), m, "a pre-created label normalizes to itself");
        }
    }

    #[test]
    fn every_label_normalizes_to_itself() {
        for m in Model::ALL {
            assert_eq!(normalize_model(m.label()), m);
        }
        for c in Category::ALL {
            assert_eq!(normalize_category(c.label()), c);
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
