//! `sip::parse_uri`: never panics; re-serialising gives an equivalent URI with the same key.
#![no_main]
use chat_alias_proto::sip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = sip::parse_uri(s) {
        let again = sip::parse_uri(&u.to_string()).expect("re-serialised URI parses");
        assert!(u.equivalent(&again) && again.equivalent(&u));
        assert_eq!(u.key(), again.key());
        let _ = u.host_lower();
    }
});
