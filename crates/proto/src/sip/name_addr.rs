//! `name-addr / addr-spec` followed by header parameters, as in From, To, Contact and
//! P-Asserted-Identity (RFC 3261 §20.10, §25.1; RFC 3325 §9.1).

use super::lex::{
    after, check_uri_text, is_lws, is_token_char, parse_header_params, parse_quoted,
    split_top_level, trim_lws,
};
use super::quote::try_quote_display_name;
use super::SipError;

/// One parsed name-addr (or addr-spec) with its header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Unescaped: a quoted-string with its `\`-pairs decoded (inner whitespace kept exactly), or
    /// unquoted token words joined by single spaces. `None` when there is no display name;
    /// `Some("")` for `""`.
    pub display_name: Option<String>,
    /// The URI text as written between `<` and `>` (or the addr-spec), not decoded. Checked to have
    /// a scheme and no whitespace/control characters; parse it with [`super::parse_uri`].
    pub uri: String,
    /// Header parameters after the address (`tag`, `isfocus`, `expires`, …), names and values as
    /// written (a quoted value keeps its quotes). Compare names case-insensitively.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// The value of header parameter `name` (case-insensitive): `Some(None)` for a flag such as
    /// `isfocus`, `None` when absent.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    /// Serialises as a header value: `"name" <uri>;p=v`, always in the name-addr form (so URI
    /// parameters can never be mistaken for header parameters). Refuses anything that could
    /// break the header: control characters in the display name, a URI that fails the checks of
    /// [`parse_name_addr`], parameter names that are not tokens, values with controls, LWS, `;`,
    /// `,` or unbalanced quotes.
    pub fn to_header_value(&self) -> Result<String, SipError> {
        let mut out = format_name_addr(self.display_name.as_deref(), &self.uri)?;
        for (name, value) in &self.params {
            if name.is_empty() || !name.chars().all(is_token_char) {
                return Err(SipError::BadParam);
            }
            out.push(';');
            out.push_str(name);
            if let Some(v) = value {
                check_param_value(v)?;
                out.push('=');
                out.push_str(v);
            }
        }
        Ok(out)
    }
}

fn check_param_value(v: &str) -> Result<(), SipError> {
    if v.chars().any(char::is_control) {
        return Err(SipError::ControlCharacter);
    }
    if v.starts_with('"') {
        // A quoted value must be exactly one quoted-string.
        let len = super::lex::quoted_len(v)?;
        return if len == v.len() {
            Ok(())
        } else {
            Err(SipError::BadParam)
        };
    }
    if v.is_empty()
        || v.chars()
            .any(|c| is_lws(c) || matches!(c, ';' | ',' | '"' | '<' | '>'))
    {
        return Err(SipError::BadParam);
    }
    Ok(())
}

/// Composes `"display" <uri>` (or `<uri>` without a display name). Refuses a display name with
/// control characters ([`try_quote_display_name`]) and a URI that would not parse back.
pub fn format_name_addr(display_name: Option<&str>, uri: &str) -> Result<String, SipError> {
    check_uri_text(uri)?;
    Ok(match display_name {
        Some(d) => format!("{} <{uri}>", try_quote_display_name(d)?),
        None => format!("<{uri}>"),
    })
}

/// Parses one From/To/Contact/P-Asserted-Identity value.
///
/// Accepted forms (leading/trailing LWS tolerated):
/// `"Bob \"B\" Smith" <sip:a@b>;tag=x`, `"x"<sip:a@b>`, `Bob Smith <sip:a@b>`, `<sip:a@b>`, and a
/// bare addr-spec `sip:a@b;tag=x`, where — per RFC 3261 §20.10 — everything after the first `;`
/// is a header parameter, not a URI parameter.
///
/// Unquoted display-name words may contain non-ASCII characters besides `token` characters:
/// strictly not allowed, but sent by real clients and harmless.
pub fn parse_name_addr(value: &str) -> Result<NameAddr, SipError> {
    let s = trim_lws(value);
    if s.is_empty() {
        return Err(SipError::Empty);
    }
    if s.starts_with('"') {
        let (name, rest) = parse_quoted(s)?;
        let rest = trim_lws(rest);
        if !rest.starts_with('<') {
            return Err(match rest.chars().next() {
                Some(c) => SipError::UnexpectedChar(c),
                None => SipError::EmptyUri,
            });
        }
        return angle_and_params(Some(name), rest);
    }
    if s.starts_with('<') {
        return angle_and_params(None, s);
    }
    // Either `token words <uri>` or an addr-spec.
    if let Some(lt) = s.find('<') {
        let words = s.get(..lt).unwrap_or("");
        if words.chars().all(|c| is_lws(c) || is_display_word_char(c)) {
            let name = words
                .split(is_lws)
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            return angle_and_params(Some(name), after(s, lt));
        }
    }
    // addr-spec: the URI ends at the first `;` (§20.10: a URI with `;`, `,` or `?` must be in <>).
    let end = s.find(';').unwrap_or(s.len());
    let uri = trim_lws(s.get(..end).unwrap_or(""));
    check_uri_text(uri)?;
    if uri.contains(['?', ',']) {
        return Err(SipError::UnexpectedChar(if uri.contains('?') {
            '?'
        } else {
            ','
        }));
    }
    let params = parse_header_params(after(s, end))?;
    Ok(NameAddr {
        display_name: None,
        uri: uri.to_string(),
        params,
    })
}

fn is_display_word_char(c: char) -> bool {
    is_token_char(c) || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
}

/// `s` starts with `<`.
fn angle_and_params(display_name: Option<String>, s: &str) -> Result<NameAddr, SipError> {
    let inner_and_rest = after(s, 1);
    let gt = inner_and_rest
        .find('>')
        .ok_or(SipError::UnterminatedAngle)?;
    let uri = inner_and_rest.get(..gt).unwrap_or("");
    check_uri_text(uri)?;
    let params = parse_header_params(after(inner_and_rest, gt + 1))?;
    Ok(NameAddr {
        display_name,
        uri: uri.to_string(),
        params,
    })
}

/// Parses a comma-separated list of name-addr/addr-spec values (P-Asserted-Identity, RFC 3325
/// §9.1). Commas inside quoted strings or `<...>` do not split. Empty elements (`a, ,b`) are
/// skipped as RFC 3261 §7.3.1 list syntax allows; a list with no element at all is
/// [`SipError::Empty`]. Any malformed element fails the whole list.
pub fn parse_name_addr_list(value: &str) -> Result<Vec<NameAddr>, SipError> {
    let mut out = Vec::new();
    for element in split_top_level(value, ',') {
        if trim_lws(element).is_empty() {
            continue;
        }
        out.push(parse_name_addr(element)?);
    }
    if out.is_empty() {
        return Err(SipError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn na(d: Option<&str>, uri: &str, params: &[(&str, Option<&str>)]) -> NameAddr {
        NameAddr {
            display_name: d.map(str::to_string),
            uri: uri.into(),
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn quoted_with_escapes_and_tag() {
        assert_eq!(
            parse_name_addr(r#""Bob \"B\" Smith" <sip:a@b>;tag=x"#).unwrap(),
            na(Some(r#"Bob "B" Smith"#), "sip:a@b", &[("tag", Some("x"))])
        );
    }

    #[test]
    fn token_words() {
        assert_eq!(
            parse_name_addr("Bob   Smith <sip:a@b>").unwrap(),
            na(Some("Bob Smith"), "sip:a@b", &[])
        );
        assert_eq!(
            parse_name_addr("Bjørn <sip:a@b>")
                .unwrap()
                .display_name
                .as_deref(),
            Some("Bjørn")
        );
    }

    #[test]
    fn bare_angle_and_no_space() {
        assert_eq!(
            parse_name_addr("<sip:a@b>").unwrap(),
            na(None, "sip:a@b", &[])
        );
        assert_eq!(
            parse_name_addr(r#""x"<sip:a@b>"#).unwrap(),
            na(Some("x"), "sip:a@b", &[])
        );
        assert_eq!(
            parse_name_addr(" \t\"x\" \r\n <sip:a@b> ;tag=1 ")
                .unwrap()
                .tag(),
            Some("1")
        );
    }

    #[test]
    fn addr_spec_params_are_header_params() {
        let v = parse_name_addr("sip:a@b;tag=x").unwrap();
        assert_eq!(v, na(None, "sip:a@b", &[("tag", Some("x"))]));
        assert_eq!(
            parse_name_addr("tel:+15551234567").unwrap().uri,
            "tel:+15551234567"
        );
    }

    #[test]
    fn uri_params_stay_inside_angles() {
        let v = parse_name_addr("<sip:bookclub@im.example.net;transport=tcp>;isfocus").unwrap();
        assert_eq!(v.uri, "sip:bookclub@im.example.net;transport=tcp");
        assert_eq!(v.param("ISFOCUS"), Some(None));
    }

    #[test]
    fn anonymous_from_of_the_cr() {
        let v =
            parse_name_addr("\"User_Input_Name\" <sip:anonymous@anonymous.invalid>;tag=9fxced76sl")
                .unwrap();
        assert_eq!(v.display_name.as_deref(), Some("User_Input_Name"));
        assert_eq!(v.uri, "sip:anonymous@anonymous.invalid");
        assert_eq!(v.tag(), Some("9fxced76sl"));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_name_addr("  "), Err(SipError::Empty));
        assert_eq!(
            parse_name_addr("\"Bob <sip:a@b>"),
            Err(SipError::UnterminatedQuote)
        );
        assert_eq!(
            parse_name_addr("Bob <sip:a@b"),
            Err(SipError::UnterminatedAngle)
        );
        assert_eq!(parse_name_addr("<>"), Err(SipError::EmptyUri));
        assert_eq!(parse_name_addr("\"Bob\""), Err(SipError::EmptyUri));
        assert!(parse_name_addr("\"Bob\" sip:a@b").is_err());
        assert!(parse_name_addr("<sip:a@b> junk").is_err());
        assert!(parse_name_addr("<nocolon>").is_err());
        assert!(parse_name_addr("<sip:a b>").is_err());
        assert!(parse_name_addr("Bob, Al <sip:a@b>").is_err());
    }

    #[test]
    fn lists() {
        let l = parse_name_addr_list(r#""Doe, John" <sip:jdoe@example.com>, <tel:+15551234567>"#)
            .unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].display_name.as_deref(), Some("Doe, John"));
        assert_eq!(l[1].uri, "tel:+15551234567");
        assert_eq!(parse_name_addr_list("sip:a@b, sip:c@d").unwrap().len(), 2);
        assert_eq!(parse_name_addr_list(" , "), Err(SipError::Empty));
        assert!(parse_name_addr_list("<sip:a@b>, <bad").is_err());
    }

    #[test]
    fn compose_refuses_injection() {
        assert_eq!(
            format_name_addr(Some("a\r\nVia: x"), "sip:a@b"),
            Err(SipError::ControlCharacter)
        );
        assert!(format_name_addr(None, "sip:a@b>\r\nX: y").is_err());
        let v = na(Some(r#"Q "x" \ y"#), "sip:a@b", &[("tag", Some("t1"))]);
        let s = v.to_header_value().unwrap();
        assert_eq!(s, r#""Q \"x\" \\ y" <sip:a@b>;tag=t1"#);
        assert_eq!(parse_name_addr(&s).unwrap(), v);
        assert!(na(None, "sip:a@b", &[("tag", Some("x\r\nY: z"))])
            .to_header_value()
            .is_err());
        assert!(na(None, "sip:a@b", &[("t ag", None)])
            .to_header_value()
            .is_err());
    }
}
