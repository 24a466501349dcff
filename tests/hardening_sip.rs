//! End-to-end, the SIP side of the hardening contract through a real Kamailio (kamailio/kamailio.cfg)
//! with chat_alias and the real relay, written the way an attacker would try it:
//! - names with bidi overrides, zero-width and other invisible code points are refused (400 naming
//!   the first such code point; 424 for an RFC 7701 NICKNAME), spaces are mapped, not refused;
//! - a departed participant's suffixed name and `anonymousN` URI are never handed to a newcomer;
//! - one authenticated identity holds at most `max_places_per_identity` (3) places in a conference;
//! - a retransmitted INVITE, or one with the same Call-ID, From-tag and branch but other headers,
//!   gets the original 200 and changes nothing.
mod support;

use std::collections::HashMap;
use std::time::Duration;
use support::answer::{assigned, sdp_of};
use support::msrp::{new_id, Client as Msrp};
use support::sip::{join, leave, msrp_offer, Client, Invite, Response, Transport};
use support::Stack;

const LOUNGE: &str = "sip:lounge@im.example.net";

/// `chat_alias.list` as records: field name → value (kamcmd prints `{`, `\tname: value`, `}`).
fn participants(stack: &Stack) -> Vec<HashMap<String, String>> {
    let (ok, out) = stack.kamcmd(&["chat_alias.list"]);
    assert!(ok, "{out}");
    let mut rows = Vec::new();
    let mut cur: Option<HashMap<String, String>> = None;
    for line in out.lines() {
        match line.trim() {
            "{" => cur = Some(HashMap::new()),
            "}" => rows.extend(cur.take()),
            l => {
                if let (Some(c), Some((k, v))) = (cur.as_mut(), l.split_once(':')) {
                    c.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
    }
    rows
}

/// (display name, URI) of every participant, in join order.
fn identities(stack: &Stack) -> Vec<(String, String)> {
    participants(stack)
        .into_iter()
        .map(|p| {
            (
                p.get("display_name").cloned().unwrap_or_default(),
                p.get("uri").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn stat(stack: &Stack, name: &str) -> i64 {
    let (ok, out) = stack.kamcmd(&["stats.get_statistics", "chat_alias:"]);
    assert!(ok, "{out}");
    out.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == format!("chat_alias:{name}")).then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no statistic {name} in {out}"))
}

/// The identity a 200 OK announces: the CPIM part's, or the request's own (SDP-only answer).
fn announced(r: &Response, inv: &Invite) -> (Option<String>, String) {
    assigned(r).unwrap_or_else(|| {
        let from = chat_alias_proto::sip::parse_name_addr(&inv.from).expect("From");
        (from.display_name, from.uri)
    })
}

fn anonymous_join(stack: &Stack, identity: &str, alias: &str) -> (Client, Invite, Response) {
    let mut c = stack.client(Transport::Udp);
    let inv = Invite::anonymous(LOUNGE, identity, Some(alias));
    let r = join(&mut c, &inv);
    (c, inv, r)
}

/// Issue attack "bidi look-alikes": with "alice" in the room, `"\u202Eecila"` (renders as "alice")
/// and `"\u202E2-bob"` (renders as "bob-2") were accepted as written. Now every name holding a code
/// point RFC 8266 disallows is refused whole, with the first such code point in the reason phrase,
/// and nothing is taken in the table. A NICKNAME with one gets 424 from the relay.
#[test]
fn names_with_invisible_or_bidi_code_points_are_refused_naming_the_code_point() {
    let stack = Stack::start("hardening-names");
    let (_a, _ai, ra) = anonymous_join(&stack, "sip:alice@example.com", "alice");
    assert_eq!(ra.code, 200, "{}", ra.raw_text());
    let before = identities(&stack);
    let cases: &[(&str, bool, &str)] = &[
        ("\u{202E}ecila", true, "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\u{202E}2-bob", true, "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("alice\u{200B}", true, "U+200B ZERO WIDTH SPACE"),
        ("al\u{200D}ice", true, "U+200D ZERO WIDTH JOINER"),
        ("\u{FEFF}alice", true, "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        (
            "a\u{2066}lice\u{2069}",
            true,
            "U+2066 LEFT-TO-RIGHT ISOLATE",
        ),
        ("ali\u{00AD}ce", true, "U+00AD SOFT HYPHEN"),
        ("x\ty", true, "U+0009 CHARACTER TABULATION"),
        ("mallory\u{E000}", true, "U+E000 <private-use>"),
        // The display name of a named join is the participant's name too.
        ("Mal\u{202D}lory", false, "U+202D LEFT-TO-RIGHT OVERRIDE"),
        // The first disallowed code point is named, not another one.
        ("ok\u{200F}\u{202E}", true, "U+200F RIGHT-TO-LEFT MARK"),
    ];
    for (i, &(name, anonymous, label)) in cases.iter().enumerate() {
        let me = format!("sip:mallory{i}@example.com");
        let mut c = stack.client(if i % 2 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        });
        let inv = if anonymous {
            Invite::anonymous(LOUNGE, &me, Some(name))
        } else {
            Invite::named(LOUNGE, &me, Some(name))
        };
        let r = join(&mut c, &inv);
        assert_eq!(r.code, 400, "{name:?}: {}", r.raw_text());
        assert_eq!(
            r.reason,
            format!("Display name not allowed: {label}"),
            "{name:?}"
        );
        assert!(r.reason.is_ascii());
    }
    assert_eq!(identities(&stack), before, "no refused name took a place");
    assert_eq!(stat(&stack, "refused_bad_request"), cases.len() as i64);

    // Spaces are mapped by RFC 8266, not refused: leading, trailing and repeated ones pass, and
    // such a name still clashes with the name it maps to.
    let (_b, _bi, rb) = anonymous_join(&stack, "sip:bob@example.com", "  alice  ");
    assert_eq!(rb.code, 200, "{}", rb.raw_text());
    let name = assigned(&rb).and_then(|(n, _)| n).expect("a suffixed name");
    assert!(
        chat_alias_proto::nickname::same_nickname(&name, "alice-2"),
        "{name:?}"
    );
    let (_c, _ci, rc) = anonymous_join(&stack, "sip:carol@example.com", "carol   the  great");
    assert_eq!(rc.code, 200, "{}", rc.raw_text());

    // NICKNAME (RFC 7701): the relay asks the focus, which refuses the name: 424, and the old name
    // stays in force.
    let mut sip = stack.client(Transport::Udp);
    let own_session = new_id() + &new_id();
    let own_port = 20000 + u16::from_str_radix(&own_session[..4], 16).unwrap() % 9000;
    let mut inv = Invite::anonymous(LOUNGE, "sip:dave@example.com", Some("dave"));
    inv.body = Some(("application/sdp".into(), msrp_offer(own_port, &own_session)));
    let ok = join(&mut sip, &inv);
    assert_eq!(ok.code, 200, "{}", ok.raw_text());
    let relay = sdp_of(&ok)
        .lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .expect("a=path")
        .trim()
        .to_string();
    let mut m = Msrp::connect(
        &relay,
        &format!("msrp://127.0.0.1:{own_port}/{own_session};tcp"),
    );
    assert_eq!(m.bind(), Some(200));
    for bad in ["\u{202E}ecila", "dave\u{200B}", "\u{2066}dave"] {
        assert_eq!(m.nickname(bad), Some(424), "{bad:?}: {}", stack.relay_log());
    }
    assert!(identities(&stack).iter().any(|(n, _)| n == "dave"));
    // A clean name is still accepted, spaces and all.
    assert_eq!(m.nickname("  dave  the  brave "), Some(200));
}

/// Issue attack "recycled identities": bob-2 (`sip:anonymous2@…`) left while "bob" stayed and the
/// next "bob" was handed exactly bob-2 and anonymous2. Now neither comes back while the conference
/// has participants; only the unmodified name and the plain URI are reused once free.
#[test]
fn a_departed_suffix_and_anonymous_number_are_never_handed_out_again() {
    let stack = Stack::start("hardening-recycle");
    let (_c1, _i1, r1) = anonymous_join(&stack, "sip:u1@example.com", "bob");
    assert_eq!(r1.code, 200);
    let (mut c2, i2, r2) = anonymous_join(&stack, "sip:u2@example.com", "bob");
    assert_eq!(
        announced(&r2, &i2),
        (
            Some("bob-2".into()),
            "sip:anonymous2@anonymous.invalid".into()
        )
    );
    assert_eq!(leave(&mut c2, &i2, &r2).code, 200);

    let (_c3, i3, r3) = anonymous_join(&stack, "sip:u3@example.com", "bob");
    assert_eq!(
        announced(&r3, &i3),
        (
            Some("bob-3".into()),
            "sip:anonymous3@anonymous.invalid".into()
        ),
        "{}",
        r3.raw_text()
    );
    // Typing the departed name literally does not get it either.
    let (_c4, i4, r4) = anonymous_join(&stack, "sip:u4@example.com", "bob-2");
    let (name4, uri4) = announced(&r4, &i4);
    assert_ne!(name4.as_deref(), Some("bob-2"), "{}", r4.raw_text());
    assert!(!chat_alias_proto::nickname::same_nickname(
        name4.as_deref().unwrap(),
        "bob-2"
    ));
    assert_eq!(uri4, "sip:anonymous4@anonymous.invalid");
    // Nobody in the table holds a departed identity.
    for (n, u) in identities(&stack) {
        assert_ne!(n, "bob-2");
        assert_ne!(u, "sip:anonymous2@anonymous.invalid");
    }

    // The unmodified name and the plain URI are reused once free (the CR requires it).
    let (mut c5, i5, r5) = anonymous_join(&stack, "sip:u5@example.com", "zed");
    assert_eq!(r5.code, 200);
    assert_eq!(announced(&r5, &i5).1, "sip:anonymous5@anonymous.invalid");
    assert_eq!(leave(&mut c5, &i5, &r5).code, 200);
    let (_c6, i6, r6) = anonymous_join(&stack, "sip:u6@example.com", "zed");
    assert_eq!(
        announced(&r6, &i6),
        (
            Some("zed".into()),
            "sip:anonymous6@anonymous.invalid".into()
        ),
        "zed is free again as a name; anonymous5 stays spent"
    );
}

/// Issue attack "sock puppets": one authenticated identity joined the same conference six times.
/// Now the fourth place is refused 486 with a reason that says why, counted in refused_places;
/// another identity still joins, and a freed place can be taken again.
#[test]
fn one_identity_holds_at_most_three_places_in_a_conference() {
    let stack = Stack::start("hardening-places");
    let me = "sip:mallory@example.com";
    let mut held = Vec::new();
    for i in 0..6 {
        let mut c = stack.client(if i % 2 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        });
        // One named place and five anonymous ones: counted together.
        let inv = if i == 1 {
            Invite::named(LOUNGE, me, Some("Mallory"))
        } else {
            Invite::anonymous(LOUNGE, me, Some(&format!("puppet{i}")))
        };
        let r = join(&mut c, &inv);
        if i < 3 {
            assert_eq!(r.code, 200, "join {i}: {}", r.raw_text());
            held.push((c, inv, r));
        } else {
            assert_eq!(r.code, 486, "join {i}: {}", r.raw_text());
            assert_eq!(r.reason, "Busy Here (too many places for this identity)");
            assert!(
                r.header("Warning")
                    .is_some_and(|w| w.contains("max_places_per_identity")),
                "{}",
                r.raw_text()
            );
        }
    }
    assert_eq!(stat(&stack, "refused_places"), 3);
    let mine = participants(&stack)
        .iter()
        .filter(|p| p.get("identity").map(String::as_str) == Some(me))
        .count();
    assert_eq!(mine, 3);

    // Another identity is not affected.
    let (_o, _oi, ro) = anonymous_join(&stack, "sip:olivia@example.com", "olivia");
    assert_eq!(ro.code, 200, "{}", ro.raw_text());

    // A place given back can be taken again, and only one.
    let (mut c, inv, r) = held.pop().unwrap();
    assert_eq!(leave(&mut c, &inv, &r).code, 200);
    let (_p, _pi, rp) = anonymous_join(&stack, me, "puppet6");
    assert_eq!(rp.code, 200, "{}", rp.raw_text());
    let (_q, _qi, rq) = anonymous_join(&stack, me, "puppet7");
    assert_eq!(rq.code, 486);
    assert_eq!(stat(&stack, "refused_places"), 4);
}

/// The identity parts of a 200 OK: To-tag, the announced identity, the focus's Contact and the MSRP
/// path the participant is to bind.
fn identity_parts(
    r: &Response,
    inv: &Invite,
) -> (Option<String>, (Option<String>, String), String) {
    assert_eq!(r.code, 200, "{}", r.raw_text());
    let path = sdp_of(r)
        .lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .expect("a=path")
        .trim()
        .to_string();
    (r.to_tag(), announced(r, inv), path)
}

/// Item "a request cannot change a participant after the fact": the same Call-ID, From-tag and top
/// Via branch with other headers (Privacy removed, another display name, the real identity in From)
/// gets the original 200 — while tm still holds the transaction, byte for byte; after the
/// transaction is gone, the same identity, To-tag and MSRP session — and neither the table nor the
/// statistics change.
#[test]
fn a_retransmitted_invite_with_other_headers_changes_nothing() {
    let stack = Stack::start("hardening-retransmission");
    let me = "sip:dave@example.com";
    let (_o, _oi, ro) = anonymous_join(&stack, "sip:olivia@example.com", "bob");
    assert_eq!(ro.code, 200);
    let mut c = stack.client(Transport::Udp);
    let inv = Invite::anonymous(LOUNGE, me, Some("bob"));
    let first = join(&mut c, &inv);
    let original = identity_parts(&first, &inv);
    assert_eq!(
        original.1,
        (
            Some("bob-2".into()),
            "sip:anonymous2@anonymous.invalid".into()
        )
    );
    let table = participants(&stack);
    let joins = stat(&stack, "joins");

    // The attacker's variants: Privacy gone and the real identity in From; another display name;
    // both. Same Call-ID, From-tag, CSeq and branch.
    let mut variants = Vec::new();
    let mut v = inv.clone();
    v.privacy = None;
    v.from = format!("\"Dave\" <{me}>");
    variants.push(v);
    let mut v = inv.clone();
    v.from = "\"mallory\" <sip:anonymous@anonymous.invalid>".into();
    variants.push(v);
    let mut v = inv.clone();
    v.privacy = None;
    v.from = format!("<{me}>");
    v.extra_headers.push("Accept: application/sdp".into());
    variants.push(v);

    // While tm holds the transaction it answers with the 200 it sent, untouched.
    for v in &variants {
        let r = c
            .transact(&v.render(&c), Duration::from_secs(8))
            .expect("an answer to the retransmission");
        assert_eq!(r.code, 200, "{}", r.raw_text());
        assert_eq!(r.raw, first.raw, "the original 200, byte for byte");
        assert_eq!(identity_parts(&r, &inv), original);
    }
    assert_eq!(participants(&stack), table);
    assert_eq!(stat(&stack, "joins"), joins);

    // Once tm has forgotten the transaction (its wait timer, 5 s by default), the same request is a
    // new transaction of a dialog that joined already: the same identity, To-tag and session again.
    std::thread::sleep(Duration::from_secs(7));
    for v in &variants[..2] {
        let r = c
            .transact(&v.render(&c), Duration::from_secs(8))
            .expect("an answer to the repeated INVITE");
        assert_eq!(r.code, 200, "{}", r.raw_text());
        assert_ne!(
            r.raw, first.raw,
            "a newly composed answer (new SDP session id and boundary): tm no longer had it"
        );
        let (tag, (name, uri), path) = identity_parts(&r, v);
        assert_eq!(tag, original.0);
        assert_eq!(path, original.2, "the same MSRP session");
        // The request's own From differs from the assignment, so the answer says what it is.
        assert_eq!((name, uri), original.1, "{}", r.raw_text());
        let ack = v.ack(&c, tag.as_deref().unwrap());
        c.send(ack.as_bytes());
    }
    assert_eq!(
        participants(&stack),
        table,
        "nothing in the table changed: anonymity, name, URI, session"
    );
    assert_eq!(stat(&stack, "joins"), joins);
    assert_eq!(stat(&stack, "active_participants"), 2);
    // The relay still knows the participant as it was admitted: it binds from the original offer's
    // path under the original session.
    let relay_path = original.2.clone();
    let own = inv
        .body
        .as_ref()
        .and_then(|(_, b)| {
            b.lines()
                .find_map(|l| l.strip_prefix("a=path:"))
                .map(|s| s.trim().to_string())
        })
        .unwrap();
    let mut m = Msrp::connect(&relay_path, &own);
    assert_eq!(m.bind(), Some(200), "{}", stack.relay_log());
    assert!(
        !stack
            .relay_log()
            .contains("join refresh with another identity"),
        "the module repeated the participant as stored: {}",
        stack.relay_log()
    );
}
