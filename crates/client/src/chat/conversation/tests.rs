//! Unit tests of the conversation core: whole joins, refusals and failures driven with SIP and
//! MSRP bytes and virtual time, no sockets.
use super::*;
use chat_alias_proto::msrp::encode;

const GROUP: &str = "sip:lounge@im.example.net";
const RELAY: &str = "msrp://127.0.0.1:2890/abcdefabcdefabcdef;tcp";
const OWN: &str = "msrp://127.0.0.1:40000/ownsession1234;tcp";

fn conversation() -> Conversation {
    let cfg = Config::new(
        GROUP,
        "127.0.0.1:5060".parse().unwrap(),
        "sip:bob@example.com",
    )
    .alias("bob");
    let uac = Uac::new(InviteParams {
        group: GROUP.into(),
        from: cfg.requested_identity(),
        privacy: true,
        asserted_identity: Some(cfg.identity.clone()),
        transport: cfg.transport,
        local: "127.0.0.1:5070".parse().unwrap(),
        offer: "v=0\r\n".into(),
        t1: InviteParams::T1,
        t2: InviteParams::T2,
    })
    .unwrap();
    Conversation::new(cfg, uac, OWN.into(), Arc::default())
}

/// Every SIP message the core wants sent.
fn sip_out(c: &mut Conversation) -> Vec<SipMessage> {
    std::iter::from_fn(|| c.poll_sip_transmit())
        .map(|b| SipMessage::parse(&b).unwrap())
        .collect()
}

/// Handles every pending event of the cores.
fn settle(c: &mut Conversation, now: Instant) {
    while c.process(now) {}
}

/// The focus's final response to `req` (To-tag `focus1`), with an SDP answer for a 200.
fn answer(req: &SipMessage, code: u16, setup: &str) -> SipMessage {
    let mut s = format!("SIP/2.0 {code} X\r\n");
    for v in req.header_lines("Via") {
        s += &format!("Via: {v}\r\n");
    }
    s += &format!(
        "From: {}\r\nTo: {};tag=focus1\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        req.header("From").unwrap(),
        req.header("To").unwrap(),
        req.header("Call-ID").unwrap(),
        req.header("CSeq").unwrap()
    );
    let body = if code == 200 && req.method() == Some("INVITE") {
        s += &format!("Contact: <{GROUP}>;isfocus\r\nContent-Type: application/sdp\r\n");
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=message 2890 TCP/MSRP *\r\na=accept-types:message/cpim\r\n\
             a=path:{RELAY}\r\na=setup:{setup}\r\na=chatroom:nickname private-messages\r\n"
        )
    } else {
        String::new()
    };
    s += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    SipMessage::parse(s.as_bytes()).unwrap()
}

/// The transaction id of the MSRP request the core wrote last.
fn last_tid(c: &mut Conversation) -> String {
    let out: Vec<u8> = std::iter::from_fn(|| c.poll_msrp_transmit())
        .flatten()
        .collect();
    let text = String::from_utf8_lossy(&out).into_owned();
    let first = text.lines().next().expect("an MSRP request").to_string();
    let mut words = first.split(' ');
    assert_eq!(words.next(), Some("MSRP"), "{first}");
    words.next().unwrap().to_string()
}

fn msrp_response(tid: &str, code: u16) -> Vec<u8> {
    let mut out = Vec::new();
    encode::response(tid, code, Some("x"), OWN, RELAY, &mut out);
    out
}

/// Starts, answers the INVITE with 200 (`a=setup:passive`: we connect) and returns the INVITE.
fn answered(c: &mut Conversation, t0: Instant) -> SipMessage {
    c.start(t0);
    let invite = sip_out(c).remove(0);
    assert_eq!(invite.method(), Some("INVITE"));
    c.handle_sip(t0, answer(&invite, 200, "passive"));
    settle(c, t0);
    invite
}

#[test]
fn a_join_connects_binds_and_reports_joined_once() {
    let mut c = conversation();
    let t0 = Instant::now();
    answered(&mut c, t0);
    // The ACK went out; the core asks for a connection to the answer's a=path.
    assert_eq!(
        sip_out(&mut c)
            .iter()
            .map(|m| m.method().unwrap().to_string())
            .collect::<Vec<_>>(),
        ["ACK"]
    );
    assert_eq!(
        c.poll_action(),
        Some(Action::Connect {
            host: "127.0.0.1".into(),
            port: 2890
        })
    );
    assert_eq!(c.poll_join(), None, "not joined before the bind");
    c.handle_msrp_connected(t0);
    assert_eq!(c.poll_action(), Some(Action::StopListening));
    let tid = last_tid(&mut c);
    c.handle_msrp_bytes(t0, &msrp_response(&tid, 200));
    settle(&mut c, t0);
    let joined = match c.poll_join() {
        Some(Ok(j)) => j,
        other => panic!("{other:?}"),
    };
    assert_eq!(joined.relay, RELAY);
    assert!(joined.private_messages);
    assert!(matches!(c.poll_event(), Some(Event::Joined(_))));
    assert_eq!(c.poll_join(), None, "reported once");
    assert!(!c.is_done());
}

#[test]
fn a_bind_that_gets_no_answer_fails_the_join_after_the_msrp_timeout_and_byes() {
    let mut c = conversation();
    let t0 = Instant::now();
    answered(&mut c, t0);
    sip_out(&mut c);
    assert!(matches!(c.poll_action(), Some(Action::Connect { .. })));
    c.handle_msrp_connected(t0);
    let _ = last_tid(&mut c);
    // Nothing before the deadline.
    let deadline = c.poll_timeout().unwrap();
    assert!(deadline <= t0 + Duration::from_secs(10));
    c.handle_timeout(t0 + Duration::from_secs(9));
    settle(&mut c, t0 + Duration::from_secs(9));
    assert!(sip_out(&mut c).iter().all(|m| m.method() != Some("BYE")));
    // At the MSRP timeout: the join fails, the session is closed and a BYE sent; the failure is
    // reported once the BYE is answered.
    let t1 = t0 + Duration::from_secs(10);
    c.handle_timeout(t1);
    settle(&mut c, t1);
    let bye = sip_out(&mut c)
        .into_iter()
        .find(|m| m.method() == Some("BYE"))
        .expect("a BYE");
    assert!(std::iter::from_fn(|| c.poll_action()).any(|a| a == Action::CloseMsrp));
    assert_eq!(c.poll_join(), None);
    c.handle_sip(t1, answer(&bye, 200, ""));
    settle(&mut c, t1);
    assert!(c.is_done());
    c.finish();
    match c.poll_join() {
        Some(Err(JoinError::Failed(why))) => assert!(why.contains("not set up in time"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refusal_ends_the_session_with_its_code() {
    let mut c = conversation();
    let t0 = Instant::now();
    c.start(t0);
    let invite = sip_out(&mut c).remove(0);
    c.handle_sip(t0, answer(&invite, 486, ""));
    settle(&mut c, t0);
    assert!(c.is_done());
    assert!(matches!(
        c.poll_join(),
        Some(Err(JoinError::Refused { code: 486, .. }))
    ));
    assert_eq!(c.poll_action(), None, "nothing to connect");
}

#[test]
fn an_active_answer_waits_for_the_relay_and_a_send_before_joining_is_refused() {
    let mut c = conversation();
    let t0 = Instant::now();
    c.start(t0);
    let invite = sip_out(&mut c).remove(0);
    c.handle_send(
        t0,
        "2026-12-03T00:00:00Z",
        "m1".into(),
        Recipient::Group,
        "hi".into(),
    );
    match c.poll_event() {
        Some(Event::Error(f)) => assert_eq!(f.kind, FailureKind::Command),
        other => panic!("{other:?}"),
    }
    c.handle_sip(t0, answer(&invite, 200, "active"));
    settle(&mut c, t0);
    assert!(c.is_accepting());
    assert_eq!(c.poll_action(), None, "the relay connects to us");
    c.handle_accepted();
    assert_eq!(c.poll_action(), Some(Action::StopListening));
    assert!(matches!(c.poll_join(), Some(Ok(_))));
    assert!(!c.is_accepting());
}
