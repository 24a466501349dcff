//! The driver: one tokio task (on a thread of its own, current-thread runtime) owns the SIP
//! socket, the MSRP connection and the timers, and moves bytes and time between them and the
//! sans-IO cores ([`Uac`], [`Session`]). [`Chat`] is its blocking handle: what the CLI and the
//! end-to-end tests hold.
//!
//! A session goes Joining (INVITE until a final response) → Binding (connect to the answer's
//! `a=path`, bodiless SEND until 200) → Chatting → Leaving (BYE until its final response) → done.
//! The join is reported ([`Chat::join`] returns) once the MSRP session is bound, so messages can
//! be sent at once. Events come in order on one channel: [`Event::Joined`] first, [`Event::Left`]
//! last.
use crate::event::{Event, Failure, FailureKind, Joined, LeftBy, Message, Sent};
use crate::identity::{same_uri, Directory, Identity, Recipient};
use crate::msrp::{self, MsrpEvent, Session};
use crate::random;
use crate::sip::{self, JoinAnswer, JoinRequest, SipMessage, StreamDecoder, Uac, UacEvent};
use chat_alias_proto::{cpim, msrp as pmsrp, sip as psip};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc as tmpsc;

pub use crate::sip::Transport;

/// How to join.
#[derive(Debug, Clone)]
pub struct Config {
    /// The group URI (Request-URI and To of the INVITE; CPIM To of group messages).
    pub group: String,
    /// Where the SIP server listens.
    pub server: SocketAddr,
    pub transport: Transport,
    /// The user's own address: P-Asserted-Identity, and From when not anonymous.
    pub identity: String,
    /// Join anonymously under this alias (`Privacy: id`, From `"alias" <sip:anonymous@anonymous.invalid>`).
    pub alias: Option<String>,
    /// The display name of a join with the real identity.
    pub display_name: Option<String>,
    /// Add P-Asserted-Identity, as the trusted network would (RFC 3325).
    pub assert_identity: bool,
    /// Body octets per MSRP SEND.
    pub chunk_size: usize,
    /// RFC 3261 T1: UDP retransmissions start at T1; joins and BYEs give up after 64·T1.
    pub t1: Duration,
    /// Longest wait for the MSRP connection and its bind.
    pub msrp_timeout: Duration,
}

impl Config {
    /// A join of `group` at `server` over UDP as `identity`, with the real identity.
    pub fn new(group: &str, server: SocketAddr, identity: &str) -> Config {
        Config {
            group: group.to_string(),
            server,
            transport: Transport::Udp,
            identity: identity.to_string(),
            alias: None,
            display_name: None,
            assert_identity: true,
            chunk_size: msrp::DEFAULT_CHUNK,
            t1: JoinRequest::T1,
            msrp_timeout: Duration::from_secs(10),
        }
    }

    /// Anonymously, under `alias`.
    pub fn alias(mut self, alias: &str) -> Config {
        self.alias = Some(alias.to_string());
        self
    }

    /// With the real identity and this display name.
    pub fn name(mut self, display_name: &str) -> Config {
        self.display_name = Some(display_name.to_string());
        self
    }

    pub fn transport(mut self, t: Transport) -> Config {
        self.transport = t;
        self
    }

    /// What the INVITE's From carries.
    pub fn requested_identity(&self) -> Identity {
        match &self.alias {
            Some(a) => Identity::anonymous(a),
            None => Identity::new(self.display_name.as_deref(), &self.identity),
        }
    }
}

/// Why a join did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// A final non-2xx response: code and reason phrase (408 generated locally when the server
    /// never answered).
    Refused { code: u16, reason: String },
    /// The 200 OK could not be used, the MSRP session could not be set up, or IO failed.
    Failed(String),
    /// Left before the join completed.
    Cancelled,
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Refused { code, reason } => write!(f, "refused: {code} {reason}"),
            JoinError::Failed(e) => write!(f, "join failed: {e}"),
            JoinError::Cancelled => f.write_str("join cancelled"),
        }
    }
}

impl std::error::Error for JoinError {}

enum Cmd {
    Send {
        message_id: String,
        to: Recipient,
        text: String,
    },
    Leave,
}

/// Sends commands to a session; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct ChatSender {
    tx: tmpsc::UnboundedSender<Cmd>,
    directory: Arc<Mutex<Directory>>,
}

impl ChatSender {
    /// Sends `text` to `to`; returns the Message-ID. The outcome arrives as [`Event::Sent`] or
    /// [`Event::Error`] with that id.
    pub fn send(&self, to: Recipient, text: &str) -> String {
        let message_id = msrp::new_message_id();
        let _ = self.tx.send(Cmd::Send {
            message_id: message_id.clone(),
            to,
            text: text.to_string(),
        });
        message_id
    }

    /// To the group.
    pub fn say(&self, text: &str) -> String {
        self.send(Recipient::Group, text)
    }

    /// A private message to `who` (see [`ChatSender::resolve`]).
    pub fn send_private(&self, who: &str, text: &str) -> Result<String, String> {
        let to = self.resolve(who)?;
        Ok(self.send(Recipient::Participant(to), text))
    }

    /// `<uri>`, a bare URI, or a display name seen as a sender.
    pub fn resolve(&self, who: &str) -> Result<Identity, String> {
        self.directory
            .lock()
            .map_err(|_| "directory unavailable".to_string())?
            .resolve(who)
    }

    /// The participants seen so far (as senders).
    pub fn known(&self) -> Vec<Identity> {
        self.directory
            .lock()
            .map(|d| d.all().to_vec())
            .unwrap_or_default()
    }

    /// Leaves: BYE (or, while joining, gives up and BYEs right after a 200).
    pub fn leave(&self) {
        let _ = self.tx.send(Cmd::Leave);
    }
}

/// A join in progress (see [`Chat::start`]).
pub struct Joining {
    sender: ChatSender,
    join_rx: mpsc::Receiver<Result<Joined, JoinError>>,
    events: mpsc::Receiver<Event>,
    thread: std::thread::JoinHandle<()>,
}

impl Joining {
    /// Commands for the session (a `leave` cancels the join).
    pub fn sender(&self) -> ChatSender {
        self.sender.clone()
    }

    /// Waits for the outcome.
    pub fn wait(self) -> Result<Chat, JoinError> {
        match self.join_rx.recv() {
            Ok(Ok(joined)) => Ok(Chat {
                joined,
                sender: self.sender,
                events: self.events,
                backlog: VecDeque::new(),
                thread: Some(self.thread),
            }),
            Ok(Err(e)) => {
                // The driver finishes what it must (ACK, BYE of an unusable 200) first.
                let _ = self.thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = self.thread.join();
                Err(JoinError::Failed("the client stopped unexpectedly".into()))
            }
        }
    }
}

/// A joined chat session (blocking handle). Dropping it leaves (BYE) and waits for the driver.
pub struct Chat {
    joined: Joined,
    sender: ChatSender,
    events: mpsc::Receiver<Event>,
    backlog: VecDeque<Event>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Chat {
    /// Joins; returns when the MSRP session is bound, or with the refusal.
    pub fn join(cfg: Config) -> Result<Chat, JoinError> {
        Chat::start(cfg).wait()
    }

    /// Starts joining in the background.
    pub fn start(cfg: Config) -> Joining {
        let (join_tx, join_rx) = mpsc::channel();
        let (ev_tx, ev_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = tmpsc::unbounded_channel();
        let directory = Arc::new(Mutex::new(Directory::default()));
        let dir = directory.clone();
        let thread = std::thread::Builder::new()
            .name("chat-alias-client".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = join_tx.send(Err(JoinError::Failed(format!("tokio runtime: {e}"))));
                        return;
                    }
                };
                rt.block_on(async move {
                    match Driver::new(cfg, join_tx.clone(), ev_tx, cmd_rx, dir).await {
                        Ok(d) => d.run().await,
                        Err(e) => {
                            let _ = join_tx.send(Err(JoinError::Failed(e)));
                        }
                    }
                });
            })
            .expect("cannot start a thread");
        Joining {
            sender: ChatSender {
                tx: cmd_tx,
                directory,
            },
            join_rx,
            events: ev_rx,
            thread,
        }
    }

    pub fn joined(&self) -> &Joined {
        &self.joined
    }

    /// The sending identity (CPIM From).
    pub fn identity(&self) -> &Identity {
        &self.joined.identity
    }

    pub fn sender(&self) -> ChatSender {
        self.sender.clone()
    }

    /// To the group; returns the Message-ID.
    pub fn say(&self, text: &str) -> String {
        self.sender.say(text)
    }

    /// A private message; returns the Message-ID.
    pub fn send_private(&self, who: &str, text: &str) -> Result<String, String> {
        self.sender.send_private(who, text)
    }

    /// The next event (those put aside by the `wait_*` helpers first), or None after `timeout`
    /// or when the session has ended and every event was taken.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(e);
        }
        self.events.recv_timeout(timeout).ok()
    }

    /// The session is over and every event has been taken ([`Chat::next_event`] returning None
    /// then means "nothing more, ever", not "nothing yet").
    pub fn ended(&self) -> bool {
        self.backlog.is_empty() && self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The first event (put aside or new) that `pred` accepts, within `timeout`; the others are
    /// kept, in order, for [`Chat::next_event`].
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let e = self.events.recv_timeout(left).ok()?;
            if pred(&e) {
                return Some(e);
            }
            self.backlog.push_back(e);
        }
    }

    /// A received message that `pred` accepts.
    pub fn expect_message(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        match self.wait_for(timeout, |e| e.as_message().is_some_and(&pred))? {
            Event::Message(m) => Some(m),
            _ => None,
        }
    }

    /// Sends and waits for the relay's verdict.
    pub fn send_confirmed(
        &mut self,
        to: Recipient,
        text: &str,
        timeout: Duration,
    ) -> Result<Sent, Failure> {
        let id = self.sender.send(to, text);
        self.confirm(&id, timeout)
    }

    /// `send_confirmed` to the group.
    pub fn say_confirmed(&mut self, text: &str, timeout: Duration) -> Result<Sent, Failure> {
        self.send_confirmed(Recipient::Group, text, timeout)
    }

    /// `send_confirmed` to one participant (`who` as in [`ChatSender::resolve`]).
    pub fn msg_confirmed(
        &mut self,
        who: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<Sent, Failure> {
        let to = self
            .sender
            .resolve(who)
            .map_err(|e| Failure::new(FailureKind::Command, e))?;
        self.send_confirmed(Recipient::Participant(to), text, timeout)
    }

    /// Waits for the outcome of message `id`.
    pub fn confirm(&mut self, id: &str, timeout: Duration) -> Result<Sent, Failure> {
        let found = self.wait_for(timeout, |e| match e {
            Event::Sent(s) => s.message_id == id,
            Event::Error(f) => f.message_id.as_deref() == Some(id),
            _ => false,
        });
        match found {
            Some(Event::Sent(s)) => Ok(s),
            Some(Event::Error(f)) => Err(f),
            _ => Err(Failure {
                code: Some(408),
                message_id: Some(id.to_string()),
                ..Failure::new(FailureKind::Send, "no verdict from the relay in time")
            }),
        }
    }

    /// Leaves (BYE) and waits for the session to end; returns every event not taken yet, the
    /// last being [`Event::Left`] (absent only if the driver failed).
    pub fn leave(mut self) -> Vec<Event> {
        self.sender.leave();
        let mut out: Vec<Event> = self.backlog.drain(..).collect();
        // The driver ends after the BYE's final response or timer F (64·T1).
        while let Ok(e) = self.events.recv() {
            out.push(e);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        out
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.sender.leave();
            while self.events.recv().is_ok() {}
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The driver.

enum SipIo {
    Udp {
        socket: UdpSocket,
        buf: Vec<u8>,
    },
    Tcp {
        r: OwnedReadHalf,
        w: OwnedWriteHalf,
        decoder: StreamDecoder,
        buf: Vec<u8>,
    },
}

impl SipIo {
    async fn connect(t: Transport, server: SocketAddr) -> std::io::Result<(SipIo, SocketAddr)> {
        match t {
            Transport::Udp => {
                let any: SocketAddr = match server {
                    SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
                    SocketAddr::V6(_) => "[::]:0".parse().expect("literal"),
                };
                let socket = UdpSocket::bind(any).await?;
                socket.connect(server).await?;
                let local = socket.local_addr()?;
                Ok((
                    SipIo::Udp {
                        socket,
                        buf: vec![0; 65536],
                    },
                    local,
                ))
            }
            Transport::Tcp => {
                let s = TcpStream::connect(server).await?;
                let _ = s.set_nodelay(true);
                let local = s.local_addr()?;
                let (r, w) = s.into_split();
                Ok((
                    SipIo::Tcp {
                        r,
                        w,
                        decoder: StreamDecoder::default(),
                        buf: vec![0; 65536],
                    },
                    local,
                ))
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            SipIo::Udp { socket, .. } => socket.send(bytes).await.map(|_| ()),
            SipIo::Tcp { w, .. } => w.write_all(bytes).await,
        }
    }

    /// The next message; `Ok(None)` for a datagram that is not SIP. Cancel-safe.
    async fn recv(&mut self) -> std::io::Result<Option<SipMessage>> {
        match self {
            SipIo::Udp { socket, buf } => {
                let n = socket.recv(buf).await?;
                Ok(SipMessage::parse(&buf[..n]).ok())
            }
            SipIo::Tcp {
                r, decoder, buf, ..
            } => loop {
                match decoder.poll() {
                    Some(Ok(m)) => return Ok(Some(m)),
                    Some(Err(e)) => return Err(std::io::Error::other(e)),
                    None => {}
                }
                let n = r.read(buf).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                decoder.feed(&buf[..n]);
            },
        }
    }

    fn is_reliable(&self) -> bool {
        matches!(self, SipIo::Tcp { .. })
    }
}

struct MsrpConn {
    session: Session,
    reader: OwnedReadHalf,
    /// Frames for the writer task, in order.
    writer: tmpsc::UnboundedSender<Vec<u8>>,
}

async fn write_frames(mut w: OwnedWriteHalf, mut rx: tmpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(frame) = rx.recv().await {
        if w.write_all(&frame).await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

impl MsrpConn {
    fn new(stream: TcpStream, session: Session) -> MsrpConn {
        let _ = stream.set_nodelay(true);
        let (reader, w) = stream.into_split();
        let (tx, rx) = tmpsc::unbounded_channel();
        tokio::spawn(write_frames(w, rx));
        MsrpConn {
            session,
            reader,
            writer: tx,
        }
    }
}

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

enum Step {
    Sip(std::io::Result<Option<SipMessage>>),
    Msrp(std::io::Result<usize>),
    Accepted(std::io::Result<(TcpStream, SocketAddr)>),
    Cmd(Option<Cmd>),
    Timer,
}

struct Driver {
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

fn host_for_uri(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => format!("[{v}]"),
    }
}

impl Driver {
    async fn new(
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
        let uac = Uac::new(JoinRequest {
            group: cfg.group.clone(),
            from: requested.clone(),
            privacy: cfg.alias.is_some(),
            asserted_identity: cfg.assert_identity.then(|| cfg.identity.clone()),
            transport: cfg.transport,
            local,
            offer,
            t1: cfg.t1,
            t2: JoinRequest::T2.max(cfg.t1),
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

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn report_join(&mut self, r: Result<Joined, JoinError>) {
        if let Some(tx) = self.join_tx.take() {
            let _ = tx.send(r);
        }
    }

    async fn run(mut self) {
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
    async fn settle(&mut self) {
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

    fn deadline(&self) -> Instant {
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

    fn new_session(&self) -> Session {
        let to_path = self
            .answer
            .as_ref()
            .map(|a| a.relay_path.clone())
            .unwrap_or_default();
        Session::new(self.own_path.clone(), to_path).with_chunk_size(self.cfg.chunk_size)
    }

    async fn uac_event(&mut self, now: Instant, e: UacEvent) {
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

    async fn connect_msrp(&mut self, now: Instant) {
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
                self.msrp = None;
                self.msrp_lost(now, format!("MSRP framing lost: {why}"));
            }
        }
    }

    fn send(&mut self, now: Instant, message_id: String, to: Recipient, text: String) {
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

    fn leave(&mut self, now: Instant) {
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

/// A received message (message/cpim, RFC 3862) → [`Message`]: sender and recipient from the CPIM
/// From and To, private when To is not the group (URI equivalence), the encapsulated text.
pub fn incoming(group: &str, message_id: String, content_type: &str, body: &[u8]) -> Message {
    let is_cpim = psip::parse_media_type(content_type).is_ok_and(|t| t.is("message", "cpim"));
    let mut m = Message {
        message_id,
        from: None,
        to: None,
        private: false,
        content_type: content_type.to_string(),
        text: String::from_utf8_lossy(body).into_owned(),
    };
    if !is_cpim {
        return m;
    }
    match cpim::parse_message(body) {
        Ok(c) => {
            m.from = c.headers.from.as_ref().map(Identity::from_cpim);
            m.to = c.headers.to.first().map(Identity::from_cpim);
            m.private = m.to.as_ref().is_some_and(|t| !same_uri(&t.uri, group));
            m.content_type = c.content_type.to_string();
            let textual = psip::parse_media_type(c.content_type)
                .is_ok_and(|t| t.type_.eq_ignore_ascii_case("text"));
            m.text = if textual {
                String::from_utf8_lossy(c.body).into_owned()
            } else {
                format!("[{} octets of {}]", c.body.len(), c.content_type)
            };
        }
        Err(e) => m.text = format!("[unreadable message/cpim: {e}]"),
    }
    m
}

async fn read_msrp(c: &mut Option<MsrpConn>, buf: &mut [u8]) -> std::io::Result<usize> {
    match c {
        Some(c) => c.reader.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn accept(l: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOUNGE: &str = "sip:lounge@im.example.net";

    fn cpim_body(to: &str, ct: &str, body: &[u8]) -> Vec<u8> {
        cpim::compose(
            r#""bob-2" <sip:anonymous2@anonymous.invalid>"#,
            &[to.to_string()],
            &[("DateTime", "2024-05-01T12:00:00Z")],
            ct,
            body,
        )
    }

    #[test]
    fn group_and_private_messages() {
        let g = incoming(
            LOUNGE,
            "m1".into(),
            "message/cpim",
            &cpim_body(
                "<sip:lounge@IM.example.net>",
                "text/plain;charset=UTF-8",
                "héllo".as_bytes(),
            ),
        );
        assert_eq!(
            g.from,
            Some(Identity::new(
                Some("bob-2"),
                "sip:anonymous2@anonymous.invalid"
            ))
        );
        assert!(!g.private, "the group URI, compared by URI equivalence");
        assert_eq!(g.text, "héllo");
        assert_eq!(g.content_type, "text/plain;charset=UTF-8");
        let p = incoming(
            LOUNGE,
            "m2".into(),
            "Message/CPIM",
            &cpim_body(r#""Alice" <sip:alice@example.com>"#, "text/plain", b"psst"),
        );
        assert!(p.private);
        assert_eq!(
            p.to,
            Some(Identity::new(Some("Alice"), "sip:alice@example.com"))
        );
    }

    #[test]
    fn other_bodies_are_summarised_not_dumped() {
        let img = incoming(
            LOUNGE,
            "m3".into(),
            "message/cpim",
            &cpim_body("<sip:lounge@im.example.net>", "image/png", &[0, 1, 2]),
        );
        assert_eq!(img.text, "[3 octets of image/png]");
        let plain = incoming(LOUNGE, "m4".into(), "text/plain", b"raw");
        assert_eq!((plain.from, plain.text.as_str()), (None, "raw"));
        let broken = incoming(LOUNGE, "m5".into(), "message/cpim", b"From: nobody\r\n\r\n");
        assert!(
            broken.text.starts_with("[unreadable message/cpim"),
            "{}",
            broken.text
        );
    }
}
