//! Random tokens for Call-IDs, tags, branches and MSRP ids.

/// `n` random bytes from the OS.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // getrandom fails only when the OS has no entropy source at all; then there is no way to
    // make ids that others cannot guess, so refusing to run is the honest answer.
    getrandom::fill(&mut b).expect("the OS random number generator is unavailable");
    b
}

/// `n` random bytes as lower-case hex (`2n` characters).
pub(crate) fn hex<const N: usize>() -> String {
    bytes::<N>().iter().map(|b| format!("{b:02x}")).collect()
}

/// A 64-bit random number (SDP session ids).
pub(crate) fn u63() -> u64 {
    u64::from_be_bytes(bytes::<8>()) >> 1
}
