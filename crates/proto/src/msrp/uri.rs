//! MSRP URIs (RFC 4975 §6, grammar in §9) and their comparison (§6.1).
//!
//! ```text
//! MSRP-URI   = msrp-scheme "://" authority ["/" session-id] ";" transport *( ";" URI-parameter)
//! session-id = 1*( unreserved / "+" / "=" / "/" )
//! transport  = "tcp" / 1*ALPHANUM
//! URI-parameter = token ["=" token]
//! ```
//!
//! Choices (the relay only speaks MSRP over TCP):
//! - the transport must be `tcp` (any case; stored lower-cased);
//! - a numeric host (IPv4 or IPv6 literal) must carry a port (RFC 4975 §6);
//! - a `userinfo@` part is accepted and dropped: §6.1 ignores it for comparison and we never
//!   route on it (RFC 4976 relays use it for AUTH only);
//! - a host name is ALPHA / DIGIT / `-` `.` `_` `~` (no percent-encoding), stored lower-cased;
//!   an IP-literal must be a valid IPv6 address (IPvFuture and zone ids are refused) and is
//!   stored lower-cased without brackets.
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::MsrpError;

/// The TCP port MSRP uses when a URI names none (RFC 4975 §15.4 / §6).
pub const DEFAULT_PORT: u16 = 2855;

/// A parsed MSRP URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MsrpUri {
    /// `msrps` (TLS) rather than `msrp`.
    pub secure: bool,
    /// Lower-cased; an IPv6 literal without its brackets.
    pub host: String,
    /// As written; `None` when absent (see [`MsrpUri::port_or_default`]).
    pub port: Option<u16>,
    /// Case-sensitive.
    pub session_id: Option<String>,
    /// Always `"tcp"` (lower-cased) for a URI [`parse_uri`] accepted.
    pub transport: String,
    /// `;name[=value]` parameters after the transport, as written, in order.
    pub params: Vec<(String, Option<String>)>,
}

impl MsrpUri {
    /// RFC 4975 §6.1 equivalence: scheme equal; host equal (IP addresses compared as addresses,
    /// names case-insensitively); port equal *as given* — an explicit port never matches an
    /// absent one (§6.1), even 2855; session-id equal case-sensitively (absent matches only
    /// absent); transport equal case-insensitively. Parameters are not compared.
    pub fn matches(&self, other: &MsrpUri) -> bool {
        self.secure == other.secure
            && hosts_equal(&self.host, &other.host)
            && self.port == other.port
            && self.session_id == other.session_id
            && self.transport.eq_ignore_ascii_case(&other.transport)
    }

    /// The port to connect to: the explicit one, else [`DEFAULT_PORT`].
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }
}

fn hosts_equal(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

impl fmt::Display for MsrpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "msrps://" } else { "msrp://" })?;
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(session) = &self.session_id {
            write!(f, "/{session}")?;
        }
        write!(f, ";{}", self.transport)?;
        for (name, value) in &self.params {
            write!(f, ";{name}")?;
            if let Some(value) = value {
                write!(f, "={value}")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for MsrpUri {
    type Err = MsrpError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_uri(s)
    }
}

fn bad(what: &str, s: &str) -> MsrpError {
    let shown: String = s.chars().take(80).collect();
    MsrpError::BadUri(format!("{what}: {shown:?}"))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 4975 `token` (§9).
pub(crate) fn is_token_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn split_scheme(s: &str) -> Option<(bool, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    if scheme.eq_ignore_ascii_case("msrp") {
        Some((false, rest))
    } else if scheme.eq_ignore_ascii_case("msrps") {
        Some((true, rest))
    } else {
        None
    }
}

fn parse_port(p: &str, s: &str) -> Result<u16, MsrpError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("bad port", s));
    }
    p.parse::<u16>().map_err(|_| bad("port out of range", s))
}

/// The pieces of an MSRP URI that [`parse_uri`] accepted, borrowed from it.
struct Parts<'a> {
    secure: bool,
    host: &'a str,
    port: Option<u16>,
    session_id: Option<&'a str>,
    transport: &'a str,
    /// The `;name[=value]` parameters after the transport, each checked.
    params: Option<&'a str>,
}

/// Checks an MSRP URI as [`parse_uri`] does, without building an [`MsrpUri`]: a relay checks
/// every URI of the To-Path and From-Path of every response it reads, and uses none of them.
pub fn check_uri(s: &str) -> Result<(), MsrpError> {
    split_uri(s).map(|_| ())
}

/// Parses an MSRP URI (RFC 4975 §9). See the module documentation for the choices made.
pub fn parse_uri(s: &str) -> Result<MsrpUri, MsrpError> {
    let p = split_uri(s)?;
    let params = p
        .params
        .map(|rest| {
            rest.split(';')
                .map(|p| match p.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (p.to_string(), None),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(MsrpUri {
        secure: p.secure,
        host: p.host.to_ascii_lowercase(),
        port: p.port,
        session_id: p.session_id.map(str::to_string),
        transport: p.transport.to_ascii_lowercase(),
        params,
    })
}

/// Every check of an MSRP URI; the pieces, borrowed.
fn split_uri(s: &str) -> Result<Parts<'_>, MsrpError> {
    let (secure, rest) = split_scheme(s).ok_or_else(|| bad("not an msrp: or msrps: URI", s))?;
    let auth_end = rest.find(['/', ';']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(auth_end);

    // userinfo@ — accepted, validated, dropped.
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let ok = userinfo
                .bytes()
                .all(|b| is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'%');
            if !ok {
                return Err(bad("bad userinfo", s));
            }
            hostport
        }
        None => authority,
    };

    let (host, port, numeric) = if let Some(after_bracket) = hostport.strip_prefix('[') {
        let (inner, after) = after_bracket
            .split_once(']')
            .ok_or_else(|| bad("unterminated IP literal", s))?;
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(bad("bad IPv6 literal", s));
        }
        let port = match after {
            "" => None,
            p => Some(parse_port(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("junk after IP literal", s))?,
                s,
            )?),
        };
        (inner, port, true)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(parse_port(p, s)?)),
            None => (hostport, None),
        };
        if host.is_empty() || !host.bytes().all(is_unreserved) {
            return Err(bad("bad host", s));
        }
        let numeric = host.parse::<Ipv4Addr>().is_ok();
        (host, port, numeric)
    };
    if numeric && port.is_none() {
        return Err(bad("a numeric host needs a port", s));
    }

    let (session_id, rest) = match rest.strip_prefix('/') {
        Some(r) => {
            let end = r.find(';').unwrap_or(r.len());
            let (sess, r) = r.split_at(end);
            let ok = !sess.is_empty()
                && sess
                    .bytes()
                    .all(|b| is_unreserved(b) || matches!(b, b'+' | b'=' | b'/'));
            if !ok {
                return Err(bad("bad session-id", s));
            }
            (Some(sess), r)
        }
        None => (None, rest),
    };

    let rest = rest
        .strip_prefix(';')
        .ok_or_else(|| bad("missing ;transport", s))?;
    let mut parts = rest.split(';');
    let transport = parts.next().unwrap_or("");
    if transport.is_empty() || !transport.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad("bad transport", s));
    }
    if !transport.eq_ignore_ascii_case("tcp") {
        return Err(bad("unsupported transport (only tcp)", s));
    }
    for p in parts.clone() {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        let token = |t: &str| !t.is_empty() && t.bytes().all(is_token_char);
        if !token(name) || !value.is_none_or(token) {
            return Err(bad("bad URI parameter", s));
        }
    }
    let params = rest.split_once(';').map(|(_, params)| params);
    Ok(Parts {
        secure,
        host,
        port,
        session_id,
        transport,
        params,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    /// `check_uri` accepts exactly what `parse_uri` accepts, with the same error.
    #[test]
    fn check_uri_agrees_with_parse_uri() {
        for s in [
            "msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp",
            "MSRPS://Alice@Intra.Example.com;TCP;foo=bar;baz",
            "msrp://[2001:db8::1]:2855/s;tcp",
            "msrp://[2001:db8::1]/s;tcp",
            "msrp://192.0.2.1/s;tcp",
            "msrp://192.0.2.1:2855/s;udp",
            "msrp://h:2855/s;tcp;=x",
            "msrp://h:2855/s;tcp;a=",
            "msrp://h:2855/s;tcp;a=b;c",
            "msrp://h:99999/s;tcp",
            "msrp://h:2855/;tcp",
            "msrp://h:2855/s",
            "msrp://h h:2855/s;tcp",
            "msrp://us er@h:1/s;tcp",
            "http://h:1/s;tcp",
            "msrp://[::1:1/s;tcp",
            "",
        ] {
            assert_eq!(check_uri(s), parse_uri(s).map(|_| ()), "{s:?}");
        }
    }

    #[test]
    fn parses_rfc_examples() {
        let u = parse_uri("msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp").unwrap();
        assert!(!u.secure);
        assert_eq!(u.host, "biloxi.example.com");
        assert_eq!(u.port, Some(12763));
        assert_eq!(u.session_id.as_deref(), Some("kjhd37s2s20w2a"));
        assert_eq!(u.transport, "tcp");
        assert!(u.params.is_empty());
        assert_eq!(
            u.to_string(),
            "msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp"
        );

        let u = parse_uri("MSRPS://Alice@Intra.Example.com;TCP;foo=bar;baz").unwrap();
        assert!(u.secure);
        assert_eq!(u.host, "intra.example.com");
        assert_eq!(u.port, None);
        assert_eq!(u.port_or_default(), 2855);
        assert_eq!(u.session_id, None);
        assert_eq!(u.transport, "tcp");
        assert_eq!(
            u.params,
            vec![("foo".into(), Some("bar".into())), ("baz".into(), None)]
        );
        assert_eq!(u.to_string(), "msrps://intra.example.com;tcp;foo=bar;baz");

        let u = parse_uri("msrp://[2001:DB8::1]:2855/a+b=c/d;tcp").unwrap();
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.session_id.as_deref(), Some("a+b=c/d"));
        assert_eq!(u.to_string(), "msrp://[2001:db8::1]:2855/a+b=c/d;tcp");
        assert_eq!(parse_uri(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn refusals() {
        for s in [
            "",
            "msrp://host/sess",                // no transport
            "msrp://host/sess;",               // empty transport
            "msrp://host/sess;udp",            // not tcp
            "msrp://host/sess;ws",             // not tcp
            "sip://host/sess;tcp",             // scheme
            "msrp:/host/sess;tcp",             // no //
            "msrp://192.0.2.1/sess;tcp",       // numeric host without port
            "msrp://[::1]/sess;tcp",           // numeric host without port
            "msrp://[::1;tcp",                 // unterminated literal
            "msrp://[v1.x]:1/s;tcp",           // IPvFuture
            "msrp://[fe80::1%25eth0]:1/s;tcp", // zone id
            "msrp://host:/s;tcp",              // empty port
            "msrp://host:65536/s;tcp",         // port range
            "msrp://host:12a/s;tcp",           // port digits
            "msrp://ho st:1/s;tcp",            // space
            "msrp://:1/s;tcp",                 // empty host
            "msrp://host:1/;tcp",              // empty session
            "msrp://host:1/s?x;tcp",           // session char
            "msrp://host:1/s;tcp;",            // empty param
            "msrp://host:1/s;tcp;a=",          // empty value
            "msrp://host:1/s;tcp;a b",         // space in param
            "msrp://us er@host:1/s;tcp",       // userinfo space
        ] {
            assert!(
                matches!(parse_uri(s), Err(MsrpError::BadUri(_))),
                "{s:?} accepted"
            );
        }
    }

    #[test]
    fn comparison() {
        let a = parse_uri("msrp://Example.COM:7/AbC;tcp").unwrap();
        let b = parse_uri("MSRP://example.com:7/AbC;TCP;x=y").unwrap();
        assert!(a.matches(&b) && b.matches(&a));
        // session-id is case-sensitive
        let c = parse_uri("msrp://example.com:7/abc;tcp").unwrap();
        assert!(!a.matches(&c));
        // explicit port never equals an absent one, even the default
        let d = parse_uri("msrp://example.com:2855/AbC;tcp").unwrap();
        let e = parse_uri("msrp://example.com/AbC;tcp").unwrap();
        assert!(!d.matches(&e));
        // scheme
        let f = parse_uri("msrps://example.com:7/AbC;tcp").unwrap();
        assert!(!a.matches(&f));
        // session-id absent vs present
        let g = parse_uri("msrp://example.com:7;tcp").unwrap();
        assert!(!a.matches(&g));
        // IP addresses compared as addresses
        let h = parse_uri("msrp://[::1]:7/s;tcp").unwrap();
        let i = parse_uri("msrp://[0:0:0::1]:7/s;tcp").unwrap();
        assert!(h.matches(&i));
        let j: MsrpUri = "msrp://u@example.com:7/AbC;tcp".parse().unwrap();
        assert!(a.matches(&j));
    }
}
