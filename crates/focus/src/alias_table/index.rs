//! The stripe's keyed hashes (SipHash-1-3 under the stripe's secret key, one domain tag per role)
//! and its chained hash indexes: look-ups by conference, name clash key, URI, dialog, MSRP session,
//! base name and identity, and chain insertion and removal.
use super::*;

impl Stripe<'_> {
    // ----------------------------------------------------------------------------------------------
    // Hashes and indexes

    pub(super) fn sip128(&self, tag: u8, c: u32, bytes: &[u8]) -> u128 {
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write(&[tag]);
        h.write(&c.to_le_bytes());
        h.write(bytes);
        h.finish128().as_u128()
    }

    pub(super) fn clash_hash(&self, c: u32, name: &str) -> u128 {
        self.sip128(TAG_CLASH, c, clash_key(name).as_bytes())
    }

    pub(super) fn uri_hash(&self, c: u32, uri: &str) -> u128 {
        self.sip128(TAG_URI, c, uri.as_bytes())
    }

    pub(super) fn dialog_hash(&self, c: u32, dialog_key: u128) -> u64 {
        self.sip128(TAG_DIALOG, c, &dialog_key.to_le_bytes()) as u64
    }

    pub(super) fn session_hash(&self, c: u32, session_id: &[u8]) -> u64 {
        self.sip128(TAG_SESSION, c, session_id) as u64
    }

    pub(super) fn ident_hash(&self, c: u32, identity: &[u8]) -> u64 {
        self.sip128(TAG_IDENT, c, identity) as u64
    }

    /// How many places `identity` holds in conference `c`, counting at most to `stop`. Walks one
    /// bucket chain of the identity index: the identity's own places plus the few other entries
    /// that share the bucket (load ≤ 1/2, keyed hash), never the whole conference.
    pub(super) fn places_of(&self, c: u32, identity: &str, stop: u32) -> u32 {
        let at = self
            .lay
            .bucket(Index::Ident, self.ident_hash(c, identity.as_bytes()));
        let mut p = get_u32(self.mem, at).unwrap_or(NIL);
        let mut n = 0;
        for _ in 0..self.lay.part_cap {
            if n >= stop || self.lay.rec(Pool::Part, p).is_none() {
                break;
            }
            if self.read_field(Pool::Part, p, part::CONF) == c
                && self.read_field(Pool::Part, p, STATE) == USED
                && self.rbytes(Pool::Part, p, part::IDENT, part::IDENT_LEN) == identity.as_bytes()
            {
                n += 1;
            }
            p = self.read_field(Pool::Part, p, part::NEXT_IDENT);
        }
        n
    }

    pub(super) fn conf_key_hash(&self, key: &str) -> u64 {
        self.sip128(TAG_CONF, 0, key.as_bytes()) as u64
    }

    pub(super) fn find_conf(&self, key: &str, key_hash: u64) -> Option<u32> {
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
    pub(super) fn find_part(
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
            if self.read_field_u128(Pool::Part, p, hash_field) == h
                && self.read_field(Pool::Part, p, part::CONF) == c
                && self.read_field(Pool::Part, p, STATE) == USED
            {
                return Some(p);
            }
            p = self.read_field(Pool::Part, p, next_field);
        }
        None
    }

    pub(super) fn find_clash(&self, c: u32, h: u128) -> Option<u32> {
        self.find_part(Index::Clash, c, h, part::CLASH, part::NEXT_CLASH)
    }

    pub(super) fn find_uri(&self, c: u32, h: u128) -> Option<u32> {
        self.find_part(Index::Uri, c, h, part::URI, part::NEXT_URI)
    }

    pub(super) fn find_dialog(&self, c: u32, dialog_key: u128) -> Option<u32> {
        let mut p = get_u32(
            self.mem,
            self.lay
                .bucket(Index::Dialog, self.dialog_hash(c, dialog_key)),
        )
        .unwrap_or(NIL);
        for _ in 0..self.lay.part_cap {
            self.lay.rec(Pool::Part, p)?;
            if self.read_field_u128(Pool::Part, p, part::DIALOG) == dialog_key
                && self.read_field(Pool::Part, p, part::CONF) == c
                && self.read_field(Pool::Part, p, STATE) == USED
            {
                return Some(p);
            }
            p = self.read_field(Pool::Part, p, part::NEXT_DIALOG);
        }
        None
    }

    /// The participant of conference `c` with MSRP session id `session_id` (compared exactly; the most
    /// recent joiner if a caller reused an id).
    pub(super) fn find_session(&self, c: u32, session_id: &str) -> Option<u32> {
        let at = self
            .lay
            .bucket(Index::Session, self.session_hash(c, session_id.as_bytes()));
        let mut p = get_u32(self.mem, at).unwrap_or(NIL);
        for _ in 0..self.lay.part_cap {
            self.lay.rec(Pool::Part, p)?;
            if self.read_field(Pool::Part, p, part::CONF) == c
                && self.read_field(Pool::Part, p, STATE) == USED
                && self.rbytes(Pool::Part, p, part::SID, part::SID_LEN) == session_id.as_bytes()
            {
                return Some(p);
            }
            p = self.read_field(Pool::Part, p, part::NEXT_SESSION);
        }
        None
    }

    pub(super) fn find_base(&self, c: u32, h: u128) -> Option<u32> {
        let mut b = get_u32(self.mem, self.lay.bucket(Index::Base, h as u64)).unwrap_or(NIL);
        for _ in 0..self.lay.base_cap {
            self.lay.rec(Pool::Base, b)?;
            if self.read_field_u128(Pool::Base, b, base::HASH) == h
                && self.read_field(Pool::Base, b, base::CONF) == c
                && self.read_field(Pool::Base, b, STATE) == USED
            {
                return Some(b);
            }
            b = self.read_field(Pool::Base, b, LINK);
        }
        None
    }

    pub(super) fn chain_insert(&mut self, ix: Index, h: u64, next_field: usize, p: u32) {
        self.chain_insert_by(ix, h, Pool::Part, next_field, p);
    }

    pub(super) fn chain_insert_by(
        &mut self,
        ix: Index,
        h: u64,
        pool: Pool,
        next_field: usize,
        i: u32,
    ) {
        let at = self.lay.bucket(ix, h);
        let head = get_u32(self.mem, at).unwrap_or(NIL);
        self.write_field(pool, i, next_field, head);
        put_u32(self.mem, at, i);
    }

    pub(super) fn chain_remove(&mut self, ix: Index, h: u64, next_field: usize, p: u32) {
        self.chain_remove_by(ix, h, Pool::Part, next_field, p);
    }

    /// Unlinks record `i` from the chain of bucket `h` (by index, so equal hashes cannot confuse it).
    pub(super) fn chain_remove_by(
        &mut self,
        ix: Index,
        h: u64,
        pool: Pool,
        next_field: usize,
        i: u32,
    ) {
        let at = self.lay.bucket(ix, h);
        let mut cur = get_u32(self.mem, at).unwrap_or(NIL);
        let next_of_i = self.read_field(pool, i, next_field);
        if cur == i {
            put_u32(self.mem, at, next_of_i);
        } else {
            for _ in 0..self.lay.cap(pool) {
                if self.lay.rec(pool, cur).is_none() {
                    break;
                }
                let next = self.read_field(pool, cur, next_field);
                if next == i {
                    self.write_field(pool, cur, next_field, next_of_i);
                    break;
                }
                cur = next;
            }
        }
        self.write_field(pool, i, next_field, NIL);
    }
}
