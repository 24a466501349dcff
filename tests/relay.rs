//! End-to-end: the MSRP switch, through a real Kamailio with chat_alias and the real relay, with
//! real TCP clients that join over SIP and then chat over MSRP.
mod support;

use chat_alias_proto::cpim;
use chat_alias_proto::msrp::{Continuation, ReportMode};
use std::time::{Duration, Instant};
use support::msrp::{cpim as cpim_body, new_id, Client, Frame};
use support::participant::Participant;
use support::sip::leave;
use support::{metric, Stack, StackOptions};

const LOUNGE: &str = "sip:lounge@im.example.net";
const QUIET: &str = "sip:quiet@im.example.net";
const T: Duration = Duration::from_secs(3);
/// How long "nothing arrives" is watched for.
const QUIET_PERIOD: Duration = Duration::from_millis(400);

/// Alice (named), then two anonymous bobs: `bob` and `bob-2`.
fn lounge(stack: &Stack) -> (Participant, Participant, Participant) {
    let alice = Participant::enter(stack, LOUNGE, "sip:alice@example.com", Some("Alice"), false);
    let bob = Participant::enter(
        stack,
        LOUNGE,
        "sip:bob.secret@example.com",
        Some("bob"),
        true,
    );
    let bob2 = Participant::enter(stack, LOUNGE, "sip:robert@example.org", Some("bob"), true);
    assert_eq!(bob2.name.as_deref(), Some("bob-2"));
    assert_eq!(bob2.uri, "sip:anonymous2@anonymous.invalid");
    (alice, bob, bob2)
}

fn nothing_for(c: &mut Client) {
    let got = c.drain(QUIET_PERIOD);
    assert!(got.is_empty(), "unexpected frames: {got:?}");
}

#[test]
fn binding_rules_481_506_403() {
    let stack = Stack::start("relay-binding");
    let alice = Participant::join(
        &stack,
        LOUNGE,
        "sip:alice@example.com",
        Some("Alice"),
        false,
    );
    // An unknown session on the relay.
    let (base, _) = alice.relay.rsplit_once('/').unwrap();
    let unknown = format!("{base}/0123456789abcdef0123456789abcdef;tcp");
    assert_ne!(unknown, alice.relay);
    let mut c = Client::connect(&unknown, &alice.own);
    assert_eq!(c.bind(), Some(481));
    // The right session, but not the From-Path the participant offered.
    let mut c = Client::connect(&alice.relay, "msrp://127.0.0.1:40999/notmine;tcp");
    assert_eq!(c.bind(), Some(403));
    // The right one binds (on the connection that was refused before, too).
    c.own = alice.own.clone();
    assert_eq!(c.bind(), Some(200));
    // A second connection for the bound session.
    let mut c2 = Client::connect(&alice.relay, &alice.own);
    assert_eq!(c2.bind(), Some(506));
    // A connection that binds nothing is closed.
    let mut idle = Client::connect(&alice.relay, &alice.own);
    assert!(
        idle.wait_closed(Duration::from_secs(8)),
        "unbound connection closed"
    );
}

#[test]
fn fan_out_with_cpim_from_and_private_messages() {
    let stack = Stack::start("relay-fanout");
    let (mut alice, mut bob, mut bob2) = lounge(&stack);
    // Alice to the room: both bobs get it, byte-for-byte; Alice gets nothing back but her 200.
    let (body, st) = alice.say(&format!("<{LOUNGE}>"), "hello room");
    assert_eq!(st, Some(200));
    for m in [&mut bob, &mut bob2] {
        let got = m.m().next_message(T).expect("message");
        assert_eq!(got.body, body);
        assert_eq!(got.end, Continuation::End);
        let h = &got.heads[0];
        assert_eq!(h.to_path, vec![m.own.clone()]);
        assert_eq!(h.from_path, vec![m.relay.clone()]);
        let c = cpim::parse_headers(&got.body).unwrap();
        assert_eq!(c.from.unwrap().uri, "sip:alice@example.com");
    }
    nothing_for(alice.m());
    // Bob (anonymous) to the room: the CPIM From is his alias.
    let (body, st) = bob.say(&format!("<{LOUNGE}>"), "hi, I am bob");
    assert_eq!(st, Some(200));
    for m in [&mut alice, &mut bob2] {
        let got = m.m().next_message(T).expect("message");
        assert_eq!(got.body, body);
        let from = cpim::parse_headers(&got.body).unwrap().from.unwrap();
        assert_eq!(from.display_name.as_deref(), Some("bob"));
        assert_eq!(from.uri, "sip:anonymous@anonymous.invalid");
    }
    // A private message from bob to bob-2 reaches bob-2 only.
    let to = format!("<{}>", bob2.uri);
    let (body, st) = bob.say(&to, "psst");
    assert_eq!(st, Some(200));
    assert_eq!(bob2.m().next_message(T).expect("private").body, body);
    nothing_for(alice.m());
    // A private message to someone not in the room.
    let (_, st) = bob.say("<sip:anonymous7@anonymous.invalid>", "anyone?");
    assert_eq!(st, Some(404));
    nothing_for(alice.m());
    nothing_for(bob2.m());
    nothing_for(bob.m());
}

#[test]
fn private_messages_not_allowed_428() {
    let stack = Stack::start("relay-quiet");
    let mut a = Participant::enter(&stack, QUIET, "sip:alice@example.com", Some("ann"), true);
    let mut b = Participant::enter(&stack, QUIET, "sip:bob@example.com", Some("ben"), true);
    let to = format!("<{}>", b.uri);
    let (_, st) = a.say(&to, "psst");
    assert_eq!(st, Some(428));
    nothing_for(b.m());
    // Regular messages still flow.
    let (body, st) = a.say(&format!("<{QUIET}>"), "hello");
    assert_eq!(st, Some(200));
    assert_eq!(b.m().next_message(T).unwrap().body, body);
}

#[test]
fn refusals_403_415_and_failure_report_no() {
    let stack = Stack::start("relay-refusals");
    let (mut alice, mut bob, mut bob2) = lounge(&stack);
    let room = format!("<{LOUNGE}>");
    // Bob speaks as bob-2 (another participant's alias): 403, nobody gets it.
    let spoof = cpim_body(&bob2.cpim_from(), &[&room], "text/plain", b"I am bob-2");
    assert_eq!(bob.m().send_cpim(&spoof), Some(403));
    // Bob speaks under his own real address: 403.
    let real = cpim_body(
        "<sip:bob.secret@example.com>",
        &[&room],
        "text/plain",
        b"it's me",
    );
    assert_eq!(bob.m().send_cpim(&real), Some(403));
    // Bob's URI with Alice's name: 403.
    let named = cpim_body(
        &format!("\"Alice\" <{}>", bob.uri),
        &[&room],
        "text/plain",
        b"x",
    );
    assert_eq!(bob.m().send_cpim(&named), Some(403));
    // His own name is compared by RFC 8266 (case, width): accepted; look-alikes are other
    // names (digit zero, Cyrillic o, a bidi override): 403.
    for (name, code) in [
        ("BOB", 200),
        ("\u{FF22}\u{FF2F}\u{FF22}", 200),
        ("B0b", 403),
        ("b\u{043E}b", 403),
        ("\u{202E}bob", 403),
    ] {
        let body = cpim_body(
            &format!("\"{name}\" <{}>", bob.uri),
            &[&room],
            "text/plain",
            b"x",
        );
        assert_eq!(bob.m().send_cpim(&body), Some(code), "{name:?}");
        if code == 200 {
            assert_eq!(alice.m().next_message(T).unwrap().body, body);
            assert_eq!(bob2.m().next_message(T).unwrap().body, body);
        }
    }
    // Several To: 403.
    let two = cpim_body(
        &bob.cpim_from(),
        &[&room, &format!("<{}>", alice.uri)],
        "text/plain",
        b"x",
    );
    assert_eq!(bob.m().send_cpim(&two), Some(403));
    // Not CPIM: 415.
    assert_eq!(
        bob.m().send_message("text/plain", b"plain", None, T),
        Some(415)
    );
    // Failure-Report: no and a spoof: no response at all, and nobody receives it.
    assert_eq!(
        bob.m()
            .send_message("message/cpim", &spoof, Some(ReportMode::No), QUIET_PERIOD),
        None
    );
    nothing_for(bob.m());
    nothing_for(alice.m());
    nothing_for(bob2.m());
    // Bob is still connected and may speak as himself.
    let (body, st) = bob.say(&room, "ok, it's bob");
    assert_eq!(st, Some(200));
    assert_eq!(alice.m().next_message(T).unwrap().body, body);
    assert_eq!(bob2.m().next_message(T).unwrap().body, body);
}

#[test]
fn chunked_one_mebibyte_message_arrives_intact() {
    let stack = Stack::start("relay-1mib");
    let (mut alice, mut bob, mut bob2) = lounge(&stack);
    let mut text = Vec::with_capacity(1 << 20);
    let mut i: u32 = 0;
    while text.len() < (1 << 20) {
        text.extend_from_slice(format!("{i:07}|").as_bytes());
        i = i.wrapping_mul(2_654_435_761).wrapping_add(1) % 10_000_000;
    }
    text.truncate(1 << 20);
    let body = cpim_body(
        &alice.cpim_from(),
        &[&format!("<{LOUNGE}>")],
        "text/plain",
        &text,
    );
    let st = alice.m().send_chunked(&body, 200_000, true);
    assert!(st.iter().all(|s| *s == Some(200)), "{st:?}");
    for m in [&mut bob, &mut bob2] {
        let got = m
            .m()
            .next_message(Duration::from_secs(10))
            .expect("the message");
        assert_eq!(got.end, Continuation::End);
        assert!(got.body == body, "byte-identical reassembly");
        assert!(got.heads.len() >= 16, "re-chunked into ≤ 64 KiB frames");
        let mid = got.heads[0].message_id.clone();
        assert!(got.heads.iter().all(|h| h.message_id == mid));
        assert_eq!(
            got.heads[0].byte_range.unwrap().total,
            Some(body.len() as u64)
        );
    }
}

#[test]
fn message_over_max_size_gets_413() {
    let stack = Stack::start_with(
        "relay-maxsize",
        StackOptions {
            extra_relay_args: vec!["--max-size".into(), "100000".into()],
            ..Default::default()
        },
    );
    let (mut alice, mut bob, _bob2) = lounge(&stack);
    assert!(
        alice.ok.body_text().contains("a=max-size:100000"),
        "{}",
        alice.ok.body_text()
    );
    let big = cpim_body(
        &alice.cpim_from(),
        &[&format!("<{LOUNGE}>")],
        "text/plain",
        &vec![b'x'; 150_000],
    );
    assert_eq!(alice.m().send_cpim(&big), Some(413));
    // Unknown total: the relay notices while receiving.
    let st = alice.m().send_chunked(&big, 60_000, false);
    assert!(st.contains(&Some(413)), "{st:?}");
    // Bob got no complete message: at most a beginning that ends in `#`.
    for f in bob.m().drain(QUIET_PERIOD) {
        if let Frame::Request { cont, .. } = f {
            assert_ne!(cont, Continuation::End);
        }
    }
    let (body, st) = alice.say(&format!("<{LOUNGE}>"), "small is fine");
    assert_eq!(st, Some(200));
    assert_eq!(bob.m().next_message(T).unwrap().body, body);
}

#[test]
fn slow_reader_is_cut_off_while_the_others_keep_chatting() {
    let metrics_addr = format!("127.0.0.1:{}", support::free_port());
    let stack = Stack::start_with(
        "relay-slow",
        StackOptions {
            extra_relay_args: vec![
                "--queue-bytes".into(),
                "1048576".into(),
                "--congestion-timeout".into(),
                "1s".into(),
                "--metrics".into(),
                metrics_addr.clone(),
            ],
            ..Default::default()
        },
    );
    let (mut alice, mut bob, mut bob2) = lounge(&stack);
    // Bob stops reading. Alice keeps sending 256 KiB messages; bob-2 reads them all.
    bob.m().auto_answer = false;
    let room = format!("<{LOUNGE}>");
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut sent = 0;
    loop {
        let text = vec![b'a' + (sent % 26) as u8; 256 * 1024];
        let body = cpim_body(&alice.cpim_from(), &[&room], "text/plain", &text);
        let st = alice.m().send_chunked(&body, 256 * 1024 + 200, true);
        assert_eq!(st, vec![Some(200)], "message {sent}");
        let got = bob2
            .m()
            .next_message(Duration::from_secs(10))
            .expect("bob-2 keeps receiving");
        assert!(got.body == body, "message {sent} intact for bob-2");
        sent += 1;
        if metric(
            &metrics_addr,
            "chat_alias_relay_congestion_disconnects_total",
        ) >= 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow reader was never cut off ({sent} messages)"
        );
    }
    assert!(
        metric(
            &metrics_addr,
            "chat_alias_relay_drops_total{reason=\"congestion\"}"
        ) >= 1
    );
    // Bob's connection was closed by the relay: reading drains what was buffered, then EOF.
    assert!(
        bob.m().wait_closed(Duration::from_secs(20)),
        "slow reader's connection closed"
    );
    // The room goes on.
    let (body, st) = alice.say(&room, "still chatting");
    assert_eq!(st, Some(200));
    assert_eq!(bob2.m().next_message(T).unwrap().body, body);
    assert_eq!(metric(&metrics_addr, "chat_alias_relay_bound_sessions"), 2);
    assert_eq!(metric(&metrics_addr, "chat_alias_relay_participants"), 3);
}

#[test]
fn bye_closes_the_msrp_connection_within_a_second() {
    let stack = Stack::start("relay-bye");
    let (mut alice, mut bob, _bob2) = lounge(&stack);
    let r = leave(&mut bob.sip, &bob.inv, &bob.ok);
    assert_eq!(r.code, 200);
    let t0 = Instant::now();
    assert!(
        bob.m().wait_closed(Duration::from_secs(3)),
        "MSRP connection closed after BYE"
    );
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "closed in {:?}",
        t0.elapsed()
    );
    // Bob's session is gone: a new connection for it is 481.
    let mut again = Client::connect(&bob.relay, &bob.own);
    assert_eq!(again.bind(), Some(481));
    let (_, st) = alice.say(&format!("<{}>", bob.uri), "are you there?");
    assert_eq!(st, Some(404));
}

#[test]
fn anonymous_identity_and_address_never_reach_other_participants() {
    let stack = Stack::start("relay-leak");
    let (mut alice, mut bob, mut bob2) = lounge(&stack);
    let room = format!("<{LOUNGE}>");
    // Bob talks to the room, privately to each, and in several chunks.
    assert_eq!(bob.say(&room, "hello").1, Some(200));
    assert_eq!(
        bob.say(&format!("<{}>", alice.uri), "hi alice").1,
        Some(200)
    );
    assert_eq!(bob.say(&format!("<{}>", bob2.uri), "hi twin").1, Some(200));
    let big = cpim_body(
        &bob.cpim_from(),
        &[&room],
        "text/plain",
        &vec![b'z'; 150_000],
    );
    assert!(bob
        .m()
        .send_chunked(&big, 50_000, true)
        .iter()
        .all(|s| *s == Some(200)));
    // Spoofs are refused and go nowhere.
    let spoof = cpim_body(
        "<sip:bob.secret@example.com>",
        &[&room],
        "text/plain",
        b"leak?",
    );
    assert_eq!(bob.m().send_cpim(&spoof), Some(403));
    assert_eq!(alice.say(&room, "hi all").1, Some(200));
    // Let everything arrive.
    let _ = alice.m().drain(Duration::from_millis(800));
    let _ = bob2.m().drain(Duration::from_millis(200));
    let needles = [
        "bob.secret".to_string(),
        bob.own_session.clone(),
        format!(":{}/", bob.own_port),
        bob.own.clone(),
    ];
    for (who, m) in [("alice", &mut alice), ("bob-2", &mut bob2)] {
        let got = &m.m().received;
        assert!(got.len() > 150_000, "{who} received the messages");
        let text = String::from_utf8_lossy(got);
        for n in &needles {
            assert!(!text.contains(n.as_str()), "{who} received {n:?}");
        }
        assert!(text.contains("hello"), "{who} got bob's message");
    }
}

/// RFC 7701 NICKNAME goes through the focus: the module's alias table is the one source of truth
/// for names in a conference (the relay asks `chat_alias.nickname` over jsonrpcs).
#[test]
fn nickname_is_decided_by_the_focus_and_enforced_by_the_relay() {
    let stack = Stack::start("relay-nickname");
    let (mut alice, mut bob, mut bob2) = lounge(&stack);
    let room = format!("<{LOUNGE}>");
    // Taken in the focus's table (RFC 8266 comparison and look-alikes): 425.
    assert_eq!(
        bob.m().nickname("ALICE"),
        Some(425),
        "{}",
        stack.relay_log()
    );
    assert_eq!(bob.m().nickname("b0b-2"), Some(425));
    // Invalid by the focus's rules: 424.
    assert_eq!(bob.m().nickname("   "), Some(424));
    // A free name: 200; from then on it is taken for the others.
    assert_eq!(bob.m().nickname("Robert"), Some(200));
    assert_eq!(bob2.m().nickname("robert"), Some(425));
    // The new name is the one the relay enforces in CPIM From; the old one is refused.
    bob.name = Some("Robert".into());
    let (body, st) = bob.say(&room, "call me Robert");
    assert_eq!(st, Some(200));
    assert_eq!(alice.m().next_message(T).unwrap().body, body);
    assert_eq!(bob2.m().next_message(T).unwrap().body, body);
    let old = cpim_body(
        &format!("\"bob\" <{}>", bob.uri),
        &[&room],
        "text/plain",
        b"x",
    );
    assert_eq!(bob.m().send_cpim(&old), Some(403));
    // The module's table knows the accepted name: a later SIP join choosing it gets a suffix.
    let carol = Participant::join(
        &stack,
        LOUNGE,
        "sip:carol@example.org",
        Some("Robert"),
        true,
    );
    assert_eq!(
        carol.name.as_deref(),
        Some("Robert-2"),
        "{}",
        carol.ok.raw_text()
    );
    // Nor can bob take the name the focus just gave carol.
    assert_eq!(bob.m().nickname("robert-2"), Some(425));
    // `Use-Nickname: ""` removes the name: bob speaks without one...
    assert_eq!(bob.m().nickname(""), Some(200));
    let named = cpim_body(
        &format!("\"Robert\" <{}>", bob.uri),
        &[&room],
        "text/plain",
        b"x",
    );
    assert_eq!(bob.m().send_cpim(&named), Some(403));
    bob.name = None;
    let (body, st) = bob.say(&room, "no name now");
    assert_eq!(st, Some(200));
    assert_eq!(alice.m().next_message(T).unwrap().body, body);
    assert_eq!(bob2.m().next_message(T).unwrap().body, body);
    // ...and the name is free again in the module's table.
    let dave = Participant::join(&stack, LOUNGE, "sip:dave@example.org", Some("Robert"), true);
    assert_eq!(
        dave.name.as_deref(),
        Some("Robert"),
        "{}",
        dave.ok.raw_text()
    );
}

/// A small deterministic generator for the hostile-input test.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn hostile_input_does_not_hurt_the_relay() {
    let stack = Stack::start("relay-hostile");
    let (mut alice, mut bob, _bob2) = lounge(&stack);
    let addr = format!("127.0.0.1:{}", stack.msrp_port);
    use std::io::Write;
    // Garbage instead of MSRP: the connection is closed.
    let mut c = Client::connect(&alice.relay, &alice.own);
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.wait_closed(T), "garbage closes the connection");
    // A head larger than the limit: closed, never buffered.
    let mut c = Client::connect(&alice.relay, &alice.own);
    let mut huge = b"MSRP abcd1234 SEND\r\nX-Pad: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let _ = c.try_send_raw(&huge);
    assert!(c.wait_closed(T), "oversized head closes the connection");
    // A malformed request on a bound connection: 400, and the connection goes on.
    let raw = format!(
        "MSRP bad00001 SEND\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: abcd1234\r\nByte-Range: 9-1/x\r\n-------bad00001$\r\n",
        bob.relay, bob.own
    );
    bob.m().send_raw(raw.as_bytes());
    assert_eq!(bob.m().response("bad00001", T).map(|r| r.status), Some(400));
    // Mutated valid frames, each on its own connection (unbound: they can only be refused).
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (_, template) = Client::connect(&alice.relay, &alice.own).send_frame(
        "abcdef123456",
        1,
        Some(40),
        &cpim_body(
            "<sip:x@y>",
            &[&format!("<{LOUNGE}>")],
            "text/plain",
            b"0123456789",
        ),
        Continuation::End,
        "message/cpim",
        None,
    );
    for _ in 0..60 {
        let mut f = template.clone();
        for _ in 0..1 + rng.next() % 8 {
            let i = (rng.next() % f.len() as u64) as usize;
            f[i] = rng.next() as u8;
        }
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            let _ = s.write_all(&f);
            let _ = s.write_all(&f[..(rng.next() % f.len() as u64) as usize]);
        }
    }
    // The room still works.
    let room = format!("<{LOUNGE}>");
    let (body, st) = alice.say(&room, "still alive");
    assert_eq!(st, Some(200));
    assert_eq!(bob.m().next_message(T).unwrap().body, body);
    assert!(
        !stack.relay_log().contains("panicked"),
        "{}",
        stack.relay_log()
    );
}

/// The default a=max-size (granted to the module, put in the SDP answer) admits 16 MiB of
/// content inside its CPIM wrapper; one byte over the limit is 413.
#[test]
fn default_max_size_admits_a_16_mib_content_in_its_cpim_wrapper() {
    const DEFAULT_MAX_SIZE: u64 = 16 * 1024 * 1024 + 64 * 1024;
    let stack = Stack::start_with(
        "relay-16mib",
        StackOptions {
            // Not a congestion test: let the readers lag behind the sender.
            extra_relay_args: vec!["--queue-bytes".into(), "67108864".into()],
            ..Default::default()
        },
    );
    let (mut alice, mut bob, _bob2) = lounge(&stack);
    assert!(
        alice
            .ok
            .body_text()
            .contains(&format!("a=max-size:{DEFAULT_MAX_SIZE}\r\n")),
        "{}",
        alice.ok.body_text()
    );
    let text: Vec<u8> = (0..16 * 1024 * 1024u32)
        .map(|i| b'a' + (i % 23) as u8)
        .collect();
    let body = cpim_body(
        &alice.cpim_from(),
        &[&format!("<{LOUNGE}>")],
        "text/plain",
        &text,
    );
    assert!(body.len() as u64 > 16 * 1024 * 1024);
    let mut reader = bob.msrp.take().expect("connected");
    let read = std::thread::spawn(move || reader.next_message(Duration::from_secs(60)));
    let st = alice.m().send_chunked(&body, 1 << 20, true);
    assert!(st.iter().all(|s| *s == Some(200)), "{st:?}");
    let got = read.join().unwrap().expect("the 16 MiB message");
    assert_eq!(got.end, Continuation::End);
    assert!(got.body == body, "byte-identical");
    // One byte over the default: 413 on the first chunk.
    let (tid, frame) = alice.m().send_frame(
        &new_id(),
        1,
        Some(DEFAULT_MAX_SIZE + 1),
        &body[..1000],
        Continuation::More,
        "message/cpim",
        None,
    );
    alice.m().send_raw(&frame);
    assert_eq!(alice.m().response(&tid, T).map(|r| r.status), Some(413));
}

/// A private message to a participant who joined (registered at the relay) but is not connected
/// over MSRP is 404, not a 200 for a message that goes nowhere.
#[test]
fn private_message_to_a_participant_not_connected_is_404() {
    let stack = Stack::start("relay-unbound-pm");
    let (mut alice, mut bob, mut bob2) = lounge(&stack);
    let mut carol = Participant::join(&stack, LOUNGE, "sip:carol@example.org", Some("carol"), true);
    let to_carol = format!("<{}>", carol.uri);
    let (_, st) = bob.say(&to_carol, "are you there?");
    assert_eq!(st, Some(404), "{}", stack.relay_log());
    nothing_for(alice.m());
    nothing_for(bob2.m());
    // Once she connects, it is delivered.
    let mut c = Client::connect(&carol.relay, &carol.own);
    assert_eq!(c.bind(), Some(200));
    carol.msrp = Some(c);
    let (body, st) = bob.say(&to_carol, "hi carol");
    assert_eq!(st, Some(200));
    assert_eq!(carol.m().next_message(T).unwrap().body, body);
    // Her connection drops (she stays in the conference): 404 again.
    drop(carol.msrp.take());
    let deadline = Instant::now() + T;
    loop {
        let (_, st) = bob.say(&to_carol, "still there?");
        if st == Some(404) {
            break;
        }
        assert_eq!(st, Some(200));
        assert!(
            Instant::now() < deadline,
            "the relay never noticed the drop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--max-unbound` and `--max-connections`: at a cap the oldest unbound connection is closed to
/// make room (counted in the metrics); with every connection bound, a new one is accepted and
/// closed at once; bound participants carry on.
#[test]
fn connections_beyond_the_limits_are_refused() {
    let metrics_addr = format!("127.0.0.1:{}", support::free_port());
    let stack = Stack::start_with(
        "relay-conn-limits",
        StackOptions {
            extra_relay_args: vec![
                "--max-connections".into(),
                "5".into(),
                "--max-unbound".into(),
                "1".into(),
                "--metrics".into(),
                metrics_addr.clone(),
            ],
            ..Default::default()
        },
    );
    let (mut alice, mut bob, mut bob2) = lounge(&stack);
    let addr = format!("127.0.0.1:{}", stack.msrp_port);
    let wait_connections = |n: u64| {
        let deadline = Instant::now() + T;
        while metric(&metrics_addr, "chat_alias_relay_connections") != n {
            assert!(Instant::now() < deadline, "never {n} connections");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    /// Whether the relay closes the connection at once (EOF or reset, nothing sent).
    fn refused(s: &mut std::net::TcpStream) -> bool {
        use std::io::Read;
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [0u8; 16];
        match s.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
    wait_connections(3);
    // One unbound connection is admitted; a second makes room by evicting the first (silent
    // connections must not lock participants out).
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    wait_connections(4);
    let extra = std::net::TcpStream::connect(&addr).unwrap();
    let t0 = Instant::now();
    assert!(refused(&mut idle), "oldest unbound connection evicted");
    assert!(t0.elapsed() < Duration::from_secs(1), "closed at once");
    assert_eq!(
        metric(
            &metrics_addr,
            "chat_alias_relay_unbound_evicted_total{reason=\"max_unbound\"}"
        ),
        1
    );
    wait_connections(4);
    // The unbound place frees when the idle connection goes; a participant binds there.
    drop(extra);
    wait_connections(3);
    let carol = Participant::enter(&stack, LOUNGE, "sip:carol@example.org", Some("carol"), true);
    // Five open (four bound, one unbound): the total cap evicts the unbound one for the next.
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    wait_connections(5);
    let _extra = std::net::TcpStream::connect(&addr).unwrap();
    assert!(
        refused(&mut idle),
        "unbound connection evicted at --max-connections"
    );
    assert_eq!(
        metric(
            &metrics_addr,
            "chat_alias_relay_unbound_evicted_total{reason=\"max_connections\"}"
        ),
        1
    );
    // A participant takes the last place (evicting the unbound one again); with every
    // connection bound, the next one is refused.
    let dave = Participant::enter(&stack, LOUNGE, "sip:dave@example.org", Some("dave"), true);
    wait_connections(5);
    let mut extra = std::net::TcpStream::connect(&addr).unwrap();
    assert!(
        refused(&mut extra),
        "connection over --max-connections refused"
    );
    assert_eq!(
        metric(
            &metrics_addr,
            "chat_alias_relay_connections_refused_total{reason=\"max_connections\"}"
        ),
        1
    );
    // The participants carry on.
    let (body, st) = alice.say(&format!("<{LOUNGE}>"), "still room for us");
    assert_eq!(st, Some(200));
    assert_eq!(bob.m().next_message(T).unwrap().body, body);
    assert_eq!(bob2.m().next_message(T).unwrap().body, body);
    assert_eq!(metric(&metrics_addr, "chat_alias_relay_bound_sessions"), 5);
    drop((carol, dave));
}
