//! `switch::Switch` fed arbitrary frame sequences, the way the relay's connection driver feeds it:
//! each connection's bytes go through its own `msrp::Decoder` and every decoded event (or
//! malformed/framing error) is handed to the switch; connections open and close, the clock jumps,
//! the focus answers NICKNAME questions (or does not), participants leave and come back.
//!
//! Invariants checked after every step:
//! - nothing panics, and every frame the switch queues is one whole, valid MSRP message;
//! - the security property of RFC 7701 §6 (the switch checks CPIM From against the sender's
//!   assigned identity): for every message a recipient gets, the CPIM header block it can
//!   reassemble from the Byte-Ranges it received (later bytes overwriting earlier ones, and the
//!   other way round) names the sender's assigned URI, and a display name only if it is one the
//!   sender held;
//! - every body-carrying frame of one relayed Message-ID comes from one sender;
//! - bounded state: messages in flight ≤ open connections × MAX_IN_FLIGHT_PER_CONNECTION; focus
//!   questions waiting ≤ MAX_FOCUS_ASKS_PER_CONNECTION per connection (a question outlives its
//!   connection until the focus answers or `focus_timeout` passes);
//! - liveness (control `idle`): the sessions watched are exactly the registered ones without a
//!   bound connection, and an `idle` answer lists at most `max` registered sessions.
//!
//! Connections come from two source addresses (the per-address cap of unbound connections is
//! reached too) and may stay silent (first-byte timeout).
//!
//! Speed: everything that does not depend on the input (URIs, paths) is written once; frames are
//! checked once and dropped; display names are noted only when a focus answer or a join can
//! change them.
//!
//! The adapter to the switch's API is `Fake` (the outlet) and `Harness::dispatch`; the rest only
//! speaks MSRP bytes.
#![no_main]
use chat_alias_proto::control::focus_socket::NicknameVerdict;
use chat_alias_proto::msrp::{Decoder, Event, Limits, Method, MsrpError};
use chat_alias_proto::nickname::rfc8266_equal;
use chat_alias_proto::{cpim, sip};
use chat_alias_relay::frame::Frame;
use chat_alias_relay::metrics::Metrics;
use chat_alias_relay::registry::Participant;
use chat_alias_relay::switch::{
    Action, CloseReason, Config, ConnId, FrameClass, Ids, NicknameAsk, Outlet, Pushed, Switch,
    MAX_FOCUS_ASKS_PER_CONNECTION, MAX_IN_FLIGHT_PER_CONNECTION,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const LOUNGE: &str = "sip:lounge@im.example.net";
const QUIET: &str = "sip:quiet@im.example.net";
const SLOTS: usize = 4;
/// Reassembly keeps the first bytes of each message only: the CPIM header block is at most
/// `cpim::MAX_HEADER_BLOCK` (plus the encapsulated block behind it).
const KEEP: usize = 3 * cpim::MAX_HEADER_BLOCK;

/// (session id, conference, assigned URI, assigned display name, private messages allowed)
const PEOPLE: [(&str, &str, &str, Option<&str>, bool); 5] = [
    (
        "alicesession0000",
        LOUNGE,
        "sip:alice@example.com",
        Some("Alice"),
        true,
    ),
    (
        "bobsession000000",
        LOUNGE,
        "sip:bob@example.com",
        Some("Bob"),
        true,
    ),
    (
        "anonsession00000",
        LOUNGE,
        "sip:anonymous1@anonymous.invalid",
        None,
        false,
    ),
    (
        "carolsession0000",
        QUIET,
        "sip:carol@example.com",
        Some("Carol"),
        false,
    ),
    (
        "davesession00000",
        LOUNGE,
        "sip:dave@example.com",
        Some("B0b"),
        true,
    ),
];

fn peer_path(i: usize) -> &'static str {
    &texts().peer_paths[i]
}

fn session_uri(i: usize) -> &'static str {
    &texts().session_uris[i]
}

/// Each person's peer path and relay URI, written once (not per input).
struct Texts {
    peer_paths: Vec<String>,
    session_uris: Vec<String>,
}

fn texts() -> &'static Texts {
    static T: OnceLock<Texts> = OnceLock::new();
    T.get_or_init(|| Texts {
        peer_paths: (0..PEOPLE.len())
            .map(|i| format!("msrp://192.0.2.{}:40000/peer{i};tcp", 20 + i))
            .collect(),
        session_uris: PEOPLE.iter().map(|p| cfg().session_uri(p.0)).collect(),
    })
}

fn cfg() -> Config {
    Config {
        host: "127.0.0.1".into(),
        port: 2855,
        max_size: 4096,
        bind_timeout: Duration::from_secs(5),
        chunk_timeout: Duration::from_secs(30),
        congestion_timeout: Duration::from_secs(10),
        queue_bytes: 16 * 1024,
        nicknames: true,
        focus_socket: true,
        focus_timeout: Duration::from_secs(1),
        max_connections: 6,
        max_unbound: 3,
        max_unbound_per_address: 2,
        first_byte_timeout: Duration::from_secs(2),
    }
}

fn participant(i: usize) -> Participant {
    let (session, conference, uri, dn, private) = PEOPLE[i];
    Participant {
        session: session.into(),
        conference: conference.into(),
        uri: uri.into(),
        display_name: dn.map(str::to_string),
        anonymous: uri.contains("anonymous.invalid"),
        peer_path: vec![peer_path(i).to_string()],
        accept_wrapped_types: if i == 1 {
            vec!["text/plain".into()]
        } else {
            vec![]
        },
        chatroom: vec!["nickname".into(), "private-messages".into()],
        private_messages_allowed: private,
    }
}

// ---- the outlet ----

#[derive(Default)]
struct FakeState {
    /// Frames not checked yet: (frame, class, connection whose event was being handled when it
    /// was queued).
    frames: Vec<(Vec<u8>, FrameClass, Option<ConnId>)>,
    limit: Option<usize>,
    queued: usize,
    closed: Option<CloseReason>,
}

#[derive(Clone)]
struct Fake {
    state: Rc<RefCell<FakeState>>,
    actor: Rc<Cell<Option<ConnId>>>,
}

impl Outlet for Fake {
    fn push_frame(&self, frame: Frame, class: FrameClass) -> Pushed {
        let mut s = self.state.borrow_mut();
        if s.closed.is_some() {
            return Pushed::Dropped;
        }
        if class == FrameClass::Data {
            if let Some(limit) = s.limit {
                if s.queued + frame.len() > limit {
                    return Pushed::Dropped;
                }
            }
        }
        s.queued += frame.len();
        s.frames.push((frame.to_vec(), class, self.actor.get()));
        Pushed::Queued
    }
    fn close(&self, why: CloseReason) {
        let mut s = self.state.borrow_mut();
        if s.closed.is_none() {
            s.closed = Some(why);
        }
    }
    fn queued(&self) -> usize {
        self.state.borrow().queued
    }
}

// ---- the input ----

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        slot: u8,
    },
    /// A well-formed bodiless SEND from person `who`'s peer path to their relay URI.
    Bind {
        slot: u8,
        who: u8,
    },
    Request(Req),
    /// More body bytes of the slot's open request.
    Body {
        slot: u8,
        body: Body,
    },
    /// The end-line of the slot's open request.
    End {
        slot: u8,
        cont: Cont,
    },
    /// Raw bytes on a connection.
    Raw {
        slot: u8,
        bytes: Vec<u8>,
    },
    Close {
        slot: u8,
    },
    Advance {
        millis: u32,
    },
    Focus {
        pick: u8,
        outcome: Outcome,
    },
    Leave {
        who: u8,
    },
    Join {
        who: u8,
    },
    /// The driver wrote everything queued.
    Drain {
        slot: u8,
    },
    /// The slot's queue limit for data frames (0: none).
    Limit {
        slot: u8,
        bytes: u16,
    },
    /// The focus asks which sessions are idle (control `idle`).
    Idle {
        bind_ms: u16,
        gone_ms: u16,
        max: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Cont {
    More,
    End,
    Abort,
}

impl Cont {
    fn byte(self) -> u8 {
        match self {
            Cont::More => b'+',
            Cont::End => b'$',
            Cont::Abort => b'#',
        }
    }
}

#[derive(Arbitrary, Debug)]
enum MethodSel {
    Send,
    Report,
    Nickname(Option<Name>),
    Other,
}

#[derive(Arbitrary, Debug)]
struct Req {
    slot: u8,
    tid: u8,
    method: MethodSel,
    to: Path,
    from: Path,
    mid: Mid,
    range: Range,
    content_type: Option<Ct>,
    failure_report: Option<u8>,
    success_report: bool,
    /// `None`: the request stays open (Body/End ops continue it).
    whole: Option<(Body, Cont)>,
    /// Feed the bytes in pieces of this size (0: at once).
    piece: u8,
}

#[derive(Arbitrary, Debug)]
enum Path {
    /// The relay URI of person i's session.
    Relay(u8),
    /// Person i's peer path.
    Peer(u8),
    Both(u8, u8),
    Text(String),
}

#[derive(Arbitrary, Debug, Clone)]
enum Mid {
    Small(u8),
    Text(String),
    Absent,
}

#[derive(Arbitrary, Debug)]
enum Range {
    /// Continue where this slot's previous chunk of the same Message-ID ended.
    Next {
        closed: bool,
        total: Option<u16>,
    },
    Explicit {
        start: u16,
        end: Option<u16>,
        total: Option<u16>,
    },
    Wide {
        start: u64,
        end: Option<u64>,
        total: Option<u64>,
    },
    Absent,
}

#[derive(Arbitrary, Debug)]
enum Ct {
    Cpim,
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Name {
    Person(u8),
    /// Person i's name in another case, or padded with spaces.
    Variant(u8, u8),
    Text(String),
    Empty,
}

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    /// A CPIM message (RFC 3862) cut to `[skip .. skip + take]`.
    Cpim {
        from: Addr,
        to: To,
        extra: Option<(String, String)>,
        inner_ct: u8,
        content: Vec<u8>,
        skip: u16,
        take: Option<u16>,
    },
}

#[derive(Arbitrary, Debug)]
struct Addr {
    who: u8,
    name: Option<Name>,
    uri: Option<String>,
}

#[derive(Arbitrary, Debug)]
enum To {
    Conference(bool),
    Person(u8),
    Two(u8, u8),
    Text(String),
    Absent,
}

#[derive(Arbitrary, Debug)]
enum Outcome {
    Named(Option<Name>),
    Refused(u16),
    Failed,
}

// ---- rendering the input as MSRP ----

fn person(i: u8) -> usize {
    usize::from(i) % PEOPLE.len()
}

fn name_text(n: &Name) -> String {
    match n {
        Name::Person(i) => PEOPLE[person(*i)].3.unwrap_or("anonymous1").to_string(),
        Name::Variant(i, how) => {
            let base = PEOPLE[person(*i)].3.unwrap_or("anonymous1");
            match how % 4 {
                0 => base.to_uppercase(),
                1 => format!(" {base}  "),
                2 => base.replace('o', "\u{043e}"),
                _ => format!("\u{202e}{base}"),
            }
        }
        Name::Text(s) => s.clone(),
        Name::Empty => String::new(),
    }
}

fn path_text(p: &Path) -> String {
    match p {
        Path::Relay(i) => session_uri(person(*i)).to_string(),
        Path::Peer(i) => peer_path(person(*i)).to_string(),
        Path::Both(a, b) => format!("{} {}", session_uri(person(*a)), peer_path(person(*b))),
        Path::Text(s) => s.clone(),
    }
}

fn mid_text(m: &Mid) -> Option<String> {
    match m {
        Mid::Small(n) => Some(format!("m{}", n % 4)),
        Mid::Text(s) => Some(s.clone()),
        Mid::Absent => None,
    }
}

fn body_bytes(b: &Body) -> Vec<u8> {
    match b {
        Body::Raw(v) => v.clone(),
        Body::Cpim {
            from,
            to,
            extra,
            inner_ct,
            content,
            skip,
            take,
        } => {
            let uri = from
                .uri
                .clone()
                .unwrap_or_else(|| PEOPLE[person(from.who)].2.to_string());
            let mut s = String::from("From: ");
            if let Some(n) = &from.name {
                s.push_str(&sip::quote_display_name(&name_text(n)));
                s.push(' ');
            }
            s.push_str(&format!("<{uri}>\r\n"));
            let to_line = |u: &str| format!("To: <{u}>\r\n");
            match to {
                To::Conference(quiet) => s.push_str(&to_line(if *quiet { QUIET } else { LOUNGE })),
                To::Person(i) => s.push_str(&to_line(PEOPLE[person(*i)].2)),
                To::Two(a, b) => {
                    s.push_str(&to_line(PEOPLE[person(*a)].2));
                    s.push_str(&to_line(PEOPLE[person(*b)].2));
                }
                To::Text(t) => s.push_str(&format!("To: {t}\r\n")),
                To::Absent => {}
            }
            if let Some((n, v)) = extra {
                s.push_str(&format!("{n}: {v}\r\n"));
            }
            s.push_str("DateTime: 2026-12-03T10:00:00Z\r\n\r\n");
            s.push_str(match inner_ct % 3 {
                0 => "Content-Type: text/plain\r\n\r\n",
                1 => "Content-Type: application/octet-stream\r\n\r\n",
                _ => "Content-Type: text/plain\n\n",
            });
            let mut v = s.into_bytes();
            v.extend_from_slice(content);
            let skip = usize::from(*skip).min(v.len());
            let end = take.map_or(v.len(), |t| (skip + usize::from(t)).min(v.len()));
            v[skip..end].to_vec()
        }
    }
}

// ---- the harness ----

struct Open {
    conn: ConnId,
    out: Fake,
    decoder: Decoder,
    /// The open request: (transaction id, whether its body started).
    tx: Option<(String, bool)>,
}

/// What one recipient reassembled of one relayed message.
struct Reassembly {
    sender: ConnId,
    /// Later bytes overwrite earlier ones / earlier bytes stay.
    last_wins: Vec<Option<u8>>,
    first_wins: Vec<Option<u8>>,
}

struct Harness {
    sw: Switch<Fake>,
    now: Instant,
    next_conn: ConnId,
    slots: [Option<Open>; SLOTS],
    actor: Rc<Cell<Option<ConnId>>>,
    /// Connection → the session it bound (a binding never changes).
    bound: HashMap<ConnId, String>,
    /// Session → every display name it held.
    names: HashMap<String, HashSet<Option<String>>>,
    /// (recipient, relayed Message-ID) → what it reassembled.
    copies: HashMap<(ConnId, String), Reassembly>,
    /// Questions the focus has not answered yet, with when they were asked.
    asks: Vec<(NicknameAsk, Instant)>,
    /// Per (slot connection, Message-ID): where its next chunk starts.
    next_byte: HashMap<(ConnId, String), u64>,
}

impl Harness {
    fn new() -> Harness {
        let mut n: u64 = 0;
        let ids: Ids = Box::new(move || {
            n += 1;
            let mut b = [0u8; 12];
            b[4..].copy_from_slice(&n.to_be_bytes());
            b
        });
        let mut h = Harness {
            sw: Switch::new(cfg(), ids, Metrics::new()),
            now: Instant::now(),
            next_conn: 1,
            slots: Default::default(),
            actor: Rc::new(Cell::new(None)),
            bound: HashMap::new(),
            names: HashMap::new(),
            copies: HashMap::new(),
            asks: Vec::new(),
            next_byte: HashMap::new(),
        };
        for i in 0..PEOPLE.len() {
            let now = h.now;
            h.sw.join_at(now, participant(i))
                .expect("valid participant");
        }
        h.note_names();
        h
    }

    fn slot(&self, s: u8) -> usize {
        usize::from(s) % SLOTS
    }

    fn open(&mut self, slot: usize) {
        if let Some(o) = self.slots[slot].take() {
            self.sw.handle_closed(o.conn);
        }
        // Two source addresses, two slots each, so that the per-address cap is reached too.
        let peer = IpAddr::from([192, 0, 2, 1 + (slot / 2) as u8]);
        if self.sw.admit(peer).is_err() {
            return;
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let out = Fake {
            state: Rc::default(),
            actor: self.actor.clone(),
        };
        self.sw.handle_open_from(self.now, conn, peer, out.clone());
        self.slots[slot] = Some(Open {
            conn,
            out,
            decoder: Decoder::new(Limits::default()),
            tx: None,
        });
    }

    /// Feeds bytes to a connection's decoder and its events to the switch, like the driver.
    fn feed(&mut self, slot: usize, bytes: &[u8], piece: usize) {
        let piece = if piece == 0 {
            bytes.len().max(1)
        } else {
            piece
        };
        for chunk in bytes.chunks(piece) {
            let Some(o) = self.slots[slot].as_mut() else {
                return;
            };
            o.decoder.feed(chunk);
            let conn = o.conn;
            if !chunk.is_empty() {
                self.sw.handle_bytes(conn);
            }
            self.actor.set(Some(conn));
            let lost = loop {
                let Some(o) = self.slots[slot].as_mut() else {
                    break false;
                };
                match o.decoder.poll() {
                    Ok(Some(ev)) => self.dispatch(conn, ev),
                    Ok(None) => break false,
                    Err(MsrpError::Malformed {
                        transaction_id,
                        reason,
                    }) => self
                        .sw
                        .handle_malformed(conn, transaction_id.as_deref(), &reason),
                    Err(_) => break true,
                }
            };
            self.actor.set(None);
            if lost {
                self.slots[slot] = None;
                self.sw.handle_closed(conn);
                return;
            }
        }
    }

    fn dispatch(&mut self, conn: ConnId, ev: Event) {
        self.sw.handle_event(self.now, conn, ev);
        if !self.bound.contains_key(&conn) {
            if let Some(s) = self.sw.session_of(conn) {
                self.bound.insert(conn, s.to_string());
            }
        }
        // Frames are checked as they are queued: a later Leave may forget the sender's names.
        self.check_frames();
    }

    fn request(&mut self, r: &Req) {
        let slot = self.slot(r.slot);
        let Some(o) = self.slots[slot].as_ref() else {
            return;
        };
        let conn = o.conn;
        let tid = format!("t{}x{}", conn, r.tid);
        let method = match &r.method {
            MethodSel::Send => "SEND",
            MethodSel::Report => "REPORT",
            MethodSel::Nickname(_) => "NICKNAME",
            MethodSel::Other => "FETCH",
        };
        let mut w = format!("MSRP {tid} {method}\r\n");
        w.push_str(&format!("To-Path: {}\r\n", path_text(&r.to)));
        w.push_str(&format!("From-Path: {}\r\n", path_text(&r.from)));
        let mid = mid_text(&r.mid);
        if let Some(m) = &mid {
            w.push_str(&format!("Message-ID: {m}\r\n"));
        }
        let body = r.whole.as_ref().map(|(b, _)| body_bytes(b));
        let key = (conn, mid.clone().unwrap_or_default());
        let range = match &r.range {
            Range::Next { closed, total } => {
                let start = *self.next_byte.get(&key).unwrap_or(&1);
                let end = match (&body, closed) {
                    (Some(b), true) => (start + b.len() as u64).saturating_sub(1).to_string(),
                    _ => "*".into(),
                };
                let total = total.map_or("*".into(), |t| t.to_string());
                Some(format!("{start}-{end}/{total}"))
            }
            Range::Explicit { start, end, total } => Some(format!(
                "{start}-{}/{}",
                end.map_or("*".into(), |e| e.to_string()),
                total.map_or("*".into(), |t| t.to_string())
            )),
            Range::Wide { start, end, total } => Some(format!(
                "{start}-{}/{}",
                end.map_or("*".into(), |e| e.to_string()),
                total.map_or("*".into(), |t| t.to_string())
            )),
            Range::Absent => None,
        };
        if let Some(range) = range {
            w.push_str(&format!("Byte-Range: {range}\r\n"));
        }
        if let Some(f) = r.failure_report {
            w.push_str(match f % 4 {
                0 => "Failure-Report: yes\r\n",
                1 => "Failure-Report: no\r\n",
                2 => "Failure-Report: partial\r\n",
                _ => "Failure-Report: maybe\r\n",
            });
        }
        if r.success_report {
            w.push_str("Success-Report: yes\r\n");
        }
        if let MethodSel::Nickname(Some(n)) = &r.method {
            w.push_str(&format!(
                "Use-Nickname: {}\r\n",
                sip::quote_display_name(&name_text(n))
            ));
        }
        let has_body = r.content_type.is_some();
        if let Some(ct) = &r.content_type {
            let ct = match ct {
                Ct::Cpim => "message/cpim",
                Ct::Text(t) => t.as_str(),
            };
            w.push_str(&format!("Content-Type: {ct}\r\n\r\n"));
        }
        let mut bytes = w.into_bytes();
        match (&r.whole, body) {
            (Some((_, cont)), Some(b)) => {
                if has_body {
                    bytes.extend_from_slice(&b);
                    bytes.extend_from_slice(b"\r\n");
                    *self.next_byte.entry(key).or_insert(1) += b.len() as u64;
                }
                bytes.extend_from_slice(format!("-------{tid}").as_bytes());
                bytes.push(cont.byte());
                bytes.extend_from_slice(b"\r\n");
                if let Some(o) = self.slots[slot].as_mut() {
                    o.tx = None;
                }
            }
            _ => {
                if let Some(o) = self.slots[slot].as_mut() {
                    o.tx = Some((tid, has_body));
                }
            }
        }
        self.feed(slot, &bytes, usize::from(r.piece));
    }

    fn body(&mut self, slot: u8, b: &Body) {
        let slot = self.slot(slot);
        let Some(o) = self.slots[slot].as_ref() else {
            return;
        };
        if !matches!(o.tx, Some((_, true))) {
            return;
        }
        let bytes = body_bytes(b);
        self.feed(slot, &bytes, 0);
    }

    fn end(&mut self, slot: u8, cont: Cont) {
        let slot = self.slot(slot);
        let Some(o) = self.slots[slot].as_mut() else {
            return;
        };
        let Some((tid, had_body)) = o.tx.take() else {
            return;
        };
        let mut bytes = Vec::new();
        if had_body {
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(format!("-------{tid}").as_bytes());
        bytes.push(cont.byte());
        bytes.extend_from_slice(b"\r\n");
        self.feed(slot, &bytes, 0);
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Open { slot } => self.open(self.slot(*slot)),
            Op::Bind { slot, who } => {
                let slot = self.slot(*slot);
                let Some(o) = self.slots[slot].as_ref() else {
                    return;
                };
                let i = person(*who);
                let tid = format!("bind{}", o.conn);
                let w = format!(
                    "MSRP {tid} SEND\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: bind\r\nByte-Range: 1-0/0\r\n-------{tid}$\r\n",
                    session_uri(i),
                    peer_path(i)
                );
                self.feed(slot, w.as_bytes(), 0);
            }
            Op::Request(r) => self.request(r),
            Op::Body { slot, body } => self.body(*slot, body),
            Op::End { slot, cont } => self.end(*slot, *cont),
            Op::Raw { slot, bytes } => self.feed(self.slot(*slot), bytes, 0),
            Op::Close { slot } => {
                if let Some(o) = self.slots[self.slot(*slot)].take() {
                    self.sw.handle_closed(o.conn);
                }
            }
            Op::Advance { millis } => {
                self.now += Duration::from_millis(u64::from(*millis));
                if self.sw.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.sw.handle_timeout(self.now);
                }
            }
            Op::Focus { pick, outcome } => {
                if self.asks.is_empty() {
                    return;
                }
                let (ask, _) = self.asks.remove(usize::from(*pick) % self.asks.len());
                let outcome = match outcome {
                    Outcome::Named(n) => {
                        NicknameVerdict::Named(n.as_ref().map(name_text).filter(|s| !s.is_empty()))
                    }
                    Outcome::Refused(code) => NicknameVerdict::Refused {
                        code: *code,
                        message: "no".into(),
                    },
                    Outcome::Failed => NicknameVerdict::Failed("gone".into()),
                };
                self.sw.handle_focus_answer(self.now, ask.id, outcome);
                // Only a focus answer or a (re)join changes the display name the switch enforces.
                self.note_names();
            }
            Op::Leave { who } => {
                self.sw.leave(PEOPLE[person(*who)].0);
            }
            Op::Join { who } => {
                let _ = self.sw.join_at(self.now, participant(person(*who)));
                self.note_names();
            }
            Op::Idle {
                bind_ms,
                gone_ms,
                max,
            } => {
                let max = usize::from(*max % 8);
                let idle = self.sw.idle(
                    self.now,
                    Duration::from_millis(u64::from(*bind_ms)),
                    Duration::from_millis(u64::from(*gone_ms)),
                    max,
                );
                assert!(idle.len() <= max, "idle reports at most max sessions");
                for s in &idle {
                    let p = self
                        .sw
                        .registry
                        .get(&s.session)
                        .expect("an idle session is registered");
                    assert_eq!(s.conference, p.conference);
                }
            }
            Op::Drain { slot } => {
                if let Some(o) = &self.slots[self.slot(*slot)] {
                    o.out.state.borrow_mut().queued = 0;
                }
            }
            Op::Limit { slot, bytes } => {
                if let Some(o) = &self.slots[self.slot(*slot)] {
                    o.out.state.borrow_mut().limit = (*bytes != 0).then_some(usize::from(*bytes));
                }
            }
        }
        self.after_step();
    }

    /// What the driver does between reads: closes what the switch closed, sends the questions
    /// for the focus; then the invariants.
    fn after_step(&mut self) {
        self.check_frames();
        for slot in 0..SLOTS {
            let closed = self.slots[slot]
                .as_ref()
                .is_some_and(|o| o.out.state.borrow().closed.is_some());
            if closed {
                if let Some(o) = self.slots[slot].take() {
                    self.sw.handle_closed(o.conn);
                }
            }
        }
        while let Some(Action::AskFocus(ask)) = self.sw.poll_action() {
            self.asks.push((ask, self.now));
        }
        self.check_frames();
        let open = self.slots.iter().flatten().count();
        assert_eq!(
            self.sw.gauges().connections,
            open,
            "connections the switch knows"
        );
        assert!(self.sw.in_flight() <= open * MAX_IN_FLIGHT_PER_CONNECTION);
        // Questions outlive their connection until answered or timed out (a 200 still changes
        // the enforced name), so the bound is per connection among those still waiting.
        let deadline = cfg().focus_timeout;
        let mut waiting: HashMap<ConnId, usize> = HashMap::new();
        for (ask, at) in &self.asks {
            if *at + deadline > self.now {
                *waiting.entry(ask.conn).or_default() += 1;
            }
        }
        assert!(waiting
            .values()
            .all(|&n| n <= MAX_FOCUS_ASKS_PER_CONNECTION));
        assert!(self.sw.focus_pending() <= waiting.values().sum::<usize>());
        // Liveness: the sessions watched (reported idle with zero limits) are exactly the
        // registered ones without a bound connection — no ghost, none forgotten.
        let watched: BTreeSet<String> = self
            .sw
            .idle(self.now, Duration::ZERO, Duration::ZERO, usize::MAX)
            .into_iter()
            .map(|s| s.session)
            .collect();
        let bound: HashSet<&str> = self
            .slots
            .iter()
            .flatten()
            .filter_map(|o| self.sw.session_of(o.conn))
            .collect();
        let unbound: BTreeSet<String> = PEOPLE
            .iter()
            .map(|p| p.0)
            .filter(|s| self.sw.registry.get(s).is_some() && !bound.contains(s))
            .map(str::to_string)
            .collect();
        assert_eq!(watched, unbound, "sessions watched for liveness");
    }

    fn note_names(&mut self) {
        for (session, ..) in PEOPLE {
            if let Some(p) = self.sw.registry.get(session) {
                self.names
                    .entry(session.to_string())
                    .or_default()
                    .insert(p.display_name.clone());
            }
        }
    }

    /// Decodes every frame queued since the last look and checks what each recipient can
    /// reassemble.
    fn check_frames(&mut self) {
        for slot in 0..SLOTS {
            let Some(o) = self.slots[slot].as_mut() else {
                continue;
            };
            let recipient = o.conn;
            let new = std::mem::take(&mut o.out.state.borrow_mut().frames);
            for (frame, class, actor) in new {
                self.check_frame(recipient, &frame, class, actor);
            }
        }
    }

    fn check_frame(
        &mut self,
        recipient: ConnId,
        frame: &[u8],
        class: FrameClass,
        actor: Option<ConnId>,
    ) {
        let mut d = Decoder::new(Limits {
            max_head_bytes: 64 * 1024,
            max_non_send_body: 64 * 1024,
        });
        d.feed(frame);
        let mut head = None;
        let mut body = Vec::new();
        let mut ended = false;
        loop {
            match d.poll().expect("the switch writes valid MSRP") {
                Some(Event::Request(h)) => head = Some(h),
                Some(Event::Body(b)) => body.extend_from_slice(&b),
                Some(Event::End { .. }) => ended = true,
                Some(Event::Response(_)) => ended = true,
                None => break,
            }
        }
        assert!(ended && d.buffered() == 0, "one whole frame per push");
        let Some(head) = head else {
            assert_eq!(class, FrameClass::Control, "a response is a control frame");
            return;
        };
        if head.method != Method::Send || body.is_empty() {
            return;
        }
        assert_eq!(class, FrameClass::Data, "a SEND with a body is data");
        let sender = actor.expect("message data is only sent while its sender's bytes are handled");
        let mid = head
            .message_id
            .clone()
            .expect("relayed SEND has a Message-ID");
        let range = head.byte_range.expect("relayed SEND has a Byte-Range");
        let copy = self
            .copies
            .entry((recipient, mid))
            .or_insert_with(|| Reassembly {
                sender,
                last_wins: Vec::new(),
                first_wins: Vec::new(),
            });
        assert_eq!(copy.sender, sender, "one relayed Message-ID, one sender");
        let start = usize::try_from(range.start.saturating_sub(1)).unwrap_or(usize::MAX);
        for (i, &b) in body.iter().enumerate() {
            let Some(at) = start.checked_add(i).filter(|&at| at < KEEP) else {
                break;
            };
            if copy.last_wins.len() <= at {
                copy.last_wins.resize(at + 1, None);
                copy.first_wins.resize(at + 1, None);
            }
            copy.last_wins[at] = Some(b);
            copy.first_wins[at].get_or_insert(b);
        }
        let session = self
            .bound
            .get(&sender)
            .expect("only a bound connection sends messages")
            .clone();
        let uri = PEOPLE
            .iter()
            .find(|p| p.0 == session)
            .map(|p| p.2)
            .expect("a known session");
        let no_names = HashSet::new();
        let names = self.names.get(&session).unwrap_or(&no_names);
        let copy = &self.copies[&(recipient, head.message_id.clone().unwrap_or_default())];
        for buf in [&copy.last_wins, &copy.first_wins] {
            let prefix: Vec<u8> = buf.iter().map_while(|b| *b).collect();
            check_identity(&prefix, uri, names, &session);
        }
    }
}

/// The CPIM header block a recipient can read must carry the sender's identity.
fn check_identity(prefix: &[u8], uri: &str, names: &HashSet<Option<String>>, session: &str) {
    let Ok(h) = cpim::parse_headers(prefix) else {
        return;
    };
    let from = h.from.as_ref().unwrap_or_else(|| {
        panic!("a recipient reassembled a CPIM block without From from {session}")
    });
    let claimed = sip::parse_uri(&from.uri).expect("forwarded CPIM From URI parses");
    let own = sip::parse_uri(uri).expect("assigned URI parses");
    assert!(
        claimed.equivalent(&own),
        "a recipient reassembled CPIM From {:?} from {session} ({uri})",
        from.uri
    );
    if let Some(dn) = &from.display_name {
        assert!(
            names.iter().flatten().any(|own| rfc8266_equal(dn, own)),
            "a recipient reassembled CPIM From display name {dn:?} from {session} (held {names:?})"
        );
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut h = Harness::new();
    for op in ops.iter().take(64) {
        h.step(op);
    }
});
