//! End-to-end: the relay stops gracefully on SIGTERM (stops accepting, closes sessions, removes its
//! control socket, exits 0 within the drain bound) and the focus then answers joins 503.
mod support;

use std::net::TcpStream;
use std::time::Duration;
use support::participant::Participant;
use support::sip::{join, Invite, Transport};
use support::Stack;

#[test]
fn sigterm_closes_sessions_removes_the_socket_and_exits_zero() {
    let mut stack = Stack::start("relay-sigterm");
    let mut bob = Participant::enter(
        &stack,
        "sip:lounge@im.example.net",
        "sip:bob@example.com",
        Some("bob"),
        true,
    );
    let msrp = bob.m();

    let control = stack.run_dir.join("relay.sock");
    assert!(control.exists());
    let status = stack
        .terminate_relay(Duration::from_secs(10))
        .expect("relay exits within the drain bound");
    assert!(status.success(), "graceful exit: {status}");
    assert!(
        msrp.wait_closed(Duration::from_secs(2)),
        "the bound session was closed"
    );
    assert!(!control.exists(), "control socket removed");
    assert!(
        TcpStream::connect(("127.0.0.1", stack.msrp_port)).is_err(),
        "no longer accepting"
    );

    // Without its relay the focus refuses joins rather than answering 200s that lead nowhere.
    let mut c = stack.client(Transport::Udp);
    let r = join(
        &mut c,
        &Invite::anonymous(
            "sip:lounge@im.example.net",
            "sip:carol@example.com",
            Some("c"),
        ),
    );
    assert_eq!(r.code, 503, "{}", r.raw_text());
}
