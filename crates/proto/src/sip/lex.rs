//! Lexical helpers shared by the SIP value parsers (RFC 3261 §25.1 basic rules).
//!
//! Everything works on `&str` with `get`/`char_indices`, so no slice can be out of bounds or
//! split a UTF-8 sequence.

use super::SipError;

/// LWS characters. CR and LF count because a header value handed over by the SIP stack may still
/// contain a folded line (`CRLF 1*WSP`), which RFC 3261 §7.3.1 makes equivalent to one SP.
pub(crate) fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(is_lws)
}

pub(crate) fn trim_lws_start(s: &str) -> &str {
    s.trim_start_matches(is_lws)
}

/// `token` characters of RFC 3261 §25.1.
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '!' | '%' | '*' | '_' | '+' | '`' | '\'' | '~'
        )
}

/// The part of `s` after its first `n` bytes, or `""` (never panics).
pub(crate) fn after(s: &str, n: usize) -> &str {
    s.get(n..).unwrap_or("")
}

/// Parses a quoted-string at the start of `s` (which must begin with `"`), decoding `\`-pairs.
/// Returns the decoded content and the rest of `s` after the closing quote.
///
/// A folded line inside the string (`CRLF 1*WSP`) is unfolded by dropping the line break and
/// keeping the whitespace. Any other raw control character (except HTAB, which is LWS) is refused:
/// `qdtext` does not include them. `\` followed by CR or LF is refused (`quoted-pair` excludes
/// them), so a decoded string can never contain a line break.
pub(crate) fn parse_quoted(s: &str) -> Result<(String, &str), SipError> {
    let mut it = s.char_indices().peekable();
    match it.next() {
        Some((_, '"')) => {}
        _ => return Err(SipError::UnexpectedChar(s.chars().next().unwrap_or('\0'))),
    }
    let mut out = String::new();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, after(s, i + 1))),
            '\\' => match it.next() {
                None => return Err(SipError::UnterminatedQuote),
                Some((_, '\r' | '\n')) => return Err(SipError::BadEscape),
                Some((_, e)) => out.push(e),
            },
            '\r' => {
                // Only as part of a fold: CR LF 1*WSP.
                if !matches!(it.next(), Some((_, '\n'))) {
                    return Err(SipError::ControlCharacter);
                }
                if !matches!(it.peek(), Some((_, ' ' | '\t'))) {
                    return Err(SipError::ControlCharacter);
                }
            }
            '\n' => {
                if !matches!(it.peek(), Some((_, ' ' | '\t'))) {
                    return Err(SipError::ControlCharacter);
                }
            }
            '\t' => out.push(c),
            c if c.is_control() && c.is_ascii() => return Err(SipError::ControlCharacter),
            c => out.push(c),
        }
    }
    Err(SipError::UnterminatedQuote)
}

/// Length in bytes of the quoted-string at the start of `s` including both quotes, without
/// decoding it (used to keep quoted parameter values as written).
pub(crate) fn quoted_len(s: &str) -> Result<usize, SipError> {
    let mut it = s.char_indices();
    if !matches!(it.next(), Some((_, '"'))) {
        return Err(SipError::UnexpectedChar(s.chars().next().unwrap_or('\0')));
    }
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok(i + 1),
            '\\' if it.next().is_none() => return Err(SipError::UnterminatedQuote),
            _ => {}
        }
    }
    Err(SipError::UnterminatedQuote)
}

/// Splits `s` on `sep` where it is neither inside a quoted-string nor inside `<...>`.
/// An unterminated quote or angle bracket simply swallows the rest; the element parser reports it.
pub(crate) fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut escaped = false;
    let mut in_angle = false;
    for (i, c) in s.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '<' => in_angle = true,
            '>' => in_angle = false,
            c if c == sep && !in_angle => {
                out.push(s.get(start..i).unwrap_or(""));
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(after(s, start));
    out
}

/// Checks the text of a URI found inside `<...>` or as an addr-spec: a scheme
/// (`ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")`), a colon, something after it, and no whitespace,
/// control characters, `<`, `>` or `"` anywhere. Deliberately not a full parse: a name-addr may
/// hold any absoluteURI (`tel:`, `urn:`, …); use [`super::parse_uri`] to look inside.
pub(crate) fn check_uri_text(u: &str) -> Result<(), SipError> {
    if u.is_empty() {
        return Err(SipError::EmptyUri);
    }
    if let Some(c) = u
        .chars()
        .find(|&c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"'))
    {
        return Err(if c.is_control() {
            SipError::ControlCharacter
        } else {
            SipError::UnexpectedChar(c)
        });
    }
    let (scheme, rest) = u.split_once(':').ok_or(SipError::BadScheme)?;
    if !is_scheme(scheme) || rest.is_empty() {
        return Err(SipError::BadScheme);
    }
    Ok(())
}

pub(crate) fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Parses `*( SEMI generic-param )` as found after a name-addr (RFC 3261 §20.10, §25.1).
/// Names are kept as written; values are kept as written too (a quoted-string value keeps its
/// quotes, so `+sip.instance="<urn:...>"` survives a round trip). Only LWS may follow.
pub(crate) fn parse_header_params(mut s: &str) -> Result<Vec<(String, Option<String>)>, SipError> {
    let mut params = Vec::new();
    loop {
        s = trim_lws_start(s);
        let Some(rest) = s.strip_prefix(';') else {
            return match s.chars().next() {
                None => Ok(params),
                Some(c) => Err(SipError::UnexpectedChar(c)),
            };
        };
        s = trim_lws_start(rest);
        let name_len = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
        let name = s.get(..name_len).unwrap_or("");
        if name.is_empty() {
            return Err(SipError::BadParam);
        }
        s = trim_lws_start(after(s, name_len));
        let value = if let Some(rest) = s.strip_prefix('=') {
            s = trim_lws_start(rest);
            let len = if s.starts_with('"') {
                let len = quoted_len(s)?;
                // Raw or escaped, a control character has no business in a parameter value.
                if s.get(..len).unwrap_or("").chars().any(char::is_control) {
                    return Err(SipError::ControlCharacter);
                }
                len
            } else {
                s.find(|c: char| {
                    is_lws(c) || matches!(c, ';' | ',' | '"' | '<' | '>') || c.is_control()
                })
                .unwrap_or(s.len())
            };
            let v = s.get(..len).unwrap_or("");
            if v.is_empty() {
                return Err(SipError::BadParam);
            }
            s = after(s, len);
            Some(v.to_string())
        } else {
            None
        };
        params.push((name.to_string(), value));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn quoted_decodes_pairs_and_unfolds() {
        assert_eq!(
            parse_quoted(r#""a \"b\" \\c" rest"#).unwrap(),
            ("a \"b\" \\c".to_string(), " rest")
        );
        assert_eq!(parse_quoted("\"a\r\n b\"").unwrap().0, "a b");
        assert_eq!(parse_quoted("\"a\r\nb\""), Err(SipError::ControlCharacter));
        assert_eq!(parse_quoted("\"a\\\r\n b\""), Err(SipError::BadEscape));
        assert_eq!(parse_quoted("\"abc"), Err(SipError::UnterminatedQuote));
        assert_eq!(parse_quoted("\"abc\\"), Err(SipError::UnterminatedQuote));
        assert_eq!(parse_quoted("\"a\0b\""), Err(SipError::ControlCharacter));
    }

    #[test]
    fn top_level_split() {
        assert_eq!(
            split_top_level(r#""a,b" <sip:x,y>, c"#, ','),
            vec![r#""a,b" <sip:x,y>"#, " c"]
        );
        assert_eq!(
            split_top_level(r#""a\",b", c"#, ','),
            vec![r#""a\",b""#, " c"]
        );
    }

    #[test]
    fn header_params() {
        let p = parse_header_params(" ;tag=x ; isfocus;+sip.instance=\"<urn:a;b>\"").unwrap();
        assert_eq!(p[0], ("tag".into(), Some("x".into())));
        assert_eq!(p[1], ("isfocus".into(), None));
        assert_eq!(p[2], ("+sip.instance".into(), Some("\"<urn:a;b>\"".into())));
        assert!(parse_header_params(";=x").is_err());
        assert!(parse_header_params(";a=").is_err());
        assert!(parse_header_params("x").is_err());
        assert_eq!(
            parse_header_params(";a=\"x\r\n y\""),
            Err(SipError::ControlCharacter)
        );
    }
}
