//! Property tests for `cpim`.
use chat_alias_proto::cpim::{self, CpimAddress, CpimError};
use proptest::prelude::*;

fn cpimish() -> impl Strategy<Value = Vec<u8>> {
    proptest::string::string_regex("(From|To|NS|from|Subject|DateTime|Content-Type)?[:\"<>\\\\ \r\nu0-9a-fA-F\tbtnr'sip@.]{0,64}")
        .unwrap()
        .prop_map(String::into_bytes)
}

proptest! {
    #[test]
    fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = cpim::parse_headers(&b);
        let _ = cpim::parse_encapsulated(&b);
        let _ = cpim::parse_message(&b);
        let _ = cpim::parse_address(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn parsers_never_panic_cpimish(parts in proptest::collection::vec(cpimish(), 0..6)) {
        let b = parts.join(&b"\r\n"[..]);
        if let Ok(h) = cpim::parse_headers(&b) {
            prop_assert!(h.header_len <= b.len());
            prop_assert!(h.header_len >= 1);
        }
        let _ = cpim::parse_message(&b);
        for p in &parts {
            let _ = cpim::parse_address(&String::from_utf8_lossy(p));
        }
    }

    #[test]
    fn address_round_trip(name in proptest::option::of(any::<String>()), uri in "[a-z]{2,5}:[a-zA-Z0-9@._;=-]{1,30}") {
        let text = cpim::format_address(name.as_deref(), &uri);
        prop_assert!(!text.contains(['\r', '\n']));
        let back = cpim::parse_address(&text).unwrap();
        prop_assert_eq!(back, CpimAddress { display_name: name, uri });
    }

    #[test]
    fn format_address_is_total(name in proptest::option::of(any::<String>()), uri in any::<String>()) {
        let text = cpim::format_address(name.as_deref(), &uri);
        prop_assert!(!text.chars().any(char::is_control));
        if !uri.is_empty() {
            prop_assert!(cpim::parse_address(&text).is_ok(), "{:?}", text);
        }
    }

    #[test]
    fn message_round_trip(from_name in proptest::option::of(any::<String>()), to_name in proptest::option::of(any::<String>()),
                          body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let from = cpim::format_address(from_name.as_deref(), "sip:anonymous2@anonymous.invalid");
        let to = cpim::format_address(to_name.as_deref(), "sip:bookclub@im.example.net");
        let bytes = cpim::try_compose(&from, std::slice::from_ref(&to), &[("DateTime", "2000-12-13T13:40:00-08:00")],
                                      "text/plain;charset=UTF-8", &body).unwrap();
        let m = cpim::parse_message(&bytes).unwrap();
        prop_assert_eq!(m.headers.from.unwrap(), CpimAddress { display_name: from_name, uri: "sip:anonymous2@anonymous.invalid".into() });
        prop_assert_eq!(m.headers.to, vec![CpimAddress { display_name: to_name, uri: "sip:bookclub@im.example.net".into() }]);
        prop_assert_eq!(m.content_type, "text/plain;charset=UTF-8");
        prop_assert_eq!(m.body, &body[..]);
        // Streaming: every strict prefix of the header block is Incomplete.
        let len = m.headers.header_len;
        for cut in [0, 1, len / 2, len - 1] {
            prop_assert_eq!(cpim::parse_headers(&bytes[..cut]), Err(CpimError::Incomplete));
        }
    }

    #[test]
    fn compose_never_injects(from in any::<String>(), to in any::<String>(), name in any::<String>(), value in any::<String>(),
                             ct in any::<String>()) {
        let bytes = cpim::compose(&from, &[to], &[(&name, &value)], &ct, b"");
        // Exactly From, To, one extra header, blank line, Content-Type, blank line.
        let text = String::from_utf8(bytes).unwrap();
        prop_assert_eq!(text.matches("\r\n").count(), 6);
        prop_assert_eq!(text.matches('\n').count(), 6);
        prop_assert_eq!(text.matches('\r').count(), 6);
    }
}
