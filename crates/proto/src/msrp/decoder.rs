//! The streaming MSRP decoder.
use super::head::{self, HeadError, Parsed, StartLine, Terminator};
use super::{Continuation, Event, Limits, Method, MsrpError, MAX_END_LINE};

/// Streaming MSRP decoder (sans-IO).
///
/// - input: [`Decoder::feed`] the bytes read from the connection;
/// - output: [`Decoder::poll`] until it returns `Ok(None)` (more bytes needed) or an error.
///
/// Events come in wire order: `Request`, any number of `Body`, `End` for a request; a single
/// `Response` for a response.
///
/// Errors:
/// - [`MsrpError::Framing`] (the connection must be closed): the stream does not start with
///   `"MSRP "`, a start line is not `MSRP tid METHOD` / `MSRP tid 3DIGIT [comment]`, or the
///   head (start line, headers and the line ending them) is longer than
///   [`Limits::max_head_bytes`]. After it the decoder is dead: `poll` repeats the error and
///   `feed` drops its input.
/// - [`MsrpError::Malformed`] (framing intact): returned once the decoder has found the end-line
///   of the broken message, so the next `poll` starts on the next message. Causes: bad or
///   missing headers, Content-Type not last / missing with a body / present without one, a
///   response with a body, a non-SEND body over [`Limits::max_non_send_body`]. In the last
///   case `Request` and up to `max_non_send_body` bytes of `Body` were already delivered:
///   the caller drops that request when the error arrives (the rest of the body is skipped,
///   never buffered).
///
/// End-line recognition (RFC 4975 §7.1): a body ends at `CRLF "-------" tid flag CRLF` with
/// *this* transaction's id and a flag in `+$#`; an end-line with another id is body data. As a
/// tolerance, a body whose very first bytes are the end-line (no CRLF before it) is empty.
///
/// Memory: the buffer holds at most one head (≤ `max_head_bytes`, else Framing) plus, in a
/// body, fewer than [`MAX_END_LINE`] held-back bytes that could start the end-line — plus
/// whatever the last `feed` added and `poll` has not consumed yet. After `poll` returned
/// `Ok(None)`, `buffered() <= max(max_head_bytes, MAX_END_LINE)`.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    buf: Vec<u8>,
    /// Read position in `buf`; everything before it is consumed.
    pos: usize,
    state: State,
    /// Responses delivered with only transaction id and status ([`Decoder::lean_responses`]).
    lean: bool,
}

#[derive(Debug)]
enum State {
    Head(HeadScan),
    /// A bodiless request's head was delivered; its `End` comes next.
    PendingEnd {
        tid: String,
        continuation: Continuation,
    },
    Body(BodyState),
    Dead(String),
}

/// Progress through the header block; offsets are relative to `Decoder::pos`.
#[derive(Debug, Default)]
struct HeadScan {
    start: Option<StartLine>,
    /// Where the next (incomplete) line starts.
    line_start: usize,
    /// No CRLF starts before this offset (at or after `line_start`).
    searched: usize,
    /// Header lines found so far, without their CRLF.
    lines: Vec<(usize, usize)>,
}

#[derive(Debug)]
struct BodyState {
    tid: String,
    body_len: u64,
    /// No byte of the body has been examined yet (for the no-CRLF tolerance).
    at_start: bool,
    /// Some for requests other than SEND.
    limit: Option<u64>,
    /// Whether a 400 may be sent for this request.
    answerable: bool,
    /// Skipping a broken message: the error to return at its end-line.
    discard: Option<HeadError>,
}

#[allow(clippy::large_enum_variant)] // transient, never stored
enum Step {
    Event(Event),
    Error(MsrpError),
    NeedMore,
    Continue,
}

enum Match {
    Full { flag: Continuation, len: usize },
    Partial,
    No,
}

/// Whether `data` starts with `[CRLF] "-------" tid flag CRLF` (Partial: `data` is a proper
/// prefix of such a line).
fn match_end_line(data: &[u8], with_crlf: bool, tid: &[u8]) -> Match {
    let crlf: &[u8] = if with_crlf { b"\r\n" } else { b"" };
    let mut i = 0usize;
    for part in [crlf, b"-------", tid] {
        for &expected in part {
            match data.get(i) {
                None => return Match::Partial,
                Some(&b) if b == expected => i += 1,
                Some(_) => return Match::No,
            }
        }
    }
    let flag = match data.get(i) {
        None => return Match::Partial,
        Some(&b) => match Continuation::from_byte(b) {
            Some(f) => f,
            None => return Match::No,
        },
    };
    i += 1;
    for &expected in b"\r\n" {
        match data.get(i) {
            None => return Match::Partial,
            Some(&b) if b == expected => i += 1,
            Some(_) => return Match::No,
        }
    }
    Match::Full { flag, len: i }
}

enum Scan {
    /// The end-line (with its leading CRLF) starts at `at`.
    Found {
        at: usize,
        flag: Continuation,
        len: usize,
    },
    /// From `at` on, the data could be the beginning of the end-line.
    Partial {
        at: usize,
    },
    None,
}

fn scan_end_line(data: &[u8], tid: &[u8]) -> Scan {
    let mut from = 0usize;
    while let Some(off) = data
        .get(from..)
        .and_then(|d| d.iter().position(|&b| b == b'\r'))
    {
        let at = from + off;
        match match_end_line(data.get(at..).unwrap_or_default(), true, tid) {
            Match::Full { flag, len } => return Scan::Found { at, flag, len },
            Match::Partial => return Scan::Partial { at },
            Match::No => from = at + 1,
        }
    }
    Scan::None
}

fn find_crlf(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

/// `line` (without CRLF) is `"-------" tid flag`.
fn end_line_flag(line: &[u8], tid: &[u8]) -> Option<Continuation> {
    let rest = line.strip_prefix(b"-------")?.strip_prefix(tid)?;
    match rest {
        [flag] => Continuation::from_byte(*flag),
        _ => None,
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            buf: Vec::new(),
            pos: 0,
            state: State::Head(HeadScan::default()),
            lean: false,
        }
    }

    /// A reader that only matches responses to its transactions (a relay reading the 200s to
    /// the copies it forwarded) gets each `Response` with its transaction id and status code
    /// only: no comment, empty To-Path and From-Path, no other headers. Every check is still
    /// made (RFC 4975 §7.1 syntax, both paths present once with valid URIs, no body): a
    /// response that fails one is the same `Malformed` error as without this.
    pub fn lean_responses(mut self) -> Self {
        self.lean = true;
        self
    }

    /// The limits this decoder was made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Appends received bytes. Dropped once the decoder is dead (after a Framing error).
    pub fn feed(&mut self, data: &[u8]) {
        if matches!(self.state, State::Dead(_)) || data.is_empty() {
            return;
        }
        if self.pos > 0 {
            // Offsets in `HeadScan` are relative to `pos`, so they stay valid.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let needed = self.buf.len().saturating_add(data.len());
        let keep = needed.max(self.limits.max_head_bytes.saturating_add(MAX_END_LINE));
        if self.buf.capacity() > keep.saturating_mul(4) {
            self.buf.shrink_to(needed);
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes held (received, not yet turned into events or skipped).
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether a Framing error has occurred (the connection must be closed).
    pub fn is_dead(&self) -> bool {
        matches!(self.state, State::Dead(_))
    }

    /// The next event; `Ok(None)` when more bytes are needed. See the type documentation for
    /// the errors.
    pub fn poll(&mut self) -> Result<Option<Event>, MsrpError> {
        loop {
            let step = match &mut self.state {
                State::Dead(reason) => return Err(MsrpError::Framing(reason.clone())),
                State::PendingEnd { .. } => {
                    let prev = std::mem::replace(&mut self.state, State::Head(HeadScan::default()));
                    match prev {
                        State::PendingEnd { tid, continuation } => Step::Event(Event::End {
                            transaction_id: tid,
                            continuation,
                            body_len: 0,
                        }),
                        other => {
                            self.state = other;
                            Step::Continue
                        }
                    }
                }
                State::Head(_) => self.poll_head(),
                State::Body(_) => self.poll_body(),
            };
            match step {
                Step::Event(e) => return Ok(Some(e)),
                Step::Error(e) => return Err(e),
                Step::NeedMore => return Ok(None),
                Step::Continue => {}
            }
        }
    }

    fn die(&mut self, reason: String) -> Step {
        self.buf = Vec::new();
        self.pos = 0;
        self.state = State::Dead(reason.clone());
        Step::Error(MsrpError::Framing(reason))
    }

    fn poll_head(&mut self) -> Step {
        let max = self.limits.max_head_bytes;
        let Decoder {
            buf, pos, state, ..
        } = self;
        let State::Head(scan) = state else {
            return Step::Continue;
        };
        let data = buf.get(*pos..).unwrap_or_default();

        // Close early on garbage: every message starts with "MSRP ".
        let n = data.len().min(5);
        if data.get(..n) != b"MSRP ".get(..n) {
            return self.die("the stream is not at an MSRP start line".to_string());
        }

        let (term, head_len) = loop {
            let from = scan.searched.max(scan.line_start);
            let Some(cr) = find_crlf(data, from) else {
                scan.searched = data.len().saturating_sub(1).max(scan.line_start);
                if data.len() > max {
                    return self.die(format!("message head larger than {max} bytes"));
                }
                return Step::NeedMore;
            };
            let line_end = cr + 2;
            if line_end > max {
                return self.die(format!("message head larger than {max} bytes"));
            }
            let line = data.get(scan.line_start..cr).unwrap_or_default();
            let line_start = scan.line_start;
            scan.line_start = line_end;
            scan.searched = line_end;
            match &scan.start {
                None => match head::parse_start_line(line) {
                    Ok(start) => scan.start = Some(start),
                    Err(reason) => return self.die(reason),
                },
                Some(start) => {
                    if line.is_empty() {
                        break (Terminator::Blank, line_end);
                    }
                    if let Some(flag) = end_line_flag(line, start.tid.as_bytes()) {
                        break (Terminator::EndLine(flag), line_end);
                    }
                    scan.lines.push((line_start, cr));
                }
            }
        };

        let Some(start) = scan.start.take() else {
            return self.die("internal: head without start line".to_string());
        };
        // Only a body (of a request, or of a broken message being skipped) needs the id here.
        let tid = (term == Terminator::Blank).then(|| start.tid.clone());
        let is_send = matches!(start.kind, head::StartKind::Request(Method::Send));
        // A head rarely has more than a few header lines: their slices live on the stack then.
        let mut few: [&[u8]; 16] = [&[]; 16];
        let many: Vec<&[u8]>;
        let lines: &[&[u8]] = if scan.lines.len() <= few.len() {
            for (slot, &(a, b)) in few.iter_mut().zip(&scan.lines) {
                *slot = data.get(a..b).unwrap_or_default();
            }
            few.get(..scan.lines.len()).unwrap_or_default()
        } else {
            many = scan
                .lines
                .iter()
                .map(|&(a, b)| data.get(a..b).unwrap_or_default())
                .collect();
            &many
        };
        let parsed = head::parse_head(start, lines, term, self.lean);
        *pos += head_len;
        // The next head reuses the line list (a relay reads a response per copy it forwards),
        // unless an unusually long head grew it.
        let mut recycled = std::mem::take(&mut scan.lines);
        recycled.clear();
        if recycled.capacity() > 64 {
            recycled = Vec::new();
        }
        *state = State::Head(HeadScan {
            lines: recycled,
            ..HeadScan::default()
        });

        let body = |answerable: bool, discard: Option<HeadError>, limit: Option<u64>| {
            State::Body(BodyState {
                tid: tid.unwrap_or_default(),
                body_len: 0,
                at_start: true,
                limit,
                answerable,
                discard,
            })
        };
        match (parsed, term) {
            (Ok(Parsed::Request(h)), Terminator::EndLine(continuation)) => {
                *state = State::PendingEnd {
                    tid: h.transaction_id.clone(),
                    continuation,
                };
                Step::Event(Event::Request(h))
            }
            (Ok(Parsed::Request(h)), Terminator::Blank) => {
                let answerable = h.responses().allows(400);
                let limit = if is_send {
                    None
                } else {
                    Some(u64::try_from(self.limits.max_non_send_body).unwrap_or(u64::MAX))
                };
                *state = body(answerable, None, limit);
                Step::Event(Event::Request(h))
            }
            (Ok(Parsed::Response(r)), _) => Step::Event(Event::Response(r)),
            (Err(e), Terminator::EndLine(_)) => Step::Error(MsrpError::Malformed {
                transaction_id: e.answer_to,
                reason: e.reason,
            }),
            (Err(e), Terminator::Blank) => {
                *state = body(false, Some(e), None);
                Step::Continue
            }
        }
    }

    fn poll_body(&mut self) -> Step {
        let Decoder {
            buf, pos, state, ..
        } = self;
        let State::Body(body) = state else {
            return Step::Continue;
        };
        let data = buf.get(*pos..).unwrap_or_default();
        let tid = body.tid.as_bytes();

        if body.at_start {
            match match_end_line(data, false, tid) {
                Match::Full { flag, len } => {
                    *pos += len;
                    return Self::finish(state, flag);
                }
                Match::Partial => return Step::NeedMore,
                Match::No => body.at_start = false,
            }
        }

        let (take, end) = match scan_end_line(data, tid) {
            Scan::Found { at, flag, len } => (at, Some((flag, len))),
            Scan::Partial { at } => (at, None),
            Scan::None => (data.len(), None),
        };
        if take == 0 {
            return match end {
                Some((flag, len)) => {
                    *pos += len;
                    Self::finish(state, flag)
                }
                None => Step::NeedMore,
            };
        }

        let take_u64 = u64::try_from(take).unwrap_or(u64::MAX);
        body.body_len = body.body_len.saturating_add(take_u64);
        if body.discard.is_none() {
            if let Some(limit) = body.limit.filter(|&l| body.body_len > l) {
                body.discard = Some(HeadError {
                    answer_to: body.answerable.then(|| body.tid.clone()),
                    reason: format!(
                        "transaction {}: body of a non-SEND request larger than {limit} bytes",
                        body.tid
                    ),
                });
            }
        }
        if body.discard.is_some() {
            *pos += take;
            return Step::Continue;
        }
        let piece = if *pos == 0 && take == buf.len() {
            std::mem::take(buf)
        } else {
            let piece = data.get(..take).unwrap_or_default().to_vec();
            *pos += take;
            piece
        };
        Step::Event(Event::Body(piece))
    }

    fn finish(state: &mut State, flag: Continuation) -> Step {
        let prev = std::mem::replace(state, State::Head(HeadScan::default()));
        match prev {
            State::Body(BodyState {
                discard: Some(e), ..
            }) => Step::Error(MsrpError::Malformed {
                transaction_id: e.answer_to,
                reason: e.reason,
            }),
            State::Body(BodyState { tid, body_len, .. }) => Step::Event(Event::End {
                transaction_id: tid,
                continuation: flag,
                body_len,
            }),
            other => {
                *state = other;
                Step::Continue
            }
        }
    }
}
