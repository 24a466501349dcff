//! Quoting display names for composing SIP headers (RFC 3261 §25.1 `quoted-string`).
//!
//! Only `"` and `\` need a `\`-pair. Control characters are the problem: CR and LF are not
//! representable at all (`quoted-pair` excludes them, and raw they would end the header), and the
//! others are not `qdtext`. So the `try_` variant refuses every Unicode `Cc` character (C0, DEL,
//! C1, including TAB: a display name has no use for it and it would come back as LWS), and the total
//! variant drops them.

use super::SipError;

/// Quotes `s` as a SIP quoted-string, refusing any control character.
pub fn try_quote_display_name(s: &str) -> Result<String, SipError> {
    if s.chars().any(char::is_control) {
        return Err(SipError::ControlCharacter);
    }
    Ok(quote_display_name(s))
}

/// Quotes `s` as a SIP quoted-string, silently dropping control characters. Never fails and
/// never emits CR/LF.
pub fn quote_display_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn escapes_and_refuses() {
        assert_eq!(quote_display_name(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(quote_display_name("a\r\nb\u{85}\u{7f}"), "\"ab\"");
        assert_eq!(
            try_quote_display_name("a\nb"),
            Err(SipError::ControlCharacter)
        );
        assert_eq!(
            try_quote_display_name("a\tb"),
            Err(SipError::ControlCharacter)
        );
        assert_eq!(try_quote_display_name("Zoë").unwrap(), "\"Zoë\"");
    }
}
