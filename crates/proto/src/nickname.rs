//! Display names and nicknames: validation and clash detection (RFC 8266 Nickname profile, RFC 8264; look-alikes by the Unicode confusable skeleton, UTS #39).
//!
//! Two participants must not be able to appear under the same name (RFC 7701 §11: a nickname
//! takeover misroutes private messages; RFC 4575 §5.6). "The same" is decided by
//! [`clash_key`], which goes beyond RFC 8266 comparison: RFC 8266 §4 leaves confusable
//! characters to a separate safeguard, and `B0b` next to `Bob` is exactly the attack, so the key
//! also folds Unicode confusables (UTS #39 skeleton).
//!
//! Which names may be used at all is [`validate_display_name`]'s business: RFC 8266 enforcement,
//! which refuses (never strips) every code point the FreeformClass of RFC 8264 disallows —
//! controls, default-ignorable code points such as the bidi overrides that make `"\u{202E}ecila"`
//! render as "alice", unassigned code points — and names the first one, so that a refusal can say
//! what was wrong ([`code_point_label`]). Spaces are not refused: RFC 8266 §2.2 maps them.
//!
//! The key is a *total* function: it never fails, whatever the input, so the alias table can
//! always answer "taken or free". Every name is validated before it reaches the key, so the key
//! never sees a refused code point; if one ever did, the key still folds invisible characters away,
//! which can only make names clash more, never let a look-alike in.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::borrow::Cow;
use std::fmt;

use precis_core::profile::{stabilize, Profile, Rules};
use precis_core::{DerivedPropertyValue, FreeformClass, StringClass};
use precis_profiles::Nickname;
use unicode_script::{Script, UnicodeScript};

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
    /// A code point the RFC 8266 Nickname profile disallows (RFC 8264 FreeformClass: controls,
    /// default-ignorable and other format characters, private use, unassigned, …): the first one
    /// in the name.
    Disallowed(char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("empty name"),
            NameError::Blank => f.write_str("name has no visible characters"),
            NameError::TooLong { chars, max } => {
                write!(f, "name too long ({chars} characters, at most {max})")
            }
            NameError::Disallowed(c) => write!(f, "not allowed: {}", code_point_label(*c)),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a display name before it is admitted: non-empty, at most `max_chars` Unicode scalar
/// values (so 64 is accepted and 65 refused when `max_chars` is 64, whatever the UTF-8 length),
/// no code point that RFC 8266 disallows ([`first_disallowed`]), and something visible left after
/// RFC 8266 space handling. Checked in that order; the length first, so that no more than
/// `max_chars` characters are ever examined.
pub fn validate_display_name(name: &str, max_chars: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let chars = name.chars().count();
    if chars > max_chars {
        return Err(NameError::TooLong {
            chars,
            max: max_chars,
        });
    }
    if let Some(c) = first_disallowed(name) {
        return Err(NameError::Disallowed(c));
    }
    if clash_key(name).is_empty() {
        return Err(NameError::Blank);
    }
    Ok(())
}

/// The first code point of `name` that the RFC 8266 Nickname profile refuses, if any: the
/// FreeformClass of RFC 8264 §4.3 (PVALID and the class's allowed categories pass; CONTEXTJ and
/// CONTEXTO code points pass only where their context rule of RFC 5892 Appendix A holds).
///
/// `precis-core` derives the classes from Unicode 6.3, so everything assigned since (most emoji,
/// recent scripts) would come out "unassigned". RFC 8264 §11 asks for the derivation over the
/// current Unicode version instead; for those code points this uses a current table: a code point
/// with a script (not `Unknown`, which covers unassigned, private use and noncharacters) that is
/// not a format character passes, as every other category added since 6.3 is one the class allows.
pub fn first_disallowed(name: &str) -> Option<char> {
    let ff = FreeformClass::default();
    // Code points that are assigned and allowed today but unknown to the 6.3 tables are replaced by
    // an ASCII letter, so that the class check (and its context rules) sees the rest as it is.
    let mut newer = false;
    let probe: String = name
        .chars()
        .map(|c| {
            if ff.get_value_from_char(c) == DerivedPropertyValue::Unassigned
                && assigned_since_6_3(c)
            {
                newer = true;
                'x'
            } else {
                c
            }
        })
        .collect();
    let probe = if newer { probe.as_str() } else { name };
    let position = match ff.allows(probe) {
        Ok(()) => return None,
        Err(precis_core::Error::BadCodepoint(info)) => Some(info.position),
        Err(precis_core::Error::Unexpected(
            precis_core::UnexpectedError::ContextRuleNotApplicable(info)
            | precis_core::UnexpectedError::MissingContextRule(info),
        )) => Some(info.position),
        Err(_) => None,
    };
    // The reported position is an offset in chars, and the probe has the name's chars one for one.
    // Without one, the first code point the class does not allow outright is named.
    position
        .and_then(|at| name.chars().nth(at))
        .or_else(|| {
            name.chars().find(|&c| {
                !matches!(
                    ff.get_value_from_char(c),
                    DerivedPropertyValue::PValid | DerivedPropertyValue::SpecClassPval
                )
            })
        })
        .or_else(|| name.chars().next())
}

/// Assigned after Unicode 6.3 in a category the FreeformClass allows (see [`first_disallowed`]).
fn assigned_since_6_3(c: char) -> bool {
    // Format characters (Cf) assigned since 6.3 that are not default-ignorable.
    const NEW_FORMAT: &[(u32, u32)] = &[
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
    ];
    let cp = u32::from(c);
    c.script() != Script::Unknown
        && !c.is_control()
        && !is_default_ignorable(c)
        && !NEW_FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&cp))
}

/// `U+202E RIGHT-TO-LEFT OVERRIDE`: the code point and its Unicode name (for controls, their
/// formal alias), in ASCII only, so that it may go into a SIP reason phrase or an MSRP status
/// comment. Code points without a name get a description in angle brackets.
pub fn code_point_label(c: char) -> String {
    let cp = u32::from(c);
    let name = match unicode_names2::name(c) {
        Some(n) => n.to_string(),
        None => control_alias(c).map_or_else(
            || {
                if (0xE000..=0xF8FF).contains(&cp) || cp >= 0xF0000 {
                    "<private-use>".to_string()
                } else if (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE {
                    "<noncharacter>".to_string()
                } else if c.is_control() {
                    "<control>".to_string()
                } else {
                    "<unassigned>".to_string()
                }
            },
            str::to_string,
        ),
    };
    format!("U+{cp:04X} {name}")
}

/// The formal aliases of the control characters (Unicode NameAliases.txt, type `control`), which
/// have no character name of their own.
fn control_alias(c: char) -> Option<&'static str> {
    const C0: [&str; 32] = [
        "NULL",
        "START OF HEADING",
        "START OF TEXT",
        "END OF TEXT",
        "END OF TRANSMISSION",
        "ENQUIRY",
        "ACKNOWLEDGE",
        "ALERT",
        "BACKSPACE",
        "CHARACTER TABULATION",
        "LINE FEED",
        "LINE TABULATION",
        "FORM FEED",
        "CARRIAGE RETURN",
        "SHIFT OUT",
        "SHIFT IN",
        "DATA LINK ESCAPE",
        "DEVICE CONTROL ONE",
        "DEVICE CONTROL TWO",
        "DEVICE CONTROL THREE",
        "DEVICE CONTROL FOUR",
        "NEGATIVE ACKNOWLEDGE",
        "SYNCHRONOUS IDLE",
        "END OF TRANSMISSION BLOCK",
        "CANCEL",
        "END OF MEDIUM",
        "SUBSTITUTE",
        "ESCAPE",
        "INFORMATION SEPARATOR FOUR",
        "INFORMATION SEPARATOR THREE",
        "INFORMATION SEPARATOR TWO",
        "INFORMATION SEPARATOR ONE",
    ];
    const C1: [&str; 32] = [
        "PADDING CHARACTER",
        "HIGH OCTET PRESET",
        "BREAK PERMITTED HERE",
        "NO BREAK HERE",
        "INDEX",
        "NEXT LINE",
        "START OF SELECTED AREA",
        "END OF SELECTED AREA",
        "CHARACTER TABULATION SET",
        "CHARACTER TABULATION WITH JUSTIFICATION",
        "LINE TABULATION SET",
        "PARTIAL LINE FORWARD",
        "PARTIAL LINE BACKWARD",
        "REVERSE LINE FEED",
        "SINGLE SHIFT TWO",
        "SINGLE SHIFT THREE",
        "DEVICE CONTROL STRING",
        "PRIVATE USE ONE",
        "PRIVATE USE TWO",
        "SET TRANSMIT STATE",
        "CANCEL CHARACTER",
        "MESSAGE WAITING",
        "START OF GUARDED AREA",
        "END OF GUARDED AREA",
        "START OF STRING",
        "SINGLE GRAPHIC CHARACTER INTRODUCER",
        "SINGLE CHARACTER INTRODUCER",
        "CONTROL SEQUENCE INTRODUCER",
        "STRING TERMINATOR",
        "OPERATING SYSTEM COMMAND",
        "PRIVACY MESSAGE",
        "APPLICATION PROGRAM COMMAND",
    ];
    let cp = u32::from(c) as usize;
    match cp {
        0x00..=0x1F => C0.get(cp).copied(),
        0x7F => Some("DELETE"),
        0x80..=0x9F => C1.get(cp - 0x80).copied(),
        _ => None,
    }
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
            Err(NameError::Disallowed('\u{200B}'))
        );
        for c in ['\t', '\r', '\n', '\u{0}', '\u{7F}', '\u{85}', '\u{9F}'] {
            assert_eq!(
                validate_display_name(&format!("a{c}b"), max),
                Err(NameError::Disallowed(c)),
                "{c:?}"
            );
        }
        assert_eq!(validate_display_name("bob-2", max), Ok(()));
        assert_eq!(validate_display_name("Zoë 😀", max), Ok(()));
    }

    #[test]
    fn precis_refuses_and_names_the_first_disallowed_code_point() {
        let max = 64;
        let cases: &[(&str, char, &str)] = &[
            ("\u{202E}ecila", '\u{202E}', "U+202E RIGHT-TO-LEFT OVERRIDE"),
            ("\u{202E}2-bob", '\u{202E}', "U+202E RIGHT-TO-LEFT OVERRIDE"),
            ("bob\u{200B}", '\u{200B}', "U+200B ZERO WIDTH SPACE"),
            ("a\u{200D}b", '\u{200D}', "U+200D ZERO WIDTH JOINER"),
            (
                "a\u{2066}b\u{2069}",
                '\u{2066}',
                "U+2066 LEFT-TO-RIGHT ISOLATE",
            ),
            (
                "\u{FEFF}bob",
                '\u{FEFF}',
                "U+FEFF ZERO WIDTH NO-BREAK SPACE",
            ),
            ("a\u{2060}b", '\u{2060}', "U+2060 WORD JOINER"),
            ("b\u{00AD}ob", '\u{00AD}', "U+00AD SOFT HYPHEN"),
            ("x\ty", '\t', "U+0009 CHARACTER TABULATION"),
            ("x\u{85}y", '\u{85}', "U+0085 NEXT LINE"),
            ("x\u{7F}", '\u{7F}', "U+007F DELETE"),
            ("a\u{E000}", '\u{E000}', "U+E000 <private-use>"),
            ("a\u{0378}b", '\u{0378}', "U+0378 <unassigned>"),
            ("a\u{FFFF}", '\u{FFFF}', "U+FFFF <noncharacter>"),
            // The first one is named, not the first in some other order.
            (
                "ok\u{200F}\u{202E}",
                '\u{200F}',
                "U+200F RIGHT-TO-LEFT MARK",
            ),
        ];
        for &(name, c, label) in cases {
            assert_eq!(
                validate_display_name(name, max),
                Err(NameError::Disallowed(c)),
                "{name:?}"
            );
            assert_eq!(code_point_label(c), label);
            assert!(code_point_label(c).is_ascii());
        }
    }

    #[test]
    fn spaces_are_mapped_not_refused_and_newer_characters_pass() {
        let max = 64;
        for ok in [
            "  bob  ",
            "bob   smith",
            "\u{3000}bob\u{00A0}smith",
            "Zoë 😀",
            // Assigned after Unicode 6.3 (emoji 9.0 and 11.0): not "unassigned" today.
            "robot \u{1F916}",
            "\u{1F970}",
            "l\u{00B7}l", // MIDDLE DOT between two l: allowed by its context rule
        ] {
            assert_eq!(validate_display_name(ok, max), Ok(()), "{ok:?}");
        }
        // ... but not where the context rule fails.
        assert_eq!(
            validate_display_name("a\u{00B7}b", max),
            Err(NameError::Disallowed('\u{00B7}'))
        );
    }
}
