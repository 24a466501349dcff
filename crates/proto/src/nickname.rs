//! Display names and nicknames: validation and clash detection (SPEC.md §7).
//!
//! Two participants must not be able to appear under the same name (RFC 7701 §11: a nickname
//! takeover misroutes private messages; RFC 4575 §5.6). "The same" is decided by
//! [`clash_key`], which goes beyond RFC 8266 comparison: RFC 8266 §4 leaves confusable
//! characters to a separate safeguard, and `B0b` next to `Bob` is exactly the attack, so the key
//! also folds Unicode confusables (UTS #39 skeleton).
//!
//! The key is a *total* function: it never fails, whatever the input, so the alias table can
//! always answer "taken or free". Inputs that PRECIS refuses (controls, unassigned code points)
//! are still keyed by an equivalent pipeline; whether such a name may be *used* is
//! [`validate_display_name`]'s business.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::borrow::Cow;
use std::fmt;

use precis_core::profile::{stabilize, Profile, Rules};
use precis_profiles::Nickname;

/// Why a display name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The empty string.
    Empty,
    /// Only spaces and invisible characters: nothing would be shown (RFC 8266 §2.2: the enforced
    /// result must not be empty).
    Blank,
    /// More than `max` Unicode scalar values.
    TooLong { chars: usize, max: usize },
    /// A `Cc` control character (C0 including TAB/CR/LF, DEL, C1): never part of a name, and the
    /// source of header injection if echoed.
    ControlCharacter,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("empty name"),
            NameError::Blank => f.write_str("name has no visible characters"),
            NameError::TooLong { chars, max } => {
                write!(f, "name too long ({chars} characters, at most {max})")
            }
            NameError::ControlCharacter => f.write_str("control character in name"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a display name before it is admitted: non-empty, at most `max_chars` Unicode scalar
/// values (so 64 is accepted and 65 refused when `max_chars` is 64, whatever the UTF-8 length),
/// no `Cc` control character, and something visible left after RFC 8266 space handling and
/// removal of invisible characters.
pub fn validate_display_name(name: &str, max_chars: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    let chars = name.chars().count();
    if chars > max_chars {
        return Err(NameError::TooLong {
            chars,
            max: max_chars,
        });
    }
    if clash_key(name).is_empty() {
        return Err(NameError::Blank);
    }
    Ok(())
}

/// Whether two names clash (equal [`clash_key`]s).
pub fn same_nickname(a: &str, b: &str) -> bool {
    clash_key(a) == clash_key(b)
}

/// The key under which names are compared: two names clash iff their keys are equal.
///
/// Pipeline:
/// 1. drop invisible characters (`Default_Ignorable_Code_Point`: zero-width spaces and joiners,
///    bidi embeddings/overrides/isolates, BOM, soft hyphen, word joiner, variation selectors, …)
///    and control characters, except that whitespace controls (TAB, LF, …) become spaces;
/// 2. the RFC 8266 comparison form: non-ASCII spaces → U+0020, trim, collapse runs, lower-case,
///    NFKC, repeated until stable. Computed with `precis-profiles`' Nickname rules; when PRECIS
///    would refuse the string (a code point FreeformClass disallows, or no fixpoint in 3
///    passes), the same rules run without the code-point check, for at most 4 passes;
/// 3. the UTS #39 confusable skeleton (`0`→`O`, `1`→`l`, Cyrillic `о`→`o`, `m`→`rn`, …);
/// 4. step 2 again, because the skeleton maps to mixed-case prototypes and NFD.
///
/// Consequences worth knowing: `σ` and `ς` stay distinct (RFC 8266 keeps them apart, and the
/// skeleton maps `σ` to Latin `o` but leaves `ς` alone), yet `σ` now clashes with `o`, so `bσb`
/// clashes with `bob`; `rn` and `m` clash; `1` and `l` clash but `1` and `i` do not. Over-matching
/// only ever refuses (renumbers) a name, never lets two look-alikes in.
pub fn clash_key(name: &str) -> String {
    let visible: String = name
        .chars()
        .filter_map(|c| {
            if is_default_ignorable(c) {
                None
            } else if c.is_control() {
                c.is_whitespace().then_some(' ')
            } else {
                Some(c)
            }
        })
        .collect();
    let form = comparison_form(&visible);
    let skeleton: String = unicode_security::skeleton(&form).collect();
    own_rules(&skeleton)
}

/// RFC 8266 §2.4 comparison form, via PRECIS when it accepts the string.
fn comparison_form(s: &str) -> String {
    let n = Nickname::new();
    let precis = stabilize(s, |x| {
        let x = n.prepare(x)?;
        let x = n.additional_mapping_rule(x)?;
        let x = n.case_mapping_rule(x)?;
        n.normalization_rule(x)
    });
    match precis {
        Ok(form) => form.into_owned(),
        Err(_) => own_rules(s),
    }
}

/// The Nickname mapping rules without the FreeformClass code-point check, repeated until stable
/// (at most 4 passes; the last result is kept if it never stabilises — it must be total).
fn own_rules(s: &str) -> String {
    let n = Nickname::new();
    let mut cur = s.to_string();
    for _ in 0..4 {
        let next = one_pass(&n, &cur);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

fn one_pass(n: &Nickname, x: &str) -> String {
    let a = n
        .additional_mapping_rule(x)
        .map_or_else(|_| x.to_string(), Cow::into_owned);
    let b = match n.case_mapping_rule(a.as_str()) {
        Ok(c) => c.into_owned(),
        Err(_) => a.to_lowercase(),
    };
    match n.normalization_rule(b.as_str()) {
        Ok(c) => c.into_owned(),
        Err(_) => b,
    }
}

/// `Default_Ignorable_Code_Point` (Unicode DerivedCoreProperties). The same table that
/// `unicode-security` uses internally, which it does not export.
fn is_default_ignorable(c: char) -> bool {
    const RANGES: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x034F, 0x034F),
        (0x061C, 0x061C),
        (0x115F, 0x1160),
        (0x17B4, 0x17B5),
        (0x180B, 0x180F),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x206F),
        (0x3164, 0x3164),
        (0xFE00, 0xFE0F),
        (0xFEFF, 0xFEFF),
        (0xFFA0, 0xFFA0),
        (0xFFF0, 0xFFF8),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0000, 0xE0FFF),
    ];
    let c = u32::from(c);
    RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8266_and_spec_examples_clash() {
        let bob = clash_key("bob");
        for v in [
            "Bob",
            "bob",
            "ＢＯＢ",
            "  Bob  ",
            "B0b",
            "b\u{043E}b",
            "bob\u{200B}",
            "\u{202E}bob",
            "b\u{00AD}ob",
            "\u{FEFF}BOB\u{2066}",
            "bob\t",
        ] {
            assert_eq!(clash_key(v), bob, "{v:?}");
            assert!(same_nickname(v, "Bob"));
        }
        assert!(same_nickname("Bob Smith", "bob\u{00A0}smith"));
        assert!(same_nickname("Bob   Smith", "bob smith"));
        assert!(same_nickname("Richard \u{2163}", "richard iv"));
        assert!(
            same_nickname("BOY", "B0Y"),
            "confusables fold, beyond RFC 8266"
        );
        assert!(same_nickname("Alice the great", "alice the great"));
    }

    #[test]
    fn distinct_names_do_not_clash() {
        assert!(!same_nickname("alice", "bob"));
        assert!(!same_nickname("bob-2", "bob"));
        assert!(!same_nickname("bob-2", "bob-3"));
        assert!(!same_nickname("Bob Smith", "BobSmith"));
        assert!(!same_nickname("anonymous", "anonymous2"));
    }

    #[test]
    fn what_the_skeleton_does_to_sigma() {
        // RFC 8266 keeps σ and ς apart; after the skeleton they still differ, but σ is Latin o.
        assert!(!same_nickname("\u{03C3}", "\u{03C2}"));
        assert!(same_nickname("b\u{03C3}b", "bob"));
        assert!(same_nickname("rn", "m"));
        assert!(same_nickname("B1LL", "blll"));
    }

    #[test]
    fn total_on_odd_input() {
        assert_eq!(clash_key(""), "");
        assert_eq!(clash_key("   \u{200B} "), "");
        let _ = clash_key("\u{0}\u{1F}\u{7F}\u{85}\u{E0001}\u{10FFFF}\u{FFFF}");
        let _ = clash_key(&"\u{FDFA}".repeat(100));
    }

    #[test]
    fn validation() {
        let max = 64;
        assert_eq!(validate_display_name(&"é".repeat(64), max), Ok(()));
        assert_eq!(
            validate_display_name(&"é".repeat(65), max),
            Err(NameError::TooLong { chars: 65, max: 64 })
        );
        assert_eq!(validate_display_name("", max), Err(NameError::Empty));
        assert_eq!(validate_display_name("   ", max), Err(NameError::Blank));
        assert_eq!(
            validate_display_name("\u{200B}", max),
            Err(NameError::Blank)
        );
        for c in ['\t', '\r', '\n', '\u{0}', '\u{7F}', '\u{85}', '\u{9F}'] {
            assert_eq!(
                validate_display_name(&format!("a{c}b"), max),
                Err(NameError::ControlCharacter),
                "{c:?}"
            );
        }
        assert_eq!(validate_display_name("bob-2", max), Ok(()));
        assert_eq!(validate_display_name("Zoë 😀", max), Ok(()));
    }
}
