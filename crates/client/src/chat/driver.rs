//! The driver: one tokio task that owns a session's sockets and timers and moves bytes and time
//! between them and the sans-IO cores ([`Uac`] for SIP, [`Session`] for MSRP), keeping the
//! session's phase: Joining → (Accepting | Binding) → Chatting → Leaving → Done.
use super::io::{accept, host_for_uri, read_msrp, MsrpConn, SipIo};
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
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

pub(super) enum Step {
    Sip(std::io::Result<Option<SipMessage>>),
    Msrp(std::io::Result<usize>),
    Accepted(std::io::Result<(TcpStream, SocketAddr)>),
    Cmd(Option<Cmd>),
    Timer,
}

pub(super) struct Driver {
    cfg: Config,
    sip: SipIo,
    uac: Uac,
    requested: Identity,
    own_path: String,
    listener: Option<TcpListener>,
    phase: Phase,
    answer: Option<JoinAnswer>,
    msrp: Option<MsrpConn>,
    joined: Option<Joined>,
    join_tx: Option<mpsc::Sender<Result<Joined, JoinError>>>,
    /// Set when the join failed after a 200 (the BYE is in progress).
    join_failure: Option<JoinError>,
    cancelled: bool,
    events: mpsc::Sender<Event>,
    cmds: tmpsc::UnboundedReceiver<Cmd>,
    cmds_open: bool,
    directory: Arc<Mutex<Directory>>,
    outgoing: HashMap<String, Sent>,
    /// Message-ID → (To, private) of messages sent, for REPORTs that come later.
    sent_to: HashMap<String, (Identity, bool)>,
    buf: Vec<u8>,
}

impl Driver {
    pub(super) async fn new(
        cfg: Config,
        join_tx: mpsc::Sender<Result<Joined, JoinError>>,
        events: mpsc::Sender<Event>,
        cmds: tmpsc::UnboundedReceiver<Cmd>,
        directory: Arc<Mutex<Directory>>,
    ) -> Result<Driver, String> {
        let (sip, local) = SipIo::connect(cfg.transport, cfg.server)
            .await
            .map_err(|e| format!("SIP {:?} to {}: {e}", cfg.transport, cfg.server))?;
        // The MSRP port offered: a listener, so the port is really ours (and, should the answer
        // make us passive, the relay can connect to it).
        let listener = TcpListener::bind(SocketAddr::new(local.ip(), 0))
            .await
            .map_err(|e| format!("MSRP listener on {}: {e}", local.ip()))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("MSRP listener: {e}"))?
            .port();
        // RFC 4975 §14.1: at least 80 bits of randomness in the session id; here 128.
        let own_path = format!(
            "msrp://{}:{port}/{};tcp",
            host_for_uri(local.ip()),
            random::hex::<16>()
        );
        let offer = sip::msrp_offer(local.ip(), port, &own_path, random::u63());
        let requested = cfg.requested_identity();
        let uac = Uac::new(InviteParams {
            group: cfg.group.clone(),
            from: requested.clone(),
            privacy: cfg.alias.is_some(),
            asserted_identity: cfg.assert_identity.then(|| cfg.identity.clone()),
            transport: cfg.transport,
            local,
            offer,
            t1: cfg.t1,
            t2: InviteParams::T2.max(cfg.t1),
        })?;
        Ok(Driver {
            cfg,
            sip,
            uac,
            requested,
            own_path,
            listener: Some(listener),
            phase: Phase::Joining,
            answer: None,
            msrp: None,
            joined: None,
            join_tx: Some(join_tx),
            join_failure: None,
            cancelled: false,
            events,
            cmds,
            cmds_open: true,
            directory,
            outgoing: HashMap::new(),
            sent_to: HashMap::new(),
            buf: vec![0; 64 * 1024],
        })
    }

    pub(super) fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    pub(super) fn report_join(&mut self, r: Result<Joined, JoinError>) {
        if let Some(tx) = self.join_tx.take() {
            let _ = tx.send(r);
        }
    }

    pub(super) async fn run(mut self) {
        self.uac.start(Instant::now());
        loop {
            self.settle().await;
            if self.phase == Phase::Done {
                break;
            }
            let deadline = self.deadline();
            let accepting =
                matches!(self.phase, Phase::Accepting { .. }) && self.listener.is_some();
            let step = tokio::select! {
                m = self.sip.recv() => Step::Sip(m),
                r = read_msrp(&mut self.msrp, &mut self.buf) => Step::Msrp(r),
                a = accept(&self.listener), if accepting => Step::Accepted(a),
                c = self.cmds.recv(), if self.cmds_open => Step::Cmd(c),
                _ = tokio::time::sleep_until(deadline.into()) => Step::Timer,
            };
            let now = Instant::now();
            match step {
                Step::Sip(Ok(Some(m))) => self.uac.handle_message(now, m),
                Step::Sip(Ok(None)) => {}
                Step::Sip(Err(e)) => {
                    if self.sip.is_reliable() {
                        self.sip_lost(format!("the SIP connection closed: {e}"));
                    } else if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        // ICMP port unreachable: nothing listens at the server address.
                        self.uac.handle_transport_error(&format!(
                            "nothing listens on udp {}",
                            self.cfg.server
                        ));
                    }
                }
                Step::Msrp(Ok(n)) if n > 0 => {
                    if let Some(c) = &mut self.msrp {
                        c.session.handle_bytes(now, &self.buf[..n]);
                    }
                }
                Step::Msrp(r) => {
                    let why = match r {
                        Err(e) => format!("the MSRP connection failed: {e}"),
                        Ok(_) => "the relay closed the MSRP connection".to_string(),
                    };
                    self.msrp = None;
                    self.msrp_lost(now, why);
                }
                Step::Accepted(Ok((stream, _))) => {
                    let session = self.new_session();
                    self.msrp = Some(MsrpConn::new(stream, session));
                    self.listener = None;
                    self.joined_now();
                }
                Step::Accepted(Err(e)) => self.fail_join(now, format!("MSRP accept: {e}")),
                Step::Cmd(Some(Cmd::Send {
                    message_id,
                    to,
                    text,
                })) => self.send(now, message_id, to, text),
                Step::Cmd(Some(Cmd::Leave)) => self.leave(now),
                Step::Cmd(None) => {
                    self.cmds_open = false;
                    self.leave(now);
                }
                Step::Timer => {
                    self.uac.handle_timeout(now);
                    if let Some(c) = &mut self.msrp {
                        c.session.handle_timeout(now);
                    }
                    match self.phase {
                        Phase::Accepting { deadline } | Phase::Binding { deadline }
                            if deadline <= now =>
                        {
                            self.fail_join(now, "the MSRP session was not set up in time".into())
                        }
                        _ => {}
                    }
                }
            }
        }
        // Whatever is still queued for the relay is written by the writer task before it
        // closes the connection; wait for nothing else.
        self.msrp = None;
        if self.join_tx.is_some() {
            let e = self.join_failure.take().unwrap_or(JoinError::Failed(
                "the session ended before it was set up".into(),
            ));
            self.report_join(Err(e));
        }
    }

    /// Flushes outputs and handles events until nothing moves.
    pub(super) async fn settle(&mut self) {
        loop {
            while let Some(b) = self.uac.poll_transmit() {
                // UDP send errors (ICMP) are not fatal: timers retransmit or give up.
                if let Err(e) = self.sip.send(&b).await {
                    if self.sip.is_reliable() {
                        self.sip_lost(format!("the SIP connection failed: {e}"));
                    }
                }
            }
            if let Some(c) = &mut self.msrp {
                while let Some(f) = c.session.poll_transmit() {
                    let _ = c.writer.send(f);
                }
            }
            let now = Instant::now();
            if let Some(e) = self.uac.poll_event() {
                self.uac_event(now, e).await;
                continue;
            }
            if let Some(e) = self.msrp.as_mut().and_then(|c| c.session.poll_event()) {
                self.msrp_event(now, e);
                continue;
            }
            break;
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        let mut d = Instant::now() + Duration::from_secs(3600);
        for t in [
            self.uac.poll_timeout(),
            self.msrp.as_ref().and_then(|c| c.session.poll_timeout()),
            match self.phase {
                Phase::Accepting { deadline } | Phase::Binding { deadline } => Some(deadline),
                _ => None,
            },
        ]
        .into_iter()
        .flatten()
        {
            d = d.min(t);
        }
        d
    }

    pub(super) fn new_session(&self) -> Session {
        let to_path = self
            .answer
            .as_ref()
            .map(|a| a.relay_path.clone())
            .unwrap_or_default();
        Session::new(self.own_path.clone(), to_path).with_chunk_size(self.cfg.chunk_size)
    }

    pub(super) async fn uac_event(&mut self, now: Instant, e: UacEvent) {
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
                        self.connect_msrp(now).await;
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
                self.msrp = None;
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
                self.msrp = None;
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

    pub(super) async fn connect_msrp(&mut self, now: Instant) {
        let Some(a) = &self.answer else { return };
        match a.setup.as_str() {
            "passive" | "actpass" => {
                let first = a.relay_path.first().cloned().unwrap_or_default();
                let uri = match pmsrp::parse_uri(&first) {
                    Ok(u) => u,
                    Err(e) => return self.fail_join(now, format!("a=path {first:?}: {e}")),
                };
                let target = (uri.host.clone(), uri.port_or_default());
                let connect = TcpStream::connect((target.0.as_str(), target.1));
                match tokio::time::timeout(self.cfg.msrp_timeout, connect).await {
                    Ok(Ok(stream)) => {
                        let mut session = self.new_session();
                        // RFC 4975 §5.4: the active side binds with a SEND at once.
                        session.bind(now);
                        self.msrp = Some(MsrpConn::new(stream, session));
                        self.listener = None;
                        self.phase = Phase::Binding {
                            deadline: now + self.cfg.msrp_timeout,
                        };
                    }
                    Ok(Err(e)) => self.fail_join(
                        now,
                        format!("MSRP connect to {}:{}: {e}", target.0, target.1),
                    ),
                    Err(_) => self.fail_join(
                        now,
                        format!("MSRP connect to {}:{}: timed out", target.0, target.1),
                    ),
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
    pub(super) fn joined_now(&mut self) {
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
    pub(super) fn fail_join(&mut self, now: Instant, why: String) {
        self.join_failure = Some(JoinError::Failed(why.clone()));
        self.msrp = None;
        self.listener = None;
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
    pub(super) fn sip_lost(&mut self, why: String) {
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
                self.msrp = None;
                self.phase = Phase::Done;
            }
            Phase::Binding { .. } | Phase::Accepting { .. } => {
                self.join_failure = Some(JoinError::Failed(why));
                self.msrp = None;
                self.phase = Phase::Done;
            }
            Phase::Done => {}
        }
    }

    pub(super) fn msrp_lost(&mut self, now: Instant, why: String) {
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

    pub(super) fn msrp_event(&mut self, now: Instant, e: MsrpEvent) {
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
                self.msrp = None;
                self.msrp_lost(now, format!("MSRP framing lost: {why}"));
            }
        }
    }

    pub(super) fn send(&mut self, now: Instant, message_id: String, to: Recipient, text: String) {
        let identity = match (&self.joined, self.phase, self.msrp.is_some()) {
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
        let date = crate::time::now_rfc3339();
        let body = cpim::compose(
            &identity.to_cpim(),
            &[to.to_cpim()],
            &[("DateTime", date.as_str())],
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
        let Some(conn) = &mut self.msrp else { return };
        let chunks = conn.session.send(now, &message_id, "message/cpim", &body);
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

    pub(super) fn leave(&mut self, now: Instant) {
        match self.phase {
            Phase::Joining => {
                self.cancelled = true;
                self.uac.leave(now);
            }
            Phase::Accepting { .. } | Phase::Binding { .. } => {
                self.cancelled = true;
                self.join_failure = Some(JoinError::Cancelled);
                self.msrp = None;
                self.uac.leave(now);
                self.phase = Phase::Leaving;
            }
            Phase::Chatting => {
                self.uac.leave(now);
                // RFC 4975 §5.4 / RFC 7701: the session is over once the BYE is sent; what is
                // queued is still written before the connection closes.
                self.msrp = None;
                self.phase = Phase::Leaving;
            }
            Phase::Leaving | Phase::Done => {}
        }
    }
}
