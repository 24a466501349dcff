//! `control::focus_socket::read_request`: a datagram arriving on the module's focus socket
//! (JSON-RPC 2.0, written by whoever can reach the socket) never panics; a `sessions` page is
//! capped at `MAX_PAGE` and a `missing` question at `MAX_CHECK` pairs; whatever reads as a
//! question, encoded again the way the relay writes it, reads back as the same question; and every
//! answer the module would write for it (or its refusal) fits one datagram.
#![no_main]
use chat_alias_proto::control::focus_socket::{
    encode_answer, read_request, Answer, Incoming, Question, MAX_CHECK, MAX_DATAGRAM, MAX_PAGE,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (id, question) = match read_request(data) {
        Incoming::Notification => return,
        Incoming::Refused { id, fault } => {
            assert!(encode_answer(&id, Err(fault)).len() <= MAX_DATAGRAM);
            return;
        }
        Incoming::Question { id, question } => (id, question),
    };
    match &question {
        Question::Sessions { limit, .. } => assert!(*limit <= MAX_PAGE as u64),
        Question::Missing { sessions } => assert!(sessions.len() <= MAX_CHECK),
        Question::Nickname { .. } => {}
    }
    // The relay numbers its questions; any id the module echoes is read back by the relay as a
    // number, so the round trip is checked with one.
    let n = id.as_u64().unwrap_or(7);
    match read_request(&question.encode(n)) {
        Incoming::Question {
            id: id2,
            question: q2,
        } => {
            assert_eq!(q2, question, "an encoded question reads back the same");
            assert_eq!(id2.as_u64(), Some(n));
        }
        other => panic!("an encoded question reads as {other:?}"),
    }
    if let Question::Missing { sessions } = &question {
        let all = sessions.iter().map(|(_, s)| s.clone()).collect();
        assert!(encode_answer(&id, Ok(Answer::Missing(all))).len() <= MAX_DATAGRAM);
    }
});
