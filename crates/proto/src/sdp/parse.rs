//! Reading SDP.

use std::fmt;

use super::{Media, Session};

/// Why an SDP body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdpError {
    /// No lines at all.
    Empty,
    /// The first line is not `v=` (RFC 8866 §5: `v=` comes first).
    MissingVersion,
    /// `v=` holds something other than `0`.
    BadVersion,
    /// Line `line` (1-based, counting non-empty lines) is not `<lowercase letter>=<value>`.
    MalformedLine { line: usize },
    /// Line `line` contains a control character other than HTAB.
    ControlCharacter { line: usize },
    /// Line `line` is an `m=` line without media, port, proto and at least one fmt, or with a
    /// port that is not a number in 0..=65535.
    BadMediaLine { line: usize },
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::Empty => f.write_str("empty SDP"),
            SdpError::MissingVersion => f.write_str("SDP does not start with v="),
            SdpError::BadVersion => f.write_str("unsupported SDP version"),
            SdpError::MalformedLine { line } => write!(f, "malformed SDP line {line}"),
            SdpError::ControlCharacter { line } => {
                write!(f, "control character in SDP line {line}")
            }
            SdpError::BadMediaLine { line } => write!(f, "malformed m= line (SDP line {line})"),
        }
    }
}

impl std::error::Error for SdpError {}

fn attribute(value: &str) -> (String, Option<String>) {
    match value.split_once(':') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (value.to_string(), None),
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn media_line(value: &str, line: usize) -> Result<Media, SdpError> {
    let bad = SdpError::BadMediaLine { line };
    let mut fields = value.split_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(bad);
    };
    let fmts: Vec<String> = fields.map(str::to_string).collect();
    if fmts.is_empty() {
        return Err(bad);
    }
    let (port, port_count) = match port.split_once('/') {
        Some((p, n)) => (parse_port(p).ok_or(bad)?, Some(parse_port(n).ok_or(bad)?)),
        None => (parse_port(port).ok_or(bad)?, None),
    };
    Ok(Media {
        kind: kind.to_string(),
        port,
        port_count,
        proto: proto.to_string(),
        fmts,
        ..Media::default()
    })
}

/// Parses an SDP body. Line ends may be CRLF or LF; empty lines are skipped. Values are kept as
/// written; unknown line types are kept in `lines`.
pub fn parse(text: &str) -> Result<Session, SdpError> {
    let mut session = Session::default();
    let mut seen_version = false;
    let mut n = 0usize;
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        n += 1;
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(SdpError::ControlCharacter { line: n });
        }
        let mut chars = line.chars();
        let (Some(kind), Some('=')) = (chars.next(), chars.next()) else {
            return Err(SdpError::MalformedLine { line: n });
        };
        if !kind.is_ascii_lowercase() {
            return Err(SdpError::MalformedLine { line: n });
        }
        let value = chars.as_str();
        if !seen_version {
            if kind != 'v' {
                return Err(SdpError::MissingVersion);
            }
            if value.trim() != "0" {
                return Err(SdpError::BadVersion);
            }
            seen_version = true;
        }
        if kind == 'm' {
            session.media.push(media_line(value, n)?);
            continue;
        }
        match session.media.last_mut() {
            Some(m) => {
                match kind {
                    'c' if m.connection.is_none() => m.connection = Some(value.to_string()),
                    'a' => m.attributes.push(attribute(value)),
                    _ => {}
                }
                m.lines.push((kind, value.to_string()));
            }
            None => {
                match kind {
                    'o' if session.origin.is_none() => session.origin = Some(value.to_string()),
                    'c' if session.connection.is_none() => {
                        session.connection = Some(value.to_string())
                    }
                    'a' => session.attributes.push(attribute(value)),
                    _ => {}
                }
                session.lines.push((kind, value.to_string()));
            }
        }
    }
    if !seen_version {
        return Err(SdpError::Empty);
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// RFC 4975 §7.1 / RFC 6135 style offer, LF line ends.
    const OFFER: &str = "v=0
o=alice 2890844526 2890844527 IN IP4 alice.example.com
s= -
c=IN IP4 alice.example.com
t=0 0
m=audio 49170 RTP/AVP 0
m=message 7654 TCP/MSRP *
a=accept-types:message/cpim text/plain
a=accept-wrapped-types:text/plain  text/html
a=path:msrp://alice.example.com:7654/jshA7weztas;tcp msrp://relay.example.com:2855/x;tcp
a=setup:actpass
a=chatroom:nickname private-messages
a=max-size:65536
a=sendrecv
";

    #[test]
    fn parses_offer() {
        let s = parse(OFFER).unwrap();
        assert_eq!(
            s.origin.as_deref(),
            Some("alice 2890844526 2890844527 IN IP4 alice.example.com")
        );
        assert_eq!(s.connection.as_deref(), Some("IN IP4 alice.example.com"));
        assert_eq!(s.media.len(), 2);
        let m = &s.media[1];
        assert!(m.is_msrp());
        assert!(!s.media[0].is_msrp());
        assert_eq!(
            (m.kind.as_str(), m.port, m.proto.as_str()),
            ("message", 7654, "TCP/MSRP")
        );
        assert_eq!(m.fmts, vec!["*"]);
        assert_eq!(m.accept_types(), vec!["message/cpim", "text/plain"]);
        assert_eq!(m.accept_wrapped_types(), vec!["text/plain", "text/html"]);
        assert_eq!(
            m.path(),
            vec![
                "msrp://alice.example.com:7654/jshA7weztas;tcp",
                "msrp://relay.example.com:2855/x;tcp"
            ]
        );
        assert_eq!(m.setup(), Some("actpass"));
        assert_eq!(m.chatroom_tokens(), vec!["nickname", "private-messages"]);
        assert_eq!(m.max_size(), Some(65536));
        assert_eq!(m.attribute("sendrecv"), Some(""));
        assert_eq!(m.lines.len(), 7);
        // CRLF gives the same result.
        assert_eq!(parse(&OFFER.replace('\n', "\r\n")).unwrap(), s);
    }

    #[test]
    fn port_count_and_refusals() {
        let s = parse("v=0\r\nm=audio 49170/2 RTP/AVP 0\r\n").unwrap();
        assert_eq!(s.media[0].port_count, Some(2));
        assert_eq!(parse(""), Err(SdpError::Empty));
        assert_eq!(parse("\r\n\r\n"), Err(SdpError::Empty));
        assert_eq!(parse("o=x\r\nv=0\r\n"), Err(SdpError::MissingVersion));
        assert_eq!(parse("v=1\r\n"), Err(SdpError::BadVersion));
        assert_eq!(
            parse("v=0\r\nbogus\r\n"),
            Err(SdpError::MalformedLine { line: 2 })
        );
        assert_eq!(
            parse("v=0\r\nM=x\r\n"),
            Err(SdpError::MalformedLine { line: 2 })
        );
        assert_eq!(
            parse("v=0\r\na=x\0y\r\n"),
            Err(SdpError::ControlCharacter { line: 2 })
        );
        for m in [
            "m=message",
            "m=message 1 TCP/MSRP",
            "m=message x TCP/MSRP *",
            "m=message 70000 TCP/MSRP *",
            "m=message 1/x TCP/MSRP *",
            "m=message /1 TCP/MSRP *",
        ] {
            assert_eq!(
                parse(&format!("v=0\n{m}\n")),
                Err(SdpError::BadMediaLine { line: 2 }),
                "{m}"
            );
        }
    }
}
