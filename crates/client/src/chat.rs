//! The blocking API of a chat session: [`Config`], [`Chat`] (what the CLI and the end-to-end tests
//! hold), [`Joining`] and [`ChatSender`]. Behind them a driver task (`chat/driver.rs`, on a thread
//! of its own, current-thread runtime) owns the SIP socket, the MSRP connection and the timers
//! (`chat/io.rs`), and moves bytes and time between them and the sans-IO cores ([`Uac`],
//! [`Session`]); received messages are read in `chat/incoming.rs`.
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
use crate::sip::{self, InviteParams, JoinAnswer, SipMessage, StreamDecoder, Uac, UacEvent};
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
            t1: InviteParams::T1,
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
mod conversation;
mod driver;
mod incoming;
mod io;

use driver::Driver;
pub use incoming::incoming;
