//! Media types (`Content-Type`, RFC 3261 §20.15) and `Accept` matching (§20.1).

use super::lex::{
    after, is_lws, is_token_char, parse_quoted, split_top_level, trim_lws, trim_lws_start,
};
use super::SipError;

/// A parsed media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Lower-cased.
    pub type_: String,
    /// Lower-cased.
    pub subtype: String,
    /// Names lower-cased; values unquoted (`\`-pairs decoded) and otherwise as written, since some
    /// values (`boundary`) are case-sensitive.
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// The first parameter called `name` (ASCII case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is `t/s` (ASCII case-insensitive; no wildcard logic).
    pub fn is(&self, t: &str, s: &str) -> bool {
        self.type_.eq_ignore_ascii_case(t) && self.subtype.eq_ignore_ascii_case(s)
    }
}

fn take_token(s: &str) -> (&str, &str) {
    let n = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    (s.get(..n).unwrap_or(""), after(s, n))
}

/// Parses `type "/" subtype *( ";" name "=" value )`, value a token or a quoted-string. LWS is
/// allowed around the separators (SIP's `SLASH`/`SEMI`/`EQUAL`); a trailing `;` is tolerated.
pub fn parse_media_type(s: &str) -> Result<MediaType, SipError> {
    let s = trim_lws(s);
    let (type_, rest) = take_token(s);
    let rest = trim_lws_start(rest)
        .strip_prefix('/')
        .ok_or(SipError::BadMediaType)?;
    let (subtype, mut rest) = take_token(trim_lws_start(rest));
    if type_.is_empty() || subtype.is_empty() {
        return Err(SipError::BadMediaType);
    }
    let mut params = Vec::new();
    loop {
        rest = trim_lws_start(rest);
        if rest.is_empty() {
            break;
        }
        rest = trim_lws_start(rest.strip_prefix(';').ok_or(SipError::BadMediaType)?);
        if rest.is_empty() {
            break;
        }
        let (name, r) = take_token(rest);
        if name.is_empty() {
            return Err(SipError::BadMediaType);
        }
        let r = trim_lws_start(
            trim_lws_start(r)
                .strip_prefix('=')
                .ok_or(SipError::BadMediaType)?,
        );
        let (value, r) = if r.starts_with('"') {
            parse_quoted(r)?
        } else {
            let n = r.find(|c: char| is_lws(c) || c == ';').unwrap_or(r.len());
            let v = r.get(..n).unwrap_or("");
            if v.is_empty() || v.chars().any(|c| c.is_control() || c == '"') {
                return Err(SipError::BadMediaType);
            }
            (v.to_string(), after(r, n))
        };
        params.push((name.to_ascii_lowercase(), value));
        rest = r;
    }
    Ok(MediaType {
        type_: type_.to_ascii_lowercase(),
        subtype: subtype.to_ascii_lowercase(),
        params,
    })
}

/// Whether an accept list allows `type_/subtype`: the one matching rule for SIP `Accept` header
/// fields, MSRP `a=accept-types` and `a=accept-wrapped-types` (the relay's routing and the SDP
/// offer check both ask here).
///
/// `accept_values` are the values of all Accept header fields of the request (each may itself be
/// a comma list), or the entries of an SDP accept list. Ranges `*/*`, `type/*` and exact types are
/// understood, and a bare `*` (RFC 4975 §8.6 `format-list` entry) as `*/*`; the most specific
/// matching range decides (RFC 7231 §5.3.2 precedence, so `*/*, multipart/mixed;q=0` excludes
/// multipart/mixed), and it allows the type unless its `q` is zero. Parameters other than `q` are
/// ignored; unparseable ranges are skipped.
///
/// An **empty slice** means no Accept header at all (or no `a=accept-wrapped-types`): this
/// returns `true` and leaves the decision to the caller (RFC 3261 §20.1 then assumes
/// `application/sdp`, which a caller asking about anything else may want to treat differently).
/// Accept header fields that are present but empty mean "no formats are acceptable" (§20.1), so
/// `&[""]` returns `false`.
pub fn accept_allows<S: AsRef<str>>(accept_values: &[S], type_: &str, subtype: &str) -> bool {
    if accept_values.is_empty() {
        return true;
    }
    // (specificity, allowed) of the best match so far.
    let mut best: Option<(u8, bool)> = None;
    for value in accept_values {
        for range in split_top_level(value.as_ref(), ',') {
            let parsed = if range.trim() == "*" {
                parse_media_type("*/*")
            } else {
                parse_media_type(range)
            };
            let Ok(m) = parsed else {
                continue;
            };
            let specificity = if m.type_ == "*" && m.subtype == "*" {
                0
            } else if m.subtype == "*" && m.type_.eq_ignore_ascii_case(type_) {
                1
            } else if m.is(type_, subtype) {
                2
            } else {
                continue;
            };
            let allowed = !m.param("q").is_some_and(q_is_zero);
            best = match best {
                Some((s, a)) if s > specificity => Some((s, a)),
                Some((s, a)) if s == specificity => Some((s, a || allowed)),
                _ => Some((specificity, allowed)),
            };
        }
    }
    best.is_some_and(|(_, allowed)| allowed)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`: zero iff "0", "0.", "0.0"…
fn q_is_zero(q: &str) -> bool {
    let q = q.trim();
    match q.strip_prefix('0') {
        Some("") => true,
        Some(frac) => frac
            .strip_prefix('.')
            .is_some_and(|d| d.len() <= 3 && d.chars().all(|c| c == '0')),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn parses_params() {
        let m = parse_media_type("Multipart/Mixed ; Boundary=\"ca7f3a\"").unwrap();
        assert!(m.is("multipart", "mixed"));
        assert_eq!(m.type_, "multipart");
        assert_eq!(m.param("boundary"), Some("ca7f3a"));
        let m = parse_media_type("text/plain;charset=UTF-8;").unwrap();
        assert_eq!(m.params, vec![("charset".to_string(), "UTF-8".to_string())]);
        let m = parse_media_type("multipart/mixed;boundary=a\"b").map(|_| ());
        assert_eq!(m, Err(SipError::BadMediaType));
        assert!(parse_media_type("message/cpim").unwrap().params.is_empty());
        assert!(parse_media_type("text").is_err());
        assert!(parse_media_type("/plain").is_err());
        assert!(parse_media_type("text/").is_err());
        assert!(parse_media_type("text/plain x").is_err());
        assert!(parse_media_type("text/plain;charset").is_err());
        assert!(parse_media_type("text/plain;charset=").is_err());
    }

    #[test]
    fn accept() {
        let none: [&str; 0] = [];
        assert!(accept_allows(&none, "multipart", "mixed"));
        // SDP accept lists (RFC 4975 §8.6): a bare `*`, `type/*`, parameters ignored.
        assert!(accept_allows(&["*"], "a", "b"));
        assert!(accept_allows(&[" * "], "a", "b"));
        assert!(accept_allows(&["message/*"], "message", "cpim"));
        assert!(accept_allows(
            &["text/plain;charset=utf-8"],
            "text",
            "plain"
        ));
        assert!(!accept_allows(&["text/plain"], "text", "html"));
        assert!(!accept_allows(&["text", "*/plain"], "text", "plain"));
        let owned = vec!["TEXT/PLAIN".to_string()];
        assert!(accept_allows(&owned, "text", "plain"));
        assert!(!accept_allows(&[""], "multipart", "mixed"));
        assert!(accept_allows(
            &["application/sdp, multipart/mixed"],
            "multipart",
            "mixed"
        ));
        assert!(accept_allows(
            &["application/sdp", "Multipart/*"],
            "multipart",
            "mixed"
        ));
        assert!(accept_allows(&["*/*"], "multipart", "mixed"));
        assert!(!accept_allows(&["application/sdp"], "multipart", "mixed"));
        assert!(!accept_allows(
            &["multipart/mixed;q=0"],
            "multipart",
            "mixed"
        ));
        assert!(!accept_allows(
            &["*/*, multipart/mixed;q=0.000"],
            "multipart",
            "mixed"
        ));
        assert!(accept_allows(
            &["*/*;q=0, multipart/mixed;q=0.5"],
            "multipart",
            "mixed"
        ));
        assert!(accept_allows(
            &["multipart/mixed;q=0.01"],
            "multipart",
            "mixed"
        ));
        assert!(!accept_allows(
            &["garbage, text/plain"],
            "multipart",
            "mixed"
        ));
    }
}
