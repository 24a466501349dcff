//! Routing policy: once a message's CPIM headers are in, whether the sender may say what it says
//! (CPIM From is its own identity and enforced name) and who gets it (every other participant
//! that accepts the inner type, or the one private recipient; RFC 7701 §6.1, §6.2).
use super::*;

impl<O: Outlet> Switch<O> {
    /// Decides where a message goes once its CPIM headers are in (RFC 7701 §6).
    pub(super) fn decide(&self, conn: ConnId, key: &MsgKey) -> Decision {
        let Some(m) = self.messages.get(key) else {
            return Decision::Refuse(refuse(481, "message gone"));
        };
        let buf = &m.pending;
        // CRLF only (RFC 3862 §3.1): the relay forwards these bytes unchanged, so it must end
        // lines, and the header block, where every recipient does; a recipient that took a bare
        // LF for a line end, or did not, could otherwise read a From the relay never checked.
        let h = match cpim::parse_headers_with(buf, cpim::LineEnds::CrlfOnly) {
            Ok(h) => h,
            Err(cpim::CpimError::Incomplete) if buf.len() <= MAX_CPIM_PREFIX => {
                return Decision::Wait
            }
            Err(cpim::CpimError::BareLf) => {
                return Decision::Refuse(refuse(400, "bare LF in CPIM headers"))
            }
            Err(_) => return Decision::Refuse(refuse(400, "malformed CPIM headers")),
        };
        let inner = buf.get(h.header_len..).unwrap_or_default();
        let inner_ct = match cpim::parse_encapsulated_with(inner, cpim::LineEnds::CrlfOnly) {
            Ok((ct, _)) => ct,
            Err(cpim::CpimError::Incomplete) if inner.len() <= MAX_CPIM_PREFIX => {
                return Decision::Wait
            }
            Err(cpim::CpimError::BareLf) => {
                return Decision::Refuse(refuse(400, "bare LF in encapsulated MIME headers"))
            }
            Err(_) => return Decision::Refuse(refuse(400, "malformed encapsulated MIME headers")),
        };
        let Ok(inner_ct) = sip::parse_media_type(inner_ct) else {
            return Decision::Refuse(refuse(400, "bad encapsulated Content-Type"));
        };
        let Some(sender) = self.registry.get(&m.sender_session) else {
            return Decision::Refuse(refuse(481, "sender no longer registered"));
        };
        let (route, private) = match route(&self.registry, sender, &h, &inner_ct) {
            Ok(r) => r,
            Err(r) => return Decision::Refuse(r),
        };
        if private {
            // A private message to a participant who is registered but has no connection now
            // cannot be delivered: say so rather than answer 200 and drop it.
            let reachable = route.iter().all(|p| {
                self.bound
                    .get(&p.session)
                    .and_then(|c| self.conns.get(c))
                    .is_some_and(|c| c.binding.is_some())
            });
            if !reachable {
                return Decision::Refuse(refuse(404, "recipient not connected"));
            }
        }
        let mut copies = Vec::new();
        for p in route {
            let Some(&rconn) = self.bound.get(&p.session) else {
                continue;
            };
            if rconn == conn {
                continue;
            }
            let Some(b) = self.conns.get(&rconn).and_then(|c| c.binding.as_ref()) else {
                continue;
            };
            copies.push(Delivery {
                conn: rconn,
                message_id: None,
                // RFC 4975 §7.1: the To-Path towards a peer is the From-Path it sent, in the
                // order received (first URI = next hop). The brief said "reversed if several";
                // not reversing is what RFC 4975's path rules give, so we follow the RFC.
                to_path: b.peer_path.clone(),
                from_path: b.relay_uri.clone(),
                sent_any: false,
                next: 1,
                live: true,
            });
        }
        Decision::Deliver(copies)
    }
}

pub(super) enum Decision {
    Wait,
    Refuse(Refusal),
    Deliver(Vec<Delivery>),
}

/// Whether `accept` (a=accept-wrapped-types) allows `t`: an absent list allows anything.
pub fn accepts(accept: &[String], t: &sip::MediaType) -> bool {
    sip::accept_allows(accept, &t.type_, &t.subtype)
}

/// Whether the display name of a CPIM From (`claimed`) is the sender's enforced name (`own`):
/// the RFC 8266 Nickname comparison (case, width, spaces, NFKC) and nothing more. Look-alikes
/// (`B0b`, Cyrillic `bоb`, bidi overrides) are *different* names here: the focus keeps them
/// apart when it assigns names, and the relay must not let one participant speak under
/// another's look-alike. A name PRECIS refuses compares equal only to itself, byte for byte.
pub fn same_display_name(claimed: &str, own: &str) -> bool {
    chat_alias_proto::nickname::rfc8266_equal(claimed, own)
}

/// Routing of a message whose CPIM headers are in: checks the sender's CPIM From, then decides
/// between a regular message (every other participant that accepts the inner type) and a
/// private one (RFC 7701 §6.1, §6.2; checks in the RFC's order). Returns the recipients and
/// whether the message is private.
pub(super) fn route<'a>(
    reg: &'a Registry,
    sender: &Participant,
    h: &cpim::CpimHeaders<'_>,
    inner: &sip::MediaType,
) -> Result<(Vec<&'a Participant>, bool), Refusal> {
    let from = h.from.as_ref().ok_or(refuse(403, "CPIM From missing"))?;
    let from_uri = sip::parse_uri(&from.uri).map_err(|_| refuse(403, "bad CPIM From URI"))?;
    let own =
        sip::parse_uri(&sender.uri).map_err(|_| refuse(403, "sender identity unparseable"))?;
    if !from_uri.equivalent(&own) {
        return Err(refuse(403, "CPIM From is not the sender's identity"));
    }
    if let Some(dn) = &from.display_name {
        let ok = sender
            .display_name
            .as_deref()
            .is_some_and(|own| same_display_name(dn, own));
        if !ok {
            return Err(refuse(403, "CPIM From display name is not the sender's"));
        }
    }
    let to = match h.to.as_slice() {
        [] => return Err(refuse(400, "CPIM To missing")),
        [to] => to,
        _ => return Err(refuse(403, "more than one CPIM To")),
    };
    let to_uri = sip::parse_uri(&to.uri).map_err(|_| refuse(404, "bad CPIM To URI"))?;
    let is_conference = sip::parse_uri(&sender.conference).is_ok_and(|c| c.equivalent(&to_uri));
    if is_conference {
        let others = reg
            .in_conference(&sender.conference)
            .into_iter()
            .filter(|p| p.session != sender.session && accepts(&p.accept_wrapped_types, inner))
            .collect();
        return Ok((others, false));
    }
    let target = reg
        .find_by_uri(&sender.conference, &to_uri)
        .ok_or(refuse(404, "no such participant"))?;
    // The URI alone may name someone else than the sender saw: `sip:anonymous@anonymous.invalid`
    // passes from one anonymous participant to the next, so a message addressed to a departed
    // "bob" would reach whoever holds the URI now. A display name in the To says whom the sender
    // means; it must be the holder's current name (RFC 8266 comparison), else nobody gets it.
    if let Some(dn) = to.display_name.as_deref().filter(|d| !d.is_empty()) {
        let same = target
            .display_name
            .as_deref()
            .is_some_and(|own| same_display_name(dn, own));
        if !same {
            return Err(refuse(404, "no participant of that name at that URI"));
        }
    }
    let advertised = target
        .chatroom
        .iter()
        .any(|t| t.eq_ignore_ascii_case("private-messages"));
    if !sender.private_messages_allowed || !target.private_messages_allowed || !advertised {
        return Err(refuse(428, "private messages not allowed"));
    }
    if !accepts(&target.accept_wrapped_types, inner) {
        return Err(refuse(415, "recipient does not accept this content type"));
    }
    Ok((vec![target], true))
}
