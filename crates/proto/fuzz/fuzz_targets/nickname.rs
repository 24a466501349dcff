//! Display names and nicknames (`nickname::validate_display_name`, `clash_key`, `same_nickname`)
//! and SIP display-name quoting, all fed names from INVITE From headers and NICKNAME requests:
//! never panic; `clash_key` is a total function (RFC 8266 comparison never refuses to answer);
//! a name that validates has a non-empty key and compares equal to itself; a quoted name parses
//! back to the same name.
#![no_main]
use chat_alias_proto::{nickname, sip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // Split at the first NUL: a name and another to compare it with.
    let (a, b) = s.split_once('\0').unwrap_or((s, "bob"));
    let key = nickname::clash_key(a);
    assert_eq!(nickname::clash_key(a), key, "clash_key is deterministic");
    assert_eq!(nickname::names_clash(a, b), key == nickname::clash_key(b));
    if nickname::validate_display_name(a, 64).is_ok() {
        assert!(!key.is_empty());
        assert!(nickname::names_clash(a, a));
        assert!(a.chars().count() <= 64);
        assert!(!a.chars().any(char::is_control));
    }
    if let Ok(q) = sip::try_quote_display_name(a) {
        let header = format!("{q} <sip:x@example.com>");
        let na = sip::parse_name_addr(&header).expect("a quoted display name parses");
        assert_eq!(na.display_name.as_deref(), Some(a));
    }
    let _ = sip::quote_display_name(a);
});
