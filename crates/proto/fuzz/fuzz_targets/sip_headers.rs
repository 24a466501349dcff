//! The SIP header values the module reads besides From/To (each from the INVITE, stranger-written):
//! `Privacy` (`privacy_values`, `privacy_requests_id`), media types (`parse_media_type`: the
//! request's Content-Type, a multipart part's Content-Type, the CPIM inner Content-Type) and
//! `Accept` (`accept_allows`). Never panic; the two Privacy readings agree on `id`; a media type
//! that parses answers `is` for its own type.
#![no_main]
use chat_alias_proto::sip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let values = sip::privacy_values(s);
    assert_eq!(
        values.iter().any(|v| v == "id"),
        sip::privacy_requests_id(s),
        "privacy_values and privacy_requests_id disagree on {s:?}"
    );
    assert!(values.iter().all(|v| !v.is_empty()));
    if let Ok(m) = sip::parse_media_type(s) {
        assert!(m.is(&m.type_, &m.subtype));
        let _ = m.param("boundary");
        let _ = m.param("q");
    }
    let accept: Vec<&str> = s.split('\n').collect();
    let _ = sip::accept_allows(&accept, "multipart", "mixed");
    let _ = sip::accept_allows(&accept, "application", "sdp");
});
