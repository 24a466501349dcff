//! End-to-end: a restarted relay rebuilds its registry from the focus's alias table
//! (`chat_alias.sessions`): participants admitted before the restart bind their MSRP sessions
//! again and chat, with CPIM From still enforced; one who left before the restart stays unknown.
mod support;

use chat_alias_proto::cpim;
use std::time::Duration;
use support::msrp::{cpim as cpim_body, Client};
use support::participant::Participant;
use support::sip::leave;
use support::Stack;

const LOUNGE: &str = "sip:lounge@im.example.net";
const T: Duration = Duration::from_secs(3);

/// Binds, retrying 481 for a while: the relay rebuilds its registry asynchronously after start.
fn bind_eventually(m: &Participant) -> Client {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Client::connect(&m.relay, &m.own);
        match c.bind() {
            Some(200) => return c,
            other => assert!(
                std::time::Instant::now() < deadline,
                "bind of {} after the restart: {other:?}",
                m.uri
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_restarted_relay_rebuilds_its_registry_from_the_focus() {
    let mut stack = Stack::start("relay-resync");
    let alice = Participant::join(
        &stack,
        LOUNGE,
        "sip:alice@example.com",
        Some("Alice"),
        false,
    );
    let mut bob = Participant::join(
        &stack,
        LOUNGE,
        "sip:bob.secret@example.com",
        Some("bob"),
        true,
    );
    let mut carol = Participant::join(
        &stack,
        LOUNGE,
        "sip:carol@example.com",
        Some("Carol"),
        false,
    );
    // Alice binds before the restart (her connection is closed by it).
    let mut before = Client::connect(&alice.relay, &alice.own);
    assert_eq!(before.bind(), Some(200));
    // Carol leaves before the restart.
    assert_eq!(leave(&mut carol.sip, &carol.inv, &carol.ok).code, 200);

    let status = stack
        .terminate_relay(Duration::from_secs(10))
        .expect("relay exits");
    assert!(status.success(), "{status}");
    assert!(before.wait_closed(Duration::from_secs(2)));
    stack.restart_relay(&[]);

    let mut a = bind_eventually(&alice);
    let mut b = bind_eventually(&bob);
    // Carol left before the restart: still unknown.
    let mut c = Client::connect(&carol.relay, &carol.own);
    assert_eq!(c.bind(), Some(481), "{}", stack.relay_log());

    // A group message from bob reaches Alice with his enforced alias.
    let body = cpim_body(
        &bob.cpim_from(),
        &[&format!("<{LOUNGE}>")],
        "text/plain",
        b"back again",
    );
    assert_eq!(b.send_cpim(&body), Some(200));
    let got = a.next_message(T).expect("message to alice");
    assert_eq!(got.body, body);
    let from = cpim::parse_headers(&got.body).unwrap().from.unwrap();
    assert_eq!(from.uri, "sip:anonymous@anonymous.invalid");
    assert_eq!(from.display_name.as_deref(), Some("bob"));
    // And back.
    let body = cpim_body(
        &alice.cpim_from(),
        &[&format!("<{LOUNGE}>")],
        "text/plain",
        b"welcome",
    );
    assert_eq!(a.send_cpim(&body), Some(200));
    assert_eq!(b.next_message(T).expect("message to bob").body, body);
    // CPIM From is still enforced: bob cannot speak as Alice.
    let forged = cpim_body(
        &alice.cpim_from(),
        &[&format!("<{LOUNGE}>")],
        "text/plain",
        b"x",
    );
    assert_eq!(b.send_cpim(&forged), Some(403));
    // A BYE right after the restart still reaches the relay (the worker's stale control
    // connection is retried on a fresh one): bob's MSRP connection is closed.
    assert_eq!(leave(&mut bob.sip, &bob.inv, &bob.ok).code, 200);
    assert!(
        b.wait_closed(Duration::from_secs(3)),
        "{}",
        stack.relay_log()
    );
}
