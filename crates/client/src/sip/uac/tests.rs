//! Unit tests of the UAC: requests it writes and the events and retransmissions that answers and
//! timeouts (virtual time) lead to.
use super::*;

fn req(transport: Transport) -> InviteParams {
    InviteParams {
        group: "sip:lounge@im.example.net".into(),
        from: Identity::anonymous("bob"),
        privacy: true,
        asserted_identity: Some("sip:bob@example.com".into()),
        transport,
        local: "127.0.0.1:5070".parse().unwrap(),
        offer: "v=0\r\n".into(),
        t1: InviteParams::T1,
        t2: InviteParams::T2,
    }
}

fn parse(b: &[u8]) -> SipMessage {
    SipMessage::parse(b).unwrap()
}

/// The server's response to `request` with `code`, a To-tag and optional extra headers.
fn answer(request: &[u8], code: u16, reason: &str, extra: &str) -> SipMessage {
    let r = parse(request);
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in r.header_lines("Via") {
        s += &format!("Via: {v}\r\n");
    }
    s += &format!(
            "From: {}\r\nTo: {};tag=focus1\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
            r.header("From").unwrap(),
            r.header("To").unwrap(),
            r.header("Call-ID").unwrap(),
            r.header("CSeq").unwrap()
        );
    parse(s.as_bytes())
}

fn drain(u: &mut Uac) -> Vec<SipMessage> {
    std::iter::from_fn(|| u.poll_transmit())
        .map(|b| parse(&b))
        .collect()
}

#[test]
fn invite_carries_the_cr_headers() {
    let mut u = Uac::new(req(Transport::Udp)).unwrap();
    let t0 = Instant::now();
    u.start(t0);
    let inv = drain(&mut u).remove(0);
    assert_eq!(
        inv.start,
        StartLine::Request {
            method: "INVITE".into(),
            uri: "sip:lounge@im.example.net".into()
        }
    );
    let from = psip::parse_name_addr(inv.header("From").unwrap()).unwrap();
    assert_eq!(from.display_name.as_deref(), Some("bob"));
    assert_eq!(from.uri, "sip:anonymous@anonymous.invalid");
    assert!(from.tag().is_some());
    assert_eq!(inv.header("Privacy"), Some("id"));
    assert_eq!(
        inv.header("P-Asserted-Identity"),
        Some("<sip:bob@example.com>")
    );
    assert_eq!(inv.header("To"), Some("<sip:lounge@im.example.net>"));
    assert!(inv.top_branch().unwrap().starts_with("z9hG4bK"));
    assert_eq!(inv.header("Content-Type"), Some("application/sdp"));
    assert_eq!(inv.body, b"v=0\r\n");
    assert!(inv.header("Accept").unwrap().contains("multipart/mixed"));
}

#[test]
fn udp_timer_a_doubles_until_a_provisional_then_timer_b_still_bounds() {
    let mut u = Uac::new(req(Transport::Udp)).unwrap();
    let t0 = Instant::now();
    u.start(t0);
    let inv = u.poll_transmit().unwrap();
    let mut sent_at = Vec::new();
    let mut now = t0;
    while let Some(next) = u.poll_timeout() {
        if next > t0 + Duration::from_secs(8) {
            break;
        }
        now = next;
        u.handle_timeout(now);
        while let Some(b) = u.poll_transmit() {
            assert_eq!(b, inv, "a retransmission is the same bytes");
            sent_at.push(now - t0);
        }
    }
    let ms: Vec<u128> = sent_at.iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, vec![500, 1500, 3500, 7500]);
    // A 100 stops the retransmissions.
    u.handle_message(now, answer(&inv, 100, "Trying", ""));
    assert!(matches!(
        u.poll_event(),
        Some(UacEvent::Provisional { code: 100, .. })
    ));
    assert_eq!(u.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    u.handle_timeout(t0 + Duration::from_secs(32));
    assert!(u.poll_transmit().is_none());
    assert!(matches!(
        u.poll_event(),
        Some(UacEvent::Refused {
            code: 408,
            local: true,
            ..
        })
    ));
    assert!(u.is_done());
    assert_eq!(u.poll_timeout(), None);
}

#[test]
fn tcp_never_retransmits_and_times_out_at_64_t1() {
    let mut u = Uac::new(req(Transport::Tcp)).unwrap();
    let t0 = Instant::now();
    u.start(t0);
    assert!(u.poll_transmit().is_some());
    assert_eq!(u.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    u.handle_timeout(t0 + Duration::from_secs(31));
    assert!(u.poll_transmit().is_none());
    u.handle_timeout(t0 + Duration::from_secs(32));
    assert!(matches!(
        u.poll_event(),
        Some(UacEvent::Refused { code: 408, .. })
    ));
}

#[test]
fn refusal_is_acked_in_the_transaction_and_reacked_on_retransmission() {
    let mut u = Uac::new(req(Transport::Udp)).unwrap();
    let t0 = Instant::now();
    u.start(t0);
    let inv = u.poll_transmit().unwrap();
    let r = answer(
        &inv,
        403,
        "Forbidden (anonymity not allowed for this identity)",
        "",
    );
    u.handle_message(t0, r.clone());
    assert_eq!(
        u.poll_event(),
        Some(UacEvent::Refused {
            code: 403,
            reason: "Forbidden (anonymity not allowed for this identity)".into(),
            local: false
        })
    );
    let ack = parse(&u.poll_transmit().unwrap());
    let invm = parse(&inv);
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(ack.top_branch(), invm.top_branch());
    assert_eq!(ack.cseq(), Some((1, "ACK".into())));
    assert_eq!(ack.tag_of("To").as_deref(), Some("focus1"));
    u.handle_message(t0, r);
    assert_eq!(parse(&u.poll_transmit().unwrap()).method(), Some("ACK"));
    assert!(u.poll_event().is_none());
}

#[test]
fn answer_ack_retransmitted_2xx_and_bye() {
    let mut u = Uac::new(req(Transport::Udp)).unwrap();
    let t0 = Instant::now();
    u.start(t0);
    let inv = u.poll_transmit().unwrap();
    let ok = answer(
            &inv,
            200,
            "OK",
            "Contact: <sip:lounge@im.example.net>;isfocus\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\n",
        );
    u.handle_message(t0, ok.clone());
    assert!(matches!(u.poll_event(), Some(UacEvent::Answered(_))));
    assert!(u.is_established());
    let ack = parse(&u.poll_transmit().unwrap());
    assert_eq!(ack.method(), Some("ACK"));
    assert_ne!(ack.top_branch(), parse(&inv).top_branch());
    assert_eq!(
        ack.header_lines("Route"),
        vec!["<sip:p2;lr>", "<sip:p1;lr>"]
    );
    assert_eq!(ack.tag_of("To").as_deref(), Some("focus1"));
    // A retransmitted 200: the same ACK again, no new event.
    u.handle_message(t0, ok);
    assert_eq!(parse(&u.poll_transmit().unwrap()), ack);
    assert!(u.poll_event().is_none());
    assert_eq!(u.poll_timeout(), None);

    let t1 = t0 + Duration::from_secs(10);
    u.leave(t1);
    let bye_bytes = u.poll_transmit().unwrap();
    let bye = parse(&bye_bytes);
    assert_eq!(
        bye.start,
        StartLine::Request {
            method: "BYE".into(),
            uri: "sip:lounge@im.example.net".into()
        }
    );
    assert_eq!(bye.cseq(), Some((2, "BYE".into())));
    assert_eq!(bye.tag_of("To").as_deref(), Some("focus1"));
    // Timer E: 0.5, 1, 2, 4, 4 s.
    let mut at = Vec::new();
    let mut now = t1;
    for _ in 0..5 {
        now = u.poll_timeout().unwrap();
        u.handle_timeout(now);
        assert_eq!(u.poll_transmit().unwrap(), bye_bytes);
        at.push((now - t1).as_millis());
    }
    assert_eq!(at, vec![500, 1500, 3500, 7500, 11500]);
    u.handle_message(now, answer(&bye_bytes, 200, "OK", ""));
    assert_eq!(
        u.poll_event(),
        Some(UacEvent::Left {
            code: 200,
            reason: "OK".into(),
            local: false
        })
    );
    assert!(u.is_done());
    assert_eq!(u.poll_timeout(), None);
}

#[test]
fn bye_times_out_with_timer_f() {
    let mut u = Uac::new(req(Transport::Tcp)).unwrap();
    let t0 = Instant::now();
    u.start(t0);
    let inv = u.poll_transmit().unwrap();
    u.handle_message(t0, answer(&inv, 200, "OK", ""));
    drain(&mut u);
    u.leave(t0);
    assert!(u.poll_transmit().is_some());
    assert_eq!(u.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    u.handle_timeout(t0 + Duration::from_secs(32));
    assert!(matches!(u.poll_event(), Some(UacEvent::Answered(_))));
    assert!(matches!(
        u.poll_event(),
        Some(UacEvent::Left {
            code: 408,
            local: true,
            ..
        })
    ));
}

#[test]
fn leaving_while_pending_byes_right_after_the_answer() {
    let mut u = Uac::new(req(Transport::Udp)).unwrap();
    let t0 = Instant::now();
    u.start(t0);
    let inv = u.poll_transmit().unwrap();
    u.leave(t0);
    u.handle_message(t0, answer(&inv, 200, "OK", ""));
    let sent = drain(&mut u);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].method(), Some("ACK"));
    assert_eq!(sent[1].method(), Some("BYE"));
    assert!(
        u.poll_event().is_none(),
        "no Answered for an abandoned join"
    );
}

#[test]
fn server_bye_and_options_are_answered() {
    let mut u = Uac::new(req(Transport::Udp)).unwrap();
    let t0 = Instant::now();
    u.start(t0);
    let inv = u.poll_transmit().unwrap();
    u.handle_message(t0, answer(&inv, 200, "OK", ""));
    drain(&mut u);
    assert!(matches!(u.poll_event(), Some(UacEvent::Answered(_))));
    let bye = format!(
            "BYE sip:127.0.0.1:5070;transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsrv\r\n\
             From: <sip:lounge@im.example.net>;tag=focus1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 10 BYE\r\nContent-Length: 0\r\n\r\n",
            u.from_value, u.call_id
        );
    u.handle_message(t0, parse(bye.as_bytes()));
    assert_eq!(u.poll_event(), Some(UacEvent::EndedByPeer));
    let r = parse(&u.poll_transmit().unwrap());
    assert_eq!(r.code(), Some(200));
    assert_eq!(r.top_branch(), Some("z9hG4bKsrv"));
    assert_eq!(r.cseq(), Some((10, "BYE".into())));
    assert!(u.is_done());
    // A retransmitted BYE is answered again without a second event.
    u.handle_message(t0, parse(bye.as_bytes()));
    assert_eq!(parse(&u.poll_transmit().unwrap()).code(), Some(200));
    assert!(u.poll_event().is_none());
    let opt = "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKo\r\nFrom: <sip:a@b>;tag=1\r\n\
                   To: <sip:x>\r\nCall-ID: other\r\nCSeq: 1 OPTIONS\r\n\r\n";
    u.handle_message(t0, parse(opt.as_bytes()));
    let r = parse(&u.poll_transmit().unwrap());
    assert_eq!(r.code(), Some(200));
    assert!(r.tag_of("To").is_some());
}

#[test]
fn responses_of_other_transactions_are_ignored() {
    let mut u = Uac::new(req(Transport::Udp)).unwrap();
    let t0 = Instant::now();
    u.start(t0);
    let inv = u.poll_transmit().unwrap();
    let other = String::from_utf8(inv.clone())
        .unwrap()
        .replace("branch=z9hG4bK", "branch=z9hG4bKother");
    u.handle_message(t0, answer(other.as_bytes(), 486, "Busy Here", ""));
    assert!(u.poll_event().is_none());
    assert!(!u.is_done());
}

#[test]
fn transport_errors_end_the_pending_transaction_as_503() {
    let mut u = Uac::new(req(Transport::Udp)).unwrap();
    let t0 = Instant::now();
    u.start(t0);
    u.poll_transmit();
    u.handle_transport_error("port unreachable");
    assert!(matches!(
        u.poll_event(),
        Some(UacEvent::Refused {
            code: 503,
            local: true,
            ..
        })
    ));
    assert!(u.is_done());
    assert_eq!(u.poll_timeout(), None);
}

#[test]
fn bad_inputs_are_refused_up_front() {
    let mut r = req(Transport::Udp);
    r.from = Identity::anonymous("bob\r\nX-Injected: 1");
    assert!(Uac::new(r).is_err());
    let mut r = req(Transport::Udp);
    r.group = "not a uri".into();
    assert!(Uac::new(r).is_err());
}
