//! The join and leave procedures of the focus, above the FFI room: admission
//! (`chat_alias_focus::join`), the shared alias table, the relay, and the reply. Safe Rust: the FFI
//! layer hands in the request's parts and a [`Transaction`] to answer through.
use crate::config::Config;
use crate::ffi::{self, DialogRef, Level, Shared};
use crate::relay_link::RelayLink;
use crate::stats::{refusal_counter, Counter};
use chat_alias_focus::alias_table::{
    self, participant_flags, Assigned, Departed, JoinError, JoinRequest, ParticipantHandle,
    ParticipantInfo, ParticipantMedia, Stripe,
};
use chat_alias_focus::groups::GroupSet;
use chat_alias_focus::join::{
    self, Admission, Identity, InviteView, JoinLimits, Refusal, RefusalKind, RelayGrant,
};
use chat_alias_proto::control::{self, Request};
use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use std::hash::{Hash, Hasher};

/// State created in mod_init (before the fork) and inherited by every process.
pub struct Module {
    pub cfg: Config,
    pub shared: Shared,
}

pub static MODULE: OnceCell<Module> = OnceCell::new();

/// Per-process state: this process's copy of the group definitions and its relay connection.
struct Process {
    groups: GroupSet,
    generation: u64,
    relay: RelayLink,
}

impl Process {
    fn new(m: &Module) -> Self {
        Process {
            groups: GroupSet::empty(),
            generation: 0,
            relay: RelayLink::new(&m.cfg.relay_socket, m.cfg.relay_timeout_ms),
        }
    }
}

static PROCESS: Mutex<Option<Process>> = Mutex::new(None);

/// The SIP transaction of the request being handled, as the FFI room provides it.
pub trait Transaction {
    /// Creates the server transaction. `Ok(true)`: new; `Ok(false)`: a retransmission that tm
    /// already answered (do nothing); `Err`: tm failed.
    fn begin(&mut self) -> Result<bool, ()>;
    /// The To-tag the replies to this request carry (tm's local tag).
    fn local_tag(&mut self) -> Option<String>;
    /// The request's dialog as the focus needs it to send a BYE later (after `begin`).
    fn dialog_ref(&mut self) -> Option<DialogRef>;
    /// Watches the request's dialog; when it ends, `dialog_ended(handle)` runs (in any process).
    fn watch_dialog(&mut self, handle: u64) -> bool;
    /// Sends the final reply through tm (retransmitted as tm does).
    fn reply(&mut self, code: u16, reason: &str, headers: &[String], body: &[u8]) -> bool;
}

pub enum Outcome {
    Replied,
    Retransmission,
    Failed,
}

/// Encodes the documents of a group directory for other processes (shared memory blob).
pub fn encode_documents(docs: &[(String, String)]) -> Vec<u8> {
    serde_json::to_vec(docs).unwrap_or_default()
}

fn decode_documents(blob: &[u8]) -> Option<Vec<(String, String)>> {
    serde_json::from_slice(blob).ok()
}

/// Runs `f` with this process's state, first catching up with a reload published by RPC.
fn with_process<R>(m: &Module, f: impl FnOnce(&mut Process) -> R) -> R {
    let mut guard = PROCESS.lock();
    let p = guard.get_or_insert_with(|| Process::new(m));
    let current = m.shared.docs_generation();
    if current != p.generation {
        if let Some((generation, blob)) = m.shared.read_docs() {
            match decode_documents(&blob).map(|docs| GroupSet::from_documents(&docs)) {
                Some(Ok(set)) => {
                    p.groups = set;
                    p.generation = generation;
                }
                Some(Err(e)) => {
                    ffi::log(Level::Error, &format!("published groups do not parse: {e}"))
                }
                None => ffi::log(Level::Error, "published groups blob is corrupt"),
            }
        }
    }
    f(p)
}

/// Reads the group directory and, if every document is valid, publishes it to all processes.
/// On error the previous definitions stay in force and the error names file, line and reason.
/// A directory without any group is refused unless `force`: it would end every conference.
/// Conferences of groups that are gone afterwards are ended by the timer process (BYE to each
/// participant, see [`timer_tick`]).
pub fn reload(m: &Module, force: bool) -> Result<usize, String> {
    let loaded = GroupSet::load_dir(std::path::Path::new(&m.cfg.groups_dir));
    match loaded {
        Ok((set, _)) if set.is_empty() && !force => {
            ffi::count(Counter::ReloadFailures, 1);
            let msg = format!(
                "reload refused: {} holds no group document, which would end every conference; \
                 the previous groups stay in force (chat_alias.reload force accepts it)",
                m.cfg.groups_dir
            );
            ffi::log(Level::Error, &msg);
            Err(msg)
        }
        Ok((set, docs)) => {
            // A conference lives in one stripe: say so when a group could outgrow it.
            let (_, per_stripe) = m.cfg.per_stripe();
            for g in set
                .iter()
                .filter(|g| g.max_participants.is_some_and(|n| n > per_stripe))
            {
                ffi::log(
                    Level::Warn,
                    &format!(
                        "group {} allows {} participants but one conference can hold at most {per_stripe} \
                         (max_participants/table_stripes): raise max_participants",
                        g.uri,
                        g.max_participants.unwrap_or(0)
                    ),
                );
            }
            m.shared
                .publish_docs(&encode_documents(&docs))
                .map_err(|e| format!("cannot publish groups: {e}"))?;
            ffi::count(Counter::Reloads, 1);
            ffi::log(
                Level::Info,
                &format!("loaded {} groups from {}", set.len(), m.cfg.groups_dir),
            );
            Ok(set.len())
        }
        Err(e) => {
            ffi::count(Counter::ReloadFailures, 1);
            let msg = format!("group documents refused, previous definitions stay in force: {e}");
            ffi::log(Level::Error, &msg);
            Err(msg)
        }
    }
}

/// Whether the Request-URI names a loaded group.
pub fn is_group(m: &Module, request_uri: &str) -> bool {
    with_process(m, |p| p.groups.find(request_uri).is_some())
}

fn header_tag(value: Option<&str>) -> String {
    value
        .and_then(|f| chat_alias_proto::sip::parse_name_addr(f).ok())
        .and_then(|na| na.tag().map(str::to_string))
        .unwrap_or_default()
}

/// Identifies a participant's dialog: Call-ID, the participant's From-tag and the focus's To-tag.
/// Including the To-tag means an in-dialog request must carry the tag of our 200 OK to be
/// recognised (RFC 3261 §12.2.2), which the dialog module cannot check for locally generated replies.
fn dialog_key(call_id: Option<&str>, from_tag: &str, to_tag: &str) -> u128 {
    // DefaultHasher::new() uses fixed keys: the same dialog hashes alike in every process.
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        call_id.unwrap_or_default().trim().hash(&mut h);
        from_tag.hash(&mut h);
        to_tag.hash(&mut h);
        h.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

/// 16 bytes from the kernel's CSPRNG; None if it failed (then nothing guessable is handed out).
fn random16() -> Option<[u8; 16]> {
    let mut b = [0u8; 16];
    match getrandom::fill(&mut b) {
        Ok(()) => Some(b),
        Err(e) => {
            ffi::log(Level::Error, &format!("getrandom failed: {e}"));
            None
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn refuse(tx: &mut dyn Transaction, r: Refusal) -> Outcome {
    ffi::count(refusal_counter(r.kind), 1);
    ffi::log(
        Level::Info,
        &format!("join refused: {} {}", r.code, r.reason),
    );
    if tx.reply(r.code, &r.reason, &r.headers, b"") {
        Outcome::Replied
    } else {
        Outcome::Failed
    }
}

fn unavailable(m: &Module, reason: &str, kind: RefusalKind) -> Refusal {
    Refusal::new(503, format!("Service Unavailable ({reason})"), kind)
        .with_header(format!("Retry-After: {}", m.cfg.retry_after))
}

/// Handles an INVITE to a group: admission, alias, relay, dialog watch, 200 OK.
pub fn join_invite(m: &Module, view: &InviteView<'_>, tx: &mut dyn Transaction) -> Outcome {
    with_process(m, |p| {
        let limits = JoinLimits {
            max_display_name_chars: m.cfg.max_display_name_chars as usize,
        };
        let admission = join::admit(&p.groups, view, &limits);
        match tx.begin() {
            Err(()) => return Outcome::Failed,
            Ok(false) => return Outcome::Retransmission,
            Ok(true) => {}
        }
        let adm = match admission {
            Ok(a) => a,
            Err(r) => return refuse(tx, r),
        };
        let Some(to_tag) = tx.local_tag() else {
            return refuse(
                tx,
                Refusal::new(
                    500,
                    "Server Internal Error (no local tag)",
                    RefusalKind::Internal,
                ),
            );
        };
        let key = dialog_key(view.call_id, &header_tag(view.from), &to_tag);
        match admit_to_conference(m, &mut p.relay, &adm, key, tx) {
            Ok(()) => Outcome::Replied,
            Err(r) => refuse(tx, r),
        }
    })
}

fn admit_to_conference(
    m: &Module,
    relay: &mut RelayLink,
    adm: &Admission<'_>,
    dialog_key: u128,
    tx: &mut dyn Transaction,
) -> Result<(), Refusal> {
    let no_random = || unavailable(m, "no randomness", RefusalKind::Internal);
    let session = hex(&random16().ok_or_else(no_random)?);
    let answer_random = random16().ok_or_else(no_random)?;
    let stripe = alias_table::stripe_of(&adm.conference_key, m.shared.stripes());
    let (peer_path, accept_wrapped, chatroom) = join::peer_media(adm);
    let req = JoinRequest {
        conference_key: &adm.conference_key,
        max_participants: adm.group.max_participants,
        max_places_per_identity: m.cfg.places_per_identity(),
        anonymous: adm.anonymous,
        display_name: adm.display_name.as_deref(),
        identity_uri: &adm.identity,
        dialog_key,
        session_id: &session,
        // What the relay needs to rebuild the participant after a restart (`sessions`).
        flags: participant_flags::encode(&chatroom, adm.permissions.allow_private_message),
    };
    // The relay checks the first peer path URI only; the table keeps that one.
    let media = ParticipantMedia {
        peer_path: peer_path.first().map_or("", String::as_str),
        accept_wrapped_types: &accept_wrapped,
    };
    let joined = m.shared.with_stripe(stripe, |mem| {
        Stripe::attach(mem)
            .map_err(|_| JoinError::TableFull)?
            .join_with_media(&req, &media)
    });
    // `stored`: the participant as the table holds it when this dialog had joined already.
    let (assigned, session, stored): (Assigned, String, Option<ParticipantInfo>) = match joined {
        Ok(a) => (a, session, None),
        Err(JoinError::AlreadyJoinedDialog(a)) => {
            // The same dialog asked again after its transaction ended: same identity, no new place.
            // Only for the same authenticated identity: Call-ID, tags and Via are visible on the
            // path, and must not let anyone else take over the participant's alias and session.
            let existing = m.shared.with_stripe(stripe, |mem| {
                Stripe::attach(mem)
                    .ok()
                    .and_then(|s| s.participant(a.handle))
            });
            match existing {
                Some(pi) if pi.identity_uri == adm.identity => (a, pi.session_id.clone(), Some(pi)),
                _ => {
                    return Err(Refusal::new(
                        403,
                        "Forbidden (dialog belongs to another identity)",
                        RefusalKind::Policy,
                    ))
                }
            }
        }
        Err(JoinError::TableFull) => {
            return Err(unavailable(m, "alias table full", RefusalKind::TableFull))
        }
        Err(JoinError::ConferenceFull) => {
            return Err(Refusal::new(
                486,
                "Busy Here (conference full)",
                RefusalKind::ConferenceFull,
            )
            .with_header("Warning: 399 chat_alias \"max-participant-count reached\""))
        }
        Err(JoinError::IdentityAlreadyJoined) => {
            return Err(Refusal::new(
                486,
                "Busy Here (identity already in this conference)",
                RefusalKind::AlreadyJoined,
            ))
        }
        Err(JoinError::TooManyPlaces) => {
            return Err(Refusal::new(
                486,
                "Busy Here (too many places for this identity)",
                RefusalKind::TooManyPlaces,
            )
            .with_header(format!(
                "Warning: 399 chat_alias \"max_places_per_identity ({}) reached\"",
                m.cfg.max_places_per_identity
            )))
        }
        Err(JoinError::TooLong) => {
            return Err(Refusal::new(
                400,
                "Bad Request (identity or MSRP path too long)",
                RefusalKind::BadRequest,
            ))
        }
    };
    let fresh = stored.is_none();
    // A request of a dialog that joined already cannot change the participant after the fact: the
    // relay is told what the table holds (anonymity, peer path, chatroom tokens, private-message
    // permission), not what this request says (it may have dropped Privacy, or come from a
    // different offer), and the answer announces the same permission as the first one did.
    let (relay_request, adm_for_answer) = match &stored {
        None => (
            join_request(
                adm,
                &assigned,
                &session,
                peer_path,
                accept_wrapped,
                chatroom,
            ),
            None,
        ),
        Some(pi) => (
            stored_join_request(adm, pi),
            Some(Admission {
                group: adm.group,
                conference_key: adm.conference_key.clone(),
                identity: adm.identity.clone(),
                anonymous: pi.anonymous,
                display_name: adm.display_name.clone(),
                from_uri: adm.from_uri.clone(),
                permissions: chat_alias_focus::groups::Permissions {
                    allow_private_message: participant_flags::private_messages_allowed(pi.flags),
                    ..adm.permissions
                },
                offer: adm.offer.clone(),
                chat_index: adm.chat_index,
                accepts_multipart: adm.accepts_multipart,
            }),
        ),
    };
    let adm = adm_for_answer.as_ref().unwrap_or(adm);
    if fresh {
        // What a BYE from the focus needs (it removes participants not backed by a live MSRP
        // session); released with the place.
        match tx.dialog_ref() {
            Some(d) => {
                let left_behind = m
                    .shared
                    .with_stripe_dialogs(stripe, |_, mut refs| refs.put(assigned.handle, d));
                drop(left_behind);
            }
            None => ffi::log(
                Level::Warn,
                "tm could not build the participant's dialog: the focus cannot end it with a BYE",
            ),
        }
    }
    // From here on a fresh place is released on every way out (an error return, a panic) unless
    // the join commits: one mechanism instead of an undo at each exit.
    let mut place = Placement {
        m,
        relay,
        handle: fresh.then_some(assigned.handle),
    };

    let grant = match relay_join(place.relay, relay_request) {
        Ok(g) => g,
        Err(e) => {
            ffi::log(
                Level::Error,
                &format!("relay did not acknowledge join: {e}"),
            );
            return Err(unavailable(
                m,
                "chat relay unavailable",
                RefusalKind::RelayUnavailable,
            ));
        }
    };
    let identity = Identity {
        display_name: assigned.display_name.clone(),
        uri: assigned.uri.clone(),
    };
    let answer = join::answer(adm, &identity, &grant, answer_random)?;
    if fresh {
        if !tx.watch_dialog(assigned.handle.to_u64()) {
            ffi::log(
                Level::Error,
                "cannot watch the dialog: call dlg_manage() before chat_alias_join()",
            );
            return Err(Refusal::new(
                500,
                "Server Internal Error (dialog tracking unavailable)",
                RefusalKind::Internal,
            ));
        }
        // The dialog watch owns the place now: its end frees it (and takes the gauge back down).
        place.commit();
        ffi::count(Counter::ActiveParticipants, 1);
    }
    // Counted before the 200 leaves: whoever reads the statistics after receiving the 200 must
    // see this join (a count after t_reply raced with that reader).
    if fresh {
        ffi::count(Counter::Joins, 1);
        if adm.anonymous {
            ffi::count(Counter::AnonymousJoins, 1);
        }
        if answer.modified {
            ffi::count(Counter::ModifiedAliases, 1);
        }
    }
    if !tx.reply(200, "OK", &answer.headers, &answer.body) {
        // The dialog fails without a 200 and its watch frees the place.
        ffi::log(Level::Error, "t_reply(200) failed");
    }
    Ok(())
}

/// A place just taken in the alias table and announced to the relay, not yet owned by a dialog
/// watch. Dropping it uncommitted (error return or unwinding panic) releases the place.
struct Placement<'a> {
    m: &'a Module,
    relay: &'a mut RelayLink,
    handle: Option<ParticipantHandle>,
}

impl Placement<'_> {
    fn commit(&mut self) {
        self.handle = None;
    }
}

impl Drop for Placement<'_> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            release(self.m, self.relay, handle, "join not completed", true);
        }
    }
}

/// The relay's `join` for a new participant, from its request.
fn join_request(
    adm: &Admission<'_>,
    assigned: &Assigned,
    session: &str,
    peer_path: Vec<String>,
    accept_wrapped_types: Vec<String>,
    chatroom: Vec<String>,
) -> control::Join {
    control::Join {
        id: 0,
        version: control::VERSION,
        session: session.to_string(),
        conference: adm.group.uri.clone(),
        uri: assigned.uri.clone(),
        display_name: assigned.display_name.clone(),
        anonymous: adm.anonymous,
        peer_path,
        accept_wrapped_types,
        chatroom,
        private_messages_allowed: adm.permissions.allow_private_message,
    }
}

/// The relay's `join` repeating a participant the table holds, from the table alone.
fn stored_join_request(adm: &Admission<'_>, pi: &ParticipantInfo) -> control::Join {
    control::Join {
        id: 0,
        version: control::VERSION,
        session: pi.session_id.clone(),
        conference: adm.group.uri.clone(),
        uri: pi.uri.clone(),
        display_name: pi.display_name.clone(),
        anonymous: pi.anonymous,
        peer_path: if pi.peer_path.is_empty() {
            Vec::new()
        } else {
            vec![pi.peer_path.clone()]
        },
        accept_wrapped_types: pi.accept_wrapped_types.clone(),
        chatroom: participant_flags::chatroom(pi.flags),
        private_messages_allowed: participant_flags::private_messages_allowed(pi.flags),
    }
}

fn relay_join(relay: &mut RelayLink, mut join: control::Join) -> Result<RelayGrant, String> {
    join.id = relay.next_id();
    let resp = relay.call(&Request::Join(join))?;
    if !resp.ok {
        return Err(resp.error.unwrap_or_else(|| "refused".into()));
    }
    let g = resp.grant.ok_or("join acknowledged without a grant")?;
    Ok(RelayGrant {
        host: g.host,
        port: g.port,
        path: g.path,
        max_size: g.max_size,
    })
}

/// A place taken out of the table: what left, its SIP dialog, and its dialog key.
type TakenPlace = (Departed, Option<DialogRef>, u128);

/// Takes a participant's place out of the table, with its dialog. None for a stale handle.
fn take_place(m: &Module, handle: ParticipantHandle, unfinished: bool) -> Option<TakenPlace> {
    let stripe = handle.stripe as usize;
    if stripe >= m.shared.stripes() {
        return None;
    }
    m.shared.with_stripe_dialogs(stripe, |mem, mut refs| {
        let mut s = Stripe::attach(mem).ok()?;
        let dialog_key = s.participant(handle)?.dialog_key;
        let departed = if unfinished {
            s.withdraw(handle)?
        } else {
            s.leave(handle)?
        };
        Some((departed, refs.take(handle), dialog_key))
    })
}

/// Tells the relay a session left; false if it did not acknowledge (logged).
fn relay_leave(relay: &mut RelayLink, session: &str) -> bool {
    let id = relay.next_id();
    match relay.call(&Request::Leave {
        id,
        session: session.to_string(),
    }) {
        Ok(_) => true,
        Err(e) => {
            ffi::log(
                Level::Warn,
                &format!("relay did not acknowledge leave of session {session}: {e}"),
            );
            false
        }
    }
}

/// Frees a participant's place and tells the relay. Idempotent: a stale handle does nothing.
/// `unfinished`: the join never sent its 200 OK, so the identity it took was never announced and
/// goes back to its counters ([`Stripe::withdraw`]).
fn release(
    m: &Module,
    relay: &mut RelayLink,
    handle: ParticipantHandle,
    why: &str,
    unfinished: bool,
) -> Option<Departed> {
    let (departed, dialog, _) = take_place(m, handle, unfinished)?;
    // The participant ended the dialog (or it never began): nothing to send in it.
    drop(dialog);
    relay_leave(relay, &departed.session_id);
    ffi::log(
        Level::Debug,
        &format!(
            "participant {} left {} ({why})",
            departed.uri, departed.conference_key
        ),
    );
    Some(departed)
}

/// Why the focus itself ends a participant's place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// No MSRP connection bound the session within `bind_timeout` of the 200 OK.
    NeverBound,
    /// The MSRP connection has been gone for `msrp_gone_timeout`.
    MsrpGone,
    /// A reload removed the participant's group.
    GroupRemoved,
}

impl Removal {
    /// The BYE's `Reason` header (RFC 3326 §2), CRLF-terminated.
    pub fn reason_header(self) -> &'static str {
        match self {
            Removal::NeverBound => {
                "Reason: SIP;cause=408;text=\"MSRP session not established\"\r\n"
            }
            Removal::MsrpGone => "Reason: SIP;cause=408;text=\"MSRP connection lost\"\r\n",
            Removal::GroupRemoved => "Reason: SIP;cause=410;text=\"Group removed\"\r\n",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Removal::NeverBound => "MSRP session not bound within bind_timeout",
            Removal::MsrpGone => "MSRP connection gone for msrp_gone_timeout",
            Removal::GroupRemoved => "group removed by a reload",
        }
    }

    fn counter(self) -> Counter {
        match self {
            Removal::NeverBound => Counter::RemovedNeverBound,
            Removal::MsrpGone => Counter::RemovedMsrpGone,
            Removal::GroupRemoved => Counter::RemovedGroupGone,
        }
    }
}

/// The focus ends a participant's place: frees its identity first (so nothing is ever delivered
/// to it again and its name is free at once), then sends a BYE with the reason in its dialog and
/// tells the relay. Whatever the participant answers to the BYE, or if it never does, changes
/// nothing. False for a stale handle (the participant left meanwhile).
///
/// `relay` is None once the relay failed to answer during this tick: a stalled relay must not
/// cost `relay_timeout_ms` per removal. The relay drops a session the module no longer has when
/// it rebuilds its registry, and its MSRP connection is gone or never came anyway.
fn remove(
    m: &Module,
    relay: &mut Option<&mut RelayLink>,
    handle: ParticipantHandle,
    why: Removal,
) -> bool {
    let Some((departed, dialog, dialog_key)) = take_place(m, handle, false) else {
        return false;
    };
    // Before the BYE leaves: a BYE of the participant crossing ours must still match.
    m.shared.bury(dialog_key);
    let bye = match &dialog {
        Some(d) if d.bye(why.reason_header()) => "BYE sent",
        Some(_) => "BYE could not be sent",
        None => "no dialog to send a BYE in",
    };
    drop(dialog);
    ffi::count(Counter::Leaves, 1);
    ffi::count(Counter::ActiveParticipants, -1);
    ffi::count(why.counter(), 1);
    // The operator's trail: group and assigned identity, never the real one.
    ffi::log(
        Level::Info,
        &format!(
            "removed {:?} <{}> from {}: {} ({bye})",
            departed.display_name.as_deref().unwrap_or(""),
            departed.uri,
            departed.conference_key,
            why.describe()
        ),
    );
    if let Some(r) = relay.as_deref_mut() {
        if !relay_leave(r, &departed.session_id) {
            *relay = None;
        }
    }
    true
}

/// Most participants one tick removes from conferences of removed groups (the rest follow on the
/// next ticks): a tick stays short whatever a reload removed.
const MAX_GROUP_REMOVALS_PER_TICK: usize = 256;
/// Most sessions one tick asks the relay about.
const MAX_IDLE_PER_TICK: u32 = 64;

/// Once a second, in the module's timer process: ends the places not backed by a live MSRP
/// session (as the relay reports them) and those of groups a reload removed.
pub fn timer_tick(m: &Module) {
    with_process(m, |p| {
        remove_orphans(m, p);
        remove_idle(m, p);
    })
}

/// Participants of conferences whose group is no longer loaded.
fn remove_orphans(m: &Module, p: &mut Process) {
    // Only against a definition set this process has really caught up with: an empty set after a
    // failed catch-up must not end every conference.
    if p.generation == 0 || p.generation != m.shared.docs_generation() {
        return;
    }
    let loaded: std::collections::HashSet<String> =
        p.groups.iter().map(join::conference_key).collect();
    let mut budget = MAX_GROUP_REMOVALS_PER_TICK;
    let mut relay = Some(&mut p.relay);
    for i in 0..m.shared.stripes() {
        if budget == 0 {
            return;
        }
        let victims: Vec<ParticipantHandle> = m.shared.with_stripe(i, |mem| {
            let Ok(s) = Stripe::attach(mem) else {
                return Vec::new();
            };
            s.conferences()
                .into_iter()
                .filter(|c| !loaded.contains(&c.key))
                .flat_map(|c| s.participants(&c.key).into_iter().map(|pi| pi.handle))
                .take(budget)
                .collect()
        });
        budget -= victims.len();
        for h in victims {
            remove(m, &mut relay, h, Removal::GroupRemoved);
        }
    }
}

fn millis_or_never(seconds: u32) -> u64 {
    if seconds == 0 {
        u64::MAX
    } else {
        u64::from(seconds) * 1000
    }
}

/// Participants the relay reports without a bound MSRP connection for too long.
fn remove_idle(m: &Module, p: &mut Process) {
    if m.cfg.bind_timeout == 0 && m.cfg.msrp_gone_timeout == 0 {
        return;
    }
    let id = p.relay.next_id();
    let req = Request::Idle {
        id,
        bind_timeout_ms: millis_or_never(m.cfg.bind_timeout),
        gone_timeout_ms: millis_or_never(m.cfg.msrp_gone_timeout),
        max: MAX_IDLE_PER_TICK,
    };
    let idle = match p.relay.call(&req) {
        Ok(r) if r.ok => r.idle,
        Ok(r) => {
            ffi::log(
                Level::Debug,
                &format!("relay refused idle: {}", r.error.unwrap_or_default()),
            );
            return;
        }
        Err(e) => {
            ffi::log(Level::Debug, &format!("relay idle query failed: {e}"));
            return;
        }
    };
    let mut relay = Some(&mut p.relay);
    for s in idle.into_iter().take(MAX_IDLE_PER_TICK as usize) {
        let why = match s.reason {
            control::IdleReason::NeverBound => Removal::NeverBound,
            control::IdleReason::Gone => Removal::MsrpGone,
        };
        let key = p
            .groups
            .find(&s.conference)
            .map(join::conference_key)
            .or_else(|| {
                chat_alias_proto::sip::parse_uri(&s.conference)
                    .ok()
                    .map(|u| u.key())
            });
        let handle = key.and_then(|key| {
            let stripe = alias_table::stripe_of(&key, m.shared.stripes());
            m.shared.with_stripe(stripe, |mem| {
                Stripe::attach(mem)
                    .ok()
                    .and_then(|t| t.find_by_session(&key, &s.session))
            })
        });
        match handle {
            Some(h) => {
                remove(m, &mut relay, h, why);
            }
            // The relay holds a session the table no longer has: let it go there too.
            None => {
                if let Some(r) = relay.as_deref_mut() {
                    if !relay_leave(r, &s.session) {
                        relay = None;
                    }
                }
            }
        }
    }
}

/// The dialog of a participant ended (BYE, expiry, failure): free its identity.
pub fn dialog_ended(m: &Module, handle: u64, why: &str) {
    let handle = ParticipantHandle::from_u64(handle);
    // Workers are single-threaded: if this process already holds its state (a dialog callback run
    // from inside a join's own reply), waiting would deadlock; use a one-off relay connection.
    let departed = match PROCESS.try_lock() {
        Some(mut guard) => {
            let p = guard.get_or_insert_with(|| Process::new(m));
            release(m, &mut p.relay, handle, why, false)
        }
        None => release(
            m,
            &mut RelayLink::new(&m.cfg.relay_socket, m.cfg.relay_timeout_ms),
            handle,
            why,
            false,
        ),
    };
    if departed.is_some() {
        ffi::count(Counter::Leaves, 1);
        ffi::count(Counter::ActiveParticipants, -1);
    }
}

/// How many groups this process has loaded.
pub fn group_count(m: &Module) -> usize {
    with_process(m, |p| p.groups.len())
}

/// The dialog an in-dialog request names (Request-URI = the group, Call-ID, From-tag and the To-tag
/// of the focus's 200 OK): its key, and the participant holding it if any.
fn dialog_lookup(
    m: &Module,
    request_uri: &str,
    call_id: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Option<(u128, Option<ParticipantHandle>)> {
    // A group a reload removed still has its participants until the timer process ends their
    // dialogs: their in-dialog requests (a BYE above all) must still match meanwhile.
    let conference_key = with_process(m, |p| p.groups.find(request_uri).map(join::conference_key))
        .or_else(|| {
            chat_alias_proto::sip::parse_uri(request_uri.trim())
                .ok()
                .map(|u| u.key())
        })?;
    let to_tag = header_tag(to);
    if to_tag.is_empty() {
        return None;
    }
    let key = dialog_key(call_id, &header_tag(from), &to_tag);
    let stripe = alias_table::stripe_of(&conference_key, m.shared.stripes());
    let handle = m.shared.with_stripe(stripe, |mem| {
        Stripe::attach(mem)
            .ok()
            .and_then(|s| s.find_by_dialog(&conference_key, key))
            .map(|a| a.handle)
    });
    Some((key, handle))
}

/// Whether an in-dialog request belongs to a participant's dialog, or to one the focus ended
/// itself lately (a BYE crossing the focus's BYE is answered 200). The sample config answers 481
/// otherwise.
pub fn in_dialog(
    m: &Module,
    request_uri: &str,
    call_id: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> bool {
    match dialog_lookup(m, request_uri, call_id, from, to) {
        Some((_, Some(_))) => true,
        Some((key, None)) => m.shared.is_buried(key),
        None => false,
    }
}

/// A BYE: frees the participant's identity at once and tells the relay, whatever state the dialog
/// module has reached (under load a BYE can be handled before the dialog module confirmed the
/// dialog, which would otherwise leave the alias taken until the dialog expires). The dialog
/// callback that follows finds the place already free and does nothing.
pub fn leave_dialog(
    m: &Module,
    request_uri: &str,
    call_id: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> bool {
    match dialog_lookup(m, request_uri, call_id, from, to) {
        Some((_, Some(handle))) => {
            dialog_ended(m, handle.to_u64(), "BYE");
            true
        }
        _ => false,
    }
}

/// An RFC 7701 NICKNAME decided by the alias table, the single source of truth for names (asked by
/// the relay through the `chat_alias.nickname` RPC). `nickname` empty removes the display name.
/// Errors carry the MSRP status the relay answers with: 404 unknown session or group, 424 invalid
/// nickname, 425 in use.
pub fn nickname(
    m: &Module,
    conference_uri: &str,
    session: &str,
    nickname: &str,
) -> Result<Option<String>, (u16, String)> {
    let Some(conference_key) = with_process(m, |p| {
        p.groups.find(conference_uri).map(join::conference_key)
    }) else {
        return Err((404, format!("no group {conference_uri}")));
    };
    let name = if nickname.is_empty() {
        None
    } else {
        chat_alias_proto::nickname::validate_display_name(
            nickname,
            m.cfg.max_display_name_chars as usize,
        )
        .map_err(|e| (424, format!("invalid nickname: {e}")))?;
        Some(nickname)
    };
    let stripe = alias_table::stripe_of(&conference_key, m.shared.stripes());
    let renamed = m
        .shared
        .with_stripe(stripe, |mem| match Stripe::attach(mem) {
            Ok(mut s) => s.rename(&conference_key, session, name),
            Err(_) => Err(alias_table::RenameError::UnknownSession),
        });
    match renamed {
        Ok(info) => {
            ffi::log(
                Level::Info,
                &format!(
                    "session {session} in {conference_uri} now named {:?}",
                    info.display_name
                ),
            );
            Ok(info.display_name)
        }
        Err(alias_table::RenameError::UnknownSession) => {
            Err((404, format!("no session {session} in {conference_uri}")))
        }
        Err(alias_table::RenameError::Taken) => Err((425, "nickname in use".into())),
        Err(alias_table::RenameError::TooLong) => Err((424, "nickname too long".into())),
    }
}

/// One participant as the relay needs it to register the session again (`chat_alias.sessions`):
/// the fields of the control protocol's `join`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The group URI as written in its document (what the module sends in `join`); the canonical
    /// key when the group is no longer loaded.
    pub conference: String,
    pub session: String,
    pub uri: String,
    pub display_name: Option<String>,
    pub anonymous: bool,
    /// The first URI of the participant's `a=path` ("" if the table has none).
    pub peer_path: String,
    pub accept_wrapped_types: Vec<String>,
    pub chatroom: Vec<String>,
    pub private_messages_allowed: bool,
}

/// Every participant of the alias table, in a stable order (stripe, conference record, join
/// order), from `offset`, at most `limit`. Collected under each stripe's lock in turn; the group
/// URIs are looked up after the locks are released (join holds this process's state, then a
/// stripe lock: never the other way round).
pub fn sessions(m: &Module, offset: usize, limit: usize) -> Vec<SessionRecord> {
    let mut rows: Vec<(String, ParticipantInfo)> = Vec::new();
    let mut index = 0usize;
    let end = offset.saturating_add(limit);
    for i in 0..m.shared.stripes() {
        if index >= end {
            break;
        }
        m.shared.with_stripe(i, |mem| {
            let Ok(s) = Stripe::attach(mem) else {
                return;
            };
            for c in s.conferences() {
                let n = c.participants as usize;
                if index >= end {
                    return;
                }
                if index + n <= offset {
                    index += n;
                    continue;
                }
                for p in s.participants(&c.key) {
                    if index >= offset && index < end {
                        rows.push((c.key.clone(), p));
                    }
                    index += 1;
                }
            }
        });
    }
    let uris: std::collections::HashMap<String, String> = with_process(m, |p| {
        p.groups
            .iter()
            .map(|g| (join::conference_key(g), g.uri.clone()))
            .collect()
    });
    rows.into_iter()
        .map(|(key, p)| SessionRecord {
            conference: uris.get(&key).cloned().unwrap_or(key),
            session: p.session_id,
            uri: p.uri,
            display_name: p.display_name,
            anonymous: p.anonymous,
            peer_path: p.peer_path,
            accept_wrapped_types: p.accept_wrapped_types,
            chatroom: participant_flags::chatroom(p.flags),
            private_messages_allowed: participant_flags::private_messages_allowed(p.flags),
        })
        .collect()
}

/// Of the `(conference URI, session id)` pairs the relay holds, the session ids the alias table no
/// longer has (the relay closes them: a leave it never received, or a restarted Kamailio). The
/// conference is found as the relay was told in `join` (the group URI as written) or, for a group
/// no longer loaded, by its canonical key; O(1) per pair through the table's session index, each
/// stripe lock held for one lookup.
pub fn missing_sessions(m: &Module, pairs: &[(String, String)]) -> Vec<String> {
    let keys: Vec<String> = with_process(m, |p| {
        pairs
            .iter()
            .map(|(uri, _)| match p.groups.find(uri) {
                Some(g) => join::conference_key(g),
                None => chat_alias_proto::sip::parse_uri(uri)
                    .map(|u| u.key())
                    .unwrap_or_else(|_| uri.clone()),
            })
            .collect()
    });
    pairs
        .iter()
        .zip(keys)
        .filter(|((_, session), key)| {
            let stripe = alias_table::stripe_of(key, m.shared.stripes());
            let held = m.shared.with_stripe(stripe, |mem| {
                // A stripe that cannot be read says nothing: keep the session rather than drop it.
                Stripe::attach(mem).map_or(true, |s| s.has_session(key, session))
            });
            !held
        })
        .map(|((_, session), _)| session.clone())
        .collect()
}
