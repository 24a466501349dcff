//! Switch logic without sockets: an in-memory outlet per connection, a virtual clock, and the
//! real codec to write requests and read back what the switch sends.
use super::*;
use chat_alias_proto::msrp::{Decoder, Limits, MsrpError, ResponseHead};
use std::cell::RefCell;
use std::rc::Rc;

const CONF: &str = "sip:lounge@im.example.net";
const QUIET: &str = "sip:quiet@im.example.net";

#[derive(Default)]
struct FakeState {
    frames: Vec<(Vec<u8>, FrameClass)>,
    limit: Option<usize>,
    queued: usize,
    closed: Option<CloseReason>,
}

#[derive(Clone, Default)]
struct Fake(Rc<RefCell<FakeState>>);

impl Outlet for Fake {
    fn push_frame(&self, frame: Frame, class: FrameClass) -> Pushed {
        let frame = frame.to_vec();
        let mut s = self.0.borrow_mut();
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
        s.frames.push((frame, class));
        Pushed::Queued
    }
    fn close(&self, why: CloseReason) {
        let mut s = self.0.borrow_mut();
        if s.closed.is_none() {
            s.closed = Some(why);
        }
    }
    fn queued(&self) -> usize {
        self.0.borrow().queued
    }
}

/// What a peer reads back.
#[derive(Debug, Clone)]
enum Got {
    Req {
        head: RequestHead,
        body: Vec<u8>,
        cont: Continuation,
        class: FrameClass,
    },
    Resp(ResponseHead),
}

impl Got {
    fn status(&self) -> Option<u16> {
        match self {
            Got::Resp(r) => Some(r.status),
            _ => None,
        }
    }
    fn req(&self) -> (&RequestHead, &[u8], Continuation) {
        match self {
            Got::Req {
                head, body, cont, ..
            } => (head, body, *cont),
            Got::Resp(r) => panic!("expected a request, got response {r:?}"),
        }
    }
}

fn decode_all(frames: &[(Vec<u8>, FrameClass)]) -> Vec<Got> {
    let mut out = Vec::new();
    for (f, class) in frames {
        let mut d = Decoder::new(Limits::default());
        d.feed(f);
        let mut head = None;
        let mut body = Vec::new();
        loop {
            match d.poll().expect("the switch writes valid MSRP") {
                Some(Event::Request(h)) => head = Some(h),
                Some(Event::Body(b)) => body.extend_from_slice(&b),
                Some(Event::End { continuation, .. }) => {
                    out.push(Got::Req {
                        head: head.take().expect("head"),
                        body: std::mem::take(&mut body),
                        cont: continuation,
                        class: *class,
                    });
                }
                Some(Event::Response(r)) => out.push(Got::Resp(r)),
                None => break,
            }
        }
        assert_eq!(d.buffered(), 0, "one whole frame per outbox item");
    }
    out
}

struct H {
    sw: Switch<Fake>,
    now: Instant,
    outs: HashMap<ConnId, Fake>,
    decs: HashMap<ConnId, Decoder>,
    metrics: Arc<Metrics>,
}

fn cfg() -> Config {
    Config {
        host: "127.0.0.1".into(),
        port: 2855,
        max_size: 1024 * 1024,
        bind_timeout: Duration::from_secs(5),
        chunk_timeout: Duration::from_secs(540),
        congestion_timeout: Duration::from_secs(30),
        queue_bytes: 4 * 1024 * 1024,
        nicknames: true,
        focus: true,
        focus_timeout: Duration::from_secs(1),
        max_connections: 4096,
        max_unbound: 256,
        max_unbound_per_address: 32,
        first_byte_timeout: Duration::from_secs(5),
    }
}

fn peer_path(session: &str) -> String {
    format!("msrp://127.0.0.1:40000/peer{session};tcp")
}

fn relay_path(session: &str) -> String {
    cfg().session_uri(session)
}

impl H {
    fn new() -> H {
        H::with(cfg())
    }

    fn with(cfg: Config) -> H {
        let mut n: u64 = 0;
        let ids: Ids = Box::new(move || {
            n += 1;
            let mut b = [0u8; 12];
            b[4..].copy_from_slice(&n.to_be_bytes());
            b
        });
        let metrics = Metrics::new();
        H {
            sw: Switch::new(cfg, ids, metrics.clone()),
            now: Instant::now(),
            outs: HashMap::new(),
            decs: HashMap::new(),
            metrics,
        }
    }

    /// Registers a participant whose session id is `session` (padded to a valid id).
    fn join(&mut self, session: &str, conf: &str, uri: &str, dn: Option<&str>) -> String {
        let sid = format!("{session:a<16}");
        self.sw
            .join(Participant {
                session: sid.clone(),
                conference: conf.into(),
                uri: uri.into(),
                display_name: dn.map(str::to_string),
                anonymous: uri.contains("anonymous.invalid"),
                peer_path: vec![peer_path(&sid)],
                accept_wrapped_types: vec!["text/plain".into()],
                chatroom: vec!["nickname".into(), "private-messages".into()],
                private_messages_allowed: conf == CONF,
            })
            .unwrap();
        sid
    }

    fn set(&mut self, sid: &str, f: impl FnOnce(&mut Participant)) {
        let mut p = self.sw.registry.get(sid).unwrap().clone();
        f(&mut p);
        self.sw.join(p).unwrap();
    }

    fn open(&mut self, conn: ConnId) -> Fake {
        let f = Fake::default();
        self.sw.handle_open(self.now, conn, f.clone());
        self.outs.insert(conn, f.clone());
        self.decs.insert(conn, Decoder::new(Limits::default()));
        f
    }

    fn feed(&mut self, conn: ConnId, bytes: &[u8]) {
        let d = self.decs.get_mut(&conn).unwrap();
        d.feed(bytes);
        loop {
            match d.poll() {
                Ok(Some(ev)) => self.sw.handle_event(self.now, conn, ev),
                Ok(None) => break,
                Err(MsrpError::Malformed {
                    transaction_id,
                    reason,
                }) => self
                    .sw
                    .handle_malformed(conn, transaction_id.as_deref(), &reason),
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Everything sent to `conn` since the last call.
    fn take(&mut self, conn: ConnId) -> Vec<Got> {
        let f = self.outs[&conn].clone();
        let frames = std::mem::take(&mut f.0.borrow_mut().frames);
        decode_all(&frames)
    }

    fn closed(&self, conn: ConnId) -> Option<CloseReason> {
        self.outs[&conn].0.borrow().closed
    }

    /// Opens `conn` and binds it to `sid` with a bodiless SEND; asserts 200.
    fn bind(&mut self, conn: ConnId, sid: &str) {
        self.open(conn);
        self.feed(conn, &bodiless("bind0001", sid));
        let got = self.take(conn);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].status(), Some(200), "{got:?}");
        assert_eq!(self.sw.session_of(conn), Some(sid));
    }
}

fn bodiless(tid: &str, sid: &str) -> Vec<u8> {
    let mut h = RequestHead::new(
        tid,
        Method::Send,
        vec![relay_path(sid)],
        vec![peer_path(sid)],
    );
    h.message_id = Some(format!("m{tid}"));
    h.byte_range = Some(ByteRange {
        start: 1,
        end: Some(0),
        total: Some(0),
    });
    let mut out = Vec::new();
    encode::request_head(&h, &mut out);
    encode::end_line(tid, Continuation::End, false, &mut out);
    out
}

struct Chunk<'a> {
    tid: &'a str,
    mid: &'a str,
    start: u64,
    total: Option<u64>,
    body: &'a [u8],
    cont: Continuation,
    failure: Option<ReportMode>,
    success: Option<bool>,
    content_type: &'a str,
}

impl<'a> Chunk<'a> {
    fn whole(tid: &'a str, body: &'a [u8]) -> Chunk<'a> {
        Chunk {
            tid,
            mid: tid,
            start: 1,
            total: Some(body.len() as u64),
            body,
            cont: Continuation::End,
            failure: None,
            success: None,
            content_type: "message/cpim",
        }
    }

    fn bytes(&self, sid: &str) -> Vec<u8> {
        let mut h = RequestHead::new(
            self.tid,
            Method::Send,
            vec![relay_path(sid)],
            vec![peer_path(sid)],
        );
        h.message_id = Some(self.mid.into());
        h.byte_range = Some(ByteRange {
            start: self.start,
            end: Some(self.start + self.body.len() as u64 - 1),
            total: self.total,
        });
        h.failure_report = self.failure;
        h.success_report = self.success;
        if !self.body.is_empty() {
            h.content_type = Some(self.content_type.into());
        }
        let mut out = Vec::new();
        encode::request_head(&h, &mut out);
        out.extend_from_slice(self.body);
        encode::end_line(self.tid, self.cont, !self.body.is_empty(), &mut out);
        out
    }
}

fn cpim_msg(from: &str, to: &[&str], ct: &str, text: &str) -> Vec<u8> {
    let mut s = format!("From: {from}\r\n");
    for t in to {
        s += &format!("To: {t}\r\n");
    }
    s += &format!("DateTime: 2024-01-01T00:00:00Z\r\n\r\nContent-Type: {ct}\r\n\r\n{text}");
    s.into_bytes()
}

/// A lounge with alice (named), bob and bob-2 (anonymous), all bound: conns 1, 2, 3.
fn lounge() -> (H, [String; 3]) {
    lounge_with(cfg())
}

fn lounge_with(cfg: Config) -> (H, [String; 3]) {
    let mut h = H::with(cfg);
    let a = h.join("alice", CONF, "sip:alice@example.com", Some("Alice"));
    let b = h.join("bob", CONF, "sip:anonymous@anonymous.invalid", Some("bob"));
    let c = h.join(
        "bobtwo",
        CONF,
        "sip:anonymous2@anonymous.invalid",
        Some("bob-2"),
    );
    h.bind(1, &a);
    h.bind(2, &b);
    h.bind(3, &c);
    (h, [a, b, c])
}

// ---- binding ----

#[test]
fn binding_rules() {
    let mut h = H::new();
    let a = h.join("alice", CONF, "sip:alice@example.com", None);
    h.open(1);
    // Unknown session.
    let unknown = format!("{:z<16}", "nobody");
    let mut req = RequestHead::new(
        "t481",
        Method::Send,
        vec![relay_path(&unknown)],
        vec![peer_path(&a)],
    );
    req.message_id = Some("mid00001".into());
    let mut bytes = Vec::new();
    encode::request_head(&req, &mut bytes);
    encode::end_line("t481", Continuation::End, false, &mut bytes);
    h.feed(1, &bytes);
    let got = h.take(1);
    assert_eq!(got[0].status(), Some(481));
    let Got::Resp(r) = &got[0] else { panic!() };
    // Response addressing: To-Path = previous hop, From-Path = the URI the request named.
    assert_eq!(r.to_path, vec![peer_path(&a)]);
    assert_eq!(r.from_path, vec![relay_path(&unknown)]);
    assert_eq!(r.transaction_id, "t481");

    // Known session, wrong From-Path.
    let mut req = RequestHead::new(
        "t403",
        Method::Send,
        vec![relay_path(&a)],
        vec!["msrp://127.0.0.1:40001/other;tcp".into()],
    );
    req.message_id = Some("mid00002".into());
    let mut bytes = Vec::new();
    encode::request_head(&req, &mut bytes);
    encode::end_line("t403", Continuation::End, false, &mut bytes);
    h.feed(1, &bytes);
    assert_eq!(h.take(1)[0].status(), Some(403));
    assert_eq!(h.sw.session_of(1), None);

    // Correct: binds.
    h.feed(1, &bodiless("tok1", &a));
    assert_eq!(h.take(1)[0].status(), Some(200));
    assert_eq!(h.sw.session_of(1), Some(a.as_str()));

    // A second connection for the same session.
    h.open(2);
    h.feed(2, &bodiless("tok2", &a));
    assert_eq!(h.take(2)[0].status(), Some(506));
    assert_eq!(h.sw.session_of(2), None);

    // After binding, another session's URI is 481 on the bound connection.
    let b = h.join("bob", CONF, "sip:anonymous@anonymous.invalid", None);
    h.feed(1, &bodiless("tok3", &b));
    assert_eq!(h.take(1)[0].status(), Some(481));
    assert_eq!(h.sw.session_of(1), Some(a.as_str()));

    // When the first connection goes, the session may bind again.
    h.sw.handle_closed(1);
    h.feed(2, &bodiless("tok4", &a));
    assert_eq!(h.take(2)[0].status(), Some(200));
    assert_eq!(h.metrics.refusals(506), 1);
}

#[test]
fn unbound_connections_are_closed_after_the_bind_timeout() {
    let mut h = H::new();
    let a = h.join("alice", CONF, "sip:alice@example.com", None);
    h.open(1);
    h.open(2);
    h.feed(2, &bodiless("tok1", &a));
    assert_eq!(h.take(2)[0].status(), Some(200));
    assert_eq!(h.sw.poll_timeout(), Some(h.now + Duration::from_secs(5)));
    h.sw.handle_timeout(h.now + Duration::from_secs(4));
    assert_eq!(h.closed(1), None);
    h.sw.handle_timeout(h.now + Duration::from_secs(5));
    assert_eq!(h.closed(1), Some(CloseReason::BindTimeout));
    assert_eq!(h.closed(2), None);
}

#[test]
fn unknown_methods_get_501_and_reports_are_not_answered() {
    let (mut h, [a, ..]) = lounge();
    let mut req = RequestHead::new(
        "tfoo",
        Method::Other("FOO".into()),
        vec![relay_path(&a)],
        vec![peer_path(&a)],
    );
    req.message_id = Some("xid00001".into());
    let mut bytes = Vec::new();
    encode::request_head(&req, &mut bytes);
    encode::end_line("tfoo", Continuation::End, false, &mut bytes);
    let mut rep = RequestHead::new(
        "trep",
        Method::Report,
        vec![relay_path(&a)],
        vec![peer_path(&a)],
    );
    rep.message_id = Some("xid00002".into());
    rep.status = Some(Status {
        namespace: 0,
        code: 200,
        comment: None,
    });
    encode::request_head(&rep, &mut bytes);
    encode::end_line("trep", Continuation::End, false, &mut bytes);
    h.feed(1, &bytes);
    let got = h.take(1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].status(), Some(501));
    assert!(h.take(2).is_empty() && h.take(3).is_empty());
}

// ---- routing ----

#[test]
fn regular_message_goes_to_every_other_participant_unchanged() {
    let (mut h, [a, b, c]) = lounge();
    let body = cpim_msg(
        "\"Alice\" <sip:alice@example.com>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "hello",
    );
    h.feed(1, &Chunk::whole("snd00001", &body).bytes(&a));
    let got = h.take(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status(), Some(200));
    let mut mids = Vec::new();
    for (conn, sid) in [(2, &b), (3, &c)] {
        let got = h.take(conn);
        assert_eq!(got.len(), 1, "{got:?}");
        let (head, rbody, cont) = got[0].req();
        assert_eq!(rbody, &body[..], "CPIM forwarded byte-for-byte");
        assert_eq!(cont, Continuation::End);
        assert_eq!(head.to_path, vec![peer_path(sid)]);
        assert_eq!(head.from_path, vec![relay_path(sid)]);
        assert_eq!(head.content_type.as_deref(), Some("message/cpim"));
        assert_ne!(head.message_id.as_deref(), Some("snd00001"));
        assert_ne!(head.transaction_id, "snd00001");
        assert_eq!(
            head.byte_range,
            Some(ByteRange {
                start: 1,
                end: Some(body.len() as u64),
                total: Some(body.len() as u64)
            })
        );
        mids.push(head.message_id.clone());
    }
    assert_ne!(mids[0], mids[1], "a Message-ID per recipient");
    // The recipients answer 200; nothing reaches the sender.
    let resp = {
        let mut o = Vec::new();
        encode::response(
            "whatever",
            200,
            None,
            &relay_path(&b),
            &peer_path(&b),
            &mut o,
        );
        o
    };
    h.feed(2, &resp);
    assert!(h.take(1).is_empty());
    assert_eq!(
        h.metrics
            .messages_out
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[test]
fn anonymous_sender_with_display_name_variants() {
    let (mut h, [a, b, _]) = lounge();
    // RFC 8266 comparison: "BOB" is the same nickname as "bob"; no display name is fine too.
    for (i, from) in [
        "\"BOB\" <sip:anonymous@anonymous.invalid>",
        "<sip:anonymous@anonymous.invalid>",
    ]
    .iter()
    .enumerate()
    {
        let body = cpim_msg(from, &[&format!("<{CONF}>")], "text/plain", "hi");
        let tid = format!("ok{i:02}");
        h.feed(2, &Chunk::whole(&tid, &body).bytes(&b));
        assert_eq!(h.take(2)[0].status(), Some(200));
        assert_eq!(h.take(1).len(), 1);
    }
    let _ = a;
}

#[test]
fn spoofed_from_is_refused_and_delivered_to_nobody() {
    let (mut h, [_, b, _]) = lounge();
    for (i, from) in [
        // Another participant's alias.
        "\"bob-2\" <sip:anonymous2@anonymous.invalid>",
        // Its own real address.
        "<sip:bob@example.com>",
        // Its own URI with someone else's name.
        "\"Alice\" <sip:anonymous@anonymous.invalid>",
    ]
    .iter()
    .enumerate()
    {
        let body = cpim_msg(from, &[&format!("<{CONF}>")], "text/plain", "spoof");
        let tid = format!("sp{i:02}");
        h.feed(2, &Chunk::whole(&tid, &body).bytes(&b));
        let got = h.take(2);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].status(), Some(403), "{from}");
    }
    assert!(h.take(1).is_empty());
    assert!(h.take(3).is_empty());
    assert_eq!(h.metrics.refusals(403), 3);
}

#[test]
fn failure_report_no_and_partial() {
    let (mut h, [_, b, _]) = lounge();
    let bad = cpim_msg(
        "<sip:alice@example.com>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "spoof",
    );
    let good = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "ok",
    );
    let mut c = Chunk::whole("fr01", &bad);
    c.failure = Some(ReportMode::No);
    h.feed(2, &c.bytes(&b));
    assert!(h.take(2).is_empty(), "no response at all");
    assert!(h.take(1).is_empty() && h.take(3).is_empty());
    assert_eq!(h.metrics.refusals(403), 1, "the refusal is still counted");
    let mut c = Chunk::whole("fr02", &good);
    c.failure = Some(ReportMode::No);
    h.feed(2, &c.bytes(&b));
    assert!(h.take(2).is_empty(), "not even 200");
    assert_eq!(h.take(1).len(), 1);
    let mut c = Chunk::whole("fr03", &good);
    c.failure = Some(ReportMode::Partial);
    h.feed(2, &c.bytes(&b));
    assert!(h.take(2).is_empty(), "partial: no 200");
    let mut c = Chunk::whole("fr04", &bad);
    c.failure = Some(ReportMode::Partial);
    h.feed(2, &c.bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(403), "partial: errors");
}

#[test]
fn multiple_to_missing_to_and_non_cpim() {
    let (mut h, [_, b, c]) = lounge();
    let body = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &[&format!("<{CONF}>"), "<sip:anonymous2@anonymous.invalid>"],
        "text/plain",
        "x",
    );
    h.feed(2, &Chunk::whole("mt01", &body).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(403));
    let mut plain = Chunk::whole("mt02", b"just text");
    plain.content_type = "text/plain";
    h.feed(2, &plain.bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(415));
    let garbage = b"this is not cpim at all\r\n\r\n".to_vec();
    h.feed(2, &Chunk::whole("mt03", &garbage).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(400));
    assert!(h.take(1).is_empty());
    assert!(h.take(3).is_empty());
    let _ = c;
}

#[test]
fn private_messages() {
    let (mut h, [a, b, c]) = lounge();
    let to_bob2 = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &["<sip:anonymous2@anonymous.invalid>"],
        "text/plain",
        "psst",
    );
    h.feed(2, &Chunk::whole("pm01", &to_bob2).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(200));
    assert!(h.take(1).is_empty());
    let got = h.take(3);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].req().1, &to_bob2[..]);
    // Unknown recipient.
    let nobody = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &["<sip:anonymous9@anonymous.invalid>"],
        "text/plain",
        "?",
    );
    h.feed(2, &Chunk::whole("pm02", &nobody).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(404));
    // Recipient that did not advertise private-messages.
    h.set(&c, |p| p.chatroom = vec!["nickname".into()]);
    h.feed(2, &Chunk::whole("pm03", &to_bob2).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(428));
    // A private message to alice, whose URI is her real one.
    let to_alice = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &["<sip:ALICE@EXAMPLE.COM>"],
        "text/plain",
        "hi",
    );
    h.feed(2, &Chunk::whole("pm04", &to_alice).bytes(&b));
    // sip URI user parts are case-sensitive: ALICE is not alice.
    assert_eq!(h.take(2)[0].status(), Some(404));
    let to_alice = cpim_msg(
        "<sip:anonymous@anonymous.information>",
        &["<sip:alice@EXAMPLE.com>"],
        "text/plain",
        "hi",
    );
    h.feed(2, &Chunk::whole("pm05", &to_alice).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(403));
    let to_alice = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &["<sip:alice@EXAMPLE.com>"],
        "text/plain",
        "hi",
    );
    h.feed(2, &Chunk::whole("pm06", &to_alice).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(200));
    assert_eq!(h.take(1).len(), 1);
    let _ = a;
}

#[test]
fn private_messages_refused_when_the_group_forbids_them() {
    let mut h = H::new();
    let a = h.join("alice", QUIET, "sip:anonymous@anonymous.invalid", Some("a"));
    let b = h.join("bob", QUIET, "sip:anonymous2@anonymous.invalid", Some("b"));
    h.bind(1, &a);
    h.bind(2, &b);
    let body = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &["<sip:anonymous2@anonymous.invalid>"],
        "text/plain",
        "psst",
    );
    h.feed(1, &Chunk::whole("q001", &body).bytes(&a));
    assert_eq!(h.take(1)[0].status(), Some(428));
    assert!(h.take(2).is_empty());
}

#[test]
fn accept_wrapped_types_filter_recipients() {
    let (mut h, [a, b, c]) = lounge();
    h.set(&b, |p| p.accept_wrapped_types = vec!["text/*".into()]);
    h.set(&c, |p| p.accept_wrapped_types = vec!["image/png".into()]);
    let body = cpim_msg(
        "<sip:alice@example.com>",
        &[&format!("<{CONF}>")],
        "text/html",
        "<b>x</b>",
    );
    h.feed(1, &Chunk::whole("aw01", &body).bytes(&a));
    assert_eq!(h.take(1)[0].status(), Some(200));
    assert_eq!(h.take(2).len(), 1);
    assert!(h.take(3).is_empty());
    let t = |s: &str| sip::parse_media_type(s).unwrap();
    assert!(accepts(&[], &t("a/b")));
    assert!(accepts(&["*".into()], &t("a/b")));
    assert!(accepts(
        &["text/plain;charset=utf-8".into()],
        &t("TEXT/Plain")
    ));
    assert!(!accepts(&["text/plain".into()], &t("text/html")));
}

// ---- chunks ----

/// Sends `body` from conn 1 in the given incoming chunk sizes; returns what conn 2 got.
fn chunked(
    h: &mut H,
    sid: &str,
    mid: &str,
    body: &[u8],
    sizes: &[usize],
    total_known: bool,
) -> Vec<Got> {
    let mut off = 0;
    for (i, &n) in sizes.iter().enumerate() {
        let last = i == sizes.len() - 1;
        let n = if last { body.len() - off } else { n };
        let tid = format!("{mid}c{i:03}");
        let c = Chunk {
            tid: &tid,
            mid,
            start: off as u64 + 1,
            total: total_known.then_some(body.len() as u64),
            body: &body[off..off + n],
            cont: if last {
                Continuation::End
            } else {
                Continuation::More
            },
            failure: None,
            success: None,
            content_type: "message/cpim",
        };
        // Feed in odd pieces, as a socket would.
        let bytes = c.bytes(sid);
        for piece in bytes.chunks(7919) {
            h.feed(1, piece);
        }
        off += n;
    }
    h.take(2)
}

fn big_body(n: usize) -> Vec<u8> {
    let mut body = cpim_msg(
        "<sip:alice@example.com>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "",
    );
    let mut i = 0u32;
    while body.len() < n {
        body.extend_from_slice(format!("{i:08} ").as_bytes());
        i += 1;
    }
    body.truncate(n);
    body
}

#[test]
fn rechunking_keeps_offsets_ids_and_bytes() {
    let (mut h, [a, ..]) = lounge();
    let body = big_body(200 * 1024 + 17);
    let got = chunked(&mut h, &a, "big1", &body, &[1000, 100_000, 30_000, 0], true);
    // Every incoming chunk was answered.
    let resp: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(resp, vec![200; 4]);
    let mut re = Vec::new();
    let mut mid = None;
    let mut tids = std::collections::HashSet::new();
    for (i, g) in got.iter().enumerate() {
        let (head, b, cont) = g.req();
        assert!(b.len() <= CHUNK);
        let r = head.byte_range.unwrap();
        assert_eq!(r.start, re.len() as u64 + 1);
        assert_eq!(r.end, Some(re.len() as u64 + b.len() as u64));
        assert_eq!(r.total, Some(body.len() as u64));
        assert_eq!(
            cont,
            if i == got.len() - 1 {
                Continuation::End
            } else {
                Continuation::More
            }
        );
        assert!(tids.insert(head.transaction_id.clone()));
        if let Some(m) = &mid {
            assert_eq!(head.message_id.as_ref(), Some(m));
        }
        mid = head.message_id.clone();
        re.extend_from_slice(b);
    }
    assert_eq!(got.len(), 4, "ceil(204817 / 65536) frames");
    assert_eq!(re, body);
    // Without a known total: `*` until the last frame.
    let got = chunked(&mut h, &a, "big2", &body, &[70_000, 70_000, 0], false);
    let ranges: Vec<_> = got.iter().map(|g| g.req().0.byte_range.unwrap()).collect();
    assert!(ranges[..ranges.len() - 1].iter().all(|r| r.total.is_none()));
    assert_eq!(ranges.last().unwrap().total, Some(body.len() as u64));
    let re: Vec<u8> = got.iter().flat_map(|g| g.req().1.to_vec()).collect();
    assert_eq!(re, body);
}

#[test]
fn cpim_headers_split_across_chunks_wait_for_the_rest() {
    let (mut h, [a, ..]) = lounge();
    let body = cpim_msg(
        "<sip:alice@example.com>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "split me",
    );
    let got = chunked(&mut h, &a, "spl1", &body, &[10, 0], true);
    assert_eq!(h.take(1).len(), 2);
    assert_eq!(h.take(3).len(), 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].req().1, &body[..]);
    // A spoof split the same way is refused on the second chunk; nothing leaves.
    let spoof = cpim_msg(
        "<sip:anonymous2@anonymous.invalid>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "x",
    );
    let mut off = 0;
    for (i, n) in [12usize, spoof.len() - 12].iter().enumerate() {
        let tid = format!("spx{i}");
        let c = Chunk {
            tid: &tid,
            mid: "spl2",
            start: off as u64 + 1,
            total: Some(spoof.len() as u64),
            body: &spoof[off..off + n],
            cont: if i == 1 {
                Continuation::End
            } else {
                Continuation::More
            },
            failure: None,
            success: None,
            content_type: "message/cpim",
        };
        h.feed(1, &c.bytes(&a));
        off += n;
    }
    let st: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(st, vec![200, 403]);
    assert!(h.take(2).is_empty() && h.take(3).is_empty());
}

#[test]
fn later_chunks_go_only_to_the_first_chunks_recipients() {
    let mut h = H::new();
    let a = h.join("alice", CONF, "sip:alice@example.com", None);
    let b = h.join("bob", CONF, "sip:anonymous@anonymous.invalid", None);
    let c = h.join("carol", CONF, "sip:anonymous2@anonymous.invalid", None);
    h.bind(1, &a);
    h.bind(2, &b);
    let body = big_body(100_000);
    let first = Chunk {
        tid: "late1",
        mid: "late",
        start: 1,
        total: Some(body.len() as u64),
        body: &body[..70_000],
        cont: Continuation::More,
        failure: None,
        success: None,
        content_type: "message/cpim",
    };
    h.feed(1, &first.bytes(&a));
    h.bind(3, &c);
    let second = Chunk {
        tid: "late2",
        start: 70_001,
        body: &body[70_000..],
        cont: Continuation::End,
        ..first
    };
    h.feed(1, &second.bytes(&a));
    let re: Vec<u8> = h.take(2).iter().flat_map(|g| g.req().1.to_vec()).collect();
    assert_eq!(re, body);
    assert!(h.take(3).is_empty());
}

#[test]
fn max_size_by_total_and_by_received_bytes() {
    let mut cfg = cfg();
    cfg.max_size = 100_000;
    let mut h = H::with(cfg);
    let a = h.join("alice", CONF, "sip:alice@example.com", None);
    let b = h.join("bob", CONF, "sip:anonymous@anonymous.invalid", None);
    h.bind(1, &a);
    h.bind(2, &b);
    let body = big_body(150_000);
    // Declared total too large: 413 at once, nothing forwarded; the next chunk too.
    let mut c = Chunk::whole("mx01", &body[..80_000]);
    c.total = Some(150_000);
    c.cont = Continuation::More;
    h.feed(1, &c.bytes(&a));
    let c2 = Chunk {
        tid: "mx02",
        start: 80_001,
        body: &body[80_000..],
        cont: Continuation::End,
        ..c
    };
    h.feed(1, &c2.bytes(&a));
    let st: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(st, vec![413, 413]);
    assert!(h.take(2).is_empty());
    // Unknown total, the bytes go over: recipient got the beginning, then `#`.
    let got = chunked(&mut h, &a, "mx10", &body, &[90_000, 0], false);
    let st: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(st, vec![200, 413]);
    assert!(!got.is_empty());
    let (head, b, cont) = got.last().unwrap().req();
    assert_eq!(cont, Continuation::Abort);
    assert!(b.is_empty());
    assert_eq!(head.byte_range.unwrap().start, 65537);
    assert_eq!(h.metrics.drops(DropReason::MaxSize), 2);
}

#[test]
fn stalled_message_is_aborted_after_the_chunk_timeout() {
    let (mut h, [a, ..]) = lounge();
    let body = big_body(70_000);
    let c = Chunk {
        cont: Continuation::More,
        total: None,
        ..Chunk::whole("st01", &body)
    };
    h.feed(1, &c.bytes(&a));
    assert_eq!(h.take(2).len(), 1, "first 64 KiB forwarded");
    assert_eq!(h.sw.in_flight(), 1);
    assert_eq!(h.sw.poll_timeout(), Some(h.now + Duration::from_secs(540)));
    h.sw.handle_timeout(h.now + Duration::from_secs(541));
    assert_eq!(h.sw.in_flight(), 0);
    let got = h.take(2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].req().2, Continuation::Abort);
    assert_eq!(h.metrics.drops(DropReason::ChunkTimeout), 1);
}

#[test]
fn sender_abort_and_sender_disconnect_propagate_as_hash() {
    let (mut h, [a, ..]) = lounge();
    let body = big_body(70_000);
    let c = Chunk {
        cont: Continuation::Abort,
        ..Chunk::whole("ab01", &body)
    };
    h.feed(1, &c.bytes(&a));
    let got = h.take(2);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].req().2, Continuation::Abort);
    assert_eq!(h.take(3).len(), 2);
    let c = Chunk {
        cont: Continuation::More,
        ..Chunk::whole("ab02", &body)
    };
    h.feed(1, &c.bytes(&a));
    assert_eq!(h.take(3).len(), 1);
    h.sw.handle_closed(1);
    let got = h.take(3);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].req().2, Continuation::Abort);
    assert_eq!(h.sw.session_of(1), None);
}

#[test]
fn success_report_after_the_whole_message() {
    let (mut h, [a, ..]) = lounge();
    let body = big_body(70_000);
    let mut c = Chunk::whole("sr01", &body);
    c.success = Some(true);
    h.feed(1, &c.bytes(&a));
    let got = h.take(1);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].status(), Some(200));
    let (head, b, _) = got[1].req();
    assert_eq!(head.method, Method::Report);
    assert!(b.is_empty());
    assert_eq!(head.message_id.as_deref(), Some("sr01"));
    assert_eq!(head.to_path, vec![peer_path(&a)]);
    assert_eq!(head.from_path, vec![relay_path(&a)]);
    assert_eq!(
        head.byte_range,
        Some(ByteRange {
            start: 1,
            end: Some(70_000),
            total: Some(70_000)
        })
    );
    assert_eq!(
        head.status.as_ref().map(|s| (s.namespace, s.code)),
        Some((0, 200))
    );
}

// ---- congestion ----

#[test]
fn congested_recipient_loses_the_rest_of_the_message_then_the_connection() {
    let (mut h, [a, ..]) = lounge_with(Config {
        queue_bytes: 100_000,
        ..cfg()
    });
    h.outs[&2].0.borrow_mut().limit = Some(100_000);
    let body = big_body(300_000);
    let c = Chunk {
        cont: Continuation::More,
        total: None,
        ..Chunk::whole("cg01", &body)
    };
    h.feed(1, &c.bytes(&a));
    // Conn 3 got every complete 64 KiB frame; conn 2 one data frame, then a control `#`.
    assert_eq!(h.take(3).len(), 4);
    let got = h.take(2);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(
        got[0],
        Got::Req {
            class: FrameClass::Data,
            ..
        }
    ));
    let Got::Req {
        cont,
        class,
        ref head,
        ..
    } = got[1]
    else {
        panic!()
    };
    assert_eq!((cont, class), (Continuation::Abort, FrameClass::Control));
    assert_eq!(head.byte_range.unwrap().start, 65537);
    assert_eq!(h.sw.congested_since(2), Some(h.now));
    assert_eq!(h.metrics.drops(DropReason::Congestion), 1);
    // The rest of the message goes to conn 3 only.
    let end = Chunk {
        tid: "cg02",
        mid: "cg01",
        start: 300_001,
        body: b"",
        cont: Continuation::End,
        ..c
    };
    h.feed(1, &end.bytes(&a));
    assert!(h.take(2).is_empty());
    let last = h.take(3);
    assert_eq!(last.last().unwrap().req().2, Continuation::End);
    // Still congested at the deadline: disconnected; the others carry on.
    h.sw.handle_timeout(h.now + Duration::from_secs(29));
    assert_eq!(h.closed(2), None);
    h.sw.handle_timeout(h.now + Duration::from_secs(30));
    assert_eq!(h.closed(2), Some(CloseReason::Congested));
    assert_eq!(h.sw.session_of(2), None);
    let body = cpim_msg(
        "<sip:alice@example.com>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "still here",
    );
    h.feed(1, &Chunk::whole("cg03", &body).bytes(&a));
    assert_eq!(h.take(3).len(), 1);
}

#[test]
fn congestion_clears_when_the_queue_drains() {
    let (mut h, [a, ..]) = lounge_with(Config {
        queue_bytes: 100_000,
        ..cfg()
    });
    h.outs[&2].0.borrow_mut().limit = Some(100_000);
    let body = big_body(200_000);
    h.feed(1, &Chunk::whole("cd01", &body).bytes(&a));
    assert!(h.sw.congested_since(2).is_some());
    h.outs[&2].0.borrow_mut().queued = 0;
    h.sw.handle_timeout(h.now + Duration::from_secs(1));
    assert_eq!(h.sw.congested_since(2), None);
    h.sw.handle_timeout(h.now + Duration::from_secs(60));
    assert_eq!(h.closed(2), None);
}

// ---- leave ----

#[test]
fn leave_closes_the_connection_and_stops_delivery() {
    let (mut h, [a, b, c]) = lounge();
    assert!(h.sw.leave(&b).is_some());
    assert_eq!(h.closed(2), Some(CloseReason::Left));
    assert_eq!(h.sw.session_of(2), None);
    assert!(h.sw.leave(&b).is_none());
    let body = cpim_msg(
        "<sip:alice@example.com>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "bye bob",
    );
    h.feed(1, &Chunk::whole("lv01", &body).bytes(&a));
    assert!(h.take(2).is_empty());
    assert_eq!(h.take(3).len(), 1);
    // A dropped TCP connection unbinds but the participant stays registered.
    h.sw.handle_closed(3);
    assert!(h.sw.registry.get(&c).is_some());
    assert_eq!(h.sw.gauges().bound_sessions, 1);
    assert_eq!(h.sw.gauges().participants, 2);
}

// ---- nickname ----

fn nickname_req(tid: &str, sid: &str, nick: Option<&str>) -> Vec<u8> {
    nickname_req_with(tid, sid, nick, None, Continuation::End)
}

fn nickname_req_with(
    tid: &str,
    sid: &str,
    nick: Option<&str>,
    failure: Option<ReportMode>,
    cont: Continuation,
) -> Vec<u8> {
    let mut r = RequestHead::new(
        tid,
        Method::Nickname,
        vec![relay_path(sid)],
        vec![peer_path(sid)],
    );
    r.use_nickname = nick.map(str::to_string);
    r.failure_report = failure;
    let mut out = Vec::new();
    encode::request_head(&r, &mut out);
    encode::end_line(tid, cont, false, &mut out);
    out
}

impl H {
    /// Sends a NICKNAME on `conn`; returns the question the switch put to the focus (None: it
    /// asked nothing) and asserts that nothing was answered yet when it asked.
    fn ask(
        &mut self,
        conn: ConnId,
        sid: &str,
        tid: &str,
        nick: Option<&str>,
    ) -> Option<NicknameAsk> {
        self.feed(conn, &nickname_req(tid, sid, nick));
        let asked = self.sw.poll_action().map(|a| match a {
            Action::AskFocus(q) => q,
        });
        assert_eq!(self.sw.poll_action(), None, "one question per NICKNAME");
        if asked.is_some() {
            let got = self.take(conn);
            assert!(got.is_empty(), "answered before the focus did: {got:?}");
        }
        asked
    }

    /// The status of the one response `conn` got.
    fn status_of(&mut self, conn: ConnId) -> u16 {
        let got = self.take(conn);
        assert_eq!(got.len(), 1, "{got:?}");
        got[0].status().expect("a response")
    }

    fn display_name(&self, sid: &str) -> Option<String> {
        self.sw.registry.get(sid).unwrap().display_name.clone()
    }
}

fn says(h: &mut H, conn: ConnId, sid: &str, tid: &str, from: &str) -> u16 {
    let body = cpim_msg(from, &[&format!("<{CONF}>")], "text/plain", "x");
    h.feed(conn, &Chunk::whole(tid, &body).bytes(sid));
    let st = h.status_of(conn);
    h.take(1);
    h.take(3);
    st
}

#[test]
fn nickname_is_asked_to_the_focus_and_its_200_changes_the_enforced_name() {
    let (mut h, [_, b, _]) = lounge();
    let q = h.ask(2, &b, "nk01", Some("Robert")).expect("asked");
    assert_eq!(
        q,
        NicknameAsk {
            id: q.id,
            conn: 2,
            transaction_id: "nk01".into(),
            session: b.clone(),
            conference: CONF.into(),
            nickname: "Robert".into(),
        }
    );
    // The name is not the relay's to decide: nothing changed yet.
    assert_eq!(h.display_name(&b).as_deref(), Some("bob"));
    assert_eq!(h.sw.focus_pending(), 1);
    assert_eq!(h.sw.poll_timeout(), Some(h.now + Duration::from_secs(1)));
    // The focus recorded the name as it spells it.
    h.sw.handle_focus_answer(h.now, q.id, FocusOutcome::Named(Some("Robert".into())));
    let got = h.take(2);
    assert_eq!(got.len(), 1);
    let Got::Resp(r) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(r.status, 200);
    assert_eq!(r.transaction_id, "nk01");
    assert_eq!(r.to_path, vec![peer_path(&b)]);
    assert_eq!(r.from_path, vec![relay_path(&b)]);
    assert_eq!(h.display_name(&b).as_deref(), Some("Robert"));
    assert_eq!(h.sw.focus_pending(), 0);
    assert!(h.take(1).is_empty() && h.take(3).is_empty());
    // The enforced name changed (RFC 8266 comparison).
    let anon = "sip:anonymous@anonymous.invalid";
    assert_eq!(
        says(&mut h, 2, &b, "nk02", &format!("\"bob\" <{anon}>")),
        403
    );
    assert_eq!(
        says(&mut h, 2, &b, "nk03", &format!("\"robert\" <{anon}>")),
        200
    );
    // A second answer to the same question is ignored.
    h.sw.handle_focus_answer(h.now, q.id, FocusOutcome::Named(Some("Other".into())));
    assert!(h.take(2).is_empty());
    assert_eq!(h.display_name(&b).as_deref(), Some("Robert"));
}

#[test]
fn empty_use_nickname_asks_the_focus_to_remove_the_name() {
    let (mut h, [_, b, _]) = lounge();
    let q = h.ask(2, &b, "nk01", Some("")).expect("asked");
    assert_eq!(q.nickname, "");
    h.sw.handle_focus_answer(h.now, q.id, FocusOutcome::Named(None));
    assert_eq!(h.status_of(2), 200);
    assert_eq!(h.display_name(&b), None);
    let anon = "sip:anonymous@anonymous.invalid";
    assert_eq!(
        says(&mut h, 2, &b, "nk02", &format!("\"bob\" <{anon}>")),
        403
    );
    assert_eq!(says(&mut h, 2, &b, "nk03", &format!("<{anon}>")), 200);
}

#[test]
fn focus_refusals_become_msrp_codes() {
    let (mut h, [_, b, _]) = lounge();
    let cases: Vec<(FocusOutcome, u16)> = vec![
        (
            FocusOutcome::Refused {
                code: 425,
                message: "nickname in use".into(),
            },
            425,
        ),
        (
            FocusOutcome::Refused {
                code: 424,
                message: "invalid nickname".into(),
            },
            424,
        ),
        (
            FocusOutcome::Refused {
                code: 403,
                message: "not allowed".into(),
            },
            403,
        ),
        // The focus does not know the session: the relay and the focus disagree; 500.
        (
            FocusOutcome::Refused {
                code: 404,
                message: "no session".into(),
            },
            500,
        ),
        (
            FocusOutcome::Refused {
                code: 500,
                message: "Method Not Found".into(),
            },
            500,
        ),
        (FocusOutcome::Failed("unreachable".into()), 500),
    ];
    let failures_before = h
        .metrics
        .focus_failures
        .load(std::sync::atomic::Ordering::Relaxed);
    for (i, (outcome, code)) in cases.into_iter().enumerate() {
        let tid = format!("nkr{i:02}");
        let q = h.ask(2, &b, &tid, Some("ALICE")).expect("asked");
        h.sw.handle_focus_answer(h.now, q.id, outcome);
        let got = h.take(2);
        assert_eq!(got.len(), 1, "{got:?}");
        let Got::Resp(r) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!((r.status, r.transaction_id.as_str()), (code, tid.as_str()));
        assert_eq!(h.display_name(&b).as_deref(), Some("bob"), "unchanged");
    }
    assert_eq!(
        h.metrics
            .focus_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            - failures_before,
        3
    );
    assert_eq!(h.metrics.refusals(425), 1);
}

#[test]
fn local_checks_answer_without_the_focus() {
    let (mut h, [a, b, _]) = lounge();
    // Missing Use-Nickname: 424.
    assert_eq!(h.ask(2, &b, "nk01", None), None);
    assert_eq!(h.status_of(2), 424);
    // Over 1023 octets (the 1023 octets themselves go to the focus).
    let long = "é".repeat(512);
    assert_eq!(long.len(), 1024);
    assert_eq!(h.ask(2, &b, "nk02", Some(&long)), None);
    assert_eq!(h.status_of(2), 424);
    let q = h
        .ask(2, &b, "nk03", Some(&"x".repeat(1023)))
        .expect("asked");
    h.sw.handle_focus_answer(
        h.now,
        q.id,
        FocusOutcome::Refused {
            code: 424,
            message: "too long".into(),
        },
    );
    assert_eq!(h.status_of(2), 424);
    // Control characters (the codec lets TAB and C1 controls through): 424.
    assert_eq!(h.ask(2, &b, "nk04", Some("ro\tbert")), None);
    assert_eq!(h.status_of(2), 424);
    assert_eq!(h.ask(2, &b, "nk04b", Some("ro\u{85}bert")), None);
    assert_eq!(h.status_of(2), 424);
    // Blank names are the focus's call (its rules, its 424).
    assert!(h.ask(2, &b, "nk05", Some("   ")).is_some());
    // Without the nickname chatroom token: 403, nothing asked.
    h.set(&a, |p| p.chatroom = vec!["private-messages".into()]);
    assert_eq!(h.ask(1, &a, "nk06", Some("Zed")), None);
    assert_eq!(h.status_of(1), 403);
    // `nicknames` (the plural token) is accepted too.
    h.set(&a, |p| p.chatroom = vec!["nicknames".into()]);
    assert!(h.ask(1, &a, "nk07", Some("Zed")).is_some());
}

#[test]
fn without_a_focus_nickname_is_403_and_with_nicknames_off_501() {
    let (mut h, [_, b, _]) = lounge_with(Config {
        focus: false,
        ..cfg()
    });
    assert_eq!(h.ask(2, &b, "nk01", Some("Robert")), None);
    assert_eq!(h.status_of(2), 403);
    assert_eq!(h.display_name(&b).as_deref(), Some("bob"));
    let (mut h, [_, b, _]) = lounge_with(Config {
        nicknames: false,
        ..cfg()
    });
    assert_eq!(h.ask(2, &b, "nk01", Some("Robert")), None);
    assert_eq!(h.status_of(2), 501);
}

#[test]
fn nickname_is_answered_even_with_failure_report_no_and_not_when_aborted() {
    let (mut h, [_, b, _]) = lounge();
    h.feed(
        2,
        &nickname_req_with(
            "nk01",
            &b,
            Some("Robert"),
            Some(ReportMode::No),
            Continuation::End,
        ),
    );
    let Some(Action::AskFocus(q)) = h.sw.poll_action() else {
        panic!("not asked")
    };
    h.sw.handle_focus_answer(
        h.now,
        q.id,
        FocusOutcome::Refused {
            code: 425,
            message: "in use".into(),
        },
    );
    assert_eq!(h.status_of(2), 425);
    // A NICKNAME its sender aborts is neither asked nor answered.
    h.feed(
        2,
        &nickname_req_with("nk02", &b, Some("Robert"), None, Continuation::Abort),
    );
    assert_eq!(h.sw.poll_action(), None);
    assert!(h.take(2).is_empty());
}

#[test]
fn focus_timeout_answers_500_and_a_late_200_still_renames() {
    let (mut h, [_, b, _]) = lounge();
    let t0 = h.now;
    let q = h.ask(2, &b, "nk01", Some("Robert")).expect("asked");
    h.sw.handle_timeout(t0 + Duration::from_millis(999));
    assert!(h.take(2).is_empty());
    h.sw.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(h.status_of(2), 500);
    assert_eq!(h.sw.focus_pending(), 0);
    assert_eq!(h.display_name(&b).as_deref(), Some("bob"));
    // The focus's table changed after all: the relay follows it (the participant, told 500,
    // is told nothing more).
    h.sw.handle_focus_answer(
        t0 + Duration::from_secs(2),
        q.id,
        FocusOutcome::Named(Some("Robert".into())),
    );
    assert!(h.take(2).is_empty());
    assert_eq!(h.display_name(&b).as_deref(), Some("Robert"));
    // A late refusal changes nothing; after the late window the question is forgotten.
    let q2 = h.ask(2, &b, "nk02", Some("Bobby")).expect("asked");
    let t1 = t0 + Duration::from_secs(3);
    h.sw.handle_timeout(t1);
    assert_eq!(h.status_of(2), 500);
    assert_eq!(h.sw.poll_timeout(), Some(t1 + LATE_ANSWER_WINDOW));
    h.sw.handle_timeout(t1 + LATE_ANSWER_WINDOW);
    assert_eq!(h.sw.poll_timeout(), None);
    h.sw.handle_focus_answer(
        t1 + LATE_ANSWER_WINDOW,
        q2.id,
        FocusOutcome::Named(Some("Bobby".into())),
    );
    assert!(h.take(2).is_empty());
    assert_eq!(h.display_name(&b).as_deref(), Some("Robert"));
}

#[test]
fn answers_for_a_connection_that_is_gone_are_dropped() {
    let (mut h, [_, b, c]) = lounge();
    let q = h.ask(2, &b, "nk01", Some("Robert")).expect("asked");
    let q3 = h.ask(3, &c, "nk02", Some("Carol")).expect("asked");
    h.sw.handle_closed(2);
    h.sw.handle_focus_answer(h.now, q.id, FocusOutcome::Named(Some("Robert".into())));
    assert!(
        h.take(2).is_empty(),
        "nothing is sent on a closed connection"
    );
    // The participant is still registered (it may reconnect): it speaks under the name the
    // focus's table now holds.
    assert_eq!(h.display_name(&b).as_deref(), Some("Robert"));
    // A participant that left: the answer is dropped, nothing breaks.
    h.sw.leave(&c);
    h.sw.handle_focus_answer(h.now, q3.id, FocusOutcome::Named(Some("Carol".into())));
    assert!(h.take(3).is_empty());
    // Unknown ids are ignored.
    h.sw.handle_focus_answer(h.now, 999_999, FocusOutcome::Named(Some("X".into())));
    assert_eq!(h.sw.focus_pending(), 0);
    // A timeout for a gone connection answers nobody.
    let (mut h, [_, b, _]) = lounge();
    h.ask(2, &b, "nk03", Some("Robert")).expect("asked");
    h.sw.handle_closed(2);
    h.sw.handle_timeout(h.now + Duration::from_secs(1));
    assert!(h.take(2).is_empty());
}

#[test]
fn questions_waiting_per_connection_are_bounded() {
    let (mut h, [_, b, _]) = lounge();
    let mut ids = Vec::new();
    for i in 0..MAX_FOCUS_ASKS_PER_CONNECTION {
        ids.push(
            h.ask(2, &b, &format!("nkq{i:02}"), Some("Robert"))
                .expect("asked")
                .id,
        );
    }
    assert_eq!(h.ask(2, &b, "nkmore", Some("Robert")), None);
    assert_eq!(h.status_of(2), 500);
    // Ids are distinct; answering one makes room again.
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), MAX_FOCUS_ASKS_PER_CONNECTION);
    h.sw.handle_focus_answer(h.now, ids[0], FocusOutcome::Named(Some("Robert".into())));
    assert_eq!(h.status_of(2), 200);
    assert!(h.ask(2, &b, "nkagain", Some("Robert")).is_some());
}

#[test]
fn malformed_requests_get_400_and_the_connection_goes_on() {
    let (mut h, [a, ..]) = lounge();
    // A SEND whose Byte-Range is garbage.
    let raw = format!(
        "MSRP bad00001 SEND\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: q\r\nByte-Range: x\r\n-------bad00001$\r\n",
        relay_path(&a),
        peer_path(&a)
    );
    h.feed(1, raw.as_bytes());
    let got = h.take(1);
    assert_eq!(got[0].status(), Some(400), "{got:?}");
    h.feed(1, &bodiless("good0001", &a));
    assert_eq!(h.take(1)[0].status(), Some(200));
}

#[test]
fn refused_messages_answer_every_chunk_alike_and_are_forgotten_at_their_end() {
    let (mut h, [a, ..]) = lounge();
    // Not CPIM, in two chunks: 415 twice.
    let text = vec![b'x'; 1000];
    let first = Chunk {
        content_type: "text/plain",
        cont: Continuation::More,
        total: Some(1000),
        ..Chunk::whole("rf01", &text[..600])
    };
    let second = Chunk {
        tid: "rf02",
        start: 601,
        body: &text[600..],
        cont: Continuation::End,
        ..first
    };
    h.feed(1, &first.bytes(&a));
    assert_eq!(h.sw.in_flight(), 1);
    h.feed(1, &second.bytes(&a));
    let st: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(st, vec![415, 415]);
    assert_eq!(h.sw.in_flight(), 0);
    // A spoof refused on its first chunk: later chunks get 403, then it is forgotten.
    let spoof = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "a longer text",
    );
    let got = chunked(&mut h, &a, "rf10", &spoof, &[spoof.len() - 3, 0], true);
    assert!(got.is_empty());
    let st: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(st, vec![403, 403]);
    assert_eq!(h.sw.in_flight(), 0);
    assert!(h.take(3).is_empty());
    // The per-connection limit of messages in flight.
    let body = cpim_msg(
        "<sip:alice@example.com>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "x",
    );
    for i in 0..MAX_IN_FLIGHT_PER_CONNECTION {
        let tid = format!("fl{i:04}");
        let c = Chunk {
            cont: Continuation::More,
            total: None,
            ..Chunk::whole(&tid, &body)
        };
        h.feed(1, &c.bytes(&a));
    }
    let c = Chunk {
        cont: Continuation::More,
        total: None,
        ..Chunk::whole("flmore", &body)
    };
    h.feed(1, &c.bytes(&a));
    let st: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(st.last(), Some(&403));
    assert_eq!(h.sw.in_flight(), MAX_IN_FLIGHT_PER_CONNECTION);
}

// ---- review findings ----

/// A SEND chunk with an explicit Byte-Range (`end`/`total` None: `*`), as bytes on the wire.
#[allow(clippy::too_many_arguments)]
fn ranged(
    tid: &str,
    mid: &str,
    sid: &str,
    start: u64,
    end: Option<u64>,
    total: Option<u64>,
    body: &[u8],
    cont: Continuation,
) -> Vec<u8> {
    let mut h = RequestHead::new(
        tid,
        Method::Send,
        vec![relay_path(sid)],
        vec![peer_path(sid)],
    );
    h.message_id = Some(mid.into());
    h.byte_range = Some(ByteRange { start, end, total });
    if !body.is_empty() {
        h.content_type = Some("message/cpim".into());
    }
    let mut out = Vec::new();
    encode::request_head(&h, &mut out);
    out.extend_from_slice(body);
    encode::end_line(tid, cont, !body.is_empty(), &mut out);
    out
}

/// The same, handed to the switch as events (bypassing the codec's own Byte-Range checks).
fn ranged_events(h: &mut H, conn: ConnId, sid: &str, tid: &str, start: u64, body: &[u8]) {
    let mut head = RequestHead::new(
        tid,
        Method::Send,
        vec![relay_path(sid)],
        vec![peer_path(sid)],
    );
    head.message_id = Some("mhuge".into());
    head.byte_range = Some(ByteRange {
        start,
        end: None,
        total: None,
    });
    head.content_type = Some("message/cpim".into());
    h.sw.handle_event(h.now, conn, Event::Request(head));
    h.sw.handle_event(h.now, conn, Event::Body(body.to_vec()));
    h.sw.handle_event(
        h.now,
        conn,
        Event::End {
            transaction_id: tid.into(),
            continuation: Continuation::More,
            body_len: body.len() as u64,
        },
    );
}

/// Every SEND frame the switch wrote: its Byte-Range is consistent (end ≥ start - 1, end ≤ total).
fn assert_ranges_consistent(got: &[Got]) {
    for g in got {
        if let Got::Req { head, body, .. } = g {
            let r = head.byte_range.expect("Byte-Range on every SEND");
            let end = r.end.expect("the relay always writes the end");
            assert_eq!(end + 1, r.start + body.len() as u64, "{r:?}");
            if let Some(t) = r.total {
                assert!(end <= t, "Byte-Range end beyond total: {r:?}");
            }
        }
    }
}

/// Finding 1: a later chunk whose start (or declared end) is beyond max-size gets 413 and stops
/// the message (`#` to recipients that got its beginning); offsets near the codec's cap and
/// beyond it (fed past the codec) never overflow.
#[test]
fn chunks_starting_or_ending_beyond_max_size_get_413() {
    let (mut h, [a, ..]) = lounge_with(Config {
        max_size: 100_000,
        ..cfg()
    });
    let body = big_body(70_000);
    h.feed(
        1,
        &ranged(
            "bs01",
            "mbs001",
            &a,
            1,
            Some(70_000),
            None,
            &body,
            Continuation::More,
        ),
    );
    let got = h.take(1);
    assert_eq!(got[0].status(), Some(200), "{got:?}");
    assert_eq!(h.take(2).len(), 1, "the first 64 KiB went out");
    // A later chunk that starts beyond max-size (at the codec's largest value).
    // The codec's largest Byte-Range value (proto's MAX_BYTE_RANGE_VALUE, not exported).
    let cap: u64 = 1 << 53;
    h.feed(
        1,
        &ranged(
            "bs02",
            "mbs001",
            &a,
            cap,
            None,
            None,
            b"x",
            Continuation::More,
        ),
    );
    assert_eq!(h.take(1)[0].status(), Some(413));
    let got = h.take(2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].req().2, Continuation::Abort);
    assert_eq!(got[0].req().0.byte_range.unwrap().start, 65_537);
    assert_ranges_consistent(&got);
    let got = h.take(3);
    assert_eq!(got.len(), 2, "conn 3 got the beginning and its `#` too");
    assert_eq!(got[1].req().2, Continuation::Abort);
    // Its last chunk gets 413 as well, then the record is gone.
    h.feed(
        1,
        &ranged(
            "bs03",
            "mbs001",
            &a,
            cap,
            Some(cap - 1),
            Some(cap - 1),
            b"",
            Continuation::End,
        ),
    );
    assert_eq!(h.take(1)[0].status(), Some(413));
    assert_eq!(h.sw.in_flight(), 0);

    // A declared end beyond max-size, total unknown: 413 before any byte goes out.
    h.feed(
        1,
        &ranged(
            "be01",
            "mbe001",
            &a,
            1,
            Some(100_001),
            None,
            &body,
            Continuation::End,
        ),
    );
    assert_eq!(h.take(1)[0].status(), Some(413));
    assert!(h.take(2).is_empty());
    // A message of exactly max-size bytes ends with a bodiless chunk just past them: fine.
    let full = big_body(100_000);
    for piece in ranged(
        "bl01",
        "mbl001",
        &a,
        1,
        Some(100_000),
        None,
        &full,
        Continuation::More,
    )
    .chunks(7919)
    {
        h.feed(1, piece);
    }
    h.feed(
        1,
        &ranged(
            "bl02",
            "mbl001",
            &a,
            100_001,
            Some(100_000),
            None,
            b"",
            Continuation::End,
        ),
    );
    let st: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(st, vec![200, 200]);
    let got = h.take(2);
    assert_eq!(got.last().unwrap().req().2, Continuation::End);
    let re: Vec<u8> = got.iter().flat_map(|g| g.req().1.to_vec()).collect();
    assert_eq!(re, full);
    assert_ranges_consistent(&got);
    h.take(3);
    // One further is not.
    let small = big_body(1000);
    h.feed(
        1,
        &ranged(
            "bl03",
            "mbl002",
            &a,
            1,
            Some(1000),
            None,
            &small,
            Continuation::More,
        ),
    );
    h.feed(
        1,
        &ranged(
            "bl04",
            "mbl002",
            &a,
            100_002,
            Some(100_001),
            None,
            b"",
            Continuation::End,
        ),
    );
    let st: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(st, vec![200, 413]);
    assert!(h.take(2).is_empty(), "nothing of it had gone out: no `#`");
    assert_eq!(h.sw.in_flight(), 0);
    assert_eq!(h.metrics.drops(DropReason::MaxSize), 3);

    // Past the codec, offsets at u64::MAX neither panic nor wrap.
    let (mut h, [a, ..]) = lounge();
    ranged_events(&mut h, 1, &a, "hu01", 1, &small);
    ranged_events(&mut h, 1, &a, "hu02", u64::MAX, b"0123456789");
    let st: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(st, vec![200, 413]);
    let (mut h, [a, ..]) = lounge_with(Config {
        max_size: u64::MAX,
        ..cfg()
    });
    ranged_events(&mut h, 1, &a, "hu01", 1, &small);
    ranged_events(&mut h, 1, &a, "hu02", u64::MAX - 3, b"0123456789");
    ranged_events(&mut h, 1, &a, "hu03", u64::MAX, &big_body(CHUNK + 10));
    h.sw.handle_closed(1);
    assert_eq!(h.sw.in_flight(), 0);
}

/// Finding 1: more bytes than the sender's declared total → 400, distribution stops, recipients
/// that got the beginning get `#`, and no frame ever carries an end beyond its total.
#[test]
fn bytes_beyond_the_declared_total_get_400() {
    let (mut h, [a, ..]) = lounge();
    let body = big_body(100_000);
    // Declares 80 000 bytes, sends 100 000 (end `*`, so the codec cannot tell), in socket-sized
    // pieces: the first 64 KiB go out before the excess shows.
    let bytes = ranged(
        "tt01",
        "mtt001",
        &a,
        1,
        None,
        Some(80_000),
        &body,
        Continuation::End,
    );
    for piece in bytes.chunks(7919) {
        h.feed(1, piece);
    }
    let st: Vec<_> = h.take(1).iter().filter_map(Got::status).collect();
    assert_eq!(st, vec![400]);
    for conn in [2, 3] {
        let got = h.take(conn);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].req().1.len(), CHUNK);
        assert_eq!(got[0].req().0.byte_range.unwrap().total, Some(80_000));
        assert_eq!(got[1].req().2, Continuation::Abort);
        assert!(got.iter().all(|g| g.req().2 != Continuation::End));
        assert_ranges_consistent(&got);
    }
    assert_eq!(h.sw.in_flight(), 0);
    assert_eq!(h.metrics.drops(DropReason::Refused), 1);

    // A later chunk lowering the total under what was received: 400 as well.
    h.feed(
        1,
        &ranged(
            "tl01",
            "mtl001",
            &a,
            1,
            Some(70_000),
            None,
            &body[..70_000],
            Continuation::More,
        ),
    );
    assert_eq!(h.take(1)[0].status(), Some(200));
    // It continues where the bytes end (an earlier start is a rewrite, refused 403 before any
    // look at the total); the codec refuses `70001-*/50000` itself, so it is fed as events.
    let mut head = RequestHead::new(
        "tl02",
        Method::Send,
        vec![relay_path(&a)],
        vec![peer_path(&a)],
    );
    head.message_id = Some("mtl001".into());
    head.byte_range = Some(ByteRange {
        start: 70_001,
        end: None,
        total: Some(50_000),
    });
    head.content_type = Some("message/cpim".into());
    h.sw.handle_event(h.now, 1, Event::Request(head));
    h.sw.handle_event(h.now, 1, Event::Body(body[70_000..70_010].to_vec()));
    h.sw.handle_event(
        h.now,
        1,
        Event::End {
            transaction_id: "tl02".into(),
            continuation: Continuation::More,
            body_len: 10,
        },
    );
    assert_eq!(h.take(1)[0].status(), Some(400));
    let got = h.take(2);
    assert_eq!(got.last().unwrap().req().2, Continuation::Abort);
    assert_ranges_consistent(&got);
    h.take(3);
    // Later chunks of it get 400 too; the end-line forgets it.
    h.feed(
        1,
        &ranged(
            "tl03",
            "mtl001",
            &a,
            70_001,
            Some(70_000),
            None,
            b"",
            Continuation::End,
        ),
    );
    assert_eq!(h.take(1)[0].status(), Some(400));
    assert_eq!(h.sw.in_flight(), 0);

    // A total that is honest (bytes == total) goes through unchanged.
    let got = chunked(&mut h, &a, "tok1", &body, &[30_000, 0], true);
    assert_eq!(got.last().unwrap().req().2, Continuation::End);
    assert_ranges_consistent(&got);
}

/// Finding 5: the CPIM From display name is compared by RFC 8266 (case, width, spaces, NFKC),
/// not by the confusable skeleton: look-alikes are other names.
#[test]
fn cpim_display_name_is_the_rfc_8266_nickname_comparison_not_the_skeleton() {
    let (mut h, [_, b, _]) = lounge();
    let anon = "sip:anonymous@anonymous.invalid";
    for (i, ok) in ["bob", "Bob", "BOB", "ＢＯＢ", "  bob  "]
        .iter()
        .enumerate()
    {
        let tid = format!("dn{i:02}");
        assert_eq!(
            says(&mut h, 2, &b, &tid, &format!("\"{ok}\" <{anon}>")),
            200,
            "{ok:?}"
        );
    }
    for (i, bad) in [
        "B0b",
        "b0b",
        "b\u{043E}b",
        "\u{202E}bob",
        "bob\u{200B}",
        "rob",
    ]
    .iter()
    .enumerate()
    {
        let tid = format!("dx{i:02}");
        assert_eq!(
            says(&mut h, 2, &b, &tid, &format!("\"{bad}\" <{anon}>")),
            403,
            "{bad:?}"
        );
    }
    assert!(same_display_name("Richard \u{2163}", "richard iv"));
    assert!(!same_display_name("\u{3C3}", "\u{3C2}"));
    // A name PRECIS refuses is equal to itself only, byte for byte.
    h.set(&b, |p| p.display_name = Some("x\u{200B}y".into()));
    h.sw.registry
        .set_display_name(&b, Some("x\u{200B}y".into()));
    assert_eq!(
        says(&mut h, 2, &b, "dz01", &format!("\"x\u{200B}y\" <{anon}>")),
        200
    );
    assert_eq!(
        says(&mut h, 2, &b, "dz02", &format!("\"X\u{200B}y\" <{anon}>")),
        403
    );
    assert_eq!(
        says(&mut h, 2, &b, "dz03", &format!("\"xy\" <{anon}>")),
        403
    );
}

/// Finding 6: a repeated join keeps the first join's peer path and identity: it cannot redirect
/// the session to another peer or let it speak as someone else.
#[test]
fn a_replayed_join_cannot_redirect_a_session() {
    let mut h = H::new();
    let a = h.join(
        "alice",
        CONF,
        "sip:anonymous@anonymous.invalid",
        Some("ann"),
    );
    let attacker = "msrp://203.0.113.9:4000/evil;tcp";
    h.sw.join(Participant {
        session: a.clone(),
        conference: CONF.into(),
        uri: "sip:alice@example.com".into(),
        display_name: Some("Alice".into()),
        anonymous: false,
        peer_path: vec![attacker.into()],
        accept_wrapped_types: vec![],
        chatroom: vec![],
        private_messages_allowed: true,
    })
    .unwrap();
    assert_eq!(h.sw.gauges().participants, 1);
    // Binding from the replayed path: 403.
    h.open(1);
    let mut req = RequestHead::new(
        "rp01",
        Method::Send,
        vec![relay_path(&a)],
        vec![attacker.into()],
    );
    req.message_id = Some("mrp01".into());
    let mut bytes = Vec::new();
    encode::request_head(&req, &mut bytes);
    encode::end_line("rp01", Continuation::End, false, &mut bytes);
    h.feed(1, &bytes);
    assert_eq!(h.take(1)[0].status(), Some(403));
    assert_eq!(h.sw.session_of(1), None);
    // The original peer binds; it speaks under its first identity only.
    h.feed(1, &bodiless("rp02", &a));
    assert_eq!(h.take(1)[0].status(), Some(200));
    let b = h.join("bob", CONF, "sip:anonymous2@anonymous.invalid", None);
    h.bind(2, &b);
    let body = cpim_msg(
        "\"Alice\" <sip:alice@example.com>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "I am alice",
    );
    h.feed(1, &Chunk::whole("rp03", &body).bytes(&a));
    assert_eq!(h.take(1)[0].status(), Some(403));
    let body = cpim_msg(
        "\"ann\" <sip:anonymous@anonymous.invalid>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "hi",
    );
    h.feed(1, &Chunk::whole("rp04", &body).bytes(&a));
    assert_eq!(h.take(1)[0].status(), Some(200));
    assert_eq!(h.take(2).len(), 1);
}

/// Finding 7: a private message to a participant who is registered but not connected is 404
/// (not 200 and dropped); once connected it is delivered; after a disconnect, 404 again.
#[test]
fn private_message_to_a_registered_but_unconnected_participant_is_404() {
    let (mut h, [_, b, _]) = lounge();
    let d = h.join(
        "dave",
        CONF,
        "sip:anonymous3@anonymous.invalid",
        Some("dave"),
    );
    let psst = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &["<sip:anonymous3@anonymous.invalid>"],
        "text/plain",
        "psst",
    );
    h.feed(2, &Chunk::whole("pu01", &psst).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(404));
    assert!(h.take(1).is_empty() && h.take(3).is_empty());
    h.bind(4, &d);
    h.feed(2, &Chunk::whole("pu02", &psst).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(200));
    assert_eq!(h.take(4)[0].req().1, &psst[..]);
    h.sw.handle_closed(4);
    h.feed(2, &Chunk::whole("pu03", &psst).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(404));
    // Messages to the room still go to whoever is connected.
    let room = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "all",
    );
    h.feed(2, &Chunk::whole("pu04", &room).bytes(&b));
    assert_eq!(h.take(2)[0].status(), Some(200));
    assert_eq!(h.take(1).len(), 1);
    assert_eq!(h.metrics.refusals(404), 2);
}

/// Finding 3 (sans-IO part), revised by issue 7: at the total and unbound caps the switch makes
/// room by evicting the oldest unbound connection (a silent one before one that has spoken);
/// binding frees an unbound place, a close frees both; refused only when nothing can be evicted.
#[test]
fn admit_evicts_the_oldest_unbound_connection_at_the_caps() {
    let mut h = H::with(Config {
        max_connections: 3,
        max_unbound: 2,
        ..cfg()
    });
    let a = h.join("alice", CONF, "sip:alice@example.com", None);
    let ip = local(1);
    assert_eq!(h.sw.admit(ip), Ok(()));
    h.open_from(1, ip);
    h.now += Duration::from_millis(1);
    h.open_from(2, ip);
    assert_eq!(h.sw.unbound(), 2);
    // 1 is older, but it has started to speak: 2 (silent) goes first.
    h.sw.handle_bytes(1);
    assert_eq!(h.sw.admit(ip), Ok(()));
    assert_eq!(h.closed(2), Some(CloseReason::Evicted));
    assert_eq!(h.closed(1), None);
    assert_eq!(
        h.metrics
            .evicted_max_unbound
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    h.now += Duration::from_millis(1);
    h.open_from(3, ip);
    h.feed(1, &bodiless("ad01", &a));
    assert_eq!(h.take(1)[0].status(), Some(200));
    assert_eq!(h.sw.unbound(), 1);
    assert_eq!(h.sw.admit(ip), Ok(()));
    h.now += Duration::from_millis(1);
    h.open_from(4, ip);
    // Three open (one bound): the total cap evicts the oldest unbound one, 3.
    assert_eq!(h.sw.admit(ip), Ok(()));
    assert_eq!(h.closed(3), Some(CloseReason::Evicted));
    assert_eq!(
        h.metrics
            .evicted_max_connections
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(h.sw.gauges().connections, 2);
    // Nothing unbound to evict: refused.
    let mut h = H::with(Config {
        max_connections: 1,
        ..cfg()
    });
    let a = h.join("alice", CONF, "sip:alice@example.com", None);
    h.open_from(1, ip);
    h.feed(1, &bodiless("ad02", &a));
    assert_eq!(h.sw.admit(ip), Err(ConnLimit::Connections));
    h.sw.handle_closed(1);
    assert_eq!(h.sw.admit(ip), Ok(()));
    let mut h = H::with(Config {
        max_unbound: 0,
        ..cfg()
    });
    assert_eq!(h.sw.admit(ip), Err(ConnLimit::Unbound));
}

/// Issue 7: a flood from one address evicts only its own oldest unbound connections once it
/// reaches the per-address cap; other addresses keep theirs, and a newcomer on the flooding
/// address (a participant behind the same NAT or SBC) gets in and binds.
#[test]
fn the_per_address_cap_evicts_that_address_s_oldest_unbound_connection() {
    let mut h = H::with(Config {
        max_unbound_per_address: 3,
        ..cfg()
    });
    let a = h.join("alice", CONF, "sip:alice@example.com", None);
    let (flood, other) = (local(1), local(2));
    h.open_from(100, other);
    for id in 1..=3 {
        h.now += Duration::from_millis(1);
        assert_eq!(h.sw.admit(flood), Ok(()));
        h.open_from(id, flood);
    }
    assert_eq!((h.sw.unbound_from(flood), h.sw.unbound_from(other)), (3, 1));
    for id in 4..=10 {
        h.now += Duration::from_millis(1);
        assert_eq!(h.sw.admit(flood), Ok(()));
        h.open_from(id, flood);
        assert_eq!(h.closed(id - 3), Some(CloseReason::Evicted), "{id}");
        assert_eq!(h.sw.unbound_from(flood), 3);
    }
    assert_eq!(h.closed(100), None);
    assert_eq!(
        h.metrics
            .evicted_per_address
            .load(std::sync::atomic::Ordering::Relaxed),
        7
    );
    // The participant on the flooding address connects and binds at once.
    h.now += Duration::from_millis(1);
    assert_eq!(h.sw.admit(flood), Ok(()));
    h.open_from(11, flood);
    h.feed(11, &bodiless("pa01", &a));
    assert_eq!(h.take(11)[0].status(), Some(200));
    assert_eq!(h.sw.unbound_from(flood), 2);
    // Bound, it is out of reach of further evictions.
    for id in 12..=20 {
        h.now += Duration::from_millis(1);
        assert_eq!(h.sw.admit(flood), Ok(()));
        h.open_from(id, flood);
    }
    assert_eq!(h.closed(11), None);
    assert_eq!(h.sw.session_of(11), Some(a.as_str()));
    // A closed connection leaves no trace in the indexes.
    for id in 18..=20 {
        h.sw.handle_closed(id);
    }
    h.sw.handle_closed(100);
    assert_eq!((h.sw.unbound_from(flood), h.sw.unbound_from(other)), (0, 0));
    assert!(h.sw.unbound_by_addr.is_empty() && h.sw.unbound_age.is_empty());
    let mut h = H::with(Config {
        max_unbound_per_address: 0,
        ..cfg()
    });
    assert_eq!(h.sw.admit(flood), Err(ConnLimit::PerAddress));
}

/// Issue 7: a connection that sends no byte within the first-byte timeout is closed (counted);
/// one that has sent something is left to the bind timeout.
#[test]
fn silent_connections_are_closed_after_the_first_byte_timeout() {
    let mut h = H::with(Config {
        first_byte_timeout: Duration::from_secs(2),
        ..cfg()
    });
    h.open(1);
    h.open(2);
    h.sw.handle_bytes(2);
    h.feed(2, b"MSRP a");
    assert_eq!(h.sw.poll_timeout(), Some(h.now + Duration::from_secs(2)));
    h.sw.handle_timeout(h.now + Duration::from_millis(1999));
    assert_eq!(h.closed(1), None);
    h.sw.handle_timeout(h.now + Duration::from_secs(2));
    assert_eq!(h.closed(1), Some(CloseReason::FirstByteTimeout));
    assert_eq!(h.closed(2), None);
    assert_eq!(
        h.metrics
            .first_byte_timeouts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(h.sw.poll_timeout(), Some(h.now + Duration::from_secs(5)));
    h.sw.handle_timeout(h.now + Duration::from_secs(5));
    assert_eq!(h.closed(2), Some(CloseReason::BindTimeout));
    assert!(h.sw.unbound_age.is_empty());
}

fn local(n: u8) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, n))
}

impl H {
    fn open_from(&mut self, conn: ConnId, ip: IpAddr) -> Fake {
        let f = Fake::default();
        self.sw.handle_open_from(self.now, conn, ip, f.clone());
        self.outs.insert(conn, f.clone());
        self.decs.insert(conn, Decoder::new(Limits::default()));
        f
    }
}

impl H {
    /// The in-flight indexes agree with the messages: every record is in its sender's index, every
    /// copy's recipient indexes it, and nothing else is indexed.
    fn check_indexes(&self) {
        let sending: usize = self.sw.conns.values().map(|c| c.sending.len()).sum();
        assert_eq!(sending, self.sw.messages.len());
        for (key, m) in &self.sw.messages {
            assert!(self.sw.conns[&key.0].sending.contains(&key.1), "{key:?}");
            for copy in &m.copies {
                if let Some(c) = self.sw.conns.get(&copy.conn) {
                    assert!(c.receiving.contains(key), "{key:?} → {}", copy.conn);
                }
            }
        }
        for (id, c) in &self.sw.conns {
            for key in &c.receiving {
                let m = &self.sw.messages[key];
                assert!(m.copies.iter().any(|cp| cp.conn == *id), "{key:?}");
            }
        }
    }
}

/// Finding 10: messages in flight are indexed by sender and by recipient (SEND handling and a
/// connection drop touch only their own messages); the indexes follow every way a message ends.
#[test]
fn in_flight_indexes_by_sender_and_recipient_stay_exact() {
    let (mut h, [a, b, _]) = lounge();
    let body = big_body(70_000);
    let more = |tid: &'static str| Chunk {
        cont: Continuation::More,
        total: None,
        ..Chunk::whole(tid, &[])
    };
    // Sixteen in flight from alice: the per-connection limit holds…
    let tids: Vec<String> = (0..MAX_IN_FLIGHT_PER_CONNECTION)
        .map(|i| format!("ix{i:04}"))
        .collect();
    for tid in &tids {
        let c = Chunk {
            body: &body,
            tid,
            mid: tid,
            ..more("")
        };
        h.feed(1, &c.bytes(&a));
    }
    h.check_indexes();
    assert_eq!(h.sw.conns[&1].sending.len(), MAX_IN_FLIGHT_PER_CONNECTION);
    assert_eq!(h.sw.conns[&2].receiving.len(), MAX_IN_FLIGHT_PER_CONNECTION);
    h.take(1);
    h.feed(
        1,
        &Chunk {
            body: &body,
            ..more("ixmore")
        }
        .bytes(&a),
    );
    assert_eq!(h.take(1)[0].status(), Some(403));
    // …and is per connection: bob may still send.
    let bobs = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "mine",
    );
    h.feed(
        2,
        &Chunk {
            body: &bobs,
            ..more("ixbob")
        }
        .bytes(&b),
    );
    assert_eq!(h.take(2).iter().filter_map(Got::status).next(), Some(200));
    h.check_indexes();
    // Ending them (end-line, abort, refusal) frees the places.
    for (i, tid) in tids.iter().enumerate() {
        let cont = if i % 2 == 0 {
            Continuation::End
        } else {
            Continuation::Abort
        };
        let end = ranged(
            &format!("e{tid}"),
            tid,
            &a,
            70_001,
            Some(70_000),
            None,
            b"",
            cont,
        );
        h.feed(1, &end);
    }
    h.check_indexes();
    assert!(h.sw.conns[&1].sending.is_empty());
    assert_eq!(h.sw.conns[&3].receiving.len(), 1, "bob's message only");
    // A recipient that goes stops its copies only; the message goes on to the others.
    h.take(3);
    h.sw.handle_closed(3);
    h.check_indexes();
    assert_eq!(h.metrics.drops(DropReason::RecipientGone), 1);
    let end = ranged(
        "ixbobend",
        "ixbob",
        &b,
        bobs.len() as u64 + 1,
        Some(bobs.len() as u64),
        None,
        b"",
        Continuation::End,
    );
    h.feed(2, &end);
    assert_eq!(h.take(1).last().unwrap().req().2, Continuation::End);
    assert!(h.sw.conns[&2].sending.is_empty());
    assert!(h.sw.conns[&1].receiving.is_empty());
    // A sender that goes aborts exactly its messages.
    for tid in ["ixa1", "ixa2"] {
        h.feed(
            1,
            &Chunk {
                body: &body,
                tid,
                mid: tid,
                ..more("")
            }
            .bytes(&a),
        );
    }
    h.check_indexes();
    h.take(2);
    h.sw.handle_closed(1);
    h.check_indexes();
    assert_eq!(h.sw.in_flight(), 0);
    let aborts = h
        .take(2)
        .iter()
        .filter(|g| g.req().2 == Continuation::Abort)
        .count();
    assert_eq!(aborts, 2);
    assert!(h.sw.conns[&2].receiving.is_empty());
}

// ---- issue 7: chunks cannot rewrite what was checked ----

/// What a forger writes: bob's identity in the CPIM From.
const FORGED_FROM: &[u8] = b"\"bob\" <sip:anonymous@anonymous.invalid>";

/// Alice's honest message and bob's (its text upper-cased), of equal length.
fn honest_and_forged(text: &str) -> (Vec<u8>, Vec<u8>) {
    let to = format!("<{CONF}>");
    let honest = cpim_msg(
        "\"Alice\" <sip:alice@example.com>",
        &[&to],
        "text/plain",
        text,
    );
    let forged = cpim_msg(
        std::str::from_utf8(FORGED_FROM).unwrap(),
        &[&to],
        "text/plain",
        &text.to_uppercase(),
    );
    (honest, forged)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every frame a recipient got: none carries the forged From or any byte of the forged message
/// beyond what it shares with the honest one, alone or reassembled by Byte-Range per Message-ID.
fn assert_no_forgery(got: &[Got], forged_text: &[u8]) {
    let mut by_mid: HashMap<String, Vec<u8>> = HashMap::new();
    for g in got {
        let Got::Req { head, body, .. } = g else {
            continue;
        };
        assert!(!contains(body, FORGED_FROM), "forged From forwarded");
        assert!(!contains(body, forged_text), "forged text forwarded");
        let r = head.byte_range.unwrap();
        let re = by_mid
            .entry(head.message_id.clone().unwrap_or_default())
            .or_default();
        let at = (r.start - 1) as usize;
        if re.len() < at + body.len() {
            re.resize(at + body.len(), 0);
        }
        re[at..at + body.len()].copy_from_slice(body);
    }
    for re in by_mid.values() {
        assert!(!contains(re, FORGED_FROM), "forged From after reassembly");
    }
}

/// Both other participants got the beginning and then `#`, and no `$`.
fn assert_ended_with_hash(h: &mut H, forged_text: &[u8]) {
    for conn in [2, 3] {
        let got = h.take(conn);
        assert_no_forgery(&got, forged_text);
        assert!(!got.is_empty(), "conn {conn} saw nothing");
        // (The last frame may carry the last held bytes, when the sender itself aborted.)
        assert_eq!(
            got.last().unwrap().req().2,
            Continuation::Abort,
            "conn {conn}: {got:?}"
        );
        assert!(got.iter().all(|g| g.req().2 != Continuation::End));
        assert_ranges_consistent(&got);
    }
}

fn statuses(h: &mut H, conn: ConnId) -> Vec<u16> {
    h.take(conn).iter().filter_map(Got::status).collect()
}

#[test]
fn a_chunk_restarting_at_1_with_another_from_is_403_and_recipients_see_hash() {
    let (mut h, [a, ..]) = lounge();
    let (honest, forged) = honest_and_forged("i am bob, really");
    let n = forged.len() as u64;
    h.feed(
        1,
        &ranged(
            "ov01",
            "mov001",
            &a,
            1,
            None,
            None,
            &honest,
            Continuation::More,
        ),
    );
    h.feed(
        1,
        &ranged(
            "ov02",
            "mov001",
            &a,
            1,
            Some(n),
            Some(n),
            &forged,
            Continuation::End,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![200, 403]);
    assert_ended_with_hash(&mut h, b"I AM BOB");
    assert_eq!(h.sw.in_flight(), 0);
    // The Message-ID is spent: a third chunk, wherever it starts, is refused and goes nowhere.
    for (tid, start) in [("ov03", 1), ("ov04", honest.len() as u64 + 1)] {
        h.feed(
            1,
            &ranged(
                tid,
                "mov001",
                &a,
                start,
                None,
                None,
                &forged,
                Continuation::End,
            ),
        );
        assert_eq!(statuses(&mut h, 1), vec![403]);
        assert!(h.take(2).is_empty() && h.take(3).is_empty());
    }
    assert_eq!(h.metrics.drops(DropReason::Refused), 3);
}

#[test]
fn a_chunk_overlapping_inside_the_cpim_headers_is_403() {
    let (mut h, [a, ..]) = lounge();
    let (honest, forged) = honest_and_forged("overlap inside");
    // Routed (the headers are whole), then a chunk from byte 7 — inside the From line — on.
    h.feed(
        1,
        &ranged(
            "oh01",
            "moh001",
            &a,
            1,
            None,
            None,
            &honest,
            Continuation::More,
        ),
    );
    h.feed(
        1,
        &ranged(
            "oh02",
            "moh001",
            &a,
            7,
            None,
            None,
            &forged[6..],
            Continuation::More,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![200, 403]);
    assert_ended_with_hash(&mut h, b"OVERLAP INSIDE");
    // Its end-line gets 403 too, then the Message-ID is spent.
    h.feed(
        1,
        &ranged(
            "oh03",
            "moh001",
            &a,
            honest.len() as u64 + 1,
            None,
            None,
            b"",
            Continuation::End,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![403]);
    assert_eq!(h.sw.in_flight(), 0);

    // Not routed yet (the first chunk stops inside the From line): the overlap is refused and
    // nobody receives anything at all.
    h.feed(
        1,
        &ranged(
            "oi01",
            "moi001",
            &a,
            1,
            None,
            None,
            &honest[..12],
            Continuation::More,
        ),
    );
    h.feed(
        1,
        &ranged(
            "oi02",
            "moi001",
            &a,
            7,
            None,
            None,
            &forged[6..],
            Continuation::End,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![200, 403]);
    assert!(h.take(2).is_empty() && h.take(3).is_empty());
    assert_eq!(h.sw.in_flight(), 0);
}

#[test]
fn a_chunk_leaving_a_gap_is_403() {
    let (mut h, [a, ..]) = lounge();
    let (honest, forged) = honest_and_forged("gap");
    let next = honest.len() as u64 + 1;
    h.feed(
        1,
        &ranged(
            "gp01",
            "mgp001",
            &a,
            1,
            None,
            None,
            &honest,
            Continuation::More,
        ),
    );
    h.feed(
        1,
        &ranged(
            "gp02",
            "mgp001",
            &a,
            next + 1,
            None,
            None,
            &forged,
            Continuation::End,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![200, 403]);
    assert_ended_with_hash(&mut h, b"GAP");
    assert_eq!(h.sw.in_flight(), 0);
}

#[test]
fn a_chunk_changing_the_total_is_403_and_a_first_total_is_not_a_change() {
    let (mut h, [a, ..]) = lounge();
    let (honest, _) = honest_and_forged("total");
    let body = [honest.clone(), b" and more".to_vec()].concat();
    let (k, n) = (honest.len() as u64, body.len() as u64);
    // A number, then another number.
    h.feed(
        1,
        &ranged(
            "tc01",
            "mtc001",
            &a,
            1,
            Some(k),
            Some(n),
            &honest,
            Continuation::More,
        ),
    );
    h.feed(
        1,
        &ranged(
            "tc02",
            "mtc001",
            &a,
            k + 1,
            Some(n),
            Some(n + 1),
            &body[k as usize..],
            Continuation::End,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![200, 403]);
    assert_ended_with_hash(&mut h, b"\x00\x00");
    // A number, then `*`.
    h.feed(
        1,
        &ranged(
            "tc11",
            "mtc002",
            &a,
            1,
            Some(k),
            Some(n),
            &honest,
            Continuation::More,
        ),
    );
    h.feed(
        1,
        &ranged(
            "tc12",
            "mtc002",
            &a,
            k + 1,
            None,
            None,
            &body[k as usize..],
            Continuation::End,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![200, 403]);
    assert_ended_with_hash(&mut h, b"\x00\x00");
    // `*`, then the number, then the same number: one message, delivered whole.
    h.feed(
        1,
        &ranged(
            "tc21",
            "mtc003",
            &a,
            1,
            Some(k),
            None,
            &honest,
            Continuation::More,
        ),
    );
    h.feed(
        1,
        &ranged(
            "tc22",
            "mtc003",
            &a,
            k + 1,
            Some(k + 4),
            Some(n),
            &body[k as usize..k as usize + 4],
            Continuation::More,
        ),
    );
    h.feed(
        1,
        &ranged(
            "tc23",
            "mtc003",
            &a,
            k + 5,
            Some(n),
            Some(n),
            &body[k as usize + 4..],
            Continuation::End,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![200, 200, 200]);
    for conn in [2, 3] {
        let got = h.take(conn);
        let re: Vec<u8> = got.iter().flat_map(|g| g.req().1.to_vec()).collect();
        assert_eq!(re, body);
        assert_eq!(got.last().unwrap().req().2, Continuation::End);
        assert_ranges_consistent(&got);
    }
    assert_eq!(h.sw.in_flight(), 0);
}

#[test]
fn a_chunk_after_dollar_or_hash_is_403_and_never_forwarded() {
    let (mut h, [a, ..]) = lounge();
    let (honest, forged) = honest_and_forged("two dollars");
    let n = honest.len() as u64;
    // Two chunks with `$`: the first is the message, the second (forged or not) goes nowhere.
    h.feed(
        1,
        &ranged(
            "dd01",
            "mdd001",
            &a,
            1,
            Some(n),
            Some(n),
            &honest,
            Continuation::End,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![200]);
    for conn in [2, 3] {
        let got = h.take(conn);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].req().1, &honest[..]);
    }
    for (tid, body) in [("dd02", &forged), ("dd03", &honest)] {
        h.feed(
            1,
            &ranged(
                tid,
                "mdd001",
                &a,
                1,
                Some(n),
                Some(n),
                body,
                Continuation::End,
            ),
        );
        assert_eq!(statuses(&mut h, 1), vec![403]);
        assert!(h.take(2).is_empty() && h.take(3).is_empty());
    }
    // A chunk after `#` (the first 64 KiB had gone out, so recipients saw the abort): nothing
    // after it is forwarded.
    let long = big_body(CHUNK + 100);
    let l = long.len() as u64;
    h.feed(
        1,
        &ranged(
            "ha01",
            "mha001",
            &a,
            1,
            None,
            None,
            &long,
            Continuation::More,
        ),
    );
    h.feed(
        1,
        &ranged(
            "ha02",
            "mha001",
            &a,
            l + 1,
            Some(l),
            None,
            b"",
            Continuation::Abort,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![200, 200]);
    assert_ended_with_hash(&mut h, b"TWO DOLLARS");
    for (tid, start, body) in [("ha03", 1, &forged), ("ha04", l + 1, &forged)] {
        h.feed(
            1,
            &ranged(
                tid,
                "mha001",
                &a,
                start,
                None,
                None,
                body,
                Continuation::End,
            ),
        );
        assert_eq!(statuses(&mut h, 1), vec![403]);
        assert!(h.take(2).is_empty() && h.take(3).is_empty());
    }
    assert_eq!(h.sw.in_flight(), 0);
}

#[test]
fn ended_message_ids_are_remembered_per_connection_up_to_the_cap() {
    let (mut h, [a, b, _]) = lounge();
    let (honest, _) = honest_and_forged("x");
    let n = honest.len() as u64;
    let send = |h: &mut H, mid: &str| {
        h.feed(
            1,
            &ranged(
                &format!("t{mid}"),
                mid,
                &a,
                1,
                Some(n),
                Some(n),
                &honest,
                Continuation::End,
            ),
        );
        statuses(h, 1)
    };
    for i in 0..=MAX_ENDED_REMEMBERED {
        assert_eq!(send(&mut h, &format!("mcap{i:04}")), vec![200]);
    }
    // The oldest is forgotten: its reuse is a new message, checked (and delivered) as one.
    assert_eq!(send(&mut h, "mcap0000"), vec![200]);
    // The newest is not.
    assert_eq!(
        send(&mut h, &format!("mcap{MAX_ENDED_REMEMBERED:04}")),
        vec![403]
    );
    // Memory is per connection: bob may use a Message-ID alice used.
    let own = cpim_msg(
        "<sip:anonymous@anonymous.invalid>",
        &[&format!("<{CONF}>")],
        "text/plain",
        "x",
    );
    h.feed(
        2,
        &Chunk {
            mid: "mcap0005",
            ..Chunk::whole("bc01", &own)
        }
        .bytes(&b),
    );
    assert_eq!(statuses(&mut h, 2), vec![200]);
    assert!(h
        .sw
        .conns
        .values()
        .all(|c| c.ended.len() <= MAX_ENDED_REMEMBERED));
}

/// Every byte a recipient gets of a message lies in the bytes whose CPIM headers were checked:
/// whatever Byte-Range games a sender plays, recipients never see bytes that did not follow the
/// checked ones contiguously.
#[test]
fn no_byte_range_trick_reaches_a_recipient() {
    let (honest, forged) = honest_and_forged("mallory says hi");
    let n = forged.len() as u64;
    let k = honest.len() as u64;
    // (start, end, total) of a second chunk carrying the forged message (or a tail of it).
    let tricks: [(u64, Option<u64>, Option<u64>); 8] = [
        (1, Some(n), Some(n)),
        (1, None, None),
        (2, None, None),
        (k, None, None),
        (k + 2, None, None),
        (k + 1, None, Some(k + n + 1)),
        (30, None, None),
        (k - 3, None, None),
    ];
    for (i, (start, end, total)) in tricks.into_iter().enumerate() {
        let (mut h, [a, ..]) = lounge();
        let mid = format!("mtrick{i:02}");
        h.feed(
            1,
            &ranged("tr01", &mid, &a, 1, None, None, &honest, Continuation::More),
        );
        let body = &forged[(start as usize - 1).min(forged.len() - 1)..];
        h.feed(
            1,
            &ranged("tr02", &mid, &a, start, end, total, body, Continuation::End),
        );
        let st = statuses(&mut h, 1);
        assert_eq!(st[0], 200);
        for conn in [2, 3] {
            let got = h.take(conn);
            assert_no_forgery(&got, b"\x00");
            let re: Vec<u8> = got.iter().flat_map(|g| g.req().1.to_vec()).collect();
            assert!(
                honest.starts_with(&re) || re.starts_with(&honest),
                "trick {i}"
            );
        }
        if st[1] == 200 {
            // Only the chunk that continues exactly (k + 1, same `*` total) is accepted.
            assert_eq!(start, k + 1, "trick {i}");
        } else {
            assert_eq!(st[1], 403, "trick {i}");
        }
    }
}

// ---- issue 7: private messages go to the name the sender saw ----

#[test]
fn a_private_message_with_a_display_name_needs_the_holders_current_name() {
    let (mut h, [a, b, c]) = lounge();
    let bob = "sip:anonymous@anonymous.invalid";
    let pm = |to: &str| cpim_msg("<sip:alice@example.com>", &[to], "text/plain", "for bob");
    // The name bob has (RFC 8266: case and width do not matter), or no name: delivered.
    for (tid, to) in [
        ("pn01", format!("\"bob\" <{bob}>")),
        ("pn02", format!("\"BOB\" <{bob}>")),
        ("pn03", format!("\"\u{FF42}ob\" <{bob}>")),
        ("pn04", format!("<{bob}>")),
    ] {
        h.feed(1, &Chunk::whole(tid, &pm(&to)).bytes(&a));
        assert_eq!(statuses(&mut h, 1), vec![200], "{to}");
        let got = h.take(2);
        assert_eq!(got.len(), 1, "{to}");
        assert_eq!(got[0].req().1, &pm(&to)[..]);
        assert!(h.take(3).is_empty());
    }
    // Another name at that URI (a look-alike too): 404, nobody gets it.
    for (tid, to) in [
        ("pn11", format!("\"bob-2\" <{bob}>")),
        ("pn12", format!("\"b0b\" <{bob}>")),
        ("pn13", format!("\"zed\" <{bob}>")),
    ] {
        h.feed(1, &Chunk::whole(tid, &pm(&to)).bytes(&a));
        assert_eq!(statuses(&mut h, 1), vec![404], "{to}");
        assert!(h.take(2).is_empty() && h.take(3).is_empty(), "{to}");
    }
    // bob leaves; zed joins and is given the same URI: a message meant for "bob" reaches nobody,
    // one to the URI alone (or to "zed") reaches zed.
    h.sw.leave(&b);
    let z = h.join("zed", CONF, bob, Some("zed"));
    h.bind(4, &z);
    h.feed(
        1,
        &Chunk::whole("pn21", &pm(&format!("\"bob\" <{bob}>"))).bytes(&a),
    );
    assert_eq!(statuses(&mut h, 1), vec![404]);
    assert!(h.take(4).is_empty() && h.take(3).is_empty());
    h.feed(
        1,
        &Chunk::whole("pn22", &pm(&format!("\"zed\" <{bob}>"))).bytes(&a),
    );
    assert_eq!(statuses(&mut h, 1), vec![200]);
    assert_eq!(h.take(4).len(), 1);
    // A participant without a display name is reached only without one in the To.
    h.sw.registry.set_display_name(&c, None);
    let to_c = "sip:anonymous2@anonymous.invalid";
    h.feed(
        1,
        &Chunk::whole("pn31", &pm(&format!("\"bob-2\" <{to_c}>"))).bytes(&a),
    );
    assert_eq!(statuses(&mut h, 1), vec![404]);
    h.feed(
        1,
        &Chunk::whole("pn32", &pm(&format!("<{to_c}>"))).bytes(&a),
    );
    assert_eq!(statuses(&mut h, 1), vec![200]);
    assert_eq!(h.take(3).len(), 1);
}

// ---- issue 7: one reading of CPIM ----

#[test]
fn a_bare_lf_in_either_header_block_is_400_and_nothing_is_delivered() {
    let (mut h, [a, ..]) = lounge();
    let to = format!("To: <{CONF}>");
    let good_tail = "\r\n\r\nContent-Type: text/plain\r\n\r\nhi";
    for (tid, body) in [
        // The smuggling shape: a reader ending lines at LF sees a second From.
        (
            "lf01",
            format!("From: <sip:alice@example.com>\r\n{to}\nFrom: \"bob\" <sip:anonymous@anonymous.invalid>{good_tail}"),
        ),
        ("lf02", format!("From: <sip:alice@example.com>\n{to}{good_tail}")),
        ("lf03", format!("From: <sip:alice@example.com>\r\n{to}\r\n\nContent-Type: text/plain\r\n\r\nhi")),
        ("lf04", format!("From: <sip:alice@example.com>\r\n{to}\r\n\r\nContent-Type: text/plain\n\r\nhi")),
        ("lf05", format!("From: <sip:alice@example.com>\r\n{to}\r\n\r\nContent-Type: text/plain\r\n\nhi")),
    ] {
        h.feed(1, &Chunk::whole(tid, body.as_bytes()).bytes(&a));
        assert_eq!(statuses(&mut h, 1), vec![400], "{body:?}");
        assert!(h.take(2).is_empty() && h.take(3).is_empty(), "{body:?}");
    }
    // In the body, an LF is text like any other.
    let body = format!("From: <sip:alice@example.com>\r\n{to}{good_tail}\nthere\n");
    h.feed(1, &Chunk::whole("lf10", body.as_bytes()).bytes(&a));
    assert_eq!(statuses(&mut h, 1), vec![200]);
    assert_eq!(h.take(2)[0].req().1, body.as_bytes());
    // Refused as soon as the bad line is in, before the rest of the headers arrived.
    let head = format!("From: <sip:alice@example.com>\n{to}");
    h.feed(
        1,
        &ranged(
            "lf20",
            "mlf020",
            &a,
            1,
            None,
            None,
            head.as_bytes(),
            Continuation::More,
        ),
    );
    assert_eq!(statuses(&mut h, 1), vec![400]);
    assert_eq!(h.metrics.drops(DropReason::Refused), 6);
}

/// The sessions the focus is told about (control `idle`): registered and never bound, or whose
/// connection closed, past the limits; a session that binds (again) or leaves is not listed.
#[test]
fn idle_lists_sessions_without_a_live_connection() {
    let mut h = H::new();
    let t0 = h.now;
    let bind = Duration::from_secs(30);
    let gone = Duration::from_secs(60);
    let mk = |s: &str| Participant {
        session: format!("{s:a<16}"),
        conference: CONF.into(),
        uri: format!("sip:{s}@anonymous.invalid"),
        display_name: None,
        anonymous: true,
        peer_path: vec![peer_path(&format!("{s:a<16}"))],
        accept_wrapped_types: vec![],
        chatroom: vec![],
        private_messages_allowed: false,
    };
    let (never, killed, back) = (mk("never"), mk("killed"), mk("back"));
    for p in [&never, &killed, &back] {
        h.sw.join_at(t0, p.clone()).unwrap();
    }
    h.bind(1, &killed.session);
    h.bind(2, &back.session);
    let idle = |h: &mut H, at: Duration| -> Vec<(String, chat_alias_proto::control::IdleReason)> {
        h.sw.idle(t0 + at, bind, gone, 10)
            .into_iter()
            .map(|s| {
                assert_eq!(s.conference, CONF);
                (s.session, s.reason)
            })
            .collect()
    };
    use chat_alias_proto::control::IdleReason::*;
    assert!(idle(&mut h, Duration::from_secs(29)).is_empty());
    assert_eq!(
        idle(&mut h, Duration::from_secs(30)),
        vec![(never.session.clone(), NeverBound)]
    );
    // Both connections drop at 40 s (the clock comes with the next timer run); one comes back.
    h.sw.handle_closed(1);
    h.sw.handle_closed(2);
    h.sw.handle_timeout(t0 + Duration::from_secs(40));
    h.now = t0 + Duration::from_secs(45);
    h.bind(3, &back.session);
    assert_eq!(
        idle(&mut h, Duration::from_secs(99)),
        vec![(never.session.clone(), NeverBound)]
    );
    assert_eq!(
        idle(&mut h, Duration::from_secs(100)),
        vec![
            (never.session.clone(), NeverBound),
            (killed.session.clone(), Gone)
        ]
    );
    // A refreshed join does not restart the clock; a leave forgets the session.
    h.sw.join_at(t0 + Duration::from_secs(100), never.clone())
        .unwrap();
    assert!(h.sw.leave(&killed.session).is_some());
    assert_eq!(
        idle(&mut h, Duration::from_secs(100)),
        vec![(never.session.clone(), NeverBound)]
    );
    assert!(h.sw.leave(&never.session).is_some());
    assert!(idle(&mut h, Duration::from_secs(1000)).is_empty());
}
