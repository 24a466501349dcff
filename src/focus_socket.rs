//! The focus socket: a Unix datagram socket of the module's own, served by one dedicated Kamailio
//! process, that answers the relay's questions and nothing else (docs/control-protocol.md, "The
//! focus socket"); the process serving it is in the FFI room (`ffi/focus.rs`):
//!
//! - `chat_alias.nickname` `[conference, session, nickname]`: an RFC 7701 NICKNAME decided by the
//!   alias table;
//! - `chat_alias.sessions` `[offset, limit]`: one page of the participants, to rebuild a restarted
//!   relay's registry;
//! - `chat_alias.missing` `[[conference, session], ...]`: which of these sessions the table no
//!   longer has, so that the relay closes them (a leave lost in transit, a restarted Kamailio).
//!
//! Requests and answers are JSON-RPC 2.0 shaped, one per datagram. Every other method gets an error
//! answer: the operator's RPCs (`chat_alias.list` names every real identity) are not reachable here.
//! Only datagrams whose sender's credentials (`SCM_CREDENTIALS`, filled in by the kernel) carry the
//! allowed uid are read at all; everything else is dropped unanswered.
use crate::service::{self, Host, Module, NicknameError};
use chat_alias_proto::control::focus_socket::{
    encode_answer, read_request, Answer, Fault, Incoming, Question, SessionRecord,
};
pub use chat_alias_proto::control::focus_socket::{MAX_DATAGRAM, MAX_PAGE};
use std::path::PathBuf;
use std::time::Duration;

/// How long an answer may wait for room in the relay's receive buffer before it is dropped (the
/// relay asks again; one slow reader must not stall the questions behind it).
pub const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// What the socket can ask of the module (the alias table in production, a fake in tests).
pub trait Focus {
    fn nickname(
        &self,
        conference: &str,
        session: &str,
        nickname: &str,
    ) -> Result<Option<String>, NicknameError>;
    fn sessions(&self, offset: usize, limit: usize) -> Vec<service::SessionRecord>;
    fn missing(&self, pairs: &[(String, String)]) -> Vec<String>;
}

impl<H: Host> Focus for Module<H> {
    fn nickname(
        &self,
        conference: &str,
        session: &str,
        nickname: &str,
    ) -> Result<Option<String>, NicknameError> {
        service::nickname(self, conference, session, nickname)
    }
    fn sessions(&self, offset: usize, limit: usize) -> Vec<service::SessionRecord> {
        service::sessions(self, offset, limit)
    }
    fn missing(&self, pairs: &[(String, String)]) -> Vec<String> {
        service::missing_sessions(self, pairs)
    }
}

/// The wire record of one listed session.
fn record(s: service::SessionRecord) -> SessionRecord {
    SessionRecord {
        conference: s.conference,
        session: s.session,
        uri: s.uri,
        display_name: s.display_name,
        anonymous: s.anonymous,
        peer_path: vec![s.peer_path],
        accept_wrapped_types: s.accept_wrapped_types,
        chatroom: s.chatroom,
        private_messages_allowed: s.private_messages_allowed,
    }
}

/// The answer to one request datagram. Every request is answered (an error for anything that is
/// not one of the three questions), except a notification without an `id`.
pub fn answer(focus: &dyn Focus, datagram: &[u8]) -> Option<Vec<u8>> {
    let (id, answer) = match read_request(datagram) {
        Incoming::Notification => return None,
        Incoming::Refused { id, fault } => (id, Err(fault)),
        Incoming::Question { id, question } => (id, call(focus, question)),
    };
    Some(encode_answer(&id, answer))
}

fn call(focus: &dyn Focus, q: Question) -> Result<Answer, Fault> {
    match q {
        Question::Nickname {
            conference,
            session,
            nickname,
        } => focus
            .nickname(&conference, &session, &nickname)
            .map(Answer::Nickname)
            .map_err(|e| Fault::new(i64::from(e.status()), e.to_string())),
        Question::Sessions { offset, limit } => {
            let offset = usize::try_from(offset).unwrap_or(usize::MAX);
            let limit = usize::try_from(limit).unwrap_or(MAX_PAGE);
            let page = focus.sessions(offset, limit);
            Ok(Answer::Sessions(page.into_iter().map(record).collect()))
        }
        Question::Missing { sessions } => Ok(Answer::Missing(focus.missing(&sessions))),
    }
}

/// Where the socket is: the `focus_socket` modparam, or next to the relay's control socket.
pub fn path(focus_socket: &str, relay_socket: &str) -> PathBuf {
    if focus_socket.is_empty() {
        PathBuf::from(format!("{relay_socket}.focus"))
    } else {
        PathBuf::from(focus_socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_alias_proto::control::focus_socket::{
        INVALID_PARAMS, INVALID_REQUEST, MAX_CHECK, METHOD_NOT_FOUND, PARSE_ERROR,
    };
    use serde_json::{json, Value};
    use service::SessionRecord;

    struct Fake;

    impl Focus for Fake {
        fn nickname(&self, c: &str, s: &str, n: &str) -> Result<Option<String>, NicknameError> {
            match (c, s, n) {
                (_, "known", "") => Ok(None),
                (_, "known", "taken") => Err(NicknameError::Taken),
                (_, "known", n) => Ok(Some(n.to_string())),
                (c, s, _) => Err(NicknameError::UnknownSession {
                    session: s.into(),
                    conference: c.into(),
                }),
            }
        }
        fn sessions(&self, offset: usize, limit: usize) -> Vec<SessionRecord> {
            (offset..100)
                .take(limit)
                .map(|i| SessionRecord {
                    conference: "sip:lounge@im.example.net".into(),
                    session: format!("s{i}"),
                    uri: "sip:anonymous@anonymous.invalid".into(),
                    display_name: Some("bob".into()),
                    anonymous: true,
                    peer_path: "msrp://192.0.2.1:7654/abc;tcp".into(),
                    accept_wrapped_types: vec!["text/plain".into(), "message/cpim".into()],
                    chatroom: vec!["nickname".into()],
                    private_messages_allowed: true,
                })
                .collect()
        }
        fn missing(&self, pairs: &[(String, String)]) -> Vec<String> {
            pairs
                .iter()
                .filter(|(_, s)| s != "known")
                .map(|(_, s)| s.clone())
                .collect()
        }
    }

    fn ask(req: Value) -> Value {
        let bytes = answer(&Fake, req.to_string().as_bytes()).expect("an answer");
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn nickname_answers_as_the_relay_reads_them() {
        let r = ask(json!({"jsonrpc":"2.0","method":"chat_alias.nickname",
            "params":["sip:lounge@im.example.net","known","Robert"],"id":7}));
        assert_eq!(
            r,
            json!({"jsonrpc":"2.0","result":{"code":200,"display_name":"Robert"},"id":7})
        );
        let r = ask(json!({"method":"chat_alias.nickname","params":["c","known",""],"id":8}));
        assert_eq!(r["result"]["display_name"], "");
        let r = ask(json!({"method":"chat_alias.nickname","params":["c","known","taken"],"id":9}));
        assert_eq!(r["error"], json!({"code":425,"message":"nickname in use"}));
        let r = ask(json!({"method":"chat_alias.nickname","params":["c","known"],"id":10}));
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
    }

    #[test]
    fn sessions_pages_are_capped() {
        let r = ask(json!({"method":"chat_alias.sessions","params":[90, 1000],"id":1}));
        assert_eq!(r["result"].as_array().unwrap().len(), 10);
        let r = ask(json!({"method":"chat_alias.sessions","params":[0, 1000],"id":1}));
        let page = r["result"].as_array().unwrap();
        assert_eq!(page.len(), MAX_PAGE);
        assert_eq!(page[0]["session"], "s0");
        assert_eq!(page[0]["accept_wrapped_types"], "text/plain message/cpim");
        assert_eq!(page[0]["anonymous"], 1);
    }

    #[test]
    fn missing_names_the_sessions_the_table_does_not_have() {
        let r = ask(json!({"method":"chat_alias.missing",
            "params":[["sip:a@x","known"],["sip:a@x","gone"]],"id":"q1"}));
        assert_eq!(
            r,
            json!({"jsonrpc":"2.0","result":{"missing":["gone"]},"id":"q1"})
        );
        let too_many: Vec<Value> = (0..=MAX_CHECK)
            .map(|i| json!(["c", i.to_string()]))
            .collect();
        let r = ask(json!({"method":"chat_alias.missing","params":too_many,"id":2}));
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        let r = ask(json!({"method":"chat_alias.missing","params":[["c"]],"id":3}));
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
    }

    /// The operator's RPCs are not reachable: whatever else is asked gets "Method not found".
    #[test]
    fn nothing_but_the_three_questions_is_answered() {
        for m in [
            "chat_alias.list",
            "chat_alias.reload",
            "chat_alias.stats",
            "core.version",
            "system.listMethods",
        ] {
            let r = ask(json!({"jsonrpc":"2.0","method":m,"id":1}));
            assert_eq!(
                r,
                json!({"jsonrpc":"2.0","error":{"code":METHOD_NOT_FOUND,"message":"Method not found"},"id":1}),
                "{m}"
            );
        }
        let r: Value = serde_json::from_slice(&answer(&Fake, b"not json").unwrap()).unwrap();
        assert_eq!(r["error"]["code"], PARSE_ERROR);
        let r = ask(json!({"id":1}));
        assert_eq!(r["error"]["code"], INVALID_REQUEST);
        assert_eq!(answer(&Fake, br#"{"method":"chat_alias.list"}"#), None);
    }

    #[test]
    fn the_default_path_is_next_to_the_relay_socket() {
        assert_eq!(
            path("", "/run/chat-alias/relay.sock"),
            PathBuf::from("/run/chat-alias/relay.sock.focus")
        );
        assert_eq!(path("/x/f.sock", "/run/r.sock"), PathBuf::from("/x/f.sock"));
    }
}
