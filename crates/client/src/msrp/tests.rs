//! Unit tests of the MSRP session: binding, chunking, reports and reassembly, fed bytes and time.
use super::*;
use chat_alias_proto::msrp::{ReportMode, ResponseHead};

const RELAY: &str = "msrp://127.0.0.1:2855/relaysession;tcp";
const OWN: &str = "msrp://127.0.0.1:40000/ownsession1234;tcp";

/// Requests with their bodies and end flags, and responses.
type Frames = (Vec<(RequestHead, Vec<u8>, Continuation)>, Vec<ResponseHead>);

/// Decodes everything the session wrote.
fn frames(bytes: &[u8]) -> Frames {
    let mut d = Decoder::new(Limits::default());
    d.feed(bytes);
    let (mut reqs, mut resps) = (Vec::new(), Vec::new());
    let mut cur: Option<(RequestHead, Vec<u8>)> = None;
    while let Some(ev) = d.poll().unwrap() {
        match ev {
            Frame::Request(h) => cur = Some((h, Vec::new())),
            Frame::Body(b) => cur.as_mut().unwrap().1.extend_from_slice(&b),
            Frame::End { continuation, .. } => {
                let (h, b) = cur.take().unwrap();
                reqs.push((h, b, continuation));
            }
            Frame::Response(r) => resps.push(r),
        }
    }
    (reqs, resps)
}

fn drain(s: &mut Session) -> Vec<u8> {
    std::iter::from_fn(|| s.poll_transmit()).flatten().collect()
}

fn respond(tid: &str, code: u16) -> Vec<u8> {
    let mut out = Vec::new();
    encode::response(tid, code, Some("x"), OWN, RELAY, &mut out);
    out
}

fn send_frame(
    mid: &str,
    range: ByteRange,
    body: &[u8],
    cont: Continuation,
    failure: Option<ReportMode>,
) -> Vec<u8> {
    let mut h = RequestHead::new(
        new_tid(),
        Method::Send,
        vec![OWN.into()],
        vec![RELAY.into()],
    );
    h.message_id = Some(mid.into());
    h.byte_range = Some(range);
    h.failure_report = failure;
    if !body.is_empty() {
        h.content_type = Some("message/cpim".into());
    }
    let mut out = Vec::new();
    encode::request_head(&h, &mut out);
    out.extend_from_slice(body);
    encode::end_line(&h.transaction_id, cont, !body.is_empty(), &mut out);
    out
}

#[test]
fn bind_is_a_bodiless_send_and_its_200_binds() {
    let now = Instant::now();
    let mut s = Session::new(OWN.into(), vec![RELAY.into()]);
    s.bind(now);
    let (reqs, _) = frames(&drain(&mut s));
    let (h, body, cont) = &reqs[0];
    assert_eq!(h.method, Method::Send);
    assert_eq!(h.to_path, vec![RELAY.to_string()]);
    assert_eq!(h.from_path, vec![OWN.to_string()]);
    assert_eq!(h.content_type, None);
    assert!(body.is_empty());
    assert_eq!(*cont, Continuation::End);
    assert_eq!(h.byte_range.unwrap().to_string(), "1-0/0");
    assert!(h.message_id.is_some());
    s.handle_bytes(now, &respond(&h.transaction_id, 200));
    assert_eq!(s.poll_event(), Some(MsrpEvent::Bound));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn bind_refused_or_unanswered() {
    let now = Instant::now();
    let mut s = Session::new(OWN.into(), vec![RELAY.into()]);
    s.bind(now);
    let (reqs, _) = frames(&drain(&mut s));
    s.handle_bytes(now, &respond(&reqs[0].0.transaction_id, 481));
    assert!(matches!(
        s.poll_event(),
        Some(MsrpEvent::BindFailed {
            code: 481,
            local: false,
            ..
        })
    ));
    s.bind(now);
    assert_eq!(s.poll_timeout(), Some(now + TRANSACTION_TIMEOUT));
    s.handle_timeout(now + TRANSACTION_TIMEOUT);
    assert!(matches!(
        s.poll_event(),
        Some(MsrpEvent::BindFailed {
            code: 408,
            local: true,
            ..
        })
    ));
}

#[test]
fn large_messages_are_chunked_and_delivered_when_every_chunk_is_answered() {
    let now = Instant::now();
    let mut s = Session::new(OWN.into(), vec![RELAY.into()]).with_chunk_size(2048);
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(s.send(now, "msg1abcd", "message/cpim", &body), 3);
    let (reqs, _) = frames(&drain(&mut s));
    assert_eq!(reqs.len(), 3);
    let ranges: Vec<String> = reqs
        .iter()
        .map(|r| r.0.byte_range.unwrap().to_string())
        .collect();
    assert_eq!(
        ranges,
        vec!["1-2048/5000", "2049-4096/5000", "4097-5000/5000"]
    );
    let flags: Vec<Continuation> = reqs.iter().map(|r| r.2).collect();
    assert_eq!(
        flags,
        vec![Continuation::More, Continuation::More, Continuation::End]
    );
    assert!(reqs
        .iter()
        .all(|r| r.0.message_id.as_deref() == Some("msg1abcd")));
    assert!(reqs
        .iter()
        .all(|r| r.0.content_type.as_deref() == Some("message/cpim")));
    let tids: std::collections::HashSet<_> =
        reqs.iter().map(|r| r.0.transaction_id.clone()).collect();
    assert_eq!(tids.len(), 3, "a transaction id per chunk");
    let joined: Vec<u8> = reqs.iter().flat_map(|r| r.1.clone()).collect();
    assert_eq!(joined, body);
    for (i, r) in reqs.iter().enumerate() {
        s.handle_bytes(now, &respond(&r.0.transaction_id, 200));
        if i < 2 {
            assert_eq!(s.poll_event(), None);
        }
    }
    assert_eq!(
        s.poll_event(),
        Some(MsrpEvent::Delivered {
            message_id: "msg1abcd".into()
        })
    );
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn the_first_refusal_fails_the_message_once() {
    let now = Instant::now();
    let mut s = Session::new(OWN.into(), vec![RELAY.into()]).with_chunk_size(10);
    s.send(now, "msg2abcd", "message/cpim", &[b'x'; 25]);
    let (reqs, _) = frames(&drain(&mut s));
    s.handle_bytes(now, &respond(&reqs[0].0.transaction_id, 404));
    s.handle_bytes(now, &respond(&reqs[1].0.transaction_id, 404));
    assert_eq!(
        s.poll_event(),
        Some(MsrpEvent::SendFailed {
            message_id: "msg2abcd".into(),
            code: 404,
            comment: "x".into(),
            local: false
        })
    );
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(now + TRANSACTION_TIMEOUT);
    assert_eq!(
        s.poll_event(),
        None,
        "no second failure for the same message"
    );
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn incoming_chunks_are_answered_and_reassembled() {
    let now = Instant::now();
    let mut s = Session::new(OWN.into(), vec![RELAY.into()]);
    let total = Some(11);
    let mut wire = send_frame(
        "in1abcd",
        ByteRange {
            start: 1,
            end: Some(5),
            total,
        },
        b"hello",
        Continuation::More,
        None,
    );
    wire.extend(send_frame(
        "in1abcd",
        ByteRange {
            start: 6,
            end: Some(11),
            total,
        },
        b" world",
        Continuation::End,
        None,
    ));
    // Fed a byte at a time.
    for b in &wire {
        s.handle_bytes(now, std::slice::from_ref(b));
    }
    assert_eq!(
        s.poll_event(),
        Some(MsrpEvent::Received {
            message_id: "in1abcd".into(),
            content_type: "message/cpim".into(),
            body: b"hello world".to_vec()
        })
    );
    let (_, resps) = frames(&drain(&mut s));
    assert_eq!(resps.len(), 2);
    assert!(resps.iter().all(|r| r.status == 200
        && r.to_path == vec![RELAY.to_string()]
        && r.from_path == vec![OWN.to_string()]));
}

#[test]
fn failure_report_no_and_partial_get_no_200() {
    let now = Instant::now();
    let mut s = Session::new(OWN.into(), vec![RELAY.into()]);
    let r = ByteRange {
        start: 1,
        end: Some(2),
        total: Some(2),
    };
    s.handle_bytes(
        now,
        &send_frame("in2abcd", r, b"hi", Continuation::End, Some(ReportMode::No)),
    );
    s.handle_bytes(
        now,
        &send_frame(
            "in3abcd",
            r,
            b"yo",
            Continuation::End,
            Some(ReportMode::Partial),
        ),
    );
    assert!(s.poll_transmit().is_none());
    assert!(matches!(s.poll_event(), Some(MsrpEvent::Received { .. })));
    assert!(matches!(s.poll_event(), Some(MsrpEvent::Received { .. })));
}

#[test]
fn aborted_too_large_and_bodiless() {
    let now = Instant::now();
    let mut s = Session::new(OWN.into(), vec![RELAY.into()]).with_max_incoming(8);
    s.handle_bytes(
        now,
        &send_frame(
            "bind1abc",
            ByteRange {
                start: 1,
                end: Some(0),
                total: Some(0),
            },
            b"",
            Continuation::End,
            None,
        ),
    );
    assert_eq!(s.poll_event(), None);
    s.handle_bytes(
        now,
        &send_frame(
            "ab1abcd",
            ByteRange {
                start: 1,
                end: Some(3),
                total: None,
            },
            b"abc",
            Continuation::Abort,
            None,
        ),
    );
    assert!(matches!(s.poll_event(), Some(MsrpEvent::Dropped { .. })));
    s.handle_bytes(
        now,
        &send_frame(
            "big1abcd",
            ByteRange {
                start: 1,
                end: Some(5),
                total: Some(20),
            },
            b"12345",
            Continuation::More,
            None,
        ),
    );
    s.handle_bytes(
        now,
        &send_frame(
            "big1abcd",
            ByteRange {
                start: 6,
                end: Some(20),
                total: Some(20),
            },
            b"678901234567890",
            Continuation::End,
            None,
        ),
    );
    assert!(matches!(s.poll_event(), Some(MsrpEvent::Dropped { .. })));
    let (_, resps) = frames(&drain(&mut s));
    let codes: Vec<u16> = resps.iter().map(|r| r.status).collect();
    assert_eq!(codes, vec![200, 200, 413, 413]);
}

/// Two sessions back to back (what one writes, the other reads): a chunked message goes
/// across, is answered chunk by chunk and reassembled; the sender learns it was delivered.
#[test]
fn two_sessions_back_to_back() {
    let now = Instant::now();
    let mut a = Session::new(OWN.into(), vec![RELAY.into()]).with_chunk_size(100);
    let mut b = Session::new(RELAY.into(), vec![OWN.into()]);
    let body: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(a.send(now, "pair1abc", "message/cpim", &body), 10);
    b.handle_bytes(now, &drain(&mut a));
    assert_eq!(
        b.poll_event(),
        Some(MsrpEvent::Received {
            message_id: "pair1abc".into(),
            content_type: "message/cpim".into(),
            body
        })
    );
    a.handle_bytes(now, &drain(&mut b));
    assert_eq!(
        a.poll_event(),
        Some(MsrpEvent::Delivered {
            message_id: "pair1abc".into()
        })
    );
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn reports_and_unknown_methods() {
    let now = Instant::now();
    let mut s = Session::new(OWN.into(), vec![RELAY.into()]);
    let report = format!(
            "MSRP rep1abcd REPORT\r\nTo-Path: {OWN}\r\nFrom-Path: {RELAY}\r\nMessage-ID: m1abcd\r\nByte-Range: 1-5/5\r\nStatus: 000 408 Request Timeout\r\n-------rep1abcd$\r\n"
        );
    s.handle_bytes(now, report.as_bytes());
    assert_eq!(
        s.poll_event(),
        Some(MsrpEvent::Report {
            message_id: "m1abcd".into(),
            code: 408,
            comment: "Request Timeout".into()
        })
    );
    assert!(s.poll_transmit().is_none(), "REPORTs are never answered");
    let nick = format!("MSRP nick1abc NICKNAME\r\nTo-Path: {OWN}\r\nFrom-Path: {RELAY}\r\nUse-Nickname: \"x\"\r\n-------nick1abc$\r\n");
    s.handle_bytes(now, nick.as_bytes());
    let (_, resps) = frames(&drain(&mut s));
    assert_eq!(resps[0].status, 501);
    s.handle_bytes(now, b"GARBAGE\r\n\r\n");
    assert!(matches!(s.poll_event(), Some(MsrpEvent::Fatal(_))));
}
