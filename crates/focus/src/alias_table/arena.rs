//! Arena primitives over the stripe's bytes: the fixed pools' free lists and use counts, and total
//! field access (an invalid index reads NIL / 0 / "" and writes nothing).
use super::*;

impl Stripe<'_> {
    // ----------------------------------------------------------------------------------------------
    // Pools

    pub(super) fn free_head(&self, p: Pool) -> u32 {
        get_u32(self.mem, hdr::FREE_HEAD + 4 * p as usize).unwrap_or(NIL)
    }

    pub(super) fn set_free_head(&mut self, p: Pool, v: u32) {
        put_u32(self.mem, hdr::FREE_HEAD + 4 * p as usize, v);
    }

    pub(super) fn used(&self, p: Pool) -> u32 {
        get_u32(self.mem, hdr::USED + 4 * p as usize).unwrap_or(0)
    }

    pub(super) fn set_used(&mut self, p: Pool, v: u32) {
        put_u32(self.mem, hdr::USED + 4 * p as usize, v);
    }

    pub(super) fn pool_alloc(&mut self, p: Pool) -> Option<u32> {
        let i = self.free_head(p);
        self.lay.rec(p, i)?;
        if self.read_field(p, i, STATE) != FREE {
            return None; // corrupt free list: refuse rather than hand out a live record
        }
        let next = self.read_field(p, i, LINK);
        self.set_free_head(p, next);
        self.set_used(p, self.used(p).saturating_add(1));
        self.write_field(p, i, STATE, USED);
        self.write_field(p, i, LINK, NIL);
        Some(i)
    }

    pub(super) fn pool_free(&mut self, p: Pool, i: u32) {
        if self.read_field(p, i, STATE) != USED {
            return;
        }
        self.write_field(p, i, STATE, FREE);
        let head = self.free_head(p);
        self.write_field(p, i, LINK, head);
        self.set_free_head(p, i);
        self.set_used(p, self.used(p).saturating_sub(1));
    }

    // ----------------------------------------------------------------------------------------------
    // Field access (total: an invalid index reads NIL / 0 / "" and writes nothing)

    pub(super) fn read_field(&self, p: Pool, i: u32, field: usize) -> u32 {
        self.lay
            .rec(p, i)
            .and_then(|o| get_u32(self.mem, o + field))
            .unwrap_or(NIL)
    }

    pub(super) fn write_field(&mut self, p: Pool, i: u32, field: usize, v: u32) {
        if let Some(o) = self.lay.rec(p, i) {
            put_u32(self.mem, o + field, v);
        }
    }

    pub(super) fn cf(&self, c: u32, field: usize) -> u32 {
        self.read_field(Pool::Conf, c, field)
    }

    pub(super) fn wcf(&mut self, c: u32, field: usize, v: u32) {
        self.write_field(Pool::Conf, c, field, v);
    }

    pub(super) fn read_field_u128(&self, p: Pool, i: u32, field: usize) -> u128 {
        self.lay
            .rec(p, i)
            .and_then(|o| get_u128(self.mem, o + field))
            .unwrap_or(0)
    }

    pub(super) fn write_field_u128(&mut self, p: Pool, i: u32, field: usize, v: u128) {
        if let Some(o) = self.lay.rec(p, i) {
            put_u128(self.mem, o + field, v);
        }
    }

    /// The bytes of a length-prefixed string field (the length is clamped to the field's room).
    pub(super) fn rbytes(&self, p: Pool, i: u32, field: usize, len_field: usize) -> &[u8] {
        let room = Self::room(field);
        let len = (self.read_field(p, i, len_field) as usize).min(room);
        self.lay
            .rec(p, i)
            .map_or(&[][..], |o| get_bytes(self.mem, o + field, len))
    }

    pub(super) fn rstr(&self, p: Pool, i: u32, field: usize, len_field: usize) -> String {
        String::from_utf8_lossy(self.rbytes(p, i, field, len_field)).into_owned()
    }

    pub(super) fn wstr(&mut self, p: Pool, i: u32, field: usize, len_field: usize, s: &str) {
        let b = s.as_bytes();
        let b = b.get(..Self::room(field)).unwrap_or(b);
        if let Some(o) = self.lay.rec(p, i) {
            put_bytes(self.mem, o + field, b);
        }
        self.write_field(p, i, len_field, b.len() as u32);
    }

    pub(super) fn room(field: usize) -> usize {
        match field {
            part::NAME => MAX_NAME,
            part::SID => MAX_SESSION,
            part::PEER => MAX_PEER_PATH,
            part::WRAPPED => MAX_WRAPPED,
            _ => MAX_KEY, // part::IDENT, conf::KEY
        }
    }
}
