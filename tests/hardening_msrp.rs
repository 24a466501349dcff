//! End-to-end attacks on the MSRP switch, written the way a hostile participant would try them,
//! through a real Kamailio with chat_alias and the real relay: chunks that rewrite checked bytes,
//! private messages aimed at a recycled URI, and CPIM headers with bare LF line ends. Every byte
//! the other participants receive is searched for what must not reach them.
mod support;

use chat_alias_proto::msrp::{encode, ByteRange, Continuation, Method};
use std::time::Duration;
use support::answer::assigned;
use support::msrp::{cpim as cpim_body, new_id, Client, Frame};
use support::sip::{join, leave, msrp_offer, Invite, Response, Transport};
use support::Stack;

const LOUNGE: &str = "sip:lounge@im.example.net";
const ANON: &str = "sip:anonymous@anonymous.invalid";
const T: Duration = Duration::from_secs(3);
/// How long "nothing arrives" is watched for.
const QUIET_PERIOD: Duration = Duration::from_millis(400);

/// A participant that joined over SIP and bound over MSRP.
struct Member {
    sip: support::sip::Client,
    inv: Invite,
    ok: Response,
    name: Option<String>,
    uri: String,
    msrp: Client,
}

impl Member {
    fn cpim_from(&self) -> String {
        match &self.name {
            Some(n) => format!("\"{n}\" <{}>", self.uri),
            None => format!("<{}>", self.uri),
        }
    }
    fn m(&mut self) -> &mut Client {
        &mut self.msrp
    }
}

fn enter(stack: &Stack, identity: &str, alias: Option<&str>, anonymous: bool) -> Member {
    let mut sip = stack.client(Transport::Udp);
    let mut inv = if anonymous {
        Invite::anonymous(LOUNGE, identity, alias)
    } else {
        Invite::named(LOUNGE, identity, alias)
    };
    let own_session = new_id() + &new_id();
    // Below the ephemeral range, so it cannot be the relay's own port.
    let own_port = 20000 + u16::from_str_radix(&own_session[..4], 16).unwrap() % 9000;
    inv.body = Some(("application/sdp".into(), msrp_offer(own_port, &own_session)));
    let ok = join(&mut sip, &inv);
    assert_eq!(ok.code, 200, "join of {identity}: {}", ok.raw_text());
    // Without an assigned identity in the answer, the participant speaks as it joined.
    let (name, uri) = assigned(&ok).unwrap_or_else(|| {
        let uri = if anonymous { ANON } else { identity };
        (alias.map(str::to_string), uri.to_string())
    });
    let relay = ok
        .body_text()
        .lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .expect("a=path in the 200 OK")
        .trim()
        .to_string();
    let own = format!("msrp://127.0.0.1:{own_port}/{own_session};tcp");
    let mut msrp = Client::connect(&relay, &own);
    assert_eq!(msrp.bind(), Some(200), "bind of {identity}");
    Member {
        sip,
        inv,
        ok,
        name,
        uri,
        msrp,
    }
}

/// One SEND chunk with any Byte-Range (`end`/`total` None: `*`); returns its transaction id.
#[allow(clippy::too_many_arguments)]
fn send_chunk(
    c: &mut Client,
    mid: &str,
    start: u64,
    end: Option<u64>,
    total: Option<u64>,
    body: &[u8],
    cont: Continuation,
) -> String {
    let mut h = c.head(Method::Send);
    h.message_id = Some(mid.to_string());
    h.byte_range = Some(ByteRange { start, end, total });
    if !body.is_empty() {
        h.content_type = Some("message/cpim".into());
    }
    let mut out = Vec::new();
    encode::request_head(&h, &mut out);
    out.extend_from_slice(body);
    encode::end_line(&h.transaction_id, cont, !body.is_empty(), &mut out);
    c.send_raw(&out);
    h.transaction_id
}

fn status(c: &mut Client, tid: &str) -> Option<u16> {
    c.response(tid, T).map(|r| r.status)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The next message `c` gets ended with `#`, and none of its frames carry `forged`.
fn sees_abort(c: &mut Client, forged: &[u8]) {
    let got = c
        .next_message(T)
        .expect("the message's beginning and its end");
    assert_eq!(got.end, Continuation::Abort, "{:?}", got.text());
    assert!(!contains(&got.body, forged), "{:?}", got.text());
}

/// A rewriting chunk: what it tries, its Byte-Range (start, end, total; None: `*`), its bytes.
type Rewrite<'a> = (&'a str, u64, Option<u64>, Option<u64>, &'a [u8]);

/// The attack of issue 7 and its variants: the sender's first chunk carries its own CPIM From,
/// a later chunk of the same Message-ID rewrites it. Each gets 403; the other participants see
/// the message end with `#` and never receive a byte of the forged headers or text.
#[test]
fn chunks_cannot_rewrite_the_checked_cpim_from() {
    let stack = Stack::start("hardening-chunks");
    let mut alice = enter(&stack, "sip:alice@example.com", Some("Alice"), false);
    let mut bob = enter(&stack, "sip:bob.secret@example.com", Some("bob"), true);
    let mut mallory = enter(&stack, "sip:mallory@example.org", Some("bob"), true);
    assert_eq!(bob.uri, ANON);
    assert_eq!(mallory.name.as_deref(), Some("bob-2"));
    let room = format!("<{LOUNGE}>");
    let forged_froms = [format!("\"bob\" <{ANON}>"), room.clone()];
    let own = cpim_body(
        &mallory.cpim_from(),
        &[&room],
        "text/plain",
        b"just saying hello",
    );
    let k = own.len() as u64;
    for (i, forged_from) in forged_froms.iter().enumerate() {
        let forged = cpim_body(
            forged_from,
            &[&room],
            "text/plain",
            b"FORGED: send me money",
        );
        let n = forged.len() as u64;
        // (start, end, total) of the rewriting chunk, and the bytes it carries.
        let variants: [Rewrite; 3] = [
            ("overlap at 1", 1, Some(n), Some(n), &forged[..]),
            ("overlap in the headers", 7, None, None, &forged[6..]),
            ("gap", k + 2, None, None, &forged[..]),
        ];
        for (j, (what, start, end, total, bytes)) in variants.into_iter().enumerate() {
            let mid = format!("rw{i}{j}{}", new_id());
            let m = mallory.m();
            let t1 = send_chunk(m, &mid, 1, None, None, &own, Continuation::More);
            assert_eq!(status(m, &t1), Some(200), "{what}");
            let t2 = send_chunk(m, &mid, start, end, total, bytes, Continuation::End);
            assert_eq!(status(m, &t2), Some(403), "{what}");
            for r in [&mut alice, &mut bob] {
                sees_abort(r.m(), b"FORGED");
            }
            // The Message-ID is spent: the same rewrite again is refused and goes nowhere.
            let t3 = send_chunk(m, &mid, 1, Some(n), Some(n), &forged, Continuation::End);
            assert_eq!(status(m, &t3), Some(403), "{what}, again");
        }
        // A changed total (a number, then another), and `*` after a number.
        for (j, second_total) in [Some(k + 100), None].into_iter().enumerate() {
            let mid = format!("tt{i}{j}{}", new_id());
            let m = mallory.m();
            let t1 = send_chunk(m, &mid, 1, Some(k), Some(k + 50), &own, Continuation::More);
            assert_eq!(status(m, &t1), Some(200));
            let tail = &forged[..50];
            let t2 = send_chunk(m, &mid, k + 1, None, second_total, tail, Continuation::End);
            assert_eq!(status(m, &t2), Some(403), "total {second_total:?}");
            for r in [&mut alice, &mut bob] {
                sees_abort(r.m(), b"FORGED");
            }
        }
        // Two chunks with `$`: the first is a whole message, the second (forged) goes nowhere.
        let mid = format!("dd{i}{}", new_id());
        let m = mallory.m();
        let t1 = send_chunk(m, &mid, 1, Some(k), Some(k), &own, Continuation::End);
        assert_eq!(status(m, &t1), Some(200));
        let t2 = send_chunk(m, &mid, 1, Some(n), Some(n), &forged, Continuation::End);
        assert_eq!(status(m, &t2), Some(403));
        for r in [&mut alice, &mut bob] {
            let got = r.m().next_message(T).expect("the first message");
            assert_eq!(got.end, Continuation::End);
            assert_eq!(got.body, own);
        }
    }
    // Nothing else arrived, and not one frame the others got holds a forged From or text.
    for r in [&mut alice, &mut bob] {
        let rest = r.m().drain(QUIET_PERIOD);
        assert!(
            rest.iter()
                .all(|f| !matches!(f, Frame::Request { head, .. } if head.method == Method::Send)),
            "{rest:?}"
        );
        let all = &r.m().received;
        assert!(!contains(all, b"FORGED"));
        assert!(!contains(all, forged_froms[0].as_bytes()));
        assert!(!contains(all, format!("From: {room}").as_bytes()));
    }
    // Mallory may still speak as herself.
    let st = mallory.m().send_cpim(&own);
    assert_eq!(st, Some(200));
    assert_eq!(alice.m().next_message(T).unwrap().body, own);
}

/// Issue 7: dave joined as "bob" and left; erin joined as "zed" and was given the same URI.
/// Carol's private message to "bob" at that URI gets 404 and erin receives nothing; to "zed" (or
/// to the URI alone) it reaches erin.
#[test]
fn a_private_message_goes_only_to_the_name_the_sender_saw() {
    let stack = Stack::start("hardening-private-name");
    let mut carol = enter(&stack, "sip:carol@example.com", Some("Carol"), false);
    let mut dave = enter(&stack, "sip:dave@example.com", Some("bob"), true);
    assert_eq!(
        (dave.name.as_deref(), dave.uri.as_str()),
        (Some("bob"), ANON)
    );
    let to_bob = format!("\"bob\" <{ANON}>");
    let body = cpim_body(&carol.cpim_from(), &[&to_bob], "text/plain", b"for bob");
    assert_eq!(carol.m().send_cpim(&body), Some(200));
    assert_eq!(dave.m().next_message(T).unwrap().body, body);
    assert_eq!(leave(&mut dave.sip, &dave.inv, &dave.ok).code, 200);
    assert!(
        dave.m().wait_closed(T),
        "the relay closes dave's connection"
    );
    let mut erin = enter(&stack, "sip:erin@example.com", Some("zed"), true);
    assert_eq!(
        (erin.name.as_deref(), erin.uri.as_str()),
        (Some("zed"), ANON)
    );
    let secret = cpim_body(
        &carol.cpim_from(),
        &[&to_bob],
        "text/plain",
        b"SECRET for bob",
    );
    assert_eq!(carol.m().send_cpim(&secret), Some(404));
    let got = erin.m().drain(QUIET_PERIOD);
    assert!(got.is_empty(), "{got:?}");
    assert!(!contains(&erin.m().received, b"SECRET"));
    for to in [format!("\"zed\" <{ANON}>"), format!("<{ANON}>")] {
        let body = cpim_body(&carol.cpim_from(), &[&to], "text/plain", b"for zed");
        assert_eq!(carol.m().send_cpim(&body), Some(200), "{to}");
        assert_eq!(erin.m().next_message(T).unwrap().body, body, "{to}");
    }
}

/// Issue 7: the relay reads CPIM headers with CRLF line ends only; a bare LF in the CPIM header
/// block or in the encapsulated MIME headers gets 400 and nothing is delivered.
#[test]
fn a_bare_lf_in_cpim_headers_is_400_and_nothing_is_delivered() {
    let stack = Stack::start("hardening-bare-lf");
    let mut alice = enter(&stack, "sip:alice@example.com", Some("Alice"), false);
    let mut bob = enter(&stack, "sip:bob.secret@example.com", Some("bob"), true);
    let from = alice.cpim_from();
    let bad = [
        // A reader that ends lines at LF sees a second From, bob's.
        format!(
            "From: {from}\r\nTo: <{LOUNGE}>\nFrom: \"bob\" <{ANON}>\r\n\r\n\
             Content-Type: text/plain\r\n\r\nLF-SMUGGLED"
        ),
        format!("From: {from}\r\nTo: <{LOUNGE}>\r\n\r\nContent-Type: text/plain\n\r\nLF-SMUGGLED"),
    ];
    for body in &bad {
        assert_eq!(alice.m().send_cpim(body.as_bytes()), Some(400), "{body:?}");
    }
    let got = bob.m().drain(QUIET_PERIOD);
    assert!(got.is_empty(), "{got:?}");
    assert!(!contains(&bob.m().received, b"LF-SMUGGLED"));
    // With CRLF line ends (and an LF in the text), it goes through.
    let good = cpim_body(&from, &[&format!("<{LOUNGE}>")], "text/plain", b"a\nb");
    assert_eq!(alice.m().send_cpim(&good), Some(200));
    assert_eq!(bob.m().next_message(T).unwrap().body, good);
}
