//! Property tests for `nickname`.
use chat_alias_proto::nickname::{clash_key, same_nickname, validate_display_name, NameError};
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
}
