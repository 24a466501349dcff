//! multipart/mixed bodies (RFC 2046 §5.1.1), which SIP UAs must parse also in responses
//! (RFC 5621 §4.2): the Chat Alias 200 OK carries the assigned alias in a message/cpim part next
//! to the SDP answer.
//!
//! Grammar points that matter: the delimiter is `CRLF "--" boundary`, so the CRLF before it
//! belongs to the delimiter, not to the preceding part; the first delimiter may start the body
//! (no CRLF before it); transport padding (SP/HTAB) may follow a boundary; the close delimiter
//! adds `--`; preamble and epilogue are ignored. Bare LF line ends are tolerated (a delimiter is
//! then `LF "--" boundary`); the parsed bodies are exact slices of the input.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::fmt;

use crate::mime::{self, HeaderBlockError};

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The part's MIME headers in order (values trimmed; a folded value keeps its line break).
    pub headers: Vec<(&'a str, &'a str)>,
    /// The Content-Type header value, if any (RFC 2046 defaults to text/plain; SIP callers decide).
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// Why a multipart body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MultipartError {
    /// The boundary is empty, longer than 70 characters, ends with a space or holds a character
    /// outside RFC 2046 `bchars`.
    BadBoundary,
    /// No `--boundary` line at all.
    MissingDelimiter,
    /// The body ends without `--boundary--`.
    MissingCloseDelimiter,
    /// The first delimiter is the close delimiter: a multipart needs at least one part.
    NoParts,
    /// A part's headers are not UTF-8.
    NotUtf8,
    /// A part's headers contain a control character.
    ControlCharacter,
    /// A part's header line has no `:` or an invalid name.
    MalformedHeader,
    /// When composing with [`try_compose`]: the delimiter occurs inside a body.
    BoundaryInBody,
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MultipartError::BadBoundary => "invalid multipart boundary",
            MultipartError::MissingDelimiter => "no multipart delimiter",
            MultipartError::MissingCloseDelimiter => "missing multipart close delimiter",
            MultipartError::NoParts => "multipart body without parts",
            MultipartError::NotUtf8 => "multipart part headers are not UTF-8",
            MultipartError::ControlCharacter => "control character in multipart part headers",
            MultipartError::MalformedHeader => "malformed multipart part header",
            MultipartError::BoundaryInBody => "multipart boundary occurs in a body part",
        })
    }
}

impl std::error::Error for MultipartError {}

impl From<HeaderBlockError> for MultipartError {
    fn from(e: HeaderBlockError) -> Self {
        match e {
            HeaderBlockError::NotUtf8 => MultipartError::NotUtf8,
            HeaderBlockError::ControlCharacter => MultipartError::ControlCharacter,
            // `Incomplete` cannot happen: parts are parsed as complete slices; `BareLf` neither:
            // part headers are read with bare LFs accepted.
            HeaderBlockError::Malformed
            | HeaderBlockError::Incomplete
            | HeaderBlockError::BareLf => MultipartError::MalformedHeader,
        }
    }
}

/// RFC 2046 `boundary := 0*69<bchars> bcharsnospace`, 1 to 70 characters.
pub fn valid_boundary(boundary: &str) -> bool {
    (1..=70).contains(&boundary.len())
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b))
}

enum Delimiter {
    /// `line_start` is where the delimiter's line break begins (end of the previous part);
    /// `next` is where the following part begins.
    Open {
        line_start: usize,
        next: usize,
    },
    Close {
        line_start: usize,
    },
}

/// Finds the next delimiter line at or after `from`. `dash` is `--boundary`. A match must start a
/// line (or, if `allow_start`, the body) and be followed by `--` (close) or by transport padding
/// and a line end (open); anything else is ordinary content.
fn next_delimiter(body: &[u8], dash: &[u8], from: usize, allow_start: bool) -> Option<Delimiter> {
    if dash.is_empty() {
        return None;
    }
    let mut i = from;
    while let Some(rest) = body.get(i..) {
        let found = rest.windows(dash.len()).position(|w| w == dash)?;
        let at = i + found;
        i = at + 1;
        let line_start = if at == 0 {
            if !allow_start {
                continue;
            }
            0
        } else if body.get(at - 1) == Some(&b'\n') {
            if at >= 2 && body.get(at - 2) == Some(&b'\r') {
                at - 2
            } else {
                at - 1
            }
        } else {
            continue;
        };
        let after = body.get(at + dash.len()..).unwrap_or_default();
        if after.starts_with(b"--") {
            return Some(Delimiter::Close { line_start });
        }
        let pad = after
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let eol = after.get(pad..).unwrap_or_default();
        let eol_len = if eol.starts_with(b"\r\n") {
            2
        } else if eol.starts_with(b"\n") {
            1
        } else {
            continue;
        };
        return Some(Delimiter::Open {
            line_start,
            next: at + dash.len() + pad + eol_len,
        });
    }
    None
}

/// Parses a multipart body with the given boundary (the Content-Type `boundary` parameter,
/// unquoted). Every part's headers are parsed; a part without a blank line is all headers with
/// an empty body (RFC 2046 `body-part := MIME-part-headers [CRLF *OCTET]`).
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    if !valid_boundary(boundary) {
        return Err(MultipartError::BadBoundary);
    }
    let dash = format!("--{boundary}").into_bytes();
    let mut cursor = match next_delimiter(body, &dash, 0, true) {
        None => return Err(MultipartError::MissingDelimiter),
        Some(Delimiter::Close { .. }) => return Err(MultipartError::NoParts),
        Some(Delimiter::Open { next, .. }) => next,
    };
    let mut parts = Vec::new();
    loop {
        let delimiter = next_delimiter(body, &dash, cursor, false)
            .ok_or(MultipartError::MissingCloseDelimiter)?;
        let (line_start, next) = match delimiter {
            Delimiter::Open { line_start, next } => (line_start, Some(next)),
            Delimiter::Close { line_start } => (line_start, None),
        };
        // `--b CRLF --b--` (no CRLF left for an empty part) is read as an empty part.
        let content = body.get(cursor..line_start.max(cursor)).unwrap_or_default();
        parts.push(parse_part(content)?);
        match next {
            Some(n) => cursor = n,
            None => return Ok(parts),
        }
    }
}

fn parse_part(content: &[u8]) -> Result<Part<'_>, MultipartError> {
    let (headers, consumed) = mime::parse_headers(content, true)?;
    let content_type = mime::find(&headers, "Content-Type");
    Ok(Part {
        headers,
        content_type,
        body: content.get(consumed..).unwrap_or_default(),
    })
}

/// One part to compose: its headers (name, value) and its body.
pub type PartSpec<'a> = (&'a [(&'a str, &'a str)], &'a [u8]);

/// Composes `--b CRLF headers CRLF CRLF body CRLF --b … CRLF --b-- CRLF`.
///
/// Total: header names are reduced to field-name characters and control characters in values
/// become spaces (no header injection). The caller must pick a boundary that does not occur in
/// any body — [`choose_boundary`] does — or use [`try_compose`], which checks. With no parts the
/// result is only the close delimiter, which [`parse`] refuses (a multipart needs one part).
pub fn compose(boundary: &str, parts: &[PartSpec<'_>]) -> Vec<u8> {
    let size: usize = parts
        .iter()
        .map(|(_, b)| b.len() + boundary.len() + 64)
        .sum();
    let mut out = Vec::with_capacity(size + boundary.len() + 8);
    for (headers, body) in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in headers.iter() {
            out.extend_from_slice(mime::sanitize_name(n).as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(mime::sanitize_value(v).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

/// Like [`compose`] but refuses: an invalid boundary, a boundary occurring in a body, header names
/// that are not field names, values with control characters, no parts.
pub fn try_compose(boundary: &str, parts: &[PartSpec<'_>]) -> Result<Vec<u8>, MultipartError> {
    if !valid_boundary(boundary) {
        return Err(MultipartError::BadBoundary);
    }
    if parts.is_empty() {
        return Err(MultipartError::NoParts);
    }
    for (headers, body) in parts {
        if contains(body, boundary.as_bytes()) {
            return Err(MultipartError::BoundaryInBody);
        }
        for (n, v) in headers.iter() {
            if !mime::is_field_name(n) {
                return Err(MultipartError::MalformedHeader);
            }
            if v.chars().any(char::is_control) {
                return Err(MultipartError::ControlCharacter);
            }
        }
    }
    Ok(compose(boundary, parts))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Derives a boundary from caller-supplied random bytes (the crate reads no randomness itself)
/// that does not occur anywhere in `parts_bodies`.
///
/// `ca-` + hex of up to 22 random bytes; if that string occurs in a body, `.1`, `.2`, … is
/// appended until it does not. The bodies are finite, so some suffix is always free, and the
/// result stays within 70 characters (3 + 44 + 1 + at most 20 digits). A substring check is
/// stricter than needed (only `CRLF--boundary` matters), which keeps it simple.
pub fn choose_boundary(random: &[u8], parts_bodies: &[&[u8]]) -> String {
    let base = format!("ca-{}", hex(random.get(..22).unwrap_or(random)));
    let free = |b: &str| !parts_bodies.iter().any(|body| contains(body, b.as_bytes()));
    if free(&base) {
        return base;
    }
    let mut n: u64 = 1;
    loop {
        let candidate = format!("{base}.{n}");
        if free(&candidate) {
            return candidate;
        }
        n = n.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// The multipart body of the illustrative 200 OK in README.md ("The sample flow"), with CRLF line ends.
    pub(crate) fn spec_200_ok_body() -> Vec<u8> {
        let text = "--ca7f3a
Content-Type: message/cpim

From: <sip:bookclub@im.example.net>
To: \"bob-2\" <sip:anonymous2@anonymous.invalid>

Content-Type: text/plain;charset=UTF-8


--ca7f3a
Content-Type: application/sdp

v=0
o=- 1 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=message 2855 TCP/MSRP *
a=accept-types:message/cpim
a=accept-wrapped-types:text/plain text/html *
a=path:msrp://192.0.2.10:2855/kx8Qm2Zp0aLw7vR1;tcp
a=setup:passive
a=chatroom:nickname private-messages
--ca7f3a--
";
        text.replace('\n', "\r\n").into_bytes()
    }

    #[test]
    fn spec_example_parses() {
        let body = spec_200_ok_body();
        let parts = parse(&body, "ca7f3a").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type, Some("message/cpim"));
        let cpim = crate::cpim::parse_message(parts[0].body).unwrap();
        assert_eq!(
            cpim.headers.from.as_ref().unwrap().uri,
            "sip:bookclub@im.example.net"
        );
        assert_eq!(cpim.headers.to[0].display_name.as_deref(), Some("bob-2"));
        assert_eq!(cpim.headers.to[0].uri, "sip:anonymous2@anonymous.invalid");
        assert_eq!(cpim.content_type, "text/plain;charset=UTF-8");
        assert!(cpim.body.is_empty());
        assert_eq!(parts[1].content_type, Some("application/sdp"));
        assert!(parts[1].body.starts_with(b"v=0\r\n"));
        assert!(parts[1]
            .body
            .ends_with(b"a=chatroom:nickname private-messages"));
        // Also with bare LF line ends.
        let lf: Vec<u8> = body.iter().copied().filter(|&b| b != b'\r').collect();
        let parts = parse(&lf, "ca7f3a").unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts[1].body.ends_with(b"private-messages"));
    }

    #[test]
    fn preamble_padding_epilogue() {
        let body = b"preamble --b not here\r\n--b \t\r\nContent-Type: text/plain\r\n\r\nx\r\n--bc\r\ny\r\n--b--  \r\nepilogue\r\n--b\r\n";
        let parts = parse(body, "b").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body, b"x\r\n--bc\r\ny");
    }

    #[test]
    fn parts_without_headers_or_body() {
        let parts = parse(b"--b\r\n\r\nbody\r\n--b\r\nContent-Type: a/b\r\n--b--", "b").unwrap();
        assert_eq!(parts[0].headers, vec![]);
        assert_eq!(parts[0].body, b"body");
        assert_eq!(parts[1].headers, vec![("Content-Type", "a/b")]);
        assert_eq!(parts[1].body, b"");
        let parts = parse(b"--b\r\n--b--", "b").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body, b"");
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"--b\r\nx", ""), Err(MultipartError::BadBoundary));
        assert_eq!(
            parse(b"", &"a".repeat(71)),
            Err(MultipartError::BadBoundary)
        );
        assert_eq!(parse(b"", "a "), Err(MultipartError::BadBoundary));
        assert_eq!(parse(b"", "a\r\n"), Err(MultipartError::BadBoundary));
        assert_eq!(
            parse(b"no delimiter", "b"),
            Err(MultipartError::MissingDelimiter)
        );
        assert_eq!(parse(b"--b--\r\n", "b"), Err(MultipartError::NoParts));
        assert_eq!(
            parse(b"--b\r\n\r\nbody\r\n", "b"),
            Err(MultipartError::MissingCloseDelimiter)
        );
        assert_eq!(
            parse(b"--b\r\nno colon\r\n\r\nx\r\n--b--", "b"),
            Err(MultipartError::MalformedHeader)
        );
        assert!(valid_boundary(&"a".repeat(70)));
        assert!(valid_boundary("gc0p4Jq0M2Yt08j34c0p"));
        assert!(valid_boundary("simple boundary"));
    }

    #[test]
    fn compose_round_trip_and_injection() {
        let h1: &[(&str, &str)] = &[
            ("Content-Type", "message/cpim"),
            ("Content-Disposition", "render;handling=optional"),
        ];
        let h2: &[(&str, &str)] = &[("Content-Type", "application/sdp\r\nX-Evil: 1")];
        let out = compose("xyz", &[(h1, b"one\r\n"), (h2, b"two")]);
        let parts = parse(&out, "xyz").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].headers, h1.to_vec());
        assert_eq!(parts[0].body, b"one\r\n");
        assert_eq!(
            parts[1].headers,
            vec![("Content-Type", "application/sdp  X-Evil: 1")]
        );
        assert_eq!(parts[1].body, b"two");
        assert_eq!(
            try_compose("xyz", &[(h2, b"")]),
            Err(MultipartError::ControlCharacter)
        );
        assert_eq!(
            try_compose("xyz", &[(h1, b"--xyz")]),
            Err(MultipartError::BoundaryInBody)
        );
        assert_eq!(try_compose("xyz", &[]), Err(MultipartError::NoParts));
        assert!(try_compose("xyz", &[(h1, b"ok")]).is_ok());
    }

    #[test]
    fn boundary_choice() {
        assert_eq!(choose_boundary(&[0xca, 0x7f], &[b"hello"]), "ca-ca7f");
        assert_eq!(choose_boundary(&[], &[]), "ca-");
        assert_eq!(choose_boundary(&[1], &[b"ca-01", b"ca-01.1"]), "ca-01.2");
        let b = choose_boundary(&[0xff; 64], &[]);
        assert!(valid_boundary(&b) && b.len() == 47);
    }
}
