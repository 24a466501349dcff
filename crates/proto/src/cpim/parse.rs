//! Reading message/cpim.

use super::{CpimAddress, CpimError, CpimHeaders, CpimMessage};
use crate::mime::{self, LineEnds};

/// The largest CPIM header block accepted. Real blocks are a few hundred bytes; the cap bounds
/// what a streaming caller buffers while waiting for the blank line.
pub const MAX_HEADER_BLOCK: usize = 16 * 1024;

/// Parses the CPIM header block at the start of a message/cpim body.
///
/// Returns [`CpimError::Incomplete`] while the blank line has not arrived (and every complete
/// line so far is valid), [`CpimError::TooLarge`] if it has not arrived within
/// [`MAX_HEADER_BLOCK`] bytes.
///
/// Header names are case-sensitive in RFC 3862, but `From` and `To` are recognised in any case:
/// some clients write `from:`, and reading such a header as an unknown one would only hide the
/// sender. Values may be separated from the colon by any number of SP/HTAB (strictly exactly one
/// SP). Unknown headers are kept in `headers` and otherwise ignored. A bare LF ends a line; see
/// [`parse_headers_with`] to refuse it.
pub fn parse_headers(input: &[u8]) -> Result<CpimHeaders<'_>, CpimError> {
    parse_headers_with(input, LineEnds::AcceptBareLf)
}

/// [`parse_headers`] with the line ends the caller accepts: under [`LineEnds::CrlfOnly`] a line
/// ended by LF alone is [`CpimError::BareLf`], as soon as that line is complete.
pub fn parse_headers_with(input: &[u8], ends: LineEnds) -> Result<CpimHeaders<'_>, CpimError> {
    let mut headers = Vec::new();
    let mut from = None;
    let mut to = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = input.get(pos..).unwrap_or_default();
        let Some((line, n)) = mime::next_line(rest, ends)? else {
            return Err(if input.len() > MAX_HEADER_BLOCK {
                CpimError::TooLarge
            } else {
                CpimError::Incomplete
            });
        };
        pos += n;
        if pos > MAX_HEADER_BLOCK {
            return Err(CpimError::TooLarge);
        }
        if line.is_empty() {
            return Ok(CpimHeaders {
                from,
                to,
                headers,
                header_len: pos,
            });
        }
        let (name, value) = header_line(line)?;
        if name.eq_ignore_ascii_case("From") {
            if from.is_some() {
                return Err(CpimError::DuplicateFrom);
            }
            from = Some(parse_address(value)?);
        } else if name.eq_ignore_ascii_case("To") {
            to.push(parse_address(value)?);
        }
        headers.push((name, value));
    }
}

fn header_line(line: &[u8]) -> Result<(&str, &str), CpimError> {
    let line = std::str::from_utf8(line).map_err(|_| CpimError::NotUtf8)?;
    if line.starts_with([' ', '\t']) {
        return Err(CpimError::Folding);
    }
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(CpimError::ControlCharacter);
    }
    let (name, value) = line.split_once(':').ok_or(CpimError::MalformedHeader)?;
    if !mime::is_field_name(name) {
        return Err(CpimError::MalformedHeader);
    }
    Ok((name, value.trim_matches([' ', '\t'])))
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses a From/To value: `[Formal-name] "<" URI ">"`, Formal-name a quoted String (RFC 3862
/// §2.3.1 escapes decoded) or token words. Accepts a space between a closing quote and `<` (real
/// clients send one; the grammar has none) and token words without the trailing SP before `<`.
pub fn parse_address(value: &str) -> Result<CpimAddress, CpimError> {
    let s = value.trim_matches(is_ws);
    let (display_name, rest) = if s.starts_with('"') {
        let (name, rest) = parse_string(s)?;
        (Some(name), rest.trim_start_matches(is_ws))
    } else if s.starts_with('<') {
        (None, s)
    } else {
        let lt = s.find('<').ok_or(CpimError::BadAddress("missing '<'"))?;
        let words = s.get(..lt).unwrap_or("");
        if words
            .chars()
            .any(|c| c.is_control() && c != '\t' || matches!(c, '"' | '>'))
        {
            return Err(CpimError::BadAddress("invalid character in name"));
        }
        let name = words
            .split(is_ws)
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        (Some(name), s.get(lt..).unwrap_or(""))
    };
    let inner = rest
        .strip_prefix('<')
        .ok_or(CpimError::BadAddress("missing '<'"))?;
    let (uri, tail) = inner
        .split_once('>')
        .ok_or(CpimError::BadAddress("missing '>'"))?;
    if uri.is_empty() {
        return Err(CpimError::BadAddress("empty URI"));
    }
    if uri
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '"')
    {
        return Err(CpimError::BadAddress("invalid character in URI"));
    }
    if !tail.is_empty() {
        return Err(CpimError::BadAddress("text after '>'"));
    }
    Ok(CpimAddress {
        display_name,
        uri: uri.to_string(),
    })
}

/// Decodes a quoted String at the start of `s`; returns it and the rest after the closing quote.
fn parse_string(s: &str) -> Result<(String, &str), CpimError> {
    let mut it = s.char_indices();
    if !matches!(it.next(), Some((_, '"'))) {
        return Err(CpimError::BadAddress("expected '\"'"));
    }
    let mut out = String::new();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, s.get(i + 1..).unwrap_or(""))),
            '\\' => {
                let e = match it.next() {
                    Some((_, e)) => e,
                    None => return Err(CpimError::BadAddress("unterminated string")),
                };
                match e {
                    'b' => out.push('\u{8}'),
                    't' => out.push('\t'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    '"' | '\'' | '\\' => out.push(e),
                    'u' => {
                        let unit = hex4(&mut it)?;
                        let c = if (0xD800..0xDC00).contains(&unit) {
                            // A high surrogate must be followed by `\u` and a low surrogate.
                            if !matches!((it.next(), it.next()), (Some((_, '\\')), Some((_, 'u'))))
                            {
                                return Err(CpimError::BadEscape);
                            }
                            let low = hex4(&mut it)?;
                            if !(0xDC00..0xE000).contains(&low) {
                                return Err(CpimError::BadEscape);
                            }
                            char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                        } else {
                            char::from_u32(unit)
                        };
                        out.push(c.ok_or(CpimError::BadEscape)?);
                    }
                    _ => return Err(CpimError::BadEscape),
                }
            }
            c if c.is_control() && c != '\t' => return Err(CpimError::ControlCharacter),
            c => out.push(c),
        }
    }
    Err(CpimError::BadAddress("unterminated string"))
}

fn hex4(it: &mut std::str::CharIndices<'_>) -> Result<u32, CpimError> {
    let mut v = 0u32;
    for _ in 0..4 {
        let d = it
            .next()
            .and_then(|(_, c)| c.to_digit(16))
            .ok_or(CpimError::BadEscape)?;
        v = v << 4 | d;
    }
    Ok(v)
}

/// Parses the encapsulated MIME part that follows the CPIM header block (RFC 3862 §2.4): MIME
/// headers (folding allowed) up to a blank line, then the body. Returns the Content-Type value
/// (trimmed, not parsed: use [`crate::sip::parse_media_type`]) and the body.
///
/// [`CpimError::Incomplete`] when the blank line has not arrived yet;
/// [`CpimError::MissingContentType`] when the headers have no Content-Type. A bare LF ends a
/// line; see [`parse_encapsulated_with`] to refuse it.
pub fn parse_encapsulated(input: &[u8]) -> Result<(&str, &[u8]), CpimError> {
    parse_encapsulated_with(input, LineEnds::AcceptBareLf)
}

/// [`parse_encapsulated`] with the line ends the caller accepts: under [`LineEnds::CrlfOnly`] a
/// header line (or the blank line) ended by LF alone is [`CpimError::BareLf`]. The body that
/// follows the blank line is not looked at.
pub fn parse_encapsulated_with(input: &[u8], ends: LineEnds) -> Result<(&str, &[u8]), CpimError> {
    let (headers, consumed) = mime::parse_headers_with(input, false, ends)?;
    let content_type = mime::find(&headers, "Content-Type").ok_or(CpimError::MissingContentType)?;
    Ok((content_type, input.get(consumed..).unwrap_or_default()))
}

/// Parses a complete message/cpim body: CPIM headers, then the encapsulated part.
pub fn parse_message(input: &[u8]) -> Result<CpimMessage<'_>, CpimError> {
    let headers = parse_headers(input)?;
    let (content_type, body) =
        parse_encapsulated(input.get(headers.header_len..).unwrap_or_default())?;
    Ok(CpimMessage {
        headers,
        content_type,
        body,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn addr(d: Option<&str>, uri: &str) -> CpimAddress {
        CpimAddress {
            display_name: d.map(str::to_string),
            uri: uri.into(),
        }
    }

    /// RFC 3862 §6.1 (message/cpim example), CRLF line ends.
    const RFC_EXAMPLE: &[u8] = b"From: MR SANDERS <im:piglet@100akerwood.com>\r\n\
To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n\
DateTime: 2000-12-13T13:40:00-08:00\r\n\
Subject: the weather will be fine today\r\n\
Subject:;lang=fr beau temps prevu pour aujourd'hui\r\n\
NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n\
Require: MyFeatures.VitalMessageOption\r\n\
MyFeatures.VitalMessageOption: Confirmation-requested\r\n\
MyFeatures.WackyMessageOption: Use-silly-font\r\n\
\r\n\
Content-type: text/xml; charset=utf-8\r\n\
Content-ID: <1234567890@foo.com>\r\n\
\r\n\
<body>\r\n\
Here is the text of my message.\r\n\
</body>\r\n";

    #[test]
    fn rfc3862_example() {
        let m = parse_message(RFC_EXAMPLE).unwrap();
        assert_eq!(
            m.headers.from,
            Some(addr(Some("MR SANDERS"), "im:piglet@100akerwood.com"))
        );
        assert_eq!(
            m.headers.to,
            vec![addr(Some("Depressed Donkey"), "im:eeyore@100akerwood.com")]
        );
        assert_eq!(m.headers.headers.len(), 9);
        assert_eq!(
            m.headers.headers[4],
            ("Subject", ";lang=fr beau temps prevu pour aujourd'hui")
        );
        assert_eq!(m.content_type, "text/xml; charset=utf-8");
        assert!(m.body.starts_with(b"<body>"));
    }

    #[test]
    fn streaming_envelope() {
        let full = b"From: <sip:a@b>\r\nTo: <sip:c@d>\r\n\r\nContent-Type: text/plain\r\n\r\nhi";
        for cut in 0..34 {
            assert_eq!(
                parse_headers(&full[..cut]),
                Err(CpimError::Incomplete),
                "cut {cut}"
            );
        }
        let h = parse_headers(full).unwrap();
        assert_eq!(h.header_len, 34);
        assert_eq!(&full[h.header_len..h.header_len + 13], b"Content-Type:");
        // A complete bad line fails without waiting for the blank line.
        assert_eq!(
            parse_headers(b"From <x>\r\nTo: <"),
            Err(CpimError::MalformedHeader)
        );
        assert_eq!(
            parse_headers(&[b'a'; MAX_HEADER_BLOCK + 1]),
            Err(CpimError::TooLarge)
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address(r#""bob-2" <sip:anonymous2@anonymous.invalid>"#).unwrap(),
            addr(Some("bob-2"), "sip:anonymous2@anonymous.invalid")
        );
        assert_eq!(
            parse_address(r#""bob-2"<sip:x@y>"#).unwrap(),
            addr(Some("bob-2"), "sip:x@y")
        );
        assert_eq!(
            parse_address("Bob<sip:x@y>").unwrap(),
            addr(Some("Bob"), "sip:x@y")
        );
        assert_eq!(parse_address("<sip:x@y>").unwrap(), addr(None, "sip:x@y"));
        assert_eq!(
            parse_address(r#""a\"b\\c\u00e9\uD83D\uDE00\n" <sip:x@y>"#)
                .unwrap()
                .display_name
                .unwrap(),
            "a\"b\\cé😀\n"
        );
        for bad in [
            r#""a <sip:x@y>"#,
            "sip:x@y",
            "<sip:x@y",
            "<>",
            "<sip:x y>",
            "<sip:x@y> z",
            r#""\q" <a:b>"#,
            r#""\uD83D" <a:b>"#,
            r#""\u12" <a:b>"#,
            r#""x" y <a:b>"#,
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_rules() {
        let h = parse_headers(b"from: <sip:a@b>\nTO: <sip:c@d>\nto: <sip:e@f>\n\n").unwrap();
        assert_eq!(h.from.unwrap().uri, "sip:a@b");
        assert_eq!(h.to.len(), 2);
        assert_eq!(h.header_len, 45);
        assert_eq!(
            parse_headers(b"From: <a:b>\r\nFrom: <a:c>\r\n\r\n"),
            Err(CpimError::DuplicateFrom)
        );
        assert_eq!(
            parse_headers(b"From: <a:b>\r\n x\r\n\r\n"),
            Err(CpimError::Folding)
        );
        assert_eq!(
            parse_headers(b"Subject: a\rb\r\n\r\n"),
            Err(CpimError::ControlCharacter)
        );
        assert_eq!(
            parse_headers(b"Subject: \xc3\r\n\r\n"),
            Err(CpimError::NotUtf8)
        );
        assert_eq!(parse_headers(b"\r\nrest").unwrap().header_len, 2);
    }

    #[test]
    fn crlf_only_refuses_bare_lf_in_both_header_blocks() {
        fn strict(b: &[u8]) -> Result<CpimHeaders<'_>, CpimError> {
            parse_headers_with(b, LineEnds::CrlfOnly)
        }
        let good =
            b"From: <sip:a@b>\r\nTo: <sip:c@d>\r\n\r\nContent-Type: text/plain\r\n\r\nhi\nthere";
        let h = strict(good).unwrap();
        assert_eq!(h.header_len, 34);
        assert_eq!(
            parse_encapsulated_with(&good[34..], LineEnds::CrlfOnly).unwrap(),
            ("text/plain", &b"hi\nthere"[..])
        );
        // The smuggling shape: a lenient reader sees two From lines, a CRLF-only one sees one
        // line, so they would disagree on who spoke; the relay refuses the message instead.
        for bad in [
            &b"From: <sip:a@b>\nTo: <sip:c@d>\r\n\r\n"[..],
            b"From: <sip:a@b>\r\nTo: <sip:c@d>\n\r\n",
            b"From: <sip:a@b>\r\nTo: <sip:c@d>\r\n\n",
            b"\n",
        ] {
            assert_eq!(strict(bad), Err(CpimError::BareLf), "{bad:?}");
            assert!(parse_headers(bad).is_ok(), "lenient reads {bad:?}");
        }
        // Refused as soon as the bad line is complete, without waiting for the blank line.
        assert_eq!(strict(b"From: <sip:a@b>\nTo"), Err(CpimError::BareLf));
        assert_eq!(strict(b"From: <sip:a@b>\r"), Err(CpimError::Incomplete));
        for bad in [
            &b"Content-Type: text/plain\n\r\nbody"[..],
            b"Content-Type: text/plain\r\n\nbody",
            b"Content-Type: text/plain\r\n x\n\r\n",
        ] {
            assert_eq!(
                parse_encapsulated_with(bad, LineEnds::CrlfOnly),
                Err(CpimError::BareLf),
                "{bad:?}"
            );
            assert!(parse_encapsulated(bad).is_ok(), "lenient reads {bad:?}");
        }
        assert_eq!(CpimError::BareLf.to_string(), "bare LF in CPIM headers");
    }

    #[test]
    fn encapsulated() {
        assert_eq!(
            parse_encapsulated(b"Content-Type: text/plain;charset=UTF-8\r\n\r\n").unwrap(),
            ("text/plain;charset=UTF-8", &b""[..])
        );
        assert_eq!(
            parse_encapsulated(b"Content-Type: text/plain\r\n"),
            Err(CpimError::Incomplete)
        );
        assert_eq!(
            parse_encapsulated(b"Content-ID: <x>\r\n\r\nbody"),
            Err(CpimError::MissingContentType)
        );
    }
}
