//! Assigned identities: the clash key of a display name, suffixed names `<name>-<N>` and numbered
//! anonymous URIs, and how the next never-used number is chosen (O(1) amortised, never recycled
//! while the conference or base record lives).
use super::*;

/// The base name of an anonymous joiner who gave no display name (the name the CR's suffix rule then numbers).
pub const ANONYMOUS_NAME: &str = "Anonymous";
/// The plain anonymous URI (number 1).
pub const ANONYMOUS_URI: &str = "sip:anonymous@anonymous.invalid";

/// The comparison key of a display name: equal keys clash (RFC 8266 comparison plus confusable
/// skeleton; total, never fails).
pub(super) fn clash_key(name: &str) -> String {
    chat_alias_proto::nickname::clash_key(name)
}

/// `<name>-<n>`. Trailing spaces of the chosen name are left out: RFC 8266 keeps them out of the
/// name anyway, and `"alice  -2"` would read as something else than the `alice-2` it is.
pub(super) fn suffixed(name: &str, n: u32) -> String {
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

impl Stripe<'_> {
    // ----------------------------------------------------------------------------------------------
    // Choosing numbers

    /// The anonymous URI number for a new participant of conference `c`, and the URI's hash: the
    /// plain URI when free (the CR reuses it), else the next never-used number.
    pub(super) fn choose_anonymous_number(&mut self, c: u32) -> Result<(u32, u128), JoinError> {
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
    pub(super) fn choose_suffix(
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
    pub(super) fn suffix_spent(&self, c: u32, name: &str) -> bool {
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
            .is_some_and(|b| n >= 2 && n < self.read_field(Pool::Base, b, base::NEXT_SUFFIX))
    }

    /// Takes the next never-used number from the counter at `next_field` of record `idx` of `pool`,
    /// skipping numbers that are not free (`free(n)` says so, with the candidate's hash). A number
    /// is skipped only when a participant of the conference holds that exact name or URI, so the
    /// loop ends within (participants + 1) rounds; in practice it takes one.
    pub(super) fn choose_number(
        &mut self,
        c: u32,
        pool: Pool,
        idx: u32,
        next_field: usize,
        free: impl Fn(&Self, u32) -> (bool, u128),
    ) -> Result<(u32, u128), JoinError> {
        let limit = self.cf(c, conf::COUNT).min(self.lay.part_cap);
        for _ in 0..=limit {
            let n = self.read_field(pool, idx, next_field).max(2);
            if n == NIL {
                break; // 2^32 - 1 numbers spent in one conference's lifetime
            }
            self.write_field(pool, idx, next_field, n + 1);
            let (ok, h) = free(self, n);
            if ok {
                return Ok((n, h));
            }
        }
        Err(JoinError::TableFull)
    }
}
