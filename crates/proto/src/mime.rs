//! MIME header blocks (RFC 2045/5322 style) shared by the multipart parser and the CPIM
//! encapsulated part, plus header sanitising for composers.
//!
//! Zero-copy: header names and values borrow from the input. A folded value (continuation line
//! starting with SP/HTAB) is returned as one slice that still contains its line break; values are
//! trimmed of surrounding whitespace. Line ends are CRLF; a bare LF is tolerated (some SIP stacks
//! and hand-written test bodies use it), a CR not followed by LF is refused.
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
}

/// The next line of `input`: its content without CRLF/LF and the number of bytes including the
/// line end. `None` when no LF has arrived yet.
pub(crate) fn next_line(input: &[u8]) -> Option<(&[u8], usize)> {
    let lf = input.iter().position(|&b| b == b'\n')?;
    let line = input.get(..lf)?;
    Some((line.strip_suffix(b"\r").unwrap_or(line), lf + 1))
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
pub(crate) fn parse_headers(
    input: &[u8],
    complete: bool,
) -> Result<(Headers<'_>, usize), HeaderBlockError> {
    let mut pending: Vec<Pending> = Vec::new();
    let mut pos = 0usize;
    let consumed = loop {
        let rest = input.get(pos..).unwrap_or_default();
        let (line, n) = match next_line(rest) {
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
    fn sanitizers() {
        assert_eq!(sanitize_value("a\r\nB: c"), "a  B: c");
        assert_eq!(sanitize_name("X-A b:\r\n"), "X-Ab");
    }
}
