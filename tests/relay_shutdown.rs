//! End-to-end: the relay stops gracefully on SIGTERM (stops accepting, closes sessions, removes its
//! control socket, exits 0 within the drain bound) and the focus then answers joins 503.
mod support;

use std::net::TcpStream;
use std::time::Duration;
use support::answer::sdp_of;
use support::msrp::{new_id, Client};
use support::sip::{join, msrp_offer, Invite, Transport};
use support::Stack;

#[test]
fn sigterm_closes_sessions_removes_the_socket_and_exits_zero() {
    let mut stack = Stack::start("relay-sigterm");
    let mut sip = stack.client(Transport::Udp);
    let own_session = new_id() + &new_id();
    let own = format!("msrp://127.0.0.1:20999/{own_session};tcp");
    let mut inv = Invite::anonymous(
        "sip:lounge@im.example.net",
        "sip:bob@example.com",
        Some("bob"),
    );
    inv.body = Some(("application/sdp".into(), msrp_offer(20999, &own_session)));
    let ok = join(&mut sip, &inv);
    assert_eq!(ok.code, 200, "{}", ok.raw_text());
    let relay = sdp_of(&ok)
        .lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .unwrap()
        .trim()
        .to_string();
    let mut msrp = Client::connect(&relay, &own);
    assert_eq!(msrp.bind(), Some(200));

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
