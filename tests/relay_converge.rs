//! End-to-end: the relay converges to the module. A session the module's alias table no longer has
//! — a leave lost in transit, or a Kamailio restarted while the relay runs — has its MSRP
//! connection closed by the relay within 10 s (it asks the focus socket every 4 s).
mod support;

use chat_alias_proto::control::{self, Join, Request};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use support::answer::sdp_of;
use support::msrp::{new_id, Client};
use support::sip::{join, msrp_offer, Invite, Transport};
use support::Stack;

const LOUNGE: &str = "sip:lounge@im.example.net";

/// A session the relay holds but the module never had: what a lost leave leaves behind (the
/// module freed the place, its `leave` never reached the relay). Registered with a raw `join` on
/// the relay's control socket; the participant then binds it.
#[test]
fn a_session_whose_leave_was_lost_is_closed_within_10_s() {
    let stack = Stack::start("relay-converge-lost-leave");
    let session = new_id() + &new_id();
    let own = format!("msrp://127.0.0.1:23456/{};tcp", new_id());
    let j = Request::Join(Join {
        id: 1,
        version: control::VERSION,
        session: session.clone(),
        conference: LOUNGE.into(),
        uri: "sip:anonymous@anonymous.invalid".into(),
        display_name: Some("ghost".into()),
        anonymous: true,
        peer_path: vec![own.clone()],
        accept_wrapped_types: vec!["text/plain".into()],
        chatroom: vec![],
        private_messages_allowed: false,
    });
    let mut ctl = UnixStream::connect(stack.run_dir.join("relay.sock")).unwrap();
    ctl.write_all(&control::encode(&j)).unwrap();
    let mut line = String::new();
    BufReader::new(ctl.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");
    let relay = format!("msrp://127.0.0.1:{}/{session};tcp", stack.msrp_port);
    let mut c = Client::connect(&relay, &own);
    assert_eq!(c.bind(), Some(200));
    let t0 = Instant::now();
    assert!(
        c.wait_closed(Duration::from_secs(10)),
        "not closed within 10 s:\n{}",
        stack.relay_log()
    );
    eprintln!("closed after {:?}", t0.elapsed());
    // A participant the module has is kept.
    let mut sip = stack.client(Transport::Udp);
    let mut inv = Invite::anonymous(LOUNGE, "sip:bob@example.com", Some("bob"));
    let own_session = new_id() + &new_id();
    inv.body = Some(("application/sdp".into(), msrp_offer(24567, &own_session)));
    let ok = join(&mut sip, &inv);
    assert_eq!(ok.code, 200);
    let relay = sdp_of(&ok)
        .lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .unwrap()
        .trim()
        .to_string();
    let mut b = Client::connect(&relay, &format!("msrp://127.0.0.1:24567/{own_session};tcp"));
    assert_eq!(b.bind(), Some(200));
    assert!(
        !b.wait_closed(Duration::from_secs(9)),
        "a live participant was closed"
    );
}

/// Kamailio restarts while the relay runs: its new alias table is empty, and the participant's
/// MSRP connection is closed within 10 s of the new Kamailio being up.
#[test]
fn sessions_of_a_restarted_kamailio_are_closed_within_10_s() {
    let mut stack = Stack::start("relay-converge-restart");
    let mut sip = stack.client(Transport::Udp);
    let mut inv = Invite::anonymous(LOUNGE, "sip:bob@example.com", Some("bob"));
    let own_session = new_id() + &new_id();
    inv.body = Some(("application/sdp".into(), msrp_offer(25678, &own_session)));
    let ok = join(&mut sip, &inv);
    assert_eq!(ok.code, 200);
    let relay = sdp_of(&ok)
        .lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .unwrap()
        .trim()
        .to_string();
    let mut b = Client::connect(&relay, &format!("msrp://127.0.0.1:25678/{own_session};tcp"));
    assert_eq!(b.bind(), Some(200));
    stack.restart_kamailio();
    let t0 = Instant::now();
    assert!(
        b.wait_closed(Duration::from_secs(10)),
        "not closed within 10 s of the restart:\n{}",
        stack.relay_log()
    );
    eprintln!("closed {:?} after the restart", t0.elapsed());
}
