//! Identities as they appear in From/To headers (SIP and CPIM), recipients, and the directory of
//! participants a client has seen.
use chat_alias_proto::{cpim, nickname, sip as psip};
use serde::Serialize;
use std::fmt;

/// A display name and a URI: `"bob-2" <sip:anonymous2@anonymous.invalid>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub display_name: Option<String>,
    pub uri: String,
}

impl Identity {
    pub fn new(display_name: Option<&str>, uri: &str) -> Identity {
        Identity {
            display_name: display_name.map(str::to_string),
            uri: uri.to_string(),
        }
    }

    /// The anonymous identity of the Chat Alias procedure: `"alias" <sip:anonymous@anonymous.invalid>`.
    pub fn anonymous(alias: &str) -> Identity {
        Identity::new(Some(alias), ANONYMOUS_URI)
    }

    /// As a CPIM From/To value (RFC 3862 escaping).
    pub fn to_cpim(&self) -> String {
        cpim::format_address(self.display_name.as_deref(), &self.uri)
    }

    /// From a parsed CPIM address.
    pub fn from_cpim(a: &cpim::CpimAddress) -> Identity {
        Identity {
            display_name: a.display_name.clone(),
            uri: a.uri.clone(),
        }
    }

    /// The display name, or the URI when there is none (for short human output).
    pub fn short(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.uri)
    }

    /// Whether both name the same URI (RFC 3261 §19.1.4 equivalence; display names ignored).
    pub fn same_uri(&self, other: &Identity) -> bool {
        same_uri(&self.uri, &other.uri)
    }
}

impl fmt::Display for Identity {
    /// SIP-style: `"name" <uri>` with the name quoted and escaped, or `<uri>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.display_name {
            Some(n) => write!(f, "{} <{}>", psip::quote_display_name(n), self.uri),
            None => write!(f, "<{}>", self.uri),
        }
    }
}

/// The URI an anonymous participant puts in From (RFC 3323 §4.1.1.3, the CR).
pub const ANONYMOUS_URI: &str = "sip:anonymous@anonymous.invalid";

/// URI equivalence (RFC 3261 §19.1.4, RFC 3966 for tel); URIs that do not parse are compared
/// as text, ignoring ASCII case.
pub fn same_uri(a: &str, b: &str) -> bool {
    match (psip::parse_uri(a), psip::parse_uri(b)) {
        (Ok(x), Ok(y)) => x.equivalent(&y),
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// The whole conference (CPIM To = the group URI).
    Group,
    /// One participant: a private message (CPIM To = that participant).
    Participant(Identity),
}

/// The participants a client knows: its own identity and every sender it has seen. A client
/// learns nobody else's URI (there is no conference-state subscription in this version), so a
/// private message can be addressed by URI, or by a display name seen as the sender of a message.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    known: Vec<Identity>,
}

impl Directory {
    /// Remembers a sender. A later identity with the same URI replaces the earlier one.
    pub fn saw(&mut self, who: &Identity) {
        if let Some(k) = self.known.iter_mut().find(|k| k.same_uri(who)) {
            if who.display_name.is_some() {
                *k = who.clone();
            }
        } else {
            self.known.push(who.clone());
        }
    }

    /// The identity known under display name `name`: exactly as written first, then under the
    /// nickname comparison the focus uses for uniqueness (RFC 8266 + confusables).
    pub fn by_name(&self, name: &str) -> Option<&Identity> {
        self.known
            .iter()
            .find(|k| k.display_name.as_deref() == Some(name))
            .or_else(|| {
                self.known.iter().find(|k| {
                    k.display_name
                        .as_deref()
                        .is_some_and(|d| nickname::names_clash(d, name))
                })
            })
    }

    /// The identity known under `uri` (with its display name), if any.
    pub fn by_uri(&self, uri: &str) -> Option<&Identity> {
        self.known.iter().find(|k| same_uri(&k.uri, uri))
    }

    pub fn all(&self) -> &[Identity] {
        &self.known
    }

    /// Resolves what a user typed after `/msg`: `<uri>`, a bare URI (`scheme:…`), or a display
    /// name seen as a sender (quoted or not).
    pub fn resolve(&self, who: &str) -> Result<Identity, String> {
        let who = who.trim();
        if let Some(inner) = who.strip_prefix('<').and_then(|w| w.strip_suffix('>')) {
            return self.uri_identity(inner);
        }
        let unquoted = unquote(who);
        if unquoted.is_none() && looks_like_uri(who) {
            return self.uri_identity(who);
        }
        let name = unquoted.unwrap_or_else(|| who.to_string());
        match self.by_name(&name) {
            Some(k) => Ok(k.clone()),
            None => Err(format!(
                "unknown participant {name:?}: give a URI (e.g. <sip:anonymous2@anonymous.invalid>) \
                 or the display name of someone whose message you have received"
            )),
        }
    }

    fn uri_identity(&self, uri: &str) -> Result<Identity, String> {
        psip::parse_uri(uri).map_err(|e| format!("{uri:?} is not a URI: {e}"))?;
        Ok(self
            .by_uri(uri)
            .cloned()
            .unwrap_or_else(|| Identity::new(None, uri)))
    }
}

fn looks_like_uri(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, rest)) => {
            !rest.is_empty()
                && !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

/// `"a \"b\""` → `a "b"`; None when not a quoted string.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_cpim_forms() {
        let i = Identity::new(Some("bob \"2\""), "sip:anonymous2@anonymous.invalid");
        assert_eq!(
            i.to_string(),
            r#""bob \"2\"" <sip:anonymous2@anonymous.invalid>"#
        );
        assert_eq!(
            i.to_cpim(),
            r#""bob \"2\"" <sip:anonymous2@anonymous.invalid>"#
        );
        let parsed = cpim::parse_address(&i.to_cpim()).unwrap();
        assert_eq!(Identity::from_cpim(&parsed), i);
        assert_eq!(
            Identity::new(None, "sip:a@b").to_string(),
            "<sip:a@b>".to_string()
        );
    }

    #[test]
    fn uri_equivalence() {
        assert!(same_uri(
            "sip:lounge@IM.example.net",
            "sip:lounge@im.example.net"
        ));
        assert!(!same_uri(
            "sip:Lounge@im.example.net",
            "sip:lounge@im.example.net"
        ));
        assert!(same_uri("tel:+1-555-123", "tel:+1555123"));
    }

    #[test]
    fn directory_resolves_uris_and_seen_names() {
        let mut d = Directory::default();
        d.saw(&Identity::new(Some("Alice"), "sip:alice@example.com"));
        d.saw(&Identity::new(
            Some("bob-2"),
            "sip:anonymous2@anonymous.invalid",
        ));
        assert_eq!(
            d.resolve("Alice").unwrap().uri,
            "sip:alice@example.com".to_string()
        );
        // The focus's comparison: case and width do not matter.
        assert_eq!(d.resolve("alice").unwrap().uri, "sip:alice@example.com");
        assert_eq!(
            d.resolve("\"bob-2\"").unwrap().display_name.as_deref(),
            Some("bob-2")
        );
        // A URI gets the display name it was seen with.
        assert_eq!(
            d.resolve("<sip:anonymous2@anonymous.invalid>")
                .unwrap()
                .display_name
                .as_deref(),
            Some("bob-2")
        );
        assert_eq!(
            d.resolve("sip:carol@example.com").unwrap(),
            Identity::new(None, "sip:carol@example.com")
        );
        assert!(d.resolve("bob-3").is_err());
        assert!(d.resolve("<not a uri>").is_err());
        // A later message under the same URI updates the name.
        d.saw(&Identity::new(Some("Alice B"), "sip:alice@example.com"));
        assert!(d.by_name("Alice").is_none());
        assert_eq!(d.all().len(), 2);
    }
}
