//! What the focus decides about one INVITE, without touching shared state or sockets:
//! [`admit`] turns the request into either a [`Refusal`] or an [`Admission`] (group, identity,
//! anonymity, chosen name, SDP offer), and [`answer`] composes the 200 OK once the alias table and the
//! relay have said yes. The order of the checks follows the CR (7.2.3.2) and the contract:
//! unknown group 404, no identity 403, malformed From 400, name rules 400, policy 403, anonymity 403,
//! offer 488.
use crate::groups::{Group, GroupSet, Permissions};
use chat_alias_proto::{cpim, multipart, nickname, sdp, sip};

/// The parts of an INVITE the focus looks at; header values as received.
#[derive(Debug, Default, Clone)]
pub struct InviteView<'a> {
    pub request_uri: &'a str,
    pub from: Option<&'a str>,
    pub call_id: Option<&'a str>,
    /// Every `Privacy` header value.
    pub privacy: Vec<&'a str>,
    /// Every `Accept` header value.
    pub accept: Vec<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// The operator's choice of authenticated identity (usually `$ai`): a P-Asserted-Identity value
    /// list; the first sip/sips URI in it is used.
    pub asserted_identity: &'a str,
}

/// Limits from the module's parameters.
#[derive(Debug, Clone)]
pub struct JoinLimits {
    pub max_display_name_chars: usize,
}

/// Why a join is refused, with the SIP status and a reason phrase a person can understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: String,
    pub kind: RefusalKind,
    /// Extra reply headers (e.g. `Retry-After: 5`, `Warning: ...`).
    pub headers: Vec<String>,
}

/// Refusal categories, one statistics counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    UnknownGroup,
    NoIdentity,
    BadRequest,
    Policy,
    Anonymity,
    ConferenceFull,
    AlreadyJoined,
    /// The identity holds `max_places_per_identity` places in the conference already.
    TooManyPlaces,
    BadOffer,
    NotAcceptable,
    PrivacyUnavailable,
    TableFull,
    RelayUnavailable,
    Internal,
}

impl Refusal {
    pub fn new(code: u16, reason: impl Into<String>, kind: RefusalKind) -> Self {
        Refusal {
            code,
            reason: reason.into(),
            kind,
            headers: Vec::new(),
        }
    }
    pub fn with_header(mut self, h: impl Into<String>) -> Self {
        self.headers.push(h.into());
        self
    }
}

/// A request that passed every check that does not need the alias table.
#[derive(Debug)]
pub struct Admission<'g> {
    pub group: &'g Group,
    /// Canonical key of the group URI (the conference key of the alias table).
    pub conference_key: String,
    /// The authenticated identity, as a canonical URI string.
    pub identity: String,
    pub anonymous: bool,
    /// The display name as the user wrote it (unescaped), validated.
    pub display_name: Option<String>,
    /// The From URI as sent (to tell whether the assigned identity differs).
    pub from_uri: String,
    pub permissions: Permissions,
    pub offer: sdp::Session,
    pub chat_index: usize,
    /// Whether the INVITE's Accept admits `multipart/mixed` (true when there is no Accept).
    pub accepts_multipart: bool,
}

/// Runs the checks of the CR and the issue that need no shared state.
pub fn admit<'g>(
    groups: &'g GroupSet,
    invite: &InviteView<'_>,
    limits: &JoinLimits,
) -> Result<Admission<'g>, Refusal> {
    let group = groups
        .find(invite.request_uri)
        .ok_or_else(|| Refusal::new(404, "Not Found (no such group)", RefusalKind::UnknownGroup))?;
    let conference_key = conference_key(group);

    let identity = first_sip_identity(invite.asserted_identity).ok_or_else(|| {
        Refusal::new(
            403,
            "Forbidden (no authenticated identity)",
            RefusalKind::NoIdentity,
        )
    })?;

    let from = invite
        .from
        .ok_or_else(|| Refusal::new(400, "Bad Request (missing From)", RefusalKind::BadRequest))?;
    let from = sip::parse_name_addr(from)
        .map_err(|_| Refusal::new(400, "Bad Request (malformed From)", RefusalKind::BadRequest))?;
    let from_uri = sip::parse_uri(&from.uri).map_err(|_| {
        Refusal::new(
            400,
            "Bad Request (malformed From URI)",
            RefusalKind::BadRequest,
        )
    })?;

    let anonymous = invite.privacy.iter().any(|p| sip::privacy_requests_id(p))
        || from_uri.host_lower() == "anonymous.invalid";
    // RFC 3323 §5.1: with `critical`, privacy the service cannot provide fails the request (500).
    // The focus provides identity privacy (`id`, and `header`/`user` through the anonymous
    // identity) for anonymous requests only, and never `session` privacy (no media anonymisation).
    let privacy: Vec<String> = invite
        .privacy
        .iter()
        .flat_map(|p| sip::privacy_values(p))
        .collect();
    if privacy.iter().any(|v| v == "critical") {
        let unmet = privacy
            .iter()
            .any(|v| v == "session" || (!anonymous && (v == "header" || v == "user")));
        if unmet {
            return Err(Refusal::new(
                500,
                "Server Internal Error (requested privacy cannot be provided)",
                RefusalKind::PrivacyUnavailable,
            ));
        }
    }

    let display_name = match from.display_name {
        Some(name) if !name.is_empty() => {
            // RFC 8266: a name with a code point the Nickname profile disallows is refused, not
            // stripped (a bidi override would otherwise make `\u{202E}ecila` render as "alice"),
            // and the reason names that code point (ASCII only: it is a reason phrase).
            nickname::validate_display_name(&name, limits.max_display_name_chars).map_err(|e| {
                match e {
                    nickname::NameError::Disallowed(c) => Refusal::new(
                        400,
                        format!(
                            "Display name not allowed: {}",
                            nickname::code_point_label(c)
                        ),
                        RefusalKind::BadRequest,
                    ),
                    e => Refusal::new(
                        400,
                        format!("Bad Request (display name: {e})"),
                        RefusalKind::BadRequest,
                    ),
                }
            })?;
            Some(name)
        }
        _ => None,
    };

    let permissions = group.permissions(&identity, anonymous);
    // join-handling governs joining; allow-initiate-conference lets a user start the session, which
    // for a pre-defined group is the same act (the first join creates the conference).
    if !(permissions.join_handling || permissions.allow_initiate_conference) {
        return Err(Refusal::new(
            403,
            "Forbidden (not allowed to join this group)",
            RefusalKind::Policy,
        ));
    }
    if anonymous && !permissions.allow_anonymity {
        return Err(Refusal::new(
            403,
            "Forbidden (anonymity not allowed for this identity)",
            RefusalKind::Anonymity,
        ));
    }

    let (offer, chat_index) = chat_offer(invite.content_type, invite.body)?;
    let accepts_multipart =
        invite.accept.is_empty() || sip::accept_allows(&invite.accept, "multipart", "mixed");

    Ok(Admission {
        group,
        conference_key,
        identity: identity.key(),
        anonymous,
        display_name,
        from_uri: from.uri,
        permissions,
        offer,
        chat_index,
        accepts_multipart,
    })
}

/// The alias table's key for a group's conference: the canonical form of its URI, so that every
/// equivalent spelling of the group URI lands in the same conference.
pub fn conference_key(group: &Group) -> String {
    group.parsed_uri().key()
}

/// The first sip/sips URI of a P-Asserted-Identity value list (RFC 3325 §9.1).
fn first_sip_identity(value: &str) -> Option<sip::Uri> {
    let list = sip::parse_name_addr_list(value.trim()).ok()?;
    list.into_iter()
        .filter_map(|na| sip::parse_uri(&na.uri).ok())
        .find(|u| matches!(u.scheme, sip::Scheme::Sip | sip::Scheme::Sips))
}

/// Finds the SDP offer (a bare `application/sdp` body or the SDP part of a `multipart/mixed` body)
/// and the MSRP media line that can carry the chat.
fn chat_offer(content_type: Option<&str>, body: &[u8]) -> Result<(sdp::Session, usize), Refusal> {
    let no_offer = |why: &str| {
        Refusal::new(
            488,
            format!("Not Acceptable Here ({why})"),
            RefusalKind::BadOffer,
        )
        .with_header(
            "Warning: 399 chat_alias \"an MSRP m=message line accepting message/cpim is required\"",
        )
    };
    let ct = content_type.ok_or_else(|| no_offer("no SDP offer"))?;
    let ct = sip::parse_media_type(ct).map_err(|_| no_offer("malformed Content-Type"))?;
    let sdp_bytes: &[u8] = if ct.is("application", "sdp") {
        body
    } else if ct.is("multipart", "mixed") {
        let boundary = ct
            .param("boundary")
            .ok_or_else(|| no_offer("multipart body without boundary"))?;
        let parts =
            multipart::parse(body, boundary).map_err(|_| no_offer("malformed multipart body"))?;
        parts
            .into_iter()
            .find(|p| {
                p.content_type
                    .and_then(|c| sip::parse_media_type(c).ok())
                    .is_some_and(|m| m.is("application", "sdp"))
            })
            .map(|p| p.body)
            .ok_or_else(|| no_offer("no SDP offer"))?
    } else {
        return Err(no_offer("no SDP offer"));
    };
    let text = std::str::from_utf8(sdp_bytes).map_err(|_| no_offer("SDP is not UTF-8"))?;
    let session = sdp::parse(text).map_err(|_| no_offer("malformed SDP"))?;
    let index = sdp::find_chat_media(&session)
        .map_err(|_| no_offer("no MSRP media accepting message/cpim"))?;
    Ok((session, index))
}

/// What the alias table assigned (a copy of the table's answer, independent of its types).
#[derive(Debug, Clone)]
pub struct Identity {
    pub display_name: Option<String>,
    pub uri: String,
}

/// Where the relay told the participant to connect.
#[derive(Debug, Clone)]
pub struct RelayGrant {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub max_size: u64,
}

/// The 200 OK's headers (without Content-Length, added by tm) and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub headers: Vec<String>,
    pub body: Vec<u8>,
    /// Whether the assigned identity differs from the From header (multipart answer).
    pub modified: bool,
}

/// Whether the assigned identity differs from what the client sent in From.
pub fn identity_modified(adm: &Admission<'_>, assigned: &Identity) -> bool {
    let name_changed = assigned.display_name.as_deref() != adm.display_name.as_deref();
    let uri_changed = match (sip::parse_uri(&adm.from_uri), sip::parse_uri(&assigned.uri)) {
        (Ok(a), Ok(b)) => !a.equivalent(&b),
        _ => true,
    };
    name_changed || uri_changed
}

/// Composes the 200 OK: `application/sdp` when the identity is as sent, else `multipart/mixed` with
/// a `message/cpim` part naming the assigned identity and the SDP part. `random` seeds the SDP
/// session id and the multipart boundary (the caller supplies OS randomness).
pub fn answer(
    adm: &Admission<'_>,
    assigned: &Identity,
    grant: &RelayGrant,
    random: [u8; 16],
) -> Result<Answer, Refusal> {
    let modified = identity_modified(adm, assigned);
    if modified && !adm.accepts_multipart {
        // The client would not be able to learn its modified identity (RFC 3261 §21.4.7).
        return Err(Refusal::new(
            406,
            "Not Acceptable (assigned alias needs multipart/mixed in Accept)",
            RefusalKind::NotAcceptable,
        ));
    }
    let mut chatroom: Vec<&str> = Vec::new();
    let offered = adm
        .offer
        .media
        .get(adm.chat_index)
        .map(|m| m.chatroom_tokens())
        .unwrap_or_default();
    if offered
        .iter()
        .any(|t| t.eq_ignore_ascii_case("nickname") || t.eq_ignore_ascii_case("nicknames"))
    {
        chatroom.push("nickname");
    }
    if adm.permissions.allow_private_message {
        chatroom.push("private-messages");
    }
    let session_id = u64::from_le_bytes(random[..8].try_into().unwrap_or([0; 8])) >> 1;
    let params = sdp::AnswerParams {
        address: &grant.host,
        port: grant.port,
        path: &grant.path,
        accept_wrapped_types: &["text/plain", "*"],
        chatroom: &chatroom,
        max_size: Some(grant.max_size),
        session_id,
        session_version: 1,
    };
    let sdp_answer = sdp::compose_answer(&adm.offer, adm.chat_index, &params);
    let contact = format!("Contact: <{}>;isfocus", adm.group.uri);
    if !modified {
        return Ok(Answer {
            headers: vec![contact, "Content-Type: application/sdp".into()],
            body: sdp_answer.into_bytes(),
            modified,
        });
    }
    let to = cpim::format_address(assigned.display_name.as_deref(), &assigned.uri);
    let from = cpim::format_address(None, &adm.group.uri);
    let cpim_body = cpim::compose(&from, &[to], &[], "text/plain;charset=UTF-8", b"");
    let boundary = multipart::choose_boundary(&random[8..], &[&cpim_body, sdp_answer.as_bytes()]);
    let cpim_headers: &[(&str, &str)] = &[
        ("Content-Type", "message/cpim"),
        ("Content-Disposition", "render;handling=optional"),
    ];
    let sdp_headers: &[(&str, &str)] = &[("Content-Type", "application/sdp")];
    let body = multipart::compose(
        &boundary,
        &[
            (cpim_headers, &cpim_body),
            (sdp_headers, sdp_answer.as_bytes()),
        ],
    );
    Ok(Answer {
        headers: vec![
            contact,
            format!("Content-Type: multipart/mixed;boundary={boundary}"),
        ],
        body,
        modified,
    })
}

/// The offer's MSRP details the relay needs.
pub fn peer_media(adm: &Admission<'_>) -> (Vec<String>, Vec<String>, Vec<String>) {
    match adm.offer.media.get(adm.chat_index) {
        Some(m) => (
            m.path().iter().map(|s| s.to_string()).collect(),
            m.accept_wrapped_types()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            m.chatroom_tokens().iter().map(|s| s.to_string()).collect(),
        ),
        None => (Vec::new(), Vec::new(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> GroupSet {
        let docs: Vec<(String, String)> = [
            (
                "bookclub.xml",
                include_str!("../../../kamailio/groups/bookclub.xml"),
            ),
            (
                "open-lounge.xml",
                include_str!("../../../kamailio/groups/open-lounge.xml"),
            ),
            (
                "quiet.xml",
                include_str!("../../../kamailio/groups/quiet.xml"),
            ),
        ]
        .iter()
        .map(|(n, c)| (n.to_string(), c.to_string()))
        .collect();
        GroupSet::from_documents(&docs).unwrap()
    }

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0\r\n\
        m=message 7654 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=accept-wrapped-types:text/plain\r\n\
        a=path:msrp://192.0.2.1:7654/jshA7weztas;tcp\r\na=setup:actpass\r\na=chatroom:nickname private-messages\r\n";

    fn invite<'a>(
        ruri: &'a str,
        from: &'a str,
        privacy: &'a str,
        identity: &'a str,
    ) -> InviteView<'a> {
        InviteView {
            request_uri: ruri,
            from: Some(from),
            call_id: Some("c1"),
            privacy: if privacy.is_empty() {
                vec![]
            } else {
                vec![privacy]
            },
            accept: vec![],
            content_type: Some("application/sdp"),
            body: OFFER.as_bytes(),
            asserted_identity: identity,
        }
    }

    const LIMITS: JoinLimits = JoinLimits {
        max_display_name_chars: 64,
    };
    const BOB_ANON: &str = "\"bob\" <sip:anonymous@anonymous.invalid>;tag=1";

    fn refusal(r: Result<Admission<'_>, Refusal>) -> (u16, RefusalKind) {
        let r = r.expect_err("expected a refusal");
        (r.code, r.kind)
    }

    #[test]
    fn refusals_in_contract_order() {
        let g = groups();
        let bc = "sip:bookclub@im.example.net";
        assert_eq!(
            refusal(admit(
                &g,
                &invite(
                    "sip:none@im.example.net",
                    BOB_ANON,
                    "id",
                    "<sip:bob@example.com>"
                ),
                &LIMITS
            )),
            (404, RefusalKind::UnknownGroup)
        );
        assert_eq!(
            refusal(admit(&g, &invite(bc, BOB_ANON, "id", ""), &LIMITS)),
            (403, RefusalKind::NoIdentity)
        );
        // A tel: identity alone is not a sip/sips identity.
        assert_eq!(
            refusal(admit(
                &g,
                &invite(bc, BOB_ANON, "id", "<tel:+15551234567>"),
                &LIMITS
            )),
            (403, RefusalKind::NoIdentity)
        );
        assert_eq!(
            refusal(admit(
                &g,
                &invite(bc, "\"bob <sip:x@y>", "id", "<sip:bob@example.com>"),
                &LIMITS
            )),
            (400, RefusalKind::BadRequest)
        );
        assert_eq!(
            refusal(admit(
                &g,
                &invite(bc, BOB_ANON, "id", "<sip:alice@example.com>"),
                &LIMITS
            )),
            (403, RefusalKind::Anonymity)
        );
        assert_eq!(
            refusal(admit(
                &g,
                &invite(bc, "<sip:m@evil.example>;tag=1", "", "<sip:m@evil.example>"),
                &LIMITS
            )),
            (403, RefusalKind::Policy)
        );
        let long = format!(
            "\"{}\" <sip:anonymous@anonymous.invalid>;tag=1",
            "x".repeat(65)
        );
        assert_eq!(
            refusal(admit(
                &g,
                &invite(bc, &long, "id", "<sip:bob@example.com>"),
                &LIMITS
            )),
            (400, RefusalKind::BadRequest)
        );
        let mut no_sdp = invite(bc, BOB_ANON, "id", "<sip:bob@example.com>");
        no_sdp.content_type = None;
        no_sdp.body = b"";
        assert_eq!(
            refusal(admit(&g, &no_sdp, &LIMITS)),
            (488, RefusalKind::BadOffer)
        );
    }

    #[test]
    fn a_disallowed_code_point_in_the_display_name_is_400_naming_it() {
        let g = groups();
        let bc = "sip:bookclub@im.example.net";
        for (from, privacy, phrase) in [
            (
                "\"\u{202E}ecila\" <sip:anonymous@anonymous.invalid>;tag=1",
                "id",
                "Display name not allowed: U+202E RIGHT-TO-LEFT OVERRIDE",
            ),
            (
                "\"Bob\u{200B}\" <sip:bob@example.com>;tag=1",
                "",
                "Display name not allowed: U+200B ZERO WIDTH SPACE",
            ),
            (
                "\"a\tb\" <sip:anonymous@anonymous.invalid>;tag=1",
                "id",
                "Display name not allowed: U+0009 CHARACTER TABULATION",
            ),
        ] {
            let r = admit(
                &g,
                &invite(bc, from, privacy, "<sip:bob@example.com>"),
                &LIMITS,
            )
            .expect_err(from);
            assert_eq!((r.code, r.kind), (400, RefusalKind::BadRequest), "{from}");
            assert_eq!(r.reason, phrase);
        }
        // Spaces are mapped (RFC 8266 §2.2), not refused; the name is kept as written.
        let a = admit(
            &g,
            &invite(
                bc,
                "\"  bob   the  builder \" <sip:anonymous@anonymous.invalid>;tag=1",
                "id",
                "<sip:bob@example.com>",
            ),
            &LIMITS,
        )
        .unwrap();
        assert_eq!(a.display_name.as_deref(), Some("  bob   the  builder "));
    }

    #[test]
    fn critical_privacy_that_cannot_be_provided_is_500() {
        let g = groups();
        let bc = "sip:bookclub@im.example.net";
        let named = "\"Bob\" <sip:bob@example.com>;tag=1";
        let r = admit(
            &g,
            &invite(bc, named, "header;critical", "<sip:bob@example.com>"),
            &LIMITS,
        );
        assert_eq!(refusal(r), (500, RefusalKind::PrivacyUnavailable));
        let r = admit(
            &g,
            &invite(bc, BOB_ANON, "id;session;critical", "<sip:bob@example.com>"),
            &LIMITS,
        );
        assert_eq!(refusal(r), (500, RefusalKind::PrivacyUnavailable));
        // Provided: identity privacy for an anonymous request, even with header/user and critical.
        assert!(admit(
            &g,
            &invite(
                bc,
                BOB_ANON,
                "id;header;user;critical",
                "<sip:bob@example.com>"
            ),
            &LIMITS
        )
        .is_ok());
        // Without critical, unprovided privacy is not a reason to refuse.
        assert!(admit(
            &g,
            &invite(bc, named, "header", "<sip:bob@example.com>"),
            &LIMITS
        )
        .is_ok());
    }

    #[test]
    fn anonymity_from_privacy_or_from_host() {
        let g = groups();
        let bc = "sip:bookclub@im.example.net";
        let a = admit(
            &g,
            &invite(bc, BOB_ANON, "", "<sip:bob@example.com>"),
            &LIMITS,
        )
        .unwrap();
        assert!(a.anonymous, "anonymous.invalid From host");
        let a = admit(
            &g,
            &invite(
                bc,
                "\"Bob\" <sip:bob@example.com>;tag=1",
                "header;ID",
                "<sip:bob@example.com>",
            ),
            &LIMITS,
        )
        .unwrap();
        assert!(a.anonymous, "Privacy id in any case and position");
        let a = admit(
            &g,
            &invite(
                bc,
                "\"Bob\" <sip:bob@example.com>;tag=1",
                "none",
                "<sip:bob@example.com>",
            ),
            &LIMITS,
        )
        .unwrap();
        assert!(!a.anonymous);
        // The identity is the first sip URI of a P-Asserted-Identity list.
        let a = admit(
            &g,
            &invite(
                bc,
                BOB_ANON,
                "id",
                "<tel:+1555>, \"B\" <sip:bob@example.com>",
            ),
            &LIMITS,
        )
        .unwrap();
        assert_eq!(
            a.identity,
            sip::parse_uri("sip:bob@example.com").unwrap().key()
        );
    }

    fn grant() -> RelayGrant {
        RelayGrant {
            host: "127.0.0.1".into(),
            port: 2855,
            path: "msrp://127.0.0.1:2855/abcdefabcdefabcdef;tcp".into(),
            max_size: 1024,
        }
    }

    #[test]
    fn unmodified_identity_gets_sdp_only_and_every_m_line_is_answered() {
        let g = groups();
        let a = admit(
            &g,
            &invite(
                "sip:bookclub@im.example.net",
                BOB_ANON,
                "id",
                "<sip:bob@example.com>",
            ),
            &LIMITS,
        )
        .unwrap();
        let id = Identity {
            display_name: Some("bob".into()),
            uri: "sip:anonymous@anonymous.invalid".into(),
        };
        let ans = answer(&a, &id, &grant(), [7; 16]).unwrap();
        assert!(!ans.modified);
        assert_eq!(
            ans.headers[0],
            "Contact: <sip:bookclub@im.example.net>;isfocus"
        );
        assert_eq!(ans.headers[1], "Content-Type: application/sdp");
        let sdp = sdp::parse(std::str::from_utf8(&ans.body).unwrap()).unwrap();
        assert_eq!(
            sdp.media.len(),
            2,
            "the audio line is answered too (rejected)"
        );
        assert_eq!(sdp.media[0].port, 0);
        assert_eq!(sdp.media[1].port, 2855);
        assert_eq!(sdp.media[1].accept_types(), vec!["message/cpim"]);
        assert!(sdp.media[1].chatroom_tokens().contains(&"private-messages"));
        assert!(!String::from_utf8_lossy(&ans.body).contains("bob@example.com"));
    }

    #[test]
    fn modified_identity_gets_multipart_with_cpim_and_respects_accept() {
        let g = groups();
        let mut inv = invite(
            "sip:quiet@im.example.net",
            BOB_ANON,
            "id",
            "<sip:bob@example.com>",
        );
        let a = admit(&g, &inv, &LIMITS).unwrap();
        let id = Identity {
            display_name: Some("bob-2".into()),
            uri: "sip:anonymous2@anonymous.invalid".into(),
        };
        let ans = answer(&a, &id, &grant(), [9; 16]).unwrap();
        assert!(ans.modified);
        let ct =
            sip::parse_media_type(ans.headers[1].trim_start_matches("Content-Type: ")).unwrap();
        assert!(ct.is("multipart", "mixed"));
        let parts = multipart::parse(&ans.body, ct.param("boundary").unwrap()).unwrap();
        let c = cpim::parse_headers(parts[0].body).unwrap();
        assert_eq!(c.from.unwrap().uri, "sip:quiet@im.example.net");
        assert_eq!(c.to[0].display_name.as_deref(), Some("bob-2"));
        assert_eq!(c.to[0].uri, "sip:anonymous2@anonymous.invalid");
        let sdp_text = String::from_utf8_lossy(parts[1].body);
        assert!(
            !sdp_text.contains("private-messages"),
            "quiet group: no private messages"
        );
        assert!(!String::from_utf8_lossy(&ans.body).contains("bob@example.com"));

        inv.accept = vec!["application/sdp"];
        let a = admit(&g, &inv, &LIMITS).unwrap();
        assert_eq!(answer(&a, &id, &grant(), [9; 16]).unwrap_err().code, 406);
    }
}
