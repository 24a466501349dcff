//! Whole-stripe consistency check: `Stripe::check`.

use std::collections::{HashMap, HashSet};

use super::layout::{
    base, conf, get_u32, part, Index, Pool, FREE, INDEXES, LINK, NIL, POOLS, STATE, USED,
};
use super::Stripe;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

pub(super) fn run(s: &Stripe<'_>) -> Result<(), String> {
    let lay = s.lay;
    // Pools: used counters and free lists.
    for p in POOLS {
        let cap = lay.cap(p);
        let used = (0..cap)
            .filter(|&i| s.read_field(p, i, STATE) == USED)
            .count() as u32;
        let free = (0..cap)
            .filter(|&i| s.read_field(p, i, STATE) == FREE)
            .count() as u32;
        ensure!(used + free == cap, "{p:?}: records in neither state");
        ensure!(
            used == s.used(p),
            "{p:?}: {used} used, header says {}",
            s.used(p)
        );
        let mut seen = 0u32;
        let mut i = s.free_head(p);
        while i != NIL {
            ensure!(seen < free, "{p:?}: free list longer than {free} (cycle?)");
            ensure!(
                s.read_field(p, i, STATE) == FREE,
                "{p:?}: record {i} on free list but used"
            );
            seen += 1;
            i = s.read_field(p, i, LINK);
        }
        ensure!(
            seen == free,
            "{p:?}: free list has {seen} of {free} free records"
        );
    }

    // Participants of each conference; uniqueness per conference.
    let mut members_total = 0u32;
    let mut base_refs: HashMap<u32, u32> = HashMap::new();
    for c in (0..lay.conf_cap).filter(|&c| s.cf(c, STATE) == USED) {
        let key = s.conf_key(c);
        ensure!(
            s.conf_hash_of(c) == s.conf_key_hash(&key),
            "conference {c}: key hash"
        );
        ensure!(
            s.find_conf(&key, s.conf_key_hash(&key)) == Some(c),
            "conference {c} not found by key"
        );
        let mut names = HashSet::new();
        let mut uris = HashSet::new();
        let mut anon_held = HashSet::new();
        let (mut count, mut anon) = (0u32, 0u32);
        let mut prev = NIL;
        let mut p = s.cf(c, conf::HEAD);
        while p != NIL {
            ensure!(count < lay.part_cap, "conference {c}: member list cycle");
            ensure!(
                s.read_field(Pool::Part, p, STATE) == USED,
                "member {p} is free"
            );
            ensure!(
                s.read_field(Pool::Part, p, part::CONF) == c,
                "member {p}: wrong conference"
            );
            ensure!(
                s.read_field(Pool::Part, p, part::PREV) == prev,
                "member {p}: PREV"
            );
            let info = s.info_of(p);
            if let Some(name) = &info.display_name {
                let h = s.clash_hash(c, name);
                ensure!(
                    s.read_field_u128(Pool::Part, p, part::CLASH) == h,
                    "member {p}: clash hash"
                );
                ensure!(names.insert(h), "conference {c}: name {name:?} twice");
                ensure!(
                    s.find_clash(c, h) == Some(p),
                    "member {p}: not in clash index"
                );
                let b = s.read_field(Pool::Part, p, part::BASE);
                let chosen = s.rstr(Pool::Part, p, part::NAME, part::NAME_LEN);
                ensure!(
                    s.read_field(Pool::Base, b, STATE) == USED
                        && s.read_field(Pool::Base, b, base::CONF) == c
                        && s.read_field_u128(Pool::Base, b, base::HASH) == s.clash_hash(c, &chosen),
                    "member {p}: base record"
                );
                ensure!(
                    s.find_base(c, s.clash_hash(c, &chosen)) == Some(b),
                    "base lookup"
                );
                *base_refs.entry(b).or_default() += 1;
                let suffix = s.read_field(Pool::Part, p, part::SUFFIX);
                if suffix != 0 {
                    ensure!(suffix >= 2, "member {p}: suffix {suffix}");
                    ensure!(
                        suffix < s.read_field(Pool::Base, b, base::NEXT_SUFFIX),
                        "member {p}: suffix not below the base counter"
                    );
                }
            } else {
                ensure!(
                    s.read_field(Pool::Part, p, part::BASE) == NIL
                        && s.read_field(Pool::Part, p, part::SUFFIX) == 0,
                    "nameless member has a base or a suffix"
                );
            }
            let h = s.uri_hash(c, &info.uri);
            ensure!(
                s.read_field_u128(Pool::Part, p, part::URI) == h,
                "member {p}: URI hash"
            );
            ensure!(
                uris.insert(info.uri.clone()),
                "conference {c}: URI {} twice",
                info.uri
            );
            ensure!(s.find_uri(c, h) == Some(p), "member {p}: not in URI index");
            ensure!(
                s.find_dialog(c, info.dialog_key) == Some(p),
                "member {p}: not in dialog index"
            );
            // Session ids need not be unique, so the lookup may find another holder of the same id;
            // that every member is in the index at all follows from the chain walk below.
            let sid = s.rbytes(Pool::Part, p, part::SID, part::SID_LEN);
            let found = std::str::from_utf8(sid)
                .ok()
                .and_then(|sid| s.find_session(c, sid));
            ensure!(
                found.is_some_and(|q| s.rbytes(Pool::Part, q, part::SID, part::SID_LEN) == sid),
                "member {p}: session not found"
            );
            for (len, max, what) in [
                (part::PEER_LEN, super::MAX_PEER_PATH, "peer path"),
                (
                    part::WRAPPED_LEN,
                    super::MAX_WRAPPED,
                    "accept-wrapped-types",
                ),
            ] {
                ensure!(
                    s.read_field(Pool::Part, p, len) as usize <= max,
                    "member {p}: {what} length over {max}"
                );
            }
            if info.anonymous {
                anon += 1;
                ensure!(info.uri_number >= 1, "anonymous member {p} without number");
                if info.uri_number >= 2 {
                    ensure!(
                        info.uri_number < s.cf(c, conf::ANON_NEXT),
                        "member {p}: URI number not below the counter"
                    );
                }
                anon_held.insert(info.uri_number);
            } else {
                ensure!(
                    info.uri_number == 0,
                    "non-anonymous member {p} with a number"
                );
            }
            count += 1;
            prev = p;
            p = s.read_field(Pool::Part, p, LINK);
        }
        ensure!(s.cf(c, conf::TAIL) == prev, "conference {c}: TAIL");
        ensure!(count >= 1, "conference {c}: empty but allocated");
        ensure!(count == s.cf(c, conf::COUNT), "conference {c}: COUNT");
        ensure!(
            anon == s.cf(c, conf::ANON_COUNT),
            "conference {c}: ANON_COUNT"
        );
        members_total = members_total.saturating_add(count);
    }
    ensure!(
        members_total == s.used(Pool::Part),
        "{} participants in conferences, {} slots used",
        members_total,
        s.used(Pool::Part)
    );

    // Base records.
    for b in (0..lay.base_cap).filter(|&b| s.read_field(Pool::Base, b, STATE) == USED) {
        let refs = s.read_field(Pool::Base, b, base::REFS);
        ensure!(refs >= 1, "base {b}: no references but allocated");
        ensure!(
            base_refs.get(&b).copied().unwrap_or(0) == refs,
            "base {b}: REFS {refs}, {} referencing",
            base_refs.get(&b).copied().unwrap_or(0)
        );
    }
    ensure!(
        base_refs.len() as u32 == s.used(Pool::Base),
        "referenced bases != used bases"
    );

    // Index chains: every entry live and in the right bucket; total = live entries.
    for ix in INDEXES {
        let (start, end) = lay.bucket_range(ix);
        let (pool, next_field) = match ix {
            Index::Conf => (Pool::Conf, LINK),
            Index::Clash => (Pool::Part, part::NEXT_CLASH),
            Index::Uri => (Pool::Part, part::NEXT_URI),
            Index::Dialog => (Pool::Part, part::NEXT_DIALOG),
            Index::Base => (Pool::Base, LINK),
            Index::Session => (Pool::Part, part::NEXT_SESSION),
            Index::Ident => (Pool::Part, part::NEXT_IDENT),
        };
        let mut total = 0u32;
        for at in (start..end).step_by(4) {
            let mut i = get_u32(s.mem, at).unwrap_or(NIL);
            while i != NIL {
                ensure!(total < lay.cap(pool), "{ix:?}: chain cycle");
                ensure!(
                    s.read_field(pool, i, STATE) == USED,
                    "{ix:?}: free record {i} in chain"
                );
                let h = match ix {
                    Index::Conf => s.conf_hash_of(i),
                    Index::Clash => s.read_field_u128(Pool::Part, i, part::CLASH) as u64,
                    Index::Uri => s.read_field_u128(Pool::Part, i, part::URI) as u64,
                    Index::Dialog => s.dialog_hash(
                        s.read_field(Pool::Part, i, part::CONF),
                        s.read_field_u128(Pool::Part, i, part::DIALOG),
                    ),
                    Index::Base => s.read_field_u128(Pool::Base, i, base::HASH) as u64,
                    Index::Session => s.session_hash(
                        s.read_field(Pool::Part, i, part::CONF),
                        s.rbytes(Pool::Part, i, part::SID, part::SID_LEN),
                    ),
                    Index::Ident => s.ident_hash(
                        s.read_field(Pool::Part, i, part::CONF),
                        s.rbytes(Pool::Part, i, part::IDENT, part::IDENT_LEN),
                    ),
                };
                ensure!(
                    lay.bucket(ix, h) == at,
                    "{ix:?}: record {i} in the wrong bucket"
                );
                total += 1;
                i = s.read_field(pool, i, next_field);
            }
        }
        let expected = match ix {
            Index::Clash => (0..lay.part_cap)
                .filter(|&p| {
                    s.read_field(Pool::Part, p, STATE) == USED
                        && s.read_field(Pool::Part, p, part::PFLAGS) & part::PF_HAS_NAME != 0
                })
                .count() as u32,
            _ => s.used(pool),
        };
        ensure!(
            total == expected,
            "{ix:?}: {total} entries, {expected} expected"
        );
    }
    Ok(())
}
