//! The questions the relay asks the module's focus socket: JSON-RPC 2.0 requests (JSON-RPC 2.0
//! §4), one per Unix datagram, for three methods only:
//!
//! - `chat_alias.nickname` `[conference, session, nickname]`: an RFC 7701 §7 NICKNAME to decide;
//! - `chat_alias.sessions` `[offset, limit]`: one page of the participants;
//! - `chat_alias.missing` `[[conference, session], ...]`: which of these sessions are gone.
//!
//! This module only reads a request ([`parse_request`]); the module's focus socket answers it.
//! Sans-IO so that it can be fuzzed: whatever the datagram, reading it never panics, and every
//! list it yields is capped ([`MAX_CHECK`]).
use serde_json::Value;

/// Pairs in one `chat_alias.missing` question (a session id is ≤ 64 bytes, a group URI ≤ 255, so
/// the answer fits one datagram).
pub const MAX_CHECK: usize = 128;

/// JSON-RPC's own error codes (JSON-RPC 2.0 §5.1).
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;

/// One question the focus socket answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    Nickname {
        conference: String,
        session: String,
        nickname: String,
    },
    /// A page of the participant listing; `limit` as asked (the answerer caps it).
    Sessions { offset: usize, limit: Option<usize> },
    /// At most [`MAX_CHECK`] (conference, session) pairs.
    Missing(Vec<(String, String)>),
}

/// The JSON-RPC error a request is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

fn rpc_error(code: i64, message: impl Into<String>) -> RpcError {
    RpcError {
        code,
        message: message.into(),
    }
}

fn str_param(params: &[Value], i: usize) -> Option<&str> {
    params.get(i).and_then(Value::as_str)
}

fn int_param(params: &[Value], i: usize) -> Option<usize> {
    params
        .get(i)
        .and_then(Value::as_u64)
        .and_then(|v| usize::try_from(v).ok())
}

/// Reads one request datagram. `None` for a notification (a request without `id` is never
/// answered, JSON-RPC 2.0 §4.1); otherwise the id to echo (`null` when the datagram is not JSON)
/// and the question, or the error to answer instead.
pub fn parse_request(datagram: &[u8]) -> Option<(Value, Result<Question, RpcError>)> {
    let v = match serde_json::from_slice::<Value>(datagram) {
        Ok(v) => v,
        Err(_) => return Some((Value::Null, Err(rpc_error(PARSE_ERROR, "Parse error")))),
    };
    let id = v.get("id")?.clone();
    let Some(method) = v.get("method").and_then(Value::as_str) else {
        return Some((id, Err(rpc_error(INVALID_REQUEST, "Invalid Request"))));
    };
    let params: &[Value] = v
        .get("params")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    Some((id, question(method, params)))
}

fn question(method: &str, params: &[Value]) -> Result<Question, RpcError> {
    match method {
        "chat_alias.nickname" => {
            let (Some(conference), Some(session), Some(nickname)) = (
                str_param(params, 0),
                str_param(params, 1),
                str_param(params, 2),
            ) else {
                return Err(rpc_error(INVALID_PARAMS, "3 string parameters required"));
            };
            Ok(Question::Nickname {
                conference: conference.to_string(),
                session: session.to_string(),
                nickname: nickname.to_string(),
            })
        }
        "chat_alias.sessions" => Ok(Question::Sessions {
            offset: int_param(params, 0).unwrap_or(0),
            limit: int_param(params, 1),
        }),
        "chat_alias.missing" => {
            if params.len() > MAX_CHECK {
                return Err(rpc_error(
                    INVALID_PARAMS,
                    format!("at most {MAX_CHECK} sessions per question"),
                ));
            }
            let mut pairs = Vec::with_capacity(params.len());
            for p in params {
                match p.as_array().map(Vec::as_slice) {
                    Some([Value::String(c), Value::String(s)]) => {
                        pairs.push((c.clone(), s.clone()))
                    }
                    _ => {
                        return Err(rpc_error(
                            INVALID_PARAMS,
                            "each parameter is [conference, session]",
                        ))
                    }
                }
            }
            Ok(Question::Missing(pairs))
        }
        _ => Err(rpc_error(METHOD_NOT_FOUND, "Method not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> (Value, Result<Question, RpcError>) {
        parse_request(v.to_string().as_bytes()).expect("a request with an id")
    }

    #[test]
    fn the_three_questions_are_read() {
        assert_eq!(
            parse(json!({"jsonrpc": "2.0", "method": "chat_alias.nickname",
                "params": ["sip:lounge@im.example.net", "s1", "Bob"], "id": 7})),
            (
                json!(7),
                Ok(Question::Nickname {
                    conference: "sip:lounge@im.example.net".into(),
                    session: "s1".into(),
                    nickname: "Bob".into(),
                })
            )
        );
        assert_eq!(
            parse(json!({"method": "chat_alias.sessions", "params": [32, 16], "id": "a"})).1,
            Ok(Question::Sessions {
                offset: 32,
                limit: Some(16)
            })
        );
        assert_eq!(
            parse(json!({"method": "chat_alias.sessions", "id": 1})).1,
            Ok(Question::Sessions {
                offset: 0,
                limit: None
            })
        );
        assert_eq!(
            parse(json!({"method": "chat_alias.missing", "params": [["c", "s"]], "id": 2})).1,
            Ok(Question::Missing(vec![("c".into(), "s".into())]))
        );
    }

    #[test]
    fn anything_else_is_an_error_or_unanswered() {
        assert_eq!(
            parse_request(b"not json"),
            Some((Value::Null, Err(rpc_error(PARSE_ERROR, "Parse error"))))
        );
        // A notification (no id) gets no answer at all.
        assert_eq!(parse_request(br#"{"method":"chat_alias.list"}"#), None);
        assert_eq!(parse_request(b"[1,2]"), None);
        let code = |v: Value| parse(v).1.unwrap_err().code;
        assert_eq!(code(json!({"id": 1})), INVALID_REQUEST);
        assert_eq!(
            code(json!({"method": "chat_alias.list", "id": 1})),
            METHOD_NOT_FOUND
        );
        assert_eq!(
            code(json!({"method": "chat_alias.nickname", "params": ["c", "s"], "id": 1})),
            INVALID_PARAMS
        );
        assert_eq!(
            code(json!({"method": "chat_alias.missing", "params": [["c"]], "id": 1})),
            INVALID_PARAMS
        );
    }

    #[test]
    fn a_missing_question_is_capped() {
        let pairs = |n: usize| Value::Array(vec![json!(["c", "s"]); n]);
        assert_eq!(
            parse(json!({"method": "chat_alias.missing", "params": pairs(MAX_CHECK), "id": 1})).1,
            Ok(Question::Missing(vec![("c".into(), "s".into()); MAX_CHECK]))
        );
        assert_eq!(
            parse(json!({"method": "chat_alias.missing", "params": pairs(MAX_CHECK + 1), "id": 1}))
                .1
                .unwrap_err()
                .code,
            INVALID_PARAMS
        );
    }
}
