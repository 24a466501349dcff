//! What the relay asks the module (through the focus socket): an RFC 7701 NICKNAME decided by the
//! alias table, every participant as the relay needs it to rebuild its registry, and which of the
//! relay's sessions the table no longer has.
use super::{Host, Level, Module};
use chat_alias_focus::alias_table::{self, participant_flags, ParticipantInfo, Stripe};
use chat_alias_focus::join;

/// Why a NICKNAME is refused; [`NicknameError::status`] is the MSRP status the relay answers
/// with (RFC 7701 §8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicknameError {
    UnknownGroup(String),
    UnknownSession {
        session: String,
        conference: String,
    },
    /// The name breaks the RFC 8266 rules or the length limit.
    Invalid(String),
    TooLong,
    Taken,
}

impl NicknameError {
    pub fn status(&self) -> u16 {
        match self {
            NicknameError::UnknownGroup(_) | NicknameError::UnknownSession { .. } => 404,
            NicknameError::Invalid(_) | NicknameError::TooLong => 424,
            NicknameError::Taken => 425,
        }
    }
}

impl std::fmt::Display for NicknameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NicknameError::UnknownGroup(uri) => write!(f, "no group {uri}"),
            NicknameError::UnknownSession {
                session,
                conference,
            } => write!(f, "no session {session} in {conference}"),
            NicknameError::Invalid(e) => write!(f, "invalid nickname: {e}"),
            NicknameError::TooLong => write!(f, "nickname too long"),
            NicknameError::Taken => write!(f, "nickname in use"),
        }
    }
}

/// An RFC 7701 NICKNAME decided by the alias table, the single source of truth for names.
/// `nickname` empty removes the display name.
pub fn nickname<H: Host>(
    m: &Module<H>,
    conference_uri: &str,
    session: &str,
    nickname: &str,
) -> Result<Option<String>, NicknameError> {
    let Some(conference_key) =
        m.with_process(|p| p.groups.find(conference_uri).map(join::conference_key))
    else {
        return Err(NicknameError::UnknownGroup(conference_uri.to_string()));
    };
    let name = if nickname.is_empty() {
        None
    } else {
        chat_alias_proto::nickname::validate_display_name(
            nickname,
            m.params.max_display_name_chars as usize,
        )
        .map_err(|e| NicknameError::Invalid(e.to_string()))?;
        Some(nickname)
    };
    let stripe = alias_table::stripe_of(&conference_key, m.host.stripes());
    let renamed = m
        .host
        .with_stripe(stripe, |mem, _| match Stripe::attach(mem) {
            Ok(mut s) => s.rename(&conference_key, session, name),
            Err(_) => Err(alias_table::RenameError::UnknownSession),
        });
    match renamed {
        Ok(info) => {
            m.log(
                Level::Info,
                &format!(
                    "session {session} in {conference_uri} now named {:?}",
                    info.display_name
                ),
            );
            Ok(info.display_name)
        }
        Err(alias_table::RenameError::UnknownSession) => Err(NicknameError::UnknownSession {
            session: session.to_string(),
            conference: conference_uri.to_string(),
        }),
        Err(alias_table::RenameError::Taken) => Err(NicknameError::Taken),
        Err(alias_table::RenameError::TooLong) => Err(NicknameError::TooLong),
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

/// Every participant of the alias table with its conference key, in a stable order (stripe,
/// conference record, join order), from `offset`, at most `limit`. Collected under each stripe's
/// lock in turn, never more than one at a time.
pub(super) fn participants<H: Host>(
    m: &Module<H>,
    offset: usize,
    limit: usize,
) -> Vec<(String, ParticipantInfo)> {
    let mut rows: Vec<(String, ParticipantInfo)> = Vec::new();
    let mut index = 0usize;
    let end = offset.saturating_add(limit);
    for i in 0..m.host.stripes() {
        if index >= end {
            break;
        }
        m.host.with_stripe(i, |mem, _| {
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
    rows
}

/// Every participant as [`SessionRecord`]s (see [`participants`] for the order). The group URIs
/// are looked up after the stripe locks are released (join holds this process's state, then a
/// stripe lock: never the other way round).
pub fn sessions<H: Host>(m: &Module<H>, offset: usize, limit: usize) -> Vec<SessionRecord> {
    let rows = participants(m, offset, limit);
    let uris: std::collections::HashMap<String, String> = m.with_process(|p| {
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
pub fn missing_sessions<H: Host>(m: &Module<H>, pairs: &[(String, String)]) -> Vec<String> {
    let keys: Vec<String> = m.with_process(|p| {
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
            let stripe = alias_table::stripe_of(key, m.host.stripes());
            let held = m.host.with_stripe(stripe, |mem, _| {
                // A stripe that cannot be read says nothing: keep the session rather than drop it.
                Stripe::attach(mem).map_or(true, |s| s.has_session(key, session))
            });
            !held
        })
        .map(|((_, session), _)| session.clone())
        .collect()
}
