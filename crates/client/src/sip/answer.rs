//! Reading the focus's 200 OK to a join (the CR, 7.1.3.2.1): the sending identity and the MSRP
//! media of the answer.
use super::message::SipMessage;
use crate::identity::Identity;
use chat_alias_proto::{cpim, multipart, sdp, sip as psip};

/// What a 200 OK to a join says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinAnswer {
    /// The identity to send as (CPIM From of every message): the CPIM `To` of the 200 OK's
    /// message/cpim part when there is one, else what the client sent.
    pub identity: Identity,
    /// The focus assigned an identity other than the one asked for.
    pub modified: bool,
    /// The CPIM `From` of the 200 OK's message/cpim part (the conference), when present.
    pub focus: Option<Identity>,
    /// The Contact carried `;isfocus` (RFC 7701 §5.2).
    pub is_focus: bool,
    /// The answer's `a=path` URIs for the chat media: the To-Path of every MSRP request; the
    /// first is where to connect (RFC 4975 §8.1).
    pub relay_path: Vec<String>,
    /// The answer's `a=setup` (`passive` when absent: the offerer connects, RFC 4975 §5.4).
    pub setup: String,
    /// The answer's `a=max-size`, if any: larger messages would be refused.
    pub max_size: Option<u64>,
    pub accept_types: Vec<String>,
    pub accept_wrapped_types: Vec<String>,
    pub chatroom: Vec<String>,
}

/// Parses a 2xx answer to the join INVITE. `sent` is the identity the INVITE's From carried.
pub fn parse_join_answer(resp: &SipMessage, sent: &Identity) -> Result<JoinAnswer, String> {
    let ct = match resp.header("Content-Type") {
        Some(v) => psip::parse_media_type(v).map_err(|e| format!("bad Content-Type {v:?}: {e}"))?,
        // RFC 3261 §20.15: a body without Content-Type is application/sdp in an INVITE dialog.
        None => psip::parse_media_type("application/sdp").map_err(|e| e.to_string())?,
    };
    let mut cpim_to = None;
    let mut focus = None;
    let sdp_text: String;
    if ct.is("application", "sdp") {
        sdp_text = String::from_utf8(resp.body.clone()).map_err(|_| "SDP is not UTF-8")?;
    } else if ct.is("multipart", "mixed") {
        let boundary = ct
            .param("boundary")
            .ok_or("multipart/mixed without a boundary")?;
        let parts = multipart::parse(&resp.body, boundary)
            .map_err(|e| format!("unreadable multipart/mixed body: {e}"))?;
        let mut sdp_part = None;
        for p in &parts {
            // RFC 2046: a part without Content-Type is text/plain; it is neither of ours.
            let Some(pct) = p.content_type.and_then(|v| psip::parse_media_type(v).ok()) else {
                continue;
            };
            if pct.is("message", "cpim") && cpim_to.is_none() {
                let h = cpim::parse_headers(p.body)
                    .map_err(|e| format!("unreadable message/cpim part: {e}"))?;
                let to =
                    h.to.first()
                        .ok_or("the message/cpim part has no To (the assigned identity)")?;
                cpim_to = Some(Identity::from_cpim(to));
                focus = h.from.as_ref().map(Identity::from_cpim);
            } else if pct.is("application", "sdp") && sdp_part.is_none() {
                sdp_part = Some(p.body);
            }
        }
        let body = sdp_part.ok_or("multipart/mixed answer without an application/sdp part")?;
        sdp_text = String::from_utf8(body.to_vec()).map_err(|_| "SDP is not UTF-8")?;
    } else {
        return Err(format!(
            "unexpected Content-Type {}/{} (expected application/sdp or multipart/mixed)",
            ct.type_, ct.subtype
        ));
    }
    let session = sdp::parse(&sdp_text).map_err(|e| format!("unreadable SDP answer: {e}"))?;
    let idx = sdp::find_chat_media(&session).map_err(|e| format!("SDP answer: {e}"))?;
    let m = &session.media[idx];
    let relay_path: Vec<String> = m.path().into_iter().map(str::to_string).collect();
    for p in &relay_path {
        chat_alias_proto::msrp::parse_uri(p)
            .map_err(|e| format!("SDP answer: bad a=path URI {p:?}: {e}"))?;
    }
    let is_focus = resp
        .header("Contact")
        .and_then(|c| psip::parse_name_addr(c).ok())
        .is_some_and(|na| na.param("isfocus").is_some());
    let identity = cpim_to.unwrap_or_else(|| sent.clone());
    let modified = identity.display_name != sent.display_name || !identity.same_uri(sent);
    Ok(JoinAnswer {
        modified,
        identity,
        focus,
        is_focus,
        relay_path,
        setup: m.setup().unwrap_or("passive").to_ascii_lowercase(),
        max_size: m.max_size(),
        accept_types: m.accept_types().into_iter().map(str::to_string).collect(),
        accept_wrapped_types: m
            .accept_wrapped_types()
            .into_iter()
            .map(str::to_string)
            .collect(),
        chatroom: m
            .chatroom_tokens()
            .into_iter()
            .map(str::to_string)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's sample answer (captured from `make run`).
    const MULTIPART: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:41089;branch=z9hG4bKb97c5d87f77821\r\n\
From: \"bob\" <sip:anonymous@anonymous.invalid>;tag=b97c5d87f77821\r\n\
To: <sip:bookclub@im.example.net>;tag=4afbdc6aab759744c7159513ad804512-5576e3f2\r\n\
Call-ID: b97c5d87f77821@example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:bookclub@im.example.net>;isfocus\r\n\
Content-Type: multipart/mixed;boundary=ca-0e3655bd8704092b\r\n\
\r\n\
--ca-0e3655bd8704092b\r\n\
Content-Type: message/cpim\r\n\
Content-Disposition: render;handling=optional\r\n\
\r\n\
From: <sip:bookclub@im.example.net>\r\n\
To: \"bob-2\" <sip:anonymous2@anonymous.invalid>\r\n\
\r\n\
Content-Type: text/plain;charset=UTF-8\r\n\
\r\n\
\r\n\
--ca-0e3655bd8704092b\r\n\
Content-Type: application/sdp\r\n\
\r\n\
v=0\r\n\
o=- 3448874644859144445 1 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=message 2890 TCP/MSRP *\r\n\
a=accept-types:message/cpim\r\n\
a=accept-wrapped-types:text/plain *\r\n\
a=path:msrp://127.0.0.1:2890/9592432f43004c151ebd40506b69a09c;tcp\r\n\
a=setup:passive\r\n\
a=max-size:16777216\r\n\
a=chatroom:nickname private-messages\r\n\
\r\n\
--ca-0e3655bd8704092b--\r\n";

    fn sdp_only() -> String {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=message 2890 TCP/MSRP *\r\na=accept-types:message/cpim\r\n\
                   a=path:msrp://127.0.0.1:2890/abcdefabcdefabcdef;tcp\r\na=setup:passive\r\n";
        format!(
            "SIP/2.0 200 OK\r\nContact: <sip:lounge@im.example.net>;isfocus\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    #[test]
    fn multipart_answer_gives_the_assigned_identity() {
        let m = SipMessage::parse(MULTIPART.as_bytes()).unwrap();
        let sent = Identity::anonymous("bob");
        let a = parse_join_answer(&m, &sent).unwrap();
        assert_eq!(
            a.identity,
            Identity::new(Some("bob-2"), "sip:anonymous2@anonymous.invalid")
        );
        assert!(a.modified);
        assert!(a.is_focus);
        assert_eq!(
            a.focus,
            Some(Identity::new(None, "sip:bookclub@im.example.net"))
        );
        assert_eq!(
            a.relay_path,
            vec!["msrp://127.0.0.1:2890/9592432f43004c151ebd40506b69a09c;tcp".to_string()]
        );
        assert_eq!(a.setup, "passive");
        assert_eq!(a.max_size, Some(16_777_216));
        assert_eq!(a.chatroom, vec!["nickname", "private-messages"]);
        assert_eq!(a.accept_wrapped_types, vec!["text/plain", "*"]);
    }

    #[test]
    fn sdp_answer_keeps_the_sent_identity() {
        let m = SipMessage::parse(sdp_only().as_bytes()).unwrap();
        let sent = Identity::new(Some("Alice"), "sip:alice@example.com");
        let a = parse_join_answer(&m, &sent).unwrap();
        assert_eq!(a.identity, sent);
        assert!(!a.modified);
        assert_eq!(a.focus, None);
        assert_eq!(a.setup, "passive");
    }

    #[test]
    fn unusable_answers_are_explained() {
        let bad = sdp_only().replace("a=path:", "a=nopath:");
        let m = SipMessage::parse(bad.as_bytes()).unwrap();
        let e = parse_join_answer(&m, &Identity::anonymous("x")).unwrap_err();
        assert!(e.contains("a=path"), "{e}");
        let bad = sdp_only().replace("application/sdp", "text/html");
        let m = SipMessage::parse(bad.as_bytes()).unwrap();
        assert!(parse_join_answer(&m, &Identity::anonymous("x"))
            .unwrap_err()
            .contains("text/html"));
        let no_to = MULTIPART.replace("To: \"bob-2\" <sip:anonymous2@anonymous.invalid>\r\n", "");
        let m = SipMessage::parse(no_to.as_bytes()).unwrap();
        assert!(parse_join_answer(&m, &Identity::anonymous("bob"))
            .unwrap_err()
            .contains("no To"));
    }
}
