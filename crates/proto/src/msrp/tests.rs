//! Unit tests: RFC 4975 / RFC 7701 examples and the framing corner cases.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::encode;
use super::*;

/// Everything a decoder yields for `chunks`, consecutive Body events merged, stopping at the
/// first Framing error.
fn run(limits: Limits, chunks: &[&[u8]]) -> Vec<Result<Event, MsrpError>> {
    let mut d = Decoder::new(limits);
    let mut out: Vec<Result<Event, MsrpError>> = Vec::new();
    let push = |r: Result<Event, MsrpError>, out: &mut Vec<Result<Event, MsrpError>>| {
        if let (Ok(Event::Body(b)), Some(Ok(Event::Body(prev)))) = (&r, out.last_mut()) {
            prev.extend_from_slice(b);
            return;
        }
        out.push(r);
    };
    'outer: for c in chunks {
        d.feed(c);
        loop {
            match d.poll() {
                Ok(None) => break,
                Ok(Some(e)) => push(Ok(e), &mut out),
                Err(e @ MsrpError::Framing(_)) => {
                    out.push(Err(e));
                    break 'outer;
                }
                Err(e) => push(Err(e), &mut out),
            }
        }
        assert!(d.buffered() <= limits.max_head_bytes.max(MAX_END_LINE));
    }
    out
}

fn whole(input: &[u8]) -> Vec<Result<Event, MsrpError>> {
    run(Limits::default(), &[input])
}

fn bytewise(input: &[u8]) -> Vec<Result<Event, MsrpError>> {
    let chunks: Vec<&[u8]> = input.chunks(1).collect();
    run(Limits::default(), &chunks)
}

fn both(input: &[u8]) -> Vec<Result<Event, MsrpError>> {
    let a = whole(input);
    assert_eq!(a, bytewise(input), "byte-by-byte feeding differs");
    a
}

const SEND_7_1_1: &[u8] = b"MSRP a786hjs2 SEND\r\n\
To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
Message-ID: 87652491\r\n\
Byte-Range: 1-25/25\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hey Bob, are you there?\r\n\
-------a786hjs2$\r\n";

const RESPONSE_7_1_2: &[u8] = b"MSRP a786hjs2 200 OK\r\n\
To-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
-------a786hjs2$\r\n";

const REPORT: &[u8] = b"MSRP dkei38sd REPORT\r\n\
To-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\n\
From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
Message-ID: 12339sdqwer\r\n\
Byte-Range: 1-106/106\r\n\
Status: 000 200 OK\r\n\
-------dkei38sd$\r\n";

const NICKNAME: &[u8] = b"MSRP d93kswow NICKNAME\r\n\
To-Path: msrp://chat.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
From-Path: msrp://client.atlanta.example.com:7654/jshA7weztas;tcp\r\n\
Use-Nickname: \"Alice the great\"\r\n\
-------d93kswow$\r\n";

fn req(e: &Result<Event, MsrpError>) -> &RequestHead {
    match e {
        Ok(Event::Request(h)) => h,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn end(tid: &str, c: Continuation, n: u64) -> Result<Event, MsrpError> {
    Ok(Event::End {
        transaction_id: tid.into(),
        continuation: c,
        body_len: n,
    })
}

fn body(b: &[u8]) -> Result<Event, MsrpError> {
    Ok(Event::Body(b.to_vec()))
}

#[test]
fn rfc4975_send() {
    let ev = both(SEND_7_1_1);
    assert_eq!(ev.len(), 3);
    let h = req(&ev[0]);
    assert_eq!(h.transaction_id, "a786hjs2");
    assert_eq!(h.method, Method::Send);
    assert_eq!(
        h.to_path,
        vec!["msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp"]
    );
    assert_eq!(
        h.from_path,
        vec!["msrp://atlanta.example.com:7654/jshA7weztas;tcp"]
    );
    assert_eq!(h.message_id.as_deref(), Some("87652491"));
    assert_eq!(
        h.byte_range,
        Some(ByteRange {
            start: 1,
            end: Some(25),
            total: Some(25)
        })
    );
    assert_eq!(h.content_type.as_deref(), Some("text/plain"));
    assert_eq!(h.success_report, None);
    assert_eq!(h.failure_report, None);
    assert!(h.other_headers.is_empty());
    assert_eq!(ev[1], body(b"Hey Bob, are you there?"));
    assert_eq!(ev[2], end("a786hjs2", Continuation::End, 23));
}

#[test]
fn rfc4975_response() {
    let ev = both(RESPONSE_7_1_2);
    assert_eq!(
        ev,
        vec![Ok(Event::Response(ResponseHead {
            transaction_id: "a786hjs2".into(),
            status: 200,
            comment: Some("OK".into()),
            to_path: vec!["msrp://atlanta.example.com:7654/jshA7weztas;tcp".into()],
            from_path: vec!["msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp".into()],
            other_headers: vec![],
        }))]
    );
    // Without comment.
    let r = b"MSRP a786hjs2 481\r\nTo-Path: msrp://a.example:1/s;tcp\r\nFrom-Path: msrp://b.example:2/t;tcp\r\n-------a786hjs2$\r\n";
    match &both(r)[..] {
        [Ok(Event::Response(r))] => {
            assert_eq!(r.status, 481);
            assert_eq!(r.comment, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rfc4975_report() {
    let ev = both(REPORT);
    assert_eq!(ev.len(), 2);
    let h = req(&ev[0]);
    assert_eq!(h.method, Method::Report);
    assert_eq!(h.message_id.as_deref(), Some("12339sdqwer"));
    assert_eq!(
        h.status,
        Some(Status {
            namespace: 0,
            code: 200,
            comment: Some("OK".into())
        })
    );
    assert_eq!(h.content_type, None);
    assert_eq!(ev[1], end("dkei38sd", Continuation::End, 0));
}

#[test]
fn rfc7701_nickname() {
    let ev = both(NICKNAME);
    assert_eq!(ev.len(), 2);
    let h = req(&ev[0]);
    assert_eq!(h.method, Method::Nickname);
    assert_eq!(h.method.to_string(), "NICKNAME");
    assert_eq!(h.use_nickname.as_deref(), Some("Alice the great"));
    assert_eq!(ev[1], end("d93kswow", Continuation::End, 0));

    // Removal: empty nickname.
    let removal = String::from_utf8(NICKNAME.to_vec())
        .unwrap()
        .replace("\"Alice the great\"", "\"\"");
    assert_eq!(
        req(&both(removal.as_bytes())[0]).use_nickname.as_deref(),
        Some("")
    );

    // Not a quoted-string: left for the switch to refuse (424), not a decoding error.
    let unquoted = String::from_utf8(NICKNAME.to_vec())
        .unwrap()
        .replace("\"Alice the great\"", "Alice");
    let ev = both(unquoted.as_bytes());
    let h = req(&ev[0]);
    assert_eq!(h.use_nickname, None);
    assert_eq!(
        h.other_headers,
        vec![("Use-Nickname".to_string(), "Alice".to_string())]
    );
}

#[test]
fn chunked_message() {
    let chunk1 = b"MSRP d93kswow SEND\r\n\
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n\
Message-ID: 12339sdqwer\r\n\
Byte-Range: 1-*/*\r\n\
Content-Type: text/plain\r\n\
\r\n\
abcdefghij\r\n\
-------d93kswow+\r\n";
    let chunk2 = b"MSRP op2nc9a SEND\r\n\
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n\
Message-ID: 12339sdqwer\r\n\
Byte-Range: 11-20/20\r\n\
Content-Type: text/plain\r\n\
\r\n\
klmnopqrst\r\n\
-------op2nc9a$\r\n";
    let mut input = chunk1.to_vec();
    input.extend_from_slice(chunk2);
    let ev = both(&input);
    assert_eq!(ev.len(), 6);
    assert_eq!(
        req(&ev[0]).byte_range,
        Some(ByteRange {
            start: 1,
            end: None,
            total: None
        })
    );
    assert_eq!(ev[1], body(b"abcdefghij"));
    assert_eq!(ev[2], end("d93kswow", Continuation::More, 10));
    assert_eq!(
        req(&ev[3]).byte_range,
        Some(ByteRange {
            start: 11,
            end: Some(20),
            total: Some(20)
        })
    );
    assert_eq!(ev[4], body(b"klmnopqrst"));
    assert_eq!(ev[5], end("op2nc9a", Continuation::End, 10));
}

#[test]
fn bodiless_send_and_abort_flag() {
    let s = b"MSRP a786hjs2 SEND\r\n\
To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
Message-ID: 87652491\r\n\
Byte-Range: 1-0/0\r\n\
-------a786hjs2$\r\n\
MSRP b786hjs2 SEND\r\n\
To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
Message-ID: 87652492\r\n\
Byte-Range: 1-*/*\r\n\
Content-Type: text/plain\r\n\
\r\n\
abc\r\n\
-------b786hjs2#\r\n";
    let ev = both(s);
    assert_eq!(ev.len(), 5);
    let h = req(&ev[0]);
    assert_eq!(
        h.byte_range,
        Some(ByteRange {
            start: 1,
            end: Some(0),
            total: Some(0)
        })
    );
    assert_eq!(h.content_type, None);
    assert_eq!(ev[1], end("a786hjs2", Continuation::End, 0));
    assert_eq!(ev[3], body(b"abc"));
    assert_eq!(ev[4], end("b786hjs2", Continuation::Abort, 3));
}

fn send_with_body(tid: &str, data: &[u8]) -> Vec<u8> {
    let mut h = RequestHead::new(
        tid,
        Method::Send,
        vec!["msrp://b.example.com:8888/9di4eae923wzd;tcp".into()],
        vec!["msrp://a.example.com:7777/iau39soe2843z;tcp".into()],
    );
    h.message_id = Some("m1234".into());
    h.content_type = Some("text/plain".into());
    let mut out = Vec::new();
    encode::request_head(&h, &mut out);
    out.extend_from_slice(data);
    encode::end_line(tid, Continuation::End, true, &mut out);
    out
}

#[test]
fn end_line_split_everywhere() {
    let msg = send_with_body("a786hjs2", b"Hello\r\n-------a786hjs");
    let reference = whole(&msg);
    assert_eq!(reference.len(), 3);
    assert_eq!(reference[1], body(b"Hello\r\n-------a786hjs"));
    for cut in 0..=msg.len() {
        let (a, b) = msg.split_at(cut);
        assert_eq!(run(Limits::default(), &[a, b]), reference, "cut at {cut}");
    }
    for cut1 in (0..msg.len()).step_by(7) {
        for cut2 in cut1..msg.len() {
            let parts = [&msg[..cut1], &msg[cut1..cut2], &msg[cut2..]];
            assert_eq!(run(Limits::default(), &parts), reference);
        }
    }
    assert_eq!(bytewise(&msg), reference);
}

#[test]
fn other_tid_end_line_is_data() {
    let data: &[u8] =
        b"before\r\n-------othertid$\r\nmiddle\r\n-------a786hjs2X\r\n-------a786hjs2$x\r\n-------a786hjs2$\rz";
    let msg = send_with_body("a786hjs2", data);
    let ev = both(&msg);
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(ev[1], body(data));
    assert_eq!(ev[2], end("a786hjs2", Continuation::End, data.len() as u64));
}

#[test]
fn body_with_end_line_prefixes() {
    for data in [
        &b"\r\n"[..],
        b"\r\n-",
        b"\r\n-------",
        b"\r\n-------a786",
        b"\r\n-------a786hjs2",
        b"\r\n-------a786hjs2$x",
        b"\r\n-------a786hjs2$\r",
        b"\r\r\n\r\n-------\r\n-------a\r\n",
        b"-------a786hjs2",
        b"-",
        b"x-------a786hjs2$\r\n", // no CRLF before: data (sender must avoid it; we accept)
        b"",
    ] {
        let msg = send_with_body("a786hjs2", data);
        let ev = both(&msg);
        let mut expected = vec![];
        if !data.is_empty() {
            expected.push(body(data));
        }
        expected.push(end("a786hjs2", Continuation::End, data.len() as u64));
        assert_eq!(
            &ev[1..],
            &expected[..],
            "{:?}",
            String::from_utf8_lossy(data)
        );
    }
}

#[test]
fn empty_body_without_crlf_before_end_line() {
    let s = b"MSRP a786hjs2 SEND\r\n\
To-Path: msrp://b.example.com:1/s;tcp\r\n\
From-Path: msrp://a.example.com:2/t;tcp\r\n\
Content-Type: text/plain\r\n\
\r\n\
-------a786hjs2$\r\n";
    let ev = both(s);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1], end("a786hjs2", Continuation::End, 0));
}

#[test]
fn head_over_limit_is_framing() {
    let limits = Limits {
        max_head_bytes: 200,
        ..Limits::default()
    };
    let mut big =
        b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://b.example.com:1/s;tcp\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 300));
    let ev = run(limits, &[&big]);
    assert!(
        matches!(ev.last(), Some(Err(MsrpError::Framing(_)))),
        "{ev:?}"
    );
    // Byte by byte: same.
    let chunks: Vec<&[u8]> = big.chunks(1).collect();
    let ev = run(limits, &chunks);
    assert!(matches!(ev.last(), Some(Err(MsrpError::Framing(_)))));

    // Dead afterwards.
    let mut d = Decoder::new(limits);
    d.feed(&big);
    assert!(matches!(d.poll(), Err(MsrpError::Framing(_))));
    d.feed(RESPONSE_7_1_2);
    assert!(matches!(d.poll(), Err(MsrpError::Framing(_))));
    assert_eq!(d.buffered(), 0);
    assert!(d.is_dead());

    // Exactly at the limit: accepted.
    let exact = Limits {
        max_head_bytes: RESPONSE_7_1_2.len(),
        ..Limits::default()
    };
    assert!(matches!(
        run(exact, &[RESPONSE_7_1_2])[..],
        [Ok(Event::Response(_))]
    ));
    let short = Limits {
        max_head_bytes: RESPONSE_7_1_2.len() - 1,
        ..Limits::default()
    };
    assert!(matches!(
        run(short, &[RESPONSE_7_1_2])[..],
        [Err(MsrpError::Framing(_))]
    ));
}

#[test]
fn garbage_is_framing() {
    for g in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"X",
        b"\r\n",
        b"MSRP abc SEND\r\n",
        b"MSRP a786hjs2 send\r\n",
        b"MSRP a786hjs2 SEND \r\n",
        b"MSRP a786hjs2\r\n",
        b"MSRP  a786hjs2 SEND\r\n",
    ] {
        let ev = both(g);
        assert!(
            matches!(ev[..], [Err(MsrpError::Framing(_))]),
            "{g:?}: {ev:?}"
        );
    }
    // Garbage after a good message.
    let mut s = RESPONSE_7_1_2.to_vec();
    s.extend_from_slice(b"hello\r\n");
    let ev = both(&s);
    assert!(matches!(
        ev[..],
        [Ok(Event::Response(_)), Err(MsrpError::Framing(_))]
    ));
}

#[test]
fn missing_to_path_then_next_message() {
    let bad = b"MSRP a786hjs2 SEND\r\n\
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
Message-ID: 87652491\r\n\
Byte-Range: 1-0/0\r\n\
-------a786hjs2$\r\n";
    let mut input = bad.to_vec();
    input.extend_from_slice(SEND_7_1_1);
    let ev = both(&input);
    assert_eq!(ev.len(), 4, "{ev:?}");
    match &ev[0] {
        Err(MsrpError::Malformed {
            transaction_id,
            reason,
        }) => {
            assert_eq!(transaction_id.as_deref(), Some("a786hjs2"));
            assert!(reason.contains("To-Path"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(req(&ev[1]).message_id.as_deref(), Some("87652491"));
    assert_eq!(ev[2], body(b"Hey Bob, are you there?"));
}

fn malformed_tid(e: &Result<Event, MsrpError>) -> Option<&str> {
    match e {
        Err(MsrpError::Malformed { transaction_id, .. }) => transaction_id.as_deref(),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn malformed_heads() {
    let to = "To-Path: msrp://b.example.com:1/s;tcp\r\n";
    let from = "From-Path: msrp://a.example.com:2/t;tcp\r\n";
    let cases: Vec<(String, Option<&str>)> = vec![
        // Body without Content-Type: the body is skipped.
        (format!("MSRP abcd1234 SEND\r\n{to}{from}\r\nbody\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        // Content-Type not last.
        (format!("MSRP abcd1234 SEND\r\n{to}{from}Content-Type: text/plain\r\nMessage-ID: abcd\r\n\r\nx\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        // Content-Type without a body.
        (format!("MSRP abcd1234 SEND\r\n{to}{from}Content-Type: text/plain\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        // Bad Byte-Range, Failure-Report, Success-Report, Status, Message-ID, URIs.
        (format!("MSRP abcd1234 SEND\r\n{to}{from}Byte-Range: 0-1/1\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        (format!("MSRP abcd1234 SEND\r\n{to}{from}Failure-Report: maybe\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        (format!("MSRP abcd1234 SEND\r\n{to}{from}Success-Report: partial\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        (format!("MSRP abcd1234 SEND\r\n{to}{from}Status: 0 200\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        (format!("MSRP abcd1234 SEND\r\n{to}{from}Message-ID: a\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        (format!("MSRP abcd1234 SEND\r\nTo-Path: msrp://b.example.com:1/s;udp\r\n{from}-------abcd1234$\r\n"), Some("abcd1234")),
        (format!("MSRP abcd1234 SEND\r\n{to}{to}{from}-------abcd1234$\r\n"), Some("abcd1234")),
        (format!("MSRP abcd1234 SEND\r\n{to}{from}No colon\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        (format!("MSRP abcd1234 SEND\r\n{to}{from}X-Ctl: a\x01b\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        (format!("MSRP abcd1234 SEND\r\n{to}{from}-------other123$\r\n-------abcd1234$\r\n"), Some("abcd1234")),
        // No answer allowed: Failure-Report: no, REPORT, responses.
        (format!("MSRP abcd1234 SEND\r\n{from}Failure-Report: no\r\n-------abcd1234$\r\n"), None),
        (format!("MSRP abcd1234 REPORT\r\n{from}-------abcd1234$\r\n"), None),
        (format!("MSRP abcd1234 200 OK\r\n{from}-------abcd1234$\r\n"), None),
        (format!("MSRP abcd1234 200 OK\r\n{to}{from}Content-Type: text/plain\r\n\r\nbody\r\n-------abcd1234$\r\n"), None),
        (format!("MSRP abcd1234 200 OK\r\n{to}{from}\r\n-------abcd1234$\r\n"), None),
        (format!("MSRP abcd1234 200 O\x01K\r\n{to}{from}-------abcd1234$\r\n"), None),
    ];
    for (msg, tid) in cases {
        let mut input = msg.clone().into_bytes();
        input.extend_from_slice(RESPONSE_7_1_2);
        let ev = both(&input);
        assert_eq!(ev.len(), 2, "{msg:?}: {ev:?}");
        assert_eq!(malformed_tid(&ev[0]), tid, "{msg:?}");
        assert!(matches!(ev[1], Ok(Event::Response(_))), "{msg:?}");
    }
}

#[test]
fn non_send_body_limit() {
    let limits = Limits {
        max_non_send_body: 16,
        ..Limits::default()
    };
    let mk = |method: &str, n: usize| {
        let mut h = RequestHead::new(
            "abcd1234",
            Method::from_token(method),
            vec!["msrp://b.example.com:1/s;tcp".into()],
            vec!["msrp://a.example.com:2/t;tcp".into()],
        );
        h.content_type = Some("text/plain".into());
        let mut out = Vec::new();
        encode::request_head(&h, &mut out);
        out.extend(std::iter::repeat_n(b'z', n));
        encode::end_line("abcd1234", Continuation::End, true, &mut out);
        out.extend_from_slice(RESPONSE_7_1_2);
        out
    };
    // At the limit: fine.
    let ev = run(limits, &[&mk("NICKNAME", 16)]);
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[2], end("abcd1234", Continuation::End, 16));
    // Over it: Request, then Malformed once the end-line is found, then the next message.
    for chunk in [1usize, 5, 1000] {
        let input = mk("NICKNAME", 100);
        let chunks: Vec<&[u8]> = input.chunks(chunk).collect();
        let ev = run(limits, &chunks);
        assert!(matches!(ev[0], Ok(Event::Request(_))));
        let n = ev.len();
        assert_eq!(malformed_tid(&ev[n - 2]), Some("abcd1234"));
        assert!(matches!(ev[n - 1], Ok(Event::Response(_))));
        let delivered: usize = ev
            .iter()
            .map(|e| match e {
                Ok(Event::Body(b)) => b.len(),
                _ => 0,
            })
            .sum();
        assert!(delivered <= 16);
    }
    // A REPORT over the limit may not be answered.
    let ev = run(limits, &[&mk("REPORT", 100)]);
    assert_eq!(malformed_tid(&ev[ev.len() - 2]), None);
    // SEND has no such limit.
    let ev = run(limits, &[&mk("SEND", 100)]);
    assert_eq!(ev[2], end("abcd1234", Continuation::End, 100));
}

#[test]
fn other_headers_and_case() {
    let s = b"MSRP abcd1234 SEND\r\n\
to-path: msrp://b.example.com:1/s;tcp msrp://c.example.com:3/u;tcp\r\n\
FROM-PATH:msrp://a.example.com:2/t;tcp\r\n\
X-Custom: v\xc3\xa9 \r\n\
success-report: YES\r\n\
Failure-Report: partial\r\n\
Content-Disposition: inline\r\n\
Content-ID: <x@y>\r\n\
content-type: message/cpim\r\n\
\r\n\
x\r\n\
-------abcd1234$\r\n";
    let ev = both(s);
    let h = req(&ev[0]);
    assert_eq!(h.to_path.len(), 2);
    assert_eq!(h.from_path, vec!["msrp://a.example.com:2/t;tcp"]);
    assert_eq!(h.success_report, Some(true));
    assert_eq!(h.failure_report, Some(ReportMode::Partial));
    assert_eq!(h.content_type.as_deref(), Some("message/cpim"));
    assert_eq!(
        h.other_headers,
        vec![
            ("X-Custom".into(), "vé".into()),
            ("Content-Disposition".into(), "inline".into()),
            ("Content-ID".into(), "<x@y>".into()),
        ]
    );
}

#[test]
fn encode_round_trip() {
    let mut h = RequestHead::new(
        encode::new_transaction_id(&[7; 12]),
        Method::Report,
        vec!["msrp://b.example.com:1/s;tcp".into()],
        vec![
            "msrp://relay.example.com:9/r;tcp".into(),
            "msrp://a.example.com:2/t;tcp".into(),
        ],
    );
    h.message_id = Some(encode::new_message_id(&[0xab; 12]));
    h.byte_range = Some(ByteRange {
        start: 1,
        end: Some(5),
        total: Some(5),
    });
    h.status = Some(Status {
        namespace: 0,
        code: 413,
        comment: Some("Too big".into()),
    });
    h.use_nickname = Some("a \"q\" \\ b".into());
    h.other_headers = vec![
        ("X-A".into(), "1".into()),
        ("Content-Description".into(), "d".into()),
    ];
    h.content_type = Some("text/plain;charset=utf-8".into());
    let mut out = Vec::new();
    encode::request_head(&h, &mut out);
    out.extend_from_slice(b"hello");
    encode::end_line(&h.transaction_id, Continuation::End, true, &mut out);
    let ev = both(&out);
    assert_eq!(ev[0], Ok(Event::Request(h.clone())));
    assert_eq!(ev[1], body(b"hello"));

    let mut r = Vec::new();
    encode::response(
        "a786hjs2",
        200,
        Some("OK"),
        "msrp://atlanta.example.com:7654/jshA7weztas;tcp",
        "msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp",
        &mut r,
    );
    assert_eq!(r, RESPONSE_7_1_2);
    let mut r = Vec::new();
    encode::response(
        "a786hjs2",
        481,
        None,
        "msrp://a.example.com:1/s;tcp",
        "msrp://b.example.com:2/t;tcp",
        &mut r,
    );
    assert!(r.starts_with(b"MSRP a786hjs2 481\r\n"));
    assert!(matches!(both(&r)[..], [Ok(Event::Response(_))]));

    let rh = ResponseHead {
        transaction_id: "zz99".into(),
        status: 403,
        comment: Some(status_comment(403).into()),
        to_path: vec!["msrp://a.example.com:1/s;tcp".into()],
        from_path: vec!["msrp://b.example.com:2/t;tcp".into()],
        other_headers: vec![("X-Why".into(), "policy".into())],
    };
    let mut r = Vec::new();
    encode::response_head(&rh, &mut r);
    assert_eq!(both(&r), vec![Ok(Event::Response(rh))]);

    let mut e = Vec::new();
    encode::end_line("abcd", Continuation::More, false, &mut e);
    assert_eq!(e, b"-------abcd+\r\n");
}

#[test]
fn encoder_cannot_break_framing() {
    let mut h = RequestHead::new(
        "abcd1234",
        Method::Send,
        vec!["msrp://b.example.com:1/s;tcp".into()],
        vec!["msrp://a.example.com:2/t;tcp".into()],
    );
    h.other_headers = vec![("X-Evil".into(), "a\r\n-------abcd1234$\r\nb".into())];
    let mut out = Vec::new();
    encode::request_head(&h, &mut out);
    encode::end_line("abcd1234", Continuation::End, false, &mut out);
    let ev = both(&out);
    assert_eq!(ev.len(), 2);
    assert_eq!(
        req(&ev[0]).other_headers,
        vec![("X-Evil".into(), "a  -------abcd1234$  b".into())]
    );
}

#[test]
fn ids() {
    let t = encode::new_transaction_id(&[0xff, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(t, "ff000102030405060708090a");
    assert!(is_ident(&t));
    assert!(is_ident(&encode::new_message_id(&[0; 12])));
    assert!(is_ident("a786hjs2"));
    assert!(!is_ident("abc"));
    assert!(!is_ident("-abc"));
    assert!(!is_ident(&"a".repeat(33)));
    assert!(is_ident(&"a".repeat(32)));
}

#[test]
fn status_comments() {
    assert_eq!(status_comment(200), "OK");
    assert_eq!(status_comment(481), "No Such Session");
    assert_eq!(status_comment(506), "Session Already Bound");
    assert_eq!(status_comment(999), "");
}

#[test]
fn large_body_stays_bounded() {
    let mut d = Decoder::default();
    let mut h = RequestHead::new(
        "abcd1234",
        Method::Send,
        vec!["msrp://b.example.com:1/s;tcp".into()],
        vec!["msrp://a.example.com:2/t;tcp".into()],
    );
    h.content_type = Some("application/octet-stream".into());
    let mut head = Vec::new();
    encode::request_head(&h, &mut head);
    d.feed(&head);
    assert!(matches!(d.poll(), Ok(Some(Event::Request(_)))));
    let chunk: Vec<u8> = (0..4096u32)
        .map(|i| if i % 64 == 63 { b'\r' } else { b'-' })
        .collect();
    let mut total = 0u64;
    for _ in 0..1000 {
        d.feed(&chunk);
        while let Some(e) = d.poll().unwrap() {
            match e {
                Event::Body(b) => total += b.len() as u64,
                other => panic!("{other:?}"),
            }
        }
        assert!(d.buffered() < MAX_END_LINE);
    }
    let mut tail = Vec::new();
    encode::end_line("abcd1234", Continuation::End, true, &mut tail);
    d.feed(&tail);
    let mut last = None;
    while let Some(e) = d.poll().unwrap() {
        if let Event::Body(b) = &e {
            total += b.len() as u64;
        }
        last = Some(e);
    }
    assert_eq!(total, 4096 * 1000);
    assert_eq!(
        last,
        Some(Event::End {
            transaction_id: "abcd1234".into(),
            continuation: Continuation::End,
            body_len: total
        })
    );
    assert_eq!(d.buffered(), 0);
}

/// The one Failure-Report rule: REPORT never answered, NICKNAME always, others by the header.
#[test]
fn responses_follow_failure_report_except_report_and_nickname() {
    use super::{ReportMode as R, Responses};
    let rule = |m: Method, f| Responses::for_request(&m, f);
    assert_eq!(rule(Method::Send, None), Responses::All);
    assert_eq!(rule(Method::Send, Some(R::Yes)), Responses::All);
    assert_eq!(rule(Method::Send, Some(R::Partial)), Responses::ErrorsOnly);
    assert_eq!(rule(Method::Send, Some(R::No)), Responses::Never);
    assert_eq!(
        rule(Method::Other("FOO".into()), Some(R::No)),
        Responses::Never
    );
    assert_eq!(rule(Method::Report, None), Responses::Never);
    assert_eq!(rule(Method::Nickname, Some(R::No)), Responses::All);
    assert!(Responses::All.allows(200) && Responses::All.allows(403));
    assert!(!Responses::ErrorsOnly.allows(200) && Responses::ErrorsOnly.allows(413));
    assert!(!Responses::Never.allows(200) && !Responses::Never.allows(400));
}

/// Every event of `input` from a decoder made `lean_responses`, byte by byte.
fn lean_bytewise(input: &[u8]) -> Vec<Result<Event, MsrpError>> {
    let mut d = Decoder::default().lean_responses();
    let mut out = Vec::new();
    for b in input {
        d.feed(std::slice::from_ref(b));
        while let Some(r) = d.poll().transpose() {
            let framing = matches!(r, Err(MsrpError::Framing(_)));
            out.push(r);
            if framing {
                return out;
            }
        }
    }
    out
}

#[test]
fn lean_responses_keep_id_and_status_and_every_check() {
    let good = b"MSRP d93kswow 200 OK\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\nX-Other: yes\r\n-------d93kswow$\r\n";
    let full = whole(good);
    let Some(Ok(Event::Response(f))) = full.first() else {
        panic!("{full:?}")
    };
    assert_eq!(f.comment.as_deref(), Some("OK"));
    assert_eq!(f.to_path.len(), 1);
    let lean = lean_bytewise(good);
    assert_eq!(
        lean,
        vec![Ok(Event::Response(ResponseHead {
            transaction_id: "d93kswow".into(),
            status: 200,
            comment: None,
            to_path: Vec::new(),
            from_path: Vec::new(),
            other_headers: Vec::new(),
        }))]
    );

    // Each broken response: the same error as the full decoder's, then the next message.
    let next = b"MSRP nextmsg1 SEND\r\nTo-Path: msrp://b.example.com:1/x;tcp\r\nFrom-Path: msrp://a.example.com:1/y;tcp\r\n-------nextmsg1$\r\n";
    let to = "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n";
    let from = "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\n";
    let broken = [
        format!("MSRP d93kswow 200 OK\r\n{from}-------d93kswow$\r\n"),
        format!("MSRP d93kswow 200 OK\r\n{to}-------d93kswow$\r\n"),
        format!("MSRP d93kswow 200 OK\r\n{to}{to}{from}-------d93kswow$\r\n"),
        format!("MSRP d93kswow 200 OK\r\n{to}{from}{from}-------d93kswow$\r\n"),
        format!("MSRP d93kswow 200 OK\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp http://x/\r\n{from}-------d93kswow$\r\n"),
        format!("MSRP d93kswow 200 OK\r\nTo-Path:  \r\n{from}-------d93kswow$\r\n"),
        format!("MSRP d93kswow 200 OK\r\n{to}From-Path: msrp://alice.example.com:99999/x;tcp\r\n-------d93kswow$\r\n"),
        format!("MSRP d93kswow 200 O\x01K\r\n{to}{from}-------d93kswow$\r\n"),
        format!("MSRP d93kswow 200 OK\r\n{to}{from}Bad Name: x\r\n-------d93kswow$\r\n"),
        format!("MSRP d93kswow 200 OK\r\n{to}{from}Content-Type: text/plain\r\n-------d93kswow$\r\n"),
        format!("MSRP d93kswow 200 OK\r\n{to}{from}\r\nbody\r\n-------d93kswow$\r\n"),
    ];
    for b in &broken {
        let input = [b.as_bytes(), next].concat();
        let expected = whole(&input);
        assert!(
            matches!(
                expected.first(),
                Some(Err(MsrpError::Malformed {
                    transaction_id: None,
                    ..
                }))
            ),
            "{b:?}: {expected:?}"
        );
        assert_eq!(expected.len(), 3, "{b:?}: {expected:?}");
        assert_eq!(lean_bytewise(&input), expected, "{b:?}");
    }
}
