//! Property tests for `sdp`.
use chat_alias_proto::sdp::{self, AnswerParams};
use proptest::prelude::*;

fn sdp_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("v=0".to_string()),
        "m=(message|audio|video) [0-9]{1,6}(/[0-9]{1,2})? (TCP/MSRP|RTP/AVP|tcp/msrp) (\\*|[0-9 ]{1,8})",
        "a=(accept-types|path|setup|chatroom|max-size)(:[ -~]{0,20})?",
        "[a-zA-Z]=[ -~]{0,20}",
        "[ -~\r]{0,20}",
    ]
}

proptest! {
    #[test]
    fn parse_never_panics(s in any::<String>()) {
        if let Ok(session) = sdp::parse(&s) {
            let _ = sdp::find_chat_media(&session);
        }
    }

    #[test]
    fn parse_never_panics_structured(lines in proptest::collection::vec(sdp_line(), 0..12), lf in any::<bool>()) {
        let text = lines.join(if lf { "\n" } else { "\r\n" });
        if let Ok(session) = sdp::parse(&text) {
            if let Ok(i) = sdp::find_chat_media(&session) {
                let m = &session.media[i];
                prop_assert!(m.port != 0 && !m.path().is_empty());
                let _ = (m.max_size(), m.setup(), m.chatroom_tokens(), m.accept_wrapped_types());
            }
        }
    }

    #[test]
    fn answer_round_trip(others_before in 0usize..3, others_after in 0usize..3, port in 1u16.., v6 in any::<bool>(),
                         session_id in any::<u64>(), max_size in proptest::option::of(any::<u64>()),
                         path in "msrp://[a-z0-9.]{1,20}:[0-9]{1,5}/[A-Za-z0-9]{10,20};tcp",
                         chatroom in proptest::collection::vec("nickname|private-messages", 0..3)) {
        let mut offer = String::from("v=0\r\no=x 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n");
        for _ in 0..others_before { offer.push_str("m=audio 4000 RTP/AVP 0 8\r\n"); }
        offer.push_str("m=message 7777 TCP/MSRP *\r\na=accept-types:message/cpim text/plain\r\na=path:msrp://198.51.100.1:7777/abc;tcp\r\na=setup:actpass\r\n");
        for _ in 0..others_after { offer.push_str("m=message 7778 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=path:msrp://h:1/x;tcp\r\n"); }
        let offer = sdp::parse(&offer).unwrap();
        let index = sdp::find_chat_media(&offer).unwrap();
        prop_assert_eq!(index, others_before);
        let chatroom: Vec<&str> = chatroom.iter().map(String::as_str).collect();
        let p = AnswerParams {
            address: if v6 { "2001:db8::10" } else { "192.0.2.10" },
            port,
            path: &path,
            accept_wrapped_types: &["text/plain", "*"],
            chatroom: &chatroom,
            max_size,
            session_id,
            session_version: 1,
        };
        let answer = sdp::compose_answer(&offer, index, &p);
        let back = sdp::parse(&answer).unwrap();
        prop_assert_eq!(back.media.len(), offer.media.len());
        prop_assert_eq!(sdp::find_chat_media(&back), Ok(index));
        let m = &back.media[index];
        prop_assert_eq!(m.port, port);
        prop_assert_eq!(m.path(), vec![path.as_str()]);
        prop_assert_eq!(m.accept_types(), vec!["message/cpim"]);
        prop_assert_eq!(m.setup(), Some("passive"));
        prop_assert_eq!(m.max_size(), max_size);
        prop_assert_eq!(m.chatroom_tokens(), chatroom);
        for (i, other) in back.media.iter().enumerate() {
            if i != index { prop_assert_eq!(other.port, 0); }
        }
        let addrtype = if v6 { "IN IP6" } else { "IN IP4" };
        prop_assert!(back.origin.unwrap().contains(addrtype));
    }
}
