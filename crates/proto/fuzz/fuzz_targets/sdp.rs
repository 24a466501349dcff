//! `sdp::parse` and `find_chat_media`: never panic; an answer to an acceptable offer parses back
//! and names the same chat media line.
#![no_main]
use chat_alias_proto::sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offer) = sdp::parse(text) else { return };
    let Ok(index) = sdp::find_chat_media(&offer) else {
        return;
    };
    let params = sdp::AnswerParams {
        address: "192.0.2.10",
        port: 2855,
        path: "msrp://192.0.2.10:2855/kx8Qm2Zp0aLw7vR1;tcp",
        accept_wrapped_types: &["text/plain", "*"],
        chatroom: &["nickname"],
        max_size: Some(16 * 1024 * 1024),
        session_id: 1,
        session_version: 1,
    };
    let answer = sdp::compose_answer(&offer, index, &params);
    let back = sdp::parse(&answer).expect("answer parses");
    assert_eq!(back.media.len(), offer.media.len());
    assert_eq!(sdp::find_chat_media(&back), Ok(index));
});
