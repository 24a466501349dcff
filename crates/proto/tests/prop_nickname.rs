//! Property tests for `nickname`.
use chat_alias_proto::nickname::{
    clash_key, code_point_label, first_disallowed, same_nickname, validate_display_name, NameError,
};
use proptest::prelude::*;

proptest! {
    #[test]
    fn total(s in any::<String>(), max in 0usize..100) {
        let _ = clash_key(&s);
        let _ = validate_display_name(&s, max);
    }

    #[test]
    fn ascii_case_and_outer_spaces_never_matter(s in "[a-zA-Z0-9 _.-]{1,30}", pad in "[ \u{00A0}\u{3000}]{0,3}") {
        prop_assert!(same_nickname(&s, &s.to_ascii_uppercase()));
        prop_assert!(same_nickname(&s, &s.to_ascii_lowercase()));
        let padded = format!("{pad}{s}{pad}");
        prop_assert!(same_nickname(&s, &padded));
    }

    #[test]
    fn invisible_characters_never_matter(s in "[a-zA-Z ]{1,20}", at in 0usize..20,
                                         inv in prop_oneof![Just('\u{200B}'), Just('\u{200D}'), Just('\u{202E}'), Just('\u{2066}'), Just('\u{FEFF}'), Just('\u{00AD}'), Just('\u{2060}')]) {
        let mut t: Vec<char> = s.chars().collect();
        t.insert(at.min(t.len()), inv);
        let t: String = t.into_iter().collect();
        prop_assert_eq!(clash_key(&s), clash_key(&t));
    }

    #[test]
    fn suffixes_keep_names_apart(s in "[a-z]{1,10}", n in 2u32..1000) {
        let suffixed = format!("{s}-{n}");
        prop_assert!(!same_nickname(&s, &suffixed));
    }

    #[test]
    fn length_counts_scalar_values(c in any::<char>().prop_filter("visible", |c| !c.is_control() && !c.is_whitespace()), max in 1usize..80) {
        let ok = c.to_string().repeat(max);
        let long = c.to_string().repeat(max + 1);
        let too_long = matches!(validate_display_name(&ok, max), Err(NameError::TooLong { .. }));
        prop_assert!(!too_long);
        prop_assert_eq!(validate_display_name(&long, max), Err(NameError::TooLong { chars: max + 1, max }));
    }

    /// Any name holding a code point the RFC 8266 Nickname profile disallows is refused, and the
    /// refusal names that code point (the first one: the rest of the name is allowed).
    #[test]
    fn a_disallowed_code_point_is_refused_and_named(
        s in "[a-zA-Z0-9 ._-]{0,30}",
        at in 0usize..31,
        bad in prop_oneof![
            (0u32..0x20),
            (0x7Fu32..0xA0),
            Just(0xADu32),
            (0x200Bu32..0x2010),
            (0x202Au32..0x202F),
            (0x2060u32..0x2070),
            Just(0xFEFFu32),
            (0xFE00u32..0xFE10),
            (0xE000u32..0xF900),
            (0xFDD0u32..0xFDF0),
            Just(0x0378u32),
            (0xE0000u32..0xE0080),
        ],
    ) {
        let bad = char::from_u32(bad).unwrap();
        let mut t: Vec<char> = s.chars().collect();
        t.insert(at.min(t.len()), bad);
        let t: String = t.into_iter().collect();
        prop_assert_eq!(validate_display_name(&t, 64), Err(NameError::Disallowed(bad)));
        let label = code_point_label(bad);
        prop_assert!(label.starts_with(&format!("U+{:04X} ", u32::from(bad))), "{}", label);
        prop_assert!(label.is_ascii() && !label.chars().any(|c| c.is_ascii_control()), "{}", label);
        let shown = NameError::Disallowed(bad).to_string();
        prop_assert!(shown.contains(&label));
    }

    /// Whatever the input, a name that passes contains no disallowed code point, and a reported one
    /// is in the name.
    #[test]
    fn refusal_is_consistent(s in any::<String>()) {
        match first_disallowed(&s) {
            Some(c) => {
                prop_assert!(s.contains(c));
                prop_assert!(validate_display_name(&s, usize::MAX).is_err());
            }
            None => prop_assert!(!matches!(validate_display_name(&s, usize::MAX), Err(NameError::Disallowed(_)))),
        }
    }
}
