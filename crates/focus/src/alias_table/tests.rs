use super::*;

const KEY: [u8; 16] = *b"0123456789abcdef";
const ROOM: &str = "sip:bookclub@im.example.net";

fn cfg(max_conferences: u32, max_participants: u32) -> StripeConfig {
    StripeConfig {
        max_conferences,
        max_participants,
    }
}

fn region(c: &StripeConfig) -> Vec<u8> {
    vec![0u8; stripe_bytes(c)]
}

/// A join request with sensible defaults; dialog keys and identities must be set per test.
fn req<'a>(
    conf: &'a str,
    name: Option<&'a str>,
    anonymous: bool,
    ident: &'a str,
    dialog: u128,
) -> JoinRequest<'a> {
    JoinRequest {
        conference_key: conf,
        max_participants: None,
        max_places_per_identity: None,
        anonymous,
        display_name: name,
        identity_uri: ident,
        dialog_key: dialog,
        session_id: "s3ss10n",
        flags: 0,
    }
}

/// Anonymous join of `name` with a fresh identity/dialog derived from `n`.
fn anon(t: &mut Stripe<'_>, name: Option<&str>, n: u128) -> Assigned {
    let ident = format!("sip:user{n}@example.net");
    t.join(&req(ROOM, name, true, &ident, n)).expect("join")
}

fn named(t: &mut Stripe<'_>, name: &str, n: u128) -> Assigned {
    let ident = format!("sip:user{n}@example.net");
    t.join(&req(ROOM, Some(name), false, &ident, n))
        .expect("join")
}

fn names(t: &Stripe<'_>) -> Vec<String> {
    t.participants(ROOM)
        .into_iter()
        .map(|p| p.display_name.unwrap_or_default())
        .collect()
}

#[test]
fn bob_bob2_bob3() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let a = anon(&mut t, Some("bob"), 1);
    assert_eq!(a.display_name.as_deref(), Some("bob"));
    assert!(!a.name_modified);
    assert_eq!(a.uri, "sip:anonymous@anonymous.invalid");
    assert_eq!(a.uri_number, 1);
    let b = anon(&mut t, Some("bob"), 2);
    assert_eq!(b.display_name.as_deref(), Some("bob-2"));
    assert!(b.name_modified);
    assert_eq!(b.uri, "sip:anonymous2@anonymous.invalid");
    assert_eq!(b.uri_number, 2);
    let c3 = anon(&mut t, Some("bob"), 3);
    assert_eq!(c3.display_name.as_deref(), Some("bob-3"));
    assert_eq!(c3.uri, "sip:anonymous3@anonymous.invalid");
    assert_eq!(c3.uri_number, 3);
    t.check().unwrap();
}

#[test]
fn case_clash_keeps_the_name_as_written() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    assert_eq!(
        anon(&mut t, Some("Bob"), 1).display_name.as_deref(),
        Some("Bob")
    );
    let b = anon(&mut t, Some("bob"), 2);
    assert_eq!(b.display_name.as_deref(), Some("bob-2"));
    assert!(b.name_modified);
    let c3 = anon(&mut t, Some("BOB"), 3);
    assert_eq!(c3.display_name.as_deref(), Some("BOB-3"));
    let d = anon(&mut t, Some("  bob "), 4);
    assert_eq!(d.display_name.as_deref(), Some("  bob-4"));
    t.check().unwrap();
}

#[test]
fn width_and_confusable_clashes() {
    // Depends on the real nickname comparison (RFC 8266 + confusable skeleton).
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    assert_eq!(
        anon(&mut t, Some("bob"), 1).display_name.as_deref(),
        Some("bob")
    );
    let w = anon(&mut t, Some("ｂｏｂ"), 2);
    assert!(w.name_modified, "fullwidth clashes: {w:?}");
    assert_eq!(w.display_name.as_deref(), Some("ｂｏｂ-2"));
    let cy = anon(&mut t, Some("b\u{043e}b"), 3);
    assert!(cy.name_modified, "Cyrillic o clashes: {cy:?}");
    assert_eq!(cy.display_name.as_deref(), Some("b\u{043e}b-3"));
    let zero = anon(&mut t, Some("B0b"), 4);
    assert_eq!(zero.display_name.as_deref(), Some("B0b-4"));
    let spaced = anon(&mut t, Some("  Bob  "), 5);
    assert_eq!(spaced.display_name.as_deref(), Some("  Bob-5"));
    // Distinct names stay as chosen.
    assert_eq!(
        anon(&mut t, Some("bobby"), 6).display_name.as_deref(),
        Some("bobby")
    );
    t.check().unwrap();
}

#[test]
fn a_chosen_suffix_name_is_skipped() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let x = anon(&mut t, Some("bob-2"), 1);
    assert_eq!(x.display_name.as_deref(), Some("bob-2"));
    assert!(!x.name_modified);
    assert_eq!(
        anon(&mut t, Some("bob"), 2).display_name.as_deref(),
        Some("bob")
    );
    assert_eq!(
        anon(&mut t, Some("bob"), 3).display_name.as_deref(),
        Some("bob-3")
    );
    // And a later `bob-2` chooser is itself suffixed.
    assert_eq!(
        anon(&mut t, Some("bob-2"), 4).display_name.as_deref(),
        Some("bob-2-2")
    );
    t.check().unwrap();
    let mut all = names(&t);
    all.sort();
    assert_eq!(all, ["bob", "bob-2", "bob-2-2", "bob-3"]);
}

#[test]
fn a_spent_suffix_is_not_handed_out_again_even_when_chosen_literally() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    named(&mut t, "bob", 1);
    let b2 = named(&mut t, "bob", 2);
    assert_eq!(b2.display_name.as_deref(), Some("bob-2"));
    named(&mut t, "bob", 3);
    t.leave(b2.handle).unwrap();
    // `bob-2` belonged to someone the others may still address: not handed out, even to a user who
    // types it (in any spelling that parses as the base plus the spent number).
    for (n, literal) in [(4, "BOB-2"), (5, " bob-2 ")] {
        let own = named(&mut t, literal, n);
        assert_ne!(own.display_name.as_deref(), Some(literal));
        assert!(own.name_modified, "{own:?}");
        assert!(!chat_alias_proto::nickname::same_nickname(
            own.display_name.as_deref().unwrap(),
            "bob-2"
        ));
    }
    // The next bob gets a number never used before.
    assert_eq!(
        named(&mut t, "bob", 6).display_name.as_deref(),
        Some("bob-4")
    );
    // A number the base never handed out is an ordinary name.
    assert_eq!(
        named(&mut t, "bob-9", 7).display_name.as_deref(),
        Some("bob-9")
    );
    // A rename to the spent name is refused like a taken one (RFC 7701: 425).
    // (Every test participant has session id "s3ss10n": the most recent joiner, carl, is renamed.)
    named(&mut t, "carl", 8);
    assert_eq!(
        t.rename(ROOM, "s3ss10n", Some("bob-2")),
        Err(RenameError::Taken)
    );
    assert_eq!(
        t.rename(ROOM, "s3ss10n", Some("bob-10"))
            .unwrap()
            .display_name
            .as_deref(),
        Some("bob-10")
    );
    t.check().unwrap();
}

#[test]
fn a_suffix_follows_the_name_without_its_trailing_spaces() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    named(&mut t, "alice", 1);
    let a = named(&mut t, "  alice  ", 2);
    assert_eq!(a.display_name.as_deref(), Some("  alice-2"));
    assert!(chat_alias_proto::nickname::same_nickname(
        a.display_name.as_deref().unwrap(),
        "alice-2"
    ));
    t.check().unwrap();
}

#[test]
fn a_withdrawn_join_gives_its_numbers_back_only_when_they_were_the_last() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    anon(&mut t, Some("bob"), 1);
    let b2 = anon(&mut t, Some("bob"), 2);
    assert_eq!(b2.uri_number, 2);
    t.withdraw(b2.handle).unwrap();
    t.check().unwrap();
    let again = anon(&mut t, Some("bob"), 3);
    assert_eq!(
        (again.display_name.as_deref(), again.uri_number),
        (Some("bob-2"), 2),
        "never announced, so not spent"
    );
    // Something was handed out after it: withdrawing leaves a gap, never a duplicate.
    let b3 = anon(&mut t, Some("bob"), 4);
    anon(&mut t, Some("bob"), 5);
    t.withdraw(b3.handle).unwrap();
    let next = anon(&mut t, Some("bob"), 6);
    assert_eq!(
        (next.display_name.as_deref(), next.uri_number),
        (Some("bob-5"), 5)
    );
    assert_eq!(t.withdraw(b3.handle), None, "stale handle");
    t.check().unwrap();
}

#[test]
fn anonymous_uris_number_and_reuse() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let a: Vec<Assigned> = (1..=3).map(|i| anon(&mut t, None, i)).collect();
    let uris: Vec<&str> = a.iter().map(|x| x.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "sip:anonymous@anonymous.invalid",
            "sip:anonymous2@anonymous.invalid",
            "sip:anonymous3@anonymous.invalid"
        ]
    );
    assert_eq!(
        a.iter().map(|x| x.uri_number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // No display name: base "Anonymous".
    let dn: Vec<_> = a.iter().map(|x| x.display_name.clone().unwrap()).collect();
    assert_eq!(dn, ["Anonymous", "Anonymous-2", "Anonymous-3"]);
    assert!(!a[0].name_modified && a[1].name_modified);

    // anonymous2 left: its URI and its name are spent while the conference has participants.
    t.leave(a[1].handle).unwrap();
    let again = anon(&mut t, None, 10);
    assert_eq!(again.uri, "sip:anonymous4@anonymous.invalid");
    assert_eq!(again.display_name.as_deref(), Some("Anonymous-4"));
    // The plain URI and the unmodified name are reused once free (the CR requires it).
    t.leave(a[0].handle).unwrap();
    let plain = anon(&mut t, None, 11);
    assert_eq!(plain.uri, "sip:anonymous@anonymous.invalid");
    assert_eq!(plain.uri_number, 1);
    assert_eq!(plain.display_name.as_deref(), Some("Anonymous"));
    assert_eq!(anon(&mut t, None, 12).uri_number, 5);
    t.check().unwrap();
}

#[test]
fn numbers_stay_spent_while_anyone_remains_even_without_anonymous_participants() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let keep = t
        .join(&req(ROOM, Some("Alice"), false, "sip:alice@example.com", 1))
        .unwrap();
    let a1 = anon(&mut t, Some("x"), 2);
    let a2 = anon(&mut t, Some("y"), 3);
    assert_eq!(a2.uri_number, 2);
    t.leave(a1.handle).unwrap();
    t.leave(a2.handle).unwrap();
    // No anonymous participant is left, Alice is: anonymous2 is still spent.
    let n = anon(&mut t, Some("z"), 4);
    assert_eq!(n.uri_number, 1);
    assert_eq!(anon(&mut t, Some("w"), 5).uri_number, 3);
    t.leave(keep.handle).unwrap();
    t.check().unwrap();
}

#[test]
fn bye_frees_the_unmodified_name_and_plain_uri_only() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let bob = anon(&mut t, Some("bob"), 1);
    let bob2 = anon(&mut t, Some("bob"), 2);
    let gone = t.leave(bob.handle).unwrap();
    assert_eq!(
        gone,
        Departed {
            conference_key: ROOM.into(),
            display_name: Some("bob".into()),
            uri: "sip:anonymous@anonymous.invalid".into(),
            session_id: "s3ss10n".into(),
        }
    );
    let b = anon(&mut t, Some("bob"), 3);
    assert_eq!(b.display_name.as_deref(), Some("bob"));
    assert_eq!(b.uri, "sip:anonymous@anonymous.invalid");
    assert!(!b.name_modified);
    t.leave(bob2.handle).unwrap();
    let b3 = anon(&mut t, Some("bob"), 4);
    assert_eq!(b3.display_name.as_deref(), Some("bob-3"));
    assert_eq!(b3.uri, "sip:anonymous3@anonymous.invalid");
    t.check().unwrap();
}

#[test]
fn counters_start_again_only_when_their_record_is_freed() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let alice = anon(&mut t, Some("alice"), 100);
    let all: Vec<Assigned> = (1..=4).map(|i| anon(&mut t, Some("bob"), i)).collect();
    // Every bob leaves: the base record of "bob" goes with the last one, and with it its counter.
    for a in &all {
        t.leave(a.handle).unwrap();
    }
    assert_eq!(t.usage().base_records.used, 1, "only alice's base is left");
    let b = anon(&mut t, Some("bob"), 5);
    assert_eq!(b.display_name.as_deref(), Some("bob"));
    assert_eq!(
        anon(&mut t, Some("bob"), 6).display_name.as_deref(),
        Some("bob-2")
    );
    // The URI numbers of the conference stay spent while alice is there.
    assert_eq!(b.uri_number, 6);
    // Everyone leaves: the conference record is freed and a new one counts from the start.
    t.leave(alice.handle).unwrap();
    for p in t.participants(ROOM) {
        t.leave(p.handle).unwrap();
    }
    assert!(t.usage().is_empty());
    let first = anon(&mut t, Some("bob"), 7);
    let second = anon(&mut t, Some("bob"), 8);
    assert_eq!((first.uri_number, second.uri_number), (1, 2));
    assert_eq!(second.display_name.as_deref(), Some("bob-2"));
    t.check().unwrap();
}

#[test]
fn places_per_identity_count_anonymous_and_named_places() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let me = "sip:mallory@example.com";
    let limited = |name: Option<&'static str>, anonymous: bool, d: u128| {
        let mut r = req(ROOM, name, anonymous, me, d);
        r.max_places_per_identity = Some(3);
        r
    };
    let named_place = t.join(&limited(Some("Mallory"), false, 1)).unwrap();
    let a1 = t.join(&limited(Some("m1"), true, 2)).unwrap();
    t.join(&limited(Some("m2"), true, 3)).unwrap();
    let before = t.usage();
    assert_eq!(
        t.join(&limited(Some("m3"), true, 4)),
        Err(JoinError::TooManyPlaces)
    );
    assert_eq!(t.usage(), before, "a refused join changes nothing");
    // The same limit in another conference is counted separately.
    let mut other = limited(Some("m3"), true, 5);
    other.conference_key = "sip:other@example.com";
    t.join(&other).unwrap();
    // Another identity is not affected.
    let mut r = req(ROOM, Some("eve"), true, "sip:eve@example.com", 6);
    r.max_places_per_identity = Some(3);
    t.join(&r).unwrap();
    // A place given back can be taken again.
    t.leave(a1.handle).unwrap();
    t.join(&limited(Some("m4"), true, 7)).unwrap();
    assert_eq!(
        t.join(&limited(None, true, 8)),
        Err(JoinError::TooManyPlaces)
    );
    t.leave(named_place.handle).unwrap();
    t.join(&limited(None, true, 9)).unwrap();
    t.check().unwrap();
}

#[test]
fn retransmitted_dialog_gets_the_same_assignment() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    anon(&mut t, Some("bob"), 1);
    let mut r = req(ROOM, Some("bob"), true, "sip:carol@example.net", 42);
    r.max_participants = Some(2);
    let first = t.join(&r).unwrap();
    assert_eq!(first.display_name.as_deref(), Some("bob-2"));
    let used = t.usage();
    // Same dialog again, even though the conference is now full.
    assert_eq!(
        t.join(&r),
        Err(JoinError::AlreadyJoinedDialog(first.clone()))
    );
    assert_eq!(t.usage(), used);
    assert_eq!(t.participants(ROOM).len(), 2);
    assert_eq!(t.find_by_dialog(ROOM, 42), Some(first.clone()));
    assert_eq!(t.find_by_dialog(ROOM, 43), None);
    assert_eq!(t.find_by_dialog("sip:other@x", 42), None);
    // The same dialog key in another conference is another dialog.
    let other = t
        .join(&req(
            "sip:other@x",
            Some("bob"),
            true,
            "sip:carol@example.net",
            42,
        ))
        .unwrap();
    assert_eq!(other.display_name.as_deref(), Some("bob"));
    t.leave(first.handle).unwrap();
    assert_eq!(t.find_by_dialog(ROOM, 42), None);
    t.check().unwrap();
}

#[test]
fn max_participants_gives_conference_full() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let mut handles = vec![];
    for i in 0..3u128 {
        let ident = format!("sip:u{i}@x");
        let mut r = req(ROOM, None, true, &ident, i);
        r.max_participants = Some(3);
        handles.push(t.join(&r).unwrap().handle);
    }
    let mut r = req(ROOM, None, true, "sip:late@x", 99);
    r.max_participants = Some(3);
    assert_eq!(t.join(&r), Err(JoinError::ConferenceFull));
    let mut zero = req("sip:closed@x", None, true, "sip:late@x", 99);
    zero.max_participants = Some(0);
    assert_eq!(t.join(&zero), Err(JoinError::ConferenceFull));
    assert_eq!(t.usage().conferences.used, 1);
    t.leave(handles[0]).unwrap();
    assert!(t.join(&r).is_ok());
    t.check().unwrap();
}

#[test]
fn identity_already_joined() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let a = t
        .join(&req(ROOM, Some("Alice"), false, "sip:alice@x", 1))
        .unwrap();
    assert_eq!(a.uri, "sip:alice@x");
    assert_eq!(a.uri_number, 0);
    assert_eq!(
        t.join(&req(ROOM, Some("Al"), false, "sip:alice@x", 2)),
        Err(JoinError::IdentityAlreadyJoined)
    );
    // Anonymously she gets an anonymous URI and a distinct name.
    let b = t
        .join(&req(ROOM, Some("alice"), true, "sip:alice@x", 3))
        .unwrap();
    assert_eq!(b.uri, ANONYMOUS_URI);
    assert_eq!(b.display_name.as_deref(), Some("alice-2"));
    // In another conference she is free to join.
    assert!(t
        .join(&req("sip:g2@x", Some("Alice"), false, "sip:alice@x", 4))
        .is_ok());
    // An identity that happens to be an anonymous URI pushes anonymous numbering past it.
    let odd = t
        .join(&req(
            ROOM,
            None,
            false,
            "sip:anonymous2@anonymous.invalid",
            5,
        ))
        .unwrap();
    assert_eq!(odd.display_name, None);
    assert_eq!(
        anon(&mut t, None, 6).uri,
        "sip:anonymous3@anonymous.invalid"
    );
    t.check().unwrap();
}

#[test]
fn nameless_participants_never_clash() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    for i in 0..3u128 {
        let ident = format!("sip:u{i}@x");
        let a = t.join(&req(ROOM, None, false, &ident, i)).unwrap();
        assert_eq!(a.display_name, None);
        assert!(!a.name_modified);
    }
    assert_eq!(t.usage().base_records.used, 0);
    // A non-anonymous name counts against aliases and the other way round.
    let r = t
        .join(&req(ROOM, Some("Bob"), false, "sip:bob@x", 10))
        .unwrap();
    assert_eq!(r.display_name.as_deref(), Some("Bob"));
    assert_eq!(
        anon(&mut t, Some("bob"), 11).display_name.as_deref(),
        Some("bob-2")
    );
    let r = t
        .join(&req(ROOM, Some("bob"), false, "sip:bob2@x", 12))
        .unwrap();
    assert_eq!(r.display_name.as_deref(), Some("bob-3"));
    assert_eq!(r.uri, "sip:bob2@x");
    t.check().unwrap();
}

#[test]
fn conferences_are_independent() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    for room in ["sip:a@x", "sip:b@x", "sip:c@x"] {
        let a = t.join(&req(room, Some("bob"), true, "sip:u@x", 1)).unwrap();
        assert_eq!(a.display_name.as_deref(), Some("bob"));
        assert_eq!(a.uri, ANONYMOUS_URI);
    }
    let mut confs = t.conferences();
    confs.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        confs,
        ["sip:a@x", "sip:b@x", "sip:c@x"].map(|k| ConferenceInfo {
            key: k.into(),
            participants: 1
        })
    );
    t.check().unwrap();
}

#[test]
fn table_full_and_recovery() {
    let c = cfg(2, 3);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let a = t
        .join(&req("sip:a@x", Some("x"), true, "sip:u@x", 1))
        .unwrap();
    let b = t
        .join(&req("sip:b@x", Some("x"), true, "sip:u@x", 1))
        .unwrap();
    // No conference record left.
    assert_eq!(
        t.join(&req("sip:c@x", Some("x"), true, "sip:u@x", 1)),
        Err(JoinError::TableFull)
    );
    let a2 = t
        .join(&req("sip:a@x", Some("x"), true, "sip:u@x", 2))
        .unwrap();
    // No participant slot left.
    assert_eq!(
        t.join(&req("sip:a@x", Some("x"), true, "sip:u@x", 3)),
        Err(JoinError::TableFull)
    );
    // A retransmission is still recognised when full.
    assert!(matches!(
        t.join(&req("sip:a@x", Some("x"), true, "sip:u@x", 2)),
        Err(JoinError::AlreadyJoinedDialog(_))
    ));
    t.check().unwrap();
    t.leave(b.handle).unwrap();
    assert_eq!(t.usage().conferences.used, 1);
    let c1 = t
        .join(&req("sip:c@x", Some("x"), true, "sip:u@x", 1))
        .unwrap();
    assert_eq!(c1.display_name.as_deref(), Some("x"));
    t.leave(a.handle).unwrap();
    let a3 = t
        .join(&req("sip:a@x", Some("x"), true, "sip:u@x", 3))
        .unwrap();
    assert_eq!(a3.display_name.as_deref(), Some("x"));
    assert_eq!(a3.uri, ANONYMOUS_URI);
    t.check().unwrap();
    for h in [a2.handle, c1.handle, a3.handle] {
        t.leave(h).unwrap();
    }
    assert!(t.usage().is_empty());
    t.check().unwrap();
}

#[test]
fn stale_handles() {
    let c = cfg(2, 2);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 5, KEY).unwrap();
    let a = anon(&mut t, Some("bob"), 1);
    assert_eq!(a.handle.stripe, 5);
    assert_eq!(a.handle.generation, 1);
    assert!(t.participant(a.handle).is_some());
    assert!(t.leave(a.handle).is_some());
    assert_eq!(t.leave(a.handle), None, "double leave");
    assert_eq!(t.participant(a.handle), None);
    let b = anon(&mut t, Some("bob"), 2);
    assert_eq!(b.handle.slot, a.handle.slot, "slot reused");
    assert_eq!(b.handle.generation, 2);
    assert_eq!(t.leave(a.handle), None, "stale generation");
    let foreign = ParticipantHandle {
        stripe: 4,
        ..b.handle
    };
    assert_eq!(t.leave(foreign), None, "other stripe");
    let wild = ParticipantHandle {
        slot: 1000,
        ..b.handle
    };
    assert_eq!(t.leave(wild), None);
    assert!(t.participant(b.handle).is_some());
    assert_eq!(ParticipantHandle::from_u64(b.handle.to_u64()), b.handle);
    assert_ne!(b.handle.to_u64(), 0);
    assert_eq!(t.leave(ParticipantHandle::from_u64(0)), None);
    assert!(t.leave(b.handle).is_some());
    assert!(t.usage().is_empty());
}

#[test]
fn handle_packing() {
    let h = ParticipantHandle {
        stripe: 4095,
        slot: (1 << 24) - 1,
        generation: (1 << 28) - 1,
    };
    assert_eq!(ParticipantHandle::from_u64(h.to_u64()), h);
    assert_eq!(h.to_u64(), u64::MAX);
    let h = ParticipantHandle {
        stripe: 3,
        slot: 7,
        generation: 9,
    };
    assert_eq!(ParticipantHandle::from_u64(h.to_u64()), h);
}

#[test]
fn too_long_values_are_refused() {
    let c = cfg(2, 2);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let long = "x".repeat(256);
    assert_eq!(
        t.join(&req(&long, None, true, "sip:u@x", 1)),
        Err(JoinError::TooLong)
    );
    assert_eq!(
        t.join(&req(ROOM, None, false, &long, 1)),
        Err(JoinError::TooLong)
    );
    let name = "é".repeat(129); // 258 bytes
    assert_eq!(
        t.join(&req(ROOM, Some(&name), true, "sip:u@x", 1)),
        Err(JoinError::TooLong)
    );
    let mut r = req(ROOM, None, true, "sip:u@x", 1);
    let sid = "s".repeat(65);
    r.session_id = &sid;
    assert_eq!(t.join(&r), Err(JoinError::TooLong));
    // The limits themselves are accepted and stored intact.
    let key = "k".repeat(255);
    let name = "\u{1F600}".repeat(64); // 64 chars, 256 bytes
    let sid = "s".repeat(64);
    let mut r = req(&key, Some(&name), false, &key, 1);
    r.session_id = &sid;
    r.flags = 0xA5;
    let a = t.join(&r).unwrap();
    let p = t.participant(a.handle).unwrap();
    assert_eq!(p.display_name.as_deref(), Some(name.as_str()));
    assert_eq!(p.identity_uri, key);
    assert_eq!(p.uri, key);
    assert_eq!(p.session_id, sid);
    assert_eq!(p.flags, 0xA5);
    assert!(!p.anonymous);
    assert_eq!(t.conferences()[0].key, key);
    assert!(t.usage().participants.used == 1);
}

#[test]
fn participants_listing_in_join_order() {
    let c = cfg(2, 8);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let a = anon(&mut t, Some("a"), 1);
    let b = named(&mut t, "b", 2);
    let c3 = anon(&mut t, Some("c"), 3);
    assert_eq!(names(&t), ["a", "b", "c"]);
    let list = t.participants(ROOM);
    assert!(list[0].anonymous && !list[1].anonymous);
    assert_eq!(list[0].identity_uri, "sip:user1@example.net");
    assert_eq!(list[1].uri, "sip:user2@example.net");
    assert_eq!(list[2].handle, c3.handle);
    t.leave(b.handle).unwrap();
    assert_eq!(names(&t), ["a", "c"]);
    t.leave(a.handle).unwrap();
    t.leave(c3.handle).unwrap();
    assert!(t.participants(ROOM).is_empty());
    assert!(t.conferences().is_empty());
}

#[test]
fn position_independent_attach() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let a = {
        let mut t = Stripe::init(&mut m, &c, 2, KEY).unwrap();
        anon(&mut t, Some("bob"), 1);
        anon(&mut t, Some("bob"), 2)
    };
    // Move the bytes elsewhere (another "process mapping") and go on there.
    let mut moved = m.clone();
    drop(m);
    let mut t = Stripe::attach(&mut moved).unwrap();
    assert_eq!(t.stripe_index(), 2);
    assert_eq!(t.config(), c);
    assert_eq!(t.find_by_dialog(ROOM, 2), Some(a.clone()));
    assert_eq!(
        anon(&mut t, Some("bob"), 3).display_name.as_deref(),
        Some("bob-3")
    );
    assert!(t.leave(a.handle).is_some());
    t.check().unwrap();
    // A larger region than needed is fine.
    let mut bigger = moved.clone();
    bigger.extend_from_slice(&[0xAB; 100]);
    assert!(Stripe::attach(&mut bigger).is_ok());
}

#[test]
fn attach_refuses_garbage() {
    let c = cfg(4, 16);
    let mut good = region(&c);
    Stripe::init(&mut good, &c, 0, KEY).unwrap();
    assert!(matches!(
        Stripe::attach(&mut []),
        Err(TableError::TooSmall { .. })
    ));
    assert_eq!(
        Stripe::attach(&mut vec![0u8; 4096]).unwrap_err(),
        TableError::BadMagic
    );
    let mut short = good[..good.len() - 1].to_vec();
    assert!(matches!(
        Stripe::attach(&mut short),
        Err(TableError::TooSmall { .. })
    ));
    let mut v = good.clone();
    v[8] = 9;
    assert_eq!(
        Stripe::attach(&mut v).unwrap_err(),
        TableError::BadVersion(9)
    );
    let mut v = good.clone();
    v[16..20].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(
        Stripe::attach(&mut v),
        Err(TableError::Corrupt(_))
    ));
    let mut v = good.clone();
    v[20..24].copy_from_slice(&17u32.to_le_bytes()); // a different layout than the bytes hold
    assert!(Stripe::attach(&mut v).is_err());
    let mut v = good.clone();
    v[64..68].copy_from_slice(&1000u32.to_le_bytes()); // free head out of range
    assert!(matches!(
        Stripe::attach(&mut v),
        Err(TableError::Corrupt(_))
    ));
}

#[test]
fn init_refuses_bad_configs() {
    let mut m = vec![0u8; 1 << 16];
    assert_eq!(
        Stripe::init(&mut m, &cfg(0, 1), 0, KEY).unwrap_err(),
        TableError::BadConfig
    );
    assert_eq!(
        Stripe::init(&mut m, &cfg(1, 0), 0, KEY).unwrap_err(),
        TableError::BadConfig
    );
    assert_eq!(
        Stripe::init(&mut m, &cfg(1, 1), 4096, KEY).unwrap_err(),
        TableError::BadConfig
    );
    assert!(matches!(
        Stripe::init(&mut m, &cfg(1, 1000), 0, KEY),
        Err(TableError::TooSmall { .. })
    ));
    assert_eq!(stripe_bytes(&cfg(0, 5)), 0);
    assert!(cfg(1, 1).validate().is_ok());
}

#[test]
fn stripe_of_is_stable_and_in_range() {
    assert_eq!(stripe_of(ROOM, 16), stripe_of(ROOM, 16));
    assert_eq!(stripe_of(ROOM, 0), 0);
    assert_eq!(stripe_of(ROOM, 1), 0);
    let mut hit = [0u32; 8];
    for i in 0..800 {
        let s = stripe_of(&format!("sip:group{i}@im.example.net"), 8);
        hit[s] += 1;
    }
    assert!(hit.iter().all(|&n| n > 50), "spread: {hit:?}");
}

#[test]
fn memory_per_record() {
    let one = stripe_bytes(&cfg(1, 1));
    let more_p = stripe_bytes(&cfg(1, 1025)) - stripe_bytes(&cfg(1, 1));
    let more_c = stripe_bytes(&cfg(1025, 1)) - stripe_bytes(&cfg(1, 1));
    println!(
        "empty-ish stripe {one} B; per participant {} B; per conference {} B",
        more_p / 1024,
        more_c / 1024
    );
    // 1088 slot + 48 base + 6 indexes × 2..4 buckets × 4 bytes.
    assert!((1184..=1232).contains(&(more_p / 1024)));
    assert!((320..=328).contains(&(more_c / 1024)));
}

fn same_name_many_times(n: u32) -> std::time::Duration {
    let c = cfg(1, n);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let start = std::time::Instant::now();
    let mut last = None;
    for i in 0..n {
        last = Some(anon(&mut t, Some("bob"), u128::from(i)));
    }
    let took = start.elapsed();
    let last = last.unwrap();
    assert_eq!(last.display_name, Some(format!("bob-{n}")));
    assert_eq!(last.uri, anonymous_uri(n));
    assert_eq!(t.usage().participants.used, n);
    took
}

#[test]
fn ten_thousand_bobs() {
    let c = cfg(1, 10_000);
    let took = same_name_many_times(10_000);
    println!("10 000 joins as bob: {took:?}");
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    for i in 0..10_000u128 {
        anon(&mut t, Some("bob"), i);
    }
    let mut seen = std::collections::HashSet::new();
    for p in t.participants(ROOM) {
        assert!(seen.insert(p.display_name.unwrap()));
        assert!(seen.insert(p.uri));
    }
    t.check().unwrap();
}

/// Not a pass/fail test: prints how the cost of one join grows (it should not).
#[test]
#[ignore]
fn bench_same_name_join_cost() {
    for n in [1_000u32, 10_000, 100_000] {
        let took = same_name_many_times(n);
        println!("{n:>7} joins as bob: {took:?} ({:?} per join)", took / n);
    }
}

// --------------------------------------------------------------------------------------------------
// Rename (RFC 7701 NICKNAME)

/// A join with its own session id `sess<n>` (identity and dialog derived from `n` as in `anon`).
fn join_s(t: &mut Stripe<'_>, name: Option<&str>, anonymous: bool, n: u128) -> Assigned {
    let ident = format!("sip:user{n}@example.net");
    let sid = format!("sess{n}");
    let mut r = req(ROOM, name, anonymous, &ident, n);
    r.session_id = &sid;
    r.flags = n as u32;
    t.join(&r).expect("join")
}

fn sid(n: u128) -> String {
    format!("sess{n}")
}

fn rename_room(
    t: &mut Stripe<'_>,
    n: u128,
    name: Option<&str>,
) -> Result<ParticipantInfo, RenameError> {
    t.rename(ROOM, &sid(n), name)
}

#[test]
fn rename_takes_a_free_name() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let alice = join_s(&mut t, Some("alice"), false, 1);
    join_s(&mut t, Some("bob"), true, 2);
    let before = t.participant(alice.handle).unwrap();
    let got = rename_room(&mut t, 1, Some("Carol the great")).unwrap();
    assert_eq!(got.display_name.as_deref(), Some("Carol the great"));
    assert!(!got.name_modified);
    // Everything but the name is unchanged.
    assert_eq!(
        got,
        ParticipantInfo {
            display_name: Some("Carol the great".into()),
            ..before
        }
    );
    assert_eq!(t.participant(alice.handle), Some(got));
    assert_eq!(names(&t), ["Carol the great", "bob"]);
    t.check().unwrap();
    // Later joins see the new name, and the old one is free.
    assert_eq!(
        join_s(&mut t, Some("carol the GREAT"), true, 3)
            .display_name
            .as_deref(),
        Some("carol the GREAT-2")
    );
    let a = join_s(&mut t, Some("Alice"), true, 4);
    assert_eq!(a.display_name.as_deref(), Some("Alice"));
    assert!(!a.name_modified);
    t.check().unwrap();
}

#[test]
fn rename_to_own_name_in_other_spelling() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    join_s(&mut t, Some("alice"), true, 1);
    join_s(&mut t, Some("bob"), true, 2);
    let bases = t.usage().base_records.used;
    let got = rename_room(&mut t, 1, Some("ALICE")).unwrap();
    assert_eq!(got.display_name.as_deref(), Some("ALICE"));
    assert!(!got.name_modified);
    assert_eq!(
        rename_room(&mut t, 1, Some("ａｌｉｃｅ"))
            .unwrap()
            .display_name
            .as_deref(),
        Some("ａｌｉｃｅ")
    );
    // The same name exactly, too.
    assert_eq!(
        rename_room(&mut t, 1, Some("ａｌｉｃｅ"))
            .unwrap()
            .display_name
            .as_deref(),
        Some("ａｌｉｃｅ")
    );
    assert_eq!(t.usage().base_records.used, bases);
    t.check().unwrap();
    // Still the one holder of the clash key: a joiner choosing it gets a suffix.
    assert_eq!(
        join_s(&mut t, Some("Alice"), true, 3)
            .display_name
            .as_deref(),
        Some("Alice-2")
    );
    t.check().unwrap();
}

#[test]
fn rename_to_another_participants_name_is_taken() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    join_s(&mut t, Some("alice"), true, 1);
    join_s(&mut t, Some("bob"), true, 2);
    join_s(&mut t, Some("bob"), true, 3); // bob-2
    let usage = t.usage();
    let listed = t.participants(ROOM);
    for taken in ["bob", "Bob", "ＢＯＢ", "  bob  ", "bob-2", "BOB-2"] {
        assert_eq!(
            rename_room(&mut t, 1, Some(taken)),
            Err(RenameError::Taken),
            "{taken:?}"
        );
    }
    // bob-2 may not take plain bob either.
    assert_eq!(rename_room(&mut t, 3, Some("bob")), Err(RenameError::Taken));
    assert_eq!(t.usage(), usage);
    assert_eq!(t.participants(ROOM), listed);
    t.check().unwrap();
}

#[test]
fn rename_to_a_confusable_of_another_name_is_taken() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    join_s(&mut t, Some("alice"), true, 1);
    join_s(&mut t, Some("bob"), true, 2);
    let listed = t.participants(ROOM);
    for look_alike in ["B0b", "b\u{043E}b", "ｂｏｂ"] {
        assert_eq!(
            rename_room(&mut t, 1, Some(look_alike)),
            Err(RenameError::Taken),
            "{look_alike:?}"
        );
    }
    assert_eq!(t.participants(ROOM), listed);
    // Its own look-alike is fine.
    assert_eq!(
        rename_room(&mut t, 2, Some("B0B"))
            .unwrap()
            .display_name
            .as_deref(),
        Some("B0B")
    );
    t.check().unwrap();
}

#[test]
fn rename_gives_back_the_old_name_but_not_its_suffix() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    join_s(&mut t, Some("bob"), true, 1);
    join_s(&mut t, Some("bob"), true, 2);
    join_s(&mut t, Some("bob"), true, 3);
    assert_eq!(names(&t), ["bob", "bob-2", "bob-3"]);
    // bob-2 renames: its suffix stays spent while bob's base lives, so the next bob is bob-4.
    let r = rename_room(&mut t, 2, Some("robert")).unwrap();
    assert_eq!(r.display_name.as_deref(), Some("robert"));
    assert!(!r.name_modified);
    t.check().unwrap();
    assert_eq!(
        join_s(&mut t, Some("bob"), true, 4).display_name.as_deref(),
        Some("bob-4")
    );
    // The unmodified holder renames: plain bob is free again, the suffixed ones stay.
    rename_room(&mut t, 1, Some("bobby")).unwrap();
    t.check().unwrap();
    assert_eq!(names(&t), ["bobby", "robert", "bob-3", "bob-4"]);
    let b = join_s(&mut t, Some("Bob"), true, 5);
    assert_eq!(b.display_name.as_deref(), Some("Bob"));
    assert!(!b.name_modified);
    t.check().unwrap();
    // A sole holder's base record is freed (and the new one allocated).
    let bases = t.usage().base_records.used;
    rename_room(&mut t, 2, Some("rob")).unwrap(); // robert → rob
    assert_eq!(t.usage().base_records.used, bases);
    rename_room(&mut t, 2, Some("Bobby")).unwrap_err(); // taken by participant 1
    rename_room(&mut t, 2, Some("bob")).unwrap_err(); // taken by participant 5
    rename_room(&mut t, 2, Some("bob-3")).unwrap_err(); // taken by participant 3
    rename_room(&mut t, 2, None).unwrap();
    assert_eq!(t.usage().base_records.used, bases - 1);
    t.check().unwrap();
}

#[test]
fn rename_of_a_suffixed_name_to_itself_drops_the_suffix() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    join_s(&mut t, Some("bob"), true, 1);
    let b2 = join_s(&mut t, Some("bob"), true, 2);
    assert!(b2.name_modified);
    let r = rename_room(&mut t, 2, Some("BOB-2")).unwrap();
    assert_eq!(r.display_name.as_deref(), Some("BOB-2"));
    assert!(!r.name_modified);
    t.check().unwrap();
    // Suffix 2 went back to bob's base, but BOB-2 holds that name: the next bob skips it.
    assert_eq!(
        join_s(&mut t, Some("bob"), true, 3).display_name.as_deref(),
        Some("bob-3")
    );
    t.check().unwrap();
    // Renaming BOB-2 away: bob's counter has passed 2, so while bob's base lives neither the next
    // bob nor a literal `Bob-2` gets that name back (a gap, never a duplicate).
    rename_room(&mut t, 2, Some("zed")).unwrap();
    assert_eq!(
        join_s(&mut t, Some("bob"), true, 4).display_name.as_deref(),
        Some("bob-4")
    );
    let own = join_s(&mut t, Some("Bob-2"), true, 5);
    assert_eq!(own.display_name.as_deref(), Some("Bob-2-2"));
    assert!(own.name_modified);
    t.check().unwrap();
}

#[test]
fn rename_to_none_removes_the_name() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let alice = join_s(&mut t, Some("alice"), false, 1);
    let anon1 = join_s(&mut t, None, true, 2); // Anonymous
    let bases = t.usage().base_records.used;
    let r = rename_room(&mut t, 1, None).unwrap();
    assert_eq!(r.display_name, None);
    assert!(!r.name_modified);
    assert_eq!(r.uri, alice.uri);
    assert_eq!(t.usage().base_records.used, bases - 1);
    let r = rename_room(&mut t, 2, None).unwrap();
    assert_eq!(r.display_name, None);
    assert_eq!(r.uri, anon1.uri);
    assert!(r.anonymous);
    assert_eq!(r.uri_number, 1);
    assert_eq!(t.usage().base_records.used, bases - 2);
    // Again: nothing to remove, still fine.
    assert_eq!(rename_room(&mut t, 2, None).unwrap().display_name, None);
    t.check().unwrap();
    // The names are free; the nameless ones can take new names.
    assert_eq!(
        join_s(&mut t, Some("alice"), true, 3)
            .display_name
            .as_deref(),
        Some("alice")
    );
    assert_eq!(
        join_s(&mut t, None, true, 4).display_name.as_deref(),
        Some("Anonymous")
    );
    assert_eq!(
        rename_room(&mut t, 1, Some("ALICE")),
        Err(RenameError::Taken)
    );
    assert_eq!(
        rename_room(&mut t, 1, Some("al"))
            .unwrap()
            .display_name
            .as_deref(),
        Some("al")
    );
    t.check().unwrap();
    // Leaving after renames gives everything back.
    for p in t.participants(ROOM) {
        t.leave(p.handle).unwrap();
    }
    assert!(t.usage().is_empty());
    t.check().unwrap();
}

#[test]
fn rename_unknown_session_or_conference() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    assert_eq!(
        t.rename(ROOM, &sid(1), Some("x")),
        Err(RenameError::UnknownSession)
    );
    let a = join_s(&mut t, Some("alice"), true, 1);
    assert_eq!(
        rename_room(&mut t, 9, Some("x")),
        Err(RenameError::UnknownSession)
    );
    assert_eq!(
        rename_room(&mut t, 9, None),
        Err(RenameError::UnknownSession)
    );
    assert_eq!(
        t.rename("sip:other@im.example.net", &sid(1), Some("x")),
        Err(RenameError::UnknownSession)
    );
    assert_eq!(
        t.rename(ROOM, &"s".repeat(65), Some("x")),
        Err(RenameError::UnknownSession)
    );
    assert_eq!(
        t.rename(ROOM, "sess", Some("x")),
        Err(RenameError::UnknownSession)
    );
    // A session that left is unknown.
    t.leave(a.handle).unwrap();
    assert_eq!(
        rename_room(&mut t, 1, Some("x")),
        Err(RenameError::UnknownSession)
    );
    assert!(t.usage().is_empty());
    t.check().unwrap();
}

#[test]
fn rename_too_long() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    join_s(&mut t, Some("alice"), true, 1);
    let listed = t.participants(ROOM);
    assert_eq!(
        rename_room(&mut t, 1, Some(&"x".repeat(257))),
        Err(RenameError::TooLong)
    );
    assert_eq!(t.participants(ROOM), listed);
    let long = "é".repeat(128); // 256 bytes
    assert_eq!(
        rename_room(&mut t, 1, Some(&long)).unwrap().display_name,
        Some(long)
    );
    t.check().unwrap();
}

#[test]
fn rename_finds_the_session_in_its_own_conference() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let other = "sip:other@im.example.net";
    join_s(&mut t, Some("alice"), true, 1);
    let mut r = req(other, Some("alice"), true, "sip:user1@example.net", 1);
    let s1 = sid(1);
    r.session_id = &s1;
    t.join(&r).unwrap();
    // Same session id in both conferences: each rename touches its own.
    t.rename(other, &s1, Some("carol")).unwrap();
    assert_eq!(names(&t), ["alice"]);
    assert_eq!(
        t.participants(other)[0].display_name.as_deref(),
        Some("carol")
    );
    // Names are per conference: carol is free here.
    rename_room(&mut t, 1, Some("carol")).unwrap();
    t.check().unwrap();
}

#[test]
fn rename_in_a_full_stripe() {
    // Every slot and every base record in use: a rename to a fresh name still finds a base record.
    let c = cfg(1, 3);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    join_s(&mut t, Some("a"), true, 1);
    join_s(&mut t, Some("b"), true, 2);
    join_s(&mut t, Some("c"), true, 3);
    assert_eq!(t.usage().base_records.used, 3);
    assert_eq!(
        rename_room(&mut t, 2, Some("d"))
            .unwrap()
            .display_name
            .as_deref(),
        Some("d")
    );
    assert_eq!(
        rename_room(&mut t, 2, Some("B"))
            .unwrap()
            .display_name
            .as_deref(),
        Some("B")
    );
    assert_eq!(rename_room(&mut t, 3, Some("A")), Err(RenameError::Taken));
    t.check().unwrap();
}

#[test]
fn rename_error_display() {
    assert_eq!(RenameError::Taken.to_string(), "nickname in use");
    assert!(!RenameError::UnknownSession.to_string().is_empty());
    assert!(!RenameError::TooLong.to_string().is_empty());
    let e: Box<dyn std::error::Error> = Box::new(RenameError::TooLong);
    assert!(e.to_string().contains("too long"));
}

/// What the relay needs to rebuild a participant is kept with it: the first peer path, the
/// accept-wrapped-types (compacted), and the chatroom / private-message bits in `flags`.
#[test]
fn media_is_kept_for_rebuilding_the_relay() {
    use super::{compact_list, participant_flags as pf, ParticipantMedia};
    let c = cfg(2, 4);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let types: Vec<String> = vec!["text/plain".into(), "message/cpim".into()];
    let mut r = req(ROOM, Some("bob"), true, "sip:bob@example.net", 1);
    r.flags = pf::encode(&["Private-Messages", "nickname", "other"], true);
    let a = t
        .join_with_media(
            &r,
            &ParticipantMedia {
                peer_path: "msrp://192.0.2.1:7654/abc;tcp",
                accept_wrapped_types: &types,
            },
        )
        .unwrap();
    let info = t.participant(a.handle).unwrap();
    assert_eq!(info.peer_path, "msrp://192.0.2.1:7654/abc;tcp");
    assert_eq!(info.accept_wrapped_types, types);
    assert_eq!(pf::chatroom(info.flags), ["nickname", "private-messages"]);
    assert!(pf::private_messages_allowed(info.flags));
    assert!(!pf::private_messages_allowed(pf::encode::<&str>(
        &[],
        false
    )));
    // Without media: empty fields.
    let b = t
        .join(&req(ROOM, Some("carol"), true, "sip:carol@example.net", 2))
        .unwrap();
    let info = t.participant(b.handle).unwrap();
    assert_eq!(
        (info.peer_path.as_str(), info.accept_wrapped_types.len()),
        ("", 0)
    );
    // A peer path over 256 bytes is refused, and nothing changes.
    let long = format!("msrp://{}/x;tcp", "h".repeat(250));
    assert!(long.len() > 256);
    assert_eq!(
        t.join_with_media(
            &req(ROOM, Some("dave"), true, "sip:dave@example.net", 3),
            &ParticipantMedia {
                peer_path: &long,
                accept_wrapped_types: &[]
            },
        ),
        Err(JoinError::TooLong)
    );
    assert_eq!(t.participants(ROOM).len(), 2);
    // A 256-byte one fits exactly; a long type list keeps what fits in 128 bytes.
    let exact = format!("msrp://{}/x;tcp", "h".repeat(256 - 13));
    assert_eq!(exact.len(), 256);
    let many: Vec<String> = (0..40).map(|i| format!("type/sub{i:02}")).collect();
    let d = t
        .join_with_media(
            &req(ROOM, Some("dave"), true, "sip:dave@example.net", 3),
            &ParticipantMedia {
                peer_path: &exact,
                accept_wrapped_types: &many,
            },
        )
        .unwrap();
    let info = t.participant(d.handle).unwrap();
    assert_eq!(info.peer_path, exact);
    assert_eq!(info.accept_wrapped_types, &many[..11]);
    t.check().unwrap();
    // The helper: items that do not fit are skipped, later shorter ones kept; whitespace dropped.
    assert_eq!(
        compact_list(&["aaaa", "bbbbbb", "cc", "d e", ""], 8),
        "aaaa cc"
    );
    assert_eq!(compact_list::<&str>(&[], 8), "");
}

#[test]
fn has_session_answers_for_the_conference_and_forgets_on_leave() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let alice = join_s(&mut t, Some("alice"), false, 1);
    join_s(&mut t, Some("bob"), true, 2);
    assert!(t.has_session(ROOM, &sid(1)));
    assert!(t.has_session(ROOM, &sid(2)));
    assert!(!t.has_session(ROOM, &sid(3)));
    // The session index is per conference: the same id in another conference is not this one.
    assert!(!t.has_session("sip:other@im.example.net", &sid(1)));
    t.leave(alice.handle).unwrap();
    assert!(!t.has_session(ROOM, &sid(1)));
    assert!(t.has_session(ROOM, &sid(2)));
}

#[test]
fn find_by_session_finds_the_live_participant_only() {
    let c = cfg(4, 16);
    let mut m = region(&c);
    let mut t = Stripe::init(&mut m, &c, 0, KEY).unwrap();
    let mut r1 = req(ROOM, Some("ann"), true, "sip:ann@example.net", 1);
    r1.session_id = "sessionone000000";
    let mut r2 = req(ROOM, Some("ben"), true, "sip:ben@example.net", 2);
    r2.session_id = "sessiontwo000000";
    let a = t.join(&r1).unwrap();
    let b = t.join(&r2).unwrap();
    assert_eq!(t.find_by_session(ROOM, "sessionone000000"), Some(a.handle));
    assert_eq!(t.find_by_session(ROOM, "sessiontwo000000"), Some(b.handle));
    assert_eq!(t.find_by_session(ROOM, "sessionnone00000"), None);
    assert_eq!(
        t.find_by_session("sip:other@im.example.net", "sessionone000000"),
        None
    );
    t.leave(a.handle).unwrap();
    assert_eq!(t.find_by_session(ROOM, "sessionone000000"), None);
    assert_eq!(t.find_by_session(ROOM, "sessiontwo000000"), Some(b.handle));
}
