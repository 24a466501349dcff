//! The byte layout of one stripe, and total (never panicking) accessors over it.
//!
//! A stripe is one contiguous byte region:
//!
//! ```text
//! header                         HEADER_SIZE bytes
//! conference-key buckets         conf_buckets  × u32
//! clash-hash buckets             part_buckets  × u32   (conference, name clash hash) → participant
//! URI-hash buckets               part_buckets  × u32   (conference, URI hash)        → participant
//! dialog buckets                 part_buckets  × u32   (conference, dialog key)      → participant
//! base buckets                   part_buckets  × u32   (conference, base clash hash) → base record
//! session buckets                part_buckets  × u32   (conference, MSRP session id) → participant
//! identity buckets               part_buckets  × u32   (conference, identity URI)    → participant
//! conference records             max_conferences  × conf::SIZE
//! participant slots              max_participants × part::SIZE
//! base records                   max_participants × base::SIZE
//! ```
//!
//! Every multi-byte field is little-endian and lives at a fixed offset; links between records are
//! `u32` record indices inside the same stripe (`NIL` = none), never addresses, so the region means the
//! same thing wherever each process has it mapped. Every section starts at a multiple of 8.
//!
//! All readers return a fallback (`NIL`, `0`, an empty slice) instead of panicking when an offset is
//! out of range, and all writers ignore such offsets: on a consistent table they never trigger, on a
//! corrupted one the table misbehaves but the process survives.

/// "No record" in every link field and bucket.
pub(crate) const NIL: u32 = u32::MAX;

pub(crate) const MAGIC: [u8; 8] = *b"CHALIAS\x01";
pub(crate) const VERSION: u32 = 4;

/// Upper bound on `max_conferences` and `max_participants` per stripe: a slot index must fit the
/// 24 bits it gets in a packed [`super::ParticipantHandle`].
pub(crate) const MAX_RECORDS: u32 = 1 << 24;
/// Upper bound on the number of stripes (12 bits of a packed handle).
pub(crate) const MAX_STRIPES: u32 = 1 << 12;

/// Longest conference key, identity URI (bytes).
pub(crate) const MAX_KEY: usize = 255;
/// Longest display name as chosen (bytes): 64 Unicode scalar values of at most 4 UTF-8 bytes each.
pub(crate) const MAX_NAME: usize = 256;
/// Longest MSRP session id (bytes).
pub(crate) const MAX_SESSION: usize = 64;
/// Longest first peer path URI (bytes): the `a=path` URI the participant binds from.
pub(crate) const MAX_PEER_PATH: usize = 256;
/// Longest compact `a=accept-wrapped-types` list (bytes, space-separated; items that do not fit
/// are dropped, see [`super::compact_list`]).
pub(crate) const MAX_WRAPPED: usize = 128;

/// Header field offsets.
pub(crate) mod hdr {
    pub const MAGIC: usize = 0; // [u8; 8]
    pub const VERSION: usize = 8;
    pub const STRIPE_INDEX: usize = 12;
    pub const MAX_CONFERENCES: usize = 16;
    pub const MAX_PARTICIPANTS: usize = 20;
    pub const TOTAL_BYTES: usize = 24; // u64
    pub const HASH_KEY: usize = 32; // [u8; 16]
    pub const CONF_BUCKETS: usize = 48;
    pub const PART_BUCKETS: usize = 52;
    /// `FREE_HEAD + 4 * pool` = head of that pool's free list.
    pub const FREE_HEAD: usize = 64;
    /// `USED + 4 * pool` = records of that pool in use.
    pub const USED: usize = 80;
    pub const SIZE: usize = 128;
}

/// Field offsets shared by every record kind: a state word and one link word. The link is the free-list
/// link while the record is free; while in use it is the record's primary chain link (see each kind).
pub(crate) const STATE: usize = 0;
pub(crate) const LINK: usize = 4;
pub(crate) const FREE: u32 = 0;
pub(crate) const USED: u32 = 1;

/// Conference record. In use, `LINK` chains the conference-key bucket.
pub(crate) mod conf {
    /// Participants in the conference.
    pub const COUNT: usize = 8;
    /// Member list (join order), doubly linked through the participants' `LINK`/`PREV`.
    pub const HEAD: usize = 12;
    pub const TAIL: usize = 16;
    /// Next never-assigned anonymous URI number (starts at 2; 1 is the plain URI). Only grows while
    /// the record lives: numbers are never handed out twice.
    pub const ANON_NEXT: usize = 20;
    /// Anonymous participants in the conference (the holders of anonymous URI numbers).
    pub const ANON_COUNT: usize = 24;
    pub const KEY_HASH: usize = 40; // u64
    pub const KEY_LEN: usize = 48;
    pub const KEY: usize = 56; // [u8; 255] + 1 pad
    pub const SIZE: usize = 312;
}

/// Participant slot. In use, `LINK` is the next member of the same conference.
pub(crate) mod part {
    /// Incremented on every release of the slot, in `1..=GEN_MASK`: never 0.
    pub const GEN: usize = 8;
    pub const CONF: usize = 12;
    pub const NEXT_CLASH: usize = 16;
    pub const NEXT_URI: usize = 20;
    pub const NEXT_DIALOG: usize = 24;
    pub const PREV: usize = 28;
    /// Base record of the chosen name's clash key; `NIL` when the participant has no display name.
    pub const BASE: usize = 32;
    /// 0 = the chosen name unchanged; N ≥ 2 = assigned `<chosen>-<N>`.
    pub const SUFFIX: usize = 36;
    /// 0 = not anonymous (URI is the identity); 1 = `sip:anonymous@…`; N ≥ 2 = `sip:anonymousN@…`.
    pub const URI_NUMBER: usize = 40;
    pub const FLAGS: usize = 44;
    /// `PF_*` bits.
    pub const PFLAGS: usize = 48;
    pub const NAME_LEN: usize = 52;
    pub const IDENT_LEN: usize = 56;
    pub const SID_LEN: usize = 60;
    pub const CLASH: usize = 64; // u128: clash hash of the ASSIGNED name
    pub const URI: usize = 80; // u128: hash of the assigned URI
    pub const DIALOG: usize = 96; // u128: the dialog key as given
    pub const NAME: usize = 112; // [u8; 256]: the name as chosen (or "Anonymous")
    pub const IDENT: usize = 368; // [u8; 255] + 1 pad
    pub const SID: usize = 624; // [u8; 64]
    /// Next participant in the same session-index bucket.
    pub const NEXT_SESSION: usize = 688;
    pub const PEER_LEN: usize = 692;
    pub const WRAPPED_LEN: usize = 696;
    /// The first URI of the participant's `a=path` (what the relay checks From-Path against).
    pub const PEER: usize = 700; // [u8; 256]
    /// The `a=accept-wrapped-types` tokens, space-separated.
    pub const WRAPPED: usize = 956; // [u8; 128]
    /// Next participant in the same identity-index bucket (places per authenticated identity).
    pub const NEXT_IDENT: usize = 1084;
    pub const SIZE: usize = 1088;

    pub const PF_ANONYMOUS: u32 = 1;
    pub const PF_HAS_NAME: u32 = 2;
    pub const GEN_MASK: u32 = (1 << 28) - 1;
}

/// Base record: one per (conference, clash key of a chosen name) with at least one participant who
/// chose that name. In use, `LINK` chains the base bucket.
pub(crate) mod base {
    pub const CONF: usize = 8;
    /// Participants whose chosen name has this clash key (modified or not).
    pub const REFS: usize = 12;
    /// Next never-assigned suffix (starts at 2). Only grows while the record lives: a suffix is
    /// never handed out twice while someone holds a name of this base.
    pub const NEXT_SUFFIX: usize = 16;
    pub const HASH: usize = 32; // u128
    pub const SIZE: usize = 48;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    Conf = 0,
    Part = 1,
    Base = 2,
}

pub(crate) const POOLS: [Pool; 3] = [Pool::Conf, Pool::Part, Pool::Base];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Index {
    Conf,
    Clash,
    Uri,
    Dialog,
    Base,
    Session,
    Ident,
}

pub(crate) const INDEXES: [Index; 7] = [
    Index::Conf,
    Index::Clash,
    Index::Uri,
    Index::Dialog,
    Index::Base,
    Index::Session,
    Index::Ident,
];

/// Offsets and capacities of one stripe, a pure function of (max_conferences, max_participants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub conf_cap: u32,
    pub part_cap: u32,
    pub base_cap: u32,
    pub conf_buckets: u32,
    pub part_buckets: u32,
    bucket_off: [usize; 7],
    pool_off: [usize; 3],
    pub total: usize,
}

fn align8(x: u64) -> Option<u64> {
    x.checked_add(7).map(|v| v & !7)
}

/// Bucket count for `cap` entries: a power of two ≥ 2 × cap, so the load factor stays ≤ 1/2.
fn buckets_for(cap: u32) -> Option<u32> {
    u32::try_from(u64::from(cap).checked_mul(2)?.checked_next_power_of_two()?).ok()
}

impl Layout {
    /// `None` for a configuration the table refuses (zero or above [`MAX_RECORDS`]) or one whose size
    /// does not fit this platform's `usize`.
    pub fn new(max_conferences: u32, max_participants: u32) -> Option<Layout> {
        if max_conferences == 0
            || max_participants == 0
            || max_conferences > MAX_RECORDS
            || max_participants > MAX_RECORDS
        {
            return None;
        }
        let conf_cap = max_conferences;
        let part_cap = max_participants;
        // Base records: every participant with a display name holds exactly one reference to the base
        // record of its chosen name's clash key, and a record is freed when its count drops to zero, so
        // at most `part_cap` are live.
        let base_cap = part_cap;
        let conf_buckets = buckets_for(conf_cap)?;
        let part_buckets = buckets_for(part_cap)?;

        let mut off = hdr::SIZE as u64;
        let mut bucket_off = [0usize; 7];
        for (i, ix) in INDEXES.iter().enumerate() {
            bucket_off[i] = usize::try_from(off).ok()?;
            let n = if *ix == Index::Conf {
                conf_buckets
            } else {
                part_buckets
            };
            off = align8(off.checked_add(u64::from(n).checked_mul(4)?)?)?;
        }
        let mut pool_off = [0usize; 3];
        for (i, (cap, size)) in [
            (conf_cap, conf::SIZE),
            (part_cap, part::SIZE),
            (base_cap, base::SIZE),
        ]
        .iter()
        .enumerate()
        {
            pool_off[i] = usize::try_from(off).ok()?;
            off = align8(off.checked_add(u64::from(*cap).checked_mul(*size as u64)?)?)?;
        }
        Some(Layout {
            conf_cap,
            part_cap,
            base_cap,
            conf_buckets,
            part_buckets,
            bucket_off,
            pool_off,
            total: usize::try_from(off).ok()?,
        })
    }

    pub fn cap(&self, p: Pool) -> u32 {
        match p {
            Pool::Conf => self.conf_cap,
            Pool::Part => self.part_cap,
            Pool::Base => self.base_cap,
        }
    }

    fn rec_size(p: Pool) -> usize {
        match p {
            Pool::Conf => conf::SIZE,
            Pool::Part => part::SIZE,
            Pool::Base => base::SIZE,
        }
    }

    /// Byte offset of record `i` of pool `p`, if `i` is a valid index.
    pub fn rec(&self, p: Pool, i: u32) -> Option<usize> {
        if i >= self.cap(p) {
            return None;
        }
        // Cannot overflow: the whole pool was sized with checked arithmetic in `new`.
        Some(self.pool_off[p as usize] + i as usize * Self::rec_size(p))
    }

    pub fn bucket_count(&self, ix: Index) -> u32 {
        if ix == Index::Conf {
            self.conf_buckets
        } else {
            self.part_buckets
        }
    }

    /// Byte offset of the bucket that `hash` falls into.
    pub fn bucket(&self, ix: Index, hash: u64) -> usize {
        let n = self.bucket_count(ix);
        // n is a power of two ≥ 2.
        let b = (hash as u32) & (n - 1);
        self.bucket_off[Self::ix_pos(ix)] + b as usize * 4
    }

    /// Byte range of one index's bucket array.
    pub fn bucket_range(&self, ix: Index) -> (usize, usize) {
        let start = self.bucket_off[Self::ix_pos(ix)];
        (start, start + self.bucket_count(ix) as usize * 4)
    }

    fn ix_pos(ix: Index) -> usize {
        match ix {
            Index::Conf => 0,
            Index::Clash => 1,
            Index::Uri => 2,
            Index::Dialog => 3,
            Index::Base => 4,
            Index::Session => 5,
            Index::Ident => 6,
        }
    }
}

pub(crate) fn get_u32(m: &[u8], off: usize) -> Option<u32> {
    let b = m.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(<[u8; 4]>::try_from(b).ok()?))
}

pub(crate) fn put_u32(m: &mut [u8], off: usize, v: u32) {
    if let Some(b) = off.checked_add(4).and_then(|end| m.get_mut(off..end)) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn get_u64(m: &[u8], off: usize) -> Option<u64> {
    let b = m.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(<[u8; 8]>::try_from(b).ok()?))
}

pub(crate) fn put_u64(m: &mut [u8], off: usize, v: u64) {
    if let Some(b) = off.checked_add(8).and_then(|end| m.get_mut(off..end)) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn get_u128(m: &[u8], off: usize) -> Option<u128> {
    let b = m.get(off..off.checked_add(16)?)?;
    Some(u128::from_le_bytes(<[u8; 16]>::try_from(b).ok()?))
}

pub(crate) fn put_u128(m: &mut [u8], off: usize, v: u128) {
    if let Some(b) = off.checked_add(16).and_then(|end| m.get_mut(off..end)) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn get_bytes(m: &[u8], off: usize, len: usize) -> &[u8] {
    off.checked_add(len)
        .and_then(|end| m.get(off..end))
        .unwrap_or(&[])
}

pub(crate) fn put_bytes(m: &mut [u8], off: usize, v: &[u8]) {
    if let Some(b) = off.checked_add(v.len()).and_then(|end| m.get_mut(off..end)) {
        b.copy_from_slice(v);
    }
}

// Every string field fits its record, fields do not overlap, and records keep 8-byte alignment.
const _: () = {
    assert!(conf::KEY + MAX_KEY < conf::SIZE && conf::SIZE % 8 == 0);
    assert!(part::NAME + MAX_NAME <= part::IDENT);
    assert!(part::IDENT + MAX_KEY <= part::SID);
    assert!(part::SID + MAX_SESSION <= part::NEXT_SESSION);
    assert!(part::NEXT_SESSION + 4 <= part::PEER_LEN);
    assert!(part::PEER_LEN + 4 <= part::WRAPPED_LEN && part::WRAPPED_LEN + 4 <= part::PEER);
    assert!(part::PEER + MAX_PEER_PATH <= part::WRAPPED);
    assert!(part::WRAPPED + MAX_WRAPPED <= part::NEXT_IDENT);
    assert!(part::NEXT_IDENT + 4 <= part::SIZE && part::SIZE % 8 == 0);
    assert!(base::HASH + 16 <= base::SIZE && base::SIZE % 8 == 0);
    assert!(part::GEN_MASK < (1 << 28));
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_fit_and_sections_do_not_overlap() {
        let l = Layout::new(3, 5).unwrap();
        assert_eq!(l.conf_buckets, 8);
        assert_eq!(l.part_buckets, 16);
        let mut end = hdr::SIZE;
        for ix in INDEXES {
            let (s, e) = l.bucket_range(ix);
            assert_eq!(s, end);
            end = (e + 7) & !7;
        }
        for p in POOLS {
            let first = l.rec(p, 0).unwrap();
            assert_eq!(first, end);
            assert!(l.rec(p, l.cap(p)).is_none());
            end = first + l.cap(p) as usize * Layout::rec_size(p);
        }
        assert_eq!(end, l.total);
    }

    #[test]
    fn refuses_bad_configs() {
        assert!(Layout::new(0, 1).is_none());
        assert!(Layout::new(1, 0).is_none());
        assert!(Layout::new(MAX_RECORDS + 1, 1).is_none());
        assert!(Layout::new(1, MAX_RECORDS).is_some());
    }

    #[test]
    fn accessors_never_panic_out_of_range() {
        let mut m = [0u8; 10];
        assert_eq!(get_u32(&m, 8), None);
        assert_eq!(get_u32(&m, usize::MAX), None);
        put_u32(&mut m, usize::MAX - 1, 7);
        put_u128(&mut m, 0, 1);
        assert_eq!(get_bytes(&m, 9, 5), &[] as &[u8]);
        put_bytes(&mut m, 8, b"abc");
        assert_eq!(m, [0u8; 10]);
    }
}
