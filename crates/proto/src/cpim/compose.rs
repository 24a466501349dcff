//! Writing message/cpim.
//!
//! A SIP display name arrives unescaped (see [`crate::sip::NameAddr`]); here it is re-escaped by
//! CPIM's own rules, never copied raw.

use std::fmt::Write as _;

use super::{parse_address, CpimError};
use crate::mime::{is_field_name, sanitize_name, sanitize_value};

/// Escapes a Formal-name String per RFC 3862 §2.3.1: `\\`, `\"`, `\b`, `\t`, `\n`, `\r`, and
/// every other control character (C0, DEL, C1) as `\uXXXX`.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Characters that cannot appear inside `<...>` are %-encoded, so a hostile URI can neither close
/// the brackets nor break the line.
fn push_uri(out: &mut String, uri: &str) {
    for c in uri.chars() {
        if c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"') {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

/// Formats a From/To value: `"name" <uri>` (one space before `<`: the form real clients send and
/// every parser accepts), or `<uri>` without a display name. Total: the name is escaped, the URI
/// %-encodes whitespace, controls, `<`, `>` and `"`.
pub fn format_address(display_name: Option<&str>, uri: &str) -> String {
    let mut out = String::with_capacity(uri.len() + display_name.map_or(0, str::len) + 5);
    if let Some(name) = display_name {
        out.push('"');
        escape_into(&mut out, name);
        out.push_str("\" ");
    }
    out.push('<');
    push_uri(&mut out, uri);
    out.push('>');
    out
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(sanitize_name(name).as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(sanitize_value(value).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Composes a message/cpim body:
/// `From: <from>\r\nTo: <to>\r\n…<extra>\r\n\r\nContent-Type: <inner>\r\n\r\n<body>`.
///
/// `from` and each `to` are already formatted addresses ([`format_address`]). Total: header
/// names are reduced to field-name characters and control characters in values become spaces,
/// so nothing can add a line. Use [`try_compose`] to have bad input refused instead.
pub fn compose(
    from: &str,
    to: &[String],
    extra_headers: &[(&str, &str)],
    inner_content_type: &str,
    inner_body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + inner_body.len());
    push_header(&mut out, "From", from);
    for t in to {
        push_header(&mut out, "To", t);
    }
    for (n, v) in extra_headers {
        push_header(&mut out, n, v);
    }
    out.extend_from_slice(b"\r\n");
    push_header(&mut out, "Content-Type", inner_content_type);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(inner_body);
    out
}

/// Like [`compose`] but refuses instead of repairing: `from`/`to` must parse as CPIM addresses,
/// no value may contain a control character, extra header names must be field names other than
/// From/To (use the parameters for those), and the inner Content-Type must be non-empty.
pub fn try_compose(
    from: &str,
    to: &[String],
    extra_headers: &[(&str, &str)],
    inner_content_type: &str,
    inner_body: &[u8],
) -> Result<Vec<u8>, CpimError> {
    let values = std::iter::once(from)
        .chain(to.iter().map(String::as_str))
        .chain(extra_headers.iter().map(|(_, v)| *v))
        .chain(std::iter::once(inner_content_type));
    for v in values {
        if v.chars().any(char::is_control) {
            return Err(CpimError::ControlCharacter);
        }
    }
    parse_address(from)?;
    for t in to {
        parse_address(t)?;
    }
    for (n, _) in extra_headers {
        if !is_field_name(n) || n.eq_ignore_ascii_case("From") || n.eq_ignore_ascii_case("To") {
            return Err(CpimError::MalformedHeader);
        }
    }
    if inner_content_type.trim().is_empty() {
        return Err(CpimError::MissingContentType);
    }
    Ok(compose(
        from,
        to,
        extra_headers,
        inner_content_type,
        inner_body,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::super::{parse_address, parse_message, CpimAddress};
    use super::*;

    #[test]
    fn formats_and_escapes() {
        assert_eq!(
            format_address(Some("bob-2"), "sip:anonymous2@anonymous.invalid"),
            "\"bob-2\" <sip:anonymous2@anonymous.invalid>"
        );
        assert_eq!(format_address(None, "sip:x@y"), "<sip:x@y>");
        assert_eq!(
            format_address(Some("a\"b\\c\u{8}\t\n\r\u{1}\u{7f}\u{85}é"), "s:x"),
            "\"a\\\"b\\\\c\\b\\t\\n\\r\\u0001\\u007F\\u0085é\" <s:x>"
        );
        assert_eq!(
            format_address(None, "sip:x>\r\nFrom: <y"),
            "<sip:x%3E%0D%0AFrom:%20%3Cy>"
        );
    }

    #[test]
    fn round_trip() {
        let name = "Zoë \"the\" \\ \n \u{202E}";
        let a = format_address(Some(name), "sip:z@example.com");
        assert_eq!(
            parse_address(&a).unwrap(),
            CpimAddress {
                display_name: Some(name.into()),
                uri: "sip:z@example.com".into()
            }
        );
    }

    #[test]
    fn composes_the_spec_body() {
        let to = format_address(Some("bob-2"), "sip:anonymous2@anonymous.invalid");
        let from = format_address(None, "sip:bookclub@im.example.net");
        let body = compose(&from, &[to], &[], "text/plain;charset=UTF-8", b"");
        assert_eq!(
            body,
            b"From: <sip:bookclub@im.example.net>\r\nTo: \"bob-2\" <sip:anonymous2@anonymous.invalid>\r\n\r\n\
Content-Type: text/plain;charset=UTF-8\r\n\r\n"
        );
        let m = parse_message(&body).unwrap();
        assert_eq!(m.headers.to[0].display_name.as_deref(), Some("bob-2"));
        assert!(m.body.is_empty());
    }

    #[test]
    fn no_injection() {
        let body = compose(
            "<a:b>\r\nTo: <evil:x>",
            &[],
            &[("X\r\nY", "1\r\n\r\nz")],
            "text/plain\r\nA: b",
            b"hi",
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "From: <a:b>  To: <evil:x>\r\nXY: 1    z\r\n\r\nContent-Type: text/plain  A: b\r\n\r\nhi"
        );
        assert_eq!(
            try_compose("<a:b>\r\n", &[], &[], "t/p", b""),
            Err(CpimError::ControlCharacter)
        );
        assert!(try_compose("a:b", &[], &[], "t/p", b"").is_err());
        assert!(try_compose("<a:b>", &[], &[("To", "<c:d>")], "t/p", b"").is_err());
        assert!(try_compose(
            "<a:b>",
            &["<c:d>".into()],
            &[("DateTime", "2000-12-13T13:40:00-08:00")],
            "t/p",
            b"x"
        )
        .is_ok());
    }
}
