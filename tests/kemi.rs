//! End-to-end through KEMI: Kamailio runs kamailio/kamailio-kemi.cfg, whose routing is the
//! JavaScript kamailio/kemi/chat_alias.js (app_jsdt) calling KSR.chat_alias.is_group(),
//! KSR.chat_alias.join(identity), KSR.chat_alias.leave() and KSR.chat_alias.in_dialog(). The .cfg
//! has no native route blocks, so every answer below comes from the JS routing and the module's
//! KEMI exports.
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use support::answer::{assigned, check_focus_answer};
use support::sip::{join, leave, Client, Invite, Response, Transport};
use support::{Stack, StackOptions};

const BOOKCLUB: &str = "sip:bookclub@im.example.net";
const LOUNGE: &str = "sip:lounge@im.example.net";
const SMALLROOM: &str = "sip:smallroom@im.example.net";
const QUIET: &str = "sip:quiet@im.example.net";

fn kemi_stack(name: &str) -> Stack {
    let repo = support::repo();
    Stack::start_with(
        name,
        StackOptions {
            config: Some(repo.join("kamailio/kamailio-kemi.cfg")),
            defines: vec![(
                "KEMI_SCRIPT".into(),
                format!("\"{}\"", repo.join("kamailio/kemi/chat_alias.js").display()),
            )],
            ..Default::default()
        },
    )
}

fn display_names(stack: &Stack) -> Vec<String> {
    let (ok, out) = stack.kamcmd(&["chat_alias.list"]);
    assert!(ok, "{out}");
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("display_name:"))
        .map(|s| s.trim().to_string())
        .collect();
    v.sort();
    v
}

fn request(
    c: &Client,
    method: &str,
    ruri: &str,
    call_id: &str,
    to_tag: Option<&str>,
    cseq: u32,
) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/{t} {ip}:{lp};branch=z9hG4bK{cid}{cseq};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@example.com>;tag=f{cid}\r\nTo: <{ruri}>{tt}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n",
        t = c.via_transport(),
        ip = c.local_ip,
        lp = c.local_port,
        cid = call_id.replace(['@', '.'], ""),
        tt = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default(),
    )
}

/// An in-dialog request of `inv`'s dialog.
fn in_dialog(c: &Client, inv: &Invite, method: &str, cseq: u32, to_tag: &str) -> String {
    format!(
        "{method} {g} SIP/2.0\r\nVia: SIP/2.0/{t} {ip}:{lp};branch=z9hG4bK{cid}x{cseq};rport\r\nMax-Forwards: 70\r\n\
         From: {from};tag={tag}\r\nTo: <{g}>;tag={to_tag}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n",
        g = inv.group,
        t = c.via_transport(),
        ip = c.local_ip,
        lp = c.local_port,
        from = inv.from,
        tag = inv.from_tag,
        cid = inv.call_id,
    )
}

/// Scenario 1: the Chat Alias join procedure with KEMI routing, over UDP and TCP.
#[test]
fn kemi_join_clash_refusals_and_bye() {
    let stack = kemi_stack("kemi-join");
    // The routing really is the JavaScript's: app_jsdt exports the module's KEMI functions.
    let (ok, api) = stack.kamcmd(&["app_jsdt.api_list"]);
    assert!(ok, "{api}");
    assert!(
        api.contains("chat_alias") && api.contains("is_group") && api.contains("join"),
        "{api}"
    );

    // Bob and Carol may be anonymous in both groups; Alice not in the book club.
    for (t, group) in [(Transport::Udp, BOOKCLUB), (Transport::Tcp, QUIET)] {
        // Bob, anonymously, under "bob": unique, SDP-only 200.
        let mut b1 = stack.client(t);
        let inv1 = Invite::anonymous(group, "sip:bob@example.com", Some("bob"));
        let r1 = join(&mut b1, &inv1);
        check_focus_answer(&r1, group);
        assert_eq!(assigned(&r1), None, "{t:?}: unique alias: SDP only");
        assert!(!r1.raw_text().contains("bob@example.com"));

        // A second "bob" (Carol): multipart 200 naming bob-2 / anonymous2.
        let mut b2 = stack.client(t);
        let inv2 = Invite::anonymous(group, "sip:carol@partner.example.org", Some("bob"));
        let r2 = join(&mut b2, &inv2);
        check_focus_answer(&r2, group);
        assert_eq!(
            assigned(&r2),
            Some((
                Some("bob-2".into()),
                "sip:anonymous2@anonymous.invalid".into()
            )),
            "{t:?}"
        );
        assert!(!r2.raw_text().contains("carol@partner.example.org"));

        if group == BOOKCLUB {
            // Alice may not be anonymous in the book club.
            let mut a = stack.client(t);
            let r = join(
                &mut a,
                &Invite::anonymous(group, "sip:alice@example.com", Some("al")),
            );
            assert_eq!(r.code, 403, "{}", r.raw_text());
            assert!(r.reason.contains("anonym"), "{}", r.reason);
        }
        // Unknown group: 404 from the script (is_group() is false).
        let mut x = stack.client(t);
        let r = join(
            &mut x,
            &Invite::anonymous(
                "sip:nosuchgroup@im.example.net",
                "sip:bob@example.com",
                Some("b"),
            ),
        );
        assert_eq!(r.code, 404, "{}", r.raw_text());

        // BYE → 200 and frees the name: after both left, a new "bob" gets an SDP-only answer.
        assert_eq!(leave(&mut b1, &inv1, &r1).code, 200);
        assert_eq!(leave(&mut b2, &inv2, &r2).code, 200);
        assert!(
            display_names(&stack).is_empty(),
            "{:?}",
            display_names(&stack)
        );
        let mut b3 = stack.client(t);
        let inv3 = Invite::anonymous(group, "sip:carol@partner.example.org", Some("bob"));
        let r3 = join(&mut b3, &inv3);
        assert_eq!(assigned(&r3), None, "{t:?}: bob is free again");
        assert_eq!(leave(&mut b3, &inv3, &r3).code, 200);
    }
    let (_, s) = stack.kamcmd(&["stats.get_statistics", "chat_alias:"]);
    assert!(s.contains("chat_alias:joins = 6"), "{s}");
    assert!(s.contains("chat_alias:leaves = 6"), "{s}");
    assert!(s.contains("chat_alias:refused_anonymity = 1"), "{s}");
    // The 404s came from the script (KSR.chat_alias.is_group() false), not from join().
    assert!(s.contains("chat_alias:refused_unknown_group = 0"), "{s}");
}

/// The rest of the sample routing, in JavaScript: OPTIONS, other methods, in-dialog requests,
/// unknown dialogs, conference full, retransmissions, no identity, untrusted sources.
#[test]
fn kemi_routing_matches_the_native_sample() {
    let stack = kemi_stack("kemi-routing");
    let mut c = stack.client(Transport::Udp);

    // OPTIONS to the server and to a group: 200 with Allow.
    let r = c.options(Duration::from_secs(5)).unwrap();
    assert_eq!(r.code, 200);
    assert!(r.header("Allow").unwrap().contains("INVITE"));
    let r = c
        .transact(
            &request(&c, "OPTIONS", LOUNGE, "o1@t", None, 1),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.code, 200);
    // Another method to a group: 405 with Allow; to something else: 404.
    let r = c
        .transact(
            &request(&c, "MESSAGE", LOUNGE, "m1@t", None, 1),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.code, 405, "{}", r.raw_text());
    assert!(r.header("Allow").unwrap().contains("BYE"));
    let r = c
        .transact(
            &request(&c, "MESSAGE", "sip:someone@im.example.net", "m2@t", None, 1),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.code, 404);
    // Max-Forwards 0: 483.
    let req = request(&c, "OPTIONS", LOUNGE, "mf@t", None, 1)
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(c.transact(&req, Duration::from_secs(5)).unwrap().code, 483);

    // No asserted identity: 403.
    let mut inv = Invite::anonymous(LOUNGE, "sip:bob@example.com", Some("b"));
    inv.asserted = None;
    let r = join(&mut c, &inv);
    assert_eq!(r.code, 403, "{}", r.raw_text());
    assert!(
        r.reason.contains("no authenticated identity"),
        "{}",
        r.reason
    );

    // In-dialog: INFO 405 with Allow, OPTIONS 200, unknown dialog 481, then BYE 200.
    let inv = Invite::anonymous(LOUNGE, "sip:dan@example.com", Some("dan"));
    let r = join(&mut c, &inv);
    assert_eq!(r.code, 200);
    let tt = r.to_tag().unwrap();
    let rr = c
        .transact(&in_dialog(&c, &inv, "INFO", 2, &tt), Duration::from_secs(5))
        .unwrap();
    assert_eq!(rr.code, 405, "{}", rr.raw_text());
    assert!(rr.header("Allow").unwrap().contains("INVITE"));
    let rr = c
        .transact(
            &in_dialog(&c, &inv, "OPTIONS", 3, &tt),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(rr.code, 200);
    let rr = c
        .transact(
            &request(&c, "BYE", LOUNGE, "nosuchcall@t", Some("x1"), 2),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(rr.code, 481, "{}", rr.raw_text());
    assert_eq!(display_names(&stack), ["dan"]);
    let rr = c
        .transact(&in_dialog(&c, &inv, "BYE", 4, &tt), Duration::from_secs(5))
        .unwrap();
    assert_eq!(rr.code, 200);
    assert!(display_names(&stack).is_empty());

    // A CANCEL after the final answer: 481 (the transaction is gone or answered).
    let cancel = request(&c, "CANCEL", LOUNGE, "nosuchinvite@t", None, 1);
    assert_eq!(
        c.transact(&cancel, Duration::from_secs(5)).unwrap().code,
        481
    );

    // Conference full (small room holds 2): 486 with Warning.
    for who in ["alice", "bob"] {
        let mut c = stack.client(Transport::Udp);
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
    assert!(r.header("Warning").is_some());

    // A retransmitted INVITE (same bytes): the same 200, and no second place.
    let mut c0 = stack.client(Transport::Udp);
    assert_eq!(
        join(
            &mut c0,
            &Invite::anonymous(LOUNGE, "sip:first@example.com", Some("zed"))
        )
        .code,
        200
    );
    let mut c1 = stack.client(Transport::Udp);
    let inv = Invite::anonymous(LOUNGE, "sip:second@example.com", Some("zed"));
    let bytes = inv.render(&c1);
    let finals: Vec<Response> = (0..2)
        .map(|_| {
            c1.send(bytes.as_bytes());
            loop {
                let r = c1.recv(Duration::from_secs(5)).expect("answer");
                if r.code >= 200 {
                    break r;
                }
            }
        })
        .collect();
    assert_eq!(finals[0].to_tag(), finals[1].to_tag());
    assert_eq!(assigned(&finals[0]), assigned(&finals[1]));
    assert_eq!(assigned(&finals[0]).unwrap().0.as_deref(), Some("zed-2"));
    c1.send(inv.ack(&c1, &finals[0].to_tag().unwrap()).as_bytes());
    let mut c3 = stack.client(Transport::Udp);
    let r3 = join(
        &mut c3,
        &Invite::anonymous(LOUNGE, "sip:third@example.com", Some("zed")),
    );
    assert_eq!(assigned(&r3).unwrap().0.as_deref(), Some("zed-3"));
    assert!(
        !stack.log().contains("Server Internal Error"),
        "no 500 from the script"
    );
}

/// The trust model in the JS: P-Asserted-Identity from anywhere but 127.0.0.1 is not believed.
#[test]
fn kemi_untrusted_asserted_identity_is_not_believed() {
    let stack = kemi_stack("kemi-untrusted");
    let untrusted = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    for t in [Transport::Udp, Transport::Tcp] {
        let mut c = Client::new_from(untrusted, t, stack.sip_port);
        let r = join(
            &mut c,
            &Invite::named(LOUNGE, "sip:eve@example.com", Some("eve")),
        );
        assert_eq!(r.code, 403, "{t:?}: {}", r.raw_text());
        assert!(
            r.reason.contains("no authenticated identity"),
            "{}",
            r.reason
        );
        let mut c = Client::new_from(IpAddr::V4(Ipv4Addr::LOCALHOST), t, stack.sip_port);
        let inv = Invite::named(LOUNGE, "sip:eve@example.com", Some("eve"));
        let r = join(&mut c, &inv);
        assert_eq!(r.code, 200, "{t:?}: {}", r.raw_text());
        assert_eq!(leave(&mut c, &inv, &r).code, 200);
    }
}
