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
mod tests;
