//! Randomness for the ids the relay writes: transaction ids and Message-IDs of every copy it
//! forwards, and of its REPORTs.
//!
//! RFC 4975 §7.1 asks for transaction ids with enough randomness that a third party cannot guess
//! them (a guessed id lets it forge a response or splice a chunk into a recipient's message), and
//! each copy has its own relay-chosen Message-ID for the same reason. A message to a room of N is
//! N copies, each needing two ids: asking the kernel (`getrandom`) for each one cost a system call
//! per copy, a tenth of the relay's CPU under fan-out. Each thread instead keeps a ChaCha20
//! generator (a CSPRNG: its output cannot be predicted without its 256-bit key) seeded once from
//! the OS, so ids stay unguessable and cost no system call.
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::cell::RefCell;

thread_local! {
    /// This thread's generator; seeded from the OS on first use.
    static RNG: RefCell<Option<ChaCha20Rng>> = const { RefCell::new(None) };
}

/// A fresh 256-bit key from the OS. A failing OS generator is not recoverable: ids must stay
/// unguessable, so the relay refuses to go on.
fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if getrandom::fill(&mut seed).is_err() {
        std::process::abort();
    }
    seed
}

/// 96 random bits from the calling thread's generator.
pub fn random_id_bytes() -> [u8; 12] {
    RNG.with_borrow_mut(|rng| {
        let rng = rng.get_or_insert_with(|| ChaCha20Rng::from_seed(os_seed()));
        let mut b = [0u8; 12];
        rng.fill_bytes(&mut b);
        b
    })
}

/// 96 random bits as 24 lower-case hex digits (an RFC 4975 `ident`), on the stack: what
/// `encode::new_transaction_id` writes, without allocating a String per copy.
pub fn hex(random: &[u8; 12]) -> [u8; 24] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; 24];
    for (pair, &b) in out.chunks_exact_mut(2).zip(random) {
        if let [hi, lo] = pair {
            *hi = DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            *lo = DIGITS.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0');
        }
    }
    out
}

/// The ids the relay's switch draws: from the generator of whichever thread runs it (the switch
/// moves between the runtime's worker threads with its lock).
pub fn thread_ids() -> crate::switch::Ids {
    Box::new(random_id_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_alias_proto::msrp::encode;
    use std::collections::HashSet;

    #[test]
    fn hex_is_what_the_encoder_writes() {
        let mut ids = thread_ids();
        for _ in 0..100 {
            let b = ids();
            assert_eq!(
                hex(&b).as_slice(),
                encode::new_transaction_id(&b).as_bytes()
            );
        }
        assert_eq!(&hex(&[0xab; 12]), b"abababababababababababab");
    }

    fn well_formed(id: &str) -> bool {
        id.len() == 24
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// Ids are 24 lower-case hex digits (96 bits, an RFC 4975 `ident`) and never repeat, within
    /// a thread and across threads (each thread's generator has its own key).
    #[test]
    fn ids_are_distinct_96_bit_hex_on_every_thread() {
        let draw = |n: usize| -> Vec<String> {
            let mut ids = thread_ids();
            (0..n)
                .map(|i| {
                    if i % 2 == 0 {
                        encode::new_transaction_id(&ids())
                    } else {
                        encode::new_message_id(&ids())
                    }
                })
                .collect()
        };
        let mut all = HashSet::new();
        let here = draw(20_000);
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || draw(5_000)))
            .collect();
        let mut count = here.len();
        for id in here {
            assert!(well_formed(&id), "{id}");
            all.insert(id);
        }
        for t in threads {
            let ids = t.join().unwrap();
            count += ids.len();
            for id in ids {
                assert!(well_formed(&id), "{id}");
                all.insert(id);
            }
        }
        assert_eq!(all.len(), count, "an id repeated");
        // Every hex digit shows up in every position: the bits are spread, not a counter.
        let sample: Vec<String> = all.iter().take(2000).cloned().collect();
        for pos in 0..24 {
            let digits: HashSet<u8> = sample.iter().map(|s| s.as_bytes()[pos]).collect();
            assert_eq!(digits.len(), 16, "position {pos}");
        }
    }

    /// Two threads started at the same moment draw unrelated ids: their generators are seeded
    /// separately from the OS, not derived from a shared or time-based seed.
    #[test]
    fn threads_have_their_own_keys() {
        let first = || std::thread::spawn(random_id_bytes);
        let (a, b) = (first(), first());
        assert_ne!(a.join().unwrap(), b.join().unwrap());
    }
}
