//! Reading a focus's 200 OK: the identity it assigned, its SDP, and the checks every answer passes.
use super::sip::Response;
use chat_alias_proto::{cpim, multipart, sip as psip};

/// The group URI of the answer's `Contact: <group URI>;isfocus`.
pub fn focus_uri(r: &Response) -> String {
    let c = r.header("Contact").expect("Contact");
    let (start, end) = (c.find('<').expect("<"), c.find('>').expect(">"));
    c[start + 1..end].to_string()
}

/// The identity the 200 OK assigned: (display name, URI) from the CPIM part of a multipart/mixed
/// answer, or None for an SDP-only answer (identity as sent). Checks the multipart shape on the way:
/// a message/cpim part whose From is the group and which encapsulates a text/plain part, then SDP.
pub fn assigned(r: &Response) -> Option<(Option<String>, String)> {
    assert_eq!(r.code, 200, "{}", r.raw_text());
    let ct = psip::parse_media_type(r.header("Content-Type").expect("Content-Type")).unwrap();
    if ct.is("application", "sdp") {
        return None;
    }
    assert!(
        ct.is("multipart", "mixed"),
        "unexpected Content-Type {ct:?}"
    );
    let parts = multipart::parse(&r.body, ct.param("boundary").expect("boundary"))
        .expect("multipart parses");
    assert_eq!(parts.len(), 2, "CPIM part + SDP part");
    assert_eq!(
        parts[0].content_type.map(|s| s.to_ascii_lowercase()),
        Some("message/cpim".into())
    );
    assert!(parts[1]
        .content_type
        .unwrap()
        .to_ascii_lowercase()
        .starts_with("application/sdp"));
    let c = cpim::parse_headers(parts[0].body).expect("CPIM parses");
    assert_eq!(
        c.from.expect("CPIM From").uri,
        focus_uri(r),
        "CPIM From is the group URI"
    );
    assert_eq!(c.to.len(), 1, "one CPIM To");
    let (inner, _) =
        cpim::parse_encapsulated(&parts[0].body[c.header_len..]).expect("inner MIME part");
    assert!(inner.to_ascii_lowercase().starts_with("text/plain"));
    Some((c.to[0].display_name.clone(), c.to[0].uri.clone()))
}

/// The assigned display name when the focus changed the identity.
pub fn assigned_name(r: &Response) -> Option<String> {
    assigned(r).and_then(|(n, _)| n)
}

/// The SDP answer, from either answer form.
pub fn sdp_of(r: &Response) -> String {
    let mt = psip::parse_media_type(r.header("Content-Type").expect("Content-Type")).unwrap();
    if mt.is("application", "sdp") {
        return r.body_text();
    }
    let parts = multipart::parse(&r.body, mt.param("boundary").unwrap()).unwrap();
    String::from_utf8(parts[1].body.to_vec()).unwrap()
}

/// What every focus answer carries: Contact `<group>;isfocus` and an MSRP SDP answer to the relay.
pub fn check_focus_answer(r: &Response, group: &str) {
    assert_eq!(r.code, 200, "{}", r.raw_text());
    assert_eq!(
        r.header("Contact"),
        Some(format!("<{group}>;isfocus").as_str())
    );
    let sdp = sdp_of(r);
    assert!(sdp.contains("m=message "), "{sdp}");
    assert!(sdp.contains(" TCP/MSRP *"), "{sdp}");
    assert!(
        sdp.lines()
            .any(|l| l.trim_end() == "a=accept-types:message/cpim"),
        "{sdp}"
    );
    assert!(sdp.contains("a=setup:passive"), "{sdp}");
    assert!(sdp.contains("a=accept-wrapped-types:"), "{sdp}");
    let path = sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .expect("a=path")
        .trim();
    let session = path.rsplit('/').next().unwrap().trim_end_matches(";tcp");
    assert!(
        session.len() * 4 >= 80,
        "session id {session} carries at least 80 bits"
    );
}
