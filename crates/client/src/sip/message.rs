//! SIP messages (RFC 3261 §7): parsing a datagram or a stream, header look-ups with compact
//! forms, and composing. Header *values* are parsed with `chat_alias_proto::sip`.

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

fn same_header(a: &str, b: &str) -> bool {
    long_name(a).eq_ignore_ascii_case(long_name(b))
}

/// Splits a header value at commas that are outside quotes and angle brackets (for headers that
/// may carry several values in one line: Via, Record-Route, Route, Contact).
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
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|v| !v.is_empty());
    out
}

impl SipMessage {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| same_header(n, name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order, split at top-level commas.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| same_header(n, name))
            .flat_map(|(_, v)| split_values(v))
            .collect()
    }

    /// Every header line `name` as written (for copying Via lines into a response).
    pub fn header_lines(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| same_header(n, name))
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
        chat_alias_proto::sip::parse_name_addr(v)
            .ok()?
            .tag()
            .map(str::to_string)
    }

    /// Parses one whole message (a UDP datagram, or a message the [`StreamDecoder`] framed).
    /// A Content-Length shorter than what follows the head cuts the body; a longer one is an
    /// error (a truncated datagram).
    pub fn parse(raw: &[u8]) -> Result<SipMessage, String> {
        // Leading CRLFs are keep-alives (RFC 5626) or padding.
        let start = raw
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or("empty message")?;
        let raw = &raw[start..];
        let head_end = find(raw, b"\r\n\r\n").ok_or("no end of headers")?;
        let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let first = lines.next().ok_or("no start line")?;
        let start = parse_start_line(first)?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // Folded continuation (RFC 3261 §7.3.1).
                let last = headers.last_mut().ok_or("continuation before any header")?;
                last.1.push(' ');
                last.1.push_str(line.trim());
                continue;
            }
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| format!("header line without ':': {line:?}"))?;
            let n = n.trim();
            if n.is_empty() || n.contains(' ') {
                return Err(format!("bad header name {n:?}"));
            }
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut m = SipMessage {
            start,
            headers,
            body: Vec::new(),
        };
        let rest = &raw[head_end + 4..];
        let body = match m.header("Content-Length") {
            Some(l) => {
                let l: usize = l
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad Content-Length {l:?}"))?;
                rest.get(..l)
                    .ok_or_else(|| format!("Content-Length {l} but {} body bytes", rest.len()))?
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
            if same_header(n, "Content-Length") {
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

fn parse_start_line(line: &str) -> Result<StartLine, String> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code
            .parse()
            .ok()
            .filter(|c| (100..700).contains(c))
            .ok_or_else(|| format!("bad status line {line:?}"))?;
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
        _ => Err(format!("bad start line {line:?}")),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Frames SIP messages on a stream transport by Content-Length (RFC 3261 §18.3; mandatory there).
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: Vec<u8>,
}

/// Largest head accepted on a stream before framing is declared lost.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted on a stream.
const MAX_BODY: usize = 1024 * 1024;

impl StreamDecoder {
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message; `None` until one is complete; an error when framing is lost (close).
    pub fn poll(&mut self) -> Option<Result<SipMessage, String>> {
        // Skip CRLF keep-alives between messages.
        let skip = self
            .buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(self.buf.len());
        self.buf.drain(..skip);
        let Some(head_end) = find(&self.buf, b"\r\n\r\n") else {
            return (self.buf.len() > MAX_HEAD).then(|| Err("SIP head too long".to_string()));
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]);
        let len = head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| same_header(n.trim(), "Content-Length"))
            .map(|(_, v)| v.trim().parse::<usize>());
        let len = match len {
            Some(Ok(l)) if l <= MAX_BODY => l,
            Some(Ok(_)) => return Some(Err("SIP body too large".into())),
            Some(Err(_)) => return Some(Err("bad Content-Length".into())),
            None => return Some(Err("no Content-Length on a stream transport".into())),
        };
        let total = head_end + 4 + len;
        if self.buf.len() < total {
            return None;
        }
        let raw: Vec<u8> = self.buf.drain(..total).collect();
        Some(SipMessage::parse(&raw))
    }
}

#[cfg(test)]
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
        assert!(SipMessage::parse(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(SipMessage::parse(b"SIP/2.0 99 Low\r\n\r\n").is_err());
        assert!(SipMessage::parse(b"SIP/2.0 200 OK\r\nl: 10\r\n\r\nshort").is_err());
        assert!(SipMessage::parse(b"SIP/2.0 200 OK\r\n").is_err());
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
        let clean = OK.replace("bodyEXTRA", "body");
        let mut d = StreamDecoder::default();
        d.feed(format!("{clean}\r\n{clean}").as_bytes());
        assert!(d.poll().unwrap().is_ok());
        assert!(d.poll().unwrap().is_ok());
        assert!(d.poll().is_none());
        let mut d = StreamDecoder::default();
        d.feed(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n");
        assert!(d.poll().unwrap().is_err());
    }

    #[test]
    fn split_values_respects_quotes_and_brackets() {
        assert_eq!(
            split_values(r#""a, b" <sip:x@y;p=1,2>, <sip:z>"#),
            vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z>"]
        );
    }
}
