//! `cpim::parse_headers` (streaming) and the encapsulated part: never panic; a block that parses
//! is `Incomplete` at every shorter prefix.
#![no_main]
use chat_alias_proto::cpim;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cpim::parse_encapsulated(data);
    let Ok(h) = cpim::parse_headers(data) else {
        return;
    };
    assert!(h.header_len <= data.len());
    for cut in [0, h.header_len / 2, h.header_len.saturating_sub(1)] {
        if cut < h.header_len {
            assert_eq!(
                cpim::parse_headers(&data[..cut]),
                Err(cpim::CpimError::Incomplete)
            );
        }
    }
    for (_, value) in &h.headers {
        let _ = cpim::parse_address(value);
    }
    let _ = cpim::parse_encapsulated(&data[h.header_len..]);
});
