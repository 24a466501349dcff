//! The focus socket: a Unix datagram socket of the module's own, served by one dedicated Kamailio
//! process, that answers the relay's questions and nothing else (docs/control-protocol.md, "The
//! focus socket"):
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
use crate::ffi::{self, Level};
use crate::service::{self, Module};
use chat_alias_proto::focus_rpc::{self, Question};
use serde_json::{json, Value};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Largest request read (bigger ones arrive truncated and are dropped) and largest answer sent.
pub const MAX_DATAGRAM: usize = 65536;
/// Records in one `chat_alias.sessions` answer: at most ~2 KiB each (URIs ≤ 255 bytes, name ≤ 256,
/// peer path ≤ 256, types ≤ 128), so that a page fits one datagram.
pub const MAX_PAGE: usize = 16;
/// How long an answer may wait for room in the relay's receive buffer before it is dropped (the
/// relay asks again; one slow reader must not stall the questions behind it).
const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// What the socket can ask of the module (the alias table in production, a fake in tests).
pub trait Focus {
    fn nickname(
        &self,
        conference: &str,
        session: &str,
        nickname: &str,
    ) -> Result<Option<String>, (u16, String)>;
    fn sessions(&self, offset: usize, limit: usize) -> Vec<service::SessionRecord>;
    fn missing(&self, pairs: &[(String, String)]) -> Vec<String>;
}

impl Focus for Module {
    fn nickname(
        &self,
        conference: &str,
        session: &str,
        nickname: &str,
    ) -> Result<Option<String>, (u16, String)> {
        service::nickname(self, conference, session, nickname)
    }
    fn sessions(&self, offset: usize, limit: usize) -> Vec<service::SessionRecord> {
        service::sessions(self, offset, limit)
    }
    fn missing(&self, pairs: &[(String, String)]) -> Vec<String> {
        service::missing_sessions(self, pairs)
    }
}

fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id})
}

fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "result": result, "id": id})
}

/// The answer to one request datagram. Every request is answered (an error for anything that is
/// not one of the three questions), except a notification without an `id`. Reading the request
/// is `focus_rpc::parse_request` (sans-IO, fuzzed).
pub fn answer(focus: &dyn Focus, datagram: &[u8]) -> Option<Vec<u8>> {
    let (id, question) = focus_rpc::parse_request(datagram)?;
    let reply = match question {
        Ok(q) => call(focus, &id, q),
        Err(e) => error(&id, e.code, &e.message),
    };
    let bytes = reply.to_string().into_bytes();
    if bytes.len() > MAX_DATAGRAM {
        return Some(
            error(&id, 413, "answer larger than one datagram")
                .to_string()
                .into_bytes(),
        );
    }
    Some(bytes)
}

fn call(focus: &dyn Focus, id: &Value, q: Question) -> Value {
    match q {
        Question::Nickname {
            conference,
            session,
            nickname,
        } => match focus.nickname(&conference, &session, &nickname) {
            Ok(name) => result(
                id,
                json!({"code": 200, "display_name": name.unwrap_or_default()}),
            ),
            Err((code, message)) => error(id, i64::from(code), &message),
        },
        Question::Sessions { offset, limit } => {
            let limit = limit.unwrap_or(MAX_PAGE).min(MAX_PAGE);
            let records: Vec<Value> = focus
                .sessions(offset, limit)
                .into_iter()
                .map(|s| {
                    json!({
                        "conference": s.conference,
                        "session": s.session,
                        "uri": s.uri,
                        "display_name": s.display_name.unwrap_or_default(),
                        "anonymous": i64::from(s.anonymous),
                        "peer_path": s.peer_path,
                        "accept_wrapped_types": s.accept_wrapped_types.join(" "),
                        "chatroom": s.chatroom.join(" "),
                        "private_messages_allowed": i64::from(s.private_messages_allowed),
                    })
                })
                .collect();
            result(id, Value::Array(records))
        }
        Question::Missing(pairs) => result(id, json!({"missing": focus.missing(&pairs)})),
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

/// The process body: reads questions from the allowed uid and answers them, until Kamailio stops
/// the process.
pub fn serve(m: &Module, sock: UnixDatagram, allowed_uid: u32) -> ! {
    let _ = sock.set_write_timeout(Some(SEND_TIMEOUT));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut refused: u64 = 0;
    loop {
        let got = ffi::focus::recv_with_creds(&sock, &mut buf);
        ffi::focus::cfg_update();
        let d = match got {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                ffi::log(Level::Error, &format!("focus socket: receive failed: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if d.uid != Some(allowed_uid) {
            refused += 1;
            // A stranger may send many: say so at first, then now and then.
            if refused <= 10 || refused % 1000 == 0 {
                ffi::log(
                    Level::Warn,
                    &format!(
                        "focus socket: datagram from uid {:?} (allowed: {allowed_uid}) dropped unanswered ({refused} so far)",
                        d.uid
                    ),
                );
            }
            continue;
        }
        if d.truncated {
            ffi::log(
                Level::Warn,
                &format!("focus socket: request larger than {MAX_DATAGRAM} bytes dropped"),
            );
            continue;
        }
        let Some(to) = d.from else {
            // An unnamed socket cannot be answered.
            continue;
        };
        let request = buf.get(..d.len).unwrap_or_default();
        let Some(reply) = ffi::guard("focus socket request", None, || answer(m, request)) else {
            continue;
        };
        if let Err(e) = sock.send_to(&reply, &to) {
            ffi::log(
                Level::Info,
                &format!("focus socket: cannot answer {}: {e}", to.display()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_alias_proto::focus_rpc::{
        INVALID_PARAMS, INVALID_REQUEST, MAX_CHECK, METHOD_NOT_FOUND, PARSE_ERROR,
    };
    use service::SessionRecord;

    struct Fake;

    impl Focus for Fake {
        fn nickname(&self, c: &str, s: &str, n: &str) -> Result<Option<String>, (u16, String)> {
            match (c, s, n) {
                (_, "known", "") => Ok(None),
                (_, "known", "taken") => Err((425, "nickname in use".into())),
                (_, "known", n) => Ok(Some(n.to_string())),
                _ => Err((404, "no session".into())),
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
