//! End-to-end through the IM Client library (`chat_alias_client`): joins over SIP (UDP and TCP)
//! to a real Kamailio with chat_alias, chat over MSRP through the real relay.
mod support;

use chat_alias_client::{Chat, Config, Event, FailureKind, Identity, JoinError, LeftBy, Transport};
use std::net::SocketAddr;
use std::time::Duration;
use support::Stack;

const LOUNGE: &str = "sip:lounge@im.example.net";
const LOUNGE2: &str = "sip:lounge2@im.example.net";
const QUIET: &str = "sip:quiet@im.example.net";
const T: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for.
const QUIET_PERIOD: Duration = Duration::from_millis(500);

fn server(stack: &Stack) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], stack.sip_port))
}

fn join(stack: &Stack, cfg: impl FnOnce(Config) -> Config, group: &str, identity: &str) -> Chat {
    let c = cfg(Config::new(group, server(stack), identity));
    match Chat::join(c) {
        Ok(chat) => chat,
        Err(e) => panic!("{identity} could not join {group}: {e}"),
    }
}

fn refused(stack: &Stack, c: Config) -> (u16, String) {
    let _ = stack;
    match Chat::join(c) {
        Err(JoinError::Refused { code, reason }) => (code, reason),
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(chat) => panic!("expected a refusal, joined as {}", chat.identity()),
    }
}

fn anon(name: &str) -> Identity {
    Identity::anonymous(name)
}

#[test]
fn second_bob_is_told_it_is_bob_2_and_speaks_as_bob_2_over_udp_and_tcp() {
    let stack = Stack::start("client-bob2");
    let mut alice = join(&stack, |c| c.name("Alice"), LOUNGE, "sip:alice@example.com");
    assert_eq!(
        alice.identity(),
        &Identity::new(Some("Alice"), "sip:alice@example.com")
    );
    assert!(!alice.joined().modified);
    assert!(alice.joined().private_messages);

    let mut bob = join(&stack, |c| c.alias("bob"), LOUNGE, "sip:bob@example.com");
    assert_eq!(bob.identity(), &anon("bob"));
    assert!(
        !bob.joined().modified,
        "a free alias: SDP-only 200, identity as sent"
    );

    let mut carol = join(
        &stack,
        |c| c.alias("bob").transport(Transport::Tcp),
        LOUNGE,
        "sip:carol@partner.example.org",
    );
    assert_eq!(
        carol.identity(),
        &Identity::new(Some("bob-2"), "sip:anonymous2@anonymous.invalid"),
        "the CPIM To of the multipart 200 OK"
    );
    assert!(carol.joined().modified);
    assert_eq!(carol.joined().requested, anon("bob"));
    // The Joined event comes first, with the same content.
    match carol.next_event(T) {
        Some(Event::Joined(j)) => assert_eq!(&j, carol.joined()),
        other => panic!("expected Joined first, got {other:?}"),
    }

    let sent = carol
        .say_confirmed("Hello! The lounge says I am bob-2.", T)
        .expect("accepted by the relay");
    assert!(!sent.private);
    assert_eq!(sent.to, Identity::new(None, LOUNGE));
    for (who, chat) in [("alice", &mut alice), ("bob", &mut bob)] {
        let m = chat
            .expect_message(T, |m| m.text.contains("I am bob-2"))
            .unwrap_or_else(|| panic!("{who} did not get carol's message"));
        assert_eq!(
            m.from,
            Some(Identity::new(
                Some("bob-2"),
                "sip:anonymous2@anonymous.invalid"
            )),
            "{who} sees the assigned identity as CPIM From"
        );
        assert_eq!(m.to, Some(Identity::new(None, LOUNGE)));
        assert!(!m.private);
        assert!(m.content_type.starts_with("text/plain"));
    }
    // Nobody learns carol's real identity from the messages.
    let known = alice.sender().known();
    assert!(known.iter().all(|k| !k.uri.contains("carol")), "{known:?}");
    // The sender does not get its own message back.
    assert!(carol
        .expect_message(QUIET_PERIOD, |m| m.text.contains("I am bob-2"))
        .is_none());

    alice.say_confirmed("Welcome, both of you!", T).unwrap();
    for chat in [&mut bob, &mut carol] {
        let m = chat
            .expect_message(T, |m| m.text == "Welcome, both of you!")
            .unwrap();
        assert_eq!(
            m.from,
            Some(Identity::new(Some("Alice"), "sip:alice@example.com"))
        );
    }
    bob.say_confirmed("Thanks, Alice.", T).unwrap();
    for chat in [&mut alice, &mut carol] {
        let m = chat
            .expect_message(T, |m| m.text == "Thanks, Alice.")
            .unwrap();
        assert_eq!(m.from, Some(anon("bob")));
    }
    for chat in [alice, bob, carol] {
        let rest = chat.leave();
        assert!(
            matches!(
                rest.last(),
                Some(Event::Left {
                    by: LeftBy::Me,
                    code: Some(200),
                    ..
                })
            ),
            "{rest:?}"
        );
    }
}

#[test]
fn private_message_reaches_only_its_recipient_by_name_or_uri() {
    let stack = Stack::start("client-private");
    let mut alice = join(&stack, |c| c.name("Alice"), LOUNGE, "sip:alice@example.com");
    let mut bob = join(&stack, |c| c.alias("bob"), LOUNGE, "sip:bob@example.com");
    let mut carol = join(&stack, |c| c.alias("bob"), LOUNGE, "sip:carol@example.com");
    assert_eq!(carol.identity().display_name.as_deref(), Some("bob-2"));

    // Before alice has said anything, carol knows neither her name nor her URI.
    assert!(carol.send_private("Alice", "hi").is_err());
    alice.say_confirmed("Hi all", T).unwrap();
    carol.expect_message(T, |m| m.text == "Hi all").unwrap();
    bob.expect_message(T, |m| m.text == "Hi all").unwrap();

    // By the display name seen as a sender.
    let sent = carol
        .msg_confirmed("Alice", "Psst, Alice: bob-2 is really Carol.", T)
        .expect("private message accepted");
    assert!(sent.private);
    assert_eq!(
        sent.to,
        Identity::new(Some("Alice"), "sip:alice@example.com")
    );
    let m = alice
        .expect_message(T, |m| m.text.contains("really Carol"))
        .expect("alice gets the private message");
    assert!(m.private);
    assert_eq!(
        m.from,
        Some(Identity::new(
            Some("bob-2"),
            "sip:anonymous2@anonymous.invalid"
        ))
    );
    assert_eq!(
        m.to.map(|t| t.uri),
        Some("sip:alice@example.com".to_string())
    );
    assert!(
        bob.expect_message(QUIET_PERIOD, |m| m.text.contains("really Carol"))
            .is_none(),
        "bob must not see a private message to alice"
    );

    // Alice answers by URI (<...>), then by name (she has now seen bob-2 as a sender).
    alice
        .msg_confirmed("<sip:anonymous2@anonymous.invalid>", "Safe with me.", T)
        .unwrap();
    let m = carol
        .expect_message(T, |m| m.text == "Safe with me.")
        .unwrap();
    assert!(m.private);
    alice.msg_confirmed("bob-2", "Really.", T).unwrap();
    carol.expect_message(T, |m| m.text == "Really.").unwrap();
    assert!(bob.expect_message(QUIET_PERIOD, |m| m.private).is_none());
}

#[test]
fn relay_refusals_of_private_messages_are_surfaced_with_their_codes() {
    let stack = Stack::start("client-refusals");
    let mut alice = join(&stack, |c| c.name("Alice"), LOUNGE, "sip:alice@example.com");
    // Nobody has this URI in the conference: 404.
    let f = alice
        .msg_confirmed("sip:nobody@example.com", "anyone?", T)
        .expect_err("no such participant");
    assert_eq!(f.kind, FailureKind::Send);
    assert_eq!(f.code, Some(404), "{f:?}");
    assert_eq!(f.private, Some(true));
    // A name never seen: refused locally, nothing sent.
    let f = alice
        .msg_confirmed("ghost", "boo", T)
        .expect_err("unknown name");
    assert_eq!(f.kind, FailureKind::Command);
    assert_eq!(f.code, None);

    // The quiet group allows no private messages: 428.
    let mut a = join(&stack, |c| c.name("Alice"), QUIET, "sip:alice@example.com");
    let mut b = join(&stack, |c| c.alias("b"), QUIET, "sip:bob@example.com");
    b.say_confirmed("hello quiet room", T).unwrap();
    a.expect_message(T, |m| m.text == "hello quiet room")
        .unwrap();
    let f = a
        .msg_confirmed("b", "psst", T)
        .expect_err("private messages are off in this group");
    assert_eq!(f.code, Some(428), "{f:?}");
    assert!(b.expect_message(QUIET_PERIOD, |_| true).is_none());
}

#[test]
fn large_message_is_chunked_and_reassembled() {
    let stack = Stack::start("client-large");
    let mut alice = join(
        &stack,
        |c| c.name("Alice"),
        LOUNGE2,
        "sip:alice@example.com",
    );
    let mut bob = join(&stack, |c| c.alias("bob"), LOUNGE2, "sip:bob@example.com");
    // 100 000 characters, multi-byte ones included, with newlines.
    let text: String = (0..20_000)
        .map(|i| match i % 4 {
            0 => "héllo".to_string(),
            1 => "ünï".to_string(),
            2 => format!("{i}\n"),
            _ => "–".to_string(),
        })
        .collect();
    let sent = alice.say_confirmed(&text, Duration::from_secs(20)).unwrap();
    assert_eq!(sent.chunks, sent.bytes.div_ceil(2048), "2048-octet chunks");
    assert!(sent.chunks > 40);
    let m = bob
        .expect_message(Duration::from_secs(20), |m| m.text.len() > 1000)
        .expect("bob gets the large message");
    assert_eq!(m.text, text, "reassembled byte for byte");
    assert_eq!(
        m.from,
        Some(Identity::new(Some("Alice"), "sip:alice@example.com"))
    );
}

#[test]
fn join_refusals_are_reported_with_code_and_reason_udp_and_tcp() {
    let stack = Stack::start("client-join-refused");
    let s = server(&stack);
    for t in [Transport::Udp, Transport::Tcp] {
        // Anonymity is not allowed in members-only.
        let (code, reason) = refused(
            &stack,
            Config::new(
                "sip:members-only@im.example.net",
                s,
                "sip:alice@example.com",
            )
            .alias("ali")
            .transport(t),
        );
        assert_eq!(code, 403, "{t:?}");
        assert!(reason.contains("anonymity"), "{reason}");
        // No such group.
        let (code, reason) = refused(
            &stack,
            Config::new("sip:nope@im.example.net", s, "sip:alice@example.com").transport(t),
        );
        assert_eq!((code, reason.is_empty()), (404, false), "{t:?}");
        // Not a member of the book club.
        let (code, _) = refused(
            &stack,
            Config::new("sip:bookclub@im.example.net", s, "sip:mallory@example.com").transport(t),
        );
        assert_eq!(code, 403, "{t:?}");
        // No asserted identity: the focus does not know who this is.
        let mut c = Config::new(LOUNGE, s, "sip:alice@example.com")
            .alias("x")
            .transport(t);
        c.assert_identity = false;
        assert_eq!(refused(&stack, c).0, 403, "{t:?}");
    }
    // The small room holds two.
    let _a = join(
        &stack,
        |c| c,
        "sip:smallroom@im.example.net",
        "sip:alice@example.com",
    );
    let _b = join(
        &stack,
        |c| c,
        "sip:smallroom@im.example.net",
        "sip:bob@example.com",
    );
    let (code, reason) = refused(
        &stack,
        Config::new("sip:smallroom@im.example.net", s, "sip:carol@example.com"),
    );
    assert_eq!(code, 486, "{reason}");
}

#[test]
fn nothing_listening_is_a_local_503_not_a_hang() {
    // A UDP port with nobody behind it: ICMP port unreachable → 503 at once (RFC 3261 §8.1.3.1).
    let port = support::free_port();
    let c = Config::new(
        LOUNGE,
        SocketAddr::from(([127, 0, 0, 1], port)),
        "sip:a@example.com",
    );
    let started = std::time::Instant::now();
    match Chat::join(c) {
        Err(JoinError::Refused { code: 503, reason }) => {
            assert!(reason.contains("nothing listens"), "{reason}")
        }
        other => panic!("{:?}", other.map(|c| c.identity().clone())),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn leaving_frees_the_alias_and_the_others_can_tell() {
    let stack = Stack::start("client-leave");
    let mut alice = join(&stack, |c| c.name("Alice"), LOUNGE, "sip:alice@example.com");
    let bob = join(&stack, |c| c.alias("bob"), LOUNGE, "sip:bob@example.com");
    let carol = join(&stack, |c| c.alias("bob"), LOUNGE, "sip:carol@example.com");
    assert_eq!(carol.identity().display_name.as_deref(), Some("bob-2"));

    let rest = carol.leave();
    assert_eq!(
        rest.last(),
        Some(&Event::Left {
            by: LeftBy::Me,
            code: Some(200),
            reason: "OK".into()
        })
    );
    // The relay forgot bob-2 before the BYE was answered: a private message to it is refused.
    let f = alice
        .msg_confirmed("<sip:anonymous2@anonymous.invalid>", "still there?", T)
        .expect_err("bob-2 has left");
    assert_eq!(f.code, Some(404), "{f:?}");
    // The departed identity is not handed to anyone else while bob holds "bob": the next "bob"
    // is bob-3 with a URI never used before, so nothing meant for bob-2 can reach it.
    let dave = join(&stack, |c| c.alias("bob"), LOUNGE, "sip:dave@example.com");
    assert_eq!(dave.identity().display_name.as_deref(), Some("bob-3"));
    assert_eq!(dave.identity().uri, "sip:anonymous3@anonymous.invalid");
    drop(bob);
    // Bob's Drop sent BYE: "bob" is free now.
    let erin = join(&stack, |c| c.alias("bob"), LOUNGE, "sip:erin@example.com");
    assert_eq!(erin.identity(), &anon("bob"));
}

#[test]
fn when_the_focus_drops_the_participant_the_client_reports_it_and_ends() {
    // The dialog lasts at most 2 s: the focus frees the alias, ends the dialog with a BYE and the
    // relay closes the MSRP connection; the client says so and ends its side of the session.
    let stack = Stack::start_with(
        "client-expiry",
        support::StackOptions {
            dialog_timeout: 2,
            ..Default::default()
        },
    );
    let mut c = join(
        &stack,
        |c| c.alias("ephemeral"),
        LOUNGE,
        "sip:eph@example.com",
    );
    let left = c
        .wait_for(Duration::from_secs(15), |e| matches!(e, Event::Left { .. }))
        .expect("the session ends");
    match left {
        // The focus's BYE came first.
        Event::Left {
            by: LeftBy::Server, ..
        } => {}
        // The relay's close came first: the client reported it and ended the dialog itself.
        Event::Left { by: LeftBy::Me, .. } => {
            match c.wait_for(Duration::ZERO, |e| matches!(e, Event::Error(_))) {
                Some(Event::Error(f)) => {
                    assert_eq!(f.kind, FailureKind::Msrp);
                    assert!(f.reason.contains("closed"), "{f:?}");
                }
                other => panic!("a Left by the client without an MSRP error first: {other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
}
