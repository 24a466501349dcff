//! The procedures against fakes of Kamailio: an in-memory alias table and documents slot, a
//! recording relay, dialogs that record their BYEs, and transactions that record their replies.
use super::*;
use crate::stats::Counter;
use chat_alias_focus::alias_table::{self, Stripe, StripeConfig};
use chat_alias_focus::join::InviteView;
use chat_alias_proto::control::{Grant, IdleReason, IdleSession, Request, Response};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

const LOUNGE: &str = "sip:lounge@im.example.net";
const SMALL: &str = "sip:smallroom@im.example.net";
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
    m=message 7654 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=accept-wrapped-types:text/plain\r\n\
    a=path:msrp://192.0.2.1:7654/jshA7weztas;tcp\r\na=setup:actpass\r\n";

/// What the fake relay saw and how it answers.
#[derive(Default)]
struct RelayState {
    requests: Vec<Request>,
    /// Joins are not acknowledged (the relay is down).
    down: bool,
    /// Reported by the next `idle`.
    idle: Vec<IdleSession>,
}

struct FakeRelay {
    state: Rc<RefCell<RelayState>>,
    next: u64,
}

impl Relay for FakeRelay {
    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
    fn call(&mut self, req: &Request) -> Result<Response, String> {
        let mut st = self.state.borrow_mut();
        st.requests.push(req.clone());
        match req {
            Request::Join(_) if st.down => Err("connect: refused".into()),
            Request::Join(_) => Ok(Response {
                id: req.id(),
                ok: true,
                grant: Some(Grant {
                    host: "127.0.0.1".into(),
                    port: 2855,
                    path: "msrp://127.0.0.1:2855/relay;tcp".into(),
                    max_size: 1 << 24,
                }),
                ..Response::default()
            }),
            Request::Idle { .. } => Ok(Response {
                id: req.id(),
                ok: true,
                idle: std::mem::take(&mut st.idle),
                ..Response::default()
            }),
            _ => Ok(Response {
                id: req.id(),
                ok: true,
                ..Response::default()
            }),
        }
    }
}

/// A participant's dialog: records its BYEs, counts its release.
struct FakeDialog {
    call_id: String,
    byes: Rc<RefCell<Vec<(String, String)>>>,
    released: Rc<Cell<usize>>,
}

impl Dialog for FakeDialog {
    fn bye(&self, headers: &str) -> bool {
        self.byes
            .borrow_mut()
            .push((self.call_id.clone(), headers.to_string()));
        true
    }
}

impl Drop for FakeDialog {
    fn drop(&mut self) {
        self.released.set(self.released.get() + 1);
    }
}

/// A stripe's dialog slots: owner handle, dialog, expiry second.
#[derive(Default)]
struct Slots(HashMap<u32, (ParticipantHandle, Option<FakeDialog>, u64)>);

impl DialogSlots<FakeDialog> for Slots {
    fn put(
        &mut self,
        h: ParticipantHandle,
        d: Option<FakeDialog>,
        expires_at: u64,
    ) -> Option<FakeDialog> {
        self.0
            .insert(h.slot, (h, d, expires_at))
            .and_then(|(_, d, _)| d)
    }
    fn take(&mut self, h: ParticipantHandle) -> Option<FakeDialog> {
        match self.0.get(&h.slot) {
            Some((held, _, _)) if *held == h => self.0.remove(&h.slot).and_then(|(_, d, _)| d),
            _ => None,
        }
    }
    fn expired(&self, now: u64, max: usize) -> Vec<ParticipantHandle> {
        self.0
            .values()
            .filter(|(_, _, at)| *at <= now)
            .map(|(h, _, _)| *h)
            .take(max)
            .collect()
    }
}

struct FakeHost {
    stripes: Vec<RefCell<(Vec<u8>, Slots)>>,
    docs: RefCell<(u64, Option<Vec<u8>>)>,
    tombs: RefCell<Vec<u128>>,
    counters: RefCell<HashMap<&'static str, i64>>,
    logs: RefCell<Vec<(Level, String)>>,
    relay: Rc<RefCell<RelayState>>,
    random: Cell<u8>,
    no_randomness: Cell<bool>,
    now: Cell<u64>,
    byes: Rc<RefCell<Vec<(String, String)>>>,
    released: Rc<Cell<usize>>,
}

impl Host for FakeHost {
    type Dialog = FakeDialog;
    type Relay = FakeRelay;
    fn log(&self, level: Level, msg: &str) {
        self.logs.borrow_mut().push((level, msg.to_string()));
    }
    fn count(&self, c: Counter, delta: i32) {
        let name = c.describe().0.to_str().unwrap_or("?");
        *self.counters.borrow_mut().entry(name).or_default() += i64::from(delta);
    }
    fn random16(&self) -> Option<[u8; 16]> {
        if self.no_randomness.get() {
            return None;
        }
        self.random.set(self.random.get().wrapping_add(1));
        Some([self.random.get(); 16])
    }
    fn now_s(&self) -> u64 {
        self.now.get()
    }
    fn relay(&self) -> FakeRelay {
        FakeRelay {
            state: self.relay.clone(),
            next: 0,
        }
    }
    fn stripes(&self) -> usize {
        self.stripes.len()
    }
    fn with_stripe<R>(
        &self,
        i: usize,
        f: impl FnOnce(&mut [u8], &mut dyn DialogSlots<FakeDialog>) -> R,
    ) -> R {
        let mut s = self.stripes[i].borrow_mut();
        let (mem, slots) = &mut *s;
        f(mem, slots)
    }
    fn docs_generation(&self) -> u64 {
        self.docs.borrow().0
    }
    fn read_docs(&self) -> Option<(u64, Vec<u8>)> {
        let d = self.docs.borrow();
        d.1.clone().map(|b| (d.0, b))
    }
    fn publish_docs(&self, blob: &[u8]) -> Result<u64, String> {
        let mut d = self.docs.borrow_mut();
        d.0 += 1;
        d.1 = Some(blob.to_vec());
        Ok(d.0)
    }
    fn bury(&self, dialog_key: u128) {
        self.tombs.borrow_mut().push(dialog_key);
    }
    fn is_buried(&self, dialog_key: u128) -> bool {
        self.tombs.borrow().contains(&dialog_key)
    }
}

fn params(stripes: u32, max_participants: u32, max_places: u32) -> Modparams {
    Modparams {
        groups_dir: "/nonexistent".into(),
        relay_socket: "/nonexistent/relay.sock".into(),
        focus_socket: String::new(),
        focus_allowed_uid: None,
        relay_timeout_ms: 200,
        retry_after: 7,
        max_display_name_chars: 64,
        max_participants,
        max_conferences: 8 * stripes,
        table_stripes: stripes,
        max_places_per_identity: max_places,
        bind_timeout: 30,
        msrp_gone_timeout: 60,
        dialog_timeout: 43200,
    }
}

fn group_docs(names: &[&str]) -> Vec<(String, String)> {
    let all = [
        (
            "open-lounge.xml",
            include_str!("../../kamailio/groups/open-lounge.xml"),
        ),
        (
            "small-room.xml",
            include_str!("../../kamailio/groups/small-room.xml"),
        ),
        (
            "bookclub.xml",
            include_str!("../../kamailio/groups/bookclub.xml"),
        ),
    ];
    all.iter()
        .filter(|(n, _)| names.contains(n))
        .map(|(n, c)| (n.to_string(), c.to_string()))
        .collect()
}

fn module_with(p: Modparams) -> Module<FakeHost> {
    let (conferences, participants) = p.per_stripe();
    let scfg = StripeConfig {
        max_conferences: conferences,
        max_participants: participants,
    };
    let stripes = (0..p.table_stripes)
        .map(|i| {
            let mut mem = vec![0u8; alias_table::stripe_bytes(&scfg)];
            Stripe::init(&mut mem, &scfg, i, *b"0123456789abcdef").expect("stripe init");
            RefCell::new((mem, Slots::default()))
        })
        .collect();
    let host = FakeHost {
        stripes,
        docs: RefCell::new((0, None)),
        tombs: RefCell::default(),
        counters: RefCell::default(),
        logs: RefCell::default(),
        relay: Rc::default(),
        random: Cell::new(0),
        no_randomness: Cell::new(false),
        now: Cell::new(1000),
        byes: Rc::default(),
        released: Rc::default(),
    };
    let m = Module::new(p, host);
    m.host
        .publish_docs(&encode_documents(&group_docs(&[
            "open-lounge.xml",
            "small-room.xml",
            "bookclub.xml",
        ])))
        .unwrap();
    m
}

fn module() -> Module<FakeHost> {
    module_with(params(2, 64, 3))
}

impl Module<FakeHost> {
    fn counter(&self, name: &str) -> i64 {
        self.host
            .counters
            .borrow()
            .get(name)
            .copied()
            .unwrap_or_default()
    }
    fn relay_requests(&self) -> Vec<Request> {
        self.host.relay.borrow().requests.clone()
    }
    fn participants(&self) -> u64 {
        stats(self).participants
    }
    /// The dialog slots held across all stripes: (handle, has a dialog, expiry second).
    fn slots(&self) -> Vec<(ParticipantHandle, bool, u64)> {
        self.host
            .stripes
            .iter()
            .flat_map(|s| {
                s.borrow()
                    .1
                     .0
                    .values()
                    .map(|(h, d, at)| (*h, d.is_some(), *at))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// One INVITE's transaction.
struct FakeTx {
    /// What `begin` says: a retransmission tm already answered.
    retransmission: bool,
    to_tag: String,
    call_id: String,
    /// Whether tm can build the request's dialog.
    dialog_ok: bool,
    /// How many dialogs were built.
    dialogs_built: usize,
    replies: Vec<(u16, String, Vec<String>, Vec<u8>)>,
    byes: Rc<RefCell<Vec<(String, String)>>>,
    released: Rc<Cell<usize>>,
}

impl FakeTx {
    fn new(m: &Module<FakeHost>, call_id: &str, to_tag: &str) -> Self {
        FakeTx {
            retransmission: false,
            to_tag: to_tag.into(),
            call_id: call_id.into(),
            dialog_ok: true,
            dialogs_built: 0,
            replies: Vec::new(),
            byes: m.host.byes.clone(),
            released: m.host.released.clone(),
        }
    }
    fn code(&self) -> u16 {
        assert_eq!(self.replies.len(), 1, "exactly one final reply");
        self.replies[0].0
    }
    fn reason(&self) -> &str {
        &self.replies[0].1
    }
    fn headers(&self) -> &[String] {
        &self.replies[0].2
    }
    fn body(&self) -> String {
        String::from_utf8_lossy(&self.replies[0].3).into_owned()
    }
}

impl Transaction for FakeTx {
    type Dialog = FakeDialog;
    fn begin(&mut self) -> Begin {
        if self.retransmission {
            Begin::Retransmission
        } else {
            Begin::New
        }
    }
    fn local_tag(&mut self) -> Option<String> {
        Some(self.to_tag.clone())
    }
    fn dialog(&mut self) -> Option<FakeDialog> {
        if !self.dialog_ok {
            return None;
        }
        self.dialogs_built += 1;
        Some(FakeDialog {
            call_id: self.call_id.clone(),
            byes: self.byes.clone(),
            released: self.released.clone(),
        })
    }
    fn reply(&mut self, code: u16, reason: &str, headers: &[String], body: &[u8]) -> bool {
        self.replies
            .push((code, reason.into(), headers.to_vec(), body.to_vec()));
        true
    }
}

fn invite<'a>(
    group: &'a str,
    from: &'a str,
    identity: &'a str,
    call_id: &'a str,
) -> InviteView<'a> {
    InviteView {
        request_uri: group,
        from: Some(from),
        call_id: Some(call_id),
        privacy: vec![],
        accept: vec![],
        content_type: Some("application/sdp"),
        body: OFFER.as_bytes(),
        asserted_identity: identity,
    }
}

fn dlg<'a>(
    request_uri: &'a str,
    call_id: Option<&'a str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
) -> InDialog<'a> {
    InDialog {
        request_uri,
        call_id,
        from,
        to,
    }
}

const BOB_ANON: &str = "\"bob\" <sip:anonymous@anonymous.invalid>;tag=from1";

/// Joins `from` as `identity` in a dialog of its own; returns the transaction.
fn join(m: &Module<FakeHost>, group: &str, from: &str, identity: &str, call_id: &str) -> FakeTx {
    let mut tx = FakeTx::new(m, call_id, &format!("totag-{call_id}"));
    join_invite(m, &invite(group, from, identity, call_id), &mut tx);
    tx
}

fn joins_sent(m: &Module<FakeHost>) -> Vec<control::Join> {
    m.relay_requests()
        .into_iter()
        .filter_map(|r| match r {
            Request::Join(j) => Some(j),
            _ => None,
        })
        .collect()
}

fn leaves_sent(m: &Module<FakeHost>) -> Vec<String> {
    m.relay_requests()
        .into_iter()
        .filter_map(|r| match r {
            Request::Leave { session, .. } => Some(session),
            _ => None,
        })
        .collect()
}

use chat_alias_proto::control;

#[test]
fn a_fresh_join_takes_one_place_and_is_answered_200() {
    let m = module();
    let tx = join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "c1");
    assert_eq!(tx.code(), 200, "{:?}", tx.replies);
    assert!(tx
        .headers()
        .contains(&format!("Contact: <{LOUNGE}>;isfocus")));
    assert!(tx.body().contains("a=path:msrp://127.0.0.1:2855/relay;tcp"));
    assert_eq!(tx.dialogs_built, 1);
    assert_eq!(
        m.slots()
            .iter()
            .map(|(_, d, at)| (*d, *at))
            .collect::<Vec<_>>(),
        vec![(true, 1000 + 43200)],
        "the dialog is kept for the focus's BYE, with its end of life"
    );
    let joins = joins_sent(&m);
    assert_eq!(joins.len(), 1);
    assert_eq!(joins[0].conference, LOUNGE);
    assert_eq!(joins[0].uri, "sip:anonymous@anonymous.invalid");
    assert_eq!(joins[0].display_name.as_deref(), Some("bob"));
    assert!(joins[0].anonymous);
    // The session id is the host's randomness, hex-encoded.
    assert_eq!(joins[0].session, "01".repeat(16));
    assert_eq!(m.participants(), 1);
    assert_eq!(m.counter("joins"), 1);
    assert_eq!(m.counter("anonymous_joins"), 1);
    assert_eq!(m.counter("active_participants"), 1);
    // The operator sees the real identity behind the alias.
    let listed = list(&m);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].identity, "sip:alice@example.com");
    assert_eq!(listed[0].uri, "sip:anonymous@anonymous.invalid");
}

#[test]
fn a_second_bob_is_told_he_is_bob_2() {
    let m = module();
    let first = join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "c1");
    let second = join(&m, LOUNGE, BOB_ANON, "<sip:carol@example.com>", "c2");
    assert_eq!((first.code(), second.code()), (200, 200));
    let joins = joins_sent(&m);
    assert_eq!(joins[1].display_name.as_deref(), Some("bob-2"));
    assert_eq!(joins[1].uri, "sip:anonymous2@anonymous.invalid");
    assert!(
        second.body().contains("multipart/mixed")
            || second
                .headers()
                .iter()
                .any(|h| h.contains("multipart/mixed"))
    );
    assert_eq!(m.counter("modified_aliases"), 1);
}

#[test]
fn a_retransmission_is_left_to_tm() {
    let m = module();
    let mut tx = FakeTx::new(&m, "c1", "t1");
    tx.retransmission = true;
    let out = join_invite(
        &m,
        &invite(LOUNGE, BOB_ANON, "<sip:alice@example.com>", "c1"),
        &mut tx,
    );
    assert_eq!(out, Outcome::Retransmission);
    assert!(tx.replies.is_empty());
    assert!(m.relay_requests().is_empty());
    assert_eq!(m.participants(), 0);
}

#[test]
fn the_same_dialog_asking_again_keeps_its_identity_and_takes_no_second_place() {
    let m = module();
    let first = join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "c1");
    // Same Call-ID, From-tag and To-tag, a new transaction (a re-INVITE after the first ended),
    // this time without asking for anonymity: the table's answer stands.
    let named = "\"bob\" <sip:alice@example.com>;tag=from1";
    let again = join(&m, LOUNGE, named, "<sip:alice@example.com>", "c1");
    assert_eq!((first.code(), again.code()), (200, 200));
    assert_eq!(m.participants(), 1);
    let joins = joins_sent(&m);
    assert_eq!(joins.len(), 2);
    assert_eq!(joins[0].session, joins[1].session);
    assert!(joins[1].anonymous, "the relay is told what the table holds");
    assert_eq!(joins[1].uri, "sip:anonymous@anonymous.invalid");
    assert_eq!(m.counter("joins"), 1);
    assert_eq!(m.counter("active_participants"), 1);
    assert_eq!(
        again.dialogs_built, 0,
        "the first transaction's dialog stays the place's"
    );
    assert_eq!(m.slots().len(), 1);
}

#[test]
fn the_same_dialog_from_another_identity_is_forbidden() {
    let m = module();
    join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "c1");
    let thief = join(&m, LOUNGE, BOB_ANON, "<sip:mallory@example.com>", "c1");
    assert_eq!(thief.code(), 403);
    assert_eq!(
        thief.reason(),
        "Forbidden (dialog belongs to another identity)"
    );
    assert_eq!(joins_sent(&m).len(), 1, "nothing reaches the relay");
    assert_eq!(m.counter("refused_policy"), 1);
}

#[test]
fn admission_refusals_are_answered_and_counted() {
    let m = module();
    let cases: [(&str, &str, &str, u16, &str); 4] = [
        (
            "sip:nope@im.example.net",
            BOB_ANON,
            "<sip:alice@example.com>",
            404,
            "refused_unknown_group",
        ),
        (LOUNGE, BOB_ANON, "", 403, "refused_no_identity"),
        (
            LOUNGE,
            "\"\u{202E}ecila\" <sip:anonymous@anonymous.invalid>;tag=x",
            "<sip:alice@example.com>",
            400,
            "refused_bad_request",
        ),
        // Anonymity is not allowed to everyone in the book club.
        (
            "sip:bookclub@im.example.net",
            BOB_ANON,
            "<sip:stranger@example.org>",
            403,
            "",
        ),
    ];
    for (i, (group, from, identity, code, counter)) in cases.into_iter().enumerate() {
        let tx = join(&m, group, from, identity, &format!("r{i}"));
        assert_eq!(
            tx.code(),
            code,
            "{group} {from} {identity}: {}",
            tx.reason()
        );
        if !counter.is_empty() {
            assert_eq!(m.counter(counter), 1, "{counter}");
        }
    }
    assert!(joins_sent(&m).is_empty());
    assert_eq!(m.participants(), 0);
}

#[test]
fn a_full_conference_is_busy_with_a_warning() {
    let m = module();
    // The small room holds two at a time.
    assert_eq!(
        join(
            &m,
            SMALL,
            "<sip:alice@example.com>;tag=a",
            "<sip:alice@example.com>",
            "a"
        )
        .code(),
        200
    );
    assert_eq!(
        join(
            &m,
            SMALL,
            "<sip:bob@example.com>;tag=b",
            "<sip:bob@example.com>",
            "b"
        )
        .code(),
        200
    );
    let third = join(
        &m,
        SMALL,
        "<sip:carol@example.com>;tag=c",
        "<sip:carol@example.com>",
        "c",
    );
    assert_eq!(third.code(), 486);
    assert_eq!(third.reason(), "Busy Here (conference full)");
    assert!(third
        .headers()
        .contains(&"Warning: 399 chat_alias \"max-participant-count reached\"".to_string()));
    assert_eq!(m.counter("refused_conference_full"), 1);
    assert_eq!(m.participants(), 2);
}

#[test]
fn places_per_identity_are_bounded() {
    let m = module_with(params(2, 64, 2));
    let alice = "<sip:alice@example.com>";
    assert_eq!(join(&m, LOUNGE, BOB_ANON, alice, "p1").code(), 200);
    assert_eq!(join(&m, LOUNGE, BOB_ANON, alice, "p2").code(), 200);
    let third = join(&m, LOUNGE, BOB_ANON, alice, "p3");
    assert_eq!(third.code(), 486);
    assert_eq!(
        third.reason(),
        "Busy Here (too many places for this identity)"
    );
    assert!(third
        .headers()
        .iter()
        .any(|h| h == "Warning: 399 chat_alias \"max_places_per_identity (2) reached\""));
    assert_eq!(m.counter("refused_places"), 1);
}

#[test]
fn a_full_table_is_unavailable_with_retry_after() {
    let m = module_with(params(1, 1, 0));
    assert_eq!(
        join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "t1").code(),
        200
    );
    let late = join(&m, LOUNGE, BOB_ANON, "<sip:carol@example.com>", "t2");
    assert_eq!(late.code(), 503);
    assert_eq!(late.reason(), "Service Unavailable (alias table full)");
    assert!(late.headers().contains(&"Retry-After: 7".to_string()));
    assert_eq!(m.counter("refused_table_full"), 1);
}

#[test]
fn a_silent_relay_gives_503_and_the_place_back() {
    let m = module();
    m.host.relay.borrow_mut().down = true;
    let tx = join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "d1");
    assert_eq!(tx.code(), 503);
    assert_eq!(tx.reason(), "Service Unavailable (chat relay unavailable)");
    assert!(tx.headers().contains(&"Retry-After: 7".to_string()));
    assert_eq!(m.participants(), 0, "the place is released");
    assert_eq!(tx.dialogs_built, 0, "no dialog is built for a refused join");
    assert!(m.slots().is_empty());
    assert_eq!(m.counter("refused_relay_unavailable"), 1);
    assert_eq!(m.counter("active_participants"), 0);
    // The name went back: the next bob is plain "bob" again.
    m.host.relay.borrow_mut().down = false;
    join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "d2");
    assert_eq!(
        joins_sent(&m).last().unwrap().display_name.as_deref(),
        Some("bob")
    );
}

#[test]
fn no_randomness_no_join() {
    let m = module();
    m.host.no_randomness.set(true);
    let tx = join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "n1");
    assert_eq!(tx.code(), 503);
    assert!(joins_sent(&m).is_empty());
    assert_eq!(m.participants(), 0);
}

#[test]
fn a_bye_frees_the_name_before_its_200() {
    let m = module();
    let tx = join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "b1");
    let to = "<sip:lounge@im.example.net>;tag=totag-b1";
    let from = Some(BOB_ANON);
    assert!(in_dialog(&m, &dlg(LOUNGE, Some("b1"), from, Some(to))));
    // A request without the focus's To-tag, or with another one, is not in the dialog.
    assert!(!in_dialog(
        &m,
        &dlg(
            LOUNGE,
            Some("b1"),
            from,
            Some("<sip:lounge@im.example.net>")
        )
    ));
    assert!(!leave_dialog(
        &m,
        &dlg(
            LOUNGE,
            Some("b1"),
            from,
            Some("<sip:lounge@im.example.net>;tag=x")
        )
    ));
    assert!(leave_dialog(&m, &dlg(LOUNGE, Some("b1"), from, Some(to))));
    assert_eq!(m.participants(), 0);
    assert_eq!(leaves_sent(&m).len(), 1);
    assert_eq!(m.counter("leaves"), 1);
    assert_eq!(m.counter("active_participants"), 0);
    assert!(
        m.host.byes.borrow().is_empty(),
        "the participant ended it: no BYE from the focus"
    );
    assert!(!in_dialog(&m, &dlg(LOUNGE, Some("b1"), from, Some(to))));
    // Its dialog is released with the place, and nothing is left to expire.
    assert_eq!(m.host.released.get(), 1);
    assert!(m.slots().is_empty());
    // The operator's audit line: group, assigned identity, Call-ID and session.
    let session = joins_sent(&m)[0].session.clone();
    let info: Vec<String> = m
        .host
        .logs
        .borrow()
        .iter()
        .filter(|(l, _)| *l == Level::Info)
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(
        info,
        vec![
            format!(
                "joined: \"bob\" <sip:anonymous@anonymous.invalid> to {}, Call-ID \"b1\", session {session}",
                alias_table_key(LOUNGE)
            ),
            format!(
                "left: \"bob\" <sip:anonymous@anonymous.invalid> from {}, Call-ID \"b1\", session {session} (BYE)",
                alias_table_key(LOUNGE)
            ),
        ]
    );
    drop(tx);
}

#[test]
fn the_end_of_a_dialog_is_counted_once() {
    let m = module();
    join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "e1");
    let bye = dlg(
        LOUNGE,
        Some("e1"),
        Some(BOB_ANON),
        Some("<sip:lounge@im.example.net>;tag=totag-e1"),
    );
    assert!(leave_dialog(&m, &bye));
    assert!(!leave_dialog(&m, &bye), "a retransmitted BYE finds it gone");
    assert_eq!(m.participants(), 0);
    assert_eq!(m.counter("leaves"), 1);
    assert_eq!(m.counter("active_participants"), 0);
    assert_eq!(leaves_sent(&m).len(), 1);
    assert_eq!(m.host.released.get(), 1);
}

#[test]
fn the_focus_ends_a_session_never_bound_with_a_bye() {
    let m = module();
    join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "g1");
    let session = joins_sent(&m)[0].session.clone();
    m.host.relay.borrow_mut().idle = vec![IdleSession {
        session: session.clone(),
        conference: LOUNGE.into(),
        reason: IdleReason::NeverBound,
        idle_ms: 31_000,
    }];
    timer_tick(&m);
    assert_eq!(m.participants(), 0);
    assert_eq!(
        *m.host.byes.borrow(),
        vec![(
            "g1".to_string(),
            "Reason: SIP;cause=408;text=\"MSRP session not established\"\r\n".to_string()
        )]
    );
    assert_eq!(leaves_sent(&m), vec![session]);
    assert_eq!(m.counter("removed_never_bound"), 1);
    assert_eq!(m.counter("active_participants"), 0);
    // The participant's BYE crossing the focus's BYE still matches (answered 200, not 481).
    let to = "<sip:lounge@im.example.net>;tag=totag-g1";
    assert!(in_dialog(
        &m,
        &dlg(LOUNGE, Some("g1"), Some(BOB_ANON), Some(to))
    ));
    assert!(!leave_dialog(
        &m,
        &dlg(LOUNGE, Some("g1"), Some(BOB_ANON), Some(to))
    ));
    // A session the table does not have is let go at the relay too.
    m.host.relay.borrow_mut().idle = vec![IdleSession {
        session: "stale".into(),
        conference: LOUNGE.into(),
        reason: IdleReason::Gone,
        idle_ms: 61_000,
    }];
    timer_tick(&m);
    assert_eq!(leaves_sent(&m).last().map(String::as_str), Some("stale"));
    assert_eq!(m.host.byes.borrow().len(), 1);
}

#[test]
fn a_reload_without_the_group_ends_its_conference() {
    let m = module();
    join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "o1");
    join(
        &m,
        SMALL,
        "<sip:bob@example.com>;tag=b",
        "<sip:bob@example.com>",
        "o2",
    );
    // Published by another process: the timer process catches up, then removes.
    m.host
        .publish_docs(&encode_documents(&group_docs(&["small-room.xml"])))
        .unwrap();
    timer_tick(&m);
    assert_eq!(m.participants(), 1);
    let byes = m.host.byes.borrow().clone();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].0, "o1");
    assert_eq!(
        byes[0].1,
        "Reason: SIP;cause=410;text=\"Group removed\"\r\n"
    );
    assert_eq!(m.counter("removed_group_gone"), 1);
    assert!(!m.is_group(LOUNGE));
    assert!(m.is_group(SMALL));
}

#[test]
fn a_failed_reload_keeps_the_groups() {
    let m = module();
    assert!(m.is_group(LOUNGE));
    let err = reload(&m, false).unwrap_err();
    assert!(matches!(err, operator::ReloadError::Invalid(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("previous definitions stay in force"),
        "{err}"
    );
    assert_eq!(m.counter("reload_failures"), 1);
    assert!(m.is_group(LOUNGE));
    timer_tick(&m);
    assert_eq!(m.group_count(), 4, "lounge, lounge2, smallroom, bookclub");
}

#[test]
fn nicknames_are_decided_by_the_table() {
    let m = module();
    join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "k1");
    join(
        &m,
        LOUNGE,
        "\"carl\" <sip:anonymous@anonymous.invalid>;tag=k",
        "<sip:carol@example.com>",
        "k2",
    );
    let joins = joins_sent(&m);
    let (bob, carl) = (&joins[0].session, &joins[1].session);
    assert_eq!(
        nickname(&m, LOUNGE, bob, "Robert"),
        Ok(Some("Robert".into()))
    );
    let taken = nickname(&m, LOUNGE, carl, "Robert").unwrap_err();
    assert_eq!(
        (taken.status(), taken.to_string()),
        (425, "nickname in use".into())
    );
    assert_eq!(
        nickname(&m, LOUNGE, carl, "\u{202E}x")
            .unwrap_err()
            .status(),
        424
    );
    let unknown = nickname(&m, LOUNGE, "nosuch", "x").unwrap_err();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.to_string(),
        format!("no session nosuch in {LOUNGE}")
    );
    assert_eq!(
        nickname(&m, "sip:nope@x", bob, "x").unwrap_err().status(),
        404
    );
    assert_eq!(nickname(&m, LOUNGE, carl, ""), Ok(None));
}

#[test]
fn the_relay_learns_sessions_and_what_is_missing() {
    let m = module();
    for i in 0..5 {
        join(
            &m,
            LOUNGE,
            BOB_ANON,
            &format!("<sip:u{i}@example.com>"),
            &format!("s{i}"),
        );
    }
    let all = sessions(&m, 0, usize::MAX);
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|s| s.conference == LOUNGE && s.anonymous));
    assert_eq!(all[0].peer_path, "msrp://192.0.2.1:7654/jshA7weztas;tcp");
    let page: Vec<_> = sessions(&m, 3, 10).into_iter().map(|s| s.session).collect();
    assert_eq!(
        page,
        all[3..]
            .iter()
            .map(|s| s.session.clone())
            .collect::<Vec<_>>()
    );
    let pairs = vec![
        (LOUNGE.to_string(), all[0].session.clone()),
        (LOUNGE.to_string(), "gone".to_string()),
        (
            "sip:nope@im.example.net".to_string(),
            all[1].session.clone(),
        ),
    ];
    assert_eq!(
        missing_sessions(&m, &pairs),
        vec!["gone".to_string(), all[1].session.clone()]
    );
}

/// The conference key the alias table (and the audit lines) use for a group URI.
fn alias_table_key(group: &str) -> String {
    chat_alias_proto::sip::parse_uri(group).unwrap().key()
}

#[test]
fn a_dialog_that_lasted_dialog_timeout_is_ended_with_a_bye() {
    let m = module();
    join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "x1");
    let session = joins_sent(&m)[0].session.clone();
    m.host.now.set(1000 + 43200 - 1);
    timer_tick(&m);
    assert_eq!(m.participants(), 1, "one second early: still there");
    assert!(m.host.byes.borrow().is_empty());
    m.host.now.set(1000 + 43200);
    timer_tick(&m);
    assert_eq!(m.participants(), 0);
    assert_eq!(
        *m.host.byes.borrow(),
        vec![(
            "x1".to_string(),
            "Reason: SIP;cause=408;text=\"Dialog time limit reached\"\r\n".to_string()
        )]
    );
    assert_eq!(leaves_sent(&m), vec![session]);
    assert_eq!(m.counter("removed_expired"), 1);
    assert_eq!(m.counter("leaves"), 1);
    assert_eq!(m.counter("active_participants"), 0);
    assert_eq!(m.host.released.get(), 1);
    assert!(m.slots().is_empty());
    // The participant's BYE crossing the focus's still matches (answered 200, not 481).
    let to = "<sip:lounge@im.example.net>;tag=totag-x1";
    assert!(in_dialog(
        &m,
        &dlg(LOUNGE, Some("x1"), Some(BOB_ANON), Some(to))
    ));
    // The name is free again.
    let next = join(&m, LOUNGE, BOB_ANON, "<sip:carol@example.com>", "x2");
    assert_eq!(joins_sent(&m)[1].display_name.as_deref(), Some("bob"));
    assert_eq!(next.code(), 200);
    timer_tick(&m);
    assert_eq!(
        m.participants(),
        1,
        "the new dialog has a lifetime of its own"
    );
}

#[test]
fn dialog_timeout_0_means_no_limit() {
    let m = module_with(Modparams {
        dialog_timeout: 0,
        ..params(2, 64, 3)
    });
    join(&m, LOUNGE, BOB_ANON, "<sip:alice@example.com>", "z1");
    m.host.now.set(u64::MAX - 1);
    timer_tick(&m);
    assert_eq!(m.participants(), 1);
    assert_eq!(m.counter("removed_expired"), 0);
}

#[test]
fn a_join_whose_dialog_tm_cannot_build_is_admitted_and_still_expires() {
    let m = module();
    let mut tx = FakeTx::new(&m, "n1", "tn1");
    tx.dialog_ok = false;
    join_invite(
        &m,
        &invite(LOUNGE, BOB_ANON, "<sip:alice@example.com>", "n1"),
        &mut tx,
    );
    assert_eq!(tx.code(), 200);
    assert!(m
        .host
        .logs
        .borrow()
        .iter()
        .any(|(l, s)| *l == Level::Warn && s.contains("cannot end it with a BYE")));
    assert_eq!(m.slots().iter().map(|s| s.1).collect::<Vec<_>>(), [false]);
    m.host.now.set(1000 + 43200);
    timer_tick(&m);
    assert_eq!(m.participants(), 0);
    assert!(
        m.host.byes.borrow().is_empty(),
        "no dialog to send a BYE in"
    );
    assert_eq!(m.counter("removed_expired"), 1);
}

/// A normal join and leave write no line above INFO, and exactly one INFO line each.
#[test]
fn a_normal_join_and_leave_log_one_info_line_each_and_nothing_louder() {
    let m = module();
    for (i, call) in ["j1", "j2"].iter().enumerate() {
        join(
            &m,
            LOUNGE,
            BOB_ANON,
            &format!("<sip:u{i}@example.com>"),
            call,
        );
    }
    for call in ["j1", "j2"] {
        let to = format!("<sip:lounge@im.example.net>;tag=totag-{call}");
        assert!(leave_dialog(
            &m,
            &dlg(LOUNGE, Some(call), Some(BOB_ANON), Some(&to))
        ));
    }
    let logs = m.host.logs.borrow();
    assert!(
        logs.iter()
            .all(|(l, _)| *l == Level::Info || *l == Level::Debug),
        "{logs:?}"
    );
    let info: Vec<&str> = logs
        .iter()
        .filter(|(l, _)| *l == Level::Info)
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(info.len(), 4, "{info:?}");
    assert!(info[1].starts_with("joined: \"bob-2\" <sip:anonymous2@anonymous.invalid>"));
    assert!(info[3].starts_with("left: \"bob-2\" <sip:anonymous2@anonymous.invalid>"));
    assert!(info[3].contains("Call-ID \"j2\""), "{info:?}");
}
