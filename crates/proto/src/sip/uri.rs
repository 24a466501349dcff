//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) with RFC 3261 §19.1.4 equivalence.
//!
//! Group membership and CPIM `To` checks compare URIs by equivalence, never by string equality:
//! `sip:Bob@Example.COM` and `sip:Bob@example.com` are the same address, `sip:bob@…` is not.

use std::fmt;
use std::str::FromStr;

use super::lex::{after, is_scheme, trim_lws};
use super::SipError;

/// A URI scheme. `Other` holds the scheme lower-cased; its URI is kept opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other(String),
}

impl Scheme {
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// A parsed URI.
///
/// * sip/sips: `user` (and `password`) are %-decoded, `host` is as written (IPv6 references keep
///   their brackets), `params`/`headers` are as written (not decoded).
/// * tel: the telephone number (`+1-555-123`, as written) is in `user`, `host` is empty, `params`
///   holds `;ext=`, `;phone-context=` etc.
/// * any other scheme: everything after `scheme:` is kept opaque in `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    pub user: Option<String>,
    /// The deprecated `user:password` form (RFC 3261 §19.1.1), %-decoded. Kept so that
    /// re-serialising loses nothing and so that equivalence can compare it.
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
    pub headers: Vec<(String, String)>,
}

/// URI parameters that make two URIs different when present in only one (RFC 3261 §19.1.4).
const MUST_MATCH_PARAMS: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];

/// RFC 3966 visual separators, ignored when comparing telephone numbers.
fn is_visual_separator(c: char) -> bool {
    matches!(c, '-' | '.' | '(' | ')')
}

/// Parses a URI. Leading/trailing LWS is tolerated; inside, whitespace, control characters, `<`,
/// `>` and `"` are refused.
///
/// For sip/sips the user part ends at the first `@` before any `?`, so a user containing a raw `?`
/// (legal but never seen) is not supported.
pub fn parse_uri(s: &str) -> Result<Uri, SipError> {
    let s = trim_lws(s);
    if s.is_empty() {
        return Err(SipError::EmptyUri);
    }
    if let Some(c) = s
        .chars()
        .find(|&c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"'))
    {
        return Err(if c.is_control() {
            SipError::ControlCharacter
        } else {
            SipError::UnexpectedChar(c)
        });
    }
    let (scheme, rest) = s.split_once(':').ok_or(SipError::BadScheme)?;
    if !is_scheme(scheme) {
        return Err(SipError::BadScheme);
    }
    match scheme.to_ascii_lowercase().as_str() {
        "sip" => parse_sip(Scheme::Sip, rest),
        "sips" => parse_sip(Scheme::Sips, rest),
        "tel" => parse_tel(rest),
        other => {
            if rest.is_empty() {
                return Err(SipError::EmptyUri);
            }
            Ok(Uri {
                scheme: Scheme::Other(other.to_string()),
                user: None,
                password: None,
                host: rest.to_string(),
                port: None,
                params: Vec::new(),
                headers: Vec::new(),
            })
        }
    }
}

impl FromStr for Uri {
    type Err = SipError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_uri(s)
    }
}

fn parse_sip(scheme: Scheme, rest: &str) -> Result<Uri, SipError> {
    let (main, headers) = match rest.split_once('?') {
        Some((m, h)) => (m, parse_headers(h)?),
        None => (rest, Vec::new()),
    };
    let (user, password, hostpart) = match main.split_once('@') {
        Some((userinfo, hostpart)) => {
            let (u, p) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(pct_decode(p)?)),
                None => (userinfo, None),
            };
            if u.is_empty() {
                return Err(SipError::UnexpectedChar('@'));
            }
            (Some(pct_decode(u)?), p, hostpart)
        }
        None => (None, None, main),
    };
    let (hostport, params) = match hostpart.split_once(';') {
        Some((hp, p)) => (hp, parse_params(p)?),
        None => (hostpart, Vec::new()),
    };
    let (host, port) = parse_hostport(hostport)?;
    Ok(Uri {
        scheme,
        user,
        password,
        host: host.to_string(),
        port,
        params,
        headers,
    })
}

fn parse_hostport(s: &str) -> Result<(&str, Option<u16>), SipError> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']').ok_or(SipError::BadHost)?;
        let host = s.get(..close + 1).unwrap_or("");
        let inner = host.get(1..close).unwrap_or("");
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(SipError::BadHost);
        }
        match after(s, close + 1) {
            "" => (host, None),
            r => (host, Some(r.strip_prefix(':').ok_or(SipError::BadHost)?)),
        }
    } else {
        let (h, p) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if h.is_empty()
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(SipError::BadHost);
        }
        (h, p)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| SipError::BadPort)?)
        }
        Some(_) => return Err(SipError::BadPort),
    };
    Ok((host, port))
}

/// `name[=value]` pieces separated by `;`, as written.
/// The most parameters (and, separately, headers) a URI may carry. Real URIs carry a handful;
/// the cap keeps equivalence checks and lookups cheap on hostile input.
pub const MAX_URI_PARAMS: usize = 32;

fn parse_params(s: &str) -> Result<Vec<(String, Option<String>)>, SipError> {
    if s.split(';').nth(MAX_URI_PARAMS).is_some() {
        return Err(SipError::TooManyParams);
    }
    s.split(';')
        .map(|p| match p.split_once('=') {
            Some((n, v)) if !n.is_empty() && !v.is_empty() => {
                Ok((n.to_string(), Some(v.to_string())))
            }
            None if !p.is_empty() => Ok((p.to_string(), None)),
            _ => Err(SipError::BadParam),
        })
        .collect()
}

/// `hname=hvalue` pieces separated by `&`, as written (an empty hvalue is allowed).
fn parse_headers(s: &str) -> Result<Vec<(String, String)>, SipError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    if s.split('&').nth(MAX_URI_PARAMS).is_some() {
        return Err(SipError::TooManyParams);
    }
    s.split('&')
        .map(|h| {
            let (n, v) = h.split_once('=').unwrap_or((h, ""));
            if n.is_empty() {
                Err(SipError::BadParam)
            } else {
                Ok((n.to_string(), v.to_string()))
            }
        })
        .collect()
}

fn parse_tel(rest: &str) -> Result<Uri, SipError> {
    let (number, params) = match rest.split_once(';') {
        Some((n, p)) => (n, parse_params(p)?),
        None => (rest, Vec::new()),
    };
    let digits = number.strip_prefix('+').unwrap_or(number);
    let ok = !digits.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, '*' | '#') || is_visual_separator(c))
        && digits.chars().any(|c| !is_visual_separator(c))
        && (!number.starts_with('+') || digits.chars().any(|c| c.is_ascii_digit()));
    if !ok {
        return Err(SipError::BadTelNumber);
    }
    Ok(Uri {
        scheme: Scheme::Tel,
        user: Some(number.to_string()),
        password: None,
        host: String::new(),
        port: None,
        params,
        headers: Vec::new(),
    })
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes. Refuses a malformed escape or a result that is not UTF-8.
pub(crate) fn pct_decode(s: &str) -> Result<String, SipError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes
                .next()
                .and_then(hex_val)
                .ok_or(SipError::BadPercentEncoding)?;
            let lo = bytes
                .next()
                .and_then(hex_val)
                .ok_or(SipError::BadPercentEncoding)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| SipError::BadPercentEncoding)
}

/// Decoded and lower-cased, for comparing parameter values; falls back to the raw text when the
/// escapes are malformed.
fn fold(s: &str) -> String {
    pct_decode(s)
        .unwrap_or_else(|_| s.to_string())
        .to_lowercase()
}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '!' | '~' | '*' | '\'' | '(' | ')')
}

fn pct_encode(s: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if keep(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

fn encode_user(u: &str) -> String {
    pct_encode(u, |c| {
        is_unreserved(c) || matches!(c, '&' | '=' | '+' | '$' | ',' | ';' | '?' | '/')
    })
}

fn encode_password(p: &str) -> String {
    pct_encode(p, |c| {
        is_unreserved(c) || matches!(c, '&' | '=' | '+' | '$' | ',')
    })
}

fn param<'a>(params: &'a [(String, Option<String>)], name: &str) -> Option<&'a Option<String>> {
    params.iter().find(|(n, _)| fold(n) == name).map(|(_, v)| v)
}

fn tel_digits(n: &str) -> String {
    n.chars()
        .filter(|&c| !is_visual_separator(c))
        .collect::<String>()
        .to_ascii_lowercase()
}

impl Uri {
    /// The host, ASCII lower-cased (empty for tel URIs).
    pub fn host_lower(&self) -> String {
        self.host.to_ascii_lowercase()
    }

    /// URI equivalence.
    ///
    /// sip/sips (RFC 3261 §19.1.4): same scheme; user and password equal after %-decoding
    /// (case-sensitive); host equal ignoring ASCII case (no DNS, and IPv6 references are compared as
    /// text); port equal, where an explicit port never equals an absent one; the `user`, `ttl`,
    /// `method`, `maddr` and `transport` parameters must match when present in either URI, other
    /// parameters only when present in both (names and values compared %-decoded and
    /// case-insensitively); header components must be present in both with equal values.
    ///
    /// tel (RFC 3966 §4): numbers equal ignoring the visual separators `-.()` and ASCII case; the
    /// same parameters on both sides, compared case-insensitively.
    ///
    /// Other schemes: the opaque part must be identical.
    pub fn equivalent(&self, other: &Uri) -> bool {
        if self.scheme != other.scheme {
            return false;
        }
        match self.scheme {
            Scheme::Sip | Scheme::Sips => self.sip_equivalent(other),
            Scheme::Tel => self.tel_equivalent(other),
            Scheme::Other(_) => self.host == other.host,
        }
    }

    fn sip_equivalent(&self, other: &Uri) -> bool {
        if self.user != other.user
            || self.password != other.password
            || !self.host.eq_ignore_ascii_case(&other.host)
            || self.port != other.port
        {
            return false;
        }
        for (name, _) in self.params.iter().chain(other.params.iter()) {
            let name = fold(name);
            match (param(&self.params, &name), param(&other.params, &name)) {
                (Some(a), Some(b)) if a.as_deref().map(fold) != b.as_deref().map(fold) => {
                    return false
                }
                (Some(_), Some(_)) => {}
                _ if MUST_MATCH_PARAMS.contains(&name.as_str()) => return false,
                _ => {}
            }
        }
        let contains = |hs: &[(String, String)], (n, v): &(String, String)| {
            hs.iter().any(|(n2, v2)| {
                n2.eq_ignore_ascii_case(n) && pct_decode(v2).ok() == pct_decode(v).ok()
            })
        };
        self.headers.iter().all(|h| contains(&other.headers, h))
            && other.headers.iter().all(|h| contains(&self.headers, h))
    }

    fn tel_equivalent(&self, other: &Uri) -> bool {
        let number = |u: &Uri| u.user.as_deref().map(tel_digits);
        if number(self) != number(other) || self.params.len() != other.params.len() {
            return false;
        }
        let contains = |ps: &[(String, Option<String>)], (n, v): &(String, Option<String>)| {
            ps.iter().any(|(n2, v2)| {
                fold(n2) == fold(n) && v2.as_deref().map(fold) == v.as_deref().map(fold)
            })
        };
        self.params.iter().all(|p| contains(&other.params, p))
            && other.params.iter().all(|p| contains(&self.params, p))
    }

    /// A canonical string such that equivalent URIs have the same key (`sip:user@host:port`,
    /// host lower-cased, user %-encoded canonically; `tel:` + digits without separators; other
    /// schemes as written). Different URIs may share a key (parameters are left out), so use it to
    /// bucket, then confirm with [`Uri::equivalent`].
    pub fn key(&self) -> String {
        match &self.scheme {
            Scheme::Sip | Scheme::Sips => {
                let mut k = format!("{}:", self.scheme.as_str());
                if let Some(u) = &self.user {
                    k.push_str(&encode_user(u));
                    k.push('@');
                }
                k.push_str(&self.host_lower());
                if let Some(p) = self.port {
                    k.push_str(&format!(":{p}"));
                }
                k
            }
            Scheme::Tel => format!(
                "tel:{}",
                self.user.as_deref().map(tel_digits).unwrap_or_default()
            ),
            Scheme::Other(s) => format!("{s}:{}", self.host),
        }
    }
}

impl fmt::Display for Uri {
    /// Re-serialises. The user part is re-encoded canonically (so `%61` comes back as `a`, an
    /// equivalent URI); parameters and headers are written as parsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme.as_str())?;
        match self.scheme {
            Scheme::Sip | Scheme::Sips => {
                if let Some(u) = &self.user {
                    f.write_str(&encode_user(u))?;
                    if let Some(p) = &self.password {
                        write!(f, ":{}", encode_password(p))?;
                    }
                    f.write_str("@")?;
                }
                f.write_str(&self.host)?;
                if let Some(p) = self.port {
                    write!(f, ":{p}")?;
                }
            }
            Scheme::Tel => f.write_str(self.user.as_deref().unwrap_or(""))?,
            Scheme::Other(_) => return f.write_str(&self.host),
        }
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        for (i, (n, v)) in self.headers.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn u(s: &str) -> Uri {
        parse_uri(s).unwrap()
    }

    fn eq(a: &str, b: &str) -> bool {
        let (a, b) = (u(a), u(b));
        let r = a.equivalent(&b);
        assert_eq!(r, b.equivalent(&a), "symmetry");
        if r {
            assert_eq!(a.key(), b.key(), "equivalent URIs share a key");
        }
        r
    }

    #[test]
    fn parses_sip() {
        let x = u("sip:alice:secret@Atlanta.com:5060;transport=TCP;lr?subject=project%20x&priority=urgent");
        assert_eq!(x.scheme, Scheme::Sip);
        assert_eq!(x.user.as_deref(), Some("alice"));
        assert_eq!(x.password.as_deref(), Some("secret"));
        assert_eq!(x.host, "Atlanta.com");
        assert_eq!(x.host_lower(), "atlanta.com");
        assert_eq!(x.port, Some(5060));
        assert_eq!(
            x.params,
            vec![
                ("transport".into(), Some("TCP".into())),
                ("lr".into(), None)
            ]
        );
        assert_eq!(x.headers.len(), 2);
        assert_eq!(x.to_string(), "sip:alice:secret@Atlanta.com:5060;transport=TCP;lr?subject=project%20x&priority=urgent");
        let v6 = u("sips:[2001:db8::10]:5061");
        assert_eq!(
            (v6.scheme, v6.host.as_str(), v6.port),
            (Scheme::Sips, "[2001:db8::10]", Some(5061))
        );
        assert_eq!(u("sip:%61lice@h").user.as_deref(), Some("alice"));
        assert_eq!(
            u("sip:+1555;phone-context=x@h;user=phone").user.as_deref(),
            Some("+1555;phone-context=x")
        );
        assert_eq!(u(" sip:h ").host, "h");
    }

    #[test]
    fn parses_tel_and_other() {
        let t = u("tel:+1-555-123-4567;ext=22");
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user.as_deref(), Some("+1-555-123-4567"));
        assert!(t.host.is_empty());
        assert_eq!(t.to_string(), "tel:+1-555-123-4567;ext=22");
        assert_eq!(t.key(), "tel:+15551234567");
        let o = u("IM:pooh@100akerwood.com");
        assert_eq!(o.scheme, Scheme::Other("im".into()));
        assert_eq!(o.to_string(), "im:pooh@100akerwood.com");
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "sip",
            ":x",
            "sip:",
            "sip:@h",
            "sip:a@",
            "sip:a@h:",
            "sip:a@h:99999",
            "sip:a@h:x",
            "sip:a@h;",
            "sip:a@h;=x",
            "sip:a@h;t=",
            "sip:a b@h",
            "sip:a@h\r\nX: y",
            "sip:%zz@h",
            "sip:%ff@h",
            "sip:[::1",
            "sip:[]",
            "sip:[::1]x",
            "tel:",
            "tel:+",
            "tel:abcxyz",
            "tel:+---",
            "1sip:a",
            "urn:",
            "sip:a@h?=x",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn rfc3261_19_1_4_equivalent() {
        assert!(eq(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;security=on"
        ));
        assert!(eq(
            "sip:carol@chicago.com;newparam=5",
            "sip:carol@chicago.com;security=on"
        ));
        assert!(eq(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(eq(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
        ));
    }

    #[test]
    fn rfc3261_19_1_4_not_equivalent() {
        assert!(!eq(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp"
        ));
        assert!(!eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
        assert!(!eq("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
        assert!(!eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
        assert!(!eq("sip:a@h", "sips:a@h"));
        assert!(!eq("sip:h", "sip:a@h"));
        assert!(!eq("sip:a@h", "sip:a@h;user=phone"));
    }

    #[test]
    fn tel_equivalence() {
        assert!(eq("tel:+1-555-123-4567", "tel:+1(555)123.4567"));
        assert!(eq(
            "tel:7042;phone-context=Example.com",
            "tel:7042;PHONE-CONTEXT=example.com"
        ));
        assert!(!eq("tel:+15551234567", "tel:+15551234568"));
        assert!(!eq("tel:7042;phone-context=a.com", "tel:7042"));
        assert!(!eq("tel:+15551234567", "sip:+15551234567@h"));
    }

    #[test]
    fn key_is_canonical() {
        assert_eq!(
            u("sip:Bob@Example.COM:5060;transport=tcp").key(),
            "sip:Bob@example.com:5060"
        );
        assert_eq!(u("sip:im.example.net").key(), "sip:im.example.net");
    }
}

#[cfg(test)]
mod param_cap_tests {
    use super::*;

    #[test]
    fn parameter_and_header_counts_are_capped() {
        let at_cap: String = (0..MAX_URI_PARAMS).map(|i| format!(";p{i}")).collect();
        assert!(parse_uri(&format!("sip:g@example.net{at_cap}")).is_ok());
        let over: String = (0..=MAX_URI_PARAMS).map(|i| format!(";p{i}")).collect();
        assert_eq!(
            parse_uri(&format!("sip:g@example.net{over}")),
            Err(SipError::TooManyParams)
        );
        let hdrs: String = (0..=MAX_URI_PARAMS)
            .map(|i| format!("h{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(
            parse_uri(&format!("sip:g@example.net?{hdrs}")),
            Err(SipError::TooManyParams)
        );
        // What a hostile peer sends in one datagram is refused, not compared quadratically.
        let hostile: String = (0..8000).map(|i| format!(";p{i}")).collect();
        assert_eq!(
            parse_uri(&format!("sip:bookclub@im.example.net{hostile}")),
            Err(SipError::TooManyParams)
        );
    }
}
