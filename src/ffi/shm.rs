//! Kamailio shared memory: the alias table's stripes with one gen_lock each, and the published group
//! documents. Allocated in mod_init before the fork; shm is mapped at the same address in every
//! Kamailio process, so the pointers here are valid everywhere. The table itself keeps only offsets.
use super::bindings as b;
use crate::modparams::Modparams;
use crate::service::{Dialog, DialogSlots};
use chat_alias_focus::alias_table::{self, ParticipantHandle, Stripe, StripeConfig};
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

/// The published group documents: generation counter and a shm copy of the blob.
#[repr(C)]
struct DocsSlot {
    generation: u64,
    ptr: *mut u8,
    len: usize,
}

/// How many dialogs the focus ended itself are remembered (see [`ShmTable::bury`]).
const TOMBS: usize = 1024;

/// The dialog keys of the latest participants the focus removed, in a ring.
#[repr(C)]
struct Tombs {
    next: u64,
    keys: [u128; TOMBS],
}

pub struct ShmTable {
    tombs: *mut Tombs,
    locks: *mut c_void,
    base: *mut u8,
    stripe_bytes: usize,
    stripes: usize,
    docs: *mut DocsSlot,
    /// Per participant slot of every stripe, [`SLOT_WORDS`] words guarded by the stripe's lock:
    /// the handle (`ParticipantHandle::to_u64`) owning the slot, the reference to the
    /// participant's SIP dialog (an shm block with what a BYE from the focus needs; 0: none), and the second from which the dialog is past `dialog_timeout`. 24 bytes per place,
    /// outside the table so that its layout stays the table's own business.
    dialogs: *mut u64,
    slots_per_stripe: usize,
}

/// Words per participant slot in the dialog side table: owner handle, `dlg_t` reference, expiry.
const SLOT_WORDS: usize = 3;

/// A stripe's dialog references (see [`ShmTable::with_stripe_dialogs`]).
pub struct DialogRefs<'a>(&'a mut [u64]);

impl DialogRefs<'_> {
    fn index(&self, h: ParticipantHandle) -> Option<usize> {
        let i = (h.slot as usize).checked_mul(SLOT_WORDS)?;
        (i + SLOT_WORDS <= self.0.len()).then_some(i)
    }
}

impl DialogSlots<TmDialog> for DialogRefs<'_> {
    fn put(
        &mut self,
        h: ParticipantHandle,
        d: Option<TmDialog>,
        expires_at: u64,
    ) -> Option<TmDialog> {
        let Some(i) = self.index(h) else {
            return d;
        };
        let old = std::mem::replace(&mut self.0[i + 1], d.map_or(0, TmDialog::into_raw));
        self.0[i] = h.to_u64();
        self.0[i + 2] = expires_at;
        TmDialog::from_raw(old)
    }

    fn take(&mut self, h: ParticipantHandle) -> Option<TmDialog> {
        let i = self.index(h)?;
        if self.0[i] != h.to_u64() {
            return None;
        }
        self.0[i] = 0;
        self.0[i + 2] = 0;
        TmDialog::from_raw(std::mem::take(&mut self.0[i + 1]))
    }

    fn expired(&self, now: u64, max: usize) -> Vec<ParticipantHandle> {
        self.0
            .chunks_exact(SLOT_WORDS)
            .filter(|s| s[0] != 0 && s[2] <= now)
            .map(|s| ParticipantHandle::from_u64(s[0]))
            .take(max)
            .collect()
    }
}

/// A participant's SIP dialog as the focus keeps it (one shm block with what a BYE needs, from the
/// INVITE; tm's `dlg_t` is built only when a BYE leaves), owned by exactly one holder: the side
/// table, or the process that took it out. Dropping it frees it.
pub struct TmDialog(u64);

impl TmDialog {
    /// Builds the dialog of the INVITE `msg` is answering with 200.
    ///
    /// # Safety
    /// `msg` must be the valid request of the current script call, with its transaction created.
    pub(crate) unsafe fn from_invite(msg: *mut b::sip_msg) -> Option<TmDialog> {
        TmDialog::from_raw(b::ca_dlg_new(msg))
    }

    fn from_raw(r: u64) -> Option<TmDialog> {
        (r != 0).then_some(TmDialog(r))
    }

    fn into_raw(self) -> u64 {
        let r = self.0;
        std::mem::forget(self);
        r
    }
}

impl Dialog for TmDialog {
    fn bye(&self, headers: &str) -> bool {
        let len = i32::try_from(headers.len()).unwrap_or(0);
        // SAFETY: self.0 is a live dlg_t this value owns; tm copies the headers while building.
        unsafe { b::ca_dlg_bye(self.0, headers.as_ptr().cast(), len) == 0 }
    }
}

impl Drop for TmDialog {
    fn drop(&mut self) {
        // SAFETY: the dlg_t is owned by this value and freed once, here.
        unsafe { b::ca_dlg_free(self.0) }
    }
}

// SAFETY: the pointers are to Kamailio shm, accessed only under the matching gen_lock (or atomically
// for the generation). Kamailio workers are single-threaded processes.
unsafe impl Send for ShmTable {}
unsafe impl Sync for ShmTable {}

/// Releases a stripe lock when dropped, so a panic inside the closure cannot leave it held.
struct LockGuard {
    set: *mut c_void,
    i: i32,
}
impl Drop for LockGuard {
    fn drop(&mut self) {
        // SAFETY: the set was created by ca_lockset_new and lock `i` is held by this process.
        unsafe { b::ca_lockset_release(self.set, self.i) }
    }
}

impl ShmTable {
    /// Allocates and formats the table (call in mod_init, before the fork).
    pub fn create(cfg: &Modparams, hash_key: [u8; 16]) -> Result<ShmTable, String> {
        let (max_conferences, max_participants) = cfg.per_stripe();
        let scfg = StripeConfig {
            max_conferences,
            max_participants,
        };
        let stripe_bytes = alias_table::stripe_bytes(&scfg);
        let stripes = cfg.table_stripes as usize;
        let total = stripe_bytes
            .checked_mul(stripes)
            .ok_or("alias table size overflows")?;
        // SAFETY: plain allocation calls; results checked for NULL before use.
        let slots_per_stripe = max_participants as usize;
        let dialog_words = slots_per_stripe
            .checked_mul(SLOT_WORDS * stripes)
            .ok_or("alias table size overflows")?;
        let (tombs, locks, base, docs, dialogs) = unsafe {
            (
                b::ca_shm_malloc(std::mem::size_of::<Tombs>()).cast::<Tombs>(),
                b::ca_lockset_new(stripes as i32 + 1),
                b::ca_shm_malloc(total).cast::<u8>(),
                b::ca_shm_malloc(std::mem::size_of::<DocsSlot>()).cast::<DocsSlot>(),
                b::ca_shm_malloc(dialog_words.max(1) * 8).cast::<u64>(),
            )
        };
        if tombs.is_null()
            || locks.is_null()
            || base.is_null()
            || docs.is_null()
            || dialogs.is_null()
        {
            return Err(format!(
                "cannot allocate the alias table ({total} bytes of shared memory for {} participants, \
                 {} conferences): raise kamailio's -m or lower max_participants/max_conferences",
                cfg.max_participants, cfg.max_conferences
            ));
        }
        // SAFETY: `docs` points to a fresh allocation of the right size; `base` to `total` bytes that
        // nothing else references yet.
        unsafe {
            docs.write(DocsSlot {
                generation: 0,
                ptr: std::ptr::null_mut(),
                len: 0,
            });
            std::ptr::write_bytes(base, 0, total);
            std::ptr::write_bytes(dialogs, 0, dialog_words);
            std::ptr::write_bytes(tombs, 0, 1);
        }
        let shared = ShmTable {
            tombs,
            locks,
            base,
            stripe_bytes,
            stripes,
            docs,
            dialogs,
            slots_per_stripe,
        };
        for i in 0..stripes {
            shared
                .with_stripe(i, |mem| {
                    Stripe::init(mem, &scfg, i as u32, hash_key).map(|_| ())
                })
                .map_err(|e| format!("alias table init failed: {e:?}"))?;
        }
        Ok(shared)
    }

    pub fn stripes(&self) -> usize {
        self.stripes
    }

    pub fn total_bytes(&self) -> usize {
        self.stripe_bytes * self.stripes + self.slots_per_stripe * self.stripes * SLOT_WORDS * 8
    }

    /// Runs `f` on stripe `i`'s bytes while holding that stripe's cross-process lock.
    pub fn with_stripe<R>(&self, i: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        self.with_stripe_dialogs(i, |mem, _| f(mem))
    }

    /// Like [`ShmTable::with_stripe`], with the stripe's dialog references too.
    pub fn with_stripe_dialogs<R>(
        &self,
        i: usize,
        f: impl FnOnce(&mut [u8], DialogRefs<'_>) -> R,
    ) -> R {
        assert!(i < self.stripes, "stripe index out of range");
        // SAFETY: lock i exists (set of stripes+1 locks).
        unsafe { b::ca_lockset_get(self.locks, i as i32) };
        let _guard = LockGuard {
            set: self.locks,
            i: i as i32,
        };
        // SAFETY: stripe i is the disjoint range [i*stripe_bytes, (i+1)*stripe_bytes) of the table's
        // allocation; holding lock i, this process is its only user until the guard drops, and this
        // process is single-threaded, so the exclusive borrow is not aliased.
        let mem = unsafe {
            std::slice::from_raw_parts_mut(self.base.add(i * self.stripe_bytes), self.stripe_bytes)
        };
        let words = self.slots_per_stripe * SLOT_WORDS;
        // SAFETY: stripe i's dialog words are the disjoint range [i*words, (i+1)*words) of their
        // allocation, guarded by the same lock as the stripe.
        let dialogs = unsafe { std::slice::from_raw_parts_mut(self.dialogs.add(i * words), words) };
        f(mem, DialogRefs(dialogs))
    }

    fn docs_lock(&self) -> LockGuard {
        let i = self.stripes as i32;
        // SAFETY: the last lock of the set guards the documents slot.
        unsafe { b::ca_lockset_get(self.locks, i) };
        LockGuard { set: self.locks, i }
    }

    /// Remembers the dialog of a participant the focus removed itself (and sent a BYE to), so that
    /// a BYE of the participant crossing ours still matches (answered 200, not 481; RFC 3261
    /// §15.1.2 lets either side end the dialog). The latest 1024 are kept.
    pub fn bury(&self, dialog_key: u128) {
        let _g = self.docs_lock();
        // SAFETY: under the docs lock nobody else reads or writes the ring.
        unsafe {
            let t = &mut *self.tombs;
            let i = (t.next % TOMBS as u64) as usize;
            t.keys[i] = dialog_key;
            t.next = t.next.wrapping_add(1);
        }
    }

    /// Whether `dialog_key` names a dialog the focus ended itself lately.
    pub fn is_buried(&self, dialog_key: u128) -> bool {
        if dialog_key == 0 {
            return false;
        }
        let _g = self.docs_lock();
        // SAFETY: under the docs lock the ring is stable.
        unsafe { (*self.tombs).keys.contains(&dialog_key) }
    }

    /// The generation of the published documents (0: none yet). Read without the lock: workers
    /// compare it on every request and take the lock only when it moved.
    pub fn docs_generation(&self) -> u64 {
        // SAFETY: `generation` is a naturally aligned u64 in shm, written only through AtomicU64.
        unsafe { AtomicU64::from_ptr(std::ptr::addr_of_mut!((*self.docs).generation)) }
            .load(Ordering::Acquire)
    }

    /// Copies the published documents out of shm.
    pub fn read_docs(&self) -> Option<(u64, Vec<u8>)> {
        let _g = self.docs_lock();
        // SAFETY: under the docs lock the slot and the blob it points to are stable.
        unsafe {
            let slot = &*self.docs;
            if slot.ptr.is_null() {
                return None;
            }
            Some((
                self.docs_generation(),
                std::slice::from_raw_parts(slot.ptr, slot.len).to_vec(),
            ))
        }
    }

    /// Replaces the published documents and bumps the generation; every process reloads on its next
    /// request.
    pub fn publish_docs(&self, blob: &[u8]) -> Result<u64, String> {
        // SAFETY: fresh allocation, checked, filled before it becomes visible under the lock.
        let p = unsafe { b::ca_shm_malloc(blob.len().max(1)).cast::<u8>() };
        if p.is_null() {
            return Err(format!(
                "no shared memory for {} bytes of group documents",
                blob.len()
            ));
        }
        // SAFETY: `p` has room for blob.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(blob.as_ptr(), p, blob.len()) };
        let _g = self.docs_lock();
        // SAFETY: under the docs lock nobody else reads or writes the slot; the old blob is freed
        // after it is unlinked (readers copy under the same lock).
        unsafe {
            let slot = &mut *self.docs;
            let old = std::mem::replace(&mut slot.ptr, p);
            slot.len = blob.len();
            let gen = AtomicU64::from_ptr(std::ptr::addr_of_mut!(slot.generation));
            let next = gen.load(Ordering::Relaxed) + 1;
            gen.store(next, Ordering::Release);
            if !old.is_null() {
                b::ca_shm_free(old.cast());
            }
            Ok(next)
        }
    }
}
