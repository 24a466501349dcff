//! The driver: one tokio task that owns a session's sockets (`io.rs`) and its clock, and moves
//! bytes and time between them and the sans-IO [`Conversation`]: what arrives goes in through
//! `handle_*`, what the core asks for (bytes to send, connects, closes, events, the join's outcome)
//! is carried out after every step; between steps the task sleeps until the next input or the
//! core's next deadline.
use super::conversation::{Action, Conversation};
use super::io::{accept, host_for_uri, read_msrp, MsrpConn, SipIo};
use super::*;

enum Step {
    Sip(std::io::Result<Option<SipMessage>>),
    Msrp(std::io::Result<usize>),
    Accepted(std::io::Result<(TcpStream, SocketAddr)>),
    Cmd(Option<Cmd>),
    Timer,
}

pub(super) struct Driver {
    core: Conversation,
    server: SocketAddr,
    msrp_timeout: Duration,
    sip: SipIo,
    listener: Option<TcpListener>,
    msrp: Option<MsrpConn>,
    join_tx: Option<mpsc::Sender<Result<Joined, JoinError>>>,
    events: mpsc::Sender<Event>,
    cmds: tmpsc::UnboundedReceiver<Cmd>,
    cmds_open: bool,
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
        let uac = Uac::new(InviteParams {
            group: cfg.group.clone(),
            from: cfg.requested_identity(),
            privacy: cfg.alias.is_some(),
            asserted_identity: cfg.assert_identity.then(|| cfg.identity.clone()),
            transport: cfg.transport,
            local,
            offer,
            t1: cfg.t1,
            t2: InviteParams::T2.max(cfg.t1),
        })?;
        Ok(Driver {
            server: cfg.server,
            msrp_timeout: cfg.msrp_timeout,
            core: Conversation::new(cfg, uac, own_path, directory),
            sip,
            listener: Some(listener),
            msrp: None,
            join_tx: Some(join_tx),
            events,
            cmds,
            cmds_open: true,
            buf: vec![0; 64 * 1024],
        })
    }

    pub(super) async fn run(mut self) {
        self.core.start(Instant::now());
        loop {
            self.settle().await;
            if self.core.is_done() {
                break;
            }
            let deadline = self
                .core
                .poll_timeout()
                .unwrap_or(Instant::now() + Duration::from_secs(3600))
                .min(Instant::now() + Duration::from_secs(3600));
            let accepting = self.core.is_accepting() && self.listener.is_some();
            let step = tokio::select! {
                m = self.sip.recv() => Step::Sip(m),
                r = read_msrp(&mut self.msrp, &mut self.buf) => Step::Msrp(r),
                a = accept(&self.listener), if accepting => Step::Accepted(a),
                c = self.cmds.recv(), if self.cmds_open => Step::Cmd(c),
                _ = tokio::time::sleep_until(deadline.into()) => Step::Timer,
            };
            let now = Instant::now();
            match step {
                Step::Sip(Ok(Some(m))) => self.core.handle_sip(now, m),
                Step::Sip(Ok(None)) => {}
                Step::Sip(Err(e)) => {
                    if self.sip.is_reliable() {
                        self.core
                            .handle_sip_error(format!("the SIP connection closed: {e}"), false);
                    } else if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        // ICMP port unreachable: nothing listens at the server address.
                        self.core.handle_sip_error(
                            format!("nothing listens on udp {}", self.server),
                            true,
                        );
                    }
                }
                Step::Msrp(Ok(n)) if n > 0 => {
                    if self.msrp.is_some() {
                        self.core.handle_msrp_bytes(now, &self.buf[..n]);
                    }
                }
                Step::Msrp(r) => {
                    let why = match r {
                        Err(e) => format!("the MSRP connection failed: {e}"),
                        Ok(_) => "the relay closed the MSRP connection".to_string(),
                    };
                    self.msrp = None;
                    self.core.handle_msrp_closed(now, why);
                }
                Step::Accepted(Ok((stream, _))) => {
                    self.msrp = Some(MsrpConn::new(stream));
                    self.core.handle_accepted();
                }
                Step::Accepted(Err(e)) => self
                    .core
                    .handle_accept_failed(now, format!("MSRP accept: {e}")),
                Step::Cmd(Some(Cmd::Send {
                    message_id,
                    to,
                    text,
                })) => {
                    let date = crate::time::now_rfc3339();
                    self.core.handle_send(now, &date, message_id, to, text)
                }
                Step::Cmd(Some(Cmd::Leave)) => self.core.handle_leave(now),
                Step::Cmd(None) => {
                    self.cmds_open = false;
                    self.core.handle_leave(now);
                }
                Step::Timer => self.core.handle_timeout(now),
            }
        }
        // Whatever is still queued for the relay is written by the writer task before it
        // closes the connection; wait for nothing else.
        self.msrp = None;
        self.core.finish();
        self.deliver();
    }

    /// Carries out what the core asks until nothing moves.
    async fn settle(&mut self) {
        loop {
            while let Some(b) = self.core.poll_sip_transmit() {
                // UDP send errors (ICMP) are not fatal: timers retransmit or give up.
                if let Err(e) = self.sip.send(&b).await {
                    if self.sip.is_reliable() {
                        self.core
                            .handle_sip_error(format!("the SIP connection failed: {e}"), false);
                    }
                }
            }
            if let Some(c) = &self.msrp {
                while let Some(f) = self.core.poll_msrp_transmit() {
                    let _ = c.writer.send(f);
                }
            }
            let now = Instant::now();
            let moved = self.core.process(now);
            let acted = self.act(now).await;
            self.deliver();
            if !moved && !acted {
                break;
            }
        }
    }

    /// Performs the core's socket actions; whether there were any.
    async fn act(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(a) = self.core.poll_action() {
            any = true;
            match a {
                Action::Connect { host, port } => {
                    let connect = TcpStream::connect((host.as_str(), port));
                    match tokio::time::timeout(self.msrp_timeout, connect).await {
                        Ok(Ok(stream)) => {
                            self.msrp = Some(MsrpConn::new(stream));
                            self.core.handle_msrp_connected(now);
                        }
                        Ok(Err(e)) => self.core.handle_msrp_connect_failed(
                            now,
                            format!("MSRP connect to {host}:{port}: {e}"),
                        ),
                        Err(_) => self.core.handle_msrp_connect_failed(
                            now,
                            format!("MSRP connect to {host}:{port}: timed out"),
                        ),
                    }
                }
                Action::StopListening => self.listener = None,
                Action::CloseMsrp => self.msrp = None,
            }
        }
        any
    }

    /// Hands events and the join's outcome to the API's channels.
    fn deliver(&mut self) {
        while let Some(e) = self.core.poll_event() {
            let _ = self.events.send(e);
        }
        if let Some(r) = self.core.poll_join() {
            if let Some(tx) = self.join_tx.take() {
                let _ = tx.send(r);
            }
        }
    }
}
