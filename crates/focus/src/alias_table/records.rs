//! Conference and base records (created and freed with their hash chains), and reading a
//! participant slot back as a handle, an assignment or a listing entry.
use super::*;

impl Stripe<'_> {
    // ----------------------------------------------------------------------------------------------
    // Records

    pub(super) fn new_conference(&mut self, c: u32, key: &str, key_hash: u64) {
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

    pub(super) fn free_conference(&mut self, c: u32) {
        if self.cf(c, STATE) != USED {
            return;
        }
        let h = self.conf_hash_of(c);
        self.chain_remove_by(Index::Conf, h, Pool::Conf, LINK, c);
        self.pool_free(Pool::Conf, c);
    }

    pub(super) fn new_base(&mut self, c: u32, h: u128) -> Option<u32> {
        let b = self.pool_alloc(Pool::Base)?;
        self.write_field(Pool::Base, b, base::CONF, c);
        self.write_field(Pool::Base, b, base::REFS, 0);
        self.write_field(Pool::Base, b, base::NEXT_SUFFIX, 2);
        self.write_field_u128(Pool::Base, b, base::HASH, h);
        self.chain_insert_by(Index::Base, h as u64, Pool::Base, LINK, b);
        Some(b)
    }

    pub(super) fn free_base(&mut self, b: u32) {
        if self.read_field(Pool::Base, b, STATE) != USED {
            return;
        }
        let h = self.read_field_u128(Pool::Base, b, base::HASH) as u64;
        self.chain_remove_by(Index::Base, h, Pool::Base, LINK, b);
        self.pool_free(Pool::Base, b);
    }

    /// The slot of a live participant of this stripe, if `handle` still names one.
    pub(super) fn live_slot(&self, handle: ParticipantHandle) -> Option<u32> {
        let p = handle.slot;
        (handle.stripe == self.stripe_index
            && self.lay.rec(Pool::Part, p).is_some()
            && self.read_field(Pool::Part, p, STATE) == USED
            && self.read_field(Pool::Part, p, part::GEN) == handle.generation)
            .then_some(p)
    }

    pub(super) fn handle_of(&self, p: u32) -> ParticipantHandle {
        ParticipantHandle {
            stripe: self.stripe_index,
            slot: p,
            generation: self.read_field(Pool::Part, p, part::GEN),
        }
    }

    pub(super) fn assigned_of(&self, p: u32) -> Assigned {
        let i = self.info_of(p);
        Assigned {
            handle: i.handle,
            display_name: i.display_name,
            uri: i.uri,
            name_modified: i.name_modified,
            uri_number: i.uri_number,
        }
    }

    pub(super) fn info_of(&self, p: u32) -> ParticipantInfo {
        let pflags = self.read_field(Pool::Part, p, part::PFLAGS);
        let anonymous = pflags & part::PF_ANONYMOUS != 0;
        let suffix = self.read_field(Pool::Part, p, part::SUFFIX);
        let display_name = (pflags & part::PF_HAS_NAME != 0).then(|| {
            let name = self.rstr(Pool::Part, p, part::NAME, part::NAME_LEN);
            if suffix == 0 {
                name
            } else {
                suffixed(&name, suffix)
            }
        });
        let uri_number = self.read_field(Pool::Part, p, part::URI_NUMBER);
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
            flags: self.read_field(Pool::Part, p, part::FLAGS),
            name_modified: suffix != 0,
            uri_number,
            dialog_key: self.read_field_u128(Pool::Part, p, part::DIALOG),
            peer_path: self.rstr(Pool::Part, p, part::PEER, part::PEER_LEN),
            accept_wrapped_types: self
                .rstr(Pool::Part, p, part::WRAPPED, part::WRAPPED_LEN)
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    pub(super) fn conf_key(&self, c: u32) -> String {
        self.rstr(Pool::Conf, c, conf::KEY, conf::KEY_LEN)
    }

    pub(super) fn conf_hash_of(&self, c: u32) -> u64 {
        self.lay
            .rec(Pool::Conf, c)
            .and_then(|o| get_u64(self.mem, o + conf::KEY_HASH))
            .unwrap_or(0)
    }
}
