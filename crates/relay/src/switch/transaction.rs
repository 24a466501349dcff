//! Requests and their replies: who may be answered and how (RFC 4975 §7.1.2, §7.2), the binding
//! of a connection to its session by the first request's paths (RFC 4975 §7.3, RFC 4976 §5.4),
//! malformed requests, and the refusals remembered per Message-ID.
use super::*;

impl<O: Outlet> Switch<O> {
    pub(super) fn respond(
        &mut self,
        conn: ConnId,
        rx_tid: &str,
        reply: Responses,
        to: &str,
        from: &str,
        code: u16,
    ) {
        if code != 200 {
            self.metrics.refusal(code);
        }
        if !reply.allows(code) {
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
    pub(super) fn refuse_current(&mut self, conn: ConnId, r: Refusal) {
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

    pub(super) fn on_request(&mut self, now: Instant, conn: ConnId, head: RequestHead) {
        let reply = head.responses();
        let resp_to = head.from_path.first().cloned().unwrap_or_default();
        let resp_from = head.to_path.first().cloned().unwrap_or_default();
        let reply = if resp_to.is_empty() || resp_from.is_empty() {
            Responses::Never
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
    pub(super) fn check_binding(
        &mut self,
        conn: ConnId,
        head: &RequestHead,
    ) -> Result<(), Refusal> {
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
        tracing::debug!(conn, session = %session, conference = %p.conference, "session bound");
        self.bound.insert(session.clone(), conn);
        if let Some((opened, peer)) = self.conns.get(&conn).map(|c| (c.opened, c.peer)) {
            self.unindex_unbound(conn, opened, peer);
        }
        self.liveness.bound(&session);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.binding = Some(Binding {
                session,
                relay_uri: relay_uri.into(),
                relay,
                peer_path: head.from_path.clone().into(),
            });
        }
        Ok(())
    }

    pub(super) fn set_rx(&mut self, conn: ConnId, what: RxWhat) {
        if let Some(rx) = self.conns.get_mut(&conn).and_then(|c| c.rx.as_mut()) {
            rx.what = what;
        }
    }

    /// A message refused at its first chunk is remembered so that its later chunks get the same
    /// answer (until its end or the chunk timeout).
    pub(super) fn remember_refusal(
        &mut self,
        now: Instant,
        conn: ConnId,
        head: &RequestHead,
        code: u16,
    ) {
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
            (conn, mid.as_str().into()),
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
                key: (conn, head.message_id.as_deref().unwrap_or_default().into()),
                next: 1,
            };
        }
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
}
