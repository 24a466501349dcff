//! The per-conference participant / alias mapping table, in shared memory.
//!
//! # Where it lives
//! Kamailio forks its workers after `mod_init`; only shared memory (`shm_malloc`) is shared between
//! them, and a process may see it at a different address. So the table is plain bytes: fixed capacity
//! chosen at init, records addressed by index, every field little-endian at a fixed offset (see
//! `layout`), no pointers and no Rust heap data inside. This module is safe Rust over `&mut [u8]`.
//!
//! # Striping and locking
//! The table is S independent **stripes**; a conference lives wholly in stripe
//! [`stripe_of`]`(conference_key, S)`. Each stripe is a self-contained arena (its own conference
//! records, participant slots, base records, free-number records and hash indexes), sized by
//! [`stripe_bytes`]. The FFI layer keeps one cross-process lock per stripe (Kamailio's `gen_lock_t`)
//! and builds a [`Stripe`] with [`Stripe::attach`] only while holding that stripe's lock; nothing here
//! locks.
//!
//! # Uniqueness
//! Within a conference, assigned display names are pairwise distinct under the nickname clash key and
//! assigned URIs are pairwise distinct. A name that clashes becomes `<name>-<N>`, N = 2, 3, … (the
//! unmodified holder counts as the first); an anonymous joiner gets `sip:anonymous@anonymous.invalid`
//! or, if taken, `sip:anonymousN@anonymous.invalid`, N = 2, 3, …. A candidate that is itself taken is
//! skipped, never duplicated.
//!
//! # No recycled identities
//! Others address a participant by its assigned URI and know it by its assigned name, so handing a
//! departed participant's identity to a newcomer would deliver what was meant for the one who left
//! (RFC 7701 §11 warns of exactly this takeover). Hence:
//! - an `anonymousN` number is never handed out twice while the conference record lives (while the
//!   conference has participants); its counter starts again only with a new record;
//! - a suffix `<name>-<N>` is never handed out twice while the base record of `<name>` lives, i.e.
//!   while any participant holds a name of that base (the name itself or one of its suffixes), and a
//!   name chosen literally as a spent `<name>-<N>` is treated as taken;
//! - the unmodified name and the plain `sip:anonymous@anonymous.invalid` are reused once free (the CR
//!   requires it: they are what the user asked for, not something the focus made up).
//!
//! # Renames (RFC 7701 NICKNAME)
//! [`Stripe::rename`] is how the relay's NICKNAME requests are decided: this table is the single
//! source of truth for names in a conference. The participant is found by its MSRP session id through
//! a session index (keyed like the others), so a rename costs the same as a join. A new name is
//! refused when its clash key is held by *another* participant, or when it is a spent suffixed name;
//! the participant's own clash key is accepted again (re-spelled as written). A rename never gets a
//! suffix. The old name is given back exactly as a leave gives it back: out of the clash index, one
//! reference less on its base record (freed at zero); its suffix stays spent.
//!
//! # Places per identity
//! An identity index (conference, authenticated identity) → participants lets a join count the places
//! its identity already holds by walking one bucket chain: O(places of that identity), not a scan of
//! the conference ([`JoinRequest::max_places_per_identity`]).
//!
//! # O(1) assignment
//! Each (conference, clash key of a chosen name) has a **base record** holding the next never-used
//! suffix; each conference record holds the next never-used anonymous URI number. Assignment takes the
//! next number from the counter; it never scans `bob-2, bob-3, …`. A candidate is skipped only when a
//! participant holds that exact name or URI (someone chose `bob-3` literally), so the cost is
//! amortised O(1). All lookups go through chained hash indexes (load ≤ 1/2) keyed with the stripe's
//! secret SipHash key, so chain lengths cannot be steered by users.
//!
//! # Hashes instead of key text
//! Names are indexed by a 128-bit keyed SipHash-1-3 of (conference index, clash key), URIs by the same
//! hash of (conference index, URI), and only those hashes are compared. Equal keys always give equal
//! hashes, so **a collision can never let two equal names or URIs coexist**; its only possible effect
//! is a false clash (an extra suffix, or a spurious `IdentityAlreadyJoined`). For a keyed PRF with
//! 128-bit output the chance that any two of n live keys collide is ≤ n²/2¹²⁹ (≈ 10⁻²⁷ for a million
//! participants), and without the key nobody can search for collisions.

mod check;
mod layout;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::hash::Hasher;

use siphasher::sip::SipHasher13 as SipHasher13_64;
use siphasher::sip128::{Hasher128, SipHasher13};

use layout::{
    base, conf, get_bytes, get_u128, get_u32, get_u64, hdr, part, put_bytes, put_u128, put_u32,
    put_u64, Index, Layout, Pool, FREE, LINK, MAGIC, MAX_KEY, MAX_NAME, MAX_PEER_PATH, MAX_RECORDS,
    MAX_SESSION, MAX_STRIPES, MAX_WRAPPED, NIL, POOLS, STATE, USED, VERSION,
};

/// The base name of an anonymous joiner who gave no display name (the name the CR's suffix rule then numbers).
pub const ANONYMOUS_NAME: &str = "Anonymous";
/// The plain anonymous URI (number 1).
pub const ANONYMOUS_URI: &str = "sip:anonymous@anonymous.invalid";

/// The comparison key of a display name: equal keys clash (RFC 8266 comparison plus confusable
/// skeleton; total, never fails).
fn clash_key(name: &str) -> String {
    chat_alias_proto::nickname::clash_key(name)
}

/// `<name>-<n>`. Trailing spaces of the chosen name are left out: RFC 8266 keeps them out of the
/// name anyway, and `"alice  -2"` would read as something else than the `alice-2` it is.
fn suffixed(name: &str, n: u32) -> String {
    format!("{}-{n}", name.trim_end())
}

/// The assigned URI of anonymous number `n` (1 = the plain URI).
pub fn anonymous_uri(n: u32) -> String {
    if n <= 1 {
        ANONYMOUS_URI.to_owned()
    } else {
        format!("sip:anonymous{n}@anonymous.invalid")
    }
}

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
    /// Hash of Call-ID + From-tag: the same dialog is recognised and gets its first assignment back.
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

/// The participant `flags` bits the module defines (one place for them): the `a=chatroom` tokens
/// the relay acts upon and the group's private-message permission. Other chatroom tokens are not
/// kept (the relay ignores them).
pub mod participant_flags {
    /// The group allows this participant private messages.
    pub const PRIVATE_MESSAGES_ALLOWED: u32 = 1 << 0;
    /// `a=chatroom:nickname`.
    pub const CHATROOM_NICKNAME: u32 = 1 << 1;
    /// `a=chatroom:nicknames`.
    pub const CHATROOM_NICKNAMES: u32 = 1 << 2;
    /// `a=chatroom:private-messages`.
    pub const CHATROOM_PRIVATE_MESSAGES: u32 = 1 << 3;

    const TOKENS: [(u32, &str); 3] = [
        (CHATROOM_NICKNAME, "nickname"),
        (CHATROOM_NICKNAMES, "nicknames"),
        (CHATROOM_PRIVATE_MESSAGES, "private-messages"),
    ];

    /// The bits for an offer's chatroom tokens (case-insensitive) and the group's permission.
    pub fn encode<S: AsRef<str>>(chatroom: &[S], private_messages_allowed: bool) -> u32 {
        let mut f = if private_messages_allowed {
            PRIVATE_MESSAGES_ALLOWED
        } else {
            0
        };
        for t in chatroom {
            for (bit, name) in TOKENS {
                if t.as_ref().eq_ignore_ascii_case(name) {
                    f |= bit;
                }
            }
        }
        f
    }

    /// The chatroom tokens the bits stand for (lower case, in a fixed order).
    pub fn chatroom(flags: u32) -> Vec<String> {
        TOKENS
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, name)| (*name).to_string())
            .collect()
    }

    pub fn private_messages_allowed(flags: u32) -> bool {
        flags & PRIVATE_MESSAGES_ALLOWED != 0
    }
}

/// Joins list items with single spaces into at most `max` bytes. An item that does not fit in
/// what is left, or that is empty or contains whitespace (it could not be split back), is dropped;
/// later, shorter items may still be kept. Never refuses.
pub fn compact_list<S: AsRef<str>>(items: &[S], max: usize) -> String {
    let mut out = String::new();
    for it in items {
        let it = it.as_ref();
        if it.is_empty() || it.chars().any(char::is_whitespace) {
            continue;
        }
        let need = it.len() + usize::from(!out.is_empty());
        if out.len() + need > max {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(it);
    }
    out
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

/// Hash domains, so that equal bytes in different roles never share a hash.
const TAG_CLASH: u8 = 1;
const TAG_URI: u8 = 2;
const TAG_DIALOG: u8 = 3;
const TAG_CONF: u8 = 4;
const TAG_SESSION: u8 = 5;
const TAG_IDENT: u8 = 6;

/// One stripe of the table, borrowed for the duration of one locked access.
///
/// The layout and key are copied from the header at attach time (they never change after `init`); all
/// state lives in `mem`.
pub struct Stripe<'m> {
    mem: &'m mut [u8],
    lay: Layout,
    key: [u8; 16],
    stripe_index: u32,
}

impl fmt::Debug for Stripe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripe")
            .field("stripe_index", &self.stripe_index)
            .field("usage", &self.usage())
            .finish()
    }
}

impl<'m> Stripe<'m> {
    /// Formats `mem` as an empty stripe. `hash_key` should be random (shared by all processes, secret
    /// from users). Only the first [`stripe_bytes`] bytes are used.
    pub fn init(
        mem: &'m mut [u8],
        cfg: &StripeConfig,
        stripe_index: u32,
        hash_key: [u8; 16],
    ) -> Result<Self, TableError> {
        let lay =
            Layout::new(cfg.max_conferences, cfg.max_participants).ok_or(TableError::BadConfig)?;
        if stripe_index >= MAX_STRIPES {
            return Err(TableError::BadConfig);
        }
        let got = mem.len();
        let mem = mem.get_mut(..lay.total).ok_or(TableError::TooSmall {
            needed: lay.total,
            got,
        })?;
        mem.fill(0);
        put_bytes(mem, hdr::MAGIC, &MAGIC);
        put_u32(mem, hdr::VERSION, VERSION);
        put_u32(mem, hdr::STRIPE_INDEX, stripe_index);
        put_u32(mem, hdr::MAX_CONFERENCES, cfg.max_conferences);
        put_u32(mem, hdr::MAX_PARTICIPANTS, cfg.max_participants);
        put_u64(mem, hdr::TOTAL_BYTES, lay.total as u64);
        put_bytes(mem, hdr::HASH_KEY, &hash_key);
        put_u32(mem, hdr::CONF_BUCKETS, lay.conf_buckets);
        put_u32(mem, hdr::PART_BUCKETS, lay.part_buckets);
        for ix in layout::INDEXES {
            let (s, e) = lay.bucket_range(ix);
            if let Some(b) = mem.get_mut(s..e) {
                b.fill(0xFF);
            }
        }
        let mut s = Stripe {
            mem,
            lay,
            key: hash_key,
            stripe_index,
        };
        for p in POOLS {
            let cap = lay.cap(p);
            for i in 0..cap {
                let next = if i + 1 < cap { i + 1 } else { NIL };
                s.wf(p, i, LINK, next);
                if p == Pool::Part {
                    s.wf(p, i, part::GEN, 1);
                }
            }
            s.set_free_head(p, 0);
            s.set_used(p, 0);
        }
        Ok(s)
    }

    /// Checks the header of a stripe formatted by [`Stripe::init`] (possibly in another process, at
    /// another address). O(1); returns an error, never panics, on any bytes.
    pub fn attach(mem: &'m mut [u8]) -> Result<Self, TableError> {
        let got = mem.len();
        if got < hdr::SIZE {
            return Err(TableError::TooSmall {
                needed: hdr::SIZE,
                got,
            });
        }
        if get_bytes(mem, hdr::MAGIC, 8) != MAGIC {
            return Err(TableError::BadMagic);
        }
        let version = get_u32(mem, hdr::VERSION).unwrap_or(0);
        if version != VERSION {
            return Err(TableError::BadVersion(version));
        }
        let rd = |off| get_u32(mem, off).unwrap_or(NIL);
        let lay = Layout::new(rd(hdr::MAX_CONFERENCES), rd(hdr::MAX_PARTICIPANTS))
            .ok_or(TableError::Corrupt("capacities"))?;
        let stripe_index = rd(hdr::STRIPE_INDEX);
        if stripe_index >= MAX_STRIPES {
            return Err(TableError::Corrupt("stripe index"));
        }
        if get_u64(mem, hdr::TOTAL_BYTES) != Some(lay.total as u64) {
            return Err(TableError::Corrupt("total size"));
        }
        if rd(hdr::CONF_BUCKETS) != lay.conf_buckets || rd(hdr::PART_BUCKETS) != lay.part_buckets {
            return Err(TableError::Corrupt("derived sizes"));
        }
        for p in POOLS {
            let head = rd(hdr::FREE_HEAD + 4 * p as usize);
            let used = rd(hdr::USED + 4 * p as usize);
            if (head != NIL && head >= lay.cap(p)) || used > lay.cap(p) {
                return Err(TableError::Corrupt("pool header"));
            }
        }
        let key = <[u8; 16]>::try_from(get_bytes(mem, hdr::HASH_KEY, 16))
            .map_err(|_| TableError::Corrupt("hash key"))?;
        let mem = mem.get_mut(..lay.total).ok_or(TableError::TooSmall {
            needed: lay.total,
            got,
        })?;
        Ok(Stripe {
            mem,
            lay,
            key,
            stripe_index,
        })
    }

    pub fn stripe_index(&self) -> u32 {
        self.stripe_index
    }

    pub fn config(&self) -> StripeConfig {
        StripeConfig {
            max_conferences: self.lay.conf_cap,
            max_participants: self.lay.part_cap,
        }
    }

    // ----------------------------------------------------------------------------------------------
    // Join / leave

    /// Adds a participant, choosing a unique display name and URI. Checks, in order: lengths, the same
    /// dialog already joined, the identity already joined (non-anonymous), the identity's places,
    /// `max_participants`, free records. Nothing is changed when an error is returned.
    pub fn join(&mut self, req: &JoinRequest<'_>) -> Result<Assigned, JoinError> {
        self.join_with_media(req, &ParticipantMedia::default())
    }

    /// [`Stripe::join`], also keeping what the relay needs to rebuild the participant: a peer path
    /// over 256 bytes is [`JoinError::TooLong`]; the accept-wrapped-types list is compacted (never
    /// refused).
    pub fn join_with_media(
        &mut self,
        req: &JoinRequest<'_>,
        media: &ParticipantMedia<'_>,
    ) -> Result<Assigned, JoinError> {
        if req.conference_key.len() > MAX_KEY
            || req.identity_uri.len() > MAX_KEY
            || req.session_id.len() > MAX_SESSION
            || req.display_name.is_some_and(|n| n.len() > MAX_NAME)
            || media.peer_path.len() > MAX_PEER_PATH
        {
            return Err(JoinError::TooLong);
        }
        let key_hash = self.conf_key_hash(req.conference_key);
        let existing = self.find_conf(req.conference_key, key_hash);
        // The conference index the participant will belong to: existing, or the record a new
        // conference will take.
        let c = match existing {
            Some(c) => {
                if let Some(p) = self.find_dialog(c, req.dialog_key) {
                    return Err(JoinError::AlreadyJoinedDialog(self.assigned_of(p)));
                }
                c
            }
            None => self.free_head(Pool::Conf),
        };
        let identity_hash = self.uri_hash(c, req.identity_uri);
        if existing.is_some() && !req.anonymous && self.find_uri(c, identity_hash).is_some() {
            return Err(JoinError::IdentityAlreadyJoined);
        }
        if let Some(max) = req.max_places_per_identity {
            let held = existing.map_or(0, |c| self.places_of(c, req.identity_uri, max));
            if held >= max {
                return Err(JoinError::TooManyPlaces);
            }
        }
        let count = existing.map_or(0, |c| self.cf(c, conf::COUNT));
        if req.max_participants.is_some_and(|m| count >= m) {
            return Err(JoinError::ConferenceFull);
        }
        if self.lay.rec(Pool::Conf, c).is_none() || self.free_head(Pool::Part) == NIL {
            return Err(JoinError::TableFull);
        }
        let chosen = match (req.display_name, req.anonymous) {
            (Some(n), _) => Some(n),
            (None, true) => Some(ANONYMOUS_NAME),
            (None, false) => None,
        };
        let base_hash = chosen.map(|n| self.clash_hash(c, n));
        let existing_base = match (existing, base_hash) {
            (Some(c), Some(h)) => self.find_base(c, h),
            _ => None,
        };

        if base_hash.is_some() && existing_base.is_none() && self.free_head(Pool::Base) == NIL {
            return Err(JoinError::TableFull);
        }

        // From here on the join succeeds (barring a corrupted table, which is rolled back below).
        if existing.is_none() {
            self.new_conference(c, req.conference_key, key_hash);
        }
        let result = self.assign(c, req, chosen, base_hash, existing_base, identity_hash);
        match &result {
            Ok(a) => {
                let p = a.handle.slot;
                self.wstr(Pool::Part, p, part::PEER, part::PEER_LEN, media.peer_path);
                let wrapped = compact_list(media.accept_wrapped_types, MAX_WRAPPED);
                self.wstr(Pool::Part, p, part::WRAPPED, part::WRAPPED_LEN, &wrapped);
            }
            Err(_) if self.cf(c, conf::COUNT) == 0 => self.free_conference(c),
            Err(_) => {}
        }
        result
    }

    fn assign(
        &mut self,
        c: u32,
        req: &JoinRequest<'_>,
        chosen: Option<&str>,
        base_hash: Option<u128>,
        existing_base: Option<u32>,
        identity_hash: u128,
    ) -> Result<Assigned, JoinError> {
        // URI first: it cannot fail on a consistent table.
        let (uri_number, uri_hash) = if req.anonymous {
            self.choose_anonymous_number(c)?
        } else {
            (0, identity_hash)
        };
        // Name.
        let (b, suffix, clash) = match (chosen, base_hash) {
            (Some(name), Some(h)) => {
                let b = match existing_base {
                    Some(b) => b,
                    None => self.new_base(c, h).ok_or(JoinError::TableFull)?,
                };
                let spent = self.suffix_spent(c, name);
                match self.choose_suffix(c, b, name, h, spent) {
                    Ok((suffix, clash)) => (b, suffix, clash),
                    Err(e) => {
                        if self.rf(Pool::Base, b, base::REFS) == 0 {
                            self.free_base(b);
                        }
                        // A URI number taken above stays spent: a gap, never a reuse.
                        return Err(e);
                    }
                }
            }
            _ => (NIL, 0, 0),
        };
        let Some(p) = self.pool_alloc(Pool::Part) else {
            return Err(JoinError::TableFull); // checked before; unreachable on a consistent table
        };
        let mut pflags = 0;
        if req.anonymous {
            pflags |= part::PF_ANONYMOUS;
        }
        if chosen.is_some() {
            pflags |= part::PF_HAS_NAME;
        }
        let name = chosen.unwrap_or("");
        self.wf(Pool::Part, p, part::CONF, c);
        self.wf(Pool::Part, p, part::BASE, b);
        self.wf(Pool::Part, p, part::SUFFIX, suffix);
        self.wf(Pool::Part, p, part::URI_NUMBER, uri_number);
        self.wf(Pool::Part, p, part::FLAGS, req.flags);
        self.wf(Pool::Part, p, part::PFLAGS, pflags);
        self.w128(Pool::Part, p, part::CLASH, clash);
        self.w128(Pool::Part, p, part::URI, uri_hash);
        self.w128(Pool::Part, p, part::DIALOG, req.dialog_key);
        self.wstr(Pool::Part, p, part::NAME, part::NAME_LEN, name);
        self.wstr(
            Pool::Part,
            p,
            part::IDENT,
            part::IDENT_LEN,
            req.identity_uri,
        );
        self.wstr(Pool::Part, p, part::SID, part::SID_LEN, req.session_id);

        // Member list (tail: join order).
        let tail = self.cf(c, conf::TAIL);
        self.wf(Pool::Part, p, LINK, NIL);
        self.wf(Pool::Part, p, part::PREV, tail);
        if self.lay.rec(Pool::Part, tail).is_some() {
            self.wf(Pool::Part, tail, LINK, p);
        } else {
            self.wcf(c, conf::HEAD, p);
        }
        self.wcf(c, conf::TAIL, p);
        // Indexes.
        if chosen.is_some() {
            self.chain_insert(Index::Clash, clash as u64, part::NEXT_CLASH, p);
        }
        self.chain_insert(Index::Uri, uri_hash as u64, part::NEXT_URI, p);
        let dh = self.dialog_hash(c, req.dialog_key);
        self.chain_insert(Index::Dialog, dh, part::NEXT_DIALOG, p);
        let sh = self.session_hash(c, req.session_id.as_bytes());
        self.chain_insert(Index::Session, sh, part::NEXT_SESSION, p);
        let ih = self.ident_hash(c, req.identity_uri.as_bytes());
        self.chain_insert(Index::Ident, ih, part::NEXT_IDENT, p);
        // Counts.
        let n = self.cf(c, conf::COUNT).saturating_add(1);
        self.wcf(c, conf::COUNT, n);
        if req.anonymous {
            let n = self.cf(c, conf::ANON_COUNT).saturating_add(1);
            self.wcf(c, conf::ANON_COUNT, n);
        }
        if b != NIL {
            let r = self.rf(Pool::Base, b, base::REFS).saturating_add(1);
            self.wf(Pool::Base, b, base::REFS, r);
        }
        Ok(self.assigned_of(p))
    }

    /// Takes back a join that never completed (its 200 OK was not sent: a 406, the relay did not
    /// answer, …): [`Stripe::leave`], and in addition the anonymous URI number and the name suffix
    /// it took are given back to their counters when they were the last ones handed out. Nobody
    /// can have been told that identity, so it is not spent; a number handed out after it stays
    /// spent (then this is a gap, as for a leave).
    pub fn withdraw(&mut self, handle: ParticipantHandle) -> Option<Departed> {
        let p = self.live_slot(handle)?;
        let c = self.rf(Pool::Part, p, part::CONF);
        let uri_number = self.rf(Pool::Part, p, part::URI_NUMBER);
        let suffix = self.rf(Pool::Part, p, part::SUFFIX);
        let b = self.rf(Pool::Part, p, part::BASE);
        let departed = self.leave(handle)?;
        // The records may have been freed by the leave (then their counters start again anyway).
        if uri_number >= 2
            && self.cf(c, STATE) == USED
            && self.cf(c, conf::ANON_NEXT) == uri_number.saturating_add(1)
        {
            self.wcf(c, conf::ANON_NEXT, uri_number);
        }
        if suffix >= 2
            && self.lay.rec(Pool::Base, b).is_some()
            && self.rf(Pool::Base, b, STATE) == USED
            && self.rf(Pool::Base, b, base::NEXT_SUFFIX) == suffix.saturating_add(1)
        {
            self.wf(Pool::Base, b, base::NEXT_SUFFIX, suffix);
        }
        Some(departed)
    }

    /// Removes a participant, freeing its name and URI for the next joiner. A handle that is stale
    /// (slot released or reused since) or not of this stripe gives `None`, so a repeated leave is
    /// harmless.
    pub fn leave(&mut self, handle: ParticipantHandle) -> Option<Departed> {
        let p = self.live_slot(handle)?;
        let c = self.rf(Pool::Part, p, part::CONF);
        let info = self.info_of(p);
        let departed = Departed {
            conference_key: self.conf_key(c),
            display_name: info.display_name,
            uri: info.uri,
            session_id: info.session_id,
        };
        let pflags = self.rf(Pool::Part, p, part::PFLAGS);

        // Unlink from every index; give the name's suffix back to its base record.
        self.unlink_name(p);
        let h = self.r128(Pool::Part, p, part::URI) as u64;
        self.chain_remove(Index::Uri, h, part::NEXT_URI, p);
        let dh = self.dialog_hash(c, self.r128(Pool::Part, p, part::DIALOG));
        self.chain_remove(Index::Dialog, dh, part::NEXT_DIALOG, p);
        let sh = self.session_hash(c, self.rbytes(Pool::Part, p, part::SID, part::SID_LEN));
        self.chain_remove(Index::Session, sh, part::NEXT_SESSION, p);
        let ih = self.ident_hash(c, self.rbytes(Pool::Part, p, part::IDENT, part::IDENT_LEN));
        self.chain_remove(Index::Ident, ih, part::NEXT_IDENT, p);
        // Member list.
        let prev = self.rf(Pool::Part, p, part::PREV);
        let next = self.rf(Pool::Part, p, LINK);
        if self.lay.rec(Pool::Part, prev).is_some() {
            self.wf(Pool::Part, prev, LINK, next);
        } else {
            self.wcf(c, conf::HEAD, next);
        }
        if self.lay.rec(Pool::Part, next).is_some() {
            self.wf(Pool::Part, next, part::PREV, prev);
        } else {
            self.wcf(c, conf::TAIL, prev);
        }

        // The anonymous URI number is NOT given back: `sip:anonymousN@…` of a departed participant
        // must never reach a newcomer while the conference lives, or messages meant for the one
        // who left (private ones included) would reach the other. Only the plain URI (number 1)
        // is reused once free. The counter starts again when the conference record is freed.
        if pflags & part::PF_ANONYMOUS != 0 {
            let anon = self.cf(c, conf::ANON_COUNT).saturating_sub(1);
            self.wcf(c, conf::ANON_COUNT, anon);
        }

        // Release the slot with a new generation.
        let gen = self.rf(Pool::Part, p, part::GEN);
        let gen = if gen >= part::GEN_MASK || gen == 0 {
            1
        } else {
            gen + 1
        };
        self.wf(Pool::Part, p, part::GEN, gen);
        self.pool_free(Pool::Part, p);

        let count = self.cf(c, conf::COUNT).saturating_sub(1);
        self.wcf(c, conf::COUNT, count);
        if count == 0 {
            self.free_conference(c);
        }
        Some(departed)
    }

    // ----------------------------------------------------------------------------------------------
    // Rename (RFC 7701 NICKNAME)

    /// Sets (`Some`) or removes (`None`) the display name of the participant whose MSRP session id is
    /// `session_id` in `conference_key`. Uniqueness by the nickname clash key exactly as for joins,
    /// but a rename never gets a suffix:
    ///
    /// - no such conference or session → [`RenameError::UnknownSession`] (checked first);
    /// - a name longer than 256 bytes → [`RenameError::TooLong`] (the module validates characters and
    ///   length before calling);
    /// - the participant's own current clash key → accepted, stored as written;
    /// - another participant's clash key → [`RenameError::Taken`];
    /// - otherwise the old name is given back as [`Stripe::leave`] gives it back (clash index, base
    ///   record reference, suffix number) and the new one is linked with no suffix.
    ///
    /// URI, URI number, handle, dialog key, session id and flags never change; `name_modified` is
    /// false afterwards. Nothing is changed when an error is returned. O(1): the participant is found
    /// through the session index. Session ids are unique per conference in practice (the module draws
    /// 128 random bits); if a caller reused one, the most recent joiner with it is renamed.
    pub fn rename(
        &mut self,
        conference_key: &str,
        session_id: &str,
        new_name: Option<&str>,
    ) -> Result<ParticipantInfo, RenameError> {
        let c = self
            .find_conf(conference_key, self.conf_key_hash(conference_key))
            .ok_or(RenameError::UnknownSession)?;
        let p = self
            .find_session(c, session_id)
            .ok_or(RenameError::UnknownSession)?;
        let Some(name) = new_name else {
            self.unlink_name(p);
            return Ok(self.info_of(p));
        };
        if name.len() > MAX_NAME {
            return Err(RenameError::TooLong);
        }
        let h = self.clash_hash(c, name);
        let holder = self.find_clash(c, h);
        if holder.is_some_and(|q| q != p) || (holder.is_none() && self.suffix_spent(c, name)) {
            return Err(RenameError::Taken);
        }
        if holder == Some(p) && self.rf(Pool::Part, p, part::SUFFIX) == 0 {
            // Its own unmodified name again (the base record's key is `h` too): only the spelling
            // changes.
            self.wstr(Pool::Part, p, part::NAME, part::NAME_LEN, name);
            return Ok(self.info_of(p));
        }
        // A base record for `h` will exist after unlinking the old name: the existing one (if it is
        // the old name's own base with no other reference it is freed and allocated again, harmless
        // since nobody else uses it), or a free one. On a consistent table there always is one: every
        // named participant holds exactly one base reference and there are as many base records as
        // slots, so with `p` unnamed at most `max_participants - 1` are in use.
        let old_base = self.rf(Pool::Part, p, part::BASE);
        let old_base_freed = self.lay.rec(Pool::Base, old_base).is_some()
            && self.rf(Pool::Base, old_base, base::REFS) <= 1;
        if self.find_base(c, h).is_none() && self.free_head(Pool::Base) == NIL && !old_base_freed {
            return Err(RenameError::Taken); // unreachable on a consistent table; change nothing
        }

        // `bob-2` renaming to `bob` stays a holder of the base `bob` throughout: its record, and the
        // suffixes it has spent, must not be forgotten in between (or the next `bob` would be handed
        // `bob-2`, the name this participant had a moment ago).
        let same_base = self.lay.rec(Pool::Base, old_base).is_some()
            && self.rf(Pool::Base, old_base, STATE) == USED
            && self.r128(Pool::Base, old_base, base::HASH) == h;
        if same_base {
            let refs = self.rf(Pool::Base, old_base, base::REFS).saturating_add(1);
            self.wf(Pool::Base, old_base, base::REFS, refs);
        }
        self.unlink_name(p);
        let b = match self.find_base(c, h) {
            Some(b) => b,
            None => match self.new_base(c, h) {
                Some(b) => b,
                None => return Ok(self.info_of(p)), // checked above: unreachable
            },
        };
        let pflags = self.rf(Pool::Part, p, part::PFLAGS) | part::PF_HAS_NAME;
        self.wstr(Pool::Part, p, part::NAME, part::NAME_LEN, name);
        self.wf(Pool::Part, p, part::BASE, b);
        self.wf(Pool::Part, p, part::SUFFIX, 0);
        self.w128(Pool::Part, p, part::CLASH, h);
        self.wf(Pool::Part, p, part::PFLAGS, pflags);
        self.chain_insert(Index::Clash, h as u64, part::NEXT_CLASH, p);
        if !same_base {
            let refs = self.rf(Pool::Base, b, base::REFS).saturating_add(1);
            self.wf(Pool::Base, b, base::REFS, refs);
        }
        Ok(self.info_of(p))
    }

    /// Gives participant `p`'s display name back, leaving it nameless: out of the clash index, one
    /// reference less on its base record (freed at zero, else the suffix number `p` held goes back to
    /// the base's free list). Nothing to do for a nameless participant.
    fn unlink_name(&mut self, p: u32) {
        let pflags = self.rf(Pool::Part, p, part::PFLAGS);
        if pflags & part::PF_HAS_NAME != 0 {
            let h = self.r128(Pool::Part, p, part::CLASH) as u64;
            self.chain_remove(Index::Clash, h, part::NEXT_CLASH, p);
        }
        let b = self.rf(Pool::Part, p, part::BASE);
        if self.lay.rec(Pool::Base, b).is_some() {
            let refs = self.rf(Pool::Base, b, base::REFS).saturating_sub(1);
            self.wf(Pool::Base, b, base::REFS, refs);
            // A suffix is never given back while the base record lives (someone still holds a
            // name of this base): `bob-2` stays spent so that nobody else appears as the `bob-2`
            // the others talked to. The record, and with it the counter, goes with the last holder.
            if refs == 0 {
                self.free_base(b);
            }
        }
        self.wf(Pool::Part, p, part::PFLAGS, pflags & !part::PF_HAS_NAME);
        self.wf(Pool::Part, p, part::BASE, NIL);
        self.wf(Pool::Part, p, part::SUFFIX, 0);
        self.w128(Pool::Part, p, part::CLASH, 0);
        self.wstr(Pool::Part, p, part::NAME, part::NAME_LEN, "");
    }

    // ----------------------------------------------------------------------------------------------
    // Queries

    /// The participant that joined through this dialog, if it is still there.
    pub fn find_by_dialog(&self, conference_key: &str, dialog_key: u128) -> Option<Assigned> {
        let c = self.find_conf(conference_key, self.conf_key_hash(conference_key))?;
        self.find_dialog(c, dialog_key).map(|p| self.assigned_of(p))
    }

    /// Whether the conference holds a participant with this MSRP session id: O(1) through the
    /// session index (the relay asks this to drop sessions the table no longer has).
    pub fn has_session(&self, conference_key: &str, session_id: &str) -> bool {
        self.find_by_session(conference_key, session_id).is_some()
    }

    /// The participant whose MSRP session id is `session_id` in `conference_key`, if it is still
    /// there. O(1) through the session index.
    pub fn find_by_session(
        &self,
        conference_key: &str,
        session_id: &str,
    ) -> Option<ParticipantHandle> {
        let c = self.find_conf(conference_key, self.conf_key_hash(conference_key))?;
        self.find_session(c, session_id).map(|p| self.handle_of(p))
    }

    /// The participant behind a live handle.
    pub fn participant(&self, handle: ParticipantHandle) -> Option<ParticipantInfo> {
        self.live_slot(handle).map(|p| self.info_of(p))
    }

    /// The participants of a conference in join order (empty if it has none).
    pub fn participants(&self, conference_key: &str) -> Vec<ParticipantInfo> {
        let Some(c) = self.find_conf(conference_key, self.conf_key_hash(conference_key)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut p = self.cf(c, conf::HEAD);
        for _ in 0..self.lay.part_cap {
            if self.lay.rec(Pool::Part, p).is_none() {
                break;
            }
            out.push(self.info_of(p));
            p = self.rf(Pool::Part, p, LINK);
        }
        out
    }

    /// Every conference with participants, in record order. O(max_conferences).
    pub fn conferences(&self) -> Vec<ConferenceInfo> {
        (0..self.lay.conf_cap)
            .filter(|&c| self.cf(c, STATE) == USED)
            .map(|c| ConferenceInfo {
                key: self.conf_key(c),
                participants: self.cf(c, conf::COUNT),
            })
            .collect()
    }

    pub fn usage(&self) -> Usage {
        let pool = |p| PoolUsage {
            used: self.used(p),
            capacity: self.lay.cap(p),
        };
        Usage {
            conferences: pool(Pool::Conf),
            participants: pool(Pool::Part),
            base_records: pool(Pool::Base),
            conference_buckets: self.lay.conf_buckets,
            participant_buckets: self.lay.part_buckets,
        }
    }

    /// Full consistency check, O(size of the stripe): every record reachable as it should be, every
    /// index chain holding exactly the live entries in the right bucket, counts and reference counts
    /// matching, names and URIs unique per conference, free lists complete. For tests and diagnostics.
    pub fn check(&self) -> Result<(), String> {
        check::run(self)
    }

    // ----------------------------------------------------------------------------------------------
    // Choosing numbers

    /// The anonymous URI number for a new participant of conference `c`, and the URI's hash: the
    /// plain URI when free (the CR reuses it), else the next never-used number.
    fn choose_anonymous_number(&mut self, c: u32) -> Result<(u32, u128), JoinError> {
        let h = self.uri_hash(c, ANONYMOUS_URI);
        if self.find_uri(c, h).is_none() {
            return Ok((1, h));
        }
        self.choose_number(c, Pool::Conf, c, conf::ANON_NEXT, |s, n| {
            let h = s.uri_hash(c, &anonymous_uri(n));
            (s.find_uri(c, h).is_none(), h)
        })
    }

    /// The suffix for a new participant choosing `name` (base record `b`, clash hash `h`): 0 if the
    /// name is free and not `spent` (see [`Stripe::suffix_spent`]), else the next never-used
    /// `<name>-<N>` that is free; and the assigned name's clash hash.
    fn choose_suffix(
        &mut self,
        c: u32,
        b: u32,
        name: &str,
        h: u128,
        spent: bool,
    ) -> Result<(u32, u128), JoinError> {
        if !spent && self.find_clash(c, h).is_none() {
            return Ok((0, h));
        }
        self.choose_number(c, Pool::Base, b, base::NEXT_SUFFIX, |s, n| {
            let h = s.clash_hash(c, &suffixed(name, n));
            (s.find_clash(c, h).is_none(), h)
        })
    }

    /// Whether `name` reads `<base>-<N>` for a suffix N that the base record of `<base>` in
    /// conference `c` has already handed out: such a name belonged to someone (who may have left)
    /// and is not handed to anyone else, even when chosen literally, while that base record lives.
    /// O(1): one hash lookup.
    fn suffix_spent(&self, c: u32, name: &str) -> bool {
        let Some((prefix, digits)) = name.trim().rsplit_once('-') else {
            return false;
        };
        if prefix.is_empty()
            || digits.is_empty()
            || digits.len() > 9
            || digits.starts_with('0')
            || !digits.bytes().all(|d| d.is_ascii_digit())
        {
            return false;
        }
        let Ok(n) = digits.parse::<u32>() else {
            return false;
        };
        self.find_base(c, self.clash_hash(c, prefix))
            .is_some_and(|b| n >= 2 && n < self.rf(Pool::Base, b, base::NEXT_SUFFIX))
    }

    /// Takes the next never-used number from the counter at `next_field` of record `idx` of `pool`,
    /// skipping numbers that are not free (`free(n)` says so, with the candidate's hash). A number
    /// is skipped only when a participant of the conference holds that exact name or URI, so the
    /// loop ends within (participants + 1) rounds; in practice it takes one.
    fn choose_number(
        &mut self,
        c: u32,
        pool: Pool,
        idx: u32,
        next_field: usize,
        free: impl Fn(&Self, u32) -> (bool, u128),
    ) -> Result<(u32, u128), JoinError> {
        let limit = self.cf(c, conf::COUNT).min(self.lay.part_cap);
        for _ in 0..=limit {
            let n = self.rf(pool, idx, next_field).max(2);
            if n == NIL {
                break; // 2^32 - 1 numbers spent in one conference's lifetime
            }
            self.wf(pool, idx, next_field, n + 1);
            let (ok, h) = free(self, n);
            if ok {
                return Ok((n, h));
            }
        }
        Err(JoinError::TableFull)
    }

    // ----------------------------------------------------------------------------------------------
    // Records

    fn new_conference(&mut self, c: u32, key: &str, key_hash: u64) {
        if self.pool_alloc(Pool::Conf) != Some(c) {
            return; // c was the free head; unreachable on a consistent table
        }
        self.wcf(c, conf::COUNT, 0);
        self.wcf(c, conf::HEAD, NIL);
        self.wcf(c, conf::TAIL, NIL);
        self.wcf(c, conf::ANON_NEXT, 2);
        self.wcf(c, conf::ANON_COUNT, 0);
        if let Some(o) = self.lay.rec(Pool::Conf, c) {
            put_u64(self.mem, o + conf::KEY_HASH, key_hash);
        }
        self.wstr(Pool::Conf, c, conf::KEY, conf::KEY_LEN, key);
        // Conference chain: LINK.
        let at = self.lay.bucket(Index::Conf, key_hash);
        let head = get_u32(self.mem, at).unwrap_or(NIL);
        self.wcf(c, LINK, head);
        put_u32(self.mem, at, c);
    }

    fn free_conference(&mut self, c: u32) {
        if self.cf(c, STATE) != USED {
            return;
        }
        let h = self.conf_hash_of(c);
        self.chain_remove_by(Index::Conf, h, Pool::Conf, LINK, c);
        self.pool_free(Pool::Conf, c);
    }

    fn new_base(&mut self, c: u32, h: u128) -> Option<u32> {
        let b = self.pool_alloc(Pool::Base)?;
        self.wf(Pool::Base, b, base::CONF, c);
        self.wf(Pool::Base, b, base::REFS, 0);
        self.wf(Pool::Base, b, base::NEXT_SUFFIX, 2);
        self.w128(Pool::Base, b, base::HASH, h);
        self.chain_insert_by(Index::Base, h as u64, Pool::Base, LINK, b);
        Some(b)
    }

    fn free_base(&mut self, b: u32) {
        if self.rf(Pool::Base, b, STATE) != USED {
            return;
        }
        let h = self.r128(Pool::Base, b, base::HASH) as u64;
        self.chain_remove_by(Index::Base, h, Pool::Base, LINK, b);
        self.pool_free(Pool::Base, b);
    }

    /// The slot of a live participant of this stripe, if `handle` still names one.
    fn live_slot(&self, handle: ParticipantHandle) -> Option<u32> {
        let p = handle.slot;
        (handle.stripe == self.stripe_index
            && self.lay.rec(Pool::Part, p).is_some()
            && self.rf(Pool::Part, p, STATE) == USED
            && self.rf(Pool::Part, p, part::GEN) == handle.generation)
            .then_some(p)
    }

    fn handle_of(&self, p: u32) -> ParticipantHandle {
        ParticipantHandle {
            stripe: self.stripe_index,
            slot: p,
            generation: self.rf(Pool::Part, p, part::GEN),
        }
    }

    fn assigned_of(&self, p: u32) -> Assigned {
        let i = self.info_of(p);
        Assigned {
            handle: i.handle,
            display_name: i.display_name,
            uri: i.uri,
            name_modified: i.name_modified,
            uri_number: i.uri_number,
        }
    }

    fn info_of(&self, p: u32) -> ParticipantInfo {
        let pflags = self.rf(Pool::Part, p, part::PFLAGS);
        let anonymous = pflags & part::PF_ANONYMOUS != 0;
        let suffix = self.rf(Pool::Part, p, part::SUFFIX);
        let display_name = (pflags & part::PF_HAS_NAME != 0).then(|| {
            let name = self.rstr(Pool::Part, p, part::NAME, part::NAME_LEN);
            if suffix == 0 {
                name
            } else {
                suffixed(&name, suffix)
            }
        });
        let uri_number = self.rf(Pool::Part, p, part::URI_NUMBER);
        let identity_uri = self.rstr(Pool::Part, p, part::IDENT, part::IDENT_LEN);
        ParticipantInfo {
            handle: self.handle_of(p),
            display_name,
            uri: if anonymous {
                anonymous_uri(uri_number)
            } else {
                identity_uri.clone()
            },
            anonymous,
            identity_uri,
            session_id: self.rstr(Pool::Part, p, part::SID, part::SID_LEN),
            flags: self.rf(Pool::Part, p, part::FLAGS),
            name_modified: suffix != 0,
            uri_number,
            dialog_key: self.r128(Pool::Part, p, part::DIALOG),
            peer_path: self.rstr(Pool::Part, p, part::PEER, part::PEER_LEN),
            accept_wrapped_types: self
                .rstr(Pool::Part, p, part::WRAPPED, part::WRAPPED_LEN)
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    fn conf_key(&self, c: u32) -> String {
        self.rstr(Pool::Conf, c, conf::KEY, conf::KEY_LEN)
    }

    fn conf_hash_of(&self, c: u32) -> u64 {
        self.lay
            .rec(Pool::Conf, c)
            .and_then(|o| get_u64(self.mem, o + conf::KEY_HASH))
            .unwrap_or(0)
    }

    // ----------------------------------------------------------------------------------------------
    // Hashes and indexes

    fn sip128(&self, tag: u8, c: u32, bytes: &[u8]) -> u128 {
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write(&[tag]);
        h.write(&c.to_le_bytes());
        h.write(bytes);
        h.finish128().as_u128()
    }

    fn clash_hash(&self, c: u32, name: &str) -> u128 {
        self.sip128(TAG_CLASH, c, clash_key(name).as_bytes())
    }

    fn uri_hash(&self, c: u32, uri: &str) -> u128 {
        self.sip128(TAG_URI, c, uri.as_bytes())
    }

    fn dialog_hash(&self, c: u32, dialog_key: u128) -> u64 {
        self.sip128(TAG_DIALOG, c, &dialog_key.to_le_bytes()) as u64
    }

    fn session_hash(&self, c: u32, session_id: &[u8]) -> u64 {
        self.sip128(TAG_SESSION, c, session_id) as u64
    }

    fn ident_hash(&self, c: u32, identity: &[u8]) -> u64 {
        self.sip128(TAG_IDENT, c, identity) as u64
    }

    /// How many places `identity` holds in conference `c`, counting at most to `stop`. Walks one
    /// bucket chain of the identity index: the identity's own places plus the few other entries
    /// that share the bucket (load ≤ 1/2, keyed hash), never the whole conference.
    fn places_of(&self, c: u32, identity: &str, stop: u32) -> u32 {
        let at = self
            .lay
            .bucket(Index::Ident, self.ident_hash(c, identity.as_bytes()));
        let mut p = get_u32(self.mem, at).unwrap_or(NIL);
        let mut n = 0;
        for _ in 0..self.lay.part_cap {
            if n >= stop || self.lay.rec(Pool::Part, p).is_none() {
                break;
            }
            if self.rf(Pool::Part, p, part::CONF) == c
                && self.rf(Pool::Part, p, STATE) == USED
                && self.rbytes(Pool::Part, p, part::IDENT, part::IDENT_LEN) == identity.as_bytes()
            {
                n += 1;
            }
            p = self.rf(Pool::Part, p, part::NEXT_IDENT);
        }
        n
    }

    fn conf_key_hash(&self, key: &str) -> u64 {
        self.sip128(TAG_CONF, 0, key.as_bytes()) as u64
    }

    fn find_conf(&self, key: &str, key_hash: u64) -> Option<u32> {
        let mut c = get_u32(self.mem, self.lay.bucket(Index::Conf, key_hash)).unwrap_or(NIL);
        for _ in 0..self.lay.conf_cap {
            self.lay.rec(Pool::Conf, c)?;
            if self.conf_hash_of(c) == key_hash
                && self.cf(c, STATE) == USED
                && self.rbytes(Pool::Conf, c, conf::KEY, conf::KEY_LEN) == key.as_bytes()
            {
                return Some(c);
            }
            c = self.cf(c, LINK);
        }
        None
    }

    /// The participant of conference `c` whose index entry at `hash_field` equals `h` (chain through
    /// `next_field`).
    fn find_part(
        &self,
        ix: Index,
        c: u32,
        h: u128,
        hash_field: usize,
        next_field: usize,
    ) -> Option<u32> {
        let mut p = get_u32(self.mem, self.lay.bucket(ix, h as u64)).unwrap_or(NIL);
        for _ in 0..self.lay.part_cap {
            self.lay.rec(Pool::Part, p)?;
            if self.r128(Pool::Part, p, hash_field) == h
                && self.rf(Pool::Part, p, part::CONF) == c
                && self.rf(Pool::Part, p, STATE) == USED
            {
                return Some(p);
            }
            p = self.rf(Pool::Part, p, next_field);
        }
        None
    }

    fn find_clash(&self, c: u32, h: u128) -> Option<u32> {
        self.find_part(Index::Clash, c, h, part::CLASH, part::NEXT_CLASH)
    }

    fn find_uri(&self, c: u32, h: u128) -> Option<u32> {
        self.find_part(Index::Uri, c, h, part::URI, part::NEXT_URI)
    }

    fn find_dialog(&self, c: u32, dialog_key: u128) -> Option<u32> {
        let mut p = get_u32(
            self.mem,
            self.lay
                .bucket(Index::Dialog, self.dialog_hash(c, dialog_key)),
        )
        .unwrap_or(NIL);
        for _ in 0..self.lay.part_cap {
            self.lay.rec(Pool::Part, p)?;
            if self.r128(Pool::Part, p, part::DIALOG) == dialog_key
                && self.rf(Pool::Part, p, part::CONF) == c
                && self.rf(Pool::Part, p, STATE) == USED
            {
                return Some(p);
            }
            p = self.rf(Pool::Part, p, part::NEXT_DIALOG);
        }
        None
    }

    /// The participant of conference `c` with MSRP session id `session_id` (compared exactly; the most
    /// recent joiner if a caller reused an id).
    fn find_session(&self, c: u32, session_id: &str) -> Option<u32> {
        let at = self
            .lay
            .bucket(Index::Session, self.session_hash(c, session_id.as_bytes()));
        let mut p = get_u32(self.mem, at).unwrap_or(NIL);
        for _ in 0..self.lay.part_cap {
            self.lay.rec(Pool::Part, p)?;
            if self.rf(Pool::Part, p, part::CONF) == c
                && self.rf(Pool::Part, p, STATE) == USED
                && self.rbytes(Pool::Part, p, part::SID, part::SID_LEN) == session_id.as_bytes()
            {
                return Some(p);
            }
            p = self.rf(Pool::Part, p, part::NEXT_SESSION);
        }
        None
    }

    fn find_base(&self, c: u32, h: u128) -> Option<u32> {
        let mut b = get_u32(self.mem, self.lay.bucket(Index::Base, h as u64)).unwrap_or(NIL);
        for _ in 0..self.lay.base_cap {
            self.lay.rec(Pool::Base, b)?;
            if self.r128(Pool::Base, b, base::HASH) == h
                && self.rf(Pool::Base, b, base::CONF) == c
                && self.rf(Pool::Base, b, STATE) == USED
            {
                return Some(b);
            }
            b = self.rf(Pool::Base, b, LINK);
        }
        None
    }

    fn chain_insert(&mut self, ix: Index, h: u64, next_field: usize, p: u32) {
        self.chain_insert_by(ix, h, Pool::Part, next_field, p);
    }

    fn chain_insert_by(&mut self, ix: Index, h: u64, pool: Pool, next_field: usize, i: u32) {
        let at = self.lay.bucket(ix, h);
        let head = get_u32(self.mem, at).unwrap_or(NIL);
        self.wf(pool, i, next_field, head);
        put_u32(self.mem, at, i);
    }

    fn chain_remove(&mut self, ix: Index, h: u64, next_field: usize, p: u32) {
        self.chain_remove_by(ix, h, Pool::Part, next_field, p);
    }

    /// Unlinks record `i` from the chain of bucket `h` (by index, so equal hashes cannot confuse it).
    fn chain_remove_by(&mut self, ix: Index, h: u64, pool: Pool, next_field: usize, i: u32) {
        let at = self.lay.bucket(ix, h);
        let mut cur = get_u32(self.mem, at).unwrap_or(NIL);
        let next_of_i = self.rf(pool, i, next_field);
        if cur == i {
            put_u32(self.mem, at, next_of_i);
        } else {
            for _ in 0..self.lay.cap(pool) {
                if self.lay.rec(pool, cur).is_none() {
                    break;
                }
                let next = self.rf(pool, cur, next_field);
                if next == i {
                    self.wf(pool, cur, next_field, next_of_i);
                    break;
                }
                cur = next;
            }
        }
        self.wf(pool, i, next_field, NIL);
    }

    // ----------------------------------------------------------------------------------------------
    // Pools

    fn free_head(&self, p: Pool) -> u32 {
        get_u32(self.mem, hdr::FREE_HEAD + 4 * p as usize).unwrap_or(NIL)
    }

    fn set_free_head(&mut self, p: Pool, v: u32) {
        put_u32(self.mem, hdr::FREE_HEAD + 4 * p as usize, v);
    }

    fn used(&self, p: Pool) -> u32 {
        get_u32(self.mem, hdr::USED + 4 * p as usize).unwrap_or(0)
    }

    fn set_used(&mut self, p: Pool, v: u32) {
        put_u32(self.mem, hdr::USED + 4 * p as usize, v);
    }

    fn pool_alloc(&mut self, p: Pool) -> Option<u32> {
        let i = self.free_head(p);
        self.lay.rec(p, i)?;
        if self.rf(p, i, STATE) != FREE {
            return None; // corrupt free list: refuse rather than hand out a live record
        }
        let next = self.rf(p, i, LINK);
        self.set_free_head(p, next);
        self.set_used(p, self.used(p).saturating_add(1));
        self.wf(p, i, STATE, USED);
        self.wf(p, i, LINK, NIL);
        Some(i)
    }

    fn pool_free(&mut self, p: Pool, i: u32) {
        if self.rf(p, i, STATE) != USED {
            return;
        }
        self.wf(p, i, STATE, FREE);
        let head = self.free_head(p);
        self.wf(p, i, LINK, head);
        self.set_free_head(p, i);
        self.set_used(p, self.used(p).saturating_sub(1));
    }

    // ----------------------------------------------------------------------------------------------
    // Field access (total: an invalid index reads NIL / 0 / "" and writes nothing)

    fn rf(&self, p: Pool, i: u32, field: usize) -> u32 {
        self.lay
            .rec(p, i)
            .and_then(|o| get_u32(self.mem, o + field))
            .unwrap_or(NIL)
    }

    fn wf(&mut self, p: Pool, i: u32, field: usize, v: u32) {
        if let Some(o) = self.lay.rec(p, i) {
            put_u32(self.mem, o + field, v);
        }
    }

    fn cf(&self, c: u32, field: usize) -> u32 {
        self.rf(Pool::Conf, c, field)
    }

    fn wcf(&mut self, c: u32, field: usize, v: u32) {
        self.wf(Pool::Conf, c, field, v);
    }

    fn r128(&self, p: Pool, i: u32, field: usize) -> u128 {
        self.lay
            .rec(p, i)
            .and_then(|o| get_u128(self.mem, o + field))
            .unwrap_or(0)
    }

    fn w128(&mut self, p: Pool, i: u32, field: usize, v: u128) {
        if let Some(o) = self.lay.rec(p, i) {
            put_u128(self.mem, o + field, v);
        }
    }

    /// The bytes of a length-prefixed string field (the length is clamped to the field's room).
    fn rbytes(&self, p: Pool, i: u32, field: usize, len_field: usize) -> &[u8] {
        let room = Self::room(field);
        let len = (self.rf(p, i, len_field) as usize).min(room);
        self.lay
            .rec(p, i)
            .map_or(&[][..], |o| get_bytes(self.mem, o + field, len))
    }

    fn rstr(&self, p: Pool, i: u32, field: usize, len_field: usize) -> String {
        String::from_utf8_lossy(self.rbytes(p, i, field, len_field)).into_owned()
    }

    fn wstr(&mut self, p: Pool, i: u32, field: usize, len_field: usize, s: &str) {
        let b = s.as_bytes();
        let b = b.get(..Self::room(field)).unwrap_or(b);
        if let Some(o) = self.lay.rec(p, i) {
            put_bytes(self.mem, o + field, b);
        }
        self.wf(p, i, len_field, b.len() as u32);
    }

    fn room(field: usize) -> usize {
        match field {
            part::NAME => MAX_NAME,
            part::SID => MAX_SESSION,
            part::PEER => MAX_PEER_PATH,
            part::WRAPPED => MAX_WRAPPED,
            _ => MAX_KEY, // part::IDENT, conf::KEY
        }
    }
}
