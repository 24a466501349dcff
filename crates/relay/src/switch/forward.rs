//! Forwarding: a SEND's chunks from the sender to each recipient's copy, re-chunked into frames
//! of at most [`CHUNK`] bytes from the one checked buffer, the chunk rules (in order from byte 1,
//! same total), the end of a message (`$`, `#`, the success REPORT), and congestion (a recipient
//! whose queue is full stops getting the message).
use super::*;

impl<O: Outlet> Switch<O> {
    /// Records a message in flight (and in its sender's index).
    pub(super) fn insert_message(&mut self, key: MsgKey, m: Message) {
        if let Some(c) = self.conns.get_mut(&key.0) {
            c.sending.insert(key.1.clone());
        }
        self.messages.insert(key, m);
    }

    /// Forgets a message, and takes it out of its sender's and its recipients' indexes.
    pub(super) fn remove_message(&mut self, key: &MsgKey) -> Option<Message> {
        let m = self.messages.remove(key)?;
        if let Some(c) = self.conns.get_mut(&key.0) {
            c.sending.remove(&key.1);
            if c.ended.len() >= MAX_ENDED_REMEMBERED {
                c.ended.pop_front();
            }
            c.ended.push_back((*key.1).into());
        }
        for copy in &m.copies {
            if let Some(c) = self.conns.get_mut(&copy.conn) {
                c.receiving.remove(key);
            }
        }
        Some(m)
    }

    /// Messages `conn` has in flight (its refused-message records included).
    pub(super) fn sending_count(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.sending.len())
    }

    /// Stops a message: recipients that got part of it get a `#` frame; the record goes.
    pub(super) fn end_message_abnormally(&mut self, key: &MsgKey, why: DropReason) {
        let Some(mut m) = self.remove_message(key) else {
            return;
        };
        if m.state == MsgState::Distributing {
            self.metrics.dropped(why);
        }
        abort_copies(&mut m, &self.conns, &mut self.ids);
    }

    pub(super) fn on_send(&mut self, now: Instant, conn: ConnId, head: RequestHead) {
        let Some(message_id) = head.message_id.clone() else {
            return self.refuse_current(conn, refuse(400, "SEND without Message-ID"));
        };
        let range = head.byte_range.unwrap_or(ByteRange {
            start: 1,
            end: None,
            total: None,
        });
        let key: MsgKey = (conn, message_id.as_str().into());
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

    /// Refuses the current transaction and stops its message: recipients that got part of it
    /// get `#`; later chunks get the same code.
    pub(super) fn refuse_message(&mut self, conn: ConnId, key: &MsgKey, r: Refusal) {
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
    pub(super) fn refuse_rewrite(
        &mut self,
        now: Instant,
        conn: ConnId,
        key: &MsgKey,
        why: &'static str,
    ) {
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

    pub(super) fn on_body(&mut self, now: Instant, conn: ConnId, bytes: Vec<u8>) {
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
    pub(super) fn mark_congested(&mut self, now: Instant, congested: Vec<ConnId>) {
        for id in congested {
            if let Some(c) = self.conns.get_mut(&id) {
                if c.congested_since.is_none() {
                    c.congested_since = Some(now);
                    tracing::warn!(conn = id, queued = c.outlet.queued(), "recipient congested");
                }
            }
        }
    }

    pub(super) fn on_end(
        &mut self,
        now: Instant,
        conn: ConnId,
        cont: Continuation,
        _body_len: u64,
    ) {
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
                let answer = PendingAnswer {
                    tid,
                    reply,
                    to: resp_to,
                    from: resp_from,
                };
                return self.ask_nickname(now, conn, answer, session, conference, nickname);
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
    pub(super) fn success_report(&mut self, conn: ConnId, m: &Message) {
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
}

/// Builds one SEND frame of a copy: its own head and end-line (one buffer) around the shared
/// `body`.
pub(super) fn data_frame(
    ids: &mut Ids,
    copy: &Delivery,
    start: u64,
    body: Option<&Body>,
    total: Option<u64>,
    cont: Continuation,
) -> Frame {
    let tid = crate::ids::hex(&ids());
    let tid = std::str::from_utf8(&tid).unwrap_or_default();
    let body = body.filter(|b| !b.is_empty());
    let len = body.map_or(0, Body::len) as u64;
    // An empty frame (an abort, or an empty last piece) is `n-(n-1)/total`, like `1-0/0`.
    let range = ByteRange {
        start,
        end: Some(start.saturating_add(len).saturating_sub(1)),
        total,
    };
    let paths: usize = copy.to_path.iter().map(|p| p.len() + 1).sum();
    let mut own = Vec::with_capacity(200 + paths + copy.from_path.len() + 24 + 2 * tid.len());
    let message_id = copy.message_id.as_ref().map_or(&[][..], |m| &m[..]);
    encode::send_head(
        tid,
        &copy.to_path,
        &copy.from_path,
        std::str::from_utf8(message_id).unwrap_or_default(),
        &range,
        body.is_some().then_some("message/cpim"),
        &mut own,
    );
    let head_len = own.len();
    encode::end_line(tid, cont, body.is_some(), &mut own);
    Frame::around(own, head_len, body.cloned())
}

/// Sends the first `n` held bytes of a message to every live copy, with flag `cont`. The bytes
/// become one [`Body`] shared by every copy's frame.
pub(super) fn flush<O: Outlet>(
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
        if copy.message_id.is_none() {
            copy.message_id = Some(crate::ids::hex(&ids()));
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
                tracing::debug!(conn = copy.conn, "data frame dropped: recipient queue full");
                if copy.sent_any {
                    let f = data_frame(ids, copy, copy.next, None, total, Continuation::Abort);
                    c.outlet.push_frame(f, FrameClass::Control);
                }
            }
        }
    }
}

/// Sends `#` to every live copy that got part of the message, and stops them all.
pub(super) fn abort_copies<O: Outlet>(
    m: &mut Message,
    conns: &HashMap<ConnId, Conn<O>>,
    ids: &mut Ids,
) {
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
