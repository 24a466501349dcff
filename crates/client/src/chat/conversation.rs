//! The conversation core, sans-IO: the phase of one chat session and every decision in it. It
//! owns the SIP user agent client ([`Uac`]) and, once connected, the MSRP session ([`Session`]);
//! the driver (`driver.rs`) feeds it what arrived and the time (`handle_*`, `now` given, never
//! read), and carries out what it asks (`poll_*`): bytes to send on SIP and MSRP, [`Action`]s on
//! sockets (connect, stop listening, close), [`Event`]s and the join's outcome for the API.
//!
//! A session goes Joining (INVITE until a final response) → Binding (connected to the answer's
//! `a=path`, bodiless SEND until 200) or Accepting (the relay connects to us) → Chatting → Leaving
//! (BYE until its final response) → Done.
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Joining,
    /// Waiting for the relay to connect to us (answer `a=setup:active`).
    Accepting {
        deadline: Instant,
    },
    /// Bodiless SEND sent, waiting for its 200.
    Binding {
        deadline: Instant,
    },
    Chatting,
    Leaving,
    Done,
}

/// What the core asks of the sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Connect to the relay within the MSRP timeout; answer with
    /// [`Conversation::handle_msrp_connected`] or [`Conversation::handle_msrp_connect_failed`].
    Connect { host: String, port: u16 },
    /// The listener for a relay that connects to us is no longer needed.
    StopListening,
    /// Close the MSRP connection once what was already handed over is written.
    CloseMsrp,
}

/// One chat session's state (see the module comment). Inputs are `handle_*`, outputs `poll_*`;
/// after any input, drain the outputs: `poll_sip_transmit`, `poll_msrp_transmit`, then
/// [`Conversation::process`] until it returns false, `poll_action`, `poll_event`, `poll_join`.
pub(super) struct Conversation {
    cfg: Config,
    uac: Uac,
    requested: Identity,
    own_path: String,
    phase: Phase,
    answer: Option<JoinAnswer>,
    session: Option<Session>,
    joined: Option<Joined>,
    /// The join's outcome, reported once.
    join: Option<Result<Joined, JoinError>>,
    join_reported: bool,
    /// Set when the join failed after a 200 (the BYE is in progress).
    join_failure: Option<JoinError>,
    cancelled: bool,
    directory: Arc<Mutex<Directory>>,
    outgoing: HashMap<String, Sent>,
    /// Message-ID → (To, private) of messages sent, for REPORTs that come later.
    sent_to: HashMap<String, (Identity, bool)>,
    events: VecDeque<Event>,
    actions: VecDeque<Action>,
}

impl Conversation {
    /// A session that will join with `uac`'s INVITE and offers `own_path` as its MSRP path.
    pub(super) fn new(
        cfg: Config,
        uac: Uac,
        own_path: String,
        directory: Arc<Mutex<Directory>>,
    ) -> Conversation {
        Conversation {
            requested: cfg.requested_identity(),
            cfg,
            uac,
            own_path,
            phase: Phase::Joining,
            answer: None,
            session: None,
            joined: None,
            join: None,
            join_reported: false,
            join_failure: None,
            cancelled: false,
            directory,
            outgoing: HashMap::new(),
            sent_to: HashMap::new(),
            events: VecDeque::new(),
            actions: VecDeque::new(),
        }
    }

    // ---- inputs

    /// Sends the INVITE.
    pub(super) fn start(&mut self, now: Instant) {
        self.uac.start(now);
    }

    /// A SIP message from the server.
    pub(super) fn handle_sip(&mut self, now: Instant, m: SipMessage) {
        self.uac.handle_message(now, m);
    }

    /// The SIP transport failed: a TCP connection lost, or (`unreachable`) ICMP port unreachable
    /// over UDP, which ends only the pending transaction.
    pub(super) fn handle_sip_error(&mut self, why: String, unreachable: bool) {
        if unreachable {
            self.uac.handle_transport_error(&why);
        } else {
            self.sip_lost(why);
        }
    }

    /// Bytes from the relay.
    pub(super) fn handle_msrp_bytes(&mut self, now: Instant, data: &[u8]) {
        if let Some(s) = &mut self.session {
            s.handle_bytes(now, data);
        }
    }

    /// The MSRP connection closed or failed.
    pub(super) fn handle_msrp_closed(&mut self, now: Instant, why: String) {
        self.session = None;
        self.msrp_lost(now, why);
    }

    /// [`Action::Connect`] succeeded: bind at once (RFC 4975 §5.4, the active side sends first).
    pub(super) fn handle_msrp_connected(&mut self, now: Instant) {
        let mut session = self.new_session();
        session.bind(now);
        self.session = Some(session);
        self.actions.push_back(Action::StopListening);
        self.phase = Phase::Binding {
            deadline: now + self.cfg.msrp_timeout,
        };
    }

    /// [`Action::Connect`] failed or timed out.
    pub(super) fn handle_msrp_connect_failed(&mut self, now: Instant, why: String) {
        self.fail_join(now, why);
    }

    /// The relay connected to us (we answered passive): the session is up.
    pub(super) fn handle_accepted(&mut self) {
        self.session = Some(self.new_session());
        self.actions.push_back(Action::StopListening);
        self.joined_now();
    }

    pub(super) fn handle_accept_failed(&mut self, now: Instant, why: String) {
        self.fail_join(now, why);
    }

    /// The user sends `text` to `to`; `date` is the CPIM DateTime (RFC 3862 §5.4) to write.
    pub(super) fn handle_send(
        &mut self,
        now: Instant,
        date: &str,
        message_id: String,
        to: Recipient,
        text: String,
    ) {
        self.send(now, date, message_id, to, text);
    }

    /// The user leaves (or dropped every handle).
    pub(super) fn handle_leave(&mut self, now: Instant) {
        self.leave(now);
    }

    /// Time passed: retransmissions, transaction and setup timeouts.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.uac.handle_timeout(now);
        if let Some(s) = &mut self.session {
            s.handle_timeout(now);
        }
        match self.phase {
            Phase::Accepting { deadline } | Phase::Binding { deadline } if deadline <= now => {
                self.fail_join(now, "the MSRP session was not set up in time".into())
            }
            _ => {}
        }
    }

    /// The session is over (the driver stops): a join never reported fails now.
    pub(super) fn finish(&mut self) {
        self.session = None;
        let e = self.join_failure.take().unwrap_or(JoinError::Failed(
            "the session ended before it was set up".into(),
        ));
        self.report_join(Err(e));
    }

    // ---- outputs

    pub(super) fn poll_sip_transmit(&mut self) -> Option<Vec<u8>> {
        self.uac.poll_transmit()
    }

    pub(super) fn poll_msrp_transmit(&mut self) -> Option<Vec<u8>> {
        self.session.as_mut()?.poll_transmit()
    }

    /// Handles the next event of the SIP or MSRP core; false when there was none.
    pub(super) fn process(&mut self, now: Instant) -> bool {
        if let Some(e) = self.uac.poll_event() {
            self.uac_event(now, e);
            return true;
        }
        if let Some(e) = self.session.as_mut().and_then(Session::poll_event) {
            self.msrp_event(now, e);
            return true;
        }
        false
    }

    pub(super) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub(super) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The join's outcome, once.
    pub(super) fn poll_join(&mut self) -> Option<Result<Joined, JoinError>> {
        self.join.take()
    }

    /// The earliest time [`Conversation::handle_timeout`] has something to do.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.uac.poll_timeout(),
            self.session.as_ref().and_then(Session::poll_timeout),
            match self.phase {
                Phase::Accepting { deadline } | Phase::Binding { deadline } => Some(deadline),
                _ => None,
            },
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether a connection from the relay is awaited.
    pub(super) fn is_accepting(&self) -> bool {
        matches!(self.phase, Phase::Accepting { .. })
    }

    // ---- the decisions

    fn emit(&mut self, e: Event) {
        self.events.push_back(e);
    }

    fn report_join(&mut self, r: Result<Joined, JoinError>) {
        if !self.join_reported {
            self.join_reported = true;
            self.join = Some(r);
        }
    }

    fn close_msrp(&mut self) {
        if self.session.take().is_some() {
            self.actions.push_back(Action::CloseMsrp);
        }
    }

    fn new_session(&self) -> Session {
        let to_path = self
            .answer
            .as_ref()
            .map(|a| a.relay_path.clone())
            .unwrap_or_default();
        Session::new(self.own_path.clone(), to_path).with_chunk_size(self.cfg.chunk_size)
    }

    fn uac_event(&mut self, now: Instant, e: UacEvent) {
        match e {
            UacEvent::Provisional { .. } => {}
            UacEvent::Answered(resp) => {
                if self.cancelled {
                    self.uac.leave(now);
                    return;
                }
                match sip::parse_join_answer(&resp, &self.requested) {
                    Ok(a) => {
                        self.answer = Some(a);
                        self.connect_msrp(now);
                    }
                    Err(e) => self.fail_join(now, format!("unusable 200 OK: {e}")),
                }
            }
            UacEvent::Refused { code, reason, .. } => {
                self.phase = Phase::Done;
                let e = if self.cancelled {
                    JoinError::Cancelled
                } else {
                    JoinError::Refused { code, reason }
                };
                self.report_join(Err(e));
            }
            UacEvent::Left {
                code,
                reason,
                local,
            } => {
                self.phase = Phase::Done;
                self.close_msrp();
                if self.joined.is_some() {
                    self.emit(Event::Left {
                        by: LeftBy::Me,
                        code: (!local).then_some(code),
                        reason,
                    });
                } else if self.cancelled {
                    self.report_join(Err(JoinError::Cancelled));
                }
            }
            UacEvent::EndedByPeer => {
                self.phase = Phase::Done;
                self.close_msrp();
                if self.joined.is_some() {
                    self.emit(Event::Left {
                        by: LeftBy::Server,
                        code: None,
                        reason: "BYE from the focus".into(),
                    });
                } else {
                    let e = self.join_failure.take().unwrap_or(JoinError::Failed(
                        "the focus ended the session before it was set up".into(),
                    ));
                    self.report_join(Err(e));
                }
            }
        }
    }

    /// After the 200 OK: connect to the relay (our answer made us active), or wait for it to
    /// connect to us (RFC 4975 §5.4, RFC 6135 `a=setup`).
    fn connect_msrp(&mut self, now: Instant) {
        let Some(a) = &self.answer else { return };
        match a.setup.as_str() {
            "passive" | "actpass" => {
                let first = a.relay_path.first().cloned().unwrap_or_default();
                match pmsrp::parse_uri(&first) {
                    Ok(uri) => self.actions.push_back(Action::Connect {
                        host: uri.host.clone(),
                        port: uri.port_or_default(),
                    }),
                    Err(e) => self.fail_join(now, format!("a=path {first:?}: {e}")),
                }
            }
            "active" => {
                self.phase = Phase::Accepting {
                    deadline: now + self.cfg.msrp_timeout,
                };
            }
            other => self.fail_join(now, format!("unsupported a=setup:{other} in the answer")),
        }
    }
    /// Joined: MSRP is up.
    fn joined_now(&mut self) {
        let Some(a) = &self.answer else { return };
        let joined = Joined {
            group: self.cfg.group.clone(),
            identity: a.identity.clone(),
            modified: a.modified,
            requested: self.requested.clone(),
            relay: a.relay_path.first().cloned().unwrap_or_default(),
            private_messages: a.chatroom.iter().any(|t| t == "private-messages"),
        };
        self.phase = Phase::Chatting;
        self.joined = Some(joined.clone());
        self.emit(Event::Joined(joined.clone()));
        self.report_join(Ok(joined));
    }

    /// The join failed after its 200 OK: remember why, BYE.
    fn fail_join(&mut self, now: Instant, why: String) {
        self.join_failure = Some(JoinError::Failed(why.clone()));
        self.close_msrp();
        self.actions.push_back(Action::StopListening);
        if self.uac.is_established() {
            self.uac.leave(now);
            self.phase = Phase::Leaving;
        } else {
            self.phase = Phase::Done;
        }
        // The join error is reported once the BYE is done (see `run`), or now if nothing is
        // pending.
        if self.phase == Phase::Done {
            self.report_join(Err(JoinError::Failed(why)));
        }
    }

    /// The SIP transport failed (TCP connection lost).
    fn sip_lost(&mut self, why: String) {
        match self.phase {
            // The pending INVITE or BYE ends as a 503 (RFC 3261 §8.1.3.1) through the usual
            // events.
            Phase::Joining | Phase::Leaving => self.uac.handle_transport_error(&why),
            Phase::Chatting => {
                self.emit(Event::Left {
                    by: LeftBy::Server,
                    code: None,
                    reason: why,
                });
                self.close_msrp();
                self.phase = Phase::Done;
            }
            Phase::Binding { .. } | Phase::Accepting { .. } => {
                self.join_failure = Some(JoinError::Failed(why));
                self.close_msrp();
                self.phase = Phase::Done;
            }
            Phase::Done => {}
        }
    }

    fn msrp_lost(&mut self, now: Instant, why: String) {
        match self.phase {
            Phase::Chatting => {
                self.emit(Event::Error(Failure::new(FailureKind::Msrp, why)));
                self.uac.leave(now);
                self.phase = Phase::Leaving;
            }
            Phase::Binding { .. } | Phase::Accepting { .. } => self.fail_join(now, why),
            _ => {}
        }
    }

    fn msrp_event(&mut self, now: Instant, e: MsrpEvent) {
        match e {
            MsrpEvent::Bound => {
                if matches!(self.phase, Phase::Binding { .. }) {
                    self.joined_now();
                }
            }
            MsrpEvent::BindFailed { code, comment, .. } => self.fail_join(
                now,
                format!("the relay refused the MSRP session: {code} {comment}"),
            ),
            MsrpEvent::Delivered { message_id } => {
                if let Some(s) = self.outgoing.remove(&message_id) {
                    self.emit(Event::Sent(s));
                }
            }
            MsrpEvent::SendFailed {
                message_id,
                code,
                comment,
                ..
            } => {
                let s = self.outgoing.remove(&message_id);
                self.emit(Event::Error(Failure {
                    kind: FailureKind::Send,
                    code: Some(code),
                    reason: comment,
                    message_id: Some(message_id),
                    to: s.as_ref().map(|s| s.to.clone()),
                    private: s.as_ref().map(|s| s.private),
                }));
            }
            MsrpEvent::Received {
                message_id,
                content_type,
                body,
            } => {
                let m = incoming(&self.cfg.group, message_id, &content_type, &body);
                if let Some(from) = &m.from {
                    if let Ok(mut d) = self.directory.lock() {
                        d.saw(from);
                    }
                }
                self.emit(Event::Message(m));
            }
            MsrpEvent::Dropped { message_id, why } => self.emit(Event::Error(Failure {
                message_id: Some(message_id),
                ..Failure::new(
                    FailureKind::Msrp,
                    format!("incoming message dropped: {why}"),
                )
            })),
            MsrpEvent::Report {
                message_id,
                code,
                comment,
            } => {
                let to = self.sent_to.get(&message_id).cloned();
                self.emit(Event::Error(Failure {
                    kind: FailureKind::Delivery,
                    code: Some(code),
                    reason: comment,
                    message_id: Some(message_id),
                    to: to.as_ref().map(|t| t.0.clone()),
                    private: to.map(|t| t.1),
                }))
            }
            MsrpEvent::Malformed(why) => self.emit(Event::Error(Failure::new(
                FailureKind::Msrp,
                format!("malformed MSRP from the relay: {why}"),
            ))),
            MsrpEvent::Fatal(why) => {
                self.close_msrp();
                self.msrp_lost(now, format!("MSRP framing lost: {why}"));
            }
        }
    }

    fn send(&mut self, now: Instant, date: &str, message_id: String, to: Recipient, text: String) {
        let identity = match (&self.joined, self.phase, self.session.is_some()) {
            (Some(j), Phase::Chatting, true) => j.identity.clone(),
            _ => {
                self.emit(Event::Error(Failure {
                    message_id: Some(message_id),
                    ..Failure::new(FailureKind::Command, "not joined")
                }));
                return;
            }
        };
        let (to, private) = match to {
            Recipient::Group => (Identity::new(None, &self.cfg.group), false),
            Recipient::Participant(p) => (p, true),
        };
        // RFC 3862 / RFC 7701 §6.1: CPIM From = the identity the focus assigned; To = the group
        // (or the participant of a private message). DateTime per RFC 3862 §5.4.
        let body = cpim::compose(
            &identity.to_cpim(),
            &[to.to_cpim()],
            &[("DateTime", date)],
            "text/plain;charset=UTF-8",
            text.as_bytes(),
        );
        if let Some(max) = self.answer.as_ref().and_then(|a| a.max_size) {
            if body.len() as u64 > max {
                self.emit(Event::Error(Failure {
                    kind: FailureKind::Send,
                    code: Some(413),
                    reason: format!(
                        "Message Too Large ({} octets; the relay's a=max-size is {max}): not sent",
                        body.len()
                    ),
                    message_id: Some(message_id),
                    to: Some(to),
                    private: Some(private),
                }));
                return;
            }
        }
        let Some(session) = &mut self.session else {
            return;
        };
        let chunks = session.send(now, &message_id, "message/cpim", &body);
        self.sent_to
            .insert(message_id.clone(), (to.clone(), private));
        self.outgoing.insert(
            message_id.clone(),
            Sent {
                message_id,
                to,
                private,
                text,
                bytes: body.len(),
                chunks,
            },
        );
    }

    fn leave(&mut self, now: Instant) {
        match self.phase {
            Phase::Joining => {
                self.cancelled = true;
                self.uac.leave(now);
            }
            Phase::Accepting { .. } | Phase::Binding { .. } => {
                self.cancelled = true;
                self.join_failure = Some(JoinError::Cancelled);
                self.close_msrp();
                self.uac.leave(now);
                self.phase = Phase::Leaving;
            }
            Phase::Chatting => {
                self.uac.leave(now);
                // RFC 4975 §5.4 / RFC 7701: the session is over once the BYE is sent; what is
                // queued is still written before the connection closes.
                self.close_msrp();
                self.phase = Phase::Leaving;
            }
            Phase::Leaving | Phase::Done => {}
        }
    }
}

#[cfg(test)]
mod tests;
