//! Property tests for `msrp`: the decoder never panics and stays bounded on any input in any
//! split; encode → decode round-trips; MSRP URI display → parse round-trips.
use chat_alias_proto::msrp::{
    self, encode, parse_uri, ByteRange, Continuation, Decoder, Event, Limits, Method, MsrpError,
    MsrpUri, ReportMode, RequestHead, ResponseHead, Status, MAX_END_LINE,
};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

// ---------- (1) robustness ----------

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"MSRP ".to_vec()),
        Just(b"MSRP abcd1234 SEND\r\n".to_vec()),
        Just(b"MSRP abcd1234 REPORT\r\n".to_vec()),
        Just(b"MSRP abcd1234 200 OK\r\n".to_vec()),
        Just(b"To-Path: msrp://b.example.com:1/s;tcp\r\n".to_vec()),
        Just(b"From-Path: msrp://a.example.com:2/t;tcp\r\n".to_vec()),
        Just(b"Byte-Range: 1-*/*\r\n".to_vec()),
        Just(b"Failure-Report: no\r\n".to_vec()),
        Just(b"Content-Type: text/plain\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"-------".to_vec()),
        Just(b"-------abcd1234$\r\n".to_vec()),
        Just(b"\r\n-------abcd1234+\r\n".to_vec()),
        Just(b"abcd1234".to_vec()),
        Just(b"$".to_vec()),
        Just(b"#".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
        "[ -~]{0,40}".prop_map(String::into_bytes),
    ]
}

fn header_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(b"To-Path: msrp://b.example.com:1/s;tcp\r\n".to_vec()),
        4 => Just(b"From-Path: msrp://a.example.com:2/t;tcp\r\n".to_vec()),
        1 => Just(b"Byte-Range: 1-*/*\r\n".to_vec()),
        1 => Just(b"Message-ID: m1234\r\n".to_vec()),
        1 => Just(b"Failure-Report: no\r\n".to_vec()),
        1 => Just(b"Use-Nickname: \"x\"\r\n".to_vec()),
        1 => Just(b"Status: 000 200 OK\r\n".to_vec()),
        2 => Just(b"Content-Type: text/plain\r\n".to_vec()),
        1 => "[A-Za-z-]{1,8}: [ -~]{0,20}\r\n".prop_map(String::into_bytes),
        1 => fragment(),
    ]
}

/// Mostly well-framed messages (so that every decoder state is reached), with noise.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let start = prop_oneof![
        Just(b"MSRP abcd1234 SEND\r\n".to_vec()),
        Just(b"MSRP abcd1234 REPORT\r\n".to_vec()),
        Just(b"MSRP abcd1234 NICKNAME\r\n".to_vec()),
        Just(b"MSRP abcd1234 200 OK\r\n".to_vec()),
        Just(b"MSRP abcd1234 FOO\r\n".to_vec()),
    ];
    let end = prop_oneof![
        Just(b"-------abcd1234$\r\n".to_vec()),
        Just(b"-------abcd1234+\r\n".to_vec()),
        Just(b"-------abcd1234#\r\n".to_vec()),
    ];
    let body = proptest::collection::vec(fragment(), 0..6).prop_map(|v| v.concat());
    let tail = prop_oneof![
        3 => end.clone(),
        3 => (body, end).prop_map(|(b, e)| [b"\r\n".to_vec(), b, b"\r\n".to_vec(), e].concat()),
        1 => fragment(),
    ];
    let headers = prop_oneof![
        1 => proptest::collection::vec(header_line(), 0..6).prop_map(|h| h.concat()),
        2 => (proptest::collection::vec(header_line(), 0..3), any::<bool>()).prop_map(|(h, ct)| {
            let mut v = b"To-Path: msrp://b.example.com:1/s;tcp\r\nFrom-Path: msrp://a.example.com:2/t;tcp\r\n".to_vec();
            v.extend(h.concat());
            if ct {
                v.extend_from_slice(b"Content-Type: text/plain\r\n");
            }
            v
        }),
    ];
    (start, headers, tail).prop_map(|(s, h, t)| [s, h, t].concat())
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(message(), 0..6).prop_map(|v| v.concat()),
        1 => proptest::collection::vec(fragment(), 0..40).prop_map(|v| v.concat()),
    ]
}

/// Cuts `data` at the given (sorted, deduplicated) points.
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(&data[last..p]);
        last = p;
    }
    out.push(&data[last..]);
    out
}

fn drive(limits: Limits, pieces: &[&[u8]]) -> Result<(), TestCaseError> {
    let mut d = Decoder::new(limits);
    let bound = limits.max_head_bytes + MAX_END_LINE;
    let mut dead = false;
    for p in pieces {
        d.feed(p);
        prop_assert!(d.buffered() <= bound + p.len());
        for _ in 0..10_000 {
            match d.poll() {
                Ok(None) => break,
                Ok(Some(Event::Body(b))) => prop_assert!(!b.is_empty()),
                Ok(Some(_)) => {}
                Err(MsrpError::Framing(_)) => {
                    dead = true;
                    break;
                }
                Err(_) => {}
            }
            prop_assert!(d.buffered() <= bound + p.len());
        }
        prop_assert!(d.buffered() <= bound);
        if dead {
            prop_assert!(d.is_dead());
            prop_assert!(matches!(d.poll(), Err(MsrpError::Framing(_))));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoder_never_panics_and_stays_bounded(data in stream(),
                                              cuts in proptest::collection::vec(any::<usize>(), 0..12),
                                              max_head in 16usize..400, max_non_send in 0usize..64) {
        let limits = Limits { max_head_bytes: max_head, max_non_send_body: max_non_send };
        drive(limits, &split(&data, &cuts))?;
        drive(Limits::default(), &split(&data, &cuts))?;
    }

    #[test]
    fn decoder_never_panics_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600),
                                            cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let mut with_prefix = b"MSRP abcd1234 ".to_vec();
        with_prefix.extend_from_slice(&data);
        drive(Limits::default(), &split(&data, &cuts))?;
        drive(Limits { max_head_bytes: 64, max_non_send_body: 8 }, &split(&with_prefix, &cuts))?;
    }

    #[test]
    fn parse_uri_never_panics(s in any::<String>(), t in "msrps?://[ -~]{0,40}") {
        let _ = parse_uri(&s);
        if let Ok(u) = parse_uri(&t) {
            prop_assert_eq!(parse_uri(&u.to_string()), Ok(u));
        }
    }
}

// ---------- (3) URIs ----------

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9!#$%&'*+.^_`{|}~-]{1,8}"
}

fn msrp_uri() -> impl Strategy<Value = MsrpUri> {
    let host = prop_oneof![
        "[a-z][a-z0-9.-]{0,20}".prop_map(|h| (h, false)),
        any::<u32>().prop_map(|a| (Ipv4Addr::from(a).to_string(), true)),
        any::<u128>().prop_map(|a| (Ipv6Addr::from(a).to_string(), true)),
    ];
    (
        any::<bool>(),
        host,
        proptest::option::of(any::<u16>()),
        any::<u16>(),
        proptest::option::of("[A-Za-z0-9._~+=/-]{1,24}"),
        proptest::collection::vec((token(), proptest::option::of(token())), 0..3),
    )
        .prop_map(
            |(secure, (host, numeric), port, fallback, session_id, params)| MsrpUri {
                secure,
                host,
                port: if numeric {
                    Some(port.unwrap_or(fallback))
                } else {
                    port
                },
                session_id,
                transport: "tcp".into(),
                params,
            },
        )
}

proptest! {
    #[test]
    fn uri_display_parse_round_trip(u in msrp_uri()) {
        let s = u.to_string();
        let back = parse_uri(&s).map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
        prop_assert!(u.matches(&back));
        prop_assert_eq!(back, u);
    }
}

// ---------- (2) encode → decode ----------

fn ident() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.+%=-]{3,31}"
}

fn text() -> impl Strategy<Value = String> {
    // utf8text without surrounding whitespace (values are trimmed on decoding)
    prop_oneof![
        Just(String::new()),
        "[!-~]([ -~]{0,20}[!-~])?",
        "[!-~\u{a0}-\u{2fff}]([ -~\t\u{a0}-\u{2fff}]{0,12}[!-~\u{a0}-\u{2fff}])?",
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Send),
        Just(Method::Report),
        Just(Method::Nickname),
        "X[A-Z]{0,8}".prop_map(Method::Other),
    ]
}

fn byte_range() -> impl Strategy<Value = ByteRange> {
    (
        1u64..1_000_000,
        proptest::option::of(0u64..1000),
        proptest::option::of(0u64..1000),
    )
        .prop_map(|(start, len, extra)| {
            let end = len.map(|l| start - 1 + l);
            let total = extra.map(|x| end.unwrap_or(start) + x);
            ByteRange { start, end, total }
        })
}

fn report_mode() -> impl Strategy<Value = ReportMode> {
    prop_oneof![
        Just(ReportMode::Yes),
        Just(ReportMode::No),
        Just(ReportMode::Partial)
    ]
}

fn continuation() -> impl Strategy<Value = Continuation> {
    prop_oneof![
        Just(Continuation::More),
        Just(Continuation::End),
        Just(Continuation::Abort)
    ]
}

fn path() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(msrp_uri().prop_map(|u| u.to_string()), 1..4)
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"-------".to_vec()),
        Just(b"$".to_vec()),
        Just(b"+".to_vec()),
        ident().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
enum Msg {
    Request(RequestHead, Option<Vec<u8>>, Continuation),
    Response(ResponseHead),
}

fn request() -> impl Strategy<Value = Msg> {
    let head = (
        ident(),
        method(),
        path(),
        path(),
        proptest::option::of(ident()),
        proptest::option::of(byte_range()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(report_mode()),
    );
    let rest = (
        proptest::option::of((
            0u16..1000,
            0u16..1000,
            proptest::option::of("[!-~]([ -~]{0,10}[!-~])?"),
        )),
        proptest::option::of("[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,30}"),
        proptest::collection::vec(("X-[A-Za-z0-9]{1,8}", text()), 0..3),
        proptest::collection::vec(("Content-(ID|Description|Disposition)", text()), 0..2),
        proptest::option::of((
            "(text|message|application)/[a-z0-9.+-]{1,12}(;charset=utf-8)?",
            body_bytes(),
        )),
        continuation(),
    );
    (head, rest).prop_map(
        |(
            (
                tid,
                method,
                to_path,
                from_path,
                message_id,
                byte_range,
                success_report,
                failure_report,
            ),
            (status, nick, others, mime, content, flag),
        )| {
            let mut h = RequestHead::new(tid, method, to_path, from_path);
            h.message_id = message_id;
            h.byte_range = byte_range;
            h.success_report = success_report;
            h.failure_report = failure_report;
            h.status = status.map(|(namespace, code, comment)| Status {
                namespace,
                code,
                comment,
            });
            h.use_nickname = nick;
            h.other_headers = others.into_iter().chain(mime).collect();
            let body = content.map(|(ct, body)| {
                h.content_type = Some(ct);
                body
            });
            Msg::Request(h, body, flag)
        },
    )
}

fn response() -> impl Strategy<Value = Msg> {
    (
        ident(),
        0u16..1000,
        proptest::option::of("[!-~]([ -~]{0,20}[!-~])?"),
        path(),
        path(),
        proptest::collection::vec(("X-[A-Za-z0-9]{1,8}", text()), 0..3),
    )
        .prop_map(
            |(transaction_id, status, comment, to_path, from_path, other_headers)| {
                Msg::Response(ResponseHead {
                    transaction_id,
                    status,
                    comment,
                    to_path,
                    from_path,
                    other_headers,
                })
            },
        )
}

/// Whether the body can be sent under this transaction id (RFC 4975 §7.1: the end-line must
/// not occur in it — checked the way the decoder reads).
fn body_is_safe(body: &[u8], tid: &str) -> bool {
    let mut s = body.to_vec();
    encode::end_line(tid, Continuation::End, true, &mut s);
    let with_crlf = |at: usize| -> bool {
        ["+", "$", "#"]
            .iter()
            .any(|f| s[at..].starts_with(format!("\r\n-------{tid}{f}\r\n").as_bytes()))
    };
    let at_start = ["+", "$", "#"]
        .iter()
        .any(|f| s.starts_with(format!("-------{tid}{f}\r\n").as_bytes()));
    !at_start && !(0..body.len()).any(with_crlf)
}

fn encode_msg(m: &Msg, out: &mut Vec<u8>) {
    match m {
        Msg::Request(h, body, flag) => {
            encode::request_head(h, out);
            if let Some(b) = body {
                out.extend_from_slice(b);
            }
            encode::end_line(&h.transaction_id, *flag, body.is_some(), out);
        }
        Msg::Response(r) => encode::response_head(r, out),
    }
}

fn expected(m: &Msg) -> Vec<Event> {
    match m {
        Msg::Request(h, body, flag) => {
            let mut v = vec![Event::Request(h.clone())];
            let len = body.as_ref().map_or(0, Vec::len);
            if let Some(b) = body.as_ref().filter(|b| !b.is_empty()) {
                v.push(Event::Body(b.clone()));
            }
            v.push(Event::End {
                transaction_id: h.transaction_id.clone(),
                continuation: *flag,
                body_len: len as u64,
            });
            v
        }
        Msg::Response(r) => vec![Event::Response(r.clone())],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_round_trip(msgs in proptest::collection::vec(prop_oneof![3 => request(), 1 => response()], 1..4),
                                cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
        for m in &msgs {
            if let Msg::Request(h, Some(b), _) = m {
                prop_assume!(body_is_safe(b, &h.transaction_id));
            }
        }
        let mut wire = Vec::new();
        for m in &msgs {
            encode_msg(m, &mut wire);
        }
        let want: Vec<Event> = msgs.iter().flat_map(expected).collect();

        let mut d = Decoder::new(Limits { max_head_bytes: 64 * 1024, max_non_send_body: usize::MAX });
        let mut got: Vec<Event> = Vec::new();
        for piece in split(&wire, &cuts) {
            d.feed(piece);
            while let Some(e) = d.poll().map_err(|e| TestCaseError::fail(e.to_string()))? {
                if let (Event::Body(b), Some(Event::Body(prev))) = (&e, got.last_mut()) {
                    prev.extend_from_slice(b);
                    continue;
                }
                got.push(e);
            }
        }
        prop_assert_eq!(d.buffered(), 0);
        prop_assert_eq!(got, want);
    }
}

#[test]
fn status_comment_table() {
    for code in [
        200, 400, 403, 404, 408, 413, 415, 423, 424, 425, 428, 481, 501, 506,
    ] {
        assert!(!msrp::status_comment(code).is_empty(), "{code}");
    }
}

fn tricky_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"-------".to_vec()),
        Just(b"abcd1234".to_vec()),
        Just(b"abcd123".to_vec()),
        Just(b"\r\n-------abcd1234".to_vec()),
        Just(b"-------abcd1234".to_vec()),
        Just(b"$".to_vec()),
        Just(b"+".to_vec()),
        Just(b"#".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Bodies full of near-end-lines of the same transaction, split anywhere.
    #[test]
    fn tricky_bodies_round_trip(body in tricky_body(), flag in continuation(),
                                cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
        prop_assume!(body_is_safe(&body, "abcd1234"));
        let mut h = RequestHead::new("abcd1234", Method::Send,
            vec!["msrp://b.example.com:1/s;tcp".into()], vec!["msrp://a.example.com:2/t;tcp".into()]);
        h.content_type = Some("text/plain".into());
        let m = Msg::Request(h, Some(body), flag);
        let mut wire = Vec::new();
        encode_msg(&m, &mut wire);
        encode_msg(&m, &mut wire);
        let want: Vec<Event> = expected(&m).into_iter().chain(expected(&m)).collect();
        let mut d = Decoder::default();
        let mut got: Vec<Event> = Vec::new();
        for piece in split(&wire, &cuts) {
            d.feed(piece);
            while let Some(e) = d.poll().map_err(|e| TestCaseError::fail(e.to_string()))? {
                if let (Event::Body(b), Some(Event::Body(prev))) = (&e, got.last_mut()) {
                    prev.extend_from_slice(b);
                    continue;
                }
                got.push(e);
            }
            prop_assert!(d.buffered() <= Limits::default().max_head_bytes);
        }
        prop_assert_eq!(got, want);
    }
}
