//! Random join/leave/rename sequences against a simple Vec-based reference model, and robustness of
//! `attach` and of every operation on damaged bytes.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const KEY: [u8; 16] = [7; 16];
const CONFS: [&str; 3] = ["sip:a@x", "sip:b@x", "sip:c@x"];
const NAMES: [&str; 15] = [
    "bob",
    "Alice",
    "\u{0430}lice", // Cyrillic a: a look-alike of alice
    "ALICE-2",
    "zed",
    "Bob",
    "bob-2",
    "BOB-3",
    " bob",
    "alice",
    "Anonymous",
    "anonymous-2",
    "bob-2-2",
    "B0b",
    "ｂｏｂ-2",
];
const IDENTS: [&str; 5] = [
    "sip:u0@x",
    "sip:u1@x",
    "sip:u2@x",
    "sip:u3@x",
    "sip:anonymous2@anonymous.invalid",
];

#[derive(Clone, Debug)]
enum Op {
    Join {
        conf: usize,
        name: Option<usize>,
        anonymous: bool,
        ident: usize,
        dialog: u8,
        max: Option<u32>,
        places: Option<u32>,
    },
    Leave(usize),
    /// Take back a join whose 200 OK was never sent ([`Stripe::withdraw`]).
    Withdraw(usize),
    LeaveDeparted(usize),
    /// Rename live participant `pick` (by its session id), addressed in its own conference or, with
    /// `other_conf`, in the next one (where the same session id may or may not exist).
    Rename {
        pick: usize,
        other_conf: bool,
        name: Option<usize>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            0..CONFS.len(),
            proptest::option::weighted(0.85, 0..NAMES.len()),
            proptest::bool::weighted(0.7),
            0..IDENTS.len(),
            0u8..24,
            proptest::option::weighted(0.2, 0u32..6),
            proptest::option::weighted(0.3, 0u32..4),
        )
            .prop_map(|(conf, name, anonymous, ident, dialog, max, places)| Op::Join {
                conf,
                name,
                anonymous,
                ident,
                dialog,
                max,
                places,
            }),
        3 => any::<usize>().prop_map(Op::Leave),
        1 => any::<usize>().prop_map(Op::Withdraw),
        1 => any::<usize>().prop_map(Op::LeaveDeparted),
        4 => (
            any::<usize>(),
            proptest::bool::weighted(0.15),
            proptest::option::weighted(0.8, 0..NAMES.len()),
        )
            .prop_map(|(pick, other_conf, name)| Op::Rename { pick, other_conf, name }),
    ]
}

#[derive(Clone, Debug)]
struct Live {
    conf: usize,
    assigned: Assigned,
    dialog: u128,
    session: String,
    /// Clash key of the chosen (or renamed-to) name: one base record per (conference, this).
    base: Option<String>,
    identity: String,
}

fn session_of(dialog: u8) -> String {
    format!("sid{dialog}")
}

fn ck(name: &str) -> String {
    clash_key(name)
}

/// The model of a spent suffixed name: `name` reads `<base>-<N>` and the base's counter has passed N
/// (the highest suffix handed out for `<base>` in conference `conf` while its base lived is ≥ N).
fn spent_in_model(spent: &HashMap<(usize, String), u32>, conf: usize, name: &str) -> bool {
    let Some((prefix, digits)) = name.trim().rsplit_once('-') else {
        return false;
    };
    if prefix.is_empty() || digits.starts_with('0') || !digits.bytes().all(|d| d.is_ascii_digit()) {
        return false;
    }
    let Ok(n) = digits.parse::<u32>() else {
        return false;
    };
    n >= 2 && spent.get(&(conf, ck(prefix))).is_some_and(|&max| n <= max)
}

fn run_model(max_conferences: u32, max_participants: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let cfg = StripeConfig {
        max_conferences,
        max_participants,
    };
    let mut mem = vec![0u8; stripe_bytes(&cfg)];
    let mut t = Stripe::init(&mut mem, &cfg, 1, KEY).unwrap();
    let mut live: Vec<Live> = Vec::new();
    let mut departed: Vec<ParticipantHandle> = Vec::new();
    // The highest suffix handed out per (conference, base clash key) while that base lived, and the
    // highest anonymous URI number per conference while it had participants: every new one must be
    // higher (numbers only grow, so none comes back).
    let mut spent: HashMap<(usize, String), u32> = HashMap::new();
    let mut anon_spent: HashMap<usize, u32> = HashMap::new();

    for op in ops {
        match *op {
            Op::Join {
                conf,
                name,
                anonymous,
                ident,
                dialog,
                max,
                places,
            } => {
                let r = JoinRequest {
                    conference_key: CONFS[conf],
                    max_participants: max,
                    max_places_per_identity: places,
                    anonymous,
                    display_name: name.map(|i| NAMES[i]),
                    identity_uri: IDENTS[ident],
                    dialog_key: u128::from(dialog) << 64 | 0xD1A1,
                    session_id: &session_of(dialog),
                    flags: dialog as u32,
                };
                let here: Vec<&Live> = live.iter().filter(|l| l.conf == conf).collect();
                let confs_in_use = {
                    let mut c: Vec<usize> = live.iter().map(|l| l.conf).collect();
                    c.sort();
                    c.dedup();
                    c.len() as u32
                };
                let got = t.join(&r);
                if let Some(same) = here.iter().find(|l| l.dialog == r.dialog_key) {
                    prop_assert_eq!(
                        got,
                        Err(JoinError::AlreadyJoinedDialog(same.assigned.clone()))
                    );
                    continue;
                }
                if !anonymous && here.iter().any(|l| l.assigned.uri == r.identity_uri) {
                    prop_assert_eq!(got, Err(JoinError::IdentityAlreadyJoined));
                    continue;
                }
                let held = here.iter().filter(|l| l.identity == r.identity_uri).count() as u32;
                if places.is_some_and(|m| held >= m) {
                    prop_assert_eq!(got, Err(JoinError::TooManyPlaces));
                    continue;
                }
                if max.is_some_and(|m| here.len() as u32 >= m) {
                    prop_assert_eq!(got, Err(JoinError::ConferenceFull));
                    continue;
                }
                if live.len() as u32 == max_participants
                    || (here.is_empty() && confs_in_use == max_conferences)
                {
                    prop_assert_eq!(got, Err(JoinError::TableFull));
                    continue;
                }
                let a = got.map_err(|e| TestCaseError::fail(format!("join refused: {e:?}")))?;
                // Name.
                let chosen = r.display_name.or(anonymous.then_some(ANONYMOUS_NAME));
                let taken: Vec<String> = here
                    .iter()
                    .filter_map(|l| l.assigned.display_name.as_deref().map(ck))
                    .collect();
                match chosen {
                    None => {
                        prop_assert_eq!(&a.display_name, &None);
                        prop_assert!(!a.name_modified);
                    }
                    Some(chosen)
                        if !taken.contains(&ck(chosen))
                            && !spent_in_model(&spent, conf, chosen) =>
                    {
                        prop_assert_eq!(a.display_name.as_deref(), Some(chosen));
                        prop_assert!(!a.name_modified);
                    }
                    Some(chosen) => {
                        let dn = a.display_name.clone().unwrap_or_default();
                        let n: u32 = dn
                            .strip_prefix(chosen)
                            .and_then(|s| s.strip_prefix('-'))
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| {
                                TestCaseError::fail(format!("{dn:?} from {chosen:?}"))
                            })?;
                        prop_assert!(n >= 2);
                        prop_assert!(a.name_modified);
                        prop_assert!(!taken.contains(&ck(&dn)), "{} clashes", dn);
                        let max = spent.entry((conf, ck(chosen))).or_default();
                        prop_assert!(n > *max, "{} handed out again (counter at {})", dn, max);
                        *max = n;
                    }
                }
                // URI.
                let uris: Vec<&str> = here.iter().map(|l| l.assigned.uri.as_str()).collect();
                if anonymous {
                    prop_assert_eq!(&a.uri, &anonymous_uri(a.uri_number));
                    prop_assert!(a.uri_number >= 1);
                    prop_assert_eq!(a.uri_number == 1, !uris.contains(&ANONYMOUS_URI));
                    if a.uri_number >= 2 {
                        let max = anon_spent.entry(conf).or_default();
                        prop_assert!(a.uri_number > *max, "{} handed out again", a.uri);
                        *max = a.uri_number;
                    }
                } else {
                    prop_assert_eq!(a.uri.as_str(), r.identity_uri);
                    prop_assert_eq!(a.uri_number, 0);
                }
                prop_assert!(!uris.contains(&a.uri.as_str()));
                prop_assert_eq!(t.find_by_dialog(CONFS[conf], r.dialog_key), Some(a.clone()));
                live.push(Live {
                    conf,
                    assigned: a,
                    dialog: r.dialog_key,
                    session: session_of(dialog),
                    base: chosen.map(ck),
                    identity: r.identity_uri.to_string(),
                });
            }
            Op::Leave(pick) => {
                if live.is_empty() {
                    continue;
                }
                let l = live.remove(pick % live.len());
                let d = t.leave(l.assigned.handle);
                prop_assert_eq!(
                    d,
                    Some(Departed {
                        conference_key: CONFS[l.conf].to_owned(),
                        display_name: l.assigned.display_name.clone(),
                        uri: l.assigned.uri.clone(),
                        session_id: l.session.clone(),
                    })
                );
                departed.push(l.assigned.handle);
            }
            Op::Withdraw(pick) => {
                if live.is_empty() {
                    continue;
                }
                let l = live.remove(pick % live.len());
                prop_assert_eq!(
                    t.withdraw(l.assigned.handle).map(|d| d.uri),
                    Some(l.assigned.uri.clone())
                );
                departed.push(l.assigned.handle);
                // Never announced: its numbers go back when nothing was handed out after them.
                if l.assigned.uri_number >= 2
                    && anon_spent.get(&l.conf) == Some(&l.assigned.uri_number)
                {
                    anon_spent.insert(l.conf, l.assigned.uri_number - 1);
                }
                if let (true, Some(base), Some(dn)) = (
                    l.assigned.name_modified,
                    l.base.clone(),
                    l.assigned.display_name.as_deref(),
                ) {
                    let n: Option<u32> = dn.rsplit_once('-').and_then(|(_, d)| d.parse().ok());
                    if let Some(n) = n {
                        if spent.get(&(l.conf, base.clone())) == Some(&n) {
                            spent.insert((l.conf, base), n - 1);
                        }
                    }
                }
            }
            Op::LeaveDeparted(pick) => {
                if departed.is_empty() {
                    continue;
                }
                let before = t.usage();
                prop_assert_eq!(t.leave(departed[pick % departed.len()]), None);
                prop_assert_eq!(t.usage(), before);
            }
            Op::Rename {
                pick,
                other_conf,
                name,
            } => {
                let new = name.map(|i| NAMES[i]);
                let (conf, session) = match live.get(pick % live.len().max(1)) {
                    Some(l) if other_conf => ((l.conf + 1) % CONFS.len(), l.session.clone()),
                    Some(l) => (l.conf, l.session.clone()),
                    None => (pick % CONFS.len(), session_of(0)),
                };
                let before = (t.usage(), t.participants(CONFS[conf]));
                let got = t.rename(CONFS[conf], &session, new);
                let Some(i) = live
                    .iter()
                    .position(|l| l.conf == conf && l.session == session)
                else {
                    prop_assert_eq!(got, Err(RenameError::UnknownSession));
                    prop_assert_eq!((t.usage(), t.participants(CONFS[conf])), before);
                    continue;
                };
                // The participant's own current name never counts against it.
                let others: Vec<String> = live
                    .iter()
                    .enumerate()
                    .filter(|&(j, l)| j != i && l.conf == conf)
                    .filter_map(|(_, l)| l.assigned.display_name.as_deref().map(ck))
                    .collect();
                let own = live[i].assigned.display_name.as_deref().map(ck);
                if new.is_some_and(|n| {
                    others.contains(&ck(n))
                        || (own.as_deref() != Some(&ck(n)) && spent_in_model(&spent, conf, n))
                }) {
                    prop_assert_eq!(got, Err(RenameError::Taken));
                    prop_assert_eq!((t.usage(), t.participants(CONFS[conf])), before);
                    continue;
                }
                let info = got.map_err(|e| {
                    TestCaseError::fail(format!("rename to {new:?} refused: {e:?}"))
                })?;
                let l = &mut live[i];
                prop_assert_eq!(info.display_name.as_deref(), new);
                prop_assert!(!info.name_modified);
                prop_assert_eq!(info.handle, l.assigned.handle);
                prop_assert_eq!(&info.uri, &l.assigned.uri);
                prop_assert_eq!(info.uri_number, l.assigned.uri_number);
                prop_assert_eq!(info.dialog_key, l.dialog);
                prop_assert_eq!(&info.session_id, &l.session);
                prop_assert_eq!(t.participant(l.assigned.handle), Some(info.clone()));
                l.assigned.display_name = info.display_name;
                l.assigned.name_modified = false;
                l.base = new.map(ck);
                prop_assert_eq!(
                    t.find_by_dialog(CONFS[conf], l.dialog),
                    Some(l.assigned.clone())
                );
            }
        }
        // A base's spent suffixes are forgotten with its last holder, a conference's numbers with
        // its last participant (the table frees those records then).
        spent.retain(|(c, b), _| {
            live.iter()
                .any(|l| l.conf == *c && l.base.as_ref() == Some(b))
        });
        anon_spent.retain(|c, _| live.iter().any(|l| l.conf == *c));
        // After every step: the table agrees with itself and with the model.
        t.check().map_err(TestCaseError::fail)?;
        let u = t.usage();
        prop_assert_eq!(u.participants.used as usize, live.len());
        let mut bases: Vec<(usize, &str)> = live
            .iter()
            .filter_map(|l| l.base.as_deref().map(|b| (l.conf, b)))
            .collect();
        bases.sort();
        bases.dedup();
        prop_assert_eq!(u.base_records.used as usize, bases.len(), "base records");
        for l in &live {
            let p = t.participant(l.assigned.handle);
            prop_assert_eq!(
                p.as_ref().map(|p| &p.display_name),
                Some(&l.assigned.display_name)
            );
        }
        for (i, key) in CONFS.iter().enumerate() {
            let listed = t.participants(key);
            let model: Vec<&Live> = live.iter().filter(|l| l.conf == i).collect();
            prop_assert_eq!(listed.len(), model.len());
            let mut names: Vec<String> = listed
                .iter()
                .filter_map(|p| p.display_name.as_deref().map(ck))
                .collect();
            let n = names.len();
            names.sort();
            names.dedup();
            prop_assert_eq!(names.len(), n, "names clash in {}", key);
            let mut uris: Vec<&str> = listed.iter().map(|p| p.uri.as_str()).collect();
            uris.sort();
            uris.dedup();
            prop_assert_eq!(uris.len(), listed.len(), "URIs repeat in {}", key);
        }
        prop_assert_eq!(
            t.conferences().len(),
            CONFS
                .iter()
                .enumerate()
                .filter(|(i, _)| live.iter().any(|l| l.conf == *i))
                .count()
        );
    }
    // Everyone leaves: every pool and index returns to empty.
    for l in live.drain(..) {
        prop_assert!(t.leave(l.assigned.handle).is_some());
    }
    let u = t.usage();
    prop_assert!(u.is_empty(), "{:?}", u);
    t.check().map_err(TestCaseError::fail)?;
    let lay = Layout::new(max_conferences, max_participants).unwrap();
    for ix in layout::INDEXES {
        let (s, e) = lay.bucket_range(ix);
        prop_assert!(mem[s..e].iter().all(|&b| b == 0xFF), "{:?} buckets", ix);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn model(
        max_conferences in 1u32..4,
        max_participants in 1u32..14,
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        run_model(max_conferences, max_participants, &ops)?;
    }

    #[test]
    fn attach_arbitrary_bytes_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Stripe::attach(&mut bytes);
    }

    /// A valid header over garbage, or a real table with random bytes overwritten: attach may succeed
    /// or not, and whatever follows must not panic.
    #[test]
    fn damaged_tables_never_panic(
        fill_garbage in any::<bool>(),
        seed in proptest::collection::vec(any::<u8>(), 0..4096),
        pokes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..32),
        ops in proptest::collection::vec(op(), 0..30),
    ) {
        let cfg = StripeConfig { max_conferences: 2, max_participants: 5 };
        let mut mem = vec![0u8; stripe_bytes(&cfg)];
        {
            let mut t = Stripe::init(&mut mem, &cfg, 0, KEY).unwrap();
            for (i, name) in ["bob", "bob", "bob", "x"].iter().enumerate() {
                let _ = t.join(&JoinRequest {
                    conference_key: CONFS[i % 2],
                    max_participants: None,
                    max_places_per_identity: None,
                    anonymous: true,
                    display_name: Some(name),
                    identity_uri: IDENTS[i],
                    dialog_key: i as u128,
                    session_id: &session_of(i as u8),
                    flags: 0,
                });
            }
            let h = t.participants(CONFS[0])[0].handle;
            t.leave(h);
        }
        if fill_garbage && !seed.is_empty() {
            for (i, b) in mem.iter_mut().enumerate().skip(layout::hdr::SIZE) {
                *b = seed[i % seed.len()];
            }
        }
        let len = mem.len();
        for (at, v) in pokes {
            mem[at % len] = v;
        }
        if let Ok(mut t) = Stripe::attach(&mut mem) {
            let _ = t.check();
            let _ = t.usage();
            let _ = t.conferences();
            for op in ops {
                match op {
                    Op::Join { conf, name, anonymous, ident, dialog, max, places } => {
                        let _ = t.join(&JoinRequest {
                            conference_key: CONFS[conf],
                            max_participants: max,
                            max_places_per_identity: places,
                            anonymous,
                            display_name: name.map(|i| NAMES[i]),
                            identity_uri: IDENTS[ident],
                            dialog_key: u128::from(dialog),
                            session_id: &session_of(dialog),
                            flags: 0,
                        });
                    }
                    Op::Rename { pick, other_conf, name } => {
                        let _ = t.rename(
                            CONFS[(pick + usize::from(other_conf)) % CONFS.len()],
                            &session_of((pick % 24) as u8),
                            name.map(|i| NAMES[i]),
                        );
                    }
                    Op::Leave(x) | Op::LeaveDeparted(x) | Op::Withdraw(x) => {
                        let _ = t.leave(ParticipantHandle {
                            stripe: 0,
                            slot: (x % 7) as u32,
                            generation: (x / 7 % 4) as u32,
                        });
                    }
                }
                for key in CONFS {
                    let _ = t.participants(key);
                    let _ = t.find_by_dialog(key, 1);
                }
            }
            let _ = t.check();
        }
    }
}
