//! End-to-end, more of the module's SIP contract through a real Kamailio (kamailio/kamailio.cfg) with
//! chat_alias and the real relay: table capacity, the trust model of P-Asserted-Identity, duplicate
//! identities, Accept, the anonymous base name, suffix skipping, privacy of the real identity towards
//! other participants, From and display-name validation, and in-dialog requests.
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use support::answer::{assigned, assigned_name};
use support::sip::{join, leave, Client, Invite, Response, Transport};
use support::{Stack, StackOptions};

const BOOKCLUB: &str = "sip:bookclub@im.example.net";
const LOUNGE: &str = "sip:lounge@im.example.net";

fn token(tag: &str) -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write(tag.as_bytes());
    format!("{tag}{:016x}", h.finish())
}

/// An in-dialog request of `inv`'s dialog (its Call-ID, From tag and the focus's To-tag).
fn in_dialog(c: &Client, inv: &Invite, method: &str, cseq: u32, to_tag: &str) -> String {
    format!(
        "{method} {g} SIP/2.0\r\nVia: SIP/2.0/{t} {ip}:{lp};branch=z9hG4bK{br};rport\r\nMax-Forwards: 70\r\n\
         From: {from};tag={tag}\r\nTo: <{g}>;tag={to_tag}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n",
        g = inv.group,
        t = c.via_transport(),
        ip = c.local_ip,
        lp = c.local_port,
        br = token("b"),
        from = inv.from,
        tag = inv.from_tag,
        cid = inv.call_id,
    )
}

/// `chat_alias.list` output.
fn list(stack: &Stack) -> String {
    let (ok, out) = stack.kamcmd(&["chat_alias.list"]);
    assert!(ok, "{out}");
    out
}

/// `chat_alias.list` as records: field name → value (kamcmd prints `{`, `\tname: value`, `}`).
fn participants(stack: &Stack) -> Vec<std::collections::HashMap<String, String>> {
    let mut out = Vec::new();
    let mut cur: Option<std::collections::HashMap<String, String>> = None;
    for line in list(stack).lines() {
        match line.trim() {
            "{" => cur = Some(Default::default()),
            "}" => out.extend(cur.take()),
            l => {
                if let (Some(c), Some((k, v))) = (cur.as_mut(), l.split_once(':')) {
                    c.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
    }
    out
}

/// The display names in `chat_alias.list`.
fn listed_names(stack: &Stack) -> Vec<String> {
    participants(stack)
        .into_iter()
        .map(|p| p.get("display_name").cloned().unwrap_or_default())
        .collect()
}

fn stat(stack: &Stack, name: &str) -> Option<i64> {
    let (ok, out) = stack.kamcmd(&["stats.get_statistics", "chat_alias:"]);
    assert!(ok, "{out}");
    out.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == format!("chat_alias:{name}")).then(|| v.trim().parse().ok())?
    })
}

/// Scenario 2: max_participants 16 over 16 stripes is one participant per stripe, so the second
/// participant of a conference finds its stripe full: 503 with Retry-After (the retry_after
/// modparam, 5), counted as refused_table_full; once the first leaves there is room again.
#[test]
fn full_alias_table_gives_503_with_retry_after_until_a_place_is_freed() {
    let stack = Stack::start_with(
        "table-full",
        StackOptions {
            max_participants: 16,
            ..Default::default()
        },
    );
    let mut a = stack.client(Transport::Udp);
    let inv_a = Invite::anonymous(LOUNGE, "sip:a@example.com", Some("first"));
    let ra = join(&mut a, &inv_a);
    assert_eq!(ra.code, 200, "{}", ra.raw_text());

    let mut b = stack.client(Transport::Udp);
    let inv_b = Invite::anonymous(LOUNGE, "sip:b@example.com", Some("second"));
    let rb = join(&mut b, &inv_b);
    assert_eq!(rb.code, 503, "{}", rb.raw_text());
    assert_eq!(rb.header("Retry-After"), Some("5"), "{}", rb.raw_text());
    assert!(rb.reason.contains("alias table full"), "{}", rb.reason);
    assert_eq!(stat(&stack, "refused_table_full"), Some(1));
    assert_eq!(
        listed_names(&stack),
        ["first"],
        "the refused join holds no place"
    );

    // The refusal is not sticky: the same dialog cannot come back (new Call-ID), but after the first
    // participant leaves a new join finds the place.
    assert_eq!(leave(&mut a, &inv_a, &ra).code, 200);
    let mut c = stack.client(Transport::Udp);
    let inv_c = Invite::anonymous(LOUNGE, "sip:c@example.com", Some("second"));
    let rc = join(&mut c, &inv_c);
    assert_eq!(rc.code, 200, "{}", rc.raw_text());
    assert_eq!(listed_names(&stack), ["second"]);
    // And it is full again.
    let mut d = stack.client(Transport::Udp);
    let rd = join(
        &mut d,
        &Invite::anonymous(LOUNGE, "sip:d@example.com", Some("third")),
    );
    assert_eq!(rd.code, 503);
}

/// Scenario 3: P-Asserted-Identity is believed only from 127.0.0.1; from 127.0.0.2 the sample config
/// removes it, so the module sees no authenticated identity (403), over UDP and TCP. The same
/// request from 127.0.0.1 is admitted.
#[test]
fn asserted_identity_from_an_untrusted_source_is_removed() {
    let stack = Stack::start("untrusted-pai");
    let untrusted = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    for (t, who) in [(Transport::Udp, "bob"), (Transport::Tcp, "carol")] {
        let me = format!("sip:{who}@example.com");
        let mut c = Client::new_from(untrusted, t, stack.sip_port);
        let inv = Invite::named(LOUNGE, &me, Some(who));
        let r = join(&mut c, &inv);
        assert_eq!(r.code, 403, "{t:?}: {}", r.raw_text());
        assert!(
            r.reason.contains("no authenticated identity"),
            "{t:?}: {}",
            r.reason
        );
        // The anonymous variant too.
        let mut c = Client::new_from(untrusted, t, stack.sip_port);
        let r = join(&mut c, &Invite::anonymous(LOUNGE, &me, Some(who)));
        assert_eq!(r.code, 403, "{t:?}: {}", r.raw_text());

        let mut c = Client::new_from(IpAddr::V4(Ipv4Addr::LOCALHOST), t, stack.sip_port);
        let r = join(&mut c, &Invite::named(LOUNGE, &me, Some(who)));
        assert_eq!(r.code, 200, "{t:?}: {}", r.raw_text());
    }
    assert_eq!(stat(&stack, "refused_no_identity"), Some(4));
    let l = list(&stack);
    assert!(
        l.contains("sip:bob@example.com") && l.contains("sip:carol@example.com"),
        "{l}"
    );
}

/// Scenario 4: a non-anonymous identity that is already a participant is refused with 486 when it
/// joins again in another dialog; once it has left, it may join again.
#[test]
fn the_same_identity_cannot_join_twice_until_it_leaves() {
    let stack = Stack::start("dup-identity");
    let mut a = stack.client(Transport::Udp);
    let inv1 = Invite::named(BOOKCLUB, "sip:alice@example.com", Some("Alice"));
    let r1 = join(&mut a, &inv1);
    assert_eq!(r1.code, 200, "{}", r1.raw_text());
    assert!(assigned(&r1).is_none(), "own identity, unique: SDP only");

    // Another dialog (new Call-ID and tag), another device, another display name: still Alice.
    let mut b = stack.client(Transport::Tcp);
    let inv2 = Invite::named(BOOKCLUB, "sip:alice@example.com", Some("Alice (tablet)"));
    assert_ne!(inv1.call_id, inv2.call_id);
    let r2 = join(&mut b, &inv2);
    assert_eq!(r2.code, 486, "{}", r2.raw_text());
    assert!(r2.reason.contains("already"), "{}", r2.reason);
    assert_eq!(stat(&stack, "refused_already_joined"), Some(1));
    let alices: Vec<_> = participants(&stack)
        .into_iter()
        .filter(|p| p.get("identity").map(String::as_str) == Some("sip:alice@example.com"))
        .collect();
    assert_eq!(alices.len(), 1, "{alices:?}");
    assert_eq!(alices[0].get("display_name").unwrap(), "Alice");

    // Someone else is not affected.
    let mut c = stack.client(Transport::Udp);
    let rc = join(
        &mut c,
        &Invite::named(BOOKCLUB, "sip:bob@example.com", Some("Bob")),
    );
    assert_eq!(rc.code, 200);

    assert_eq!(leave(&mut a, &inv1, &r1).code, 200);
    let inv3 = Invite::named(BOOKCLUB, "sip:alice@example.com", Some("Alice (tablet)"));
    let r3 = join(&mut b, &inv3);
    assert_eq!(r3.code, 200, "{}", r3.raw_text());
    assert!(assigned(&r3).is_none());
}

/// Scenario 5: when the assigned identity differs from From but Accept excludes multipart/mixed the
/// answer is 406 and the alias taken for the join is released again; Accept naming multipart/mixed
/// gets the multipart answer (with the same, released, alias). Accept without multipart/mixed is no
/// problem when the identity is as sent.
#[test]
fn accept_without_multipart_gives_406_and_releases_the_alias() {
    let stack = Stack::start("accept-406");
    let mut a = stack.client(Transport::Udp);
    let mut inv_a = Invite::anonymous(LOUNGE, "sip:a@example.com", Some("bob"));
    inv_a.extra_headers.push("Accept: application/sdp".into());
    let ra = join(&mut a, &inv_a);
    assert_eq!(
        ra.code,
        200,
        "unique name: no multipart needed: {}",
        ra.raw_text()
    );
    assert!(assigned(&ra).is_none());

    let mut b = stack.client(Transport::Udp);
    let mut inv_b = Invite::anonymous(LOUNGE, "sip:b@example.com", Some("bob"));
    inv_b.extra_headers.push("Accept: application/sdp".into());
    let rb = join(&mut b, &inv_b);
    assert_eq!(rb.code, 406, "{}", rb.raw_text());
    assert_eq!(stat(&stack, "refused_not_acceptable"), Some(1));
    let l = participants(&stack);
    assert_eq!(l.len(), 1, "406: the alias is released: {l:?}");
    assert_eq!(l[0].get("display_name").unwrap(), "bob", "{l:?}");
    assert_eq!(l[0].get("identity").unwrap(), "sip:a@example.com", "{l:?}");
    assert_eq!(stat(&stack, "active_participants"), Some(1));

    // Several Accept values, one listing multipart/mixed: the modified identity is delivered.
    let mut c = stack.client(Transport::Udp);
    let mut inv_c = Invite::anonymous(LOUNGE, "sip:c@example.com", Some("bob"));
    inv_c
        .extra_headers
        .push("Accept: application/sdp, multipart/mixed".into());
    let rc = join(&mut c, &inv_c);
    assert_eq!(
        assigned(&rc),
        Some((
            Some("bob-2".into()),
            "sip:anonymous2@anonymous.invalid".into()
        )),
        "bob-2 and anonymous2 were released by the 406"
    );

    // An anonymous join without display name always gets a modified identity ("Anonymous").
    let mut d = stack.client(Transport::Udp);
    let mut inv_d = Invite::anonymous(LOUNGE, "sip:d@example.com", None);
    inv_d.extra_headers.push("Accept: application/sdp".into());
    assert_eq!(join(&mut d, &inv_d).code, 406);
    // multipart/* admits multipart/mixed.
    let mut inv_e = Invite::anonymous(LOUNGE, "sip:e@example.com", Some("bob"));
    inv_e
        .extra_headers
        .push("Accept: application/sdp, multipart/*".into());
    let mut e = stack.client(Transport::Udp);
    assert_eq!(
        assigned_name(&join(&mut e, &inv_e)).as_deref(),
        Some("bob-3")
    );
}

/// Scenario 6: an anonymous join without a display name uses "Anonymous" as its base name; since the
/// From had no display name the identity is modified, hence a multipart answer. A non-anonymous
/// join without display name keeps having none (SDP only).
#[test]
fn anonymous_join_without_display_name_is_named_anonymous() {
    let stack = Stack::start("anon-noname");
    let mut a = stack.client(Transport::Udp);
    let ra = join(
        &mut a,
        &Invite::anonymous(LOUNGE, "sip:a@example.com", None),
    );
    assert_eq!(
        assigned(&ra),
        Some((
            Some("Anonymous".into()),
            "sip:anonymous@anonymous.invalid".into()
        ))
    );
    let mut b = stack.client(Transport::Tcp);
    let rb = join(
        &mut b,
        &Invite::anonymous(LOUNGE, "sip:b@example.com", None),
    );
    assert_eq!(
        assigned(&rb),
        Some((
            Some("Anonymous-2".into()),
            "sip:anonymous2@anonymous.invalid".into()
        ))
    );
    // A chosen name that clashes with the default one is numbered in the same way.
    let mut c = stack.client(Transport::Udp);
    let rc = join(
        &mut c,
        &Invite::anonymous(LOUNGE, "sip:c@example.com", Some("anonymous")),
    );
    assert_eq!(
        assigned(&rc),
        Some((
            Some("anonymous-3".into()),
            "sip:anonymous3@anonymous.invalid".into()
        ))
    );
    // Not anonymous, no display name: the identity is as sent.
    let mut d = stack.client(Transport::Udp);
    let rd = join(&mut d, &Invite::named(LOUNGE, "sip:dora@example.com", None));
    assert_eq!(rd.code, 200);
    assert!(assigned(&rd).is_none(), "{}", rd.raw_text());
}

/// Scenario 7: a suffixed name someone chose as their own is skipped, never duplicated.
#[test]
fn a_chosen_suffixed_name_is_skipped_not_duplicated() {
    let stack = Stack::start("suffix-skip");
    let mut got = Vec::new();
    for (i, name) in ["bob-2", "bob", "bob", "bob"].iter().enumerate() {
        let mut c = stack.client(Transport::Udp);
        let r = join(
            &mut c,
            &Invite::anonymous(LOUNGE, &format!("sip:u{i}@example.com"), Some(name)),
        );
        assert_eq!(r.code, 200, "{}", r.raw_text());
        let (n, uri) = assigned(&r).unwrap_or((
            Some(name.to_string()),
            "sip:anonymous@anonymous.invalid".into(),
        ));
        got.push((n.unwrap(), uri));
    }
    let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(names, ["bob-2", "bob", "bob-3", "bob-4"]);
    let uris: std::collections::HashSet<_> = got.iter().map(|g| g.1.clone()).collect();
    assert_eq!(uris.len(), 4, "distinct URIs: {got:?}");
    let mut listed = listed_names(&stack);
    listed.sort();
    assert_eq!(listed, ["bob", "bob-2", "bob-3", "bob-4"]);

    // Someone choosing an assigned suffixed name clashes with it in turn.
    let mut c = stack.client(Transport::Udp);
    let r = join(
        &mut c,
        &Invite::anonymous(LOUNGE, "sip:u9@example.com", Some("bob-3")),
    );
    let n = assigned_name(&r).expect("bob-3 is taken: modified");
    assert_ne!(n, "bob-3");
    assert!(
        !names.contains(&n.as_str()),
        "{n} duplicates a name in {names:?}"
    );
    assert_eq!(n, "bob-3-2");
}

/// Every response message `c` receives until the final answer to `request` (provisional ones too).
fn transact_all(c: &mut Client, request: &str) -> Vec<Response> {
    let mut got = Vec::new();
    c.send(request.as_bytes());
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let mut resend = std::time::Instant::now() + Duration::from_millis(500);
    loop {
        assert!(std::time::Instant::now() < deadline, "no final response");
        if let Some(r) = c.recv(Duration::from_millis(100)) {
            let fin = r.code >= 200;
            got.push(r);
            if fin {
                return got;
            }
        } else if got.is_empty()
            && c.transport == Transport::Udp
            && std::time::Instant::now() > resend
        {
            c.send(request.as_bytes());
            resend = std::time::Instant::now() + Duration::from_millis(1000);
        }
    }
}

/// Scenario 8: an anonymous participant's real identity — its P-Asserted-Identity, its SIP address
/// (Via/Contact port), its Call-ID and tag and its MSRP path — is in no byte of any response the
/// other participants receive (their joins, clashes with its name, in-dialog requests, BYEs, over
/// UDP and TCP); the operator sees it in chat_alias.list.
#[test]
fn an_anonymous_participants_real_identity_reaches_no_other_participant() {
    let stack = Stack::start("no-leak");
    const SECRET_USER: &str = "zorro.secret";
    const SECRET_HOST: &str = "hidden.example.org";
    let secret_session = token("SecretMsrpSession");

    // Someone is there before the anonymous participant.
    let mut early = stack.client(Transport::Udp);
    let inv_early = Invite::named(LOUNGE, "sip:early@example.com", Some("Early"));
    let req = inv_early.render(&early);
    let mut seen: Vec<Response> = transact_all(&mut early, &req);
    let r_early = seen.last().unwrap().clone();
    assert_eq!(r_early.code, 200);
    early.send(inv_early.ack(&early, &r_early.to_tag().unwrap()).as_bytes());

    let mut z = stack.client(Transport::Tcp);
    let mut inv_z = Invite::anonymous(
        LOUNGE,
        &format!("sip:{SECRET_USER}@{SECRET_HOST}"),
        Some("Zorro"),
    );
    inv_z.body = Some((
        "application/sdp".into(),
        support::sip::msrp_offer(47123, &secret_session),
    ));
    let rz = join(&mut z, &inv_z);
    assert_eq!(rz.code, 200, "{}", rz.raw_text());
    let secrets = [
        SECRET_USER.to_string(),
        SECRET_HOST.to_string(),
        secret_session.clone(),
        format!("127.0.0.1:{}", z.local_port),
        format!(":{};", z.local_port),
        format!(":{}>", z.local_port),
        "127.0.0.1:47123".to_string(),
        inv_z.call_id.clone(),
        inv_z.from_tag.clone(),
        inv_z.branch.clone(),
    ];

    // Others join after it, some clashing with its alias, over both transports.
    let mut others = Vec::new();
    for (i, (t, name)) in [
        (Transport::Udp, Some("Zorro")),
        (Transport::Tcp, Some("zorro")),
        (Transport::Udp, None),
        (Transport::Tcp, Some("Other")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = stack.client(t);
        let inv = Invite::anonymous(LOUNGE, &format!("sip:other{i}@example.com"), name);
        let req = inv.render(&c);
        let rs = transact_all(&mut c, &req);
        let r = rs.last().unwrap().clone();
        assert_eq!(r.code, 200, "{}", r.raw_text());
        c.send(inv.ack(&c, &r.to_tag().unwrap()).as_bytes());
        seen.extend(rs);
        others.push((c, inv, r));
    }
    assert_eq!(assigned_name(&others[0].2).as_deref(), Some("Zorro-2"));
    assert_eq!(assigned_name(&others[1].2).as_deref(), Some("zorro-3"));

    // In-dialog traffic of the others: OPTIONS (200), INFO (405), BYE (200).
    for (c, inv, r) in others.iter_mut() {
        let tt = r.to_tag().unwrap();
        for (cseq, m) in [(2, "OPTIONS"), (3, "INFO"), (4, "BYE")] {
            let req = in_dialog(c, inv, m, cseq, &tt);
            seen.extend(transact_all(c, &req));
        }
    }
    let tt = r_early.to_tag().unwrap();
    let req = in_dialog(&early, &inv_early, "BYE", 2, &tt);
    seen.extend(transact_all(&mut early, &req));
    // Anything else that arrived (retransmissions) counts as well.
    for (c, _, _) in others.iter_mut() {
        while let Some(r) = c.recv(Duration::from_millis(50)) {
            seen.push(r);
        }
    }
    while let Some(r) = early.recv(Duration::from_millis(50)) {
        seen.push(r);
    }
    assert!(seen.len() >= 4 * 4 + 2, "responses seen: {}", seen.len());
    for r in &seen {
        let raw = r.raw_text().to_ascii_lowercase();
        for s in &secrets {
            assert!(
                !raw.contains(&s.to_ascii_lowercase()),
                "{s:?} leaked to another participant in:\n{}",
                r.raw_text()
            );
        }
    }

    // The operator sees who is behind the alias.
    let l = participants(&stack);
    let zorro = l
        .iter()
        .find(|p| p.get("display_name").map(String::as_str) == Some("Zorro"))
        .unwrap_or_else(|| panic!("{l:?}"));
    assert_eq!(
        zorro.get("identity").unwrap(),
        &format!("sip:{SECRET_USER}@{SECRET_HOST}")
    );
    assert_eq!(zorro.get("anonymous").unwrap(), "1");
    assert_eq!(zorro.get("uri").unwrap(), "sip:anonymous@anonymous.invalid");
    // The relay learns only the assigned identity.
    let relay = stack.relay_log();
    assert!(!relay.contains(SECRET_USER), "relay log: {relay}");
    assert_eq!(leave(&mut z, &inv_z, &rz).code, 200);
}

/// Scenario 9: From and display-name validation, and anonymity by From host whatever Privacy says.
#[test]
fn malformed_from_privacy_none_and_display_name_limits() {
    let stack = Stack::start("from-checks");
    let mut c = stack.client(Transport::Udp);

    // Unterminated quoted display name.
    let mut inv = Invite::anonymous(LOUNGE, "sip:m@example.com", None);
    inv.from = "\"bob <sip:anonymous@anonymous.invalid>".into();
    let r = c
        .transact(&inv.render(&c), Duration::from_secs(6))
        .expect("a malformed From is answered (400), not dropped");
    assert_eq!(r.code, 400, "{}", r.raw_text());
    assert!(r.reason.contains("From"), "{}", r.reason);

    // Privacy: none with an anonymous.invalid From is still anonymous: refused for Alice in the book
    // club (anonymity not allowed), admitted as anonymous for Bob.
    let mut inv = Invite::anonymous(BOOKCLUB, "sip:alice@example.com", Some("al"));
    inv.privacy = Some("none".into());
    let r = join(&mut c, &inv);
    assert_eq!(r.code, 403, "{}", r.raw_text());
    assert!(r.reason.contains("anonym"), "{}", r.reason);
    let mut inv = Invite::anonymous(BOOKCLUB, "sip:bob@example.com", Some("bobby"));
    inv.privacy = Some("none".into());
    let r = join(&mut c, &inv);
    assert_eq!(r.code, 200, "{}", r.raw_text());
    assert!(assigned(&r).is_none());
    assert!(!r.raw_text().contains("bob@example.com"));
    assert_eq!(stat(&stack, "anonymous_joins"), Some(1));
    assert_eq!(stat(&stack, "refused_anonymity"), Some(1));

    // Display names are counted in characters (Unicode scalar values), not bytes.
    let cases: Vec<(String, u16)> = vec![
        ("日".repeat(64), 200),
        ("日".repeat(65), 400),
        ("😀".repeat(64), 200),
        ("😀".repeat(65), 400),
        (format!("{}é", "a".repeat(63)), 200),
        (format!("{}é", "a".repeat(64)), 400),
        ("x".repeat(64), 200),
        ("y".repeat(65), 400),
        // An escaped quote is one character of the name.
        (format!("{}\"", "q".repeat(63)), 200),
        (format!("{}\"", "w".repeat(64)), 400),
    ];
    for (i, (name, code)) in cases.iter().enumerate() {
        let mut c = stack.client(Transport::Udp);
        let r = join(
            &mut c,
            &Invite::anonymous(LOUNGE, &format!("sip:n{i}@example.com"), Some(name)),
        );
        assert_eq!(
            r.code,
            *code,
            "{} chars, {} bytes: {}",
            name.chars().count(),
            name.len(),
            r.raw_text()
        );
        if *code == 200 {
            // Kept as sent (only the URI may change: sip:anonymous@ is taken by the first one).
            if let Some((n, _)) = assigned(&r) {
                assert_eq!(
                    n.as_deref(),
                    Some(name.as_str()),
                    "unique name kept as sent"
                );
            }
        } else {
            assert!(r.reason.contains("display name"), "{}", r.reason);
        }
    }
}

/// Scenario 10: an in-dialog request other than ACK/BYE/OPTIONS is answered 405 with Allow and does
/// not end the participation; a BYE for a dialog the server does not know is 481.
#[test]
fn in_dialog_info_is_405_and_unknown_bye_is_481() {
    let stack = Stack::start("in-dialog");
    for t in [Transport::Udp, Transport::Tcp] {
        let mut c = stack.client(t);
        let inv = Invite::anonymous(LOUNGE, "sip:bob@example.com", Some("stay"));
        let r = join(&mut c, &inv);
        assert_eq!(r.code, 200);
        let tt = r.to_tag().unwrap();
        for (cseq, m) in [(2, "INFO"), (3, "MESSAGE"), (4, "UPDATE")] {
            let rr = c
                .transact(&in_dialog(&c, &inv, m, cseq, &tt), Duration::from_secs(5))
                .expect("answer");
            assert_eq!(rr.code, 405, "{m}: {}", rr.raw_text());
            let allow = rr.header("Allow").expect("Allow header");
            for needed in ["INVITE", "ACK", "BYE"] {
                assert!(allow.contains(needed), "{allow}");
            }
            assert!(!allow.contains(m), "{allow}");
        }
        // Still a participant.
        assert_eq!(listed_names(&stack), ["stay"]);
        let rr = c
            .transact(
                &in_dialog(&c, &inv, "OPTIONS", 5, &tt),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(rr.code, 200);

        // A BYE (and an INFO) for a dialog nobody established.
        let mut stranger = Invite::anonymous(LOUNGE, "sip:x@example.com", Some("x"));
        stranger.call_id = token("unknown-call");
        let rr = c
            .transact(&stranger.bye(&c, "sometag"), Duration::from_secs(5))
            .unwrap();
        assert_eq!(rr.code, 481, "{}", rr.raw_text());
        let rr = c
            .transact(
                &in_dialog(&c, &stranger, "INFO", 2, "sometag"),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(rr.code, 481, "{}", rr.raw_text());
        assert_eq!(
            listed_names(&stack),
            ["stay"],
            "the participant is still there"
        );

        // The real BYE ends it.
        assert_eq!(
            c.transact(&in_dialog(&c, &inv, "BYE", 7, &tt), Duration::from_secs(5))
                .unwrap()
                .code,
            200
        );
        assert!(listed_names(&stack).is_empty());
    }
}

/// RFC 3261 §12.2.2: a request whose To-tag does not match the dialog is not in the dialog (481). A
/// BYE carrying the participant's Call-ID and From-tag but a To-tag the focus never issued must not
/// end the participation.
#[test]
fn a_bye_with_a_wrong_to_tag_does_not_end_the_participation() {
    let stack = Stack::start("wrong-totag");
    let mut c = stack.client(Transport::Udp);
    let inv = Invite::anonymous(LOUNGE, "sip:bob@example.com", Some("stay"));
    let r = join(&mut c, &inv);
    assert_eq!(r.code, 200);
    let tt = r.to_tag().unwrap();
    let rr = c
        .transact(
            &in_dialog(&c, &inv, "BYE", 2, "nosuchtag"),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(rr.code, 481, "{}", rr.raw_text());
    assert_eq!(
        listed_names(&stack),
        ["stay"],
        "the participant is still there"
    );
    // The real BYE ends it.
    let rr = c
        .transact(&in_dialog(&c, &inv, "BYE", 3, &tt), Duration::from_secs(5))
        .unwrap();
    assert_eq!(rr.code, 200);
    assert!(listed_names(&stack).is_empty());
}

/// The ACK of a join's 200 OK reaches tm, which stops retransmitting the 200 (RFC 3261 §13.3.1.4):
/// after the ACK no further 200 arrives, while without an ACK tm keeps retransmitting it.
#[test]
fn the_ack_stops_the_200_retransmissions() {
    let stack = Stack::start("ack-stops-2xx");
    let mut c = stack.client(Transport::Udp);
    let inv = Invite::anonymous(LOUNGE, "sip:acker@example.com", Some("acker"));
    let r = join(&mut c, &inv); // sends the ACK
    assert_eq!(r.code, 200);
    let mut late = 0;
    while let Some(x) = c.recv(Duration::from_millis(2500)) {
        if x.code == 200 {
            late += 1;
        }
    }
    assert_eq!(late, 0, "200 OK retransmitted after the ACK");

    // Control: without the ACK, the 200 is retransmitted (T1 = 500 ms).
    let mut d = stack.client(Transport::Udp);
    let inv2 = Invite::anonymous(LOUNGE, "sip:noack@example.com", Some("noack"));
    d.send(inv2.render(&d).as_bytes());
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_millis(2500);
    while std::time::Instant::now() < deadline {
        if let Some(x) = d.recv(Duration::from_millis(300)) {
            if x.code == 200 {
                seen += 1;
            }
        }
    }
    assert!(
        seen >= 2,
        "without an ACK the 200 is retransmitted ({seen})"
    );
}

/// A BYE retransmitted over UDP after the first one was answered (and the participant removed)
/// gets the same 200 again from tm, not 481 (RFC 3261 §17.2.2).
#[test]
fn a_retransmitted_bye_gets_200_again() {
    let stack = Stack::start("bye-retrans");
    let mut c = stack.client(Transport::Udp);
    let inv = Invite::anonymous(LOUNGE, "sip:byer@example.com", Some("byer"));
    let ok = join(&mut c, &inv);
    assert_eq!(ok.code, 200);
    let bye = inv.bye(&c, &ok.to_tag().unwrap());
    let first = c
        .transact(&bye, Duration::from_secs(5))
        .expect("answer to BYE");
    assert_eq!(first.code, 200);
    let again = c
        .transact(&bye, Duration::from_secs(5))
        .expect("answer to the retransmitted BYE");
    assert_eq!(again.code, 200, "{}", again.raw_text());
    assert_eq!(again.to_tag(), first.to_tag());
    // A new BYE (new branch) for the ended dialog is 481.
    let other = inv.bye(&c, &ok.to_tag().unwrap());
    let r = c.transact(&other, Duration::from_secs(5)).expect("answer");
    assert_eq!(r.code, 481);
}
