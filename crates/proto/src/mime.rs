//! MIME header blocks (RFC 2045/5322 style) shared by the multipart parser and the CPIM
//! encapsulated part, plus header sanitising for composers.
//!
//! Zero-copy: header names and values borrow from the input. A folded value (continuation line
//! starting with SP/HTAB) is returned as one slice that still contains its line break; values are
//! trimmed of surrounding whitespace. Line ends are CRLF; a bare LF is tolerated (some SIP stacks
//! and hand-written test bodies use it) unless the caller asks for [`LineEnds::CrlfOnly`]; a CR
//! not followed by LF is refused.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

/// Why a header block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderBlockError {
    /// No blank line yet (only when the input may still grow).
    Incomplete,
    NotUtf8,
    ControlCharacter,
    /// A line without `:`, an empty or invalid field name, or a continuation line first.
    Malformed,
    /// A line ended by LF without CR, under [`LineEnds::CrlfOnly`].
    BareLf,
}

/// Which line ends a header block may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnds {
    /// CRLF only (RFC 5322 §2.1, RFC 3862 §3.1): a bare LF is an error. A forwarder that reads
    /// headers on behalf of its recipients needs this: were it to end a line at a bare LF, a
    /// recipient that does not would read a different header block than the one checked.
    CrlfOnly,
    /// CRLF or a bare LF, for readers that only display what they read.
    AcceptBareLf,
}

/// The next line of `input`: its content without CRLF/LF and the number of bytes including the
/// line end. `Ok(None)` when no LF has arrived yet; [`HeaderBlockError::BareLf`] for a line ended
/// by LF alone under [`LineEnds::CrlfOnly`].
pub(crate) fn next_line(
    input: &[u8],
    ends: LineEnds,
) -> Result<Option<(&[u8], usize)>, HeaderBlockError> {
    let Some(lf) = input.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let line = input.get(..lf).unwrap_or_default();
    match line.strip_suffix(b"\r") {
        Some(content) => Ok(Some((content, lf + 1))),
        None if ends == LineEnds::CrlfOnly => Err(HeaderBlockError::BareLf),
        None => Ok(Some((line, lf + 1))),
    }
}

/// RFC 5322 field-name: printable ASCII except `:`.
pub(crate) fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// Borrowed headers, in order.
pub(crate) type Headers<'a> = Vec<(&'a str, &'a str)>;

/// A header name and value as offsets into the block.
struct Pending {
    name: (usize, usize),
    value: (usize, usize),
}

/// Parses header lines until a blank line. Returns the headers and the number of bytes consumed
/// including the blank line.
///
/// With `complete`, the input is a whole bounded part: running out of input ends the block (the
/// last line may lack its line end) instead of being [`HeaderBlockError::Incomplete`].
/// Bare LF line ends are accepted; see [`parse_headers_with`].
pub(crate) fn parse_headers(
    input: &[u8],
    complete: bool,
) -> Result<(Headers<'_>, usize), HeaderBlockError> {
    parse_headers_with(input, complete, LineEnds::AcceptBareLf)
}

/// [`parse_headers`] with the line ends the caller accepts.
pub(crate) fn parse_headers_with(
    input: &[u8],
    complete: bool,
    ends: LineEnds,
) -> Result<(Headers<'_>, usize), HeaderBlockError> {
    let mut pending: Vec<Pending> = Vec::new();
    let mut pos = 0usize;
    let consumed = loop {
        let rest = input.get(pos..).unwrap_or_default();
        let (line, n) = match next_line(rest, ends)? {
            Some(l) => l,
            None if complete && rest.is_empty() => break pos,
            None if complete => (rest, rest.len()),
            None => return Err(HeaderBlockError::Incomplete),
        };
        let start = pos;
        pos += n;
        if line.is_empty() {
            break pos;
        }
        if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(HeaderBlockError::ControlCharacter);
        }
        let end = start + line.len();
        if matches!(line.first(), Some(b' ' | b'\t')) {
            let last = pending.last_mut().ok_or(HeaderBlockError::Malformed)?;
            last.value.1 = end;
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HeaderBlockError::Malformed)?;
        pending.push(Pending {
            name: (start, start + colon),
            value: (start + colon + 1, end),
        });
    };
    let text = |(a, b): (usize, usize)| -> Result<&str, HeaderBlockError> {
        let bytes = input.get(a..b).ok_or(HeaderBlockError::Malformed)?;
        std::str::from_utf8(bytes).map_err(|_| HeaderBlockError::NotUtf8)
    };
    let mut headers = Vec::with_capacity(pending.len());
    for p in pending {
        let name = text(p.name)?;
        if !is_field_name(name) {
            return Err(HeaderBlockError::Malformed);
        }
        let value = text(p.value)?.trim_matches([' ', '\t', '\r', '\n']);
        headers.push((name, value));
    }
    Ok((headers, consumed))
}

/// The first header called `name` (ASCII case-insensitive).
pub(crate) fn find<'a>(headers: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// A header name reduced to field-name characters (anything else dropped), for total composers.
pub(crate) fn sanitize_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic() && *c != ':')
        .collect()
}

/// A header value with every control character (CR and LF included) replaced by a space, so it
/// stays on its line.
pub(crate) fn sanitize_value(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn block_with_folding() {
        let (h, n) = parse_headers(b"A: 1\r\nB:\r\n  two\r\n\r\nbody", false).unwrap();
        assert_eq!(h, vec![("A", "1"), ("B", "two")]);
        assert_eq!(n, 19);
        let (h, _) = parse_headers(b"A: x\r\n y\r\n\r\n", false).unwrap();
        assert_eq!(h, vec![("A", "x\r\n y")]);
    }

    #[test]
    fn incomplete_and_complete() {
        assert_eq!(
            parse_headers(b"A: 1\r\nB: 2", false),
            Err(HeaderBlockError::Incomplete)
        );
        assert_eq!(
            parse_headers(b"A: 1\r\nB: 2", true).unwrap(),
            (vec![("A", "1"), ("B", "2")], 10)
        );
        assert_eq!(parse_headers(b"", true).unwrap(), (vec![], 0));
        assert_eq!(parse_headers(b"\n", false).unwrap(), (vec![], 1));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse_headers(b" A: 1\r\n\r\n", false),
            Err(HeaderBlockError::Malformed)
        );
        assert_eq!(
            parse_headers(b"A 1\r\n\r\n", false),
            Err(HeaderBlockError::Malformed)
        );
        assert_eq!(
            parse_headers(b": 1\r\n\r\n", false),
            Err(HeaderBlockError::Malformed)
        );
        assert_eq!(
            parse_headers(b"A: 1\r2\r\n\r\n", false),
            Err(HeaderBlockError::ControlCharacter)
        );
        assert_eq!(
            parse_headers(b"A: \xff\r\n\r\n", false),
            Err(HeaderBlockError::NotUtf8)
        );
    }

    #[test]
    fn crlf_only_refuses_a_bare_lf_anywhere_in_the_block() {
        fn strict(b: &[u8]) -> Result<(Headers<'_>, usize), HeaderBlockError> {
            parse_headers_with(b, false, LineEnds::CrlfOnly)
        }
        assert_eq!(
            strict(b"A: 1\r\nB: 2\r\n\r\nbody\n").unwrap(),
            (vec![("A", "1"), ("B", "2")], 14)
        );
        for bad in [
            &b"A: 1\nB: 2\r\n\r\n"[..],
            b"A: 1\r\nB: 2\n\r\n",
            b"A: 1\r\nB: 2\r\n\n",
            b"A: 1\r\n two\n\r\n",
            b"\n",
        ] {
            assert_eq!(strict(bad), Err(HeaderBlockError::BareLf), "{bad:?}");
            assert!(parse_headers(bad, false).is_ok(), "lenient reads {bad:?}");
        }
        // A CR whose LF has not arrived yet is not an error: the line is incomplete.
        assert_eq!(strict(b"A: 1\r"), Err(HeaderBlockError::Incomplete));
        assert_eq!(
            parse_headers_with(b"A: 1\n", true, LineEnds::CrlfOnly),
            Err(HeaderBlockError::BareLf)
        );
    }

    #[test]
    fn sanitizers() {
        assert_eq!(sanitize_value("a\r\nB: c"), "a  B: c");
        assert_eq!(sanitize_name("X-A b:\r\n"), "X-Ab");
    }
}
