//! The Privacy header (RFC 3323 §4.2, `id` from RFC 3325 §9.3).

use super::lex::{is_lws, trim_lws};

/// The priv-values of one Privacy header value, lower-cased and trimmed, empty ones skipped.
///
/// The grammar separates values with `;`. Commas are split on too: a SIP stack that merges
/// several Privacy header fields into one value joins them with `,` (RFC 3261 §7.3.1), and no
/// priv-value contains a comma.
pub fn privacy_values(value: &str) -> Vec<String> {
    value
        .split([';', ','])
        .map(trim_lws)
        .filter(|v| !v.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether the value asks for identity privacy: some priv-value equals `id`, ignoring case and
/// surrounding whitespace, in any position (`header;id;critical`, ` ID `).
pub fn privacy_requests_id(value: &str) -> bool {
    value
        .split([';', ','])
        .any(|v| v.trim_matches(is_lws).eq_ignore_ascii_case("id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(
            privacy_values(" Header ; ID;critical;"),
            vec!["header", "id", "critical"]
        );
        assert!(privacy_values("").is_empty());
    }

    #[test]
    fn id_anywhere() {
        assert!(privacy_requests_id("id"));
        assert!(privacy_requests_id("header;id;critical"));
        assert!(privacy_requests_id(" ID "));
        assert!(privacy_requests_id("none, id"));
        assert!(!privacy_requests_id("header;user"));
        assert!(!privacy_requests_id("idx;ide"));
        assert!(!privacy_requests_id(""));
    }
}
