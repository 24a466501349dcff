//! End-to-end: per-sender order through a relay whose MSRP connections are served by several
//! threads (`--threads 2`). Several participants send numbered messages at the same time, some of
//! them in several chunks, with many SENDs in flight per sender; every other participant must
//! see each sender's numbers strictly increasing with no gap (RFC 4975 §5.1: a connection's
//! messages arrive in the order sent, and the relay is one hop of it), and every copy must still
//! pass the identity checks: its CPIM From is the sender's assigned identity, its bytes are the
//! sender's byte for byte, it is addressed to the recipient's own path from the recipient's relay
//! session, and it carries a relay-chosen Message-ID of its own.
mod support;

use chat_alias_proto::cpim;
use chat_alias_proto::msrp::{Continuation, Method};
use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use support::msrp::{cpim as cpim_body, new_id, Client, Frame};
use support::participant::Participant;
use support::{Stack, StackOptions};

const LOUNGE: &str = "sip:lounge@im.example.net";
/// Participants in the room; the first `SENDERS` of them send.
const PARTICIPANTS: usize = 5;
const SENDERS: usize = 4;
/// Messages each sender sends.
const MESSAGES: usize = 120;
/// SENDs written before their responses are awaited.
const WINDOW: usize = 8;
/// Every `LARGE_EVERY`th message is large enough to cross the relay in several frames (it
/// re-chunks at 64 KiB), and is sent in several chunks too.
const LARGE_EVERY: usize = 10;
const LARGE: usize = 150 * 1024;
const SENDER_CHUNK: usize = 40 * 1024;
const WAIT: Duration = Duration::from_secs(30);

/// The text of message `seq` of sender `from`: a recognisable line, then filler.
fn text(from: usize, seq: usize) -> Vec<u8> {
    let mut t = format!("order from={from} seq={seq};").into_bytes();
    let len = if seq % LARGE_EVERY == 0 { LARGE } else { 300 };
    let fill = format!("<{from}:{seq}>");
    while t.len() < len {
        t.extend_from_slice(fill.as_bytes());
    }
    t
}

/// Parses `order from=F seq=N;` out of a delivered text.
fn numbers(body: &[u8]) -> Option<(usize, usize)> {
    let at = body.windows(11).position(|w| w == b"order from=")?;
    let s = std::str::from_utf8(body.get(at..at + 40)?).ok()?;
    let rest = s.strip_prefix("order from=")?;
    let (from, rest) = rest.split_once(" seq=")?;
    let (seq, _) = rest.split_once(';')?;
    Some((from.parse().ok()?, seq.parse().ok()?))
}

/// Writes one whole message (in several chunks when large) without waiting; the transaction
/// ids of its chunks.
fn write_message(c: &mut Client, body: &[u8]) -> Vec<String> {
    let mid = format!("ord{}", new_id());
    let total = Some(body.len() as u64);
    let mut tids = Vec::new();
    let mut bytes = Vec::new();
    let mut off = 0;
    while off < body.len() {
        let n = SENDER_CHUNK.min(body.len() - off);
        let cont = if off + n == body.len() {
            Continuation::End
        } else {
            Continuation::More
        };
        let (tid, frame) = c.send_frame(
            &mid,
            off as u64 + 1,
            total,
            &body[off..off + n],
            cont,
            "message/cpim",
            None,
        );
        tids.push(tid);
        bytes.extend_from_slice(&frame);
        off += n;
    }
    c.send_raw(&bytes);
    tids
}

/// What one recipient saw of one sender.
struct Seen {
    next: usize,
}

#[test]
fn every_recipient_sees_each_senders_messages_in_order_with_two_threads() {
    let stack = Stack::start_with(
        "relay-order",
        StackOptions {
            extra_relay_args: vec!["--threads".into(), "2".into()],
            ..Default::default()
        },
    );
    let people: Vec<Participant> = (0..PARTICIPANTS)
        .map(|i| {
            Participant::enter(
                &stack,
                LOUNGE,
                &format!("sip:member{i}@example.com"),
                Some(&format!("Member {i}")),
                false,
            )
        })
        .collect();
    let identity: Vec<String> = people.iter().map(|p| p.uri.clone()).collect();
    let names: Vec<Option<String>> = people.iter().map(|p| p.name.clone()).collect();
    // Every Message-ID any recipient saw, with who saw it: each copy has its own.
    let ids: Arc<Mutex<HashMap<String, usize>>> = Default::default();
    let start = Arc::new(Barrier::new(PARTICIPANTS));
    let threads: Vec<_> = people
        .into_iter()
        .enumerate()
        .map(|(me, mut p)| {
            let start = start.clone();
            let identity = identity.clone();
            let names = names.clone();
            let ids = ids.clone();
            std::thread::spawn(move || {
                let from = p.cpim_from();
                let room = format!("<{LOUNGE}>");
                let own = p.own.clone();
                let relay = p.relay.clone();
                let c = p.m();
                start.wait();
                if me < SENDERS {
                    // Windows of WINDOW messages written back to back, then their responses.
                    for first in (1..=MESSAGES).step_by(WINDOW) {
                        let mut tids = Vec::new();
                        for seq in first..(first + WINDOW).min(MESSAGES + 1) {
                            let body = cpim_body(&from, &[&room], "text/plain", &text(me, seq));
                            tids.extend(write_message(c, &body));
                        }
                        for tid in tids {
                            assert_eq!(
                                c.response(&tid, WAIT).map(|r| r.status),
                                Some(200),
                                "sender {me}, transaction {tid}"
                            );
                        }
                    }
                }
                // Everything the other senders sent.
                let others = (0..SENDERS).filter(|&s| s != me).count();
                let mut seen: HashMap<usize, Seen> = HashMap::new();
                let mut got = 0;
                let deadline = Instant::now() + WAIT;
                while got < others * MESSAGES {
                    let left = deadline
                        .checked_duration_since(Instant::now())
                        .unwrap_or_else(|| panic!("recipient {me}: only {got} messages in time"));
                    let m = c
                        .next_message(left)
                        .unwrap_or_else(|| panic!("recipient {me}: only {got} messages"));
                    assert_eq!(m.end, Continuation::End, "recipient {me}: {:?}", m.text());
                    let (sender, seq) = numbers(&m.body)
                        .unwrap_or_else(|| panic!("recipient {me}: not numbered: {:?}", m.text()));
                    assert_ne!(sender, me, "recipient {me} got its own message back");
                    let s = seen.entry(sender).or_insert(Seen { next: 1 });
                    assert_eq!(
                        seq,
                        s.next,
                        "recipient {me}: from sender {sender}, message {seq} after {}",
                        s.next - 1
                    );
                    s.next += 1;
                    // The identity checks: the bytes are the sender's, byte for byte, under the
                    // sender's assigned identity.
                    let want_from = match &names[sender] {
                        Some(n) => format!("\"{n}\" <{}>", identity[sender]),
                        None => format!("<{}>", identity[sender]),
                    };
                    let want = cpim_body(&want_from, &[&room], "text/plain", &text(sender, seq));
                    assert!(
                        m.body == want,
                        "recipient {me}: bytes of {sender}/{seq} differ"
                    );
                    let h = cpim::parse_headers(&m.body).expect("CPIM headers");
                    let f = h.from.expect("CPIM From");
                    assert_eq!(f.uri, identity[sender]);
                    assert_eq!(f.display_name, names[sender]);
                    // Every frame of the copy: to this recipient, from its relay session, under
                    // the copy's own Message-ID, a SEND.
                    for head in &m.heads {
                        assert_eq!(head.method, Method::Send);
                        assert_eq!(head.to_path, vec![own.clone()]);
                        assert_eq!(head.from_path, vec![relay.clone()]);
                        assert_eq!(head.message_id.as_deref(), Some(m.message_id.as_str()));
                    }
                    assert!(
                        !m.message_id.starts_with("ord"),
                        "recipient {me}: the sender's Message-ID was forwarded"
                    );
                    let earlier = ids.lock().unwrap().insert(m.message_id.clone(), me);
                    assert_eq!(earlier, None, "Message-ID {} reused", m.message_id);
                    got += 1;
                }
                // Nothing more: no duplicate, nothing out of place.
                let rest = c.drain(Duration::from_millis(300));
                assert!(
                    rest.iter().all(
                        |f| !matches!(f, Frame::Request { head, .. } if head.method == Method::Send)
                    ),
                    "recipient {me}: more SENDs than sent"
                );
                p
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in threads {
        done.push(t.join().expect("a participant's checks failed"));
    }
    let expected =
        SENDERS * (SENDERS - 1) * MESSAGES + (PARTICIPANTS - SENDERS) * SENDERS * MESSAGES;
    assert_eq!(ids.lock().unwrap().len(), expected);
    // The relay ran its connections on two worker threads.
    assert!(
        without_colours(&stack.relay_log()).contains("threads=2"),
        "{}",
        stack.relay_log()
    );
}

/// The log without its ANSI colour sequences (`ESC [ ... m`).
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut in_escape = false;
    for ch in log.chars() {
        match (in_escape, ch) {
            (false, '\u{1b}') => in_escape = true,
            (false, c) => out.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    out
}
