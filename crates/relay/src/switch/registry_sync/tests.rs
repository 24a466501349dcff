//! The resync and the convergence check without sockets: questions are read from
//! `poll_action`, answers are the datagrams the module would send, time is virtual.
use super::*;
use crate::frame::Frame;
use crate::metrics::Metrics;
use crate::switch::{CloseReason, FrameClass, Pushed};
use serde_json::{json, Value};

/// An outlet that takes everything (these tests look at the registry, not at frames).
struct Sink;

impl Outlet for Sink {
    fn push_frame(&self, _frame: Frame, _class: FrameClass) -> Pushed {
        Pushed::Queued
    }
    fn close(&self, _why: CloseReason) {}
    fn queued(&self) -> usize {
        0
    }
}

const CONF: &str = "sip:lounge@im.example.net";

fn switch(focus: bool) -> Switch<Sink> {
    let mut cfg = crate::switch::Config::example();
    cfg.focus_socket = focus;
    let mut n = 0u8;
    let ids = Box::new(move || {
        n = n.wrapping_add(1);
        [n; 12]
    });
    Switch::new(cfg, ids, Metrics::new())
}

fn sid(i: usize) -> String {
    format!("aaaaaaaaaaaaaaaa{i:04}")
}

fn record(i: usize) -> Value {
    SessionRecord {
        conference: CONF.into(),
        session: sid(i),
        uri: format!("sip:anonymous{i}@anonymous.invalid"),
        display_name: Some(format!("p{i}")),
        anonymous: true,
        peer_path: vec!["msrp://192.0.2.1:7654/abc;tcp".into()],
        accept_wrapped_types: vec!["text/plain".into()],
        chatroom: vec!["nickname".into()],
        private_messages_allowed: true,
    }
    .to_value()
}

fn reply(id: AskId, result: Value) -> Reply {
    Reply::parse(
        json!({"jsonrpc":"2.0","result":result,"id":id})
            .to_string()
            .as_bytes(),
    )
    .expect("a reply")
}

/// The one question the switch asks now: its id and what it asks.
fn asked(sw: &mut Switch<Sink>) -> (AskId, Question) {
    let Some(Action::QueryFocus { id, question }) = sw.poll_action() else {
        panic!("no question");
    };
    assert_eq!(sw.poll_action(), None);
    (id, question)
}

fn page(range: std::ops::Range<usize>) -> Value {
    Value::Array(range.map(record).collect())
}

/// Pages of 16 with an overlap of 4, until a short page; a session a live join registered is
/// not overridden, and one that left while the resync ran is not brought back.
#[test]
fn resync_pages_register_unknown_sessions_only() {
    let mut sw = switch(true);
    let t0 = Instant::now();
    let mut live = SessionRecord::from_value(&record(1)).unwrap();
    live.display_name = Some("live".into());
    sw.join_at(t0, live).unwrap();
    sw.handle_resync_request(t0);
    assert!(sw.resyncing());
    let (id, q) = asked(&mut sw);
    assert_eq!(
        q,
        Question::Sessions {
            offset: 0,
            limit: PAGE
        }
    );
    // A second request while one runs asks nothing.
    sw.handle_resync_request(t0);
    assert_eq!(sw.poll_action(), None);
    sw.handle_focus_reply(t0, reply(id, page(0..16)));
    assert_eq!(sw.registry.len(), 16);
    assert_eq!(
        sw.registry.get(&sid(1)).unwrap().display_name.as_deref(),
        Some("live")
    );
    let (id2, q) = asked(&mut sw);
    assert_eq!(
        q,
        Question::Sessions {
            offset: 12,
            limit: PAGE
        }
    );
    // Leaves while the resync runs: one listed on the next page, one already restored.
    sw.leave(&sid(20));
    assert!(sw.leave(&sid(3)).is_some());
    // A stale answer to the first page changes nothing.
    sw.handle_focus_reply(t0, reply(id, page(100..116)));
    assert!(sw.registry.get(&sid(100)).is_none());
    sw.handle_focus_reply(t0, reply(id2, page(12..22)));
    assert_eq!(sw.poll_action(), None);
    assert!(!sw.resyncing());
    assert!(sw.registry.get(&sid(20)).is_none());
    assert!(sw.registry.get(&sid(3)).is_none());
    assert!(sw.registry.get(&sid(21)).is_some());
    assert_eq!(sw.registry.len(), 16 + 6 - 1 - 1);
}

/// A resync ends on an error answer, on no answer in time, and when the question cannot be sent;
/// an answer after the deadline registers nothing.
#[test]
fn resync_ends_on_errors_timeouts_and_unreachable_focus() {
    let mut sw = switch(true);
    let t0 = Instant::now();
    sw.handle_resync_request(t0);
    let (id, _) = asked(&mut sw);
    let err = json!({"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":id});
    sw.handle_focus_reply(t0, Reply::parse(err.to_string().as_bytes()).unwrap());
    assert!(!sw.resyncing());
    sw.handle_resync_request(t0);
    let (id, _) = asked(&mut sw);
    let timeout = sw.config().focus_timeout.max(MIN_SYNC_TIMEOUT);
    assert!(sw.poll_timeout().is_some_and(|t| t <= t0 + timeout));
    sw.handle_timeout(t0 + timeout);
    assert!(!sw.resyncing());
    sw.handle_focus_reply(t0 + timeout, reply(id, page(0..3)));
    assert_eq!(sw.registry.len(), 0);
    sw.handle_resync_request(t0 + timeout);
    let (id, _) = asked(&mut sw);
    sw.handle_focus_unreachable(t0 + timeout, id, "no such file".into());
    assert!(!sw.resyncing());
}

/// Without a focus socket there is neither resync nor convergence check.
#[test]
fn no_focus_no_questions() {
    let mut sw = switch(false);
    let t0 = Instant::now();
    sw.handle_resync_request(t0);
    sw.join_at(t0, SessionRecord::from_value(&record(1)).unwrap())
        .unwrap();
    sw.handle_timeout(t0 + CHECK_EVERY * 3);
    assert_eq!(sw.poll_action(), None);
    assert!(!sw.resyncing());
}

/// Every CHECK_EVERY the switch asks about its sessions in batches of 128, one batch at a time;
/// an answer closes the sessions of the batch it names and nothing else; an error closes nothing.
#[test]
fn convergence_closes_only_what_was_asked_and_named() {
    let mut sw = switch(true);
    let t0 = Instant::now();
    for i in 0..130 {
        sw.join_at(t0, SessionRecord::from_value(&record(i)).unwrap())
            .unwrap();
    }
    sw.handle_timeout(t0);
    assert_eq!(sw.poll_action(), None, "the first round waits one period");
    assert!(sw.poll_timeout().is_some_and(|t| t <= t0 + CHECK_EVERY));
    let t1 = t0 + CHECK_EVERY;
    sw.handle_timeout(t1);
    let (id, q) = asked(&mut sw);
    let Question::Missing { sessions } = q else {
        panic!("{q:?}");
    };
    assert_eq!(sessions.len(), CHECK_BATCH);
    assert!(sessions.iter().all(|(c, _)| c == CONF));
    let first: Vec<String> = sessions.iter().map(|(_, s)| s.clone()).collect();
    let outside = (0..130)
        .map(sid)
        .find(|s| !first.contains(s))
        .expect("a session of the second batch");
    // A session registered after the question, and one not asked about, are not judged.
    let named = vec![first[0].clone(), outside.clone(), sid(999)];
    sw.handle_focus_reply(t1, reply(id, json!({ "missing": named })));
    assert!(sw.registry.get(&first[0]).is_none());
    assert!(sw.registry.get(&outside).is_some());
    assert_eq!(sw.registry.len(), 129);
    let (id, q) = asked(&mut sw);
    let Question::Missing { sessions } = q else {
        panic!("{q:?}");
    };
    assert_eq!(sessions.len(), 2);
    let err = json!({"jsonrpc":"2.0","error":{"code":500,"message":"x"},"id":id});
    sw.handle_focus_reply(t1, Reply::parse(err.to_string().as_bytes()).unwrap());
    assert_eq!(sw.registry.len(), 129);
    assert_eq!(sw.poll_action(), None);
    // The next round starts one period later; a round without an answer ends at its deadline.
    sw.handle_timeout(t1 + CHECK_EVERY);
    let (id, _) = asked(&mut sw);
    let timeout = sw.config().focus_timeout.max(MIN_SYNC_TIMEOUT);
    sw.handle_timeout(t1 + CHECK_EVERY + timeout);
    sw.handle_focus_reply(
        t1 + CHECK_EVERY + timeout,
        reply(id, json!({ "missing": [sid(5)] })),
    );
    assert!(sw.registry.get(&sid(5)).is_some());
}

/// No convergence round starts while a resync runs.
#[test]
fn no_check_during_a_resync() {
    let mut sw = switch(true);
    // A long focus timeout: the page is still awaited when the first round is due.
    sw.cfg.focus_timeout = CHECK_EVERY * 2;
    let t0 = Instant::now();
    sw.join_at(t0, SessionRecord::from_value(&record(1)).unwrap())
        .unwrap();
    sw.handle_resync_request(t0);
    let (id, q) = asked(&mut sw);
    assert!(matches!(q, Question::Sessions { .. }));
    sw.handle_timeout(t0 + CHECK_EVERY);
    assert_eq!(sw.poll_action(), None);
    assert!(sw.resyncing());
    // Once the resync is over, the next period checks.
    sw.handle_focus_reply(t0 + CHECK_EVERY, reply(id, page(0..0)));
    sw.handle_timeout(t0 + CHECK_EVERY * 2);
    assert!(matches!(asked(&mut sw).1, Question::Missing { .. }));
}
