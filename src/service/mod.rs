//! The focus's procedures above the FFI room, in safe Rust: the traits through which they reach
//! Kamailio ([`Host`] for logging, counters, shared memory and the relay; [`Transaction`] for the
//! request being answered), the module's state ([`Module`]: settings, host, this process's state)
//! and the group definitions each process keeps in step with the last reload.
//!
//! The procedures themselves: `join.rs` (an INVITE to a group), `leave.rs` (BYE, dialog end, and
//! the places the focus ends itself), `relay_answers.rs` (what the relay asks: nicknames, the
//! session list, missing sessions) and `operator.rs` (reload, list, stats).
mod join;
mod leave;
mod operator;
mod relay_answers;
#[cfg(test)]
mod tests;

pub use join::join_invite;
pub use leave::{in_dialog, leave_dialog, timer_tick, InDialog};
pub use operator::{list, reload, stats};
pub use relay_answers::{missing_sessions, nickname, sessions, NicknameError, SessionRecord};

use crate::modparams::Modparams;
use crate::stats::Counter;
use chat_alias_focus::alias_table::ParticipantHandle;
use chat_alias_focus::groups::GroupSet;
use chat_alias_proto::control::{Request, Response};
use parking_lot::Mutex;

/// Severity of a log line (Kamailio's L_ERR, L_WARN, L_INFO, L_DBG).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

/// A participant's SIP dialog as the focus can end it. Exactly one owner; dropping it releases it.
pub trait Dialog {
    /// Sends a BYE in the dialog with `headers` (each line ending in CRLF) added. Fire and forget:
    /// the answer, or its absence, changes nothing.
    fn bye(&self, headers: &str) -> bool;
}

/// The dialogs of one stripe's participants and when each expires, guarded by the stripe's lock.
pub trait DialogSlots<D> {
    /// Records participant `h`'s dialog (None: tm could not build one, the place still expires)
    /// and the second ([`Host::now_s`]) from which it is past its lifetime. Returns what an
    /// earlier holder of the slot left behind (dropping it releases it), or `d` itself if the
    /// handle is out of range.
    fn put(&mut self, h: ParticipantHandle, d: Option<D>, expires_at: u64) -> Option<D>;
    /// Takes participant `h`'s dialog out, if it has one: the caller owns it. The slot no longer
    /// expires.
    fn take(&mut self, h: ParticipantHandle) -> Option<D>;
    /// Up to `max` participants whose dialog expired at or before `now`.
    fn expired(&self, now: u64, max: usize) -> Vec<ParticipantHandle>;
}

/// A connection to the relay's control socket: one request at a time, each answered or failed
/// within the link's own deadline.
pub trait Relay {
    fn next_id(&mut self) -> u64;
    fn call(&mut self, req: &Request) -> Result<Response, String>;
}

/// Everything the procedures need from the process they run in. In Kamailio: its logger and
/// counters, shared memory (alias table stripes behind cross-process locks, the published group
/// documents, the dialogs the focus ended lately) and the kernel's CSPRNG. In tests: fakes.
pub trait Host {
    type Dialog: Dialog;
    type Relay: Relay;
    fn log(&self, level: Level, msg: &str);
    fn count(&self, c: Counter, delta: i32);
    /// 16 unpredictable bytes (session ids, SDP ids); None if the source failed.
    fn random16(&self) -> Option<[u8; 16]>;
    /// Seconds on a monotonic clock every process of the host reads alike (dialog lifetimes).
    fn now_s(&self) -> u64;
    /// A new, not yet connected link to the relay.
    fn relay(&self) -> Self::Relay;
    /// How many stripes the alias table has.
    fn stripes(&self) -> usize;
    /// Runs `f` on stripe `i`'s bytes and its dialogs while holding the stripe's lock. `i` must be
    /// below [`Host::stripes`].
    fn with_stripe<R>(
        &self,
        i: usize,
        f: impl FnOnce(&mut [u8], &mut dyn DialogSlots<Self::Dialog>) -> R,
    ) -> R;
    /// The generation of the published group documents (0: none yet); cheap, read per request.
    fn docs_generation(&self) -> u64;
    /// The published group documents and their generation.
    fn read_docs(&self) -> Option<(u64, Vec<u8>)>;
    /// Replaces the published documents; every process picks them up on its next request.
    fn publish_docs(&self, blob: &[u8]) -> Result<u64, String>;
    /// Remembers the dialog of a participant the focus removed itself, so that a BYE of the
    /// participant crossing the focus's BYE still matches (RFC 3261 §15.1.2 lets either side end
    /// the dialog).
    fn bury(&self, dialog_key: u128);
    /// Whether `dialog_key` names a dialog the focus ended itself lately.
    fn is_buried(&self, dialog_key: u128) -> bool;
}

/// The SIP transaction of the request being handled.
pub trait Transaction {
    /// What [`Transaction::dialog`] builds: the host's dialog type.
    type Dialog;
    /// Creates the server transaction.
    fn begin(&mut self) -> Begin;
    /// The To-tag the replies to this request carry.
    fn local_tag(&mut self) -> Option<String>;
    /// The request's dialog as the focus needs it to send a BYE later (after `begin`).
    fn dialog(&mut self) -> Option<Self::Dialog>;
    /// Sends the final reply (retransmitted by the transaction layer).
    fn reply(&mut self, code: u16, reason: &str, headers: &[String], body: &[u8]) -> bool;
}

/// What creating the server transaction gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// A new transaction: the request is the procedure's to answer.
    New,
    /// A retransmission the transaction layer already answered: nothing to do.
    Retransmission,
    /// The transaction layer failed.
    Failed,
}

/// What became of a request handed to a procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A final reply was sent.
    Replied,
    /// A retransmission the transaction layer answered already.
    Retransmission,
    /// Nothing could be sent (the script decides).
    Failed,
}

/// The module: settings, host, and this process's state. Created once before Kamailio forks; each
/// process then has its own copy of `process` (process memory, not shared memory).
pub struct Module<H: Host> {
    pub params: Modparams,
    pub host: H,
    process: Mutex<Option<Process<H::Relay>>>,
}

/// Per-process state: this process's copy of the group definitions and its relay connection.
struct Process<R> {
    groups: GroupSet,
    generation: u64,
    relay: R,
}

impl<H: Host> Module<H> {
    pub fn new(params: Modparams, host: H) -> Self {
        Module {
            params,
            host,
            process: Mutex::new(None),
        }
    }

    fn new_process(&self) -> Process<H::Relay> {
        Process {
            groups: GroupSet::empty(),
            generation: 0,
            relay: self.host.relay(),
        }
    }

    fn log(&self, level: Level, msg: &str) {
        self.host.log(level, msg)
    }

    fn count(&self, c: Counter, delta: i32) {
        self.host.count(c, delta)
    }

    /// Runs `f` with this process's state, first catching up with a reload published by another
    /// process.
    fn with_process<R>(&self, f: impl FnOnce(&mut Process<H::Relay>) -> R) -> R {
        let mut guard = self.process.lock();
        let p = guard.get_or_insert_with(|| self.new_process());
        self.catch_up(p);
        f(p)
    }

    fn catch_up(&self, p: &mut Process<H::Relay>) {
        if self.host.docs_generation() == p.generation {
            return;
        }
        let Some((generation, blob)) = self.host.read_docs() else {
            return;
        };
        match decode_documents(&blob).map(|docs| GroupSet::from_documents(&docs)) {
            Some(Ok(set)) => {
                p.groups = set;
                p.generation = generation;
            }
            Some(Err(e)) => self.log(Level::Error, &format!("published groups do not parse: {e}")),
            None => self.log(Level::Error, "published groups blob is corrupt"),
        }
    }

    /// Whether the Request-URI names a loaded group.
    pub fn is_group(&self, request_uri: &str) -> bool {
        self.with_process(|p| p.groups.find(request_uri).is_some())
    }

    /// How many groups this process has loaded.
    pub fn group_count(&self) -> usize {
        self.with_process(|p| p.groups.len())
    }
}

/// Encodes the documents of a group directory for other processes (shared memory blob).
pub fn encode_documents(docs: &[(String, String)]) -> Vec<u8> {
    serde_json::to_vec(docs).unwrap_or_default()
}

fn decode_documents(blob: &[u8]) -> Option<Vec<(String, String)>> {
    serde_json::from_slice(blob).ok()
}

/// The conference key of a group URI: the loaded group's key, or (for a group a reload removed,
/// whose participants are still being ended) the canonical form of the URI itself.
fn conference_key_of(groups: &GroupSet, uri: &str) -> Option<String> {
    groups
        .find(uri)
        .map(chat_alias_focus::join::conference_key)
        .or_else(|| {
            chat_alias_proto::sip::parse_uri(uri.trim())
                .ok()
                .map(|u| u.key())
        })
}
