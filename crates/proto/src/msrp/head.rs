//! "Complete inside": parsing a header block whose terminating line has arrived.
//!
//! The decoder finds the envelope (start line, header lines, blank line or end-line); this
//! module judges the contents. Header names are compared case-insensitively; values are
//! `utf8text` (RFC 4975 §9: HTAB, %x20-7E, UTF-8 non-ASCII), trimmed of surrounding SP/HTAB
//! (RFC 4975 writes exactly one SP after the colon; more is tolerated). The order of headers is
//! not enforced (RFC 4975 puts To-Path and From-Path first; we accept them anywhere), except
//! that Content-Type must be the last header and appear iff a body follows.
use super::uri::{check_uri, is_token_char};
use super::{
    is_ident, ByteRange, Continuation, Method, ReportMode, RequestHead, ResponseHead, Responses,
    Status,
};

/// A start line that passed the framing checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartLine {
    pub tid: String,
    pub kind: StartKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartKind {
    Request(Method),
    /// The comment is checked later (a bad comment does not lose the framing).
    Response {
        status: u16,
        comment: Vec<u8>,
    },
}

/// What ended the header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Terminator {
    /// A blank line: a body follows, up to the end-line.
    Blank,
    /// The end-line itself: no body.
    EndLine(Continuation),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    Request(RequestHead),
    Response(ResponseHead),
}

/// A header block that is wrong while the framing is intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeadError {
    /// `Some(tid)` if a 400 may be sent back (not a response, not a REPORT, not `Failure-Report: no`).
    pub answer_to: Option<String>,
    pub reason: String,
}

/// Checks `"MSRP" SP transact-id SP (method / status-code [SP comment])` (without CRLF).
/// Any failure here means the framing is lost.
pub(crate) fn parse_start_line(line: &[u8]) -> Result<StartLine, String> {
    let rest = line
        .strip_prefix(b"MSRP ")
        .ok_or_else(|| "start line does not begin with \"MSRP \"".to_string())?;
    let sp = rest
        .iter()
        .position(|&b| b == b' ')
        .ok_or_else(|| "start line without method or status".to_string())?;
    let (tid, rest) = rest.split_at(sp);
    let rest = rest.get(1..).unwrap_or_default();
    let tid = std::str::from_utf8(tid)
        .ok()
        .filter(|t| is_ident(t))
        .ok_or_else(|| "bad transaction id in start line".to_string())?
        .to_string();
    let is_status = rest.len() >= 3
        && rest.iter().take(3).all(u8::is_ascii_digit)
        && (rest.len() == 3 || rest.get(3) == Some(&b' '));
    if is_status {
        let status = rest
            .iter()
            .take(3)
            .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
        let comment = rest.get(4..).unwrap_or_default().to_vec();
        return Ok(StartLine {
            tid,
            kind: StartKind::Response { status, comment },
        });
    }
    if !rest.is_empty() && rest.iter().all(u8::is_ascii_uppercase) {
        let token = std::str::from_utf8(rest).unwrap_or_default();
        return Ok(StartLine {
            tid,
            kind: StartKind::Request(Method::from_token(token)),
        });
    }
    Err(format!(
        "transaction {tid}: start line has neither a method nor a status code"
    ))
}

/// `utf8text = *(HTAB / %x20-7E / UTF8-NONASCII)`.
pub(crate) fn utf8text(b: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(b).ok()?;
    if s.chars().any(|c| c != '\t' && (c.is_ascii_control())) {
        return None;
    }
    Some(s)
}

fn split_header(line: &[u8]) -> Result<(&str, &str), String> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| "header line without ':'".to_string())?;
    let (name, value) = line.split_at(colon);
    let value = value.get(1..).unwrap_or_default();
    let name_ok =
        name.first().is_some_and(u8::is_ascii_alphabetic) && name.iter().all(|&b| is_token_char(b));
    if !name_ok {
        return Err("bad header name".to_string());
    }
    let name = std::str::from_utf8(name).map_err(|_| "bad header name".to_string())?;
    let value = utf8text(value).ok_or_else(|| format!("{name}: bad characters in value"))?;
    Ok((name, value.trim_matches([' ', '\t'])))
}

fn parse_path(name: &str, value: &str) -> Result<Vec<String>, String> {
    let uris: Vec<String> = value
        .split([' ', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if uris.is_empty() {
        return Err(format!("{name}: empty"));
    }
    for u in &uris {
        check_uri(u).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(uris)
}

/// The largest Byte-Range value accepted (2^53, 8 PiB): far beyond any message, and small enough
/// that offset arithmetic on it (plus bounded chunk lengths) can never overflow a u64.
pub const MAX_BYTE_RANGE_VALUE: u64 = 1 << 53;

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&v| v <= MAX_BYTE_RANGE_VALUE)
}

fn star_or_u64(s: &str) -> Option<Option<u64>> {
    if s == "*" {
        Some(None)
    } else {
        parse_u64(s).map(Some)
    }
}

pub(crate) fn parse_byte_range(v: &str) -> Option<ByteRange> {
    let (start, rest) = v.split_once('-')?;
    let (end, total) = rest.split_once('/')?;
    let start = parse_u64(start)?;
    let end = star_or_u64(end)?;
    let total = star_or_u64(total)?;
    if start == 0 || total.is_some_and(|t| start > t + 1) {
        return None;
    }
    if let Some(e) = end {
        // `1-0/0` (empty) is the smallest legal range.
        if e < start - 1 {
            return None;
        }
        if total.is_some_and(|t| e > t) {
            return None;
        }
    }
    Some(ByteRange { start, end, total })
}

fn three_digits(s: &str) -> Option<u16> {
    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

pub(crate) fn parse_status(v: &str) -> Option<Status> {
    let (ns, rest) = v.split_once(' ')?;
    let namespace = three_digits(ns)?;
    let (code, comment) = match rest.split_once(' ') {
        Some((c, comment)) => (c, Some(comment)),
        None => (rest, None),
    };
    let code = three_digits(code)?;
    let comment = comment
        .map(|c| c.trim_matches([' ', '\t']))
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Some(Status {
        namespace,
        code,
        comment,
    })
}

/// RFC 4975 `quoted-string` (only `\\` and `\"` escapes); the unquoted value.
pub(crate) fn unquote(v: &str) -> Option<String> {
    let inner = v.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                e @ ('\\' | '"') => out.push(e),
                _ => return None,
            },
            '"' => return None,
            c if c == '\t' || c == ' ' || !c.is_ascii_control() => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

fn media_type_ok(v: &str) -> bool {
    let main = v
        .split(';')
        .next()
        .unwrap_or_default()
        .trim_matches([' ', '\t']);
    match main.split_once('/') {
        Some((t, s)) => {
            !t.is_empty()
                && !s.is_empty()
                && t.bytes().all(is_token_char)
                && s.bytes().all(is_token_char)
        }
        None => false,
    }
}

fn set_once<T>(slot: &mut Option<T>, v: T, name: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{name}: repeated"));
    }
    *slot = Some(v);
    Ok(())
}

/// Whether the (possibly broken) header lines contain `Failure-Report: no`.
fn says_failure_report_no(lines: &[&[u8]]) -> bool {
    lines.iter().any(|l| {
        split_header(l).is_ok_and(|(n, v)| {
            n.eq_ignore_ascii_case("failure-report") && v.eq_ignore_ascii_case("no")
        })
    })
}

/// Parses the header lines (without their CRLF, without the start line and the terminator).
///
/// `lean`: a response is checked exactly as otherwise, but comes back with only its
/// transaction id and status code (no comment, empty paths, no other headers), for a reader
/// that matches responses and needs nothing else (it then allocates none of the rest).
pub(crate) fn parse_head(
    start: StartLine,
    lines: &[&[u8]],
    term: Terminator,
    lean: bool,
) -> Result<Parsed, HeadError> {
    let StartLine { tid, kind } = start;
    match kind {
        StartKind::Request(method) => match parse_request(method.clone(), lines, term) {
            Ok(mut h) => {
                h.transaction_id = tid;
                Ok(Parsed::Request(h))
            }
            Err(reason) => {
                // Only a broken request needs to know whether it may be answered.
                let said = says_failure_report_no(lines).then_some(ReportMode::No);
                let answerable = Responses::for_request(&method, said).allows(400);
                Err(HeadError {
                    reason: format!("transaction {tid}: {reason}"),
                    answer_to: answerable.then_some(tid),
                })
            }
        },
        StartKind::Response { status, comment } => {
            match parse_response(status, &comment, lines, term, lean) {
                Ok(mut r) => {
                    r.transaction_id = tid;
                    Ok(Parsed::Response(r))
                }
                Err(reason) => Err(HeadError {
                    answer_to: None,
                    reason: format!("response to transaction {tid}: {reason}"),
                }),
            }
        }
    }
}

/// The request's head with an empty transaction id (the caller moves the start line's in).
fn parse_request(method: Method, lines: &[&[u8]], term: Terminator) -> Result<RequestHead, String> {
    let mut to_path = None;
    let mut from_path = None;
    let mut message_id = None;
    let mut byte_range = None;
    let mut success_report = None;
    let mut failure_report = None;
    let mut status = None;
    let mut use_nickname = None;
    let mut content_type = None;
    let mut other_headers = Vec::new();
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        let (name, value) = split_header(line)?;
        let lname = name.to_ascii_lowercase();
        match lname.as_str() {
            "to-path" => set_once(&mut to_path, parse_path(name, value)?, name)?,
            "from-path" => set_once(&mut from_path, parse_path(name, value)?, name)?,
            "message-id" => {
                if !is_ident(value) {
                    return Err(format!("{name}: not an ident"));
                }
                set_once(&mut message_id, value.to_string(), name)?;
            }
            "byte-range" => {
                let r = parse_byte_range(value).ok_or_else(|| format!("{name}: malformed"))?;
                set_once(&mut byte_range, r, name)?;
            }
            "success-report" => {
                let v = if value.eq_ignore_ascii_case("yes") {
                    true
                } else if value.eq_ignore_ascii_case("no") {
                    false
                } else {
                    return Err(format!("{name}: neither yes nor no"));
                };
                set_once(&mut success_report, v, name)?;
            }
            "failure-report" => {
                let v = if value.eq_ignore_ascii_case("yes") {
                    ReportMode::Yes
                } else if value.eq_ignore_ascii_case("no") {
                    ReportMode::No
                } else if value.eq_ignore_ascii_case("partial") {
                    ReportMode::Partial
                } else {
                    return Err(format!("{name}: not yes, no or partial"));
                };
                set_once(&mut failure_report, v, name)?;
            }
            "status" => {
                let s = parse_status(value).ok_or_else(|| format!("{name}: malformed"))?;
                set_once(&mut status, s, name)?;
            }
            "use-nickname" => match unquote(value) {
                Some(n) => set_once(&mut use_nickname, n, name)?,
                None => other_headers.push((name.to_string(), value.to_string())),
            },
            "content-type" => {
                if i != last {
                    return Err("Content-Type is not the last header".to_string());
                }
                if !media_type_ok(value) {
                    return Err(format!("{name}: not a media type"));
                }
                content_type = Some(value.to_string());
            }
            _ => other_headers.push((name.to_string(), value.to_string())),
        }
    }
    let to_path = to_path.ok_or_else(|| "no To-Path".to_string())?;
    let from_path = from_path.ok_or_else(|| "no From-Path".to_string())?;
    match (term, content_type.is_some()) {
        (Terminator::Blank, false) => return Err("body without Content-Type".to_string()),
        (Terminator::EndLine(_), true) => return Err("Content-Type without a body".to_string()),
        _ => {}
    }
    Ok(RequestHead {
        transaction_id: String::new(),
        method,
        to_path,
        from_path,
        message_id,
        byte_range,
        success_report,
        failure_report,
        status,
        use_nickname,
        content_type,
        other_headers,
    })
}

/// Whether every URI of a To-Path or From-Path value passes [`check_uri`] (as [`parse_path`]
/// checks them, without keeping them).
fn check_path(name: &str, value: &str) -> Result<(), String> {
    let mut any = false;
    for u in value.split([' ', '\t']).filter(|s| !s.is_empty()) {
        check_uri(u).map_err(|e| format!("{name}: {e}"))?;
        any = true;
    }
    if !any {
        return Err(format!("{name}: empty"));
    }
    Ok(())
}

/// The response's head with an empty transaction id (the caller moves the start line's in).
/// `lean`: see [`parse_head`]; the same checks in the same order either way.
fn parse_response(
    status: u16,
    comment: &[u8],
    lines: &[&[u8]],
    term: Terminator,
    lean: bool,
) -> Result<ResponseHead, String> {
    let comment = utf8text(comment).ok_or_else(|| "bad characters in comment".to_string())?;
    let comment = Some(comment.trim_matches([' ', '\t']))
        .filter(|c| !lean && !c.is_empty())
        .map(str::to_string);
    let mut to_path = None;
    let mut from_path = None;
    let mut other_headers = Vec::new();
    for line in lines {
        let (name, value) = split_header(line)?;
        if name.eq_ignore_ascii_case("to-path") {
            let uris = if lean {
                check_path(name, value).map(|()| Vec::new())?
            } else {
                parse_path(name, value)?
            };
            set_once(&mut to_path, uris, name)?;
        } else if name.eq_ignore_ascii_case("from-path") {
            let uris = if lean {
                check_path(name, value).map(|()| Vec::new())?
            } else {
                parse_path(name, value)?
            };
            set_once(&mut from_path, uris, name)?;
        } else if name.eq_ignore_ascii_case("content-type") {
            return Err("a response has no body (Content-Type)".to_string());
        } else if !lean {
            other_headers.push((name.to_string(), value.to_string()));
        }
    }
    if term == Terminator::Blank {
        return Err("a response has no body".to_string());
    }
    Ok(ResponseHead {
        transaction_id: String::new(),
        status,
        comment,
        to_path: to_path.ok_or_else(|| "no To-Path".to_string())?,
        from_path: from_path.ok_or_else(|| "no From-Path".to_string())?,
        other_headers,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn start_lines() {
        let s = parse_start_line(b"MSRP a786hjs2 SEND").unwrap();
        assert_eq!(s.tid, "a786hjs2");
        assert_eq!(s.kind, StartKind::Request(Method::Send));
        let s = parse_start_line(b"MSRP a786hjs2 200 OK").unwrap();
        assert_eq!(
            s.kind,
            StartKind::Response {
                status: 200,
                comment: b"OK".to_vec()
            }
        );
        let s = parse_start_line(b"MSRP a786hjs2 481").unwrap();
        assert!(matches!(s.kind, StartKind::Response { status: 481, .. }));
        let s = parse_start_line(b"MSRP d93kswow NICKNAME").unwrap();
        assert_eq!(s.kind, StartKind::Request(Method::Nickname));
        let s = parse_start_line(b"MSRP d93kswow AUTH").unwrap();
        assert_eq!(s.kind, StartKind::Request(Method::Other("AUTH".into())));
        for bad in [
            &b"MSRP abc SEND"[..], // tid too short
            b"MSRP a786hjs2 send",
            b"MSRP a786hjs2 ",
            b"MSRP a786hjs2",
            b"MSRP .786hjs2 SEND",
            b"MSRP a786hjs2 20",
            b"MSRP a786hjs2 2000",
            b"MSRP a786hjs2 SEND ",
            b"msrp a786hjs2 SEND",
            b"HTTP/1.1 200 OK",
            b"MSRP 0123456789012345678901234567890123 SEND",
        ] {
            assert!(
                parse_start_line(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn values() {
        assert_eq!(
            parse_byte_range("1-*/*"),
            Some(ByteRange {
                start: 1,
                end: None,
                total: None
            })
        );
        assert_eq!(
            parse_byte_range("1-0/0"),
            Some(ByteRange {
                start: 1,
                end: Some(0),
                total: Some(0)
            })
        );
        for bad in [
            "0-1/1",
            "5-3/9",
            "1-5/4",
            "1-/5",
            "-1/1",
            "1-2",
            "a-1/1",
            "1-2/3 ",
            "1-99999999999999999999/*",
        ] {
            assert_eq!(parse_byte_range(bad), None, "{bad}");
        }
        assert_eq!(
            parse_status("000 200 OK"),
            Some(Status {
                namespace: 0,
                code: 200,
                comment: Some("OK".into())
            })
        );
        assert_eq!(parse_status("000 413").map(|s| s.code), Some(413));
        assert_eq!(parse_status("00 200"), None);
        assert_eq!(parse_status("000 20x"), None);
        assert_eq!(
            unquote(r#""Alice the great""#).as_deref(),
            Some("Alice the great")
        );
        assert_eq!(unquote(r#""""#).as_deref(), Some(""));
        assert_eq!(unquote(r#""a\"b\\c""#).as_deref(), Some("a\"b\\c"));
        assert_eq!(unquote(r#""a\nb""#), None);
        assert_eq!(unquote(r#""a"b""#), None);
        assert_eq!(unquote("Alice"), None);
        assert_eq!(unquote("\""), None);
    }
}

#[cfg(test)]
mod byte_range_bounds {
    use super::*;

    #[test]
    fn huge_or_inconsistent_ranges_are_refused() {
        assert!(parse_byte_range("18446744073709551615-*/*").is_none());
        assert!(parse_byte_range(&format!("{}-*/*", MAX_BYTE_RANGE_VALUE + 1)).is_none());
        assert!(parse_byte_range(&format!("{MAX_BYTE_RANGE_VALUE}-*/*")).is_some());
        assert!(
            parse_byte_range("12-*/10").is_none(),
            "start beyond the total"
        );
        assert!(
            parse_byte_range("11-10/10").is_some(),
            "empty range right after the end is legal"
        );
        assert!(parse_byte_range("1-0/0").is_some());
    }
}
