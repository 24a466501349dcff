//! Whole SIP messages (RFC 3261 §7): the start line, header lines (folded continuations, compact
//! names), the body cut at Content-Length; composing; and framing messages on a stream transport by
//! Content-Length (§18.3), with the head and body sizes capped. Header *values* are parsed by the
//! other modules of `sip`.
use std::fmt;

/// Largest head (start line and headers) a [`StreamDecoder`] buffers before it declares the
/// framing lost: a peer that never sends the blank line cannot grow the buffer without bound.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest Content-Length a [`StreamDecoder`] accepts.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why bytes are not a SIP message, or a stream lost its framing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// Nothing but CR and LF.
    Empty,
    /// No blank line (CRLF CRLF) ends the head.
    NoEndOfHead,
    /// The head is not UTF-8.
    HeadNotUtf8,
    /// The first line is neither `METHOD uri SIP/2.0` nor `SIP/2.0 code reason` (code 100..=699).
    BadStartLine(String),
    /// A folded continuation line comes before any header.
    ContinuationFirst,
    /// A header line has no `:`.
    NoColon(String),
    /// A header name is empty or holds a space.
    BadHeaderName(String),
    /// Content-Length is not a decimal number.
    BadContentLength(String),
    /// Content-Length promises more than the message holds (a truncated datagram).
    ShortBody { declared: usize, present: usize },
    /// A stream's head grew past [`MAX_HEAD`] without ending.
    HeadTooLong,
    /// A stream message declares a body over [`MAX_BODY`].
    BodyTooLarge(usize),
    /// A stream message has no Content-Length (mandatory on streams, RFC 3261 §18.3).
    NoContentLength,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Empty => f.write_str("empty message"),
            MessageError::NoEndOfHead => f.write_str("no end of headers"),
            MessageError::HeadNotUtf8 => f.write_str("head is not UTF-8"),
            MessageError::BadStartLine(l) => write!(f, "bad start line {l:?}"),
            MessageError::ContinuationFirst => f.write_str("continuation before any header"),
            MessageError::NoColon(l) => write!(f, "header line without ':': {l:?}"),
            MessageError::BadHeaderName(n) => write!(f, "bad header name {n:?}"),
            MessageError::BadContentLength(v) => write!(f, "bad Content-Length {v:?}"),
            MessageError::ShortBody { declared, present } => {
                write!(f, "Content-Length {declared} but {present} body bytes")
            }
            MessageError::HeadTooLong => f.write_str("SIP head too long"),
            MessageError::BodyTooLarge(n) => write!(f, "SIP body too large ({n} bytes)"),
            MessageError::NoContentLength => f.write_str("no Content-Length on a stream transport"),
        }
    }
}

impl std::error::Error for MessageError {}

/// The start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

/// A parsed SIP message. Header names are kept as written; look-ups are case-insensitive and
/// understand the compact forms (`f`, `t`, `i`, `v`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    pub start: StartLine,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// RFC 3261 §7.3.3 compact forms.
fn long_name(name: &str) -> &str {
    let [c] = name.as_bytes() else { return name };
    match c.to_ascii_lowercase() {
        b'i' => "call-id",
        b'm' => "contact",
        b'e' => "content-encoding",
        b'l' => "content-length",
        b'c' => "content-type",
        b'f' => "from",
        b's' => "subject",
        b'k' => "supported",
        b't' => "to",
        b'v' => "via",
        _ => name,
    }
}

/// Whether two header names name the same header: case-insensitive, compact forms included
/// (`f` is `From`, RFC 3261 §7.3.3).
pub fn same_header_name(a: &str, b: &str) -> bool {
    long_name(a).eq_ignore_ascii_case(long_name(b))
}

/// Splits a header value at commas that are outside quotes and angle brackets (for headers that
/// may carry several values in one line: Via, Record-Route, Route, Contact; RFC 3261 §7.3.1).
pub fn split_values(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value.get(start..).unwrap_or_default().trim());
    out.retain(|v| !v.is_empty());
    out
}

impl SipMessage {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| same_header_name(n, name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order, split at top-level commas.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| same_header_name(n, name))
            .flat_map(|(_, v)| split_values(v))
            .collect()
    }

    /// Every header line `name` as written (for copying Via lines into a response).
    pub fn header_lines(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| same_header_name(n, name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn code(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> &str {
        match &self.start {
            StartLine::Response { reason, .. } => reason,
            StartLine::Request { .. } => "",
        }
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI of a request.
    pub fn uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// `(number, method)` of CSeq.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let v = self.header("CSeq")?;
        let mut it = v.split_whitespace();
        let n = it.next()?.parse().ok()?;
        let m = it.next()?.to_string();
        Some((n, m))
    }

    /// The `branch` parameter of the topmost Via.
    pub fn top_branch(&self) -> Option<&str> {
        let via = *self.header_values("Via").first()?;
        via.split(';').skip(1).find_map(|p| {
            let (n, v) = p.split_once('=')?;
            n.trim().eq_ignore_ascii_case("branch").then(|| v.trim())
        })
    }

    /// The `tag` parameter of a From/To header.
    pub fn tag_of(&self, header: &str) -> Option<String> {
        let v = self.header(header)?;
        super::parse_name_addr(v).ok()?.tag().map(str::to_string)
    }

    /// Parses one whole message (a UDP datagram, or a message the [`StreamDecoder`] framed).
    /// Leading CRLFs (keep-alives, RFC 5626 §4.4.1) are skipped. A Content-Length shorter than
    /// what follows the head cuts the body; a longer one is an error (a truncated datagram);
    /// without one the body is the rest.
    pub fn parse(raw: &[u8]) -> Result<SipMessage, MessageError> {
        let start = raw
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(MessageError::Empty)?;
        let raw = raw.get(start..).unwrap_or_default();
        let head_end = find(raw, b"\r\n\r\n").ok_or(MessageError::NoEndOfHead)?;
        let (head, rest) = raw.split_at(head_end);
        let rest = rest.get(4..).unwrap_or_default();
        let head = std::str::from_utf8(head).map_err(|_| MessageError::HeadNotUtf8)?;
        let mut lines = head.split("\r\n");
        let start = parse_start_line(lines.next().unwrap_or_default())?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // Folded continuation (RFC 3261 §7.3.1): one space stands for the fold.
                let last = headers.last_mut().ok_or(MessageError::ContinuationFirst)?;
                last.1.push(' ');
                last.1.push_str(line.trim());
                continue;
            }
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| MessageError::NoColon(line.to_string()))?;
            let n = n.trim();
            if n.is_empty() || n.contains(' ') {
                return Err(MessageError::BadHeaderName(n.to_string()));
            }
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut m = SipMessage {
            start,
            headers,
            body: Vec::new(),
        };
        let body = match m.header("Content-Length") {
            Some(l) => {
                let declared = parse_length(l)?;
                rest.get(..declared).ok_or(MessageError::ShortBody {
                    declared,
                    present: rest.len(),
                })?
            }
            None => rest,
        };
        m.body = body.to_vec();
        Ok(m)
    }

    /// Serialises: start line, headers in order, `Content-Length` set to the body's length
    /// (replacing any given), blank line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = match &self.start {
            StartLine::Request { method, uri } => format!("{method} {uri} SIP/2.0\r\n"),
            StartLine::Response { code, reason } => format!("SIP/2.0 {code} {reason}\r\n"),
        };
        for (n, v) in &self.headers {
            if same_header_name(n, "Content-Length") {
                continue;
            }
            s.push_str(n);
            s.push_str(": ");
            s.push_str(v);
            s.push_str("\r\n");
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn parse_length(v: &str) -> Result<usize, MessageError> {
    v.trim()
        .parse()
        .map_err(|_| MessageError::BadContentLength(v.to_string()))
}

fn parse_start_line(line: &str) -> Result<StartLine, MessageError> {
    let bad = || MessageError::BadStartLine(line.to_string());
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code
            .parse()
            .ok()
            .filter(|c| (100..700).contains(c))
            .ok_or_else(bad)?;
        return Ok(StartLine::Response {
            code,
            reason: reason.to_string(),
        });
    }
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(uri), Some("SIP/2.0"), None)
            if !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            Ok(StartLine::Request {
                method: method.to_string(),
                uri: uri.to_string(),
            })
        }
        _ => Err(bad()),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Frames SIP messages on a stream transport by Content-Length (RFC 3261 §18.3, mandatory there).
/// Sans-IO: feed it what the socket read, poll it for whole messages. After an error the framing
/// is lost for good (the caller closes the connection); polling again repeats the error.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    /// How far `buf` is known to hold no end of head (so a head fed in small pieces is scanned once).
    scanned: usize,
}

impl StreamDecoder {
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message; `None` until one is complete; an error when the framing is lost
    /// or the framed bytes are not a SIP message.
    pub fn poll(&mut self) -> Option<Result<SipMessage, MessageError>> {
        Some(self.poll_frame()?.and_then(|raw| SipMessage::parse(&raw)))
    }

    /// The bytes of the next whole message as they arrived (head and Content-Length bytes of
    /// body; keep-alive CRLFs before it dropped), not parsed beyond the framing; `None` until one is
    /// complete; an error when the framing is lost.
    pub fn poll_frame(&mut self) -> Option<Result<Vec<u8>, MessageError>> {
        // CRLF keep-alives between messages (RFC 5626 §4.4.1).
        let skip = self
            .buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(self.buf.len());
        if skip > 0 {
            self.buf.drain(..skip);
            self.scanned = 0;
        }
        // Resume the search three bytes back: the end of head may straddle two reads.
        let from = self.scanned.saturating_sub(3);
        let Some(head_end) = find(self.buf.get(from..)?, b"\r\n\r\n").map(|i| i + from) else {
            self.scanned = self.buf.len();
            return (self.buf.len() > MAX_HEAD).then_some(Err(MessageError::HeadTooLong));
        };
        if head_end > MAX_HEAD {
            return Some(Err(MessageError::HeadTooLong));
        }
        let head = String::from_utf8_lossy(self.buf.get(..head_end)?);
        let len = head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| same_header_name(n.trim(), "Content-Length"))
            .map(|(_, v)| parse_length(v));
        let len = match len {
            Some(Ok(l)) if l <= MAX_BODY => l,
            Some(Ok(l)) => return Some(Err(MessageError::BodyTooLarge(l))),
            Some(Err(e)) => return Some(Err(e)),
            None => return Some(Err(MessageError::NoContentLength)),
        };
        let total = head_end + 4 + len;
        if self.buf.len() < total {
            return None;
        }
        let raw: Vec<u8> = self.buf.drain(..total).collect();
        self.scanned = 0;
        Some(Ok(raw))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const OK: &str = "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport=5070, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKdef\r\n\
        f: \"bob\" <sip:anonymous@anonymous.invalid>;tag=1\r\nTo: <sip:lounge@im.example.net>;tag=xyz\r\n\
        Call-ID: c1\r\nCSeq: 1 INVITE\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:p3;lr>\r\n\
        Subject: folded\r\n  line\r\nl: 4\r\n\r\nbodyEXTRA";

    #[test]
    fn parses_a_response_with_compact_and_folded_headers() {
        let m = SipMessage::parse(OK.as_bytes()).unwrap();
        assert_eq!(m.code(), Some(200));
        assert_eq!(m.reason(), "OK");
        assert_eq!(m.top_branch(), Some("z9hG4bKabc"));
        assert_eq!(m.header_values("Via").len(), 2);
        assert_eq!(m.tag_of("From").as_deref(), Some("1"));
        assert_eq!(m.tag_of("To").as_deref(), Some("xyz"));
        assert_eq!(m.cseq(), Some((1, "INVITE".into())));
        assert_eq!(
            m.header_values("Record-Route"),
            vec!["<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3;lr>"]
        );
        assert_eq!(m.header("Subject"), Some("folded line"));
        assert_eq!(m.body, b"body");
    }

    #[test]
    fn requests_and_errors() {
        let r = SipMessage::parse(b"BYE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n").unwrap();
        assert_eq!(r.method(), Some("BYE"));
        assert_eq!(r.uri(), Some("sip:a@b"));
        assert!(matches!(
            SipMessage::parse(b"HTTP/1.1 200 OK\r\n\r\n"),
            Err(MessageError::BadStartLine(_))
        ));
        assert!(matches!(
            SipMessage::parse(b"SIP/2.0 99 Low\r\n\r\n"),
            Err(MessageError::BadStartLine(_))
        ));
        assert_eq!(
            SipMessage::parse(b"SIP/2.0 200 OK\r\nl: 10\r\n\r\nshort"),
            Err(MessageError::ShortBody {
                declared: 10,
                present: 5
            })
        );
        assert_eq!(
            SipMessage::parse(b"SIP/2.0 200 OK\r\n"),
            Err(MessageError::NoEndOfHead)
        );
        assert_eq!(SipMessage::parse(b"\r\n\r\n"), Err(MessageError::Empty));
        assert_eq!(
            SipMessage::parse(b"SIP/2.0 200 OK\r\n folded\r\n\r\n"),
            Err(MessageError::ContinuationFirst)
        );
        assert!(matches!(
            SipMessage::parse(b"SIP/2.0 200 OK\r\nNo colon\r\n\r\n"),
            Err(MessageError::NoColon(_))
        ));
        assert!(matches!(
            SipMessage::parse(b"SIP/2.0 200 OK\r\nBad Name: x\r\n\r\n"),
            Err(MessageError::BadHeaderName(_))
        ));
        assert!(matches!(
            SipMessage::parse(b"SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(MessageError::BadContentLength(_))
        ));
    }

    #[test]
    fn round_trip_sets_content_length() {
        let m = SipMessage {
            start: StartLine::Request {
                method: "INVITE".into(),
                uri: "sip:g@h".into(),
            },
            headers: vec![("Content-Length".into(), "99".into())],
            body: b"abc".to_vec(),
        };
        let b = m.to_bytes();
        assert_eq!(b, b"INVITE sip:g@h SIP/2.0\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(SipMessage::parse(&b).unwrap(), {
            let mut m2 = m.clone();
            m2.headers = vec![("Content-Length".into(), "3".into())];
            m2
        });
    }

    #[test]
    fn stream_framing_in_pieces() {
        let clean = OK.replace("bodyEXTRA", "body");
        let two = format!("{clean}\r\n\r\n{clean}");
        let mut d = StreamDecoder::default();
        let mut got = Vec::new();
        for chunk in two.as_bytes().chunks(7) {
            d.feed(chunk);
            while let Some(m) = d.poll() {
                got.push(m.unwrap());
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].body, b"body");
        assert_eq!(d.buffered(), 0);
        let mut d = StreamDecoder::default();
        d.feed(format!("{clean}\r\n{clean}").as_bytes());
        assert!(d.poll().unwrap().is_ok());
        assert!(d.poll().unwrap().is_ok());
        assert!(d.poll().is_none());
        let mut d = StreamDecoder::default();
        d.feed(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n");
        assert_eq!(d.poll(), Some(Err(MessageError::NoContentLength)));
    }

    #[test]
    fn a_stream_cannot_grow_the_buffer_past_the_caps() {
        // A head that never ends: refused once it passes MAX_HEAD, fed in pieces.
        let mut d = StreamDecoder::default();
        d.feed(b"SIP/2.0 200 OK\r\n");
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut refused = false;
        for _ in 0..(MAX_HEAD / line.len() + 2) {
            d.feed(line);
            match d.poll() {
                None => {}
                Some(e) => {
                    assert_eq!(e, Err(MessageError::HeadTooLong));
                    refused = true;
                    break;
                }
            }
        }
        assert!(refused);
        assert!(d.buffered() <= MAX_HEAD + line.len());
        // A declared body over MAX_BODY is refused before it is buffered.
        let mut d = StreamDecoder::default();
        d.feed(format!("SIP/2.0 200 OK\r\nl: {}\r\n\r\n", MAX_BODY + 1).as_bytes());
        assert_eq!(
            d.poll(),
            Some(Err(MessageError::BodyTooLarge(MAX_BODY + 1)))
        );
        // Exactly MAX_BODY is accepted.
        let mut d = StreamDecoder::default();
        d.feed(format!("SIP/2.0 200 OK\r\nl: {MAX_BODY}\r\n\r\n").as_bytes());
        assert_eq!(d.poll(), None);
        d.feed(&vec![b'x'; MAX_BODY]);
        assert_eq!(d.poll().unwrap().unwrap().body.len(), MAX_BODY);
    }

    #[test]
    fn an_end_of_head_split_across_reads_is_found() {
        let msg = b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n";
        for cut in 0..msg.len() {
            let mut d = StreamDecoder::default();
            d.feed(&msg[..cut]);
            assert_eq!(d.poll(), None, "cut at {cut}");
            d.feed(&msg[cut..]);
            assert_eq!(d.poll().unwrap().unwrap().code(), Some(200), "cut at {cut}");
        }
    }

    #[test]
    fn split_values_respects_quotes_and_brackets() {
        assert_eq!(
            split_values(r#""a, b" <sip:x@y;p=1,2>, <sip:z>"#),
            vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z>"]
        );
    }

    #[test]
    fn compact_names_match_their_long_forms() {
        assert!(same_header_name("f", "From"));
        assert!(same_header_name("CONTENT-length", "l"));
        assert!(!same_header_name("x", "From"));
    }
}
