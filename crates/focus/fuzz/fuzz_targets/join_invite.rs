//! `join::admit` and `join::answer`: the INVITE parts the focus reads (stranger-written From,
//! Privacy, Accept, Content-Type, a bare or multipart SDP offer, and the P-Asserted-Identity list)
//! never panic; an admitted request yields an answer whose body is the SDP the caller can parse
//! back (bare, or inside the multipart/mixed the answer names).
//!
//! Input: fields separated by NUL bytes, in the order From, Privacy, Accept, Content-Type,
//! P-Asserted-Identity, body; the request URI is the open lounge of kamailio/groups.
#![no_main]
use chat_alias_focus::groups::GroupSet;
use chat_alias_focus::join::{self, Identity, InviteView, JoinLimits, RelayGrant};
use chat_alias_proto::{multipart, sdp, sip};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn groups() -> &'static GroupSet {
    static G: OnceLock<GroupSet> = OnceLock::new();
    G.get_or_init(|| {
        GroupSet::from_documents(&[(
            "open-lounge.xml".to_string(),
            include_str!("../../../../kamailio/groups/open-lounge.xml").to_string(),
        )])
        .expect("the shipped group document loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut fields = data.splitn(6, |&b| b == 0);
    let mut text = || {
        fields
            .next()
            .map(|f| String::from_utf8_lossy(f).into_owned())
    };
    let (from, privacy, accept, ct, pai) = (text(), text(), text(), text(), text());
    let body = fields.next().unwrap_or_default();
    let view = InviteView {
        request_uri: "sip:lounge@im.example.net",
        from: from.as_deref(),
        call_id: Some("fuzz"),
        privacy: privacy
            .as_deref()
            .map(|p| p.split('\n').collect())
            .unwrap_or_default(),
        accept: accept
            .as_deref()
            .map(|a| a.split('\n').collect())
            .unwrap_or_default(),
        content_type: ct.as_deref(),
        body,
        asserted_identity: pai.as_deref().unwrap_or(""),
    };
    let Ok(adm) = join::admit(
        groups(),
        &view,
        &JoinLimits {
            max_display_name_chars: 64,
        },
    ) else {
        return;
    };
    assert!(adm.chat_index < adm.offer.media.len());
    let _ = join::peer_media(&adm);
    let grant = RelayGrant {
        host: "192.0.2.10".into(),
        port: 2855,
        path: "msrp://192.0.2.10:2855/kx8Qm2Zp0aLw7vR1;tcp".into(),
        max_size: 1 << 24,
    };
    for assigned in [
        Identity {
            display_name: adm.display_name.clone(),
            uri: adm.from_uri.clone(),
        },
        Identity {
            display_name: Some("anonymous1".into()),
            uri: "sip:anonymous1@anonymous.invalid".into(),
        },
    ] {
        let Ok(ans) = join::answer(&adm, &assigned, &grant, [7; 16]) else {
            continue;
        };
        let ct = ans
            .headers
            .iter()
            .find_map(|h| h.strip_prefix("Content-Type: "))
            .expect("the answer names its Content-Type");
        let ct = sip::parse_media_type(ct).expect("the answer's Content-Type parses");
        let sdp_bytes: Vec<u8> = if ct.is("multipart", "mixed") {
            let boundary = ct.param("boundary").expect("boundary");
            let parts =
                multipart::parse(&ans.body, boundary).expect("the answer's multipart parses");
            parts.last().expect("an SDP part").body.to_vec()
        } else {
            ans.body.clone()
        };
        let answer = sdp::parse(std::str::from_utf8(&sdp_bytes).expect("UTF-8 SDP"))
            .expect("the SDP answer parses");
        assert_eq!(answer.media.len(), adm.offer.media.len());
    }
});
