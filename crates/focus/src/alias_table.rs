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

mod api;
mod arena;
mod check;
mod flags;
mod index;
mod layout;
#[cfg(test)]
mod model_tests;
mod numbering;
mod operations;
mod records;
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

pub use api::*;
pub use flags::{compact_list, participant_flags};
pub use numbering::{anonymous_uri, ANONYMOUS_NAME, ANONYMOUS_URI};
use numbering::{clash_key, suffixed};

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
