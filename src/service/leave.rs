//! How places end: a participant's BYE (the participant left), and the removals the focus decides
//! itself once a second (a dialog past `dialog_timeout`, a session never bound or gone at the
//! relay, a group a reload removed), which free the place first and then send a BYE with a
//! `Reason`.
use super::join::{dialog_key, header_tag};
use super::{conference_key_of, Dialog, Host, Level, Module, Process, Relay};
use crate::stats::Counter;
use chat_alias_focus::alias_table::{self, Departed, ParticipantHandle, Stripe};
use chat_alias_focus::join;
use chat_alias_proto::control::{self, Request};

/// A place taken out of the table: what left, its SIP dialog, and its dialog key.
type TakenPlace<D> = (Departed, Option<D>, u128);

/// Takes a participant's place out of the table, with its dialog. None for a stale handle.
fn take_place<H: Host>(
    m: &Module<H>,
    handle: ParticipantHandle,
    unfinished: bool,
) -> Option<TakenPlace<H::Dialog>> {
    let stripe = handle.stripe as usize;
    if stripe >= m.host.stripes() {
        return None;
    }
    m.host.with_stripe(stripe, |mem, refs| {
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
fn relay_leave<H: Host>(m: &Module<H>, relay: &mut H::Relay, session: &str) -> bool {
    let id = relay.next_id();
    match relay.call(&Request::Leave {
        id,
        session: session.to_string(),
    }) {
        Ok(_) => true,
        Err(e) => {
            m.log(
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
pub(super) fn release<H: Host>(
    m: &Module<H>,
    relay: &mut H::Relay,
    handle: ParticipantHandle,
    why: &str,
    unfinished: bool,
) -> Option<Departed> {
    let (departed, dialog, _) = take_place(m, handle, unfinished)?;
    // The participant ended the dialog (or it never began): nothing to send in it.
    drop(dialog);
    relay_leave(m, relay, &departed.session_id);
    m.log(
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
    /// The dialog lasted `dialog_timeout`.
    Expired,
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
            Removal::Expired => "Reason: SIP;cause=408;text=\"Dialog time limit reached\"\r\n",
            Removal::NeverBound => {
                "Reason: SIP;cause=408;text=\"MSRP session not established\"\r\n"
            }
            Removal::MsrpGone => "Reason: SIP;cause=408;text=\"MSRP connection lost\"\r\n",
            Removal::GroupRemoved => "Reason: SIP;cause=410;text=\"Group removed\"\r\n",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Removal::Expired => "dialog lasted dialog_timeout",
            Removal::NeverBound => "MSRP session not bound within bind_timeout",
            Removal::MsrpGone => "MSRP connection gone for msrp_gone_timeout",
            Removal::GroupRemoved => "group removed by a reload",
        }
    }

    fn counter(self) -> Counter {
        match self {
            Removal::Expired => Counter::RemovedExpired,
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
fn remove<H: Host>(
    m: &Module<H>,
    relay: &mut Option<&mut H::Relay>,
    handle: ParticipantHandle,
    why: Removal,
) -> bool {
    let Some((departed, dialog, dialog_key)) = take_place(m, handle, false) else {
        return false;
    };
    // Before the BYE leaves: a BYE of the participant crossing ours must still match.
    m.host.bury(dialog_key);
    let bye = match &dialog {
        Some(d) if d.bye(why.reason_header()) => "BYE sent",
        Some(_) => "BYE could not be sent",
        None => "no dialog to send a BYE in",
    };
    drop(dialog);
    m.count(Counter::Leaves, 1);
    m.count(Counter::ActiveParticipants, -1);
    m.count(why.counter(), 1);
    // The operator's trail: group and assigned identity, never the real one; the session id
    // matches the relay's log.
    m.log(
        Level::Info,
        &format!(
            "removed {:?} <{}> from {}, session {}: {} ({bye})",
            departed.display_name.as_deref().unwrap_or(""),
            departed.uri,
            departed.conference_key,
            departed.session_id,
            why.describe()
        ),
    );
    if let Some(r) = relay.as_deref_mut() {
        if !relay_leave(m, r, &departed.session_id) {
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

/// Most dialogs one tick ends for their age (the rest follow on the next ticks).
const MAX_EXPIRED_PER_TICK: usize = 256;

/// Once a second, in the module's timer process: ends the dialogs past `dialog_timeout`, the
/// places not backed by a live MSRP session (as the relay reports them) and those of groups a
/// reload removed.
pub fn timer_tick<H: Host>(m: &Module<H>) {
    m.with_process(|p| {
        remove_expired(m, p);
        remove_orphans(m, p);
        remove_idle(m, p);
    })
}

/// Participants whose dialog lasted `dialog_timeout` (RFC 3261 leaves a dialog's lifetime to its
/// parties; the focus bounds it so that a participant that vanished without a BYE, and whose
/// MSRP session the relay cannot judge, still frees its place).
fn remove_expired<H: Host>(m: &Module<H>, p: &mut Process<H::Relay>) {
    if m.params.dialog_timeout == 0 {
        return;
    }
    let now = m.host.now_s();
    let mut budget = MAX_EXPIRED_PER_TICK;
    let mut relay = Some(&mut p.relay);
    for i in 0..m.host.stripes() {
        if budget == 0 {
            return;
        }
        let victims = m.host.with_stripe(i, |_, refs| refs.expired(now, budget));
        budget = budget.saturating_sub(victims.len());
        for h in victims {
            remove(m, &mut relay, h, Removal::Expired);
        }
    }
}

/// Participants of conferences whose group is no longer loaded.
fn remove_orphans<H: Host>(m: &Module<H>, p: &mut Process<H::Relay>) {
    // Only against a definition set this process has really caught up with: an empty set after a
    // failed catch-up must not end every conference.
    if p.generation == 0 || p.generation != m.host.docs_generation() {
        return;
    }
    let loaded: std::collections::HashSet<String> =
        p.groups.iter().map(join::conference_key).collect();
    let mut budget = MAX_GROUP_REMOVALS_PER_TICK;
    let mut relay = Some(&mut p.relay);
    for i in 0..m.host.stripes() {
        if budget == 0 {
            return;
        }
        let victims: Vec<ParticipantHandle> = m.host.with_stripe(i, |mem, _| {
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
fn remove_idle<H: Host>(m: &Module<H>, p: &mut Process<H::Relay>) {
    if m.params.bind_timeout == 0 && m.params.msrp_gone_timeout == 0 {
        return;
    }
    let id = p.relay.next_id();
    let req = Request::Idle {
        id,
        bind_timeout_ms: millis_or_never(m.params.bind_timeout),
        gone_timeout_ms: millis_or_never(m.params.msrp_gone_timeout),
        max: MAX_IDLE_PER_TICK,
    };
    let idle = match p.relay.call(&req) {
        Ok(r) if r.ok => r.idle,
        Ok(r) => {
            m.log(
                Level::Debug,
                &format!("relay refused idle: {}", r.error.unwrap_or_default()),
            );
            return;
        }
        Err(e) => {
            m.log(Level::Debug, &format!("relay idle query failed: {e}"));
            return;
        }
    };
    let mut relay = Some(&mut p.relay);
    for s in idle.into_iter().take(MAX_IDLE_PER_TICK as usize) {
        let why = match s.reason {
            control::IdleReason::NeverBound => Removal::NeverBound,
            control::IdleReason::Gone => Removal::MsrpGone,
        };
        let handle = conference_key_of(&p.groups, &s.conference).and_then(|key| {
            let stripe = alias_table::stripe_of(&key, m.host.stripes());
            m.host.with_stripe(stripe, |mem, _| {
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
                    if !relay_leave(m, r, &s.session) {
                        relay = None;
                    }
                }
            }
        }
    }
}

/// The participant ended its dialog (BYE): frees its identity, tells the relay and writes the
/// operator's audit line. False for a stale handle (the place is free already).
pub(super) fn participant_left<H: Host>(
    m: &Module<H>,
    handle: ParticipantHandle,
    call_id: Option<&str>,
) -> bool {
    let Some(departed) = m.with_process(|p| release(m, &mut p.relay, handle, "BYE", false)) else {
        return false;
    };
    m.count(Counter::Leaves, 1);
    m.count(Counter::ActiveParticipants, -1);
    // The operator's trail, one line per leave: group, assigned identity (never the real one),
    // Call-ID (Kamailio's side) and session id (the relay's side).
    m.log(
        Level::Info,
        &format!(
            "left: {:?} <{}> from {}, Call-ID {:?}, session {} (BYE)",
            departed.display_name.as_deref().unwrap_or(""),
            departed.uri,
            departed.conference_key,
            call_id.unwrap_or("").trim(),
            departed.session_id,
        ),
    );
    true
}

/// The parts of an in-dialog request that name its dialog (header values as received).
#[derive(Debug, Clone, Copy, Default)]
pub struct InDialog<'a> {
    /// The group's URI, as the focus's Contact told the participant.
    pub request_uri: &'a str,
    pub call_id: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
}

/// The dialog an in-dialog request names (Request-URI = the group, Call-ID, From-tag and the To-tag
/// of the focus's 200 OK): its key, and the participant holding it if any.
fn dialog_lookup<H: Host>(
    m: &Module<H>,
    req: &InDialog<'_>,
) -> Option<(u128, Option<ParticipantHandle>)> {
    // A group a reload removed still has its participants until the timer process ends their
    // dialogs: their in-dialog requests (a BYE above all) must still match meanwhile.
    let conference_key = m.with_process(|p| conference_key_of(&p.groups, req.request_uri))?;
    let to_tag = header_tag(req.to);
    if to_tag.is_empty() {
        return None;
    }
    let key = dialog_key(req.call_id, &header_tag(req.from), &to_tag);
    let stripe = alias_table::stripe_of(&conference_key, m.host.stripes());
    let handle = m.host.with_stripe(stripe, |mem, _| {
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
pub fn in_dialog<H: Host>(m: &Module<H>, req: &InDialog<'_>) -> bool {
    match dialog_lookup(m, req) {
        Some((_, Some(_))) => true,
        Some((key, None)) => m.host.is_buried(key),
        None => false,
    }
}

/// A BYE: frees the participant's identity at once and tells the relay (before the 200 to the
/// BYE leaves, so a new join right after it finds the name free).
pub fn leave_dialog<H: Host>(m: &Module<H>, req: &InDialog<'_>) -> bool {
    match dialog_lookup(m, req) {
        Some((_, Some(handle))) => participant_left(m, handle, req.call_id),
        _ => false,
    }
}
