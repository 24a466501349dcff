//! A chat participant as the end-to-end tests play it: joins a group over SIP (UDP, so the
//! focus's in-dialog requests reach the test's socket) with an MSRP offer of its own, reads the
//! identity and the relay's path from the 200 OK, and connects to the relay and binds
//! (RFC 4975 §5.4: the first SEND on a session, here without a body).
use super::answer::{assigned, sdp_of};
use super::msrp::{self, new_id};
use super::sip::{self, join, msrp_offer, Invite, Response, Transport};
use super::Stack;

/// The URI of an anonymous participant (RFC 3323 §4.1.1.3).
pub const ANONYMOUS_URI: &str = "sip:anonymous@anonymous.invalid";

/// The relay's MSRP URI: the `a=path` of the SDP in a 200 OK.
pub fn relay_path(ok: &Response) -> String {
    sdp_of(ok)
        .lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .expect("a=path in the 200 OK")
        .trim()
        .to_string()
}

/// A fresh MSRP session id and a port derived from it, below the ephemeral range so it cannot be
/// the relay's own port (nothing listens there: the relay never connects to a participant).
pub fn fresh_offer() -> (u16, String) {
    let session = new_id() + &new_id();
    let port = 20000 + u16::from_str_radix(&session[..4], 16).unwrap() % 9000;
    (port, session)
}

/// A participant that joined over SIP and, once [`Participant::bind`] ran, over MSRP.
pub struct Participant {
    /// The identity it joined with (P-Asserted-Identity).
    pub identity: String,
    pub sip: sip::Client,
    pub inv: Invite,
    pub ok: Response,
    /// The assigned identity: display name and URI (as joined if the answer assigns none).
    pub name: Option<String>,
    pub uri: String,
    /// The relay's a=path from the 200 OK.
    pub relay: String,
    /// The participant's own a=path from its offer, and its parts.
    pub own: String,
    pub own_port: u16,
    pub own_session: String,
    pub msrp: Option<msrp::Client>,
}

impl Participant {
    /// Joins `group` (anonymously as `alias`, or as the real `identity` showing `alias`) and
    /// asserts the 200; not yet connected to the relay.
    pub fn join(
        stack: &Stack,
        group: &str,
        identity: &str,
        alias: Option<&str>,
        anonymous: bool,
    ) -> Participant {
        let mut sip = stack.client(Transport::Udp);
        let mut inv = if anonymous {
            Invite::anonymous(group, identity, alias)
        } else {
            Invite::named(group, identity, alias)
        };
        let (own_port, own_session) = fresh_offer();
        inv.body = Some(("application/sdp".into(), msrp_offer(own_port, &own_session)));
        let ok = join(&mut sip, &inv);
        assert_eq!(ok.code, 200, "join of {identity}: {}", ok.raw_text());
        // Without an assigned identity in the answer, the participant speaks as it joined.
        let (name, uri) = assigned(&ok).unwrap_or_else(|| {
            let uri = if anonymous { ANONYMOUS_URI } else { identity };
            (alias.map(str::to_string), uri.to_string())
        });
        let relay = relay_path(&ok);
        Participant {
            identity: identity.to_string(),
            sip,
            inv,
            ok,
            name,
            uri,
            relay,
            own: format!("msrp://127.0.0.1:{own_port}/{own_session};tcp"),
            own_port,
            own_session,
            msrp: None,
        }
    }

    /// [`Participant::join`], then [`Participant::bind`].
    pub fn enter(
        stack: &Stack,
        group: &str,
        identity: &str,
        alias: Option<&str>,
        anonymous: bool,
    ) -> Participant {
        let mut p = Participant::join(stack, group, identity, alias, anonymous);
        p.bind();
        p
    }

    /// Connects to the relay and binds the session, asserting the 200.
    pub fn bind(&mut self) {
        let mut c = msrp::Client::connect(&self.relay, &self.own);
        assert_eq!(c.bind(), Some(200), "bind of {}", self.identity);
        self.msrp = Some(c);
    }

    /// The CPIM From this participant must use: its assigned identity.
    pub fn cpim_from(&self) -> String {
        match &self.name {
            Some(n) => format!("\"{n}\" <{}>", self.uri),
            None => format!("<{}>", self.uri),
        }
    }

    /// Sends a CPIM message to `to` from this participant's assigned identity; the body sent
    /// and the SEND's status.
    pub fn say(&mut self, to: &str, text: &str) -> (Vec<u8>, Option<u16>) {
        let body = msrp::cpim(&self.cpim_from(), &[to], "text/plain", text.as_bytes());
        let st = self.m().send_cpim(&body);
        (body, st)
    }

    /// The bound MSRP connection.
    pub fn m(&mut self) -> &mut msrp::Client {
        self.msrp.as_mut().expect("bound")
    }
}
