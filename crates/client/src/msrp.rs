//! The client's MSRP session (RFC 4975), sans-IO: binding, sending messages in chunks, answering
//! the peer's transactions, reassembling incoming messages.
//!
//! [`Session`] takes `now` and received bytes and hands back bytes to write, the next deadline
//! and events (quinn-proto's four kinds of methods):
//! - commands: [`Session::bind`] (the bodiless SEND an active endpoint sends first, RFC 4975
//!   §5.4/§7.1.1), [`Session::send`];
//! - inputs: [`Session::handle_bytes`], [`Session::handle_timeout`];
//! - outputs: [`Session::poll_transmit`], [`Session::poll_timeout`], [`Session::poll_event`].
//!
//! Sending: every message gets a fresh Message-ID; a body longer than the chunk size goes out in
//! several SENDs with the same Message-ID, `Byte-Range: start-end/total` and the `+` flag on all
//! but the last (`$`). No Success-Report is asked for; Failure-Report is left at its default
//! (`yes`), so the relay answers every chunk: the message is delivered when every chunk got 200,
//! and fails with the first non-200 (e.g. 403, 404, 428, 413). A response that does not come
//! within 30 s (RFC 4975 §7.1) fails the message with a local 408.
//!
//! Receiving: every SEND is answered 200 on the connection it came from, To-Path = the first
//! URI of its From-Path (the previous hop), unless it says `Failure-Report: no` or `partial`
//! (§7.2: then no 200). Chunks are reassembled by Message-ID and Byte-Range (a later chunk wins
//! on overlap); `$` completes, `#` aborts. Bodiless SENDs carry nothing to show. REPORTs are
//! never answered. Other methods get 501.
use crate::random;
use chat_alias_proto::msrp::{
    encode, ByteRange, Continuation, Decoder, Event as Frame, Limits, Method, MsrpError,
    RequestHead,
};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// RFC 4975 §7.1: how long a transaction waits for its response.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default chunk size: RFC 4975 §7.1 — chunks larger than 2048 octets must be interruptible, so
/// a client that never interrupts keeps its chunks at 2048.
pub const DEFAULT_CHUNK: usize = 2048;
/// Largest incoming message reassembled (the relay's default a=max-size).
pub const DEFAULT_MAX_INCOMING: usize = 16 * 1024 * 1024;

/// What the session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsrpEvent {
    /// The bodiless SEND that binds the connection was answered 200.
    Bound,
    /// ...or not (`local`: no answer within the transaction timeout).
    BindFailed {
        code: u16,
        comment: String,
        local: bool,
    },
    /// Every chunk of an outgoing message was answered 200.
    Delivered { message_id: String },
    /// A chunk of an outgoing message got a non-200 response (or none: `local` 408).
    SendFailed {
        message_id: String,
        code: u16,
        comment: String,
        local: bool,
    },
    /// A whole incoming message.
    Received {
        message_id: String,
        content_type: String,
        body: Vec<u8>,
    },
    /// An incoming message the sender aborted (`#`), or one too large to keep.
    Dropped { message_id: String, why: String },
    /// A REPORT with a non-200 status about one of our messages.
    Report {
        message_id: String,
        code: u16,
        comment: String,
    },
    /// Something malformed arrived; the session goes on.
    Malformed(String),
    /// MSRP framing is lost: the connection must be closed.
    Fatal(String),
}

#[derive(Debug)]
enum Pending {
    Bind,
    Chunk { message_id: String },
}

#[derive(Debug)]
struct Outgoing {
    /// Chunks not answered yet.
    waiting: usize,
    failed: bool,
}

#[derive(Debug)]
struct Incoming {
    content_type: String,
    body: Vec<u8>,
    too_large: bool,
}

#[derive(Debug)]
pub struct Session {
    own_path: String,
    to_path: Vec<String>,
    chunk: usize,
    max_incoming: usize,
    decoder: Decoder,
    pending: HashMap<String, (Pending, Instant)>,
    outgoing: HashMap<String, Outgoing>,
    incoming: HashMap<String, Incoming>,
    /// The request being received: head and body so far.
    current: Option<(RequestHead, Vec<u8>)>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<MsrpEvent>,
}

fn new_tid() -> String {
    encode::new_transaction_id(&random::bytes::<12>())
}

/// A fresh Message-ID.
pub fn new_message_id() -> String {
    encode::new_message_id(&random::bytes::<12>())
}

impl Session {
    /// `own_path`: this endpoint's URI (From-Path); `to_path`: the peer's `a=path` (To-Path).
    pub fn new(own_path: String, to_path: Vec<String>) -> Session {
        Session {
            own_path,
            to_path,
            chunk: DEFAULT_CHUNK,
            max_incoming: DEFAULT_MAX_INCOMING,
            decoder: Decoder::new(Limits::default()),
            pending: HashMap::new(),
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            current: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Body bytes per SEND (at least 1).
    pub fn with_chunk_size(mut self, chunk: usize) -> Session {
        self.chunk = chunk.max(1);
        self
    }

    pub fn with_max_incoming(mut self, max: usize) -> Session {
        self.max_incoming = max;
        self
    }

    pub fn own_path(&self) -> &str {
        &self.own_path
    }

    /// Messages sent and not yet delivered or failed.
    pub fn in_flight(&self) -> usize {
        self.outgoing.len()
    }

    // ---- commands

    /// Sends the bodiless SEND that binds the connection to the session (`Byte-Range: 1-0/0`).
    pub fn bind(&mut self, now: Instant) {
        let mut h = self.head();
        h.message_id = Some(new_message_id());
        h.byte_range = Some(ByteRange {
            start: 1,
            end: Some(0),
            total: Some(0),
        });
        let mut out = Vec::new();
        encode::request_head(&h, &mut out);
        encode::end_line(&h.transaction_id, Continuation::End, false, &mut out);
        self.pending.insert(
            h.transaction_id.clone(),
            (Pending::Bind, now + TRANSACTION_TIMEOUT),
        );
        self.transmits.push_back(out);
    }

    /// Sends a message (`content_type` and `body`: for Chat Alias always message/cpim) under
    /// `message_id`; returns the number of chunks.
    pub fn send(
        &mut self,
        now: Instant,
        message_id: &str,
        content_type: &str,
        body: &[u8],
    ) -> usize {
        let total = body.len();
        let chunks: Vec<&[u8]> = if body.is_empty() {
            vec![body]
        } else {
            body.chunks(self.chunk).collect()
        };
        let n = chunks.len();
        let mut start = 1u64;
        for (i, piece) in chunks.into_iter().enumerate() {
            let mut h = self.head();
            h.message_id = Some(message_id.to_string());
            h.byte_range = Some(ByteRange {
                start,
                end: Some(start + piece.len() as u64 - 1),
                total: Some(total as u64),
            });
            let has_body = !piece.is_empty();
            if has_body {
                h.content_type = Some(content_type.to_string());
            }
            let mut out = Vec::with_capacity(piece.len() + 256);
            encode::request_head(&h, &mut out);
            out.extend_from_slice(piece);
            let flag = if i + 1 == n {
                Continuation::End
            } else {
                Continuation::More
            };
            encode::end_line(&h.transaction_id, flag, has_body, &mut out);
            self.pending.insert(
                h.transaction_id.clone(),
                (
                    Pending::Chunk {
                        message_id: message_id.to_string(),
                    },
                    now + TRANSACTION_TIMEOUT,
                ),
            );
            self.transmits.push_back(out);
            start += piece.len() as u64;
        }
        self.outgoing.insert(
            message_id.to_string(),
            Outgoing {
                waiting: n,
                failed: false,
            },
        );
        n
    }

    // ---- inputs

    pub fn handle_bytes(&mut self, _now: Instant, data: &[u8]) {
        self.decoder.feed(data);
        loop {
            match self.decoder.poll() {
                Ok(Some(Frame::Request(h))) => self.current = Some((h, Vec::new())),
                Ok(Some(Frame::Body(b))) => {
                    if let Some((_, body)) = &mut self.current {
                        body.extend_from_slice(&b);
                    }
                }
                Ok(Some(Frame::End { continuation, .. })) => {
                    if let Some((h, body)) = self.current.take() {
                        self.request(h, body, continuation);
                    }
                }
                Ok(Some(Frame::Response(r))) => {
                    self.response(&r.transaction_id, r.status, r.comment.as_deref())
                }
                Ok(None) => break,
                Err(MsrpError::Malformed {
                    transaction_id,
                    reason,
                }) => {
                    self.current = None;
                    if let (Some(tid), Some(peer)) = (transaction_id, self.to_path.first()) {
                        let mut out = Vec::new();
                        encode::response(
                            &tid,
                            400,
                            Some("Bad Request"),
                            peer,
                            &self.own_path,
                            &mut out,
                        );
                        self.transmits.push_back(out);
                    }
                    self.events.push_back(MsrpEvent::Malformed(reason));
                }
                Err(e) => {
                    self.events.push_back(MsrpEvent::Fatal(e.to_string()));
                    break;
                }
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for tid in expired {
            self.response(&tid, 408, None);
        }
    }

    // ---- outputs

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|(_, at)| *at).min()
    }

    pub fn poll_event(&mut self) -> Option<MsrpEvent> {
        self.events.pop_front()
    }

    // ---- internals

    fn head(&self) -> RequestHead {
        RequestHead::new(
            new_tid(),
            Method::Send,
            self.to_path.clone(),
            vec![self.own_path.clone()],
        )
    }

    /// A response (or a timeout: `comment` None and code 408 generated here).
    fn response(&mut self, tid: &str, code: u16, comment: Option<&str>) {
        let local = comment.is_none() && code == 408;
        let Some((what, _)) = self.pending.remove(tid) else {
            return;
        };
        let comment = comment.map(str::to_string).unwrap_or_else(|| {
            match (local, chat_alias_proto::msrp::status_comment(code)) {
                (true, _) => "Request Timeout (no response within 30 s)".to_string(),
                (false, c) => c.to_string(),
            }
        });
        match what {
            Pending::Bind => self.events.push_back(if code == 200 {
                MsrpEvent::Bound
            } else {
                MsrpEvent::BindFailed {
                    code,
                    comment,
                    local,
                }
            }),
            Pending::Chunk { message_id } => {
                let Some(o) = self.outgoing.get_mut(&message_id) else {
                    return;
                };
                o.waiting = o.waiting.saturating_sub(1);
                if code != 200 && !o.failed {
                    o.failed = true;
                    self.events.push_back(MsrpEvent::SendFailed {
                        message_id: message_id.clone(),
                        code,
                        comment,
                        local,
                    });
                    // Chunks still queued here are not sent (RFC 4975 §7.1: stop on 413; any
                    // failure means the rest would be refused too).
                }
                if o.waiting == 0 {
                    let failed = o.failed;
                    self.outgoing.remove(&message_id);
                    // Answers for chunks never sent will not come: forget them.
                    self.pending.retain(|_, (p, _)| !matches!(p, Pending::Chunk { message_id: m } if *m == message_id));
                    if !failed {
                        self.events.push_back(MsrpEvent::Delivered { message_id });
                    }
                }
            }
        }
    }

    fn request(&mut self, h: RequestHead, body: Vec<u8>, cont: Continuation) {
        match h.method {
            Method::Send => {
                let mut code = 200;
                if let Some(mid) = &h.message_id {
                    code = self.reassemble(mid, &h, body, cont);
                }
                if h.responses().allows(code) {
                    self.answer(&h, code);
                }
            }
            Method::Report => {
                if let (Some(mid), Some(st)) = (&h.message_id, &h.status) {
                    if st.code != 200 {
                        self.events.push_back(MsrpEvent::Report {
                            message_id: mid.clone(),
                            code: st.code,
                            comment: st.comment.clone().unwrap_or_default(),
                        });
                    }
                }
            }
            _ => {
                if h.responses().allows(501) {
                    self.answer(&h, 501);
                }
            }
        }
    }

    fn answer(&mut self, h: &RequestHead, code: u16) {
        let Some(prev) = h.from_path.first() else {
            return;
        };
        let mut out = Vec::new();
        encode::response(
            &h.transaction_id,
            code,
            Some(chat_alias_proto::msrp::status_comment(code)),
            prev,
            &self.own_path,
            &mut out,
        );
        self.transmits.push_back(out);
    }

    /// Adds a chunk; returns the status to answer (200, or 413 when the message is too large).
    fn reassemble(&mut self, mid: &str, h: &RequestHead, body: Vec<u8>, cont: Continuation) -> u16 {
        let empty_message = body.is_empty()
            && h.byte_range.is_none_or(|r| r.total == Some(0))
            && !self.incoming.contains_key(mid);
        if empty_message {
            // A bodiless SEND (a bind or keep-alive): nothing to show.
            return 200;
        }
        let max = self.max_incoming;
        let entry = self
            .incoming
            .entry(mid.to_string())
            .or_insert_with(|| Incoming {
                content_type: String::new(),
                body: Vec::new(),
                too_large: false,
            });
        if let Some(ct) = &h.content_type {
            if entry.content_type.is_empty() {
                entry.content_type = ct.clone();
            }
        }
        let start = h.byte_range.map_or(1, |r| r.start.max(1)) as usize;
        let end = start - 1 + body.len();
        let declared_total = h.byte_range.and_then(|r| r.total).unwrap_or(0) as usize;
        let mut code = 200;
        if end > max || declared_total > max {
            entry.too_large = true;
            entry.body = Vec::new();
            code = 413;
        } else if !entry.too_large {
            if entry.body.len() < end {
                entry.body.resize(end, 0);
            }
            entry.body[start - 1..end].copy_from_slice(&body);
        }
        match cont {
            Continuation::More => {}
            Continuation::End | Continuation::Abort => {
                let Some(m) = self.incoming.remove(mid) else {
                    return code;
                };
                let why = if m.too_large {
                    Some(format!("larger than {max} bytes"))
                } else if cont == Continuation::Abort {
                    Some("aborted by the sender".to_string())
                } else {
                    None
                };
                self.events.push_back(match why {
                    Some(why) => MsrpEvent::Dropped {
                        message_id: mid.to_string(),
                        why,
                    },
                    None => MsrpEvent::Received {
                        message_id: mid.to_string(),
                        content_type: m.content_type,
                        body: m.body,
                    },
                });
            }
        }
        // A too-large message stays in `incoming` (without its body) until its last chunk, so
        // later chunks are refused too.
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_alias_proto::msrp::{ReportMode, ResponseHead};

    const RELAY: &str = "msrp://127.0.0.1:2855/relaysession;tcp";
    const OWN: &str = "msrp://127.0.0.1:40000/ownsession1234;tcp";

    /// Requests with their bodies and end flags, and responses.
    type Frames = (Vec<(RequestHead, Vec<u8>, Continuation)>, Vec<ResponseHead>);

    /// Decodes everything the session wrote.
    fn frames(bytes: &[u8]) -> Frames {
        let mut d = Decoder::new(Limits::default());
        d.feed(bytes);
        let (mut reqs, mut resps) = (Vec::new(), Vec::new());
        let mut cur: Option<(RequestHead, Vec<u8>)> = None;
        while let Some(ev) = d.poll().unwrap() {
            match ev {
                Frame::Request(h) => cur = Some((h, Vec::new())),
                Frame::Body(b) => cur.as_mut().unwrap().1.extend_from_slice(&b),
                Frame::End { continuation, .. } => {
                    let (h, b) = cur.take().unwrap();
                    reqs.push((h, b, continuation));
                }
                Frame::Response(r) => resps.push(r),
            }
        }
        (reqs, resps)
    }

    fn drain(s: &mut Session) -> Vec<u8> {
        std::iter::from_fn(|| s.poll_transmit()).flatten().collect()
    }

    fn respond(tid: &str, code: u16) -> Vec<u8> {
        let mut out = Vec::new();
        encode::response(tid, code, Some("x"), OWN, RELAY, &mut out);
        out
    }

    fn send_frame(
        mid: &str,
        range: ByteRange,
        body: &[u8],
        cont: Continuation,
        failure: Option<ReportMode>,
    ) -> Vec<u8> {
        let mut h = RequestHead::new(
            new_tid(),
            Method::Send,
            vec![OWN.into()],
            vec![RELAY.into()],
        );
        h.message_id = Some(mid.into());
        h.byte_range = Some(range);
        h.failure_report = failure;
        if !body.is_empty() {
            h.content_type = Some("message/cpim".into());
        }
        let mut out = Vec::new();
        encode::request_head(&h, &mut out);
        out.extend_from_slice(body);
        encode::end_line(&h.transaction_id, cont, !body.is_empty(), &mut out);
        out
    }

    #[test]
    fn bind_is_a_bodiless_send_and_its_200_binds() {
        let now = Instant::now();
        let mut s = Session::new(OWN.into(), vec![RELAY.into()]);
        s.bind(now);
        let (reqs, _) = frames(&drain(&mut s));
        let (h, body, cont) = &reqs[0];
        assert_eq!(h.method, Method::Send);
        assert_eq!(h.to_path, vec![RELAY.to_string()]);
        assert_eq!(h.from_path, vec![OWN.to_string()]);
        assert_eq!(h.content_type, None);
        assert!(body.is_empty());
        assert_eq!(*cont, Continuation::End);
        assert_eq!(h.byte_range.unwrap().to_string(), "1-0/0");
        assert!(h.message_id.is_some());
        s.handle_bytes(now, &respond(&h.transaction_id, 200));
        assert_eq!(s.poll_event(), Some(MsrpEvent::Bound));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn bind_refused_or_unanswered() {
        let now = Instant::now();
        let mut s = Session::new(OWN.into(), vec![RELAY.into()]);
        s.bind(now);
        let (reqs, _) = frames(&drain(&mut s));
        s.handle_bytes(now, &respond(&reqs[0].0.transaction_id, 481));
        assert!(matches!(
            s.poll_event(),
            Some(MsrpEvent::BindFailed {
                code: 481,
                local: false,
                ..
            })
        ));
        s.bind(now);
        assert_eq!(s.poll_timeout(), Some(now + TRANSACTION_TIMEOUT));
        s.handle_timeout(now + TRANSACTION_TIMEOUT);
        assert!(matches!(
            s.poll_event(),
            Some(MsrpEvent::BindFailed {
                code: 408,
                local: true,
                ..
            })
        ));
    }

    #[test]
    fn large_messages_are_chunked_and_delivered_when_every_chunk_is_answered() {
        let now = Instant::now();
        let mut s = Session::new(OWN.into(), vec![RELAY.into()]).with_chunk_size(2048);
        let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(s.send(now, "msg1abcd", "message/cpim", &body), 3);
        let (reqs, _) = frames(&drain(&mut s));
        assert_eq!(reqs.len(), 3);
        let ranges: Vec<String> = reqs
            .iter()
            .map(|r| r.0.byte_range.unwrap().to_string())
            .collect();
        assert_eq!(
            ranges,
            vec!["1-2048/5000", "2049-4096/5000", "4097-5000/5000"]
        );
        let flags: Vec<Continuation> = reqs.iter().map(|r| r.2).collect();
        assert_eq!(
            flags,
            vec![Continuation::More, Continuation::More, Continuation::End]
        );
        assert!(reqs
            .iter()
            .all(|r| r.0.message_id.as_deref() == Some("msg1abcd")));
        assert!(reqs
            .iter()
            .all(|r| r.0.content_type.as_deref() == Some("message/cpim")));
        let tids: std::collections::HashSet<_> =
            reqs.iter().map(|r| r.0.transaction_id.clone()).collect();
        assert_eq!(tids.len(), 3, "a transaction id per chunk");
        let joined: Vec<u8> = reqs.iter().flat_map(|r| r.1.clone()).collect();
        assert_eq!(joined, body);
        for (i, r) in reqs.iter().enumerate() {
            s.handle_bytes(now, &respond(&r.0.transaction_id, 200));
            if i < 2 {
                assert_eq!(s.poll_event(), None);
            }
        }
        assert_eq!(
            s.poll_event(),
            Some(MsrpEvent::Delivered {
                message_id: "msg1abcd".into()
            })
        );
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn the_first_refusal_fails_the_message_once() {
        let now = Instant::now();
        let mut s = Session::new(OWN.into(), vec![RELAY.into()]).with_chunk_size(10);
        s.send(now, "msg2abcd", "message/cpim", &[b'x'; 25]);
        let (reqs, _) = frames(&drain(&mut s));
        s.handle_bytes(now, &respond(&reqs[0].0.transaction_id, 404));
        s.handle_bytes(now, &respond(&reqs[1].0.transaction_id, 404));
        assert_eq!(
            s.poll_event(),
            Some(MsrpEvent::SendFailed {
                message_id: "msg2abcd".into(),
                code: 404,
                comment: "x".into(),
                local: false
            })
        );
        assert_eq!(s.poll_event(), None);
        s.handle_timeout(now + TRANSACTION_TIMEOUT);
        assert_eq!(
            s.poll_event(),
            None,
            "no second failure for the same message"
        );
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn incoming_chunks_are_answered_and_reassembled() {
        let now = Instant::now();
        let mut s = Session::new(OWN.into(), vec![RELAY.into()]);
        let total = Some(11);
        let mut wire = send_frame(
            "in1abcd",
            ByteRange {
                start: 1,
                end: Some(5),
                total,
            },
            b"hello",
            Continuation::More,
            None,
        );
        wire.extend(send_frame(
            "in1abcd",
            ByteRange {
                start: 6,
                end: Some(11),
                total,
            },
            b" world",
            Continuation::End,
            None,
        ));
        // Fed a byte at a time.
        for b in &wire {
            s.handle_bytes(now, std::slice::from_ref(b));
        }
        assert_eq!(
            s.poll_event(),
            Some(MsrpEvent::Received {
                message_id: "in1abcd".into(),
                content_type: "message/cpim".into(),
                body: b"hello world".to_vec()
            })
        );
        let (_, resps) = frames(&drain(&mut s));
        assert_eq!(resps.len(), 2);
        assert!(resps.iter().all(|r| r.status == 200
            && r.to_path == vec![RELAY.to_string()]
            && r.from_path == vec![OWN.to_string()]));
    }

    #[test]
    fn failure_report_no_and_partial_get_no_200() {
        let now = Instant::now();
        let mut s = Session::new(OWN.into(), vec![RELAY.into()]);
        let r = ByteRange {
            start: 1,
            end: Some(2),
            total: Some(2),
        };
        s.handle_bytes(
            now,
            &send_frame("in2abcd", r, b"hi", Continuation::End, Some(ReportMode::No)),
        );
        s.handle_bytes(
            now,
            &send_frame(
                "in3abcd",
                r,
                b"yo",
                Continuation::End,
                Some(ReportMode::Partial),
            ),
        );
        assert!(s.poll_transmit().is_none());
        assert!(matches!(s.poll_event(), Some(MsrpEvent::Received { .. })));
        assert!(matches!(s.poll_event(), Some(MsrpEvent::Received { .. })));
    }

    #[test]
    fn aborted_too_large_and_bodiless() {
        let now = Instant::now();
        let mut s = Session::new(OWN.into(), vec![RELAY.into()]).with_max_incoming(8);
        s.handle_bytes(
            now,
            &send_frame(
                "bind1abc",
                ByteRange {
                    start: 1,
                    end: Some(0),
                    total: Some(0),
                },
                b"",
                Continuation::End,
                None,
            ),
        );
        assert_eq!(s.poll_event(), None);
        s.handle_bytes(
            now,
            &send_frame(
                "ab1abcd",
                ByteRange {
                    start: 1,
                    end: Some(3),
                    total: None,
                },
                b"abc",
                Continuation::Abort,
                None,
            ),
        );
        assert!(matches!(s.poll_event(), Some(MsrpEvent::Dropped { .. })));
        s.handle_bytes(
            now,
            &send_frame(
                "big1abcd",
                ByteRange {
                    start: 1,
                    end: Some(5),
                    total: Some(20),
                },
                b"12345",
                Continuation::More,
                None,
            ),
        );
        s.handle_bytes(
            now,
            &send_frame(
                "big1abcd",
                ByteRange {
                    start: 6,
                    end: Some(20),
                    total: Some(20),
                },
                b"678901234567890",
                Continuation::End,
                None,
            ),
        );
        assert!(matches!(s.poll_event(), Some(MsrpEvent::Dropped { .. })));
        let (_, resps) = frames(&drain(&mut s));
        let codes: Vec<u16> = resps.iter().map(|r| r.status).collect();
        assert_eq!(codes, vec![200, 200, 413, 413]);
    }

    /// Two sessions back to back (what one writes, the other reads): a chunked message goes
    /// across, is answered chunk by chunk and reassembled; the sender learns it was delivered.
    #[test]
    fn two_sessions_back_to_back() {
        let now = Instant::now();
        let mut a = Session::new(OWN.into(), vec![RELAY.into()]).with_chunk_size(100);
        let mut b = Session::new(RELAY.into(), vec![OWN.into()]);
        let body: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        assert_eq!(a.send(now, "pair1abc", "message/cpim", &body), 10);
        b.handle_bytes(now, &drain(&mut a));
        assert_eq!(
            b.poll_event(),
            Some(MsrpEvent::Received {
                message_id: "pair1abc".into(),
                content_type: "message/cpim".into(),
                body
            })
        );
        a.handle_bytes(now, &drain(&mut b));
        assert_eq!(
            a.poll_event(),
            Some(MsrpEvent::Delivered {
                message_id: "pair1abc".into()
            })
        );
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn reports_and_unknown_methods() {
        let now = Instant::now();
        let mut s = Session::new(OWN.into(), vec![RELAY.into()]);
        let report = format!(
            "MSRP rep1abcd REPORT\r\nTo-Path: {OWN}\r\nFrom-Path: {RELAY}\r\nMessage-ID: m1abcd\r\nByte-Range: 1-5/5\r\nStatus: 000 408 Request Timeout\r\n-------rep1abcd$\r\n"
        );
        s.handle_bytes(now, report.as_bytes());
        assert_eq!(
            s.poll_event(),
            Some(MsrpEvent::Report {
                message_id: "m1abcd".into(),
                code: 408,
                comment: "Request Timeout".into()
            })
        );
        assert!(s.poll_transmit().is_none(), "REPORTs are never answered");
        let nick = format!("MSRP nick1abc NICKNAME\r\nTo-Path: {OWN}\r\nFrom-Path: {RELAY}\r\nUse-Nickname: \"x\"\r\n-------nick1abc$\r\n");
        s.handle_bytes(now, nick.as_bytes());
        let (_, resps) = frames(&drain(&mut s));
        assert_eq!(resps[0].status, 501);
        s.handle_bytes(now, b"GARBAGE\r\n\r\n");
        assert!(matches!(s.poll_event(), Some(MsrpEvent::Fatal(_))));
    }
}
