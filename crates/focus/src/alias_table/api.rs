//! The alias table's vocabulary: per-stripe capacities and sizing, which stripe a conference lives
//! in, handles, what a join asks and is given, what a leave releases, listings, usage, and the
//! errors of each operation.
use super::*;

/// Per-stripe capacities (modparams divided by the stripe count by the FFI layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripeConfig {
    /// Conference records: conferences with at least one participant at the same time.
    pub max_conferences: u32,
    /// Participant slots, shared by all conferences of the stripe.
    pub max_participants: u32,
}

impl StripeConfig {
    /// Both numbers must be in `1..=2^24`.
    pub fn validate(&self) -> Result<(), TableError> {
        Layout::new(self.max_conferences, self.max_participants)
            .map(|_| ())
            .ok_or(TableError::BadConfig)
    }
}

/// Bytes one stripe needs for `cfg`; 0 for a configuration [`StripeConfig::validate`] refuses.
///
/// Per participant slot: 1088 (slot) + 48 (base record) + 6 indexes × 2..4 buckets × 4 bytes =
/// 1184..1232 bytes. Per conference record: 312 + 2..4 buckets × 4 = 320..328.
/// Plus a 128-byte header.
pub fn stripe_bytes(cfg: &StripeConfig) -> usize {
    Layout::new(cfg.max_conferences, cfg.max_participants).map_or(0, |l| l.total)
}

/// The stripe a conference lives in: a fixed-key SipHash-1-3 of the key, so every process (and every
/// run) agrees. `stripes == 0` is treated as 1.
pub fn stripe_of(conference_key: &str, stripes: usize) -> usize {
    let mut h = SipHasher13_64::new_with_keys(0x6368_6174_2d61_6c69, 0x6173_2d73_7472_6970);
    h.write(conference_key.as_bytes());
    let n = stripes.max(1) as u64;
    // The remainder is < stripes, which is a usize.
    (h.finish() % n) as usize
}

/// Why a region could not be formatted or attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableError {
    /// A capacity of 0 or above 2^24, or a stripe index ≥ 4096.
    BadConfig,
    /// The region is smaller than the layout needs.
    TooSmall { needed: usize, got: usize },
    /// Not a stripe (wrong magic).
    BadMagic,
    /// A stripe of another layout version.
    BadVersion(u32),
    /// The header is inconsistent.
    Corrupt(&'static str),
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::BadConfig => write!(
                f,
                "alias table: capacities must be 1..={MAX_RECORDS}, stripe index < {MAX_STRIPES}"
            ),
            TableError::TooSmall { needed, got } => {
                write!(f, "alias table: region of {got} bytes, {needed} needed")
            }
            TableError::BadMagic => write!(f, "alias table: not an alias table stripe"),
            TableError::BadVersion(v) => {
                write!(f, "alias table: layout version {v}, expected {VERSION}")
            }
            TableError::Corrupt(what) => write!(f, "alias table: corrupt header ({what})"),
        }
    }
}

impl std::error::Error for TableError {}

/// A participant's place in the table, valid until it leaves. Stale handles are recognised by the
/// generation, which changes every time the slot is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParticipantHandle {
    pub stripe: u32,
    pub slot: u32,
    pub generation: u32,
}

impl ParticipantHandle {
    /// Packs into 64 bits (slot: 24, stripe: 12, generation: 28), e.g. for a C `void*` parameter.
    /// Never 0 for a handle the table gave out (generations start at 1).
    pub fn to_u64(self) -> u64 {
        u64::from(self.slot & 0xFF_FFFF)
            | u64::from(self.stripe & 0xFFF) << 24
            | u64::from(self.generation & part::GEN_MASK) << 36
    }

    pub fn from_u64(v: u64) -> Self {
        ParticipantHandle {
            slot: (v & 0xFF_FFFF) as u32,
            stripe: ((v >> 24) & 0xFFF) as u32,
            generation: ((v >> 36) & u64::from(part::GEN_MASK)) as u32,
        }
    }
}

/// One join, as the module learned it from the INVITE.
#[derive(Clone, Copy, Debug)]
pub struct JoinRequest<'a> {
    /// Canonical group URI key, ≤ 255 bytes.
    pub conference_key: &'a str,
    /// From the group document; `None` = no limit beyond the table's capacity.
    pub max_participants: Option<u32>,
    /// Places one `identity_uri` may hold in this conference, anonymous and named together; `None` =
    /// no limit. The join that would exceed it is [`JoinError::TooManyPlaces`].
    pub max_places_per_identity: Option<u32>,
    pub anonymous: bool,
    /// As the user wrote it (validated upstream: ≤ 64 chars, no controls; ≤ 256 bytes here).
    /// `None` + anonymous → base name [`ANONYMOUS_NAME`]; `None` + not anonymous → no display name.
    pub display_name: Option<&'a str>,
    /// The authenticated identity (canonical key, ≤ 255 bytes); the assigned URI when not anonymous.
    pub identity_uri: &'a str,
    /// The dialog's key, a hash the caller computes over Call-ID, the participant's From-tag and
    /// the focus's To-tag (RFC 3261 §12: the dialog id): a repeated INVITE of the same dialog is
    /// recognised and gets its first assignment back. The table only compares it.
    pub dialog_key: u128,
    /// MSRP session id, ≤ 64 bytes.
    pub session_id: &'a str,
    /// Bits the module keeps with the participant: [`participant_flags`] (the chatroom tokens
    /// and the group's private-message permission, for rebuilding the relay).
    pub flags: u32,
}

/// What the relay needs of a participant's offer to let it bind its MSRP session again after a
/// relay restart (`chat_alias.sessions`). Given to [`Stripe::join_with_media`]; [`Stripe::join`]
/// stores none.
#[derive(Clone, Copy, Debug, Default)]
pub struct ParticipantMedia<'a> {
    /// The first URI of the offer's `a=path` (the relay only checks that one), ≤ 256 bytes:
    /// longer → [`JoinError::TooLong`].
    pub peer_path: &'a str,
    /// The offer's `a=accept-wrapped-types`, stored as one space-separated string of at most 128
    /// bytes: items that do not fit (in order) are dropped, see [`compact_list`].
    pub accept_wrapped_types: &'a [String],
}

/// What a join was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assigned {
    pub handle: ParticipantHandle,
    /// `None` only for a non-anonymous participant who gave no display name.
    pub display_name: Option<String>,
    pub uri: String,
    /// The assigned display name differs from the chosen one (or from `Anonymous`).
    pub name_modified: bool,
    /// Anonymous URI number: 1 for the plain `sip:anonymous@anonymous.invalid`, N for
    /// `sip:anonymousN@…`; 0 for a non-anonymous participant (whose URI is its identity).
    pub uri_number: u32,
}

/// What a leave released (for the relay notification and the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Departed {
    pub conference_key: String,
    pub display_name: Option<String>,
    pub uri: String,
    pub session_id: String,
}

/// One participant, for RPC listings and the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub handle: ParticipantHandle,
    pub display_name: Option<String>,
    pub uri: String,
    pub anonymous: bool,
    /// The real, authenticated identity: for the operator only, never for other participants.
    pub identity_uri: String,
    pub session_id: String,
    pub flags: u32,
    pub name_modified: bool,
    pub uri_number: u32,
    /// The key of the dialog the participant joined through (see [`JoinRequest::dialog_key`]).
    pub dialog_key: u128,
    /// The first `a=path` URI of the offer ("" when joined without [`ParticipantMedia`]).
    pub peer_path: String,
    /// The offer's `a=accept-wrapped-types`, as stored (see [`compact_list`]).
    pub accept_wrapped_types: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConferenceInfo {
    pub key: String,
    pub participants: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PoolUsage {
    pub used: u32,
    pub capacity: u32,
}

/// Occupancy of every fixed pool of a stripe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Usage {
    pub conferences: PoolUsage,
    pub participants: PoolUsage,
    pub base_records: PoolUsage,
    /// Buckets of the conference-key index.
    pub conference_buckets: u32,
    /// Buckets of each of the four per-participant indexes.
    pub participant_buckets: u32,
}

impl Usage {
    /// True when nothing is in use.
    pub fn is_empty(&self) -> bool {
        self.conferences.used == 0 && self.participants.used == 0 && self.base_records.used == 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// No participant slot, conference record or base record left in the stripe → 503 Retry-After.
    TableFull,
    /// The group's max participant count is reached → 486.
    ConferenceFull,
    /// A non-anonymous join whose identity URI is already a participant's assigned URI.
    IdentityAlreadyJoined,
    /// The identity already holds `max_places_per_identity` places in the conference.
    TooManyPlaces,
    /// The same dialog already joined: its existing assignment; no second place was taken.
    AlreadyJoinedDialog(Assigned),
    /// Conference key or identity > 255 bytes, display name > 256 bytes, session id > 64 bytes.
    TooLong,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::TableFull => write!(f, "alias table full"),
            JoinError::ConferenceFull => write!(f, "conference full"),
            JoinError::IdentityAlreadyJoined => write!(f, "identity already joined"),
            JoinError::TooManyPlaces => write!(f, "too many places for this identity"),
            JoinError::AlreadyJoinedDialog(a) => write!(f, "dialog already joined as {}", a.uri),
            JoinError::TooLong => write!(f, "value too long for the alias table"),
        }
    }
}

impl std::error::Error for JoinError {}

/// Why a [`Stripe::rename`] was refused; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenameError {
    /// No participant with that MSRP session id in that conference (or no such conference).
    UnknownSession,
    /// The name clashes with another participant's display name (RFC 7701: 425).
    Taken,
    /// The name is longer than a slot holds (256 bytes).
    TooLong,
}

impl fmt::Display for RenameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenameError::UnknownSession => write!(f, "no such session in the conference"),
            RenameError::Taken => write!(f, "nickname in use"),
            RenameError::TooLong => write!(f, "nickname too long for the alias table"),
        }
    }
}

impl std::error::Error for RenameError {}
