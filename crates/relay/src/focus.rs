//! The link to the focus for NICKNAME decisions (`--focus-rpc`): JSON-RPC 2.0 over Kamailio's
//! `jsonrpcs` Unix datagram socket, method `chat_alias.nickname`.
//!
//! One request per datagram, sent from a datagram socket of the relay's own (bound lazily, on the
//! first question: Kamailio may start after the relay); jsonrpcs answers each request with one
//! datagram, from its own socket to the sender's address (`jsonrpc_dgram_server` in Kamailio
//! 5.6: `recvfrom`, execute, `sendto` of the whole reply; a request that is not JSON gets no
//! answer at all, which the switch's timeout turns into 500). Errors raised with
//! `rpc->fault(code, message)` come back as `{"error":{"code":code,"message":"..."}}`.
//!
//! Answers are matched to questions by `id` only; datagrams that do not come from the focus's
//! socket are ignored.
//!
//! The same link rebuilds the registry after a restart (`chat_alias.sessions`, paged: params
//! `[offset, limit]`, so that every answer fits one datagram): at start-up and on the first
//! control connection. Sessions the relay already knows (a live `join`) are never overridden,
//! and sessions that left while the resync ran are not brought back.
use crate::registry::Participant;
use crate::switch::{AskId, FocusOutcome, NicknameAsk};
use crate::Shared;
#[cfg(test)]
use chat_alias_relay::focus_reply::parse_reply;
use chat_alias_relay::focus_reply::{id_of, parse_missing, parse_reply_value, parse_sessions};
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;

/// The JSON-RPC method the module exports.
pub const METHOD: &str = "chat_alias.nickname";
/// The module's listing of every participant, for a resync.
pub const SESSIONS_METHOD: &str = "chat_alias.sessions";
/// Records asked per page: at most ~2 KiB each (URIs ≤ 255 bytes, name ≤ 256, peer path ≤ 256,
/// types ≤ 128), so a page stays far below the 64 KiB a datagram carries here.
pub const PAGE: u64 = 16;
/// Each page starts this many records before the end of the previous one: participants who left
/// between two pages shift the listing, and re-reading a few known sessions is harmless.
const OVERLAP: u64 = 4;
/// Resync request ids live above every NICKNAME id (exact as a double: below 2^53).
const RESYNC_ID_BASE: u64 = 1 << 50;
/// Convergence check ids live above every resync id.
const CHECK_ID_BASE: u64 = 1 << 51;
/// Sessions asked about in one `chat_alias.missing` question (the module answers at most 128).
pub const CHECK_BATCH: usize = 128;
/// How often the relay asks the focus which of its sessions the alias table still has: a session
/// the module no longer has (a leave lost in transit, a restarted Kamailio) is closed within two
/// periods.
pub const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(4);
/// jsonrpcs reads requests into a buffer of this size (JSONRPC_DGRAM_BUF_SIZE); its answers are
/// smaller than a datagram can be.
const MAX_DATAGRAM: usize = 65536;

/// Where the relay binds its reply socket: next to its control socket.
pub fn reply_path(control: &Path) -> PathBuf {
    let mut p = control.as_os_str().to_owned();
    p.push(".rpc");
    PathBuf::from(p)
}

/// The JSON-RPC request for a question.
pub fn request(ask: &NicknameAsk) -> Vec<u8> {
    let v = json!({
        "jsonrpc": "2.0",
        "method": METHOD,
        "params": [ask.conference, ask.session, ask.nickname],
        "id": ask.id,
    });
    v.to_string().into_bytes()
}

/// The `chat_alias.sessions` request for one page.
pub fn sessions_request(id: u64, offset: u64) -> Vec<u8> {
    json!({
        "jsonrpc": "2.0",
        "method": SESSIONS_METHOD,
        "params": [offset, PAGE],
        "id": id,
    })
    .to_string()
    .into_bytes()
}

/// Registers what a page lists, never overriding a session the relay knows (a live `join`
/// registered it) and never bringing back one that left while the resync ran. Returns how many
/// were registered.
pub fn apply_sessions(shared: &Shared, page: Vec<Participant>) -> usize {
    let left = shared.resync_leaves.lock().clone().unwrap_or_default();
    let mut sw = shared.switch.lock();
    let mut added = 0;
    for p in page {
        if left.contains(&p.session) || sw.registry.get(&p.session).is_some() {
            continue;
        }
        let session = p.session.clone();
        match sw.join(p) {
            Ok(()) => {
                tracing::info!(session = %session, "participant restored from the focus");
                added += 1;
            }
            Err(e) => tracing::warn!(session = %session, error = %e, "cannot restore a session"),
        }
    }
    added
}

/// The reply socket: answers are read through tokio; questions are sent through a duplicate of
/// the same socket in plain non-blocking mode, so that a send that would block fails at once
/// (tokio's `try_send_to` also refuses before the first readiness event, and waiting for
/// writability on an unconnected datagram socket whose peer is full may never end).
struct Link {
    rx: UnixDatagram,
    tx: std::os::unix::net::UnixDatagram,
}

/// Binds the reply socket, replacing a stale one (a socket left by an earlier run; anything else
/// at that path is not ours and is left alone).
fn bind(path: &Path) -> std::io::Result<Link> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let s = std::os::unix::net::UnixDatagram::bind(path)?;
    // Kamailio must be able to write its answers here (it may run as another user of the group).
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    s.set_nonblocking(true)?;
    let tx = s.try_clone()?;
    Ok(Link {
        rx: UnixDatagram::from_std(s)?,
        tx,
    })
}

/// Whether a datagram's sender is the focus's socket.
fn from_focus(from: &tokio::net::unix::SocketAddr, focus: &Path) -> bool {
    let Some(p) = from.as_pathname() else {
        return false;
    };
    if p == focus {
        return true;
    }
    // The same socket named another way (relative path, symlinked directory).
    match (std::fs::metadata(p), std::fs::metadata(focus)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn fail(shared: &Shared, id: AskId, why: String) {
    shared
        .switch
        .lock()
        .handle_focus_answer(Instant::now(), id, FocusOutcome::Failed(why));
}

/// Sends one question; a failure to send is answered at once (never waits: a full socket buffer
/// on Kamailio's side is a failure like any other).
fn send(link: &Link, focus: &Path, shared: &Shared, ask: NicknameAsk) {
    let bytes = request(&ask);
    match link.tx.send_to(&bytes, focus) {
        Ok(n) if n == bytes.len() => {
            tracing::debug!(id = ask.id, conn = ask.conn, tid = %ask.transaction_id, "NICKNAME question sent to the focus");
        }
        Ok(n) => fail(
            shared,
            ask.id,
            format!("short send to the focus ({n} bytes)"),
        ),
        Err(e) => fail(
            shared,
            ask.id,
            format!("cannot reach the focus at {}: {e}", focus.display()),
        ),
    }
}

/// A resync in progress: the page asked and until when its answer is awaited.
struct Resync {
    id: u64,
    offset: u64,
    deadline: tokio::time::Instant,
    added: usize,
}

fn resync_timeout(shared: &Shared) -> std::time::Duration {
    shared
        .switch
        .lock()
        .config()
        .focus_timeout
        .max(std::time::Duration::from_secs(1))
}

/// Asks for one page; false when it could not be sent (the resync is abandoned).
fn ask_page(
    link: &Link,
    focus: &Path,
    shared: &Shared,
    st: &mut Resync,
    next_id: &mut u64,
) -> bool {
    *next_id += 1;
    st.id = RESYNC_ID_BASE + *next_id;
    st.deadline = tokio::time::Instant::now() + resync_timeout(shared);
    let bytes = sessions_request(st.id, st.offset);
    match link.tx.send_to(&bytes, focus) {
        Ok(n) if n == bytes.len() => true,
        Ok(n) => {
            tracing::warn!(n, "short send of a resync request; resync abandoned");
            false
        }
        Err(e) => {
            tracing::info!(focus = %focus.display(), error = %e, "focus not reachable; registry not rebuilt (retried on the first control connection)");
            false
        }
    }
}

fn begin_resync(link: &Link, focus: &Path, shared: &Shared, next_id: &mut u64) -> Option<Resync> {
    *shared.resync_leaves.lock() = Some(Default::default());
    let mut st = Resync {
        id: 0,
        offset: 0,
        deadline: tokio::time::Instant::now(),
        added: 0,
    };
    if ask_page(link, focus, shared, &mut st, next_id) {
        tracing::debug!("resync: asking the focus for its sessions");
        Some(st)
    } else {
        end_resync(shared);
        None
    }
}

fn end_resync(shared: &Shared) {
    *shared.resync_leaves.lock() = None;
}

/// A page arrived: registers it and asks for the next one; None when the resync is over.
fn on_page(
    link: &Link,
    focus: &Path,
    shared: &Shared,
    mut st: Resync,
    v: &Value,
    next_id: &mut u64,
) -> Option<Resync> {
    match parse_sessions(v) {
        Ok((page, n)) => {
            st.added += apply_sessions(shared, page);
            if n < PAGE {
                tracing::info!(restored = st.added, "registry rebuilt from the focus");
                end_resync(shared);
                return None;
            }
            st.offset += n - OVERLAP;
            if ask_page(link, focus, shared, &mut st, next_id) {
                Some(st)
            } else {
                end_resync(shared);
                None
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "resync refused by the focus");
            end_resync(shared);
            None
        }
    }
}

/// A convergence round in progress: the sessions still to ask about, and the batch awaiting its
/// answer.
struct Check {
    id: u64,
    asked: std::collections::HashSet<String>,
    rest: Vec<(String, String)>,
    deadline: tokio::time::Instant,
    closed: usize,
}

/// The `chat_alias.missing` question for one batch.
pub fn missing_request(id: u64, batch: &[(String, String)]) -> Vec<u8> {
    let params: Vec<Value> = batch.iter().map(|(c, s)| json!([c, s])).collect();
    json!({"jsonrpc": "2.0", "method": "chat_alias.missing", "params": params, "id": id})
        .to_string()
        .into_bytes()
}

/// Closes what the answer names, but only sessions of the batch asked: nothing else can be judged
/// by this answer. Session ids are fresh random values per join, and the module puts a participant
/// in its table before telling the relay, so a session asked about and missing from the table is
/// gone for good. Returns how many were closed.
pub fn close_missing(
    shared: &Shared,
    asked: &std::collections::HashSet<String>,
    missing: Vec<String>,
) -> usize {
    let mut n = 0;
    for s in missing.into_iter().filter(|s| asked.contains(s)) {
        if let Some(p) = shared.on_leave(&s) {
            tracing::info!(session = %s, conference = %p.conference, "session unknown to the focus closed");
            n += 1;
        }
    }
    n
}

/// Asks about the next batch of `st`; false when the round is over or could not be sent.
fn ask_check(
    link: &Link,
    focus: &Path,
    shared: &Shared,
    st: &mut Check,
    next_id: &mut u64,
) -> bool {
    if st.rest.is_empty() {
        return false;
    }
    let at = st.rest.len().saturating_sub(CHECK_BATCH);
    let batch = st.rest.split_off(at);
    *next_id += 1;
    st.id = CHECK_ID_BASE + *next_id;
    st.asked = batch.iter().map(|(_, s)| s.clone()).collect();
    st.deadline = tokio::time::Instant::now() + resync_timeout(shared);
    let bytes = missing_request(st.id, &batch);
    matches!(link.tx.send_to(&bytes, focus), Ok(n) if n == bytes.len())
}

fn begin_check(link: &Link, focus: &Path, shared: &Shared, next_id: &mut u64) -> Option<Check> {
    let rest = shared.switch.lock().registry.sessions();
    let mut st = Check {
        id: 0,
        asked: Default::default(),
        rest,
        deadline: tokio::time::Instant::now(),
        closed: 0,
    };
    ask_check(link, focus, shared, &mut st, next_id).then_some(st)
}

/// The focus link: sends the switch's questions and feeds the answers back to it, and rebuilds the
/// registry when asked (`resyncs`).
pub async fn run(
    mut asks: mpsc::UnboundedReceiver<NicknameAsk>,
    mut resyncs: mpsc::UnboundedReceiver<()>,
    focus: PathBuf,
    reply: PathBuf,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut resyncs_open = true;
    let mut next_id = 0u64;
    loop {
        // Nothing is bound until there is something to ask (and again after a failed bind).
        let first = tokio::select! {
            a = asks.recv() => match a {
                Some(a) => Some(a),
                None => return,
            },
            r = resyncs.recv(), if resyncs_open => match r {
                Some(()) => None,
                None => { resyncs_open = false; continue; }
            },
        };
        let link = match bind(&reply) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path = %reply.display(), error = %e, "cannot bind the focus reply socket");
                if let Some(first) = first {
                    fail(
                        &shared,
                        first.id,
                        format!("cannot bind {}: {e}", reply.display()),
                    );
                }
                continue;
            }
        };
        tracing::info!(focus = %focus.display(), reply = %reply.display(), "focus link ready");
        let mut resync = match first {
            Some(first) => {
                send(&link, &focus, &shared, first);
                None
            }
            None => begin_resync(&link, &focus, &shared, &mut next_id),
        };
        let mut check: Option<Check> = None;
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = resync.as_ref().map(|r| r.deadline);
            let check_deadline = check.as_ref().map(|c| c.deadline);
            tokio::select! {
                _ = tick.tick() => if check.is_none() && resync.is_none() {
                    check = begin_check(&link, &focus, &shared, &mut next_id);
                },
                _ = tokio::time::sleep_until(check_deadline.unwrap_or_else(tokio::time::Instant::now)), if check_deadline.is_some() => {
                    tracing::debug!("the focus did not answer a convergence check; asked again later");
                    check = None;
                }
                ask = asks.recv() => match ask {
                    Some(a) => send(&link, &focus, &shared, a),
                    None => return,
                },
                r = resyncs.recv(), if resyncs_open => match r {
                    Some(()) => if resync.is_none() {
                        resync = begin_resync(&link, &focus, &shared, &mut next_id);
                    },
                    None => resyncs_open = false,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    tracing::warn!("the focus did not answer a resync request; registry not rebuilt");
                    resync = None;
                    end_resync(&shared);
                }
                got = link.rx.recv_from(&mut buf) => match got {
                    Ok((n, from)) => {
                        if !from_focus(&from, &focus) {
                            tracing::warn!(from = ?from, "datagram not from the focus; ignored");
                            continue;
                        }
                        let data = buf.get(..n).unwrap_or_default();
                        let v: Option<Value> = serde_json::from_slice(data).ok();
                        let id = v.as_ref().and_then(id_of);
                        if let (Some(v), Some(id)) = (&v, id) {
                            if id >= CHECK_ID_BASE {
                                match check.take() {
                                    Some(mut st) if st.id == id => {
                                        if let Some(missing) = parse_missing(v) {
                                            st.closed += close_missing(&shared, &st.asked, missing);
                                            if ask_check(&link, &focus, &shared, &mut st, &mut next_id) {
                                                check = Some(st);
                                            } else if st.closed > 0 {
                                                tracing::info!(closed = st.closed, "sessions the focus no longer has were closed");
                                            }
                                        } else {
                                            tracing::debug!(answer = %v, "convergence check refused by the focus");
                                        }
                                    }
                                    other => check = other,
                                }
                                continue;
                            }
                            if id >= RESYNC_ID_BASE {
                                match resync.take() {
                                    Some(st) if st.id == id => {
                                        resync = on_page(&link, &focus, &shared, st, v, &mut next_id);
                                    }
                                    other => {
                                        resync = other;
                                        tracing::debug!(id, "late resync answer; ignored");
                                    }
                                }
                                continue;
                            }
                        }
                        match v.as_ref().and_then(parse_reply_value) {
                            Some((id, outcome)) => shared
                                .switch
                                .lock()
                                .handle_focus_answer(Instant::now(), id, outcome),
                            None => tracing::warn!(
                                answer = %String::from_utf8_lossy(data.get(..data.len().min(200)).unwrap_or_default()),
                                "unusable answer from the focus; ignored"
                            ),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "focus reply socket error");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask() -> NicknameAsk {
        NicknameAsk {
            id: 7,
            conn: 1,
            transaction_id: "t1".into(),
            session: "abcdefghijklmnop".into(),
            conference: "sip:lounge@im.example.net".into(),
            nickname: "Ro\"bert".into(),
        }
    }

    #[test]
    fn request_is_one_json_rpc_object() {
        let v: Value = serde_json::from_slice(&request(&ask())).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["method"], "chat_alias.nickname");
        assert_eq!(
            v["params"],
            json!(["sip:lounge@im.example.net", "abcdefghijklmnop", "Ro\"bert"])
        );
        assert_eq!(v["id"], 7);
    }

    #[test]
    fn replies_as_jsonrpcs_writes_them() {
        assert_eq!(
            parse_reply(
                br#"{"jsonrpc":"2.0","result":{"code":200,"display_name":"Robert"},"id":7}"#
            ),
            Some((7, FocusOutcome::Named(Some("Robert".into()))))
        );
        assert_eq!(
            parse_reply(br#"{"jsonrpc":"2.0","result":{"code":200,"display_name":""},"id":8}"#),
            Some((8, FocusOutcome::Named(None)))
        );
        assert_eq!(
            parse_reply(
                br#"{"jsonrpc":"2.0","error":{"code":425,"message":"nickname in use"},"id":9}"#
            ),
            Some((
                9,
                FocusOutcome::Refused {
                    code: 425,
                    message: "nickname in use".into()
                }
            ))
        );
        // jsonrpcs's own faults: an unknown method is 500 "Method Not Found".
        assert!(matches!(
            parse_reply(
                br#"{"jsonrpc":"2.0","error":{"code":500,"message":"Method Not Found"},"id":10}"#
            ),
            Some((10, FocusOutcome::Refused { code: 500, .. }))
        ));
        assert!(matches!(
            parse_reply(
                br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Execution Error"},"id":11}"#
            ),
            Some((11, FocusOutcome::Failed(_)))
        ));
        // A big id printed with "%.0f", and a string id.
        assert_eq!(
            parse_reply(
                br#"{"jsonrpc":"2.0","result":{"code":200,"display_name":"x"},"id":4294967296}"#
            )
            .map(|r| r.0),
            Some(4294967296)
        );
        assert_eq!(
            parse_reply(br#"{"jsonrpc":"2.0","result":{"code":200,"display_name":"x"},"id":"12"}"#)
                .map(|r| r.0),
            Some(12)
        );
        assert!(matches!(
            parse_reply(br#"{"jsonrpc":"2.0","result":{"code":200},"id":13}"#),
            Some((13, FocusOutcome::Failed(_)))
        ));
        assert!(matches!(
            parse_reply(br#"{"jsonrpc":"2.0","result":{},"id":14}"#),
            Some((14, FocusOutcome::Failed(_)))
        ));
        assert_eq!(
            parse_reply(br#"{"jsonrpc":"2.0","result":{"code":200}}"#),
            None
        );
        assert_eq!(parse_reply(b"not json"), None);
    }

    /// The driver against a fake jsonrpcs socket: the question arrives as JSON-RPC from the
    /// relay's reply socket (a stale one replaced), a forged answer from another socket is
    /// ignored, the focus's answer renames, and an unreachable focus fails at once.
    #[tokio::test]
    async fn driver_asks_over_datagrams_and_feeds_answers_back() {
        use crate::metrics::Metrics;
        use crate::outbox::Outbox;
        use crate::registry::Participant;
        use crate::switch::{self, Switch};
        use chat_alias_proto::msrp::{
            encode, ByteRange, Continuation, Decoder, Limits, Method, RequestHead,
        };
        use parking_lot::Mutex;
        use std::sync::atomic::Ordering;
        use std::time::Duration;

        let dir = std::env::temp_dir().join(format!("relay-focus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let focus_path = dir.join("kamailio_rpc.sock");
        let reply = reply_path(&dir.join("relay.sock"));
        // A stale reply socket from an earlier run.
        drop(std::os::unix::net::UnixDatagram::bind(&reply).unwrap());
        let fake = UnixDatagram::bind(&focus_path).unwrap();
        let cfg = switch::Config {
            host: "127.0.0.1".into(),
            port: 2855,
            max_size: 1 << 20,
            bind_timeout: Duration::from_secs(5),
            chunk_timeout: Duration::from_secs(540),
            congestion_timeout: Duration::from_secs(30),
            queue_bytes: 1 << 20,
            nicknames: true,
            focus: true,
            focus_timeout: Duration::from_secs(5),
            max_connections: 4096,
            max_unbound: 256,
            max_unbound_per_address: 32,
            first_byte_timeout: Duration::from_secs(5),
        };
        let metrics = Metrics::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            switch: Mutex::new(Switch::new(cfg.clone(), switch::os_ids(), metrics.clone())),
            metrics: metrics.clone(),
            advertise_host: "127.0.0.1".into(),
            advertise_port: 2855,
            max_size: 1 << 20,
            queue_bytes: 1 << 20,
            max_queued_bytes: usize::MAX,
            focus: Some(tx),
            resync: None,
            resync_leaves: Default::default(),
            next_conn: Default::default(),
        });
        let (_resync_tx, resync_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            rx,
            resync_rx,
            focus_path.clone(),
            reply.clone(),
            shared.clone(),
        ));
        let sid = "0123456789abcdef0123".to_string();
        let peer = "msrp://127.0.0.1:40000/peer;tcp".to_string();
        shared
            .switch
            .lock()
            .join(Participant {
                session: sid.clone(),
                conference: "sip:lounge@im.example.net".into(),
                uri: "sip:anonymous@anonymous.invalid".into(),
                display_name: Some("bob".into()),
                anonymous: true,
                peer_path: vec![peer.clone()],
                accept_wrapped_types: vec![],
                chatroom: vec!["nickname".into()],
                private_messages_allowed: false,
            })
            .unwrap();
        let (outbox, _orx) = Outbox::new(1 << 20, 1 << 20, metrics.clone());
        shared.switch.lock().handle_open(Instant::now(), 1, outbox);
        let feed = |bytes: Vec<u8>| {
            let mut d = Decoder::new(Limits::default());
            d.feed(&bytes);
            let mut sw = shared.switch.lock();
            while let Ok(Some(ev)) = d.poll() {
                sw.handle_event(Instant::now(), 1, ev);
            }
            shared.dispatch(&mut sw);
        };
        let request = |tid: &str, method: Method, nick: Option<&str>| {
            let send = method == Method::Send;
            let mut h =
                RequestHead::new(tid, method, vec![cfg.session_uri(&sid)], vec![peer.clone()]);
            if send {
                h.message_id = Some(format!("m{tid}"));
                h.byte_range = Some(ByteRange {
                    start: 1,
                    end: Some(0),
                    total: Some(0),
                });
            }
            h.use_nickname = nick.map(str::to_string);
            let mut out = Vec::new();
            encode::request_head(&h, &mut out);
            encode::end_line(tid, Continuation::End, false, &mut out);
            out
        };
        feed(request("bind0001", Method::Send, None));
        assert_eq!(shared.switch.lock().session_of(1), Some(sid.as_str()));
        feed(request("nick0001", Method::Nickname, Some("Robert")));
        let mut buf = vec![0u8; 4096];
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), fake.recv_from(&mut buf))
            .await
            .expect("a question")
            .unwrap();
        assert_eq!(from.as_pathname(), Some(reply.as_path()));
        let q: Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(q["method"], METHOD);
        assert_eq!(
            q["params"],
            json!(["sip:lounge@im.example.net", sid, "Robert"])
        );
        let id = q["id"].as_u64().unwrap();
        // A forged answer from another socket is ignored.
        let other = UnixDatagram::bind(dir.join("other.sock")).unwrap();
        let forged = json!({"jsonrpc":"2.0","result":{"code":200,"display_name":"Evil"},"id":id});
        other
            .send_to(forged.to_string().as_bytes(), &reply)
            .await
            .unwrap();
        // jsonrpcs answers from its own socket to the sender's address.
        let answer = json!({"jsonrpc":"2.0","result":{"code":200,"display_name":"Robert"},"id":id});
        fake.send_to(answer.to_string().as_bytes(), &reply)
            .await
            .unwrap();
        let name = || {
            shared
                .switch
                .lock()
                .registry
                .get(&sid)
                .and_then(|p| p.display_name.clone())
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while name().as_deref() != Some("Robert") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(name().as_deref(), Some("Robert"));
        assert_eq!(shared.switch.lock().focus_pending(), 0);
        // The focus goes away: the question fails at once, not after the timeout.
        drop(fake);
        std::fs::remove_file(&focus_path).unwrap();
        feed(request("nick0002", Method::Nickname, Some("Bobby")));
        let deadline = Instant::now() + Duration::from_secs(2);
        while metrics.focus_failures.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(metrics.focus_failures.load(Ordering::Relaxed), 1);
        assert_eq!(shared.switch.lock().focus_pending(), 0);
        assert_eq!(name().as_deref(), Some("Robert"));
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A page of `chat_alias.sessions` as jsonrpcs writes it registers unknown sessions only:
    /// never one a live join registered, never one that left while the resync ran.
    #[test]
    fn resync_pages_register_unknown_sessions_only() {
        let v: Value = serde_json::from_slice(&sessions_request(RESYNC_ID_BASE + 1, 12)).unwrap();
        assert_eq!(v["method"], "chat_alias.sessions");
        assert_eq!(v["params"], json!([12, PAGE]));
        let rec = |sid: &str, name: &str| {
            json!({"conference":"sip:lounge@im.example.net","session":sid,
                   "uri":"sip:anonymous@anonymous.invalid","display_name":name,"anonymous":1,
                   "peer_path":"msrp://192.0.2.1:7654/abc;tcp",
                   "accept_wrapped_types":"text/plain message/cpim",
                   "chatroom":"nickname private-messages","private_messages_allowed":1})
        };
        let page = json!({"jsonrpc":"2.0","result":[
            rec("aaaaaaaaaaaaaaaa0001", "bob"), rec("aaaaaaaaaaaaaaaa0002", "x"),
            rec("aaaaaaaaaaaaaaaa0003", ""), {"session":"aaaaaaaaaaaaaaaa0004"}
        ],"id":RESYNC_ID_BASE + 1});
        let (ps, n) = parse_sessions(&page).unwrap();
        assert_eq!((ps.len(), n), (3, 4));
        assert_eq!(ps[0].accept_wrapped_types, ["text/plain", "message/cpim"]);
        assert_eq!(ps[0].chatroom, ["nickname", "private-messages"]);
        assert!(ps[0].anonymous && ps[0].private_messages_allowed);
        assert_eq!(ps[2].display_name, None);
        let shared = crate::test_support::shared(crate::test_support::config());
        let mut live = ps[1].clone();
        live.display_name = Some("live".into());
        shared.switch.lock().join(live).unwrap();
        *shared.resync_leaves.lock() = Some(["aaaaaaaaaaaaaaaa0003".to_string()].into());
        assert_eq!(apply_sessions(&shared, ps), 1);
        let sw = shared.switch.lock();
        assert_eq!(sw.registry.len(), 2);
        assert_eq!(
            sw.registry
                .get("aaaaaaaaaaaaaaaa0002")
                .unwrap()
                .display_name
                .as_deref(),
            Some("live")
        );
        assert!(sw.registry.get("aaaaaaaaaaaaaaaa0003").is_none());
        drop(sw);
        assert!(
            parse_sessions(&json!({"error":{"code":500,"message":"Method Not Found"},"id":1}))
                .is_err()
        );
        assert_eq!(parse_sessions(&json!({"result":[],"id":1})).unwrap().1, 0);
    }

    /// A `chat_alias.missing` answer closes the sessions of the batch asked that it names, and
    /// nothing else: not a session outside the batch (registered after the question), not one
    /// the answer does not name; an error answer closes nothing.
    #[test]
    fn missing_answers_close_only_what_was_asked() {
        let shared = crate::test_support::shared(crate::test_support::config());
        let p = |sid: &str| Participant {
            session: sid.into(),
            conference: "sip:lounge@im.example.net".into(),
            uri: format!("sip:{sid}@anonymous.invalid"),
            display_name: None,
            anonymous: true,
            peer_path: vec!["msrp://192.0.2.1:7654/abc;tcp".into()],
            accept_wrapped_types: vec![],
            chatroom: vec![],
            private_messages_allowed: false,
        };
        for sid in [
            "aaaaaaaaaaaaaaaa0001",
            "aaaaaaaaaaaaaaaa0002",
            "aaaaaaaaaaaaaaaa0003",
        ] {
            shared.switch.lock().join(p(sid)).unwrap();
        }
        let batch = shared.switch.lock().registry.sessions();
        assert_eq!(batch.len(), 3);
        let q: Value =
            serde_json::from_slice(&missing_request(CHECK_ID_BASE + 1, &batch[..2])).unwrap();
        assert_eq!(q["method"], "chat_alias.missing");
        assert_eq!(
            q["params"],
            json!([
                ["sip:lounge@im.example.net", "aaaaaaaaaaaaaaaa0001"],
                ["sip:lounge@im.example.net", "aaaaaaaaaaaaaaaa0002"]
            ])
        );
        let asked: std::collections::HashSet<String> =
            batch[..2].iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(
            parse_missing(&json!({"error":{"code":-32601,"message":"Method not found"},"id":1})),
            None
        );
        let answer = json!({"jsonrpc":"2.0","result":{"missing":[
            "aaaaaaaaaaaaaaaa0002", "aaaaaaaaaaaaaaaa0003", "aaaaaaaaaaaaaaaa0009"]},"id":1});
        let missing = parse_missing(&answer).unwrap();
        assert_eq!(close_missing(&shared, &asked, missing), 1);
        let sw = shared.switch.lock();
        assert!(sw.registry.get("aaaaaaaaaaaaaaaa0001").is_some());
        assert!(sw.registry.get("aaaaaaaaaaaaaaaa0002").is_none());
        // Not part of the batch asked: this answer cannot judge it.
        assert!(sw.registry.get("aaaaaaaaaaaaaaaa0003").is_some());
    }

    #[test]
    fn reply_path_is_next_to_the_control_socket() {
        assert_eq!(
            reply_path(Path::new("/run/chat-alias/relay.sock")),
            PathBuf::from("/run/chat-alias/relay.sock.rpc")
        );
    }
}
