//! A small blocking MSRP client for the end-to-end tests: connects to the relay URI from the 200 OK,
//! binds with a bodiless SEND, sends CPIM messages (whole or chunked), reads frames (answering 200
//! to incoming SENDs) and reassembles messages. Every byte received is kept in `received` so a
//! test can search it.
use chat_alias_proto::msrp::{
    encode, ByteRange, Continuation, Decoder, Event, Limits, Method, MsrpUri, ReportMode,
    RequestHead, ResponseHead,
};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A frame read from the relay.
#[derive(Debug, Clone)]
pub enum Frame {
    Request {
        head: RequestHead,
        body: Vec<u8>,
        cont: Continuation,
    },
    Response(ResponseHead),
}

impl Frame {
    pub fn status(&self) -> Option<u16> {
        match self {
            Frame::Response(r) => Some(r.status),
            _ => None,
        }
    }
}

/// A message reassembled from its SEND frames.
#[derive(Debug, Clone)]
pub struct Message {
    pub message_id: String,
    pub body: Vec<u8>,
    pub heads: Vec<RequestHead>,
    /// The flag of the frame that ended it (`$` or `#`).
    pub end: Continuation,
}

impl Message {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn token(n: usize) -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::new();
    while s.len() < n {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(Instant::now().elapsed().as_nanos());
        s += &format!("{:016x}", h.finish());
    }
    s.truncate(n);
    s
}

pub fn new_id() -> String {
    token(16)
}

pub struct Client {
    stream: TcpStream,
    decoder: Decoder,
    /// The relay URI (To-Path of everything sent).
    pub relay: String,
    /// This client's own path (From-Path), as offered in SDP.
    pub own: String,
    /// Every byte received, in order.
    pub received: Vec<u8>,
    /// Whether incoming SENDs are answered 200.
    pub auto_answer: bool,
    pending_head: Option<RequestHead>,
    pending_body: Vec<u8>,
    /// Frames read but not consumed yet.
    queue: std::collections::VecDeque<Frame>,
    /// Partly received messages by Message-ID.
    partial: HashMap<String, Message>,
    pub closed: bool,
}

impl Client {
    /// Connects to the host:port of `relay` (the a=path of the 200 OK).
    pub fn connect(relay: &str, own: &str) -> Client {
        let uri: MsrpUri = relay.parse().expect("relay URI");
        let stream =
            TcpStream::connect((uri.host.as_str(), uri.port_or_default())).expect("connect relay");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            decoder: Decoder::new(Limits::default()),
            relay: relay.to_string(),
            own: own.to_string(),
            received: Vec::new(),
            auto_answer: true,
            pending_head: None,
            pending_body: Vec::new(),
            queue: Default::default(),
            partial: HashMap::new(),
            closed: false,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to relay");
    }

    /// Writes without failing when the relay has closed the connection.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    pub fn head(&self, method: Method) -> RequestHead {
        let tid = token(12);
        RequestHead::new(
            tid,
            method,
            vec![self.relay.clone()],
            vec![self.own.clone()],
        )
    }

    /// A bodiless SEND (what a client sends first to bind the connection).
    pub fn bodiless_send(&self) -> (String, Vec<u8>) {
        let mut h = self.head(Method::Send);
        h.message_id = Some(token(12));
        h.byte_range = Some(ByteRange {
            start: 1,
            end: Some(0),
            total: Some(0),
        });
        let mut out = Vec::new();
        encode::request_head(&h, &mut out);
        encode::end_line(&h.transaction_id, Continuation::End, false, &mut out);
        (h.transaction_id, out)
    }

    /// Binds; returns the status of the answer (None: no answer in time).
    pub fn bind(&mut self) -> Option<u16> {
        let (tid, bytes) = self.bodiless_send();
        self.send_raw(&bytes);
        self.response(&tid, Duration::from_secs(3))
            .map(|r| r.status)
    }

    /// RFC 7701 NICKNAME; returns the response status.
    pub fn nickname(&mut self, nick: &str) -> Option<u16> {
        let mut h = self.head(Method::Nickname);
        h.use_nickname = Some(nick.to_string());
        let mut out = Vec::new();
        encode::request_head(&h, &mut out);
        encode::end_line(&h.transaction_id, Continuation::End, false, &mut out);
        self.send_raw(&out);
        self.response(&h.transaction_id, Duration::from_secs(3))
            .map(|r| r.status)
    }

    /// One SEND frame of a message.
    #[allow(clippy::too_many_arguments)]
    pub fn send_frame(
        &self,
        message_id: &str,
        start: u64,
        total: Option<u64>,
        body: &[u8],
        cont: Continuation,
        content_type: &str,
        failure: Option<ReportMode>,
    ) -> (String, Vec<u8>) {
        let mut h = self.head(Method::Send);
        h.message_id = Some(message_id.to_string());
        h.byte_range = Some(ByteRange {
            start,
            end: Some(start + body.len() as u64 - 1),
            total,
        });
        h.failure_report = failure;
        if !body.is_empty() {
            h.content_type = Some(content_type.to_string());
        }
        let mut out = Vec::with_capacity(body.len() + 300);
        encode::request_head(&h, &mut out);
        out.extend_from_slice(body);
        encode::end_line(&h.transaction_id, cont, !body.is_empty(), &mut out);
        (h.transaction_id, out)
    }

    /// Sends a whole message in one SEND; returns the response status (None: none in `wait`).
    pub fn send_message(
        &mut self,
        content_type: &str,
        body: &[u8],
        failure: Option<ReportMode>,
        wait: Duration,
    ) -> Option<u16> {
        let mid = token(12);
        let (tid, bytes) = self.send_frame(
            &mid,
            1,
            Some(body.len() as u64),
            body,
            Continuation::End,
            content_type,
            failure,
        );
        self.send_raw(&bytes);
        self.response(&tid, wait).map(|r| r.status)
    }

    /// Sends a CPIM message; returns the response status.
    pub fn send_cpim(&mut self, cpim_body: &[u8]) -> Option<u16> {
        self.send_message("message/cpim", cpim_body, None, Duration::from_secs(3))
    }

    /// Sends `body` in chunks of `chunk` bytes (Byte-Range total given or `*`); returns every
    /// chunk's status.
    pub fn send_chunked(
        &mut self,
        body: &[u8],
        chunk: usize,
        total_known: bool,
    ) -> Vec<Option<u16>> {
        let mid = token(12);
        let mut tids = Vec::new();
        let mut off = 0;
        while off < body.len() {
            let n = chunk.min(body.len() - off);
            let last = off + n == body.len();
            let (tid, bytes) = self.send_frame(
                &mid,
                off as u64 + 1,
                total_known.then_some(body.len() as u64),
                &body[off..off + n],
                if last {
                    Continuation::End
                } else {
                    Continuation::More
                },
                "message/cpim",
                None,
            );
            if !self.try_send_raw(&bytes) {
                break;
            }
            tids.push(tid);
            off += n;
        }
        tids.iter()
            .map(|t| self.response(t, Duration::from_secs(5)).map(|r| r.status))
            .collect()
    }

    /// Reads from the socket for at most `wait`; false when the connection is closed.
    fn fill(&mut self, wait: Duration) -> bool {
        if self.closed {
            return false;
        }
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.received.extend_from_slice(&buf[..n]);
                self.decoder.feed(&buf[..n]);
                self.drain_decoder();
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => true,
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    fn drain_decoder(&mut self) {
        loop {
            match self.decoder.poll() {
                Ok(Some(Event::Request(h))) => {
                    self.pending_head = Some(h);
                    self.pending_body.clear();
                }
                Ok(Some(Event::Body(b))) => self.pending_body.extend_from_slice(&b),
                Ok(Some(Event::End { continuation, .. })) => {
                    let head = self.pending_head.take().expect("head before end");
                    let body = std::mem::take(&mut self.pending_body);
                    if self.auto_answer && head.method == Method::Send {
                        let mut out = Vec::new();
                        encode::response(
                            &head.transaction_id,
                            200,
                            Some("OK"),
                            head.from_path.first().map(String::as_str).unwrap_or(""),
                            &self.own,
                            &mut out,
                        );
                        let _ = self.stream.write_all(&out);
                    }
                    self.queue.push_back(Frame::Request {
                        head,
                        body,
                        cont: continuation,
                    });
                }
                Ok(Some(Event::Response(r))) => self.queue.push_back(Frame::Response(r)),
                Ok(None) => break,
                Err(e) => panic!("relay sent malformed MSRP: {e}"),
            }
        }
    }

    /// The next frame, or None after `wait` (or when the connection closed).
    pub fn next_frame(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(f) = self.queue.pop_front() {
                return Some(f);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if !self.fill(left) && self.queue.is_empty() {
                return None;
            }
        }
    }

    /// Waits for the response to `tid`; other frames stay queued (requests are kept in order).
    pub fn response(&mut self, tid: &str, wait: Duration) -> Option<ResponseHead> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(i) = self
                .queue
                .iter()
                .position(|f| matches!(f, Frame::Response(r) if r.transaction_id == tid))
            {
                if let Some(Frame::Response(r)) = self.queue.remove(i) {
                    return Some(r);
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if !self.fill(left) {
                return None;
            }
        }
    }

    /// The next whole message (SEND frames reassembled by Message-ID and Byte-Range, up to a `$`
    /// or `#`), skipping responses and REPORTs.
    pub fn next_message(&mut self, wait: Duration) -> Option<Message> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let frame = self.next_frame(left)?;
            let Frame::Request { head, body, cont } = frame else {
                continue;
            };
            if head.method != Method::Send {
                continue;
            }
            let mid = head.message_id.clone().expect("Message-ID");
            let m = self.partial.entry(mid.clone()).or_insert_with(|| Message {
                message_id: mid.clone(),
                body: Vec::new(),
                heads: Vec::new(),
                end: Continuation::More,
            });
            let start = head.byte_range.map_or(1, |r| r.start) as usize;
            if m.body.len() < start - 1 + body.len() {
                m.body.resize(start - 1 + body.len(), 0);
            }
            m.body[start - 1..start - 1 + body.len()].copy_from_slice(&body);
            m.heads.push(head);
            if cont != Continuation::More {
                m.end = cont;
                return self.partial.remove(&mid);
            }
        }
    }

    /// Everything that arrives within `wait` (messages, responses, requests) — for "receives
    /// nothing" checks.
    pub fn drain(&mut self, wait: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next_frame(left) {
                Some(f) => out.push(f),
                None => break,
            }
        }
        out
    }

    /// Waits until the relay closes the connection; true if it did within `wait`.
    pub fn wait_closed(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while !self.closed {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            self.fill(left.min(Duration::from_millis(100)));
        }
        true
    }

    /// Stops reading: the socket's receive buffer is made small so the relay's writes back up.
    pub fn raw_stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// A CPIM body: `From`, each `To`, a DateTime, then the encapsulated part.
pub fn cpim(from: &str, to: &[&str], content_type: &str, text: &[u8]) -> Vec<u8> {
    let mut s = format!("From: {from}\r\n");
    for t in to {
        s += &format!("To: {t}\r\n");
    }
    s += &format!("DateTime: 2024-05-01T12:00:00Z\r\n\r\nContent-Type: {content_type}\r\n\r\n");
    let mut v = s.into_bytes();
    v.extend_from_slice(text);
    v
}
