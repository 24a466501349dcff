//! The room logic of the MSRP switch (RFC 4975, RFC 6135, RFC 7701), sans-IO.
//!
//! [`Switch`] owns the participant registry, which connection is bound to which session, and the
//! messages in flight. It does no IO and reads no clock; its methods, in the four kinds of the
//! quinn-proto model:
//! - getters: [`Switch::gauges`], [`Switch::in_flight`], [`Switch::session_of`];
//! - inputs: [`Switch::handle_open`], [`Switch::handle_event`], [`Switch::handle_malformed`],
//!   [`Switch::handle_closed`], [`Switch::handle_timeout`], [`Switch::handle_focus_answer`] — each
//!   takes `now`;
//! - commands: [`Switch::join`], [`Switch::leave`], [`Switch::close_all`];
//! - outputs: [`Switch::poll_timeout`] (the next deadline; the driver sleeps until then) and
//!   [`Switch::poll_action`] (questions for the focus: the driver sends them and feeds the answers
//!   back through [`Switch::handle_focus_answer`]).
//!
//! NICKNAME (RFC 7701 §7) is decided by the focus, whose alias table is the one source of truth
//! for names in a conference: the switch checks what needs no focus, asks
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
use chat_alias_proto::msrp::{
    self, encode, ByteRange, Continuation, Event, Method, MsrpUri, ReportMode, RequestHead, Status,
};
use chat_alias_proto::{cpim, sip};
use precis_profiles::precis_core::profile::PrecisFastInvocation;
use precis_profiles::Nickname;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
/// Longest Use-Nickname value (octets) passed to the focus (RFC 7701 §7: 1023 octets).
pub const MAX_NICKNAME_OCTETS: usize = 1023;
/// NICKNAME requests of one connection that may wait for the focus at once; more get 500.
pub const MAX_FOCUS_ASKS_PER_CONNECTION: usize = 4;
/// How long a question that timed out is remembered: a late 200 still changes the name the relay
/// enforces, because the focus's table changed (the participant was already answered 500).
pub const LATE_ANSWER_WINDOW: Duration = Duration::from_secs(30);

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
    /// Whether a focus decides NICKNAME requests (`--focus-rpc`); without one they get 403.
    pub focus: bool,
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
    /// The relay URI of a session: the `a=path` the focus put in the SDP answer.
    pub fn session_uri(&self, session: &str) -> String {
        format!("msrp://{}:{}/{};tcp", self.host, self.port, session)
    }
}

/// Who may be answered for a transaction (RFC 4975 §7.1.2, §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// `Failure-Report: yes` (or absent): 200 and errors.
    All,
    /// `Failure-Report: partial`: errors only.
    ErrorsOnly,
    /// `Failure-Report: no`, and every REPORT: nothing at all.
    Never,
}

/// The connection's session, once bound.
#[derive(Debug, Clone)]
struct Binding {
    session: String,
    /// This session's relay URI, as a string (From-Path of everything sent to it) and parsed.
    relay_uri: String,
    relay: MsrpUri,
    /// The From-Path the peer bound with: the To-Path of everything the relay sends it.
    peer_path: Vec<String>,
}

/// The transaction being received on a connection.
#[derive(Debug)]
struct Rx {
    tid: String,
    reply: Reply,
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

type MsgKey = (ConnId, String);

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
struct Copy {
    conn: ConnId,
    session: String,
    message_id: String,
    to_path: Vec<String>,
    from_path: String,
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
    copies: Vec<Copy>,
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
    sending: HashSet<String>,
    /// Messages that hold a copy for this connection (some copies may have stopped since).
    receiving: HashSet<MsgKey>,
    /// Message-IDs of this connection's messages that ended, newest last, at most
    /// [`MAX_ENDED_REMEMBERED`]: a SEND naming one is refused.
    ended: std::collections::VecDeque<Box<str>>,
}

/// Identifies a question to the focus (the JSON-RPC `id`).
pub type AskId = u64;

/// Something the driver must do for the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the focus to decide a NICKNAME; feed its answer to [`Switch::handle_focus_answer`].
    AskFocus(NicknameAsk),
}

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

/// What the focus said about a [`NicknameAsk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FocusOutcome {
    /// Accepted: the display name the focus recorded for the session (None: no display name).
    Named(Option<String>),
    /// Refused with this code (403 not allowed, 424 invalid, 425 in use, 404 unknown session…).
    Refused { code: u16, message: String },
    /// No usable answer: the focus is unreachable, the request could not be sent, or the answer
    /// made no sense.
    Failed(String),
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
    reply: Reply,
    to: String,
    from: String,
}

/// Randomness for transaction and message ids (seedable in tests).
pub type Ids = Box<dyn FnMut() -> [u8; 12] + Send>;

pub fn os_ids() -> Ids {
    Box::new(|| {
        let mut b = [0u8; 12];
        // A failing OS RNG is not recoverable; ids must stay unguessable, so refuse to go on.
        if getrandom::fill(&mut b).is_err() {
            std::process::abort();
        }
        b
    })
}

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

    /// Open connections that have bound no session yet. (Every bound session has exactly one
    /// connection, and a connection binds at most one session.)
    pub fn unbound(&self) -> usize {
        self.conns.len().saturating_sub(self.bound.len())
    }

    /// Open connections from `peer` that have bound no session yet.
    pub fn unbound_from(&self, peer: IpAddr) -> usize {
        self.unbound_by_addr.get(&peer).map_or(0, BTreeSet::len)
    }

    /// Makes room for one more connection from `peer` ([`Switch::handle_open_from`]).
    ///
    /// A connection that has bound nothing proves nothing, so a crowd of them must not lock
    /// participants out: when a cap is reached ([`Config::max_connections`],
    /// [`Config::max_unbound_per_address`] for `peer`, [`Config::max_unbound`]), the oldest
    /// unbound connection in its scope is closed to make room — one that has sent nothing before
    /// one that has started to speak. A participant binds within a round trip of connecting, so
    /// a flood has to open a cap's worth of connections in that time to push it out. Refused
    /// only when nothing can be evicted (every connection bound, or a cap of 0).
    pub fn admit(&mut self, peer: IpAddr) -> Result<(), ConnLimit> {
        if self.conns.len() >= self.cfg.max_connections
            && !self.evict_unbound(None, Eviction::MaxConnections)
        {
            return Err(ConnLimit::Connections);
        }
        if self.unbound_from(peer) >= self.cfg.max_unbound_per_address
            && !self.evict_unbound(Some(peer), Eviction::PerAddress)
        {
            return Err(ConnLimit::PerAddress);
        }
        if self.unbound() >= self.cfg.max_unbound && !self.evict_unbound(None, Eviction::MaxUnbound)
        {
            return Err(ConnLimit::Unbound);
        }
        Ok(())
    }

    /// Closes the oldest unbound connection (of `peer`, or of all), preferring one that has sent
    /// no byte. False when there is none.
    fn evict_unbound(&mut self, peer: Option<IpAddr>, why: Eviction) -> bool {
        let set = match peer {
            Some(p) => self.unbound_by_addr.get(&p),
            None => Some(&self.unbound_age),
        };
        let Some(set) = set else {
            return false;
        };
        let silent = set
            .iter()
            .find(|(_, id)| self.conns.get(id).is_some_and(|c| !c.spoke));
        let Some(&(_, victim)) = silent.or_else(|| set.iter().next()) else {
            return false;
        };
        Metrics::add(self.metrics.evicted(why), 1);
        tracing::debug!(
            conn = victim,
            reason = why.label(),
            "unbound connection evicted"
        );
        self.drop_conn(victim, Some(CloseReason::Evicted));
        true
    }

    /// Takes a connection out of the unbound indexes (it bound, or it is gone).
    fn unindex_unbound(&mut self, conn: ConnId, opened: Instant, peer: IpAddr) {
        self.unbound_age.remove(&(opened, conn));
        if let Some(set) = self.unbound_by_addr.get_mut(&peer) {
            set.remove(&(opened, conn));
            if set.is_empty() {
                self.unbound_by_addr.remove(&peer);
            }
        }
    }

    // ---- commands ----

    /// Registers (or refreshes) a participant (control `join`), as of the current time.
    pub fn join(&mut self, p: Participant) -> Result<(), String> {
        self.join_at(Instant::now(), p)
    }

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
        let p = self.registry.leave(session)?;
        self.liveness.forget(session);
        if let Some(conn) = self.bound.get(session).copied() {
            tracing::info!(
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

    /// A connection was accepted (from an address not worth tracking: tests, the unspecified
    /// address).
    pub fn handle_open(&mut self, now: Instant, conn: ConnId, outlet: O) {
        self.handle_open_from(
            now,
            conn,
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            outlet,
        )
    }

    /// A connection from `peer` was accepted (after [`Switch::admit`] made room for it).
    pub fn handle_open_from(&mut self, now: Instant, conn: ConnId, peer: IpAddr, outlet: O) {
        if let Some(old) = self.conns.get(&conn) {
            // A reused id (never in the driver): forget the old connection's place first.
            let (opened, peer) = (old.opened, old.peer);
            self.unindex_unbound(conn, opened, peer);
        }
        self.unbound_age.insert((now, conn));
        self.unbound_by_addr
            .entry(peer)
            .or_default()
            .insert((now, conn));
        self.conns.insert(
            conn,
            Conn {
                outlet,
                opened: now,
                peer,
                spoke: false,
                binding: None,
                rx: None,
                congested_since: None,
                sending: HashSet::new(),
                receiving: HashSet::new(),
                ended: std::collections::VecDeque::new(),
            },
        );
    }

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

    /// A malformed message whose framing is intact: 400 when it may be answered and the
    /// connection is bound (an unbound connection's paths are unknown).
    pub fn handle_malformed(&mut self, conn: ConnId, tid: Option<&str>, reason: &str) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        tracing::info!(conn, reason, "malformed MSRP request");
        // Whatever was being received for it is dropped.
        if let Some(rx) = c.rx.take() {
            if let RxWhat::Chunk { key, .. } = rx.what {
                self.end_message_abnormally(&key, DropReason::Refused);
            }
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        self.metrics.refusal(400);
        if let (Some(tid), Some(b)) = (tid, &c.binding) {
            if let Some(to) = b.peer_path.first() {
                let mut out = Vec::new();
                encode::response(
                    tid,
                    400,
                    Some(msrp::status_comment(400)),
                    to,
                    &b.relay_uri,
                    &mut out,
                );
                c.outlet.push(out, FrameClass::Control);
            }
        }
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
        conns.chain(msgs).chain(asked).min()
    }

    /// The next thing the driver must do (ask the focus), if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Questions to the focus not answered yet (neither by the focus nor by the timeout).
    pub fn focus_pending(&self) -> usize {
        self.asked.values().filter(|a| a.answer.is_some()).count()
    }

    /// The focus's answer to question `id` (or the driver's verdict that none will come).
    ///
    /// A 200 changes the display name the relay enforces in CPIM From to the one the focus
    /// recorded — even when the NICKNAME can no longer be answered (connection gone, or already
    /// answered 500 on the timeout): the focus's table changed, and the relay must agree with it.
    /// 403, 424 and 425 are passed on; anything else (404 unknown session, other codes, no
    /// usable answer) is logged and answered 500. Answers for a connection that is gone are
    /// dropped, as are answers to unknown or forgotten questions.
    /// (`_now`: answers need no clock; the parameter keeps the inputs uniform.)
    pub fn handle_focus_answer(&mut self, _now: Instant, id: AskId, outcome: FocusOutcome) {
        let Some(a) = self.asked.remove(&id) else {
            tracing::info!(id, outcome = ?outcome, "focus answer to an unknown or expired question; ignored");
            return;
        };
        let code = match outcome {
            FocusOutcome::Named(name) => {
                if self.registry.set_display_name(&a.session, name.clone()) {
                    tracing::info!(session = %a.session, nickname = ?name, "nickname set by the focus");
                } else {
                    tracing::info!(session = %a.session, "nickname set by the focus for a session that left");
                }
                200
            }
            FocusOutcome::Refused { code, message } => match code {
                403 | 424 | 425 => code,
                _ => {
                    Metrics::add(&self.metrics.focus_failures, 1);
                    tracing::warn!(session = %a.session, code, message = %message, "the focus refused a NICKNAME with an unexpected code; answering 500");
                    500
                }
            },
            FocusOutcome::Failed(why) => {
                Metrics::add(&self.metrics.focus_failures, 1);
                tracing::warn!(session = %a.session, why = %why, "no usable answer from the focus; answering 500");
                500
            }
        };
        let Some(ans) = a.answer else {
            tracing::warn!(session = %a.session, code, "late focus answer (the NICKNAME was already answered 500)");
            return;
        };
        if !self.conns.contains_key(&a.conn) {
            tracing::debug!(conn = a.conn, session = %a.session, code, "focus answer for a connection that is gone; dropped");
            return;
        }
        if code != 200 {
            tracing::info!(conn = a.conn, tid = %ans.tid, code, "NICKNAME refused");
        }
        self.respond(a.conn, &ans.tid, ans.reply, &ans.to, &ans.from, code);
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
        let due: Vec<AskId> = self
            .asked
            .iter()
            .filter(|(_, a)| now >= a.deadline)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let Some(a) = self.asked.get_mut(&id) else {
                continue;
            };
            let Some(ans) = a.answer.take() else {
                self.asked.remove(&id);
                continue;
            };
            a.deadline = now + LATE_ANSWER_WINDOW;
            let (conn, session) = (a.conn, a.session.clone());
            Metrics::add(&self.metrics.focus_failures, 1);
            tracing::warn!(conn, session = %session, id, "the focus did not answer a NICKNAME in time; answering 500");
            if self.conns.contains_key(&conn) {
                self.respond(conn, &ans.tid, ans.reply, &ans.to, &ans.from, 500);
            }
        }
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
                tracing::info!(session = %b.session, conn, "session unbound");
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

    /// Records a message in flight (and in its sender's index).
    fn insert_message(&mut self, key: MsgKey, m: Message) {
        if let Some(c) = self.conns.get_mut(&key.0) {
            c.sending.insert(key.1.clone());
        }
        self.messages.insert(key, m);
    }

    /// Forgets a message, and takes it out of its sender's and its recipients' indexes.
    fn remove_message(&mut self, key: &MsgKey) -> Option<Message> {
        let m = self.messages.remove(key)?;
        if let Some(c) = self.conns.get_mut(&key.0) {
            c.sending.remove(&key.1);
            if c.ended.len() >= MAX_ENDED_REMEMBERED {
                c.ended.pop_front();
            }
            c.ended.push_back(key.1.as_str().into());
        }
        for copy in &m.copies {
            if let Some(c) = self.conns.get_mut(&copy.conn) {
                c.receiving.remove(key);
            }
        }
        Some(m)
    }

    /// Messages `conn` has in flight (its refused-message records included).
    fn sending_count(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.sending.len())
    }

    /// Stops a message: recipients that got part of it get a `#` frame; the record goes.
    fn end_message_abnormally(&mut self, key: &MsgKey, why: DropReason) {
        let Some(mut m) = self.remove_message(key) else {
            return;
        };
        if m.state == MsgState::Distributing {
            self.metrics.dropped(why);
        }
        abort_copies(&mut m, &self.conns, &mut self.ids);
    }

    fn respond(
        &mut self,
        conn: ConnId,
        rx_tid: &str,
        reply: Reply,
        to: &str,
        from: &str,
        code: u16,
    ) {
        if code != 200 {
            self.metrics.refusal(code);
        }
        let allowed = match reply {
            Reply::All => true,
            Reply::ErrorsOnly => code != 200,
            Reply::Never => false,
        };
        if !allowed {
            if code != 200 {
                tracing::info!(
                    conn,
                    tid = rx_tid,
                    code,
                    "refused (no response: the request asked for none)"
                );
            }
            return;
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let mut out = Vec::with_capacity(160 + to.len() + from.len());
        encode::response(
            rx_tid,
            code,
            Some(msrp::status_comment(code)),
            to,
            from,
            &mut out,
        );
        c.outlet.push(out, FrameClass::Control);
    }

    /// Answers the current transaction of `conn` with `code` (an error: the transaction is then
    /// done and its body discarded).
    fn refuse_current(&mut self, conn: ConnId, r: Refusal) {
        let Some(rx) = self.conns.get_mut(&conn).and_then(|c| c.rx.as_mut()) else {
            return;
        };
        let (tid, reply, to, from) = (
            rx.tid.clone(),
            rx.reply,
            rx.resp_to.clone(),
            rx.resp_from.clone(),
        );
        rx.what = RxWhat::Done;
        tracing::info!(conn, tid = %tid, code = r.code, why = r.why, "request refused");
        self.respond(conn, &tid, reply, &to, &from, r.code);
    }

    fn on_request(&mut self, now: Instant, conn: ConnId, head: RequestHead) {
        let reply = if head.method == Method::Report {
            Reply::Never
        } else if head.method == Method::Nickname {
            // RFC 7701 §7: NICKNAME knows no Failure-Report; it is always answered.
            Reply::All
        } else {
            match head.failure_report {
                None | Some(ReportMode::Yes) => Reply::All,
                Some(ReportMode::Partial) => Reply::ErrorsOnly,
                Some(ReportMode::No) => Reply::Never,
            }
        };
        let resp_to = head.from_path.first().cloned().unwrap_or_default();
        let resp_from = head.to_path.first().cloned().unwrap_or_default();
        let reply = if resp_to.is_empty() || resp_from.is_empty() {
            Reply::Never
        } else {
            reply
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rx = Some(Rx {
                tid: head.transaction_id.clone(),
                reply,
                resp_to,
                resp_from,
                what: RxWhat::Done,
            });
        }
        if let Err(r) = self.check_binding(conn, &head) {
            self.refuse_current(conn, r);
            return;
        }
        match head.method {
            Method::Send => self.on_send(now, conn, head),
            Method::Report => {
                // Recipients' REPORTs are never forwarded (RFC 7701 §6.3) and never answered.
                tracing::debug!(conn, tid = %head.transaction_id, "REPORT consumed");
            }
            Method::Nickname if self.cfg.nicknames => self.on_nickname(conn, &head),
            Method::Nickname | Method::Other(_) => {
                self.refuse_current(conn, refuse(501, "method not implemented"))
            }
        }
    }

    /// RFC 4975 §7.3 / RFC 6135: the first request binds the connection to the session its
    /// To-Path names; later requests must name that session.
    fn check_binding(&mut self, conn: ConnId, head: &RequestHead) -> Result<(), Refusal> {
        let c = self.conns.get(&conn).ok_or(refuse(481, "no connection"))?;
        let [to] = head.to_path.as_slice() else {
            return Err(refuse(481, "To-Path must name exactly one session"));
        };
        let to = msrp::parse_uri(to).map_err(|_| refuse(481, "bad To-Path"))?;
        if let Some(b) = &c.binding {
            return if to.matches(&b.relay) {
                Ok(())
            } else {
                Err(refuse(481, "To-Path is not this connection's session"))
            };
        }
        let session = to
            .session_id
            .clone()
            .ok_or(refuse(481, "To-Path without session id"))?;
        let p = self
            .registry
            .get(&session)
            .ok_or(refuse(481, "unknown session"))?;
        let relay_uri = self.cfg.session_uri(&session);
        let relay = msrp::parse_uri(&relay_uri).map_err(|_| refuse(481, "unknown session"))?;
        if !to.matches(&relay) {
            return Err(refuse(481, "To-Path is not a relay session URI"));
        }
        if let Some(&other) = self.bound.get(&session) {
            if other != conn {
                return Err(refuse(506, "session already bound to another connection"));
            }
        }
        let expected = p
            .peer_path
            .first()
            .and_then(|u| msrp::parse_uri(u).ok())
            .ok_or(refuse(403, "no peer path registered"))?;
        let from = head
            .from_path
            .first()
            .and_then(|u| msrp::parse_uri(u).ok())
            .ok_or(refuse(403, "bad From-Path"))?;
        if !from.matches(&expected) {
            return Err(refuse(403, "From-Path is not the path offered in SDP"));
        }
        tracing::info!(conn, session = %session, conference = %p.conference, "session bound");
        self.bound.insert(session.clone(), conn);
        if let Some((opened, peer)) = self.conns.get(&conn).map(|c| (c.opened, c.peer)) {
            self.unindex_unbound(conn, opened, peer);
        }
        self.liveness.bound(&session);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.binding = Some(Binding {
                session,
                relay_uri,
                relay,
                peer_path: head.from_path.clone(),
            });
        }
        Ok(())
    }

    fn on_send(&mut self, now: Instant, conn: ConnId, head: RequestHead) {
        let Some(message_id) = head.message_id.clone() else {
            return self.refuse_current(conn, refuse(400, "SEND without Message-ID"));
        };
        let range = head.byte_range.unwrap_or(ByteRange {
            start: 1,
            end: None,
            total: None,
        });
        let key: MsgKey = (conn, message_id.clone());
        let ended = !self.messages.contains_key(&key)
            && self
                .conns
                .get(&conn)
                .is_some_and(|c| c.ended.iter().any(|e| **e == *message_id));
        if ended {
            // A chunk after the message's last (`$`) or aborting (`#`) chunk: whatever it holds
            // was never checked as part of that message, and its recipients were told it ended.
            self.metrics.dropped(DropReason::Refused);
            return self.refuse_current(conn, refuse(403, "chunk of a message that ended"));
        }
        if let Some(MsgState::Refused(code)) = self.messages.get(&key).map(|m| m.state) {
            if let Some(m) = self.messages.get_mut(&key) {
                m.last_chunk = now;
            }
            self.refuse_current(conn, refuse(code, "later chunk of a refused message"));
            // Its end-line forgets the message.
            self.set_rx(conn, RxWhat::Chunk { key, next: 0 });
            return;
        }
        let continues = self.messages.contains_key(&key);
        let max_size = self.cfg.max_size;
        // The chunk's bytes are `start ..= start + len - 1`: with a body its first byte is
        // `start`; without one, `start` is just past the bytes sent so far (at most max-size + 1).
        let first_byte = if head.content_type.is_some() {
            range.start
        } else {
            range.start.saturating_sub(1)
        };
        let early = match &head.content_type {
            Some(ct) if !sip::parse_media_type(ct).is_ok_and(|m| m.is("message", "cpim")) => {
                Some(refuse(415, "SEND body is not message/cpim"))
            }
            _ if range.total.is_some_and(|t| t > max_size) => {
                Some(refuse(413, "message larger than max-size"))
            }
            _ if range.end.is_some_and(|e| e > max_size) => {
                Some(refuse(413, "chunk ends beyond max-size"))
            }
            _ if continues && first_byte > max_size => {
                Some(refuse(413, "chunk starts beyond max-size"))
            }
            _ => None,
        };
        if let Some(r) = early {
            if continues {
                self.refuse_message(conn, &key, r);
            } else {
                self.metrics.dropped(if r.code == 413 {
                    DropReason::MaxSize
                } else {
                    DropReason::Refused
                });
                self.refuse_current(conn, r);
                self.remember_refusal(now, conn, &head, r.code);
            }
            return;
        }
        if let Some(m) = self.messages.get_mut(&key) {
            m.last_chunk = now;
            m.success_report |= head.success_report == Some(true);
            // A later chunk continues exactly where the received bytes end, under the same total.
            // RFC 4975 §7.3.1 lets a sender resend or reorder chunks, but the relay checked the
            // CPIM headers in the bytes it has received and forwards them unchanged: a chunk
            // starting earlier could carry other headers over the checked ones (a recipient
            // reassembling by Byte-Range would show them), and one starting later, or a changed
            // total, would let recipients place bytes where the relay did not. So overlaps, gaps
            // and total changes end the message (`#`) instead.
            let expected = m.highest.saturating_add(1);
            if range.start < expected {
                return self.refuse_rewrite(now, conn, &key, "chunk overlaps bytes received");
            }
            if range.start > expected {
                return self.refuse_rewrite(now, conn, &key, "chunk leaves a gap");
            }
            match (m.total, range.total) {
                (Some(was), Some(t)) if was == t => {}
                (Some(_), _) => {
                    return self.refuse_rewrite(now, conn, &key, "chunk changes the total")
                }
                (None, Some(t)) if t < m.highest => {
                    // Bytes beyond the first declared total were received (and may have been
                    // sent on): the sender contradicts itself.
                    return self.refuse_message(
                        conn,
                        &key,
                        refuse(400, "declared total below the bytes already received"),
                    );
                }
                (None, t) => m.total = t,
            }
            self.set_rx(
                conn,
                RxWhat::Chunk {
                    key,
                    next: range.start,
                },
            );
            return;
        }
        if head.content_type.is_none() {
            // A bodiless SEND that continues no message: binding or keep-alive.
            self.set_rx(conn, RxWhat::Accept);
            return;
        }
        if range.start != 1 {
            return self.refuse_current(conn, refuse(400, "chunk of an unknown message"));
        }
        let sender_session = match self.session_of(conn) {
            Some(s) => s.to_string(),
            None => return self.refuse_current(conn, refuse(481, "not bound")),
        };
        if self.sending_count(conn) >= MAX_IN_FLIGHT_PER_CONNECTION {
            return self.refuse_current(conn, refuse(403, "too many messages in flight"));
        }
        Metrics::add(&self.metrics.messages_in, 1);
        self.insert_message(
            key.clone(),
            Message {
                sender_session,
                message_id,
                report_to: head.from_path.clone(),
                report_from: head.to_path.first().cloned().unwrap_or_default(),
                total: range.total,
                state: MsgState::AwaitingCpim,
                pending: Vec::new(),
                pending_start: 1,
                highest: 0,
                copies: Vec::new(),
                success_report: head.success_report == Some(true),
                last_chunk: now,
            },
        );
        self.set_rx(conn, RxWhat::Chunk { key, next: 1 });
    }

    /// A message refused at its first chunk is remembered so that its later chunks get the same
    /// answer (until its end or the chunk timeout).
    fn remember_refusal(&mut self, now: Instant, conn: ConnId, head: &RequestHead, code: u16) {
        let Some(mid) = head.message_id.clone() else {
            return;
        };
        if self.sending_count(conn) >= MAX_IN_FLIGHT_PER_CONNECTION {
            return;
        }
        let Some(session) = self.session_of(conn).map(str::to_string) else {
            return;
        };
        self.insert_message(
            (conn, mid.clone()),
            Message {
                sender_session: session,
                message_id: mid,
                report_to: Vec::new(),
                report_from: String::new(),
                total: None,
                state: MsgState::Refused(code),
                pending: Vec::new(),
                pending_start: 1,
                highest: 0,
                copies: Vec::new(),
                success_report: false,
                last_chunk: now,
            },
        );
        if let Some(rx) = self.conns.get_mut(&conn).and_then(|c| c.rx.as_mut()) {
            rx.what = RxWhat::Chunk {
                key: (conn, head.message_id.clone().unwrap_or_default()),
                next: 1,
            };
        }
    }

    fn set_rx(&mut self, conn: ConnId, what: RxWhat) {
        if let Some(rx) = self.conns.get_mut(&conn).and_then(|c| c.rx.as_mut()) {
            rx.what = what;
        }
    }

    /// Refuses the current transaction and stops its message: recipients that got part of it
    /// get `#`; later chunks get the same code.
    fn refuse_message(&mut self, conn: ConnId, key: &MsgKey, r: Refusal) {
        self.metrics.dropped(if r.code == 413 {
            DropReason::MaxSize
        } else {
            DropReason::Refused
        });
        if let Some(m) = self.messages.get_mut(key) {
            m.state = MsgState::Refused(r.code);
            m.pending = Vec::new();
            abort_copies(m, &self.conns, &mut self.ids);
        }
        self.refuse_current(conn, r);
        // Keep the record (state Refused) so that later chunks are refused alike; the current
        // transaction still belongs to it so that its end-line can clean up.
        if self.messages.contains_key(key) {
            self.set_rx(
                conn,
                RxWhat::Chunk {
                    key: key.clone(),
                    next: 0,
                },
            );
        }
    }

    /// Refuses (403) a chunk that would not continue its message where the received bytes end, and
    /// ends the message for its recipients: the bytes held back — checked with the message's
    /// first chunk — go out first, so every recipient of a routed message sees it begin and then
    /// end with `#`, never the refused chunk's bytes.
    fn refuse_rewrite(&mut self, now: Instant, conn: ConnId, key: &MsgKey, why: &'static str) {
        let mut congested = Vec::new();
        if let Some(m) = self.messages.get_mut(key) {
            if m.state == MsgState::Distributing {
                let n = m.pending.len();
                flush(
                    m,
                    n,
                    Continuation::More,
                    &self.conns,
                    &mut self.ids,
                    &self.metrics,
                    &mut congested,
                );
            }
        }
        self.mark_congested(now, congested);
        self.refuse_message(conn, key, refuse(403, why));
    }

    fn on_body(&mut self, now: Instant, conn: ConnId, bytes: Vec<u8>) {
        Metrics::add(&self.metrics.bytes_in, bytes.len() as u64);
        let Some(rx) = self.conns.get_mut(&conn).and_then(|c| c.rx.as_mut()) else {
            return;
        };
        let RxWhat::Chunk { key, next } = &mut rx.what else {
            return;
        };
        let key = key.clone();
        let offset = *next;
        let len = bytes.len() as u64;
        *next = next.saturating_add(len);
        let max_size = self.cfg.max_size;
        let Some(m) = self.messages.get_mut(&key) else {
            return;
        };
        m.last_chunk = now;
        if matches!(m.state, MsgState::Refused(_)) || bytes.is_empty() {
            return;
        }
        if offset != m.pending_start.saturating_add(m.pending.len() as u64) {
            // `on_send` admits only a chunk that starts right after the bytes received, so this
            // does not happen; kept so that no path can move where forwarded bytes start.
            return self.refuse_rewrite(now, conn, &key, "chunk does not continue the message");
        }
        // The offset of this piece's last byte (saturating: a value that large is refused).
        let end = offset.saturating_add(len - 1);
        if m.total.is_some_and(|t| end > t) {
            return self.refuse_message(
                conn,
                &key,
                refuse(400, "more bytes than the declared total"),
            );
        }
        if end > max_size {
            return self.refuse_message(conn, &key, refuse(413, "message larger than max-size"));
        }
        m.highest = m.highest.max(end);
        let mut congested = Vec::new();
        m.pending.extend_from_slice(&bytes);
        if m.state == MsgState::AwaitingCpim {
            match self.decide(conn, &key) {
                Decision::Wait => return,
                Decision::Refuse(r) => return self.refuse_message(conn, &key, r),
                Decision::Deliver(copies) => {
                    for copy in &copies {
                        if let Some(c) = self.conns.get_mut(&copy.conn) {
                            c.receiving.insert(key.clone());
                        }
                    }
                    if let Some(m) = self.messages.get_mut(&key) {
                        tracing::debug!(conn, message_id = %key.1, recipients = copies.len(), "message routed");
                        m.copies = copies;
                        m.state = MsgState::Distributing;
                    }
                }
            }
        }
        let Some(m) = self.messages.get_mut(&key) else {
            return self.mark_congested(now, congested);
        };
        while m.pending.len() > CHUNK {
            flush(
                m,
                CHUNK,
                Continuation::More,
                &self.conns,
                &mut self.ids,
                &self.metrics,
                &mut congested,
            );
        }
        self.mark_congested(now, congested);
    }

    /// Marks the connections whose data frames were refused.
    fn mark_congested(&mut self, now: Instant, congested: Vec<ConnId>) {
        for id in congested {
            if let Some(c) = self.conns.get_mut(&id) {
                if c.congested_since.is_none() {
                    c.congested_since = Some(now);
                    tracing::warn!(conn = id, queued = c.outlet.queued(), "recipient congested");
                }
            }
        }
    }

    fn on_end(&mut self, now: Instant, conn: ConnId, cont: Continuation, _body_len: u64) {
        let Some(rx) = self.conns.get_mut(&conn).and_then(|c| c.rx.take()) else {
            return;
        };
        let Rx {
            tid,
            reply,
            resp_to,
            resp_from,
            what,
        } = rx;
        let key = match what {
            RxWhat::Done => return,
            RxWhat::Accept => {
                return self.respond(conn, &tid, reply, &resp_to, &resp_from, 200);
            }
            RxWhat::AskFocus {
                session,
                conference,
                nickname,
            } => {
                if cont == Continuation::Abort {
                    // The sender cancelled its request: nothing is asked nor answered.
                    tracing::info!(conn, tid = %tid, "NICKNAME aborted by its sender");
                    return;
                }
                let id = self.next_ask;
                self.next_ask += 1;
                self.asked.insert(
                    id,
                    Asked {
                        conn,
                        session: session.clone(),
                        answer: Some(PendingAnswer {
                            tid: tid.clone(),
                            reply,
                            to: resp_to,
                            from: resp_from,
                        }),
                        deadline: now + self.cfg.focus_timeout,
                    },
                );
                Metrics::add(&self.metrics.focus_requests, 1);
                tracing::debug!(conn, tid = %tid, id, session = %session, "asking the focus for a nickname");
                self.actions.push_back(Action::AskFocus(NicknameAsk {
                    id,
                    conn,
                    transaction_id: tid,
                    session,
                    conference,
                    nickname,
                }));
                return;
            }
            RxWhat::Chunk { key, .. } => key,
        };
        let Some(m) = self.messages.get_mut(&key) else {
            // The message was stopped meanwhile (chunk timeout, sender gone).
            return self.respond(conn, &tid, reply, &resp_to, &resp_from, 408);
        };
        match (m.state, cont) {
            (MsgState::Refused(_), Continuation::More) => {}
            (MsgState::Refused(_), _) => {
                self.remove_message(&key);
            }
            (MsgState::AwaitingCpim, Continuation::More) => {
                self.respond(conn, &tid, reply, &resp_to, &resp_from, 200);
            }
            (MsgState::AwaitingCpim, Continuation::End) => {
                self.remove_message(&key);
                self.metrics.dropped(DropReason::Refused);
                tracing::info!(conn, tid = %tid, "message ended before its CPIM headers were complete");
                self.respond(conn, &tid, reply, &resp_to, &resp_from, 400);
            }
            (MsgState::AwaitingCpim, Continuation::Abort) => {
                self.remove_message(&key);
                self.respond(conn, &tid, reply, &resp_to, &resp_from, 200);
            }
            (MsgState::Distributing, Continuation::More) => {
                self.respond(conn, &tid, reply, &resp_to, &resp_from, 200);
            }
            (MsgState::Distributing, fin) => {
                let n = m.pending.len();
                let mut congested = Vec::new();
                flush(
                    m,
                    n,
                    fin,
                    &self.conns,
                    &mut self.ids,
                    &self.metrics,
                    &mut congested,
                );
                let m = self.remove_message(&key);
                self.mark_congested(now, congested);
                self.respond(conn, &tid, reply, &resp_to, &resp_from, 200);
                if let (Some(m), Continuation::End) = (m, fin) {
                    if m.success_report {
                        self.success_report(conn, &m);
                    }
                }
            }
        }
    }

    /// RFC 4975 §7.1.2: a REPORT with `Status: 000 200 OK` covering the whole message.
    fn success_report(&mut self, conn: ConnId, m: &Message) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if m.report_to.is_empty() || m.report_from.is_empty() {
            return;
        }
        let tid = encode::new_transaction_id(&(self.ids)());
        let mut head = RequestHead::new(
            tid.clone(),
            Method::Report,
            m.report_to.clone(),
            vec![m.report_from.clone()],
        );
        head.message_id = Some(m.message_id.clone());
        let n = m.total.unwrap_or(m.highest).max(m.highest);
        head.byte_range = Some(ByteRange {
            start: 1,
            end: Some(n),
            total: Some(n),
        });
        head.status = Some(Status {
            namespace: 0,
            code: 200,
            comment: Some("OK".into()),
        });
        let mut out = Vec::new();
        encode::request_head(&head, &mut out);
        encode::end_line(&tid, Continuation::End, false, &mut out);
        c.outlet.push(out, FrameClass::Control);
    }

    /// Decides where a message goes once its CPIM headers are in (RFC 7701 §6).
    fn decide(&self, conn: ConnId, key: &MsgKey) -> Decision {
        let Some(m) = self.messages.get(key) else {
            return Decision::Refuse(refuse(481, "message gone"));
        };
        let buf = &m.pending;
        // CRLF only (RFC 3862 §3.1): the relay forwards these bytes unchanged, so it must end
        // lines, and the header block, where every recipient does; a recipient that took a bare
        // LF for a line end, or did not, could otherwise read a From the relay never checked.
        let h = match cpim::parse_headers_with(buf, cpim::LineEnds::CrlfOnly) {
            Ok(h) => h,
            Err(cpim::CpimError::Incomplete) if buf.len() <= MAX_CPIM_PREFIX => {
                return Decision::Wait
            }
            Err(cpim::CpimError::BareLf) => {
                return Decision::Refuse(refuse(400, "bare LF in CPIM headers"))
            }
            Err(_) => return Decision::Refuse(refuse(400, "malformed CPIM headers")),
        };
        let inner = buf.get(h.header_len..).unwrap_or_default();
        let inner_ct = match cpim::parse_encapsulated_with(inner, cpim::LineEnds::CrlfOnly) {
            Ok((ct, _)) => ct,
            Err(cpim::CpimError::Incomplete) if inner.len() <= MAX_CPIM_PREFIX => {
                return Decision::Wait
            }
            Err(cpim::CpimError::BareLf) => {
                return Decision::Refuse(refuse(400, "bare LF in encapsulated MIME headers"))
            }
            Err(_) => return Decision::Refuse(refuse(400, "malformed encapsulated MIME headers")),
        };
        let Ok(inner_ct) = sip::parse_media_type(inner_ct) else {
            return Decision::Refuse(refuse(400, "bad encapsulated Content-Type"));
        };
        let Some(sender) = self.registry.get(&m.sender_session) else {
            return Decision::Refuse(refuse(481, "sender no longer registered"));
        };
        let (route, private) = match route(&self.registry, sender, &h, &inner_ct) {
            Ok(r) => r,
            Err(r) => return Decision::Refuse(r),
        };
        if private {
            // A private message to a participant who is registered but has no connection now
            // cannot be delivered: say so rather than answer 200 and drop it.
            let reachable = route.iter().all(|p| {
                self.bound
                    .get(&p.session)
                    .and_then(|c| self.conns.get(c))
                    .is_some_and(|c| c.binding.is_some())
            });
            if !reachable {
                return Decision::Refuse(refuse(404, "recipient not connected"));
            }
        }
        let mut copies = Vec::new();
        for p in route {
            let Some(&rconn) = self.bound.get(&p.session) else {
                continue;
            };
            if rconn == conn {
                continue;
            }
            let Some(b) = self.conns.get(&rconn).and_then(|c| c.binding.as_ref()) else {
                continue;
            };
            copies.push(Copy {
                conn: rconn,
                session: p.session.clone(),
                message_id: String::new(),
                // RFC 4975 §7.1: the To-Path towards a peer is the From-Path it sent, in the
                // order received (first URI = next hop). The brief said "reversed if several";
                // not reversing is what RFC 4975's path rules give, so we follow the RFC.
                to_path: b.peer_path.clone(),
                from_path: b.relay_uri.clone(),
                sent_any: false,
                next: 1,
                live: true,
            });
        }
        Decision::Deliver(copies)
    }

    /// NICKNAME (RFC 7701 §7): what needs no focus is checked here (403 nicknames not
    /// negotiated or no focus, 424 missing, malformed or over-long Use-Nickname); the rest — the
    /// name's validity by the group's rules and whether it is free — is the focus's decision,
    /// asked at the request's end-line.
    fn on_nickname(&mut self, conn: ConnId, head: &RequestHead) {
        let Some(session) = self.session_of(conn).map(str::to_string) else {
            return self.refuse_current(conn, refuse(481, "not bound"));
        };
        let Some(p) = self.registry.get(&session) else {
            return self.refuse_current(conn, refuse(481, "not registered"));
        };
        let advertised = p
            .chatroom
            .iter()
            .any(|t| t.eq_ignore_ascii_case("nickname") || t.eq_ignore_ascii_case("nicknames"));
        if !advertised {
            return self.refuse_current(conn, refuse(403, "nicknames not negotiated"));
        }
        if !self.cfg.focus {
            return self.refuse_current(conn, refuse(403, "nicknames need the focus"));
        }
        let conference = p.conference.clone();
        let Some(nick) = head.use_nickname.clone() else {
            return self.refuse_current(conn, refuse(424, "missing or malformed Use-Nickname"));
        };
        if nick.len() > MAX_NICKNAME_OCTETS {
            return self.refuse_current(conn, refuse(424, "nickname over 1023 octets"));
        }
        if nick.chars().any(char::is_control) {
            return self.refuse_current(conn, refuse(424, "control character in nickname"));
        }
        let waiting = self
            .asked
            .values()
            .filter(|a| a.conn == conn && a.answer.is_some())
            .count();
        if waiting >= MAX_FOCUS_ASKS_PER_CONNECTION {
            return self.refuse_current(conn, refuse(500, "too many NICKNAME requests pending"));
        }
        self.set_rx(
            conn,
            RxWhat::AskFocus {
                session,
                conference,
                nickname: nick,
            },
        );
    }
}

enum Decision {
    Wait,
    Refuse(Refusal),
    Deliver(Vec<Copy>),
}

/// Whether `accept` (a=accept-wrapped-types) allows `t`: absent list or `*` → anything;
/// `type/*` → that type.
pub fn accepts(accept: &[String], t: &sip::MediaType) -> bool {
    if accept.is_empty() {
        return true;
    }
    accept.iter().any(|a| {
        let a = a.split(';').next().unwrap_or("").trim();
        if a == "*" || a == "*/*" {
            return true;
        }
        match a.split_once('/') {
            Some((ty, sub)) => {
                ty.eq_ignore_ascii_case(&t.type_)
                    && (sub == "*" || sub.eq_ignore_ascii_case(&t.subtype))
            }
            None => false,
        }
    })
}

/// Whether the display name of a CPIM From (`claimed`) is the sender's enforced name (`own`):
/// the RFC 8266 Nickname comparison (case, width, spaces, NFKC) and nothing more. Look-alikes
/// (`B0b`, Cyrillic `bоb`, bidi overrides) are *different* names here: the focus keeps them
/// apart when it assigns names, and the relay must not let one participant speak under
/// another's look-alike. A name PRECIS refuses compares equal only to itself, byte for byte.
pub fn same_display_name(claimed: &str, own: &str) -> bool {
    claimed == own || Nickname::compare(claimed, own).unwrap_or(false)
}

/// Routing of a message whose CPIM headers are in: checks the sender's CPIM From, then decides
/// between a regular message (every other participant that accepts the inner type) and a
/// private one (RFC 7701 §6.1, §6.2; checks in the RFC's order). Returns the recipients and
/// whether the message is private.
fn route<'a>(
    reg: &'a Registry,
    sender: &Participant,
    h: &cpim::CpimHeaders<'_>,
    inner: &sip::MediaType,
) -> Result<(Vec<&'a Participant>, bool), Refusal> {
    let from = h.from.as_ref().ok_or(refuse(403, "CPIM From missing"))?;
    let from_uri = sip::parse_uri(&from.uri).map_err(|_| refuse(403, "bad CPIM From URI"))?;
    let own =
        sip::parse_uri(&sender.uri).map_err(|_| refuse(403, "sender identity unparseable"))?;
    if !from_uri.equivalent(&own) {
        return Err(refuse(403, "CPIM From is not the sender's identity"));
    }
    if let Some(dn) = &from.display_name {
        let ok = sender
            .display_name
            .as_deref()
            .is_some_and(|own| same_display_name(dn, own));
        if !ok {
            return Err(refuse(403, "CPIM From display name is not the sender's"));
        }
    }
    let to = match h.to.as_slice() {
        [] => return Err(refuse(400, "CPIM To missing")),
        [to] => to,
        _ => return Err(refuse(403, "more than one CPIM To")),
    };
    let to_uri = sip::parse_uri(&to.uri).map_err(|_| refuse(404, "bad CPIM To URI"))?;
    let is_conference = sip::parse_uri(&sender.conference).is_ok_and(|c| c.equivalent(&to_uri));
    if is_conference {
        let others = reg
            .in_conference(&sender.conference)
            .into_iter()
            .filter(|p| p.session != sender.session && accepts(&p.accept_wrapped_types, inner))
            .collect();
        return Ok((others, false));
    }
    let target = reg
        .find_by_uri(&sender.conference, &to_uri)
        .ok_or(refuse(404, "no such participant"))?;
    // The URI alone may name someone else than the sender saw: `sip:anonymous@anonymous.invalid`
    // passes from one anonymous participant to the next, so a message addressed to a departed
    // "bob" would reach whoever holds the URI now. A display name in the To says whom the sender
    // means; it must be the holder's current name (RFC 8266 comparison), else nobody gets it.
    if let Some(dn) = to.display_name.as_deref().filter(|d| !d.is_empty()) {
        let same = target
            .display_name
            .as_deref()
            .is_some_and(|own| same_display_name(dn, own));
        if !same {
            return Err(refuse(404, "no participant of that name at that URI"));
        }
    }
    let advertised = target
        .chatroom
        .iter()
        .any(|t| t.eq_ignore_ascii_case("private-messages"));
    if !sender.private_messages_allowed || !target.private_messages_allowed || !advertised {
        return Err(refuse(428, "private messages not allowed"));
    }
    if !accepts(&target.accept_wrapped_types, inner) {
        return Err(refuse(415, "recipient does not accept this content type"));
    }
    Ok((vec![target], true))
}

/// Builds one SEND frame of a copy: its own head and end-line around the shared `body`.
fn data_frame(
    ids: &mut Ids,
    copy: &Copy,
    start: u64,
    body: Option<&Body>,
    total: Option<u64>,
    cont: Continuation,
) -> Frame {
    let tid = encode::new_transaction_id(&ids());
    let mut head = RequestHead::new(
        tid.clone(),
        Method::Send,
        copy.to_path.clone(),
        vec![copy.from_path.clone()],
    );
    head.message_id = Some(copy.message_id.clone());
    let body = body.filter(|b| !b.is_empty());
    let len = body.map_or(0, Body::len) as u64;
    // An empty frame (an abort, or an empty last piece) is `n-(n-1)/total`, like `1-0/0`.
    head.byte_range = Some(ByteRange {
        start,
        end: Some(start.saturating_add(len).saturating_sub(1)),
        total,
    });
    if body.is_some() {
        head.content_type = Some("message/cpim".into());
    }
    let mut out = Vec::with_capacity(256);
    encode::request_head(&head, &mut out);
    let mut tail = Vec::with_capacity(tid.len() + 12);
    encode::end_line(&tid, cont, body.is_some(), &mut tail);
    Frame {
        head: out,
        body: body.cloned(),
        tail,
    }
}

/// Sends the first `n` held bytes of a message to every live copy, with flag `cont`. The bytes
/// become one [`Body`] shared by every copy's frame.
fn flush<O: Outlet>(
    m: &mut Message,
    n: usize,
    cont: Continuation,
    conns: &HashMap<ConnId, Conn<O>>,
    ids: &mut Ids,
    metrics: &Metrics,
    congested: &mut Vec<ConnId>,
) {
    let n = n.min(m.pending.len());
    if n == 0 && cont == Continuation::More {
        return;
    }
    let start = m.pending_start;
    // Without a declared total, the last frame states it: every byte received (a retransmitted
    // piece may have moved `start` back; the total still covers what the copies were sent).
    let total = m.total.or(match cont {
        Continuation::End => Some(
            m.highest
                .max(start.saturating_add(n as u64).saturating_sub(1)),
        ),
        _ => None,
    });
    // Hand the held bytes over without copying them when they all go (the usual case at a
    // message's end); otherwise only the (shorter) remainder is copied.
    let rest = m.pending.split_off(n);
    let body = Body::new(std::mem::replace(&mut m.pending, rest));
    m.pending_start = m.pending_start.saturating_add(n as u64);
    for copy in m.copies.iter_mut().filter(|c| c.live) {
        let Some(c) = conns.get(&copy.conn) else {
            copy.live = false;
            continue;
        };
        if cont == Continuation::Abort && !copy.sent_any {
            // Nothing of it was sent: nothing to abort.
            copy.live = false;
            continue;
        }
        if copy.message_id.is_empty() {
            copy.message_id = encode::new_message_id(&ids());
        }
        let frame = data_frame(ids, copy, start, Some(&body), total, cont);
        match c.outlet.push_frame(frame, FrameClass::Data) {
            Pushed::Queued => {
                copy.sent_any = true;
                copy.next = start.saturating_add(n as u64);
                Metrics::add(&metrics.bytes_out, n as u64);
                if cont == Continuation::End {
                    Metrics::add(&metrics.messages_out, 1);
                }
            }
            Pushed::Dropped => {
                copy.live = false;
                congested.push(copy.conn);
                metrics.dropped(DropReason::Congestion);
                tracing::debug!(conn = copy.conn, session = %copy.session, "data frame dropped: recipient queue full");
                if copy.sent_any {
                    let f = data_frame(ids, copy, copy.next, None, total, Continuation::Abort);
                    c.outlet.push_frame(f, FrameClass::Control);
                }
            }
        }
    }
}

/// Sends `#` to every live copy that got part of the message, and stops them all.
fn abort_copies<O: Outlet>(m: &mut Message, conns: &HashMap<ConnId, Conn<O>>, ids: &mut Ids) {
    for copy in m.copies.iter_mut().filter(|c| c.live) {
        copy.live = false;
        if !copy.sent_any {
            continue;
        }
        if let Some(c) = conns.get(&copy.conn) {
            let f = data_frame(ids, copy, copy.next, None, m.total, Continuation::Abort);
            c.outlet.push_frame(f, FrameClass::Control);
        }
    }
}

#[cfg(test)]
mod tests;
