//! Choosing the chat media of an offer and composing the focus's answer.

use std::fmt;
use std::fmt::Write as _;

use super::Session;

/// Why an offer cannot carry the chat (the caller answers 488).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OfferError {
    /// No `m=message <port≠0> TCP/MSRP` line.
    NoMsrpMedia,
    /// MSRP lines exist but none accepts `message/cpim` (or `*`); RFC 7701 §5.2 requires CPIM.
    NoCpim,
    /// An MSRP line accepting CPIM exists but has no `a=path` (mandatory, RFC 4975 §8.1).
    NoPath,
}

impl fmt::Display for OfferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OfferError::NoMsrpMedia => "no m=message TCP/MSRP line with a non-zero port",
            OfferError::NoCpim => "no MSRP media accepting message/cpim",
            OfferError::NoPath => "MSRP media without a=path",
        })
    }
}

impl std::error::Error for OfferError {}

/// The index (into `s.media`) of the first `m=message` line with proto `TCP/MSRP` (any case;
/// `TCP/TLS/MSRP` is not offered by this relay), port ≠ 0, `a=accept-types` allowing
/// `message/cpim` (`message/cpim`, `message/*` or `*`), and an `a=path`. The error names the furthest any line got.
pub fn find_chat_media(s: &Session) -> Result<usize, OfferError> {
    let mut best = OfferError::NoMsrpMedia;
    for (i, m) in s.media.iter().enumerate() {
        if !m.kind.eq_ignore_ascii_case("message")
            || !m.proto.eq_ignore_ascii_case("TCP/MSRP")
            || m.port == 0
        {
            continue;
        }
        let types = m.accept_types();
        if types.is_empty() || !crate::sip::accept_allows(&types, "message", "cpim") {
            best = best_of(best, OfferError::NoCpim);
            continue;
        }
        if m.path().is_empty() {
            best = OfferError::NoPath;
            continue;
        }
        return Ok(i);
    }
    Err(best)
}

fn best_of(a: OfferError, b: OfferError) -> OfferError {
    match (a, b) {
        (OfferError::NoPath, _) | (_, OfferError::NoPath) => OfferError::NoPath,
        (OfferError::NoCpim, _) | (_, OfferError::NoCpim) => OfferError::NoCpim,
        _ => OfferError::NoMsrpMedia,
    }
}

/// What the focus puts in its answer for the chat media.
#[derive(Debug, Clone, Copy)]
pub struct AnswerParams<'a> {
    /// The relay's host: an IPv4 or IPv6 literal (brackets optional) or a name.
    pub address: &'a str,
    pub port: u16,
    /// The full relay MSRP URI the participant connects to (`a=path`).
    pub path: &'a str,
    pub accept_wrapped_types: &'a [&'a str],
    /// `a=chatroom` tokens; empty → no `a=chatroom` line.
    pub chatroom: &'a [&'a str],
    pub max_size: Option<u64>,
    pub session_id: u64,
    pub session_version: u64,
}

/// Removes whitespace and control characters, so a value can neither split a field nor end a
/// line (the answer is composed from caller strings and offer text).
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect()
}

fn words(items: &[&str]) -> String {
    items
        .iter()
        .map(|t| clean(t))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Composes the answer (CRLF line ends):
///
/// ```text
/// v=0
/// o=- <session_id> <session_version> IN IP4|IP6 <address>
/// s=-
/// c=IN IP4|IP6 <address>
/// t=0 0
/// ```
/// then one m-line per offered m-line, in order (RFC 3264 §6): the chat one as
/// `m=message <port> TCP/MSRP *` with `a=accept-types:message/cpim` (exactly: RFC 7701 §5.2),
/// `a=accept-wrapped-types` (if any), `a=path`, `a=setup:passive` (RFC 6135: the relay listens),
/// `a=max-size` (if set) and `a=chatroom` (if any tokens); every other one rejected as
/// `m=<kind> 0 <proto> <fmts>`. A `chat_index` that names no m-line rejects them all.
///
/// The address type is IP6 when the address contains `:`, else IP4 (a host name goes with IP4).
/// Caller values have whitespace and control characters removed.
pub fn compose_answer(offer: &Session, chat_index: usize, p: &AnswerParams<'_>) -> String {
    let address = clean(p.address);
    let address = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(&address)
        .to_string();
    let addrtype = if address.contains(':') { "IP6" } else { "IP4" };
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "v=0\r\no=- {} {} IN {addrtype} {address}\r\n",
        p.session_id, p.session_version
    );
    let _ = write!(out, "s=-\r\nc=IN {addrtype} {address}\r\nt=0 0\r\n");
    for (i, m) in offer.media.iter().enumerate() {
        if i == chat_index {
            let _ = write!(out, "m=message {} TCP/MSRP *\r\n", p.port);
            out.push_str("a=accept-types:message/cpim\r\n");
            let wrapped = words(p.accept_wrapped_types);
            if !wrapped.is_empty() {
                let _ = write!(out, "a=accept-wrapped-types:{wrapped}\r\n");
            }
            let _ = write!(out, "a=path:{}\r\n", clean(p.path));
            out.push_str("a=setup:passive\r\n");
            if let Some(n) = p.max_size {
                let _ = write!(out, "a=max-size:{n}\r\n");
            }
            let chatroom = words(p.chatroom);
            if !chatroom.is_empty() {
                let _ = write!(out, "a=chatroom:{chatroom}\r\n");
            }
        } else {
            let fmts: Vec<&str> = m.fmts.iter().map(String::as_str).collect();
            let fmts = match words(&fmts) {
                f if f.is_empty() => "*".to_string(),
                f => f,
            };
            let kind = clean(&m.kind);
            let proto = clean(&m.proto);
            let _ = write!(out, "m={kind} 0 {proto} {fmts}\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::super::parse;
    use super::*;

    const OFFER: &str = "v=0\r\no=bob 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8\r\n\
m=message 0 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=path:msrp://x:1/a;tcp\r\n\
m=message 7 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://x:1/b;tcp\r\n\
m=message 8 TCP/MSRP *\r\na=accept-types:text/plain *\r\na=path:msrp://198.51.100.7:8/c;tcp\r\na=setup:actpass\r\n\
m=message 9 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=path:msrp://x:1/d;tcp\r\n";

    fn params<'a>(address: &'a str, chatroom: &'a [&'a str]) -> AnswerParams<'a> {
        AnswerParams {
            address,
            port: 2855,
            path: "msrp://192.0.2.10:2855/kx8Qm2Zp0aLw7vR1;tcp",
            accept_wrapped_types: &["text/plain", "text/html", "*"],
            chatroom,
            max_size: None,
            session_id: 1,
            session_version: 1,
        }
    }

    #[test]
    fn finds_first_usable_line() {
        let s = parse(OFFER).unwrap();
        assert_eq!(find_chat_media(&s), Ok(3));
    }

    #[test]
    fn offer_errors() {
        let e = |t: &str| find_chat_media(&parse(t).unwrap());
        assert_eq!(
            e("v=0\r\nm=audio 1 RTP/AVP 0\r\n"),
            Err(OfferError::NoMsrpMedia)
        );
        assert_eq!(
            e("v=0\r\nm=message 0 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=path:p\r\n"),
            Err(OfferError::NoMsrpMedia)
        );
        assert_eq!(
            e("v=0\r\nm=message 1 TCP/TLS/MSRP *\r\na=accept-types:message/cpim\r\na=path:p\r\n"),
            Err(OfferError::NoMsrpMedia)
        );
        assert_eq!(
            e("v=0\r\nm=message 1 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:p\r\n"),
            Err(OfferError::NoCpim)
        );
        assert_eq!(
            e(
                "v=0\r\nm=message 1 tcp/msrp *\r\na=accept-types:Message/CPIM\r\n\
m=message 1 TCP/MSRP *\r\na=accept-types:text/plain\r\n"
            ),
            Err(OfferError::NoPath)
        );
        assert_eq!(
            e("v=0\r\nm=message 1 tcp/msrp *\r\na=accept-types:Message/CPIM\r\na=path:p\r\n"),
            Ok(0)
        );
    }

    #[test]
    fn answer_matches_the_spec_example() {
        let offer =
            parse("v=0\r\nm=message 7 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=path:p\r\n")
                .unwrap();
        let a = compose_answer(
            &offer,
            0,
            &params("192.0.2.10", &["nickname", "private-messages"]),
        );
        assert_eq!(
            a,
            "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=message 2855 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=accept-wrapped-types:text/plain text/html *\r\n\
a=path:msrp://192.0.2.10:2855/kx8Qm2Zp0aLw7vR1;tcp\r\na=setup:passive\r\na=chatroom:nickname private-messages\r\n"
        );
    }

    #[test]
    fn answer_rejects_other_lines_in_order() {
        let s = parse(OFFER).unwrap();
        let mut p = params("[2001:db8::1]", &[]);
        p.max_size = Some(16 * 1024 * 1024);
        let a = compose_answer(&s, 3, &p);
        assert!(a.contains("o=- 1 1 IN IP6 2001:db8::1\r\n"));
        assert!(a.contains("c=IN IP6 2001:db8::1\r\n"));
        assert!(!a.contains("a=chatroom"));
        assert!(a.contains("a=max-size:16777216\r\n"));
        let back = parse(&a).unwrap();
        let ms: Vec<(&str, u16, &str)> = back
            .media
            .iter()
            .map(|m| (m.kind.as_str(), m.port, m.proto.as_str()))
            .collect();
        assert_eq!(
            ms,
            vec![
                ("audio", 0, "RTP/AVP"),
                ("message", 0, "TCP/MSRP"),
                ("message", 0, "TCP/MSRP"),
                ("message", 2855, "TCP/MSRP"),
                ("message", 0, "TCP/MSRP")
            ]
        );
        assert_eq!(back.media[0].fmts, vec!["0", "8"]);
        assert_eq!(find_chat_media(&back), Ok(3));
        assert_eq!(back.media[3].accept_types(), vec!["message/cpim"]);
        assert_eq!(back.media[3].setup(), Some("passive"));
        // An index naming no line rejects everything.
        assert!(!compose_answer(&s, 99, &p).contains("m=message 2855"));
    }

    #[test]
    fn answer_is_injection_proof() {
        let offer =
            parse("v=0\r\nm=message 7 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=path:p\r\n")
                .unwrap();
        let p = AnswerParams {
            address: "host\r\na=evil",
            path: "msrp://h:1/s;tcp\r\nm=audio 1 RTP/AVP 0",
            accept_wrapped_types: &["text/plain\r\na=x"],
            chatroom: &["nick\nname"],
            ..params("h", &[])
        };
        let a = compose_answer(&offer, 0, &p);
        let back = parse(&a).unwrap();
        assert_eq!(back.media.len(), 1);
        assert_eq!(back.media[0].attributes.len(), 5);
        assert_eq!(back.connection.as_deref(), Some("IN IP4 hosta=evil"));
    }
}
