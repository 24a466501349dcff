//! End-to-end: the SIP half of the Chat Alias procedure, through a real Kamailio with chat_alias and
//! the real relay, over UDP and TCP.
mod support;

use std::time::Duration;
use support::answer::{assigned, check_focus_answer};
use support::sip::{join, leave, Invite, Transport};
use support::{Stack, StackOptions};

const BOOKCLUB: &str = "sip:bookclub@im.example.net";
const LOUNGE: &str = "sip:lounge@im.example.net";
const SMALLROOM: &str = "sip:smallroom@im.example.net";

#[test]
fn unique_alias_gets_sdp_only_200_then_clash_gets_multipart_udp_and_tcp() {
    let stack = Stack::start("unique-clash");
    for (i, t) in [Transport::Udp, Transport::Tcp].into_iter().enumerate() {
        let group = if i == 0 { BOOKCLUB } else { LOUNGE };
        let me = if i == 0 {
            "sip:bob@example.com"
        } else {
            "sip:dave@example.com"
        };
        let mut c1 = stack.client(t);
        let inv1 = Invite::anonymous(group, me, Some("bob"));
        let r1 = join(&mut c1, &inv1);
        check_focus_answer(&r1, group);
        assert!(
            r1.header("Content-Type")
                .unwrap()
                .starts_with("application/sdp"),
            "unique alias: SDP only"
        );
        // Bob's real identity is never in what he gets back either.
        assert!(!r1.raw_text().contains("bob@example.com"));

        let other = if i == 0 {
            "sip:carol@partner.example.org"
        } else {
            "sip:erin@example.com"
        };
        let mut c2 = stack.client(t);
        let inv2 = Invite::anonymous(group, other, Some("bob"));
        let r2 = join(&mut c2, &inv2);
        check_focus_answer(&r2, group);
        let (name, uri) = assigned(&r2).expect("clash: multipart with CPIM");
        assert_eq!(name.as_deref(), Some("bob-2"));
        assert_eq!(uri, "sip:anonymous2@anonymous.invalid");
        assert!(
            !r2.raw_text().contains(&other[4..]),
            "real identity leaked in 200 OK"
        );
        let cd = r2.body_text();
        assert!(cd.contains("Content-Disposition: render;handling=optional"));
    }
}

#[test]
fn case_width_and_confusable_names_clash() {
    let stack = Stack::start("confusables");
    let mut c = stack.client(Transport::Udp);
    let first = join(
        &mut c,
        &Invite::anonymous(LOUNGE, "sip:u0@example.com", Some("Bob")),
    );
    assert_eq!(first.code, 200);
    assert!(assigned(&first).is_none());
    for (i, name) in ["bob", "ＢＯＢ", "bоb", "B0b"].iter().enumerate() {
        let mut c = stack.client(Transport::Udp);
        let r = join(
            &mut c,
            &Invite::anonymous(LOUNGE, &format!("sip:u{}@example.com", i + 1), Some(name)),
        );
        assert_eq!(r.code, 200, "{name}");
        let (n, uri) = assigned(&r).unwrap_or_else(|| panic!("{name} should clash with Bob"));
        assert_eq!(n.unwrap(), format!("{name}-{}", i + 2));
        assert_eq!(uri, format!("sip:anonymous{}@anonymous.invalid", i + 2));
    }
    // An invisible character does not make another name: the name is refused (RFC 8266), not
    // stripped (tests/hardening_sip.rs has the whole set).
    let mut c = stack.client(Transport::Udp);
    let r = join(
        &mut c,
        &Invite::anonymous(LOUNGE, "sip:u9@example.com", Some("bob\u{200B}")),
    );
    assert_eq!(r.code, 400, "{}", r.raw_text());
    assert_eq!(
        r.reason,
        "Display name not allowed: U+200B ZERO WIDTH SPACE"
    );
}

#[test]
fn refusals_carry_the_right_codes() {
    let stack = Stack::start("refusals");
    let mut c = stack.client(Transport::Udp);
    // Alice is a member but not allowed anonymity in the book club.
    let r = join(
        &mut c,
        &Invite::anonymous(BOOKCLUB, "sip:alice@example.com", Some("a")),
    );
    assert_eq!(r.code, 403, "{}", r.raw_text());
    assert!(r.reason.to_lowercase().contains("anonym"), "{}", r.reason);
    // ...but she may join with her own identity.
    let r = join(
        &mut c,
        &Invite::named(BOOKCLUB, "sip:alice@example.com", Some("Alice")),
    );
    assert_eq!(r.code, 200);
    // An outsider: join-handling false.
    let r = join(
        &mut c,
        &Invite::named(BOOKCLUB, "sip:mallory@evil.example", Some("M")),
    );
    assert_eq!(r.code, 403);
    // No asserted identity.
    let mut inv = Invite::anonymous(BOOKCLUB, "sip:bob@example.com", Some("b"));
    inv.asserted = None;
    assert_eq!(join(&mut c, &inv).code, 403);
    // Unknown group.
    let r = join(
        &mut c,
        &Invite::anonymous(
            "sip:nosuchgroup@im.example.net",
            "sip:bob@example.com",
            Some("b"),
        ),
    );
    assert_eq!(r.code, 404);
    // No SDP / no MSRP accepting CPIM.
    let mut inv = Invite::anonymous(BOOKCLUB, "sip:bob@example.com", Some("b"));
    inv.body = None;
    assert_eq!(join(&mut c, &inv).code, 488);
    let mut inv = Invite::anonymous(BOOKCLUB, "sip:bob@example.com", Some("b"));
    inv.body = Some((
        "application/sdp".into(),
        support::sip::msrp_offer(4000, "abc").replace("message/cpim", "text/plain"),
    ));
    assert_eq!(join(&mut c, &inv).code, 488);
    // Display names: 65 characters and control characters are refused; 64 are fine.
    let r = join(
        &mut c,
        &Invite::anonymous(LOUNGE, "sip:x1@example.com", Some(&"é".repeat(65))),
    );
    assert_eq!(r.code, 400);
    let r = join(
        &mut c,
        &Invite::anonymous(LOUNGE, "sip:x2@example.com", Some("tab\there")),
    );
    assert_eq!(r.code, 400);
    let r = join(
        &mut c,
        &Invite::anonymous(LOUNGE, "sip:x3@example.com", Some(&"é".repeat(64))),
    );
    assert_eq!(r.code, 200);
    // Privacy in any case and position makes the request anonymous.
    let mut inv = Invite::named(BOOKCLUB, "sip:alice@example.com", Some("Al"));
    inv.privacy = Some("header;ID;critical".into());
    assert_eq!(
        join(&mut c, &inv).code,
        403,
        "Alice asking for anonymity via Privacy is refused"
    );
    // Full conference: small room holds 2.
    for who in ["alice", "bob"] {
        let r = join(
            &mut c,
            &Invite::anonymous(SMALLROOM, &format!("sip:{who}@example.com"), Some(who)),
        );
        assert_eq!(r.code, 200);
    }
    let r = join(
        &mut c,
        &Invite::anonymous(SMALLROOM, "sip:carol@example.com", Some("carol")),
    );
    assert_eq!(r.code, 486);
    // Other methods to a group: 405 with Allow.
    let msg = format!(
        "MESSAGE {BOOKCLUB} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bKm1\r\nMax-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <{BOOKCLUB}>\r\nCall-ID: m1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
        lp = c.local_port
    );
    let r = c.transact(&msg, Duration::from_secs(5)).unwrap();
    assert_eq!(r.code, 405);
    assert!(r.header("Allow").unwrap().contains("INVITE"));
}

#[test]
fn retransmitted_invite_gets_the_same_200_and_no_second_place() {
    let stack = Stack::start("retrans");
    let mut c = stack.client(Transport::Udp);
    let mut c0 = stack.client(Transport::Udp);
    assert_eq!(
        join(
            &mut c0,
            &Invite::anonymous(LOUNGE, "sip:first@example.com", Some("zed"))
        )
        .code,
        200
    );
    let inv = Invite::anonymous(LOUNGE, "sip:second@example.com", Some("zed"));
    let bytes = inv.render(&c);
    c.send(bytes.as_bytes());
    let mut finals = Vec::new();
    let first = loop {
        let r = c.recv(Duration::from_secs(5)).expect("answer");
        if r.code >= 200 {
            break r;
        }
    };
    finals.push(first.clone());
    // Same bytes again (a UDP retransmission before the ACK): same 200, same To-tag, same identity.
    c.send(bytes.as_bytes());
    let again = loop {
        let r = c
            .recv(Duration::from_secs(5))
            .expect("answer to retransmission");
        if r.code >= 200 {
            break r;
        }
    };
    assert_eq!(again.code, 200);
    assert_eq!(again.to_tag(), first.to_tag());
    assert_eq!(assigned(&again), assigned(&first));
    assert_eq!(assigned(&first).unwrap().0.as_deref(), Some("zed-2"));
    c.send(inv.ack(&c, &first.to_tag().unwrap()).as_bytes());
    // A third participant named zed is zed-3: the retransmission took no place.
    let mut c3 = stack.client(Transport::Udp);
    let r3 = join(
        &mut c3,
        &Invite::anonymous(LOUNGE, "sip:third@example.com", Some("zed")),
    );
    assert_eq!(assigned(&r3).unwrap().0.as_deref(), Some("zed-3"));
    let (ok, list) = stack.kamcmd(&["chat_alias.list"]);
    assert!(ok, "{list}");
    assert_eq!(list.matches("zed").count(), 3, "{list}");
}

#[test]
fn bye_frees_the_name_and_uri() {
    let stack = Stack::start("bye");
    for t in [Transport::Udp, Transport::Tcp] {
        let mut a = stack.client(t);
        let inv_a = Invite::anonymous(LOUNGE, "sip:a@example.com", Some("kim"));
        let ra = join(&mut a, &inv_a);
        assert!(assigned(&ra).is_none());
        let mut b = stack.client(t);
        let inv_b = Invite::anonymous(LOUNGE, "sip:b@example.com", Some("kim"));
        let rb = join(&mut b, &inv_b);
        assert_eq!(assigned(&rb).unwrap().0.as_deref(), Some("kim-2"));
        // kim-2 leaves; while kim stays, neither kim-2 nor anonymous2 is handed out again: the
        // next kim gets kim-3 and a URI never used before.
        assert_eq!(leave(&mut b, &inv_b, &rb).code, 200);
        let mut c = stack.client(t);
        let inv_c = Invite::anonymous(LOUNGE, "sip:c@example.com", Some("kim"));
        let rc = join(&mut c, &inv_c);
        assert_eq!(
            assigned(&rc),
            Some((
                Some("kim-3".into()),
                "sip:anonymous3@anonymous.invalid".into()
            ))
        );
        // kim leaves; a new kim gets the plain name and URI.
        assert_eq!(leave(&mut a, &inv_a, &ra).code, 200);
        let mut d = stack.client(t);
        let inv_d = Invite::anonymous(LOUNGE, "sip:d@example.com", Some("kim"));
        let rd = join(&mut d, &inv_d);
        assert!(
            assigned(&rd).is_none(),
            "kim is free again: SDP-only answer"
        );
        leave(&mut c, &inv_c, &rc);
        leave(&mut d, &inv_d, &rd);
    }
    let (_, stats) = stack.kamcmd(&["stats.get_statistics", "chat_alias:"]);
    assert!(stats.contains("leaves"), "{stats}");
}

#[test]
fn dialog_expiry_frees_the_name() {
    let stack = Stack::start_with(
        "expiry",
        StackOptions {
            dialog_timeout: 2,
            ..Default::default()
        },
    );
    let mut a = stack.client(Transport::Udp);
    let ra = join(
        &mut a,
        &Invite::anonymous(LOUNGE, "sip:a@example.com", Some("ttl")),
    );
    assert!(assigned(&ra).is_none());
    // No BYE: the dialog times out and the name is freed.
    support::wait_for(
        || !stack.kamcmd(&["chat_alias.list"]).1.contains("ttl"),
        Duration::from_secs(20),
        "dialog expiry to free the alias",
    );
    let mut b = stack.client(Transport::Udp);
    let rb = join(
        &mut b,
        &Invite::anonymous(LOUNGE, "sip:b@example.com", Some("ttl")),
    );
    assert!(assigned(&rb).is_none(), "freed by expiry");
}

#[test]
fn reload_with_a_bad_document_keeps_the_old_rules() {
    let tmp = support::repo().join(format!("target/e2e/reload-groups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    support::copy_groups(&tmp);
    let stack = Stack::start_with(
        "reload",
        StackOptions {
            groups_dir: Some(tmp.clone()),
            ..Default::default()
        },
    );
    let mut c = stack.client(Transport::Udp);
    let new_group = "sip:newgroup@im.example.net";
    assert_eq!(
        join(
            &mut c,
            &Invite::anonymous(new_group, "sip:bob@example.com", Some("n"))
        )
        .code,
        404
    );
    // A bad document: refused, named with its line, old groups stay.
    std::fs::write(tmp.join("zz-bad.xml"), "<?xml version=\"1.0\"?>\n<group xmlns=\"urn:oma:xml:poc:list-service\">\n<list-service>\n</group>\n").unwrap();
    // kamcmd prints an RPC fault as "error: <code> - <text>" (and exits 0).
    let (_, out) = stack.kamcmd(&["chat_alias.reload"]);
    assert!(
        out.contains("error: 500") && out.contains("previous definitions stay in force"),
        "{out}"
    );
    assert!(out.contains("zz-bad.xml"), "{out}");
    assert!(stack.log().contains("zz-bad.xml"), "log names the file");
    let r = join(
        &mut c,
        &Invite::anonymous(BOOKCLUB, "sip:bob@example.com", Some("still")),
    );
    assert_eq!(r.code, 200, "old definitions in force");
    // Fix it: the new group appears in every worker without restart.
    std::fs::write(
        tmp.join("zz-bad.xml"),
        format!(
            "<?xml version=\"1.0\"?>\n<group xmlns=\"urn:oma:xml:poc:list-service\" xmlns:cp=\"urn:ietf:params:xml:ns:common-policy\">\
             <list-service uri=\"{new_group}\"><list><entry uri=\"sip:bob@example.com\"/></list>\
             <cp:ruleset><cp:rule id=\"a\"><cp:conditions><is-list-member/></cp:conditions><cp:actions>\
             <join-handling>true</join-handling><allow-anonymity>1</allow-anonymity></cp:actions></cp:rule></cp:ruleset>\
             </list-service></group>\n"
        ),
    )
    .unwrap();
    let (ok, out) = stack.kamcmd(&["chat_alias.reload"]);
    assert!(ok && out.contains("reloaded"), "{out}");
    for _ in 0..6 {
        // Several requests so that more than one worker answers. Each leaves again: one identity
        // holds at most max_places_per_identity places in a conference.
        let mut c = stack.client(Transport::Udp);
        let inv = Invite::anonymous(new_group, "sip:bob@example.com", Some("n"));
        let r = join(&mut c, &inv);
        assert_eq!(r.code, 200, "{}", r.raw_text());
        assert_eq!(leave(&mut c, &inv, &r).code, 200);
    }
}

#[test]
fn relay_down_gives_503_with_retry_after() {
    let mut stack = Stack::start("relay-down");
    stack.stop_relay();
    let mut c = stack.client(Transport::Udp);
    let r = join(
        &mut c,
        &Invite::anonymous(LOUNGE, "sip:bob@example.com", Some("bob")),
    );
    assert_eq!(r.code, 503, "{}", r.raw_text());
    assert!(r.header("Retry-After").is_some());
    let (_, list) = stack.kamcmd(&["chat_alias.list"]);
    assert!(!list.contains("bob"), "the alias was released: {list}");
}

#[test]
fn two_hundred_simultaneous_joins_get_distinct_identities() {
    let stack = Stack::start_with(
        "concurrent",
        StackOptions {
            children: 8,
            ..Default::default()
        },
    );
    let port = stack.sip_port;
    let handles: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = support::sip::Client::new(Transport::Udp, port);
                let r = join(
                    &mut c,
                    &Invite::anonymous(LOUNGE, &format!("sip:user{i}@example.com"), Some("crowd")),
                );
                assert_eq!(r.code, 200, "{}", r.raw_text());
                assigned(&r)
                    .map(|(n, u)| (n.unwrap(), u))
                    .unwrap_or(("crowd".into(), "sip:anonymous@anonymous.invalid".into()))
            })
        })
        .collect();
    let got: Vec<(String, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let names: std::collections::HashSet<_> = got.iter().map(|g| g.0.clone()).collect();
    let uris: std::collections::HashSet<_> = got.iter().map(|g| g.1.clone()).collect();
    assert_eq!(names.len(), 200);
    assert_eq!(uris.len(), 200);
}

#[test]
fn operator_surface_list_stats_counters() {
    let stack = Stack::start("operator");
    let mut c = stack.client(Transport::Udp);
    assert_eq!(
        join(
            &mut c,
            &Invite::anonymous(BOOKCLUB, "sip:bob@example.com", Some("bob"))
        )
        .code,
        200
    );
    assert_eq!(
        join(
            &mut c,
            &Invite::anonymous(BOOKCLUB, "sip:alice@example.com", Some("x"))
        )
        .code,
        403
    );
    let (ok, list) = stack.kamcmd(&["chat_alias.list"]);
    assert!(ok, "{list}");
    // The operator sees the real identity behind the alias.
    assert!(
        list.contains("sip:bob@example.com") && list.contains("sip:anonymous@anonymous.invalid"),
        "{list}"
    );
    let (ok, stats) = stack.kamcmd(&["chat_alias.stats"]);
    assert!(ok && stats.contains("participants"), "{stats}");
    let (ok, s) = stack.kamcmd(&["stats.get_statistics", "chat_alias:"]);
    assert!(ok, "{s}");
    assert!(s.contains("chat_alias:joins = 1"), "{s}");
    assert!(s.contains("chat_alias:refused_anonymity = 1"), "{s}");
    assert!(s.contains("chat_alias:active_participants = 1"), "{s}");
}

/// Operations stay clean: a normal join and leave write no WARNING or ERROR line, and exactly one
/// INFO line each, naming the group, the assigned identity, the Call-ID and the relay's session.
#[test]
fn normal_joins_and_leaves_log_one_info_line_each_and_no_warning_or_error() {
    let stack = Stack::start("clean-log");
    let before = stack.log().len();
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut c = stack.client(Transport::Udp);
        let inv = Invite::anonymous(LOUNGE, &format!("sip:u{i}@example.com"), Some("bob"));
        let ok = join(&mut c, &inv);
        assert_eq!(ok.code, 200);
        clients.push((c, inv, ok));
    }
    for (c, inv, ok) in clients.iter_mut() {
        assert_eq!(leave(c, inv, ok).code, 200);
    }
    let mut log = String::new();
    support::wait_for(
        || {
            log = stack.log()[before..].to_string();
            log.matches("left: ").count() == 3
        },
        Duration::from_secs(3),
        "the leave lines",
    );
    let loud: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARNING") || l.contains("CRITICAL"))
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
    let joined: Vec<&str> = log.lines().filter(|l| l.contains("joined: ")).collect();
    assert_eq!(joined.len(), 3, "{log}");
    // Workers write in any order: find the second participant's line by its Call-ID.
    let second = format!("Call-ID {:?}", clients[1].1.call_id);
    let line = joined
        .iter()
        .find(|l| l.contains(&second))
        .unwrap_or_else(|| panic!("{joined:?}"));
    assert!(
        line.contains("\"bob-2\" <sip:anonymous2@anonymous.invalid>")
            && line.contains("lounge@im.example.net")
            && line.contains("session "),
        "{line}"
    );
    assert!(
        !log.contains("u1@example.com"),
        "no real identity in the log: {log}"
    );
}
