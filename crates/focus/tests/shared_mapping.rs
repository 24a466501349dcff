//! The alias table over real shared memory with forked processes.
//!
//! This harness stands in for Kamailio: an anonymous `MAP_SHARED` mapping plays the part of shm
//! (allocated before the fork, shared by every child), and a process-shared pthread mutex per stripe
//! plays the part of `gen_lock_t`. It is test-only code and therefore may use `unsafe`; the table code
//! it drives is the crate's safe Rust over `&mut [u8]`.

use std::collections::HashSet;
use std::mem::size_of;
use std::ptr;

use chat_alias_focus::alias_table::{stripe_bytes, stripe_of, JoinRequest, Stripe, StripeConfig};

const STRIPES: usize = 4;
const CHILDREN: usize = 4;
const JOINS_PER_CHILD: usize = 100;
const ROOM: &str = "sip:bookclub@im.example.net";
const KEY: [u8; 16] = *b"shared-map-test!";

/// The shared mapping: `STRIPES` mutexes, then `STRIPES` stripe regions.
struct Shared {
    base: *mut u8,
    len: usize,
    lock_stride: usize,
    stripe_off: usize,
    stripe_stride: usize,
    stripe_len: usize,
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

impl Shared {
    fn new(cfg: &StripeConfig) -> Shared {
        let lock_stride = round_up(size_of::<libc::pthread_mutex_t>(), 64);
        let stripe_off = round_up(lock_stride * STRIPES, 64);
        let stripe_len = stripe_bytes(cfg);
        let stripe_stride = round_up(stripe_len, 64);
        let len = stripe_off + stripe_stride * STRIPES;
        // SAFETY: a fresh anonymous shared mapping; no existing memory is affected. Checked below.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap");
        let sh = Shared {
            base: base.cast(),
            len,
            lock_stride,
            stripe_off,
            stripe_stride,
            stripe_len,
        };
        for s in 0..STRIPES {
            // SAFETY: the attribute object is initialised before use and destroyed after; the mutex
            // lives inside the mapping, suitably aligned (64), and is initialised once, before any fork.
            unsafe {
                let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
                assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
                assert_eq!(
                    libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                    0
                );
                assert_eq!(libc::pthread_mutex_init(sh.lock_ptr(s), &attr), 0);
                libc::pthread_mutexattr_destroy(&mut attr);
            }
        }
        sh
    }

    fn lock_ptr(&self, s: usize) -> *mut libc::pthread_mutex_t {
        assert!(s < STRIPES);
        // SAFETY: s < STRIPES, so the offset stays inside the lock area of the mapping.
        unsafe { self.base.add(s * self.lock_stride).cast() }
    }

    /// Runs `f` on stripe `s` while holding that stripe's lock: the only place a `&mut [u8]` to a
    /// stripe is made, and it does not outlive the lock.
    fn with_stripe<R>(&self, s: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        // SAFETY: the mutex was initialised (process-shared) before the fork and is never destroyed
        // while children run.
        assert_eq!(unsafe { libc::pthread_mutex_lock(self.lock_ptr(s)) }, 0);
        // SAFETY: the region [stripe_off + s*stride, + stripe_len) lies inside the mapping, which stays
        // mapped for the life of `self`; holding stripe `s`'s lock makes this the only live reference
        // to those bytes in any process (every access goes through `with_stripe`).
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                self.base.add(self.stripe_off + s * self.stripe_stride),
                self.stripe_len,
            )
        };
        let r = f(bytes);
        // SAFETY: locked above by this thread.
        assert_eq!(unsafe { libc::pthread_mutex_unlock(self.lock_ptr(s)) }, 0);
        r
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no slice into it outlives `with_stripe`.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

fn child(sh: &Shared, who: usize) -> Result<(), String> {
    let s = stripe_of(ROOM, STRIPES);
    let mut mine = HashSet::new();
    for i in 0..JOINS_PER_CHILD {
        let ident = format!("sip:user{who}-{i}@example.net");
        let dialog = (who as u128) << 64 | i as u128;
        let a = sh.with_stripe(s, |bytes| {
            let mut t = Stripe::attach(bytes).map_err(|e| e.to_string())?;
            t.join(&JoinRequest {
                conference_key: ROOM,
                max_participants: None,
                max_places_per_identity: None,
                anonymous: true,
                display_name: Some("bob"),
                identity_uri: &ident,
                dialog_key: dialog,
                session_id: "sid",
                flags: who as u32,
            })
            .map_err(|e| e.to_string())
        })?;
        if !mine.insert(a.display_name.clone()) {
            return Err(format!("child {who} got {:?} twice", a.display_name));
        }
        if i % 7 == 0 {
            std::thread::yield_now();
        }
    }
    Ok(())
}

#[test]
fn forked_workers_share_one_table() {
    let cfg = StripeConfig {
        max_conferences: 8,
        max_participants: 512,
    };
    let sh = Shared::new(&cfg);
    for s in 0..STRIPES {
        sh.with_stripe(s, |bytes| {
            Stripe::init(bytes, &cfg, s as u32, KEY).unwrap();
        });
    }

    let mut pids = Vec::new();
    for who in 0..CHILDREN {
        // SAFETY: fork in a test process; the child only uses the shared mapping, the allocator and
        // the process-shared mutexes, and leaves with `_exit` (no unwinding into the test harness, no
        // atexit handlers or buffered output of the parent run twice).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(&sh, who)));
            let code = match ok {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    eprintln!("child {who}: {e}");
                    1
                }
                Err(_) => 2,
            };
            // SAFETY: terminates the child immediately, see above.
            unsafe { libc::_exit(code) };
        }
        pids.push(pid);
    }
    for pid in pids {
        let mut status = 0;
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child {pid} failed: status {status:#x}"
        );
    }

    let total = CHILDREN * JOINS_PER_CHILD;
    sh.with_stripe(stripe_of(ROOM, STRIPES), |bytes| {
        let t = Stripe::attach(bytes).unwrap();
        t.check().unwrap();
        let list = t.participants(ROOM);
        assert_eq!(list.len(), total);
        let names: HashSet<String> = list.iter().filter_map(|p| p.display_name.clone()).collect();
        let uris: HashSet<String> = list.iter().map(|p| p.uri.clone()).collect();
        assert_eq!(names.len(), total, "names are distinct");
        assert_eq!(uris.len(), total, "URIs are distinct");
        let expected_names: HashSet<String> = std::iter::once("bob".to_owned())
            .chain((2..=total).map(|n| format!("bob-{n}")))
            .collect();
        assert_eq!(names, expected_names);
        let expected_uris: HashSet<String> =
            std::iter::once("sip:anonymous@anonymous.invalid".to_owned())
                .chain((2..=total).map(|n| format!("sip:anonymous{n}@anonymous.invalid")))
                .collect();
        assert_eq!(uris, expected_uris);
        // Every child's joins are there.
        for who in 0..CHILDREN {
            assert_eq!(
                list.iter().filter(|p| p.flags == who as u32).count(),
                JOINS_PER_CHILD
            );
        }
    });
    // The other stripes were never touched by the children.
    for s in (0..STRIPES).filter(|&s| s != stripe_of(ROOM, STRIPES)) {
        sh.with_stripe(s, |bytes| {
            assert!(Stripe::attach(bytes).unwrap().usage().is_empty());
        });
    }
}
