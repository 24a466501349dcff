//! Property tests for `sip`: no input makes a parser panic; composed values parse back.
use chat_alias_proto::sip::{self, NameAddr};
use proptest::prelude::*;

/// Strings built from the characters the SIP grammar cares about, to reach deep parser paths.
fn sipish() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[\"<>;:,@ \\\\\r\n\tsipSIPtel+=%0-9a-fA-F\\[\\]?&./*é]{0,48}")
        .unwrap()
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?(\\.[a-zA-Z]{2,6}){0,2}",
        "(25[0-5]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|1[0-9]{2}|[1-9]?[0-9])){3}",
        "\\[[0-9a-f]{1,4}(:[0-9a-f]{1,4}){2,7}\\]",
    ]
}

proptest! {
    #[test]
    fn parsers_never_panic(s in any::<String>()) {
        let _ = sip::parse_name_addr(&s);
        let _ = sip::parse_name_addr_list(&s);
        let _ = sip::parse_uri(&s);
        let _ = sip::parse_media_type(&s);
        let _ = sip::accept_allows(&[&s], "multipart", "mixed");
        let _ = sip::privacy_values(&s);
        let _ = sip::privacy_requests_id(&s);
    }

    #[test]
    fn parsers_never_panic_sipish(s in sipish()) {
        if let Ok(v) = sip::parse_name_addr(&s) {
            // Whatever parses and can be written back parses back the same.
            if let Ok(text) = v.to_header_value() {
                prop_assert_eq!(sip::parse_name_addr(&text).unwrap(), v);
            }
        }
        let _ = sip::parse_name_addr_list(&s);
        if let Ok(u) = sip::parse_uri(&s) {
            // Whatever parses re-serialises to something equivalent.
            let again = sip::parse_uri(&u.to_string()).unwrap();
            prop_assert!(u.equivalent(&again), "{} vs {}", u, again);
            prop_assert_eq!(u.key(), again.key());
        }
        let _ = sip::parse_media_type(&s);
        let _ = sip::accept_allows(&[s.as_str(), "*/*"], "a", "b");
    }

    #[test]
    fn name_addr_round_trip(name in any::<String>(), user in "[a-zA-Z0-9._+-]{1,12}", host in host(),
                            tag in proptest::option::of("[a-zA-Z0-9]{1,16}")) {
        let uri = format!("sip:{user}@{host}");
        let display: String = name.chars().filter(|c| !c.is_control()).collect();
        let v = NameAddr {
            display_name: Some(display.clone()),
            uri: uri.clone(),
            params: tag.iter().map(|t| ("tag".to_string(), Some(t.clone()))).collect(),
        };
        let text = v.to_header_value().unwrap();
        prop_assert!(!text.contains(['\r', '\n']));
        prop_assert_eq!(sip::parse_name_addr(&text).unwrap(), v.clone());
        // In a list, next to another value, with the no-space form.
        let list = format!("{text} , {}<tel:+15551234567>", sip::quote_display_name(&display));
        let parsed = sip::parse_name_addr_list(&list).unwrap();
        prop_assert_eq!(parsed.len(), 2);
        prop_assert_eq!(&parsed[0], &v);
        prop_assert_eq!(parsed[1].display_name.as_deref(), Some(display.as_str()));
        // Controls are refused by the try_ form and dropped by the total one.
        if name.chars().any(char::is_control) {
            prop_assert!(sip::try_quote_display_name(&name).is_err());
        }
        let q = sip::quote_display_name(&name);
        prop_assert!(!q.chars().any(char::is_control));
        let back = sip::parse_name_addr(&format!("{q} <{uri}>")).unwrap();
        prop_assert_eq!(back.display_name, Some(display));
    }

    #[test]
    fn uri_round_trip(user in proptest::option::of("[^\\x00-\\x20@?:<>\"\\x7f]{1,10}"), host in host(),
                      port in proptest::option::of(any::<u16>()),
                      params in proptest::collection::vec(("[a-z]{1,6}", proptest::option::of("[a-zA-Z0-9]{1,6}")), 0..4),
                      sips in any::<bool>()) {
        let u = sip::Uri {
            scheme: if sips { sip::Scheme::Sips } else { sip::Scheme::Sip },
            user: user.clone(),
            password: None,
            host: host.clone(),
            port,
            params,
            headers: vec![],
        };
        let text = u.to_string();
        let back = sip::parse_uri(&text).unwrap();
        prop_assert_eq!(&back, &u);
        prop_assert!(back.equivalent(&u));
        // Host case never matters; key follows equivalence.
        let upper = sip::Uri { host: host.to_ascii_uppercase(), ..u.clone() };
        prop_assert!(upper.equivalent(&u));
        prop_assert_eq!(upper.key(), u.key());
        // An explicit port never equals an absent one.
        if port.is_none() {
            let with_port = sip::Uri { port: Some(5060), ..u.clone() };
            prop_assert!(!with_port.equivalent(&u));
        }
    }

    #[test]
    fn tel_separators_ignored(digits in "[0-9]{3,12}", seps in proptest::collection::vec(prop_oneof![Just("-"), Just("."), Just("(")], 0..4)) {
        let plain = sip::parse_uri(&format!("tel:+{digits}")).unwrap();
        let mut decorated = String::from("tel:+");
        for (i, c) in digits.chars().enumerate() {
            decorated.push(c);
            if let Some(s) = seps.get(i) { decorated.push_str(s); }
        }
        let decorated = sip::parse_uri(&decorated).unwrap();
        prop_assert!(plain.equivalent(&decorated));
        prop_assert_eq!(plain.key(), decorated.key());
    }

    #[test]
    fn privacy_id_anywhere(before in proptest::collection::vec("header|session|user|critical|none", 0..3),
                           after in proptest::collection::vec("header|session|user|critical", 0..3),
                           id in "[iI][dD]", ws in "[ \t]{0,2}") {
        let mut values = before.clone();
        values.push(format!("{ws}{id}{ws}"));
        values.extend(after.clone());
        prop_assert!(sip::privacy_requests_id(&values.join(";")));
        let mut without = before;
        without.extend(after);
        prop_assert!(!sip::privacy_requests_id(&without.join(";")));
    }
}
