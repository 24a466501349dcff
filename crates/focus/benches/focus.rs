//! `make bench`: the focus's per-join costs, without Kamailio.
//!
//! - `alias_table/join`: one join into a [`Stripe`] over a plain `Vec<u8>` (the module uses the same
//!   code over shared memory, under the stripe's lock, which is not measured here). The interesting
//!   pair is `same_name/1` (the first `bob`) against `same_name/10000` (the 10,000th participant
//!   called `bob` in one conference, assigned `bob-10000`): the table is O(1) in the number of
//!   earlier holders of the name. What a clashing join adds is one clash key of `bob-N`, whose cost
//!   grows with the length of the name only (`same_name/1000` vs `same_name/9999`: same length).
//! - `alias_table/leave`: one leave, from a conference of 1 and of 10,000 participants.
//! - `groups`: the group lookup and the RFC 4745 policy evaluation of the sample `bookclub.xml`.
//!
//! Each join/leave sample times only the operation itself: the opposite operation that restores the
//! table to its starting state runs outside the timed region (`iter_custom`), so every iteration sees
//! the same table. The clock read per operation (~20-30 ns on x86-64 Linux) is included.
use std::hint::black_box;
use std::time::{Duration, Instant};

use chat_alias_focus::alias_table::{stripe_bytes, JoinRequest, Stripe, StripeConfig};
use chat_alias_focus::groups::GroupSet;
use chat_alias_proto::sip::parse_uri;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const CONF: &str = "sip:lounge@im.example.net";
const KEY: [u8; 16] = *b"bench-stripe-key";
/// The largest conference the benches build (plus headroom for the measured participant).
const BIG: u32 = 10_000;

fn config() -> StripeConfig {
    StripeConfig {
        max_conferences: 16,
        max_participants: BIG + 16,
    }
}

/// An anonymous join as the SIP path makes it: alias as chosen, a distinct identity and dialog.
fn request<'a>(name: &'a str, identity: &'a str, dialog: u128) -> JoinRequest<'a> {
    JoinRequest {
        conference_key: CONF,
        max_participants: None,
        max_places_per_identity: None,
        anonymous: true,
        display_name: Some(name),
        identity_uri: identity,
        dialog_key: dialog,
        session_id: "kx8Qm2Zp0aLw7vR1xY3b",
        flags: 0,
    }
}

/// Fills the conference with an anchor participant `Alice` (so the conference record exists
/// throughout and the measured join never creates it) plus `n` participants: all called `same`
/// when given, else all with distinct names.
fn prefill(t: &mut Stripe<'_>, n: u32, same: Option<&str>) {
    t.join(&request("Alice", "sip:anchor@example.com", u128::MAX - 2))
        .expect("anchor join");
    for i in 0..n {
        let identity = format!("sip:user{i}@example.com");
        let distinct = format!("user{i}");
        let name = same.unwrap_or(&distinct);
        t.join(&request(name, &identity, u128::from(i) + 1))
            .expect("prefill join");
    }
}

/// Times `join` of one more participant (the (n+1)th), leaving it again untimed.
fn time_join(t: &mut Stripe<'_>, name: &str, iters: u64) -> Duration {
    let dialog = u128::MAX - 1;
    let req = request(name, "sip:measured@example.com", dialog);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let a = black_box(t.join(black_box(&req)));
        total += start.elapsed();
        let a = a.expect("measured join");
        t.leave(a.handle).expect("undo");
    }
    total
}

/// Times `leave` of one participant, joining it again untimed.
fn time_leave(t: &mut Stripe<'_>, name: &str, iters: u64) -> Duration {
    let dialog = u128::MAX - 1;
    let req = request(name, "sip:measured@example.com", dialog);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let a = t.join(&req).expect("setup join");
        let start = Instant::now();
        let d = black_box(t.leave(black_box(a.handle)));
        total += start.elapsed();
        assert!(d.is_some());
    }
    total
}

fn alias_table(c: &mut Criterion) {
    let cfg = config();
    let bytes = stripe_bytes(&cfg);
    eprintln!(
        "alias_table: one stripe for {} participants / {} conferences = {} bytes ({} bytes per participant slot)",
        cfg.max_participants,
        cfg.max_conferences,
        bytes,
        bytes / cfg.max_participants as usize
    );

    let mut g = c.benchmark_group("alias_table/join");
    // The first `bob` vs the 2nd, 1,000th, 9,999th and 10,000th `bob` in the same conference
    // (`bob-N`). A clashing join computes the clash key of `bob-N` once, whose cost grows with the
    // name's length (see the proto bench `nickname/clash_key`): 1,000 and 9,999 have suffixes of
    // the same length, ten times apart in N.
    for n in [1u32, 2, 1000, 9999, BIG] {
        let mut mem = vec![0u8; bytes];
        let mut t = Stripe::init(&mut mem, &cfg, 0, KEY).expect("init");
        prefill(&mut t, n - 1, Some("bob"));
        let first = t
            .join(&request("bob", "sip:probe@example.com", u128::MAX))
            .unwrap();
        let expect = if n == 1 {
            "bob".to_string()
        } else {
            format!("bob-{n}")
        };
        assert_eq!(first.display_name.as_deref(), Some(expect.as_str()));
        t.leave(first.handle).unwrap();
        g.bench_function(BenchmarkId::new("same_name", n), |b| {
            b.iter_custom(|iters| time_join(&mut t, "bob", iters))
        });
        t.check().expect("table consistent");
    }
    // A name nobody holds, into a conference holding 1 or 10,000 other (distinct) names.
    for present in [1u32, BIG] {
        let mut mem = vec![0u8; bytes];
        let mut t = Stripe::init(&mut mem, &cfg, 0, KEY).expect("init");
        prefill(&mut t, present - 1, None);
        g.bench_function(BenchmarkId::new("unique_name_present", present), |b| {
            b.iter_custom(|iters| time_join(&mut t, "Carol", iters))
        });
        t.check().expect("table consistent");
    }
    g.finish();

    let mut g = c.benchmark_group("alias_table/leave");
    // The leaving participant is the nth `bob` (plus the anchor): for n = 1 its base record is freed,
    // for n = 10,000 its suffix goes back to the base record shared with 9,999 other bobs.
    for n in [1u32, BIG] {
        let mut mem = vec![0u8; bytes];
        let mut t = Stripe::init(&mut mem, &cfg, 0, KEY).expect("init");
        prefill(&mut t, n - 1, Some("bob"));
        g.bench_function(BenchmarkId::new("same_name", n), |b| {
            b.iter_custom(|iters| time_leave(&mut t, "bob", iters))
        });
        t.check().expect("table consistent");
    }
    g.finish();
}

fn groups(c: &mut Criterion) {
    let doc = include_str!("../../../kamailio/groups/bookclub.xml");
    let set = GroupSet::from_documents(&[("bookclub.xml".to_string(), doc.to_string())])
        .expect("bookclub parses");
    let ruri = "sip:bookclub@im.example.net";
    let mut g = c.benchmark_group("groups");
    g.bench_function("find", |b| {
        b.iter(|| black_box(set.find(black_box(ruri))).is_some())
    });
    let group = set.find(ruri).expect("bookclub");
    // A listed member, a `<many domain>` match, and a stranger (`other-identity`).
    for who in [
        "sip:bob@example.com",
        "sip:carol@partner.example.org",
        "sip:mallory@elsewhere.example",
    ] {
        let uri = parse_uri(who).expect("uri");
        g.bench_function(BenchmarkId::new("permissions", who), |b| {
            b.iter(|| black_box(group.permissions(black_box(&uri), true)))
        });
    }
    // What a join does per INVITE: find the group, parse the asserted identity, evaluate.
    g.bench_function("find+parse_identity+permissions", |b| {
        b.iter(|| {
            let g = set.find(black_box(ruri)).expect("bookclub");
            let id = parse_uri(black_box("sip:carol@partner.example.org")).expect("uri");
            black_box(g.permissions(&id, true))
        })
    });
    g.finish();
}

fn config_criterion() -> Criterion {
    // Short runs: `make bench` must stay within a few minutes on 2 cores.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config_criterion();
    targets = alias_table, groups
}
criterion_main!(benches);
