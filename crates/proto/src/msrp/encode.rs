//! Writing MSRP messages into a caller's buffer.
//!
//! Values are written as given, except that control characters other than HTAB (CR and LF
//! above all) are written as a space: whatever a caller passes, the output cannot break the
//! framing or smuggle a header. Transaction ids are written as given (make them with
//! [`new_transaction_id`]).
use super::{ByteRange, Continuation, RequestHead, ResponseHead};

fn push_clean(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().map(|b| {
        if b != b'\t' && (b < 0x20 || b == 0x7f) {
            b' '
        } else {
            b
        }
    }));
}

fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    push_clean(out, name);
    out.extend_from_slice(b": ");
    push_clean(out, value);
    out.extend_from_slice(b"\r\n");
}

fn is_mime_header(name: &str) -> bool {
    name.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("content-"))
}

/// RFC 4975 `quoted-string`: `"` and `\` escaped with a backslash.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// Writes a request's start line and headers: To-Path, From-Path, Message-ID, Byte-Range,
/// Success-Report, Failure-Report, Status, Use-Nickname (quoted), the other headers that are
/// not `Content-*` in order; then the `Content-*` ones in order; then, if `content_type` is
/// `Some`, `Content-Type: x` and the blank line that starts the body. With `content_type: None`
/// nothing follows: write the end-line ([`end_line`] with `had_body: false`) next.
pub fn request_head(h: &RequestHead, out: &mut Vec<u8>) {
    out.extend_from_slice(b"MSRP ");
    push_clean(out, &h.transaction_id);
    out.push(b' ');
    push_clean(out, h.method.as_str());
    out.extend_from_slice(b"\r\n");
    header(out, "To-Path", &h.to_path.join(" "));
    header(out, "From-Path", &h.from_path.join(" "));
    if let Some(id) = &h.message_id {
        header(out, "Message-ID", id);
    }
    if let Some(r) = &h.byte_range {
        header(out, "Byte-Range", &r.to_string());
    }
    if let Some(s) = h.success_report {
        header(out, "Success-Report", if s { "yes" } else { "no" });
    }
    if let Some(f) = h.failure_report {
        header(out, "Failure-Report", f.as_str());
    }
    if let Some(s) = &h.status {
        let mut v = format!("{:03} {:03}", s.namespace, s.code);
        if let Some(c) = &s.comment {
            v.push(' ');
            v.push_str(c);
        }
        header(out, "Status", &v);
    }
    if let Some(n) = &h.use_nickname {
        header(out, "Use-Nickname", &quote(n));
    }
    for (n, v) in h.other_headers.iter().filter(|(n, _)| !is_mime_header(n)) {
        header(out, n, v);
    }
    for (n, v) in h.other_headers.iter().filter(|(n, _)| is_mime_header(n)) {
        header(out, n, v);
    }
    if let Some(ct) = &h.content_type {
        header(out, "Content-Type", ct);
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes the head of a SEND as [`request_head`] writes one with only To-Path, From-Path,
/// Message-ID, Byte-Range and (when `content_type` is `Some`) Content-Type, without building a
/// [`RequestHead`]: a relay writes one per recipient of every chunk it forwards, and this spares
/// the copies of paths and ids that building one takes.
pub fn send_head(
    transaction_id: &str,
    to_path: &[String],
    from_path: &str,
    message_id: &str,
    range: &ByteRange,
    content_type: Option<&str>,
    out: &mut Vec<u8>,
) {
    use std::io::Write;
    out.extend_from_slice(b"MSRP ");
    push_clean(out, transaction_id);
    out.extend_from_slice(b" SEND\r\nTo-Path: ");
    for (i, uri) in to_path.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        push_clean(out, uri);
    }
    out.extend_from_slice(b"\r\n");
    header(out, "From-Path", from_path);
    header(out, "Message-ID", message_id);
    // Digits, `-`, `/` and `*` only; writing into a Vec cannot fail.
    let _ = write!(out, "Byte-Range: {range}\r\n");
    if let Some(ct) = content_type {
        header(out, "Content-Type", ct);
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes the end-line: `"\r\n-------tid$\r\n"` when the request had a body (the CRLF that
/// closes the data), else `"-------tid$\r\n"`.
pub fn end_line(transaction_id: &str, c: Continuation, had_body: bool, out: &mut Vec<u8>) {
    if had_body {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"-------");
    push_clean(out, transaction_id);
    out.push(c.as_byte());
    out.extend_from_slice(b"\r\n");
}

/// Writes a whole response: `"MSRP tid 200 OK\r\nTo-Path: ..\r\nFrom-Path: ..\r\n-------tid$\r\n"`.
/// `comment: None` writes no comment (pass `Some(status_comment(code))` for the usual one).
pub fn response(
    transaction_id: &str,
    status: u16,
    comment: Option<&str>,
    to_path: &str,
    from_path: &str,
    out: &mut Vec<u8>,
) {
    response_start(transaction_id, status, comment, out);
    header(out, "To-Path", to_path);
    header(out, "From-Path", from_path);
    end_line(transaction_id, Continuation::End, false, out);
}

fn response_start(transaction_id: &str, status: u16, comment: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"MSRP ");
    push_clean(out, transaction_id);
    out.extend_from_slice(format!(" {:03}", status % 1000).as_bytes());
    if let Some(c) = comment.filter(|c| !c.is_empty()) {
        out.push(b' ');
        push_clean(out, c);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a whole response from a [`ResponseHead`] (other headers after the paths), end-line
/// included.
pub fn response_head(h: &ResponseHead, out: &mut Vec<u8>) {
    response_start(&h.transaction_id, h.status, h.comment.as_deref(), out);
    header(out, "To-Path", &h.to_path.join(" "));
    header(out, "From-Path", &h.from_path.join(" "));
    for (n, v) in &h.other_headers {
        header(out, n, v);
    }
    end_line(&h.transaction_id, Continuation::End, false, out);
}

fn hex(random: &[u8; 12]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(24);
    for &b in random {
        for nibble in [b >> 4, b & 0x0f] {
            s.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    s
}

/// A transaction id: the 96 random bits as 24 lower-case hex digits (an `ident`; RFC 4975 §7.1
/// asks for at least 64 bits of randomness).
pub fn new_transaction_id(random: &[u8; 12]) -> String {
    hex(random)
}

/// A Message-ID: the 96 random bits as 24 lower-case hex digits (an `ident`).
pub fn new_message_id(random: &[u8; 12]) -> String {
    hex(random)
}

#[cfg(test)]
mod tests {
    use super::super::Method;
    use super::*;

    /// `send_head` writes exactly what `request_head` writes for the same SEND, control
    /// characters in the values included (they become spaces either way).
    #[test]
    fn send_head_matches_request_head() {
        for (to, ct, range) in [
            (
                vec!["msrp://a.example:1/x;tcp".to_string()],
                Some("message/cpim"),
                ByteRange {
                    start: 1,
                    end: Some(1024),
                    total: Some(1024),
                },
            ),
            (
                vec![
                    "msrp://r.example:2/r;tcp".to_string(),
                    "msrp://b.example:3/y\r\nEvil: 1;tcp".to_string(),
                ],
                None,
                ByteRange {
                    start: 65537,
                    end: None,
                    total: None,
                },
            ),
        ] {
            let mut h = RequestHead::new(
                "0123456789abcdef01234567",
                Method::Send,
                to.clone(),
                vec!["msrp://relay.example:2855/s;tcp".into()],
            );
            h.message_id = Some("m\n1".into());
            h.byte_range = Some(range);
            h.content_type = ct.map(str::to_string);
            let mut want = Vec::new();
            request_head(&h, &mut want);
            let mut got = Vec::new();
            send_head(
                "0123456789abcdef01234567",
                &to,
                "msrp://relay.example:2855/s;tcp",
                "m\n1",
                &range,
                ct,
                &mut got,
            );
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
        }
    }
}
