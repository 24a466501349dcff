//! `multipart::parse`: never panics, with a fixed boundary and with one taken from the input.
#![no_main]
use chat_alias_proto::multipart;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = multipart::parse(data, "b") {
        assert!(!parts.is_empty());
    }
    // First byte = boundary length, then the boundary, then the body.
    if let Some((&n, rest)) = data.split_first() {
        let n = usize::from(n % 72).min(rest.len());
        let (boundary, body) = rest.split_at(n);
        if let Ok(boundary) = std::str::from_utf8(boundary) {
            let _ = multipart::parse(body, boundary);
        }
    }
});
