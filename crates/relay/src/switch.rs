//! The room logic of the MSRP switch (RFC 4975, RFC 6135, RFC 7701), sans-IO.
//!
//! [`Switch`] owns the participant registry, which connection is bound to which session, and the
//! messages in flight. It does no IO, reads no clock and draws no randomness of its own (ids come
//! from the injected [`Ids`]); its methods, in the four kinds of the quinn-proto model:
//! - getters: [`Switch::gauges`], [`Switch::in_flight`], [`Switch::session_of`];
//! - inputs: [`Switch::handle_open`], [`Switch::handle_event`], [`Switch::handle_malformed`],
//!   [`Switch::handle_closed`], [`Switch::handle_timeout`], [`Switch::handle_focus_reply`],
//!   [`Switch::handle_focus_unreachable`], [`Switch::handle_resync_request`] — each takes `now`;
//! - commands: [`Switch::join_at`], [`Switch::leave`], [`Switch::close_all`];
//! - outputs: [`Switch::poll_timeout`] (the next deadline; the driver sleeps until then) and
//!   [`Switch::poll_action`] (questions for the module's focus socket: the driver sends them and
//!   feeds the answers back through [`Switch::handle_focus_reply`]).
//!
//! This file holds the public types, the per-connection and per-message state, and the inputs
//! that dispatch to the parts in `switch/`:
//! - `admission.rs`: connection caps and eviction of unbound connections;
//! - `transaction.rs`: replies (the Failure-Report rule) and binding a connection to its session;
//! - `forward.rs`: chunks in, copies out, re-chunking, the end of a message, congestion;
//! - `routing.rs`: the policy deciding who gets a message and whether its CPIM From is allowed;
//! - `nickname.rs`: NICKNAME, decided by the module;
//! - `registry_sync.rs`: the registry resync and convergence check with the module, and where
//!   every answer of the focus socket comes in.
//!
//! "The focus" here is the Kamailio module (the conference focus of RFC 4353), reached through
//! its focus socket. NICKNAME (RFC 7701 §7) is decided there, since its alias table is the one
//! source of truth for names in a conference: the switch checks what needs no focus, asks
//! ([`Action::AskFocus`]), and answers the request when the focus does (or after
//! [`Config::focus_timeout`], with 500).
//!
//! Frames go out through each connection's [`Outlet`] as they are produced rather than being
//! returned as a list: whether a data frame fits the recipient's queue decides, at that moment,
//! whether the rest of the message still goes to that recipient (congestion), so the answer is
//! needed synchronously. Tests use an in-memory outlet.
//!
//! Messages in flight are indexed by connection: each `Conn` lists the messages it sends and
//! those it holds a copy of, so a SEND (the per-connection limit) and a connection drop touch only
//! their own messages, never every message in flight.
//!
//! Forwarding never buffers a whole message: each copy is re-chunked into frames of at most
//! [`CHUNK`] body bytes; the last piece is held back until the sender's end-line says whether it
//! ends (`$`) or aborts (`#`) the message.
//!
//! What reaches recipients is what was checked. Message bytes enter a message's buffer only in
//! `on_body`, in order from byte 1: a later chunk is admitted only if it starts exactly after the
//! bytes received and keeps the total (RFC 4975 §7.3.1 would allow resending and reordering; the
//! relay refuses both, 403, and ends the message with `#`), and a Message-ID that ended is not
//! taken again ([`MAX_ENDED_REMEMBERED`]). Nothing is forwarded before `decide` has checked the
//! CPIM From and To over those bytes, read CRLF-only so that the header block ends where every
//! recipient's does (RFC 3862 §3.1). `flush` is the one path that sends message bytes, always
//! from that buffer; the other frames the relay writes carry no sender bytes: responses, the
//! success REPORT to the sender (RFC 4975 §7.1.2), bodiless `#` aborts. REPORTs from participants
//! are consumed, never forwarded (RFC 7701 §6.3); NICKNAME only asks the focus. Each copy has its
//! own relay-chosen Message-ID, so a recipient cannot be made to splice two messages together.
use crate::frame::{Body, Frame};
use crate::metrics::{DropReason, Gauges, Metrics};
use crate::registry::{Participant, Registry};
use chat_alias_proto::control::focus_socket::{NicknameVerdict, Question};
use chat_alias_proto::msrp::{
    self, encode, ByteRange, Continuation, Event, Method, MsrpUri, RequestHead, Responses, Status,
};
use chat_alias_proto::{cpim, sip};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod admission;
mod forward;
mod nickname;
mod registry_sync;
mod routing;
mod transaction;

use routing::Decision;
#[cfg(test)]
use routing::{accepts, same_display_name};

/// Largest body of a frame the relay sends.
pub const CHUNK: usize = 64 * 1024;
/// Largest CPIM header block (and, separately, encapsulated MIME header block) the relay waits
/// for before it decides where a message goes.
pub const MAX_CPIM_PREFIX: usize = cpim::MAX_HEADER_BLOCK;
/// Messages one connection may have in flight at once (each holds up to ~2 chunks of memory).
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 16;
/// Message-IDs of ended messages each connection remembers (oldest forgotten first), so that a
/// chunk arriving after its message ended (`$` or `#`) is refused rather than taken for a new
/// message. A Message-ID is at most 32 characters (RFC 4975 §9 `ident`), so this costs at most
/// about 2 KiB per connection.
pub const MAX_ENDED_REMEMBERED: usize = 32;

pub type ConnId = u64;

/// Whether a frame may be dropped when the recipient's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    /// Message data: refused when it would take the queue over its limit.
    Data,
    /// Responses, REPORTs and aborts: bypass the limit.
    Control,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    Dropped,
}

/// Why a new connection is refused at accept ([`Switch::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConnLimit {
    /// `--max-connections` connections are open.
    Connections,
    /// `--max-unbound` connections have bound no session yet (and none could be evicted).
    Unbound,
    /// `--max-unbound-per-address` is 0.
    PerAddress,
}

/// Why an unbound connection was closed to make room for a new one ([`Switch::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    MaxConnections,
    MaxUnbound,
    PerAddress,
}

impl Eviction {
    pub fn label(self) -> &'static str {
        match self {
            Eviction::MaxConnections => "max_connections",
            Eviction::MaxUnbound => "max_unbound",
            Eviction::PerAddress => "max_unbound_per_address",
        }
    }
}

impl ConnLimit {
    pub fn label(self) -> &'static str {
        match self {
            ConnLimit::Connections => "max_connections",
            ConnLimit::Unbound => "max_unbound",
            ConnLimit::PerAddress => "max_unbound_per_address",
        }
    }
}

/// Why the switch closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The focus said the participant left.
    Left,
    /// Nothing bound within the bind timeout.
    BindTimeout,
    /// Not a byte within the first-byte timeout.
    FirstByteTimeout,
    /// Unbound, and closed to make room for a new connection.
    Evicted,
    /// The recipient stayed congested past the congestion timeout.
    Congested,
    /// The peer's control frames overflowed its queue.
    Overflow,
    /// MSRP framing was lost or the peer closed.
    Ended,
    /// The relay is shutting down.
    Shutdown,
}

/// A connection's outbox, as the switch sees it.
pub trait Outlet {
    /// Queues a frame whose body may be shared with other recipients' copies. A `Data` frame
    /// that does not fit (this connection's queue, or the relay-wide limit) is refused
    /// (`Dropped`).
    fn push_frame(&self, frame: Frame, class: FrameClass) -> Pushed;
    /// Queues a frame held in one buffer.
    fn push(&self, frame: Vec<u8>, class: FrameClass) -> Pushed {
        self.push_frame(Frame::whole(frame), class)
    }
    /// Asks the driver to close the connection.
    fn close(&self, why: CloseReason);
    /// Bytes queued and not yet written.
    fn queued(&self) -> usize;
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The relay's host as written in its MSRP URIs (IPv6 literals in brackets).
    pub host: String,
    pub port: u16,
    /// Largest message accepted (a=max-size).
    pub max_size: u64,
    pub bind_timeout: Duration,
    pub chunk_timeout: Duration,
    pub congestion_timeout: Duration,
    /// Each connection's queued-bytes limit for data frames.
    pub queue_bytes: usize,
    /// Whether NICKNAME requests are served (RFC 7701 §7); otherwise they get 501.
    pub nicknames: bool,
    /// Whether the module's focus socket is configured (`--focus`): it decides NICKNAME requests
    /// (without it they get 403), and the registry is kept in step with it.
    pub focus_socket: bool,
    /// How long the focus has to answer a NICKNAME question; then the request gets 500.
    pub focus_timeout: Duration,
    /// Open MSRP connections at most (`--max-connections`); more are refused at accept.
    pub max_connections: usize,
    /// Connections that have bound no session yet, at most (`--max-unbound`); the oldest is
    /// evicted to make room for a new one.
    pub max_unbound: usize,
    /// Unbound connections from one source address, at most (`--max-unbound-per-address`); the
    /// oldest of that address is evicted to make room for a new one.
    pub max_unbound_per_address: usize,
    /// A connection that sends no byte within this time is closed (`--first-byte-timeout`).
    pub first_byte_timeout: Duration,
}

impl Config {
    /// The command line's defaults, advertising a documentation address (RFC 5737): what unit
    /// tests start from.
    pub fn example() -> Config {
        Config {
            host: "192.0.2.10".into(),
            port: 2855,
            max_size: 1 << 24,
            bind_timeout: Duration::from_secs(5),
            chunk_timeout: Duration::from_secs(540),
            congestion_timeout: Duration::from_secs(30),
            queue_bytes: 1 << 22,
            nicknames: true,
            focus_socket: false,
            focus_timeout: Duration::from_secs(1),
            max_connections: 4096,
            max_unbound: 256,
            max_unbound_per_address: 32,
            first_byte_timeout: Duration::from_secs(3),
        }
    }
}

impl Config {
    /// The relay URI of a session: the `a=path` the focus put in the SDP answer.
    pub fn session_uri(&self, session: &str) -> String {
        format!("msrp://{}:{}/{};tcp", self.host, self.port, session)
    }
}

/// The connection's session, once bound.
#[derive(Debug, Clone)]
struct Binding {
    session: String,
    /// This session's relay URI, as a string (From-Path of everything sent to it) and parsed.
    /// Shared with every copy of a message the session receives (no copy of its own).
    relay_uri: Arc<str>,
    relay: MsrpUri,
    /// The From-Path the peer bound with: the To-Path of everything the relay sends it; shared
    /// like `relay_uri`.
    peer_path: Arc<[String]>,
}

/// The transaction being received on a connection.
#[derive(Debug)]
struct Rx {
    tid: String,
    reply: Responses,
    /// Response To-Path: the first URI of the request's From-Path.
    resp_to: String,
    /// Response From-Path: the URI of the request's To-Path that names the relay.
    resp_from: String,
    what: RxWhat,
}

#[derive(Debug)]
enum RxWhat {
    /// Answer 200 at the end-line (bodiless SEND, binding).
    Accept,
    /// A NICKNAME checked locally: the focus is asked at the end-line.
    AskFocus {
        session: String,
        conference: String,
        nickname: String,
    },
    /// Already answered (with an error) or never answered: the body is discarded.
    Done,
    /// A chunk of a message; `next` is the offset of its next body byte.
    Chunk { key: MsgKey, next: u64 },
}

/// A message being received: its sender's connection and Message-ID. The Message-ID is shared
/// (reference-counted) by the indexes that name the message — the sender's `sending`, each
/// recipient's `receiving` — so routing it to N recipients copies no string.
type MsgKey = (ConnId, Arc<str>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MsgState {
    /// The CPIM headers (and the encapsulated part's headers) are not all in yet.
    AwaitingCpim,
    /// Recipients chosen; chunks flow.
    Distributing,
    /// Refused with this code: later chunks get the same answer until the message ends.
    Refused(u16),
}

/// One recipient's copy of a message.
#[derive(Debug)]
struct Delivery {
    conn: ConnId,
    /// This copy's own Message-ID (24 hex digits, drawn when its first frame goes), kept inline
    /// rather than in a String of its own.
    message_id: Option<[u8; 24]>,
    to_path: Arc<[String]>,
    from_path: Arc<str>,
    /// Whether any frame of this copy was queued (an abort must then follow if it stops).
    sent_any: bool,
    /// Offset of the next byte this copy gets.
    next: u64,
    /// False once the copy stopped (congestion, recipient gone).
    live: bool,
}

#[derive(Debug)]
struct Message {
    sender_session: String,
    /// The sender's Message-ID.
    message_id: String,
    /// REPORT addressing: the sender's From-Path and the relay URI it sent to.
    report_to: Vec<String>,
    report_from: String,
    total: Option<u64>,
    state: MsgState,
    /// Received bytes not yet sent on, starting at offset `pending_start`.
    pending: Vec<u8>,
    pending_start: u64,
    /// Highest offset received.
    highest: u64,
    copies: Vec<Delivery>,
    success_report: bool,
    last_chunk: Instant,
}

struct Conn<O> {
    outlet: O,
    opened: Instant,
    /// The source address (the per-address cap on unbound connections).
    peer: IpAddr,
    /// Whether any byte arrived (the first-byte timeout).
    spoke: bool,
    binding: Option<Binding>,
    rx: Option<Rx>,
    congested_since: Option<Instant>,
    /// Message-IDs of the records this connection is sending (in flight or refused): the index
    /// that spares a scan of every message in flight on each SEND and on a connection drop.
    sending: HashSet<Arc<str>>,
    /// Messages that hold a copy for this connection (some copies may have stopped since).
    receiving: HashSet<MsgKey>,
    /// Message-IDs of this connection's messages that ended, newest last, at most
    /// [`MAX_ENDED_REMEMBERED`]: a SEND naming one is refused.
    ended: std::collections::VecDeque<Box<str>>,
}

/// Identifies a question to the focus (the JSON-RPC `id`).
pub type AskId = u64;

/// Longest Use-Nickname value (octets) passed to the focus (RFC 7701 §7: 1023 octets).
pub const MAX_NICKNAME_OCTETS: usize = 1023;

/// NICKNAME requests of one connection that may wait for the focus at once; more get 500.
pub const MAX_FOCUS_ASKS_PER_CONNECTION: usize = 4;

/// How long a question that timed out is remembered: a late 200 still changes the name the relay
/// enforces, because the focus's table changed (the participant was already answered 500).
pub const LATE_ANSWER_WINDOW: Duration = Duration::from_secs(30);

/// A NICKNAME the focus must decide (`chat_alias.nickname`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicknameAsk {
    pub id: AskId,
    pub conn: ConnId,
    /// The NICKNAME's MSRP transaction id (for the logs).
    pub transaction_id: String,
    pub session: String,
    /// The conference URI the focus registered the session in.
    pub conference: String,
    /// The requested name; empty removes the display name.
    pub nickname: String,
}

impl NicknameAsk {
    /// The question as the focus socket reads it.
    pub fn question(&self) -> Question {
        Question::Nickname {
            conference: self.conference.clone(),
            session: self.session.clone(),
            nickname: self.nickname.clone(),
        }
    }
}

/// A question waiting for the focus.
#[derive(Debug)]
struct Asked {
    conn: ConnId,
    session: String,
    /// How to answer the NICKNAME; None once it was answered 500 on the timeout (the record then
    /// waits [`LATE_ANSWER_WINDOW`] for a late answer that changes the enforced name).
    answer: Option<PendingAnswer>,
    deadline: Instant,
}

#[derive(Debug)]
struct PendingAnswer {
    tid: String,
    reply: Responses,
    to: String,
    from: String,
}

/// Something the driver must do for the switch: send a question to the module's focus socket
/// and feed the answer to [`Switch::handle_focus_reply`] (or, when it cannot be sent, say so
/// through [`Switch::handle_focus_unreachable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the focus to decide a NICKNAME.
    AskFocus(NicknameAsk),
    /// Ask the focus for a resync page or a convergence batch.
    QueryFocus { id: AskId, question: Question },
}

/// Randomness for transaction and message ids, injected by the driver (the OS generator in the
/// relay, a seeded one in tests).
pub type Ids = Box<dyn FnMut() -> [u8; 12] + Send>;

pub struct Switch<O> {
    cfg: Config,
    pub registry: Registry,
    conns: HashMap<ConnId, Conn<O>>,
    /// Session → the connection it is bound to.
    bound: HashMap<String, ConnId>,
    /// Connections that have bound no session yet, oldest first; and the same by source address.
    unbound_age: BTreeSet<(Instant, ConnId)>,
    unbound_by_addr: HashMap<IpAddr, BTreeSet<(Instant, ConnId)>>,
    messages: HashMap<MsgKey, Message>,
    /// Questions to the focus, by id.
    asked: HashMap<AskId, Asked>,
    next_ask: AskId,
    actions: std::collections::VecDeque<Action>,
    /// The resync and convergence rounds with the module's alias table.
    sync: registry_sync::Sync,
    ids: Ids,
    metrics: Arc<Metrics>,
    /// Registered sessions without a bound connection, and since when (control `idle`).
    liveness: crate::liveness::Liveness,
}

/// What a refusal looks like on the wire and in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    code: u16,
    why: &'static str,
}

fn refuse(code: u16, why: &'static str) -> Refusal {
    Refusal { code, why }
}

impl<O: Outlet> Switch<O> {
    pub fn new(cfg: Config, ids: Ids, metrics: Arc<Metrics>) -> Self {
        Switch {
            cfg,
            registry: Registry::default(),
            conns: HashMap::new(),
            bound: HashMap::new(),
            unbound_age: BTreeSet::new(),
            unbound_by_addr: HashMap::new(),
            messages: HashMap::new(),
            asked: HashMap::new(),
            next_ask: 1,
            actions: std::collections::VecDeque::new(),
            sync: Default::default(),
            ids,
            metrics,
            liveness: Default::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    // ---- getters ----

    pub fn gauges(&self) -> Gauges {
        Gauges {
            connections: self.conns.len(),
            unbound: self.unbound(),
            participants: self.registry.len(),
            conferences: self.registry.conference_count(),
            bound_sessions: self.bound.len(),
            messages_in_flight: self.messages.len(),
            congested: self
                .conns
                .values()
                .filter(|c| c.congested_since.is_some())
                .count(),
        }
    }

    /// Messages whose end has not arrived.
    pub fn in_flight(&self) -> usize {
        self.messages.len()
    }

    /// The session a connection is bound to.
    pub fn session_of(&self, conn: ConnId) -> Option<&str> {
        self.conns
            .get(&conn)?
            .binding
            .as_ref()
            .map(|b| b.session.as_str())
    }

    /// Since when a connection is congested.
    pub fn congested_since(&self, conn: ConnId) -> Option<Instant> {
        self.conns.get(&conn)?.congested_since
    }

    // ---- commands ----

    /// Registers (or refreshes) a participant at `now`: a new session is watched until it binds
    /// (see [`Switch::idle`]).
    pub fn join_at(&mut self, now: Instant, p: Participant) -> Result<(), String> {
        let session = p.session.clone();
        let new = self.registry.get(&session).is_none();
        self.registry.join(p)?;
        if new && !self.bound.contains_key(&session) {
            self.liveness.registered(now, &session);
        }
        Ok(())
    }

    /// Registered sessions that never bound within `bind_timeout` of their join, or whose
    /// connection has been gone for `gone_timeout`: at most `max`, for the focus to end their
    /// dialogs (control `idle`). Changes nothing.
    pub fn idle(
        &mut self,
        now: Instant,
        bind_timeout: Duration,
        gone_timeout: Duration,
        max: usize,
    ) -> Vec<chat_alias_proto::control::IdleSession> {
        self.liveness
            .overdue(now, bind_timeout, gone_timeout, max)
            .into_iter()
            .map(
                |(session, reason, idle)| chat_alias_proto::control::IdleSession {
                    conference: self
                        .registry
                        .get(&session)
                        .map(|p| p.conference.clone())
                        .unwrap_or_default(),
                    session,
                    reason,
                    idle_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
                },
            )
            .collect()
    }

    /// Forgets a participant (control `leave`) and closes its connection.
    pub fn leave(&mut self, session: &str) -> Option<Participant> {
        // Even a session the registry does not hold yet: a resync page must not bring it back.
        self.sync.left(session);
        let p = self.registry.leave(session)?;
        self.liveness.forget(session);
        if let Some(conn) = self.bound.get(session).copied() {
            tracing::debug!(
                session,
                conn,
                "closing the MSRP connection of a participant who left"
            );
            self.drop_conn(conn, Some(CloseReason::Left));
        }
        Some(p)
    }

    /// Closes every connection (shutdown).
    pub fn close_all(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.drop_conn(id, Some(CloseReason::Shutdown));
        }
    }

    // ---- inputs ----

    /// The first bytes arrived on a connection: it is no longer silent (the first-byte timeout
    /// no longer applies, and it is evicted after silent ones).
    pub fn handle_bytes(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.spoke = true;
        }
    }

    /// The driver's connection ended (peer closed, read error, framing lost, or after the switch
    /// closed it). Idempotent.
    pub fn handle_closed(&mut self, conn: ConnId) {
        self.drop_conn(conn, Some(CloseReason::Ended));
    }

    /// One decoded event from a connection.
    pub fn handle_event(&mut self, now: Instant, conn: ConnId, ev: Event) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        match ev {
            Event::Request(head) => self.on_request(now, conn, head),
            Event::Body(bytes) => self.on_body(now, conn, bytes),
            Event::End {
                continuation,
                body_len,
                ..
            } => self.on_end(now, conn, continuation, body_len),
            Event::Response(r) => {
                // Responses to the frames the relay forwarded. Errors are only logged: a copy the
                // recipient refuses is its business, and RFC 7701 never forwards them.
                if r.status != 200 {
                    tracing::debug!(conn, status = r.status, tid = %r.transaction_id, "recipient refused a frame");
                }
            }
        }
    }

    /// The next deadline (bind, chunk or congestion timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conns = self.conns.values().filter_map(|c| {
            let bind = c.binding.is_none().then(|| {
                let bind = c.opened + self.cfg.bind_timeout;
                if c.spoke {
                    bind
                } else {
                    bind.min(c.opened + self.cfg.first_byte_timeout)
                }
            });
            let congestion = c.congested_since.map(|t| t + self.cfg.congestion_timeout);
            match (bind, congestion) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        });
        let msgs = self
            .messages
            .values()
            .map(|m| m.last_chunk + self.cfg.chunk_timeout);
        let asked = self.asked.values().map(|a| a.deadline);
        conns
            .chain(msgs)
            .chain(asked)
            .chain(self.sync.deadline())
            .min()
    }

    /// The next thing the driver must do (ask the focus), if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Runs the timers due at `now`: unbound connections past the bind timeout are closed,
    /// congested recipients that drained are cleared and those congested too long are closed,
    /// stalled messages are aborted.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.liveness.stamp(now);
        let mut close = Vec::new();
        for (&id, c) in self.conns.iter_mut() {
            if c.binding.is_none() && now >= c.opened + self.cfg.bind_timeout {
                close.push((id, CloseReason::BindTimeout));
                continue;
            }
            if c.binding.is_none() && !c.spoke && now >= c.opened + self.cfg.first_byte_timeout {
                close.push((id, CloseReason::FirstByteTimeout));
                continue;
            }
            if let Some(since) = c.congested_since {
                if c.outlet.queued() <= self.cfg.queue_bytes / 2 {
                    tracing::info!(conn = id, "recipient no longer congested");
                    c.congested_since = None;
                } else if now >= since + self.cfg.congestion_timeout {
                    close.push((id, CloseReason::Congested));
                }
            }
        }
        for (id, why) in close {
            match why {
                CloseReason::Congested => {
                    Metrics::add(&self.metrics.congestion_disconnects, 1);
                    tracing::warn!(conn = id, session = ?self.session_of(id), "recipient congested too long; disconnecting");
                }
                CloseReason::FirstByteTimeout => {
                    Metrics::add(&self.metrics.first_byte_timeouts, 1);
                    tracing::debug!(conn = id, "no byte in time; closing");
                }
                _ => tracing::info!(conn = id, "no session bound in time; closing"),
            }
            self.drop_conn(id, Some(why));
        }
        let stalled: Vec<MsgKey> = self
            .messages
            .iter()
            .filter(|(_, m)| now >= m.last_chunk + self.cfg.chunk_timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stalled {
            tracing::info!(conn = key.0, message_id = %key.1, "message stalled; aborting");
            self.end_message_abnormally(&key, DropReason::ChunkTimeout);
        }
        self.nickname_timeouts_due(now);
        self.sync_timeout_due(now);
    }

    // ---- internals ----

    /// Forgets a connection: unbinds its session, aborts the messages it was sending, stops the
    /// copies it was receiving, and (with a reason) asks the driver to close it.
    fn drop_conn(&mut self, conn: ConnId, close: Option<CloseReason>) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(why) = close {
            c.outlet.close(why);
        }
        if c.binding.is_none() {
            self.unindex_unbound(conn, c.opened, c.peer);
        }
        if let Some(b) = &c.binding {
            if self.bound.get(&b.session) == Some(&conn) {
                self.bound.remove(&b.session);
                tracing::debug!(session = %b.session, conn, "session unbound");
                if self.registry.get(&b.session).is_some() {
                    self.liveness.unbound(&b.session);
                }
            }
        }
        for mid in c.sending {
            self.end_message_abnormally(&(conn, mid), DropReason::SenderGone);
        }
        for key in c.receiving {
            let Some(m) = self.messages.get_mut(&key) else {
                continue;
            };
            for copy in m.copies.iter_mut().filter(|c| c.conn == conn && c.live) {
                copy.live = false;
                self.metrics.dropped(DropReason::RecipientGone);
            }
        }
    }
}

#[cfg(test)]
mod tests;
