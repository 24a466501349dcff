//! The operations on one locked stripe: formatting and attaching a region, join (with the same
//! dialog recognised), withdraw and leave, rename (RFC 7701 NICKNAME), queries and the consistency
//! check.
use super::*;

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
                s.write_field(p, i, LINK, next);
                if p == Pool::Part {
                    s.write_field(p, i, part::GEN, 1);
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

    pub(super) fn assign(
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
                        if self.read_field(Pool::Base, b, base::REFS) == 0 {
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
        self.write_field(Pool::Part, p, part::CONF, c);
        self.write_field(Pool::Part, p, part::BASE, b);
        self.write_field(Pool::Part, p, part::SUFFIX, suffix);
        self.write_field(Pool::Part, p, part::URI_NUMBER, uri_number);
        self.write_field(Pool::Part, p, part::FLAGS, req.flags);
        self.write_field(Pool::Part, p, part::PFLAGS, pflags);
        self.write_field_u128(Pool::Part, p, part::CLASH, clash);
        self.write_field_u128(Pool::Part, p, part::URI, uri_hash);
        self.write_field_u128(Pool::Part, p, part::DIALOG, req.dialog_key);
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
        self.write_field(Pool::Part, p, LINK, NIL);
        self.write_field(Pool::Part, p, part::PREV, tail);
        if self.lay.rec(Pool::Part, tail).is_some() {
            self.write_field(Pool::Part, tail, LINK, p);
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
            let r = self.read_field(Pool::Base, b, base::REFS).saturating_add(1);
            self.write_field(Pool::Base, b, base::REFS, r);
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
        let c = self.read_field(Pool::Part, p, part::CONF);
        let uri_number = self.read_field(Pool::Part, p, part::URI_NUMBER);
        let suffix = self.read_field(Pool::Part, p, part::SUFFIX);
        let b = self.read_field(Pool::Part, p, part::BASE);
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
            && self.read_field(Pool::Base, b, STATE) == USED
            && self.read_field(Pool::Base, b, base::NEXT_SUFFIX) == suffix.saturating_add(1)
        {
            self.write_field(Pool::Base, b, base::NEXT_SUFFIX, suffix);
        }
        Some(departed)
    }

    /// Removes a participant, freeing its name and URI for the next joiner. A handle that is stale
    /// (slot released or reused since) or not of this stripe gives `None`, so a repeated leave is
    /// harmless.
    pub fn leave(&mut self, handle: ParticipantHandle) -> Option<Departed> {
        let p = self.live_slot(handle)?;
        let c = self.read_field(Pool::Part, p, part::CONF);
        let info = self.info_of(p);
        let departed = Departed {
            conference_key: self.conf_key(c),
            display_name: info.display_name,
            uri: info.uri,
            session_id: info.session_id,
        };
        let pflags = self.read_field(Pool::Part, p, part::PFLAGS);

        // Unlink from every index; give the name's suffix back to its base record.
        self.unlink_name(p);
        let h = self.read_field_u128(Pool::Part, p, part::URI) as u64;
        self.chain_remove(Index::Uri, h, part::NEXT_URI, p);
        let dh = self.dialog_hash(c, self.read_field_u128(Pool::Part, p, part::DIALOG));
        self.chain_remove(Index::Dialog, dh, part::NEXT_DIALOG, p);
        let sh = self.session_hash(c, self.rbytes(Pool::Part, p, part::SID, part::SID_LEN));
        self.chain_remove(Index::Session, sh, part::NEXT_SESSION, p);
        let ih = self.ident_hash(c, self.rbytes(Pool::Part, p, part::IDENT, part::IDENT_LEN));
        self.chain_remove(Index::Ident, ih, part::NEXT_IDENT, p);
        // Member list.
        let prev = self.read_field(Pool::Part, p, part::PREV);
        let next = self.read_field(Pool::Part, p, LINK);
        if self.lay.rec(Pool::Part, prev).is_some() {
            self.write_field(Pool::Part, prev, LINK, next);
        } else {
            self.wcf(c, conf::HEAD, next);
        }
        if self.lay.rec(Pool::Part, next).is_some() {
            self.write_field(Pool::Part, next, part::PREV, prev);
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
        let gen = self.read_field(Pool::Part, p, part::GEN);
        let gen = if gen >= part::GEN_MASK || gen == 0 {
            1
        } else {
            gen + 1
        };
        self.write_field(Pool::Part, p, part::GEN, gen);
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
        if holder == Some(p) && self.read_field(Pool::Part, p, part::SUFFIX) == 0 {
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
        let old_base = self.read_field(Pool::Part, p, part::BASE);
        let old_base_freed = self.lay.rec(Pool::Base, old_base).is_some()
            && self.read_field(Pool::Base, old_base, base::REFS) <= 1;
        if self.find_base(c, h).is_none() && self.free_head(Pool::Base) == NIL && !old_base_freed {
            return Err(RenameError::Taken); // unreachable on a consistent table; change nothing
        }

        // `bob-2` renaming to `bob` stays a holder of the base `bob` throughout: its record, and the
        // suffixes it has spent, must not be forgotten in between (or the next `bob` would be handed
        // `bob-2`, the name this participant had a moment ago).
        let same_base = self.lay.rec(Pool::Base, old_base).is_some()
            && self.read_field(Pool::Base, old_base, STATE) == USED
            && self.read_field_u128(Pool::Base, old_base, base::HASH) == h;
        if same_base {
            let refs = self
                .read_field(Pool::Base, old_base, base::REFS)
                .saturating_add(1);
            self.write_field(Pool::Base, old_base, base::REFS, refs);
        }
        self.unlink_name(p);
        let b = match self.find_base(c, h) {
            Some(b) => b,
            None => match self.new_base(c, h) {
                Some(b) => b,
                None => return Ok(self.info_of(p)), // checked above: unreachable
            },
        };
        let pflags = self.read_field(Pool::Part, p, part::PFLAGS) | part::PF_HAS_NAME;
        self.wstr(Pool::Part, p, part::NAME, part::NAME_LEN, name);
        self.write_field(Pool::Part, p, part::BASE, b);
        self.write_field(Pool::Part, p, part::SUFFIX, 0);
        self.write_field_u128(Pool::Part, p, part::CLASH, h);
        self.write_field(Pool::Part, p, part::PFLAGS, pflags);
        self.chain_insert(Index::Clash, h as u64, part::NEXT_CLASH, p);
        if !same_base {
            let refs = self.read_field(Pool::Base, b, base::REFS).saturating_add(1);
            self.write_field(Pool::Base, b, base::REFS, refs);
        }
        Ok(self.info_of(p))
    }

    /// Gives participant `p`'s display name back, leaving it nameless: out of the clash index, one
    /// reference less on its base record (freed at zero, else the suffix number `p` held goes back to
    /// the base's free list). Nothing to do for a nameless participant.
    pub(super) fn unlink_name(&mut self, p: u32) {
        let pflags = self.read_field(Pool::Part, p, part::PFLAGS);
        if pflags & part::PF_HAS_NAME != 0 {
            let h = self.read_field_u128(Pool::Part, p, part::CLASH) as u64;
            self.chain_remove(Index::Clash, h, part::NEXT_CLASH, p);
        }
        let b = self.read_field(Pool::Part, p, part::BASE);
        if self.lay.rec(Pool::Base, b).is_some() {
            let refs = self.read_field(Pool::Base, b, base::REFS).saturating_sub(1);
            self.write_field(Pool::Base, b, base::REFS, refs);
            // A suffix is never given back while the base record lives (someone still holds a
            // name of this base): `bob-2` stays spent so that nobody else appears as the `bob-2`
            // the others talked to. The record, and with it the counter, goes with the last holder.
            if refs == 0 {
                self.free_base(b);
            }
        }
        self.write_field(Pool::Part, p, part::PFLAGS, pflags & !part::PF_HAS_NAME);
        self.write_field(Pool::Part, p, part::BASE, NIL);
        self.write_field(Pool::Part, p, part::SUFFIX, 0);
        self.write_field_u128(Pool::Part, p, part::CLASH, 0);
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
            p = self.read_field(Pool::Part, p, LINK);
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
}
