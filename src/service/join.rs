//! The join procedure: an INVITE to a group goes through admission (`chat_alias_focus::join`),
//! takes a place in the shared alias table, is announced to the relay, has its dialog watched, and
//! is answered 200 OK; or it is refused with the answer `chat_alias_focus::join` decides.
use super::leave::release;
use super::{Begin, Host, Level, Module, Outcome, Relay, Transaction};
use crate::stats::{refusal_counter, Counter};
use chat_alias_focus::alias_table::{
    self, participant_flags, Assigned, JoinError, JoinRequest, ParticipantHandle, ParticipantInfo,
    ParticipantMedia, Stripe,
};
use chat_alias_focus::join::{
    self, Admission, Identity, InviteView, JoinLimits, Refusal, RefusalKind, RelayGrant,
    TableLimits,
};
use chat_alias_proto::control::{self, Request};
use std::hash::{Hash, Hasher};

pub(super) fn header_tag(value: Option<&str>) -> String {
    value
        .and_then(|f| chat_alias_proto::sip::parse_name_addr(f).ok())
        .and_then(|na| na.tag().map(str::to_string))
        .unwrap_or_default()
}

/// Identifies a participant's dialog: Call-ID, the participant's From-tag and the focus's To-tag.
/// Including the To-tag means an in-dialog request must carry the tag of our 200 OK to be
/// recognised (RFC 3261 §12.2.2).
pub(super) fn dialog_key(call_id: Option<&str>, from_tag: &str, to_tag: &str) -> u128 {
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl<H: Host> Module<H> {
    fn table_limits(&self) -> TableLimits {
        TableLimits {
            retry_after: self.params.retry_after,
            max_places_per_identity: self.params.max_places_per_identity,
        }
    }

    /// 16 bytes from the host's CSPRNG, or a 503: nothing guessable is handed out.
    fn random16_or_503(&self) -> Result<[u8; 16], Refusal> {
        self.host.random16().ok_or_else(|| {
            self.log(Level::Error, "no randomness from the operating system");
            Refusal::unavailable(
                "no randomness",
                RefusalKind::Internal,
                self.params.retry_after,
            )
        })
    }
}

fn refuse<H: Host>(m: &Module<H>, tx: &mut impl Transaction, r: Refusal) -> Outcome {
    m.count(refusal_counter(r.kind), 1);
    m.log(
        Level::Info,
        &format!("join refused: {} {}", r.code, r.reason),
    );
    if tx.reply(r.code, &r.reason, &r.headers, b"") {
        Outcome::Replied
    } else {
        Outcome::Failed
    }
}

/// Handles an INVITE to a group: admission, alias, relay, dialog, 200 OK.
pub fn join_invite<H: Host, T: Transaction<Dialog = H::Dialog>>(
    m: &Module<H>,
    view: &InviteView<'_>,
    tx: &mut T,
) -> Outcome {
    m.with_process(|p| {
        let limits = JoinLimits {
            max_display_name_chars: m.params.max_display_name_chars as usize,
        };
        let admission = join::admit(&p.groups, view, &limits);
        match tx.begin() {
            Begin::Failed => return Outcome::Failed,
            Begin::Retransmission => return Outcome::Retransmission,
            Begin::New => {}
        }
        let adm = match admission {
            Ok(a) => a,
            Err(r) => return refuse(m, tx, r),
        };
        let Some(to_tag) = tx.local_tag() else {
            return refuse(m, tx, Refusal::internal("no local tag"));
        };
        let key = dialog_key(view.call_id, &header_tag(view.from), &to_tag);
        match admit_to_conference(m, &mut p.relay, &adm, key, view.call_id, tx) {
            Ok(()) => Outcome::Replied,
            Err(r) => refuse(m, tx, r),
        }
    })
}

fn admit_to_conference<H: Host, T: Transaction<Dialog = H::Dialog>>(
    m: &Module<H>,
    relay: &mut H::Relay,
    adm: &Admission<'_>,
    dialog_key: u128,
    call_id: Option<&str>,
    tx: &mut T,
) -> Result<(), Refusal> {
    let session = hex(&m.random16_or_503()?);
    let answer_random = m.random16_or_503()?;
    let stripe = alias_table::stripe_of(&adm.conference_key, m.host.stripes());
    let (peer_path, accept_wrapped, chatroom) = join::peer_media(adm);
    let req = JoinRequest {
        conference_key: &adm.conference_key,
        max_participants: adm.group.max_participants,
        max_places_per_identity: m.params.places_per_identity(),
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
    let joined = m.host.with_stripe(stripe, |mem, _| {
        Stripe::attach(mem)
            .map_err(|_| JoinError::TableFull)?
            .join_with_media(&req, &media)
    });
    // `stored`: the participant as the table holds it when this dialog had joined already.
    let (assigned, session, stored): (Assigned, String, Option<ParticipantInfo>) = match joined {
        Ok(a) => (a, session, None),
        Err(JoinError::AlreadyJoinedDialog(a)) => {
            // The same dialog asked again after its transaction ended: same identity, no new place.
            // Only for the same authenticated identity (see `table_refusal`).
            let existing = m.host.with_stripe(stripe, |mem, _| {
                Stripe::attach(mem)
                    .ok()
                    .and_then(|s| s.participant(a.handle))
            });
            match existing {
                Some(pi) if pi.identity_uri == adm.identity => (a, pi.session_id.clone(), Some(pi)),
                _ => {
                    return Err(join::table_refusal(
                        &JoinError::AlreadyJoinedDialog(a),
                        m.table_limits(),
                    ))
                }
            }
        }
        Err(e) => return Err(join::table_refusal(&e, m.table_limits())),
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
            m.log(
                Level::Error,
                &format!("relay did not acknowledge join: {e}"),
            );
            return Err(Refusal::unavailable(
                "chat relay unavailable",
                RefusalKind::RelayUnavailable,
                m.params.retry_after,
            ));
        }
    };
    let identity = Identity {
        display_name: assigned.display_name.clone(),
        uri: assigned.uri.clone(),
    };
    let answer = join::answer(adm, &identity, &grant, answer_random)?;
    if fresh {
        // What a BYE from the focus needs (it removes participants not backed by a live MSRP
        // session, and dialogs past their lifetime); released with the place.
        let dialog = tx.dialog();
        if dialog.is_none() {
            m.log(
                Level::Warn,
                "tm could not build the participant's dialog: the focus cannot end it with a BYE",
            );
        }
        let expires_at = match m.params.dialog_timeout {
            0 => u64::MAX,
            t => m.host.now_s().saturating_add(u64::from(t)),
        };
        let left_behind = m.host.with_stripe(stripe, |_, refs| {
            refs.put(assigned.handle, dialog, expires_at)
        });
        drop(left_behind);
        // The dialog owns the place now: the participant's BYE or the focus's own removal frees
        // it (and takes the gauge back down).
        place.commit();
        m.count(Counter::ActiveParticipants, 1);
    }
    // Counted before the 200 leaves: whoever reads the statistics after receiving the 200 must
    // see this join (a count after t_reply raced with that reader).
    if fresh {
        m.count(Counter::Joins, 1);
        if adm.anonymous {
            m.count(Counter::AnonymousJoins, 1);
        }
        if answer.modified {
            m.count(Counter::ModifiedAliases, 1);
        }
    }
    if !tx.reply(200, "OK", &answer.headers, &answer.body) {
        // Without a 200 no MSRP session is bound: bind_timeout frees the place.
        m.log(Level::Error, "t_reply(200) failed");
        return Ok(());
    }
    // The operator's trail, one line per join: group, assigned identity (never the real one),
    // Call-ID (Kamailio's side) and session id (the relay's side).
    m.log(
        Level::Info,
        &format!(
            "joined: {:?} <{}> to {}, Call-ID {:?}, session {}{}",
            assigned.display_name.as_deref().unwrap_or(""),
            assigned.uri,
            adm.conference_key,
            call_id.unwrap_or("").trim(),
            session,
            if fresh { "" } else { " (repeated)" },
        ),
    );
    Ok(())
}

/// A place just taken in the alias table and announced to the relay, not yet owned by its dialog. Dropping it uncommitted (error return or unwinding panic) releases the place.
struct Placement<'a, H: Host> {
    m: &'a Module<H>,
    relay: &'a mut H::Relay,
    handle: Option<ParticipantHandle>,
}

impl<H: Host> Placement<'_, H> {
    fn commit(&mut self) {
        self.handle = None;
    }
}

impl<H: Host> Drop for Placement<'_, H> {
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

fn relay_join(relay: &mut impl Relay, mut join: control::Join) -> Result<RelayGrant, String> {
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
