//! `sip::parse_name_addr` / `parse_name_addr_list`: never panic; what parses and can be written
//! back parses back identically.
#![no_main]
use chat_alias_proto::sip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sip::parse_name_addr_list(s);
    if let Ok(v) = sip::parse_name_addr(s) {
        if let Ok(text) = v.to_header_value() {
            assert!(!text.contains(['\r', '\n']));
            assert_eq!(sip::parse_name_addr(&text).as_ref(), Ok(&v));
        }
    }
});
